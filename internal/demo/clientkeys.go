package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
	if hexColour.MatchString(s) || colourSet[strings.ToLower(s)] {
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
	if slices.Contains(themes, s) {
		return nil
	}
	return errors.New("want light, dark or system")
}

// languageTag is the syntax of a BCP 47 language tag (RFC 5646 §2.1,
// langtag and privateuse; the grandfathered tags are left out), case
// insensitive: language (with up to three extlangs), then optional script,
// region, variants, extensions and a private use part.
var languageTag = regexp.MustCompile(`(?i)^(?:` +
	`(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})` + // language
	`(?:-[a-z]{4})?` + // script
	`(?:-(?:[a-z]{2}|[0-9]{3}))?` + // region
	`(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*` + // variants
	`(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*` + // extensions
	`(?:-x(?:-[a-z0-9]{1,8})+)?` + // private use
	`|x(?:-[a-z0-9]{1,8})+)$`)

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
	if len(s) <= MaxLanguageLength && languageTag.MatchString(s) {
		return nil
	}
	return errors.New("want a BCP 47 language tag such as en or pt-BR")
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

func jsonString(v json.RawMessage) (string, error) {
	if s, ok := protocol.PlainString(v); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("want a string")
	}
	return s, nil
}
