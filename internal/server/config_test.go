package server

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/natsconn"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	def := DefaultConfig()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *Config) // changes from the defaults
		rest    []string
		wantErr string
	}{
		{name: "defaults", want: func(c *Config) {}},
		{
			name: "every flag",
			args: []string{
				"-addr", "0.0.0.0:9000", "-nats", "nats://a:4222, nats://b:4222", "-data", "/var/lib/sh",
				"-allowed-origins", "*.example.com,https://app.test", "-cookie-name", "sid", "-cookie-domain", "example.com",
				"-cookie-path", "/app", "-cookie-secure", "-cookie-samesite", "strict", "-cookie-partitioned",
				"-lifetime", "12h", "-refresh=false", "-durability", "strict", "-replicas", "3", "-retention", "1h",
				"-max-ops-per-session", "50", "-read-limit", "4096", "-rate-limit", "5.5", "-rate-burst", "7",
				"-send-buffer", "16", "-keys-file", "/etc/sh/keys", "-log-json", "-log-level", "debug", "-shutdown-timeout", "3s",
				"-nats-user", "hub", "-nats-tls-ca", "/etc/nats/ca.pem", "-nats-tls-cert", "/etc/nats/c.pem", "-nats-tls-key", "/etc/nats/k.pem",
			},
			want: func(c *Config) {
				c.Addr, c.NATS, c.DataDir = "0.0.0.0:9000", []string{"nats://a:4222", "nats://b:4222"}, "/var/lib/sh"
				c.AllowedOrigins = []string{"*.example.com", "https://app.test"}
				c.CookieName, c.CookieDomain, c.CookiePath, c.CookieSecure = "sid", "example.com", "/app", true
				c.CookieSameSite, c.CookiePartitioned, c.Lifetime, c.Refresh = http.SameSiteStrictMode, true, 12*time.Hour, false
				c.Durability, c.Replicas, c.Retention, c.MaxOpsPerSession = natsserver.DurabilityStrict, 3, time.Hour, 50
				c.ReadLimit, c.RateLimit, c.RateBurst, c.SendBuffer = 4096, 5.5, 7, 16
				c.KeysFile, c.LogJSON, c.LogLevel, c.ShutdownTimeout = "/etc/sh/keys", true, slog.LevelDebug, 3*time.Second
				c.NATSConn = natsconn.Options{User: "hub", CAFile: "/etc/nats/ca.pem", CertFile: "/etc/nats/c.pem", KeyFile: "/etc/nats/k.pem"}
			},
		},
		{
			name: "NATS secrets and files from the environment",
			env: map[string]string{
				"SESSIONHUB_NATS": "tls://a:4222,tls://b:4222", "SESSIONHUB_NATS_CREDS": "/etc/nats/hub.creds",
				"SESSIONHUB_NATS_TLS_CA": "/etc/nats/ca.pem",
			},
			want: func(c *Config) {
				c.NATS = []string{"tls://a:4222", "tls://b:4222"}
				c.NATSConn = natsconn.Options{CredsFile: "/etc/nats/hub.creds", CAFile: "/etc/nats/ca.pem"}
			},
		},
		{
			name: "NATS token from the environment",
			env:  map[string]string{"SESSIONHUB_NATS": "nats://a:4222", "SESSIONHUB_NATS_TOKEN": "t0k"},
			want: func(c *Config) { c.NATS, c.NATSConn.Token = []string{"nats://a:4222"}, "t0k" },
		},
		{name: "NATS auth without -nats", args: []string{"-nats-user", "u"}, wantErr: "need -nats"},
		{name: "two NATS auths", args: []string{"-nats", "nats://a:4222", "-nats-user", "u", "-nats-nkey", "f"}, wantErr: "use one"},
		{name: "NATS password without user", args: []string{"-nats", "nats://a:4222"}, env: map[string]string{"SESSIONHUB_NATS_PASSWORD": "p"}, wantErr: "without -nats-user"},
		{
			name: "environment",
			env: map[string]string{
				"SESSIONHUB_ADDR": "127.0.0.1:0", "SESSIONHUB_NATS": "nats://n:4222", "SESSIONHUB_COOKIE_SAMESITE": "None",
				"SESSIONHUB_REFRESH": "false", "SESSIONHUB_DURABILITY": "strict", "SESSIONHUB_LOG_JSON": "true",
				"SESSIONHUB_MAX_OPS_PER_SESSION": "9", "SESSIONHUB_KEYS": " a2V5 ",
			},
			want: func(c *Config) {
				c.Addr, c.NATS, c.CookieSameSite, c.Refresh = "127.0.0.1:0", []string{"nats://n:4222"}, http.SameSiteNoneMode, false
				c.Durability, c.LogJSON, c.MaxOpsPerSession, c.Keys = natsserver.DurabilityStrict, true, 9, "a2V5"
			},
		},
		{
			name: "limits",
			args: []string{"-send-buffer-bytes", "131072", "-session-write-rate", "2.5", "-max-sockets-per-addr", "8"},
			env:  map[string]string{"SESSIONHUB_SESSION_WRITE_BURST": "9", "SESSIONHUB_MAX_SOCKETS_PER_SESSION": "4"},
			want: func(c *Config) {
				c.SendBufferBytes, c.SessionWriteRate, c.SocketsPerAddr = 131072, 2.5, 8
				c.SessionWriteBurst, c.SocketsPerSession = 9, 4
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"-addr", "127.0.0.1:1", "-refresh"},
			env:  map[string]string{"SESSIONHUB_ADDR": "127.0.0.1:2", "SESSIONHUB_REFRESH": "false"},
			want: func(c *Config) { c.Addr = "127.0.0.1:1" },
		},
		{
			name: "arguments after the flags",
			args: []string{"-data", "d", "cookie-value"},
			want: func(c *Config) { c.DataDir = "d" },
			rest: []string{"cookie-value"},
		},
		{name: "bad samesite", args: []string{"-cookie-samesite", "sometimes"}, wantErr: "want lax, strict or none"},
		{name: "bad durability", env: map[string]string{"SESSIONHUB_DURABILITY": "paranoid"}, wantErr: "SESSIONHUB_DURABILITY"},
		{name: "bad env number", env: map[string]string{"SESSIONHUB_READ_LIMIT": "lots"}, wantErr: "SESSIONHUB_READ_LIMIT"},
		{name: "bad addr", args: []string{"-addr", "8080"}, wantErr: "-addr"},
		{name: "bad origin pattern", args: []string{"-allowed-origins", "[x"}, wantErr: "-allowed-origins"},
		{name: "bad replicas", args: []string{"-replicas", "0"}, wantErr: "-replicas"},
		{name: "bad cookie path", args: []string{"-cookie-path", "app"}, wantErr: "-cookie-path"},
		{name: "bad rate", args: []string{"-rate-limit", "0"}, wantErr: "-rate-limit"},
		{name: "bad send buffer bytes", args: []string{"-send-buffer-bytes", "100"}, wantErr: "-send-buffer-bytes"},
		{name: "bad session rate", env: map[string]string{"SESSIONHUB_SESSION_WRITE_RATE": "0"}, wantErr: "-session-write-rate"},
		{name: "bad session burst", args: []string{"-session-write-burst", "0"}, wantErr: "-session-write-burst"},
		{name: "bad sockets per session", args: []string{"-max-sockets-per-session", "0"}, wantErr: "-max-sockets-per-session"},
		{name: "bad sockets per addr", args: []string{"-max-sockets-per-addr", "-1"}, wantErr: "-max-sockets-per-addr"},
		{name: "keys twice", args: []string{"-keys-file", "k"}, env: map[string]string{"SESSIONHUB_KEYS": "a2V5"}, wantErr: "use one"},
		{name: "unknown flag", args: []string{"-colour", "red"}, wantErr: "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tc.env[k] }
			var out bytes.Buffer
			got, rest, err := ParseConfig("sessionhub", tc.args, getenv, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !strings.Contains(out.String(), tc.wantErr) {
					t.Errorf("the error was not printed: %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := def
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config:\n got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(rest, tc.rest) && len(rest)+len(tc.rest) > 0 {
				t.Errorf("rest = %q, want %q", rest, tc.rest)
			}
		})
	}
}

// -help lists every flag with its environment variable, and returns
// flag.ErrHelp.
func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, _, err := ParseConfig("sessionhub", []string{"-help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, f := range Flags() {
		if !strings.Contains(out.String(), "-"+f.Name+" ") || !strings.Contains(out.String(), f.Env) {
			t.Errorf("help lacks -%s / %s", f.Name, f.Env)
		}
	}
	for _, want := range []string{"keygen", "inspect", EnvKeys, natsconn.EnvPassword, natsconn.EnvToken} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
	// Every flag the issue names is there.
	names := map[string]bool{}
	for _, f := range Flags() {
		names[f.Name] = true
	}
	for _, n := range []string{"addr", "nats", "data", "allowed-origins", "cookie-name", "cookie-domain", "cookie-path",
		"cookie-secure", "cookie-samesite", "cookie-partitioned", "lifetime", "refresh", "durability", "retention",
		"max-ops-per-session", "read-limit", "rate-limit", "send-buffer", "keys-file", "log-json", "replicas",
		"nats-creds", "nats-nkey", "nats-user", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"} {
		if !names[n] {
			t.Errorf("no flag -%s", n)
		}
	}
}

func TestSessionOptions(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Refresh = false
	c.CookieSameSite = http.SameSiteNoneMode
	o := c.SessionOptions(nil)
	if !o.NoRefresh || o.SameSite != http.SameSiteNoneMode || o.Name != "session" || o.Lifetime != 31*24*time.Hour {
		t.Fatalf("%+v", o)
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := DefaultConfig()
	NewLogger(&buf, &c).Debug("hidden")
	NewLogger(&buf, &c).Info("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "msg=shown") {
		t.Fatalf("text logger wrote %q", s)
	}
	buf.Reset()
	c.LogJSON = true
	NewLogger(&buf, &c).Info("shown")
	if !strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("JSON logger wrote %q", buf.String())
	}
}

// README's flag table lists every flag of the server, each with its
// environment variable, and no flag the server does not have.
func TestReadmeListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")
	listed := map[string]string{}
	defaults := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		listed[m[1]], defaults[m[1]] = m[2], m[3]
	}
	for _, f := range Flags() {
		env, ok := listed[f.Name]
		switch {
		case !ok:
			t.Errorf("README's flag table has no row for -%s", f.Name)
		case env != f.Env:
			t.Errorf("README gives -%s the environment variable %s, the server reads %s", f.Name, env, f.Env)
		case !sameDefault(defaults[f.Name], f.Default):
			t.Errorf("README gives -%s the default %q, the server's is %q", f.Name, defaults[f.Name], f.Default)
		}
		delete(listed, f.Name)
	}
	for name := range listed {
		t.Errorf("README's flag table lists -%s, which the server does not have", name)
	}
}

// sameDefault reports whether the default column of a README flag row
// says the flag's default: its first `value` (durations compared as
// durations), or "—" / "empty" for a flag without one.
func sameDefault(col, def string) bool {
	v, ok := strings.CutPrefix(col, "`")
	if !ok {
		return (col == "—" || col == "empty") && (def == "" || def == "[]")
	}
	v, _, _ = strings.Cut(v, "`")
	if strings.EqualFold(v, def) { // a level prints as INFO, is written info

		return true
	}
	a, errA := time.ParseDuration(v)
	d, errD := time.ParseDuration(def)
	return errA == nil && errD == nil && a == d
}
