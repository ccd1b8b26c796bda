package demo

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		validate func(json.RawMessage) error
		ok, bad  []string // JSON values
	}{
		{
			"colour", ValidColour,
			[]string{`"red"`, `"RebeccaPurple"`, `"lightgoldenrodyellow"`, `"#00aaFF"`, `"#000000"`},
			[]string{`"blurple"`, `"#fff"`, `"#0000000"`, `"#gggggg"`, `"red "`, `""`, `42`, `null`, `["red"]`, `"transparent"`},
		},
		{
			"theme", ValidTheme,
			[]string{`"light"`, `"dark"`, `"system"`},
			[]string{`"Light"`, `"sepia"`, `""`, `true`, `null`},
		},
		{
			"language", ValidLanguage,
			[]string{`"en"`, `"pt-BR"`, `"zh-Hant-TW"`, `"es-419"`, `"sr-Latn-RS"`, `"de-CH-1996"`, `"en-US-x-twain"`, `"x-whatever"`, `"ast"`, `"zh-yue-HK"`},
			[]string{`"en_US"`, `"e"`, `"123"`, `"en-US-"`, `"en-"`, `"-en"`, `"pt-BRA1"`, `""`, `"en US"`, `null`, `7`, `"en-a"`},
		},
		{
			"notifications", ValidNotifications,
			[]string{`true`, `false`},
			[]string{`"true"`, `1`, `null`, `{}`},
		},
	} {
		for _, v := range tc.ok {
			if err := tc.validate(json.RawMessage(v)); err != nil {
				t.Errorf("%s: %s refused: %v", tc.name, v, err)
			}
		}
		for _, v := range tc.bad {
			if err := tc.validate(json.RawMessage(v)); err == nil {
				t.Errorf("%s: %s accepted", tc.name, v)
			}
		}
	}
}

func TestColours(t *testing.T) {
	t.Parallel()
	c := Colours()
	if len(c) != 148 {
		t.Fatalf("%d named colours, want 148 (CSS Color 4)", len(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i-1] >= c[i] {
			t.Fatalf("not sorted or duplicated at %q", c[i])
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	keys := Keys()
	for _, k := range []string{KeyColour, KeyTheme, KeyLanguage, KeyNotifications} {
		if p := keys[k]; !p.Read || !p.Write || p.Validate == nil {
			t.Errorf("%s: %+v, want readable and writable with a validator", k, p)
		}
	}
	if p := keys[KeyName]; !p.Read || p.Write {
		t.Errorf("name: %+v, want readable only", p)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"Ana": true, "José da Silva": true, "": false, "a\x00b": false, "tab\there": false, strings.Repeat("é", 65): false, strings.Repeat("é", 64): true} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v", name, err)
		}
	}
}

// jsonString reads what json.Unmarshal reads into a string, and refuses
// what it refuses.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{`"en"`, `"pt-BR"`, `""`, `"a\"b"`, `"é"`, `"\u0041"`, ` "x" `, `"a"b"`, `1`, `null`, `"`, "\"\x01\"", "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := jsonString(b)
		var want string
		wantErr := json.Unmarshal(b, &want)
		if (err != nil) != (wantErr != nil) || string(got) != want {
			t.Fatalf("jsonString(%q) = %q, %v; json.Unmarshal: %q, %v", b, got, err, want, wantErr)
		}
	})
}

// languageTagRE is RFC 5646's langtag and privateuse grammar (§2.1, the
// grandfathered tags left out) as a regular expression, case insensitive:
// the reference languageTag is held to.
var languageTagRE = regexp.MustCompile(`(?i)^(?:` +
	`(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})` + // language
	`(?:-[a-z]{4})?` + // script
	`(?:-(?:[a-z]{2}|[0-9]{3}))?` + // region
	`(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*` + // variants
	`(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*` + // extensions
	`(?:-x(?:-[a-z0-9]{1,8})+)?` + // private use
	`|x(?:-[a-z0-9]{1,8})+)$`)

// isASCII reports whether s is ASCII: outside it the regular expression's
// case folding accepts letters such as the Kelvin sign, which no language
// tag holds and languageTag refuses.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestLanguageTagSyntax(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"en", "EN", "eN-gb", "ast", "zh-yue-HK", "zh-yue-abc-def", "zh-yue-abc-def-ghi", "abcd", "abcdefgh", "abcdefghi",
		"abcd-efg", "abcd-Latn", "abcd-419", "en-Latn-Latn", "en-Latn-US", "en-US-GB", "en-1996", "en-199", "en-19",
		"de-CH-1996", "sl-rozaj-biske-1994", "en-a1", "en-abcde", "en-abcdefghi", "en-a-bc", "en-a-b", "en-a", "en-a-bc-d-ef",
		"en-a-bc-a-bc", "en-x", "en-x-a", "en-x-abcdefgh", "en-x-abcdefghi", "en-a-bc-x-y", "en-x-a-b-c", "x", "x-a", "X-ABC",
		"x-", "-x-a", "en--us", "en-", "-en", "e", "i-klingon", "1en", "en-US-x-twain", "en-a-x-y", "en-b-xy", "en-x-a-bc",
		"qaa-Qaaa-QM-x-southern", "en-Latn-US-valencia-u-ca-gregory-x-private", "en-US-u", "en-419-1234", "en-419-123",
		"en_US", "en US", "en-US\n", "\u212Aa", "e\u017F",
	} {
		want := languageTagRE.MatchString(s) && isASCII(s)
		if got := languageTag(s); got != want {
			t.Errorf("languageTag(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzLanguageTag(f *testing.F) {
	for _, s := range []string{"en", "pt-BR", "zh-Hant-TW", "x-s12-w0-n12345", "en-a-bc-x-y", "de-CH-1996", "en--us", "\u212Aa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := languageTagRE.MatchString(s) && isASCII(s)
		if got := languageTag(s); got != want {
			t.Fatalf("languageTag(%q) = %v; the grammar says %v", s, got, want)
		}
	})
}

func BenchmarkValidLanguage(b *testing.B) {
	v := json.RawMessage(`"x-s12-w0-n12345"`)
	b.Run("subtags", func(b *testing.B) {
		for b.Loop() {
			if err := ValidLanguage(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("regexp", func(b *testing.B) { // the baseline
		for b.Loop() {
			s, err := jsonString(v)
			if err != nil || !languageTagRE.Match(s) {
				b.Fatal(s, err)
			}
		}
	})
}

// The validators of the keys a browser sets read a plain JSON string in
// place (protocol.PlainString): a write of a language or a theme costs no
// allocation of the demo's; each took one, the string's copy.
func TestValidatorsReadInPlace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		valid func(json.RawMessage) error
		v     string
	}{
		{"language", ValidLanguage, `"pt-BR"`},
		{"theme", ValidTheme, `"dark"`},
		{"colour", ValidColour, `"#a0b1c2"`},
	} {
		v := json.RawMessage(tc.v)
		if n := testing.AllocsPerRun(100, func() {
			if err := tc.valid(v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s %s: %v allocations", tc.name, tc.v, n)
		}
	}
}
