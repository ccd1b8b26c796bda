package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/server"
)

// EnvFlaskSecretKey holds the app's SECRET_KEY, comma-separated to rotate
// (the first signs, the others verify). There is no flag for it, so that
// it never shows in a process list; -flask-secret-key-file names a file
// instead.
const EnvFlaskSecretKey = "SESSIONHUB_FLASK_SECRET_KEY"

// Config is the proxy's configuration: the server's (listen address, NATS,
// durability, cookie attributes, limits) and the proxy's own.
type Config struct {
	Server server.Config
	// Upstream is the app's base URL. Required.
	Upstream *url.URL
	// CookieFormat is the app's cookie format: "flask" (Flask's and
	// Quart's SecureCookieSessionInterface), the one supported.
	CookieFormat string
	// FlaskSecrets: the app's SECRET_KEY first, older keys after.
	FlaskSecrets [][]byte
	// ClientKeys the browser may read and write; ReadableKeys it may only
	// read.
	ClientKeys   []string
	ReadableKeys []string
	// Schemas holds a compiled JSON Schema per client key (-keys-schema).
	Schemas map[string]*jsonschema.Schema
}

// ParseConfig reads the proxy's flags from args, on top of the
// environment (every flag has a SESSIONHUB_ variable) and the defaults.
// Errors are printed to output; -help returns flag.ErrHelp.
func ParseConfig(name string, args []string, getenv func(string) string, output io.Writer) (*Config, error) {
	c := &Config{Server: server.DefaultConfig(), CookieFormat: "flask"}
	fs := c.Server.FlagSet(name)
	fs.SetOutput(output)
	var upstream, secretFile, schemaFile string
	var clientKeys, readableKeys string
	fs.StringVar(&upstream, "upstream", "", "the app's base `URL`, e.g. http://127.0.0.1:5000 (required)")
	fs.StringVar(&c.CookieFormat, "cookie-format", c.CookieFormat, "the app's session cookie `format`: flask (Flask's and Quart's default session)")
	fs.StringVar(&secretFile, "flask-secret-key-file", "", "`file` holding the app's SECRET_KEY, one key a line, the signing key first (instead of "+EnvFlaskSecretKey+")")
	fs.StringVar(&clientKeys, "client-keys", "", "comma-separated session `keys` the browser may read and write over the socket")
	fs.StringVar(&readableKeys, "readable-keys", "", "comma-separated session `keys` the browser may read but never write")
	fs.StringVar(&schemaFile, "keys-schema", "", "JSON `file` of one JSON Schema per client key ({\"colour\":{\"enum\":[\"red\",\"blue\"]}}); without it any JSON value within the size budget")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: %s -upstream URL [flags]\n\nPuts the hub in front of a Flask or Quart app: it serves /hub/ws, /hub/flush,\n/hub/sessionhub.js and the server API at /hub/api/, and forwards every other\nrequest to the app with the socket writes folded into its session cookie.\nThe app's SECRET_KEY goes in %s (comma-separated to rotate) or\n-flask-secret-key-file; the server API's token in %s.\n\nFlags (each also an environment variable: -upstream is SESSIONHUB_UPSTREAM):\n", name, EnvFlaskSecretKey, server.EnvAPIToken)
		fs.PrintDefaults()
	}
	if err := server.ApplyEnv(fs, getenv); err != nil {
		fmt.Fprintf(output, "%s: %v\n", name, err)
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintf(output, "%s: %v\n", name, err)
		return nil, err
	}
	c.Server.ReadSecretsEnv(getenv) // the API token, the NATS password or token
	err := c.load(upstream, secretFile, schemaFile, clientKeys, readableKeys, getenv(EnvFlaskSecretKey))
	if err == nil {
		err = c.Server.Validate()
	}
	if err != nil {
		fmt.Fprintf(output, "%s: %v\n", name, err)
		return nil, err
	}
	return c, nil
}

