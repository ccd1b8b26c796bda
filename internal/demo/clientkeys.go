package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/protocol"
)

// The session keys of the demo.
const (
	KeyColour        = "colour"        // a CSS named colour or #rrggbb; client-writable
	KeyTheme         = "theme"         // light, dark or system; client-writable
	KeyLanguage      = "language"      // a BCP 47 language tag; client-writable
	KeyNotifications = "notifications" // a boolean; client-writable
	KeyName          = "name"          // set by POST /login; client-readable only
)

// Themes are the values the theme key accepts.
var themes = []string{"light", "dark", "system"}

// Themes returns the values the theme key accepts.
func Themes() []string { return slices.Clone(themes) }

// Keys returns the demo's key policies for hub.Options.ClientKeys: colour,
// theme, language and notifications are readable and writable by the
// browser, each with its validator; name is readable only.
func Keys() map[string]hub.KeyPolicy {
	return map[string]hub.KeyPolicy{
		KeyColour:        {Read: true, Write: true, Validate: ValidColour},
		KeyTheme:         {Read: true, Write: true, Validate: ValidTheme},
		KeyLanguage:      {Read: true, Write: true, Validate: ValidLanguage},
		KeyNotifications: {Read: true, Write: true, Validate: ValidNotifications},
		KeyName:          {Read: true},
	}
}

var hexColour = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// ValidColour accepts a JSON string holding a CSS named colour (any case)
// or #rrggbb.
func ValidColour(v json.RawMessage) error {
	s, err := jsonString(v)
	if err != nil {
		return err
	}
	if hexColour.Match(s) || colourSet[string(bytes.ToLower(s))] {
		return nil
	}
	return errors.New("want a CSS colour name or #rrggbb")
}

// ValidTheme accepts "light", "dark" or "system".
func ValidTheme(v json.RawMessage) error {
	s, err := jsonString(v)
	if err != nil {
		return err
	}
	for _, t := range themes {
		if string(s) == t {
			return nil
		}
	}
	return errors.New("want light, dark or system")
}

// MaxLanguageLength bounds a language tag (RFC 5646 §4.4.1 advises room
// for at least 35 characters).
const MaxLanguageLength = 64

// ValidLanguage accepts a JSON string holding a well-formed BCP 47
// language tag, such as "en", "pt-BR" or "zh-Hant-TW".
func ValidLanguage(v json.RawMessage) error {
	s, err := jsonString(v)
	if err != nil {
		return err
	}
	if len(s) <= MaxLanguageLength && languageTag(string(s)) {
		return nil
	}
	return errors.New("want a BCP 47 language tag such as en or pt-BR")
}

// languageTag reports whether s has the syntax of a BCP 47 language tag
// (RFC 5646 §2.1, langtag and privateuse; the grandfathered tags are left
// out), in ASCII of any case: a language (with up to three extlangs),
// then an optional script, region, variants, extensions and a private use
// part; or a private use part alone. It reads the subtags in turn, each
// placed by its length and letters (TestLanguageTagSyntax and
// FuzzLanguageTag hold it to the RFC's grammar as a regular expression).
func languageTag(s string) bool {
	const (
		start      = iota
		extlang    // after the language: extlangs, a script, a region...
		script     // after the extlangs or a 4-8 letter language
		region     // after the script
		variant    // after the region or a variant
		singleton  // after an extension's singleton: one subtag needed
		extension  // after an extension's subtag
		privateuse // after the private use x: one subtag needed
		private    // after a private use subtag
	)
	state, extlangs := start, 0
	for s != "" {
		// The subtag up to the next hyphen, its letters and digits
		// checked on the way (one pass: every client write of the
		// language key is checked).
		n, letters, digits := 0, true, true
		for ; n < len(s) && s[n] != '-'; n++ {
			switch c := s[n] | 0x20; { // ASCII lower case
			case c >= 'a' && c <= 'z':
				digits = false
			case s[n] >= '0' && s[n] <= '9':
				letters = false
			default:
				return false
			}
		}
		sub := s[:n]
		if s = s[n:]; s != "" {
			if s = s[1:]; s == "" {
				return false // a trailing hyphen
			}
		}
		if n == 0 || n > 8 {
			return false
		}
		x := n == 1 && sub[0]|0x20 == 'x'
		switch state {
		case start:
			switch {
			case x:
				state = privateuse
			case letters && n <= 3:
				if n == 1 {
					return false
				}
				state = extlang
			case letters:
				state = script
			default:
				return false
			}
			continue
		case privateuse, private:
			state = private
			continue
		case singleton, extension:
			if n >= 2 {
				state = extension
				continue
			}
			if state == singleton {
				return false
			}
		}
		// A subtag after the language: the first place, in order, that
		// takes it.
		if state == extlang && letters && n == 3 && extlangs < 3 {
			extlangs++
			continue
		}
		if state <= script && letters && n == 4 {
			state = region
			continue
		}
		if state <= region && (letters && n == 2 || digits && n == 3) {
			state = variant
			continue
		}
		if state <= variant && (n >= 5 || n == 4 && sub[0] >= '0' && sub[0] <= '9') {
			state = variant
			continue
		}
		switch {
		case x:
			state = privateuse
		case n == 1:
			state = singleton
		default:
			return false
		}
	}
	return state != start && state != singleton && state != privateuse
}

// ValidNotifications accepts true or false.
func ValidNotifications(v json.RawMessage) error {
	switch string(bytes.TrimSpace(v)) {
	case "true", "false":
		return nil
	}
	return errors.New("want true or false")
}

// MaxNameLength bounds the name set by POST /login, in characters.
const MaxNameLength = 64

// ValidName reports whether name (already trimmed) is a name /login
// accepts: 1 to MaxNameLength printable characters.
func ValidName(name string) error {
	if name == "" {
		return errors.New("name is required")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength {
		return fmt.Errorf("name must be at most %d characters", MaxNameLength)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New("name must be printable text")
		}
	}
	return nil
}

// jsonString returns the bytes of the string JSON value v holds: a slice
// of v when it is plain (protocol.PlainString), so that a validator that
// keeps nothing of it allocates nothing.
func jsonString(v json.RawMessage) ([]byte, error) {
	if s, ok := protocol.PlainString(v); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, errors.New("want a string")
	}
	return []byte(s), nil
}
