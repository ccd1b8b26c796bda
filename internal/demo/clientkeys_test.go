package demo

import (
	"encoding/json"
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
		if (err != nil) != (wantErr != nil) || got != want {
			t.Fatalf("jsonString(%q) = %q, %v; json.Unmarshal: %q, %v", b, got, err, want, wantErr)
		}
	})
}
