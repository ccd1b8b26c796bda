package proxy

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// -keys-schema: a client key's value must pass its JSON Schema; values
// holding a Flask tag are refused whatever the schema; a schema for a key
// that is not a client key, a missing secret or upstream are errors.
func TestParseConfigSchemas(t *testing.T) {
	dir := t.TempDir()
	schemas := filepath.Join(dir, "schemas.json")
	if err := os.WriteFile(schemas, []byte(`{"colour":{"enum":["red","blue"]},"theme":{"type":"string","maxLength":5}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvFlaskSecretKey: "new,old", "SESSIONHUB_UPSTREAM": "http://127.0.0.1:5000"}
	getenv := func(k string) string { return env[k] }
	cfg, err := ParseConfig("proxy", []string{"-client-keys", "colour,theme,free", "-readable-keys", "user", "-keys-schema", schemas, "-data", dir}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.FlaskSecrets) != 2 || string(cfg.FlaskSecrets[0]) != "new" || cfg.Upstream.Host != "127.0.0.1:5000" {
		t.Fatalf("config: %+v", cfg)
	}
	// The secrets that only the environment holds reach the proxy too.
	env["SESSIONHUB_NATS_PASSWORD"], env["SESSIONHUB_API_TOKEN"] = "nats-secret", "api-secret"
	withSecrets, err := ParseConfig("proxy", []string{"-nats", "nats://127.0.0.1:4222", "-nats-user", "hub"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if withSecrets.Server.NATSConn.Password != "nats-secret" || withSecrets.Server.APIToken != "api-secret" {
		t.Fatalf("proxy config: NATS password %q, API token %q: want them from the environment", withSecrets.Server.NATSConn.Password, withSecrets.Server.APIToken)
	}
	delete(env, "SESSIONHUB_NATS_PASSWORD")
	delete(env, "SESSIONHUB_API_TOKEN")
	keys, err := cfg.keyPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if p := keys["user"]; !p.Read || p.Write {
		t.Fatalf("user: %+v", p)
	}
	for _, tc := range []struct {
		key, value string
		ok         bool
	}{
		{"colour", `"red"`, true},
		{"colour", `"green"`, false},
		{"theme", `"dark"`, true},
		{"theme", `"darkest"`, false},
		{"theme", `7`, false},
		{"free", `{"any":[1,2]}`, true},
		{"free", `{" m":"<b>"}`, false},
		{"free", `[{" t":[1]}]`, false},
	} {
		err := keys[tc.key].Validate(json.RawMessage(tc.value))
		if (err == nil) != tc.ok {
			t.Errorf("%s = %s: %v, want ok %v", tc.key, tc.value, err, tc.ok)
		}
	}

	for name, args := range map[string][]string{
		"schema of an unknown key": {"-client-keys", "theme", "-keys-schema", schemas},
		"reserved key":             {"-client-keys", "_sessionhub"},
		"bad format":               {"-cookie-format", "django"},
		"bad upstream":             {"-upstream", "ftp://x"},
	} {
		if _, err := ParseConfig("proxy", args, getenv, io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var out strings.Builder
	if _, err := ParseConfig("proxy", nil, func(string) string { return "" }, &out); err == nil || !strings.Contains(out.String(), EnvFlaskSecretKey) {
		t.Fatalf("no secret: %v %q", err, out.String())
	}
}

// App refuses a configuration whose client or readable keys hold a key
// the Flask cookie reserves, however the configuration was built (not only
// from flags): the browser could otherwise write the hub's own fields.
func TestAppRefusesReservedKeys(t *testing.T) {
	for _, c := range []*Config{
		{ClientKeys: []string{"colour", session.FlaskHubKey}},
		{ClientKeys: []string{session.FlaskPermanentKey}},
		{ReadableKeys: []string{session.FlaskHubKey}},
	} {
		if _, err := App(c, nil); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("App with client keys %q, readable keys %q: %v, want a reserved-key error", c.ClientKeys, c.ReadableKeys, err)
		}
	}
}