func (c *Config) load(upstream, secretFile, schemaFile, clientKeys, readableKeys, envSecret string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	u, err := url.Parse(upstream)
	switch {
	case upstream == "":
		bad("-upstream is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("-upstream %q: not an http or https URL", upstream)
	default:
		c.Upstream = u
	}
	if c.CookieFormat != "flask" {
		bad("-cookie-format %q: the one format is flask", c.CookieFormat)
	}
	switch {
	case secretFile != "" && envSecret != "":
		bad("both %s and -flask-secret-key-file are set: use one", EnvFlaskSecretKey)
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			bad("-flask-secret-key-file: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimRight(line, "\r"); line != "" {
				c.FlaskSecrets = append(c.FlaskSecrets, []byte(line))
			}
		}
	case envSecret != "":
		for _, k := range strings.Split(envSecret, ",") {
			if k != "" {
				c.FlaskSecrets = append(c.FlaskSecrets, []byte(k))
			}
		}
	}
	if len(c.FlaskSecrets) == 0 && secretFile+envSecret == "" {
		bad("the app's SECRET_KEY is required: set %s or -flask-secret-key-file", EnvFlaskSecretKey)
	} else if len(c.FlaskSecrets) == 0 {
		bad("the app's SECRET_KEY is empty")
	}
	c.ClientKeys = splitList(clientKeys)
	c.ReadableKeys = splitList(readableKeys)
	if schemaFile != "" {
		if c.Schemas, err = compileSchemas(schemaFile, c.ClientKeys); err != nil {
			bad("-keys-schema: %v", err)
		}
	}
	if _, err := c.keyPolicies(); err != nil { // reserved or doubled keys
		bad("%v", err)
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// compileSchemas reads a JSON object of one JSON Schema per client key
// and compiles each; a schema for a key that is not a client key is an
// error (a typo would leave the key unchecked).
func compileSchemas(file string, clientKeys []string) (map[string]*jsonschema.Schema, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object of schemas: %w", file, err)
	}
	out := map[string]*jsonschema.Schema{}
	for key, doc := range raw {
		found := false
		for _, k := range clientKeys {
			found = found || k == key
		}
		if !found {
			return nil, fmt.Errorf("%s: schema for %q, which is not in -client-keys", file, key)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", file, key, err)
		}
		comp := jsonschema.NewCompiler()
		loc := "mem:///" + url.PathEscape(key) + ".json"
		if err := comp.AddResource(loc, v); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", file, key, err)
		}
		sch, err := comp.Compile(loc)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", file, key, err)
		}
		out[key] = sch
	}
	return out, nil
}

func decodeJSON(raw json.RawMessage) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// keyPolicies returns the hub's client key policies; a reserved key
// (the Flask cookie's own) is an error.
func (c *Config) keyPolicies() (map[string]hub.KeyPolicy, error) {
	out := map[string]hub.KeyPolicy{}
	for _, k := range append(slices.Clone(c.ClientKeys), c.ReadableKeys...) {
		if reserved(k) {
			return nil, fmt.Errorf("key %q is reserved", k)
		}
	}
	for _, k := range c.ReadableKeys {
		out[k] = hub.KeyPolicy{Read: true}
	}
	for _, k := range c.ClientKeys {
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("key %q is both a client key and a readable key", k)
		}
		var check func(any) error
		if sch := c.Schemas[k]; sch != nil {
			check = sch.Validate
		}
		out[k] = hub.KeyPolicy{Read: true, Write: true, Validate: validator(k, check)}
	}
	return out, nil
}

// Run serves the proxy until ctx is done, then shuts it down gracefully.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	app, err := App(cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("proxying", "upstream", cfg.Upstream.Redacted(), "client_keys", cfg.ClientKeys, "readable_keys", cfg.ReadableKeys, "server_api", cfg.Server.APIToken != "")
	return server.RunApp(ctx, cfg.Server, app, logger)
}
