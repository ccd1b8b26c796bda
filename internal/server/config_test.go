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
		{name: "gc headroom", args: []string{"-gc-headroom", "1048576"}, want: func(c *Config) { c.GCHeadroom = 1 << 20 }},
		{
			name: "a GOGC in the environment is the one the process runs with",
			env:  map[string]string{"GOGC": "200"},
			want: func(c *Config) { c.GCHeadroom = 0 },
		},
		{
			name: "unless the headroom is set too",
			env:  map[string]string{"GOGC": "200", "SESSIONHUB_GC_HEADROOM": "1048576"},
			want: func(c *Config) { c.GCHeadroom = 1 << 20 },
		},
		{name: "bad gc headroom", args: []string{"-gc-headroom", "-1"}, wantErr: "-gc-headroom"},
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

// Validate refuses each bad setting with an error that names its flag and
// says what it takes; a setting on the bound is accepted. (TestParseConfig
// covers the other checks through the command line.)
func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string // the whole error; "" accepted
	}{
		{"no data directory", func(c *Config) { c.DataDir = "" }, "-data is required"},
		{"a NATS path, not a URL", func(c *Config) { c.NATS = []string{"localhost/4222"} }, `-nats "localhost/4222": not a NATS URL`},
		{"a NATS host:port", func(c *Config) { c.NATS = []string{"localhost:4222"} }, ""},
		{"no cookie name", func(c *Config) { c.CookieName = "" }, "-cookie-name is required"},
		{"lifetime under 1s", func(c *Config) { c.Lifetime = 999 * time.Millisecond }, "-lifetime 999ms: at least 1s"},
		{"lifetime 1s", func(c *Config) { c.Lifetime = time.Second }, ""},
		{"retention under 1s", func(c *Config) { c.Retention = 500 * time.Millisecond }, "-retention 500ms: at least 1s"},
		{"retention 1s", func(c *Config) { c.Retention = time.Second }, ""},
		{"no ops per session", func(c *Config) { c.MaxOpsPerSession, c.SnapshotEvery = 0, -1 }, "-max-ops-per-session 0: at least 2 (a snapshot and the write after it)"},
		{"one op per session", func(c *Config) { c.MaxOpsPerSession, c.SnapshotEvery = 1, -1 }, "-max-ops-per-session 1: at least 2 (a snapshot and the write after it)"},
		{"two ops per session", func(c *Config) { c.MaxOpsPerSession = 2 }, ""},
		{"snapshot every -2", func(c *Config) { c.SnapshotEvery = -2 }, "-snapshot-every -2: -1, 0, or below -max-ops-per-session (10000)"},
		{"snapshot every -1", func(c *Config) { c.SnapshotEvery = -1 }, ""},
		{"snapshot every max-ops", func(c *Config) { c.MaxOpsPerSession, c.SnapshotEvery = 256, 256 }, "-snapshot-every 256: -1, 0, or below -max-ops-per-session (256)"},
		{"snapshot every past max-ops", func(c *Config) { c.SnapshotEvery = 10001 }, "-snapshot-every 10001: -1, 0, or below -max-ops-per-session (10000)"},
		{"snapshot every just below max-ops", func(c *Config) { c.MaxOpsPerSession, c.SnapshotEvery = 256, 255 }, ""},
		{"read limit under 1024", func(c *Config) { c.ReadLimit = 1023 }, "-read-limit 1023: at least 1024 bytes"},
		{"read limit 1024", func(c *Config) { c.ReadLimit = 1024 }, ""},
		{"no rate burst", func(c *Config) { c.RateBurst = 0 }, "-rate-burst 0: at least 1"},
		{"no send buffer", func(c *Config) { c.SendBuffer = 0 }, "-send-buffer 0: at least 1"},
		{"metrics address without a port", func(c *Config) { c.MetricsAddr = "9090" }, `-metrics-addr "9090": address 9090: missing port in address`},
		{"metrics address", func(c *Config) { c.MetricsAddr = "127.0.0.1:9090" }, ""},
		{"metrics port on every interface", func(c *Config) { c.MetricsAddr = ":9090" }, ""},
		{"read timeout under 100ms", func(c *Config) { c.ReadTimeout = 99 * time.Millisecond }, "-read-timeout 99ms: at least 100ms"},
		{"no read timeout", func(c *Config) { c.ReadTimeout = 0 }, "-read-timeout 0s: at least 100ms"},
		{"read timeout 100ms", func(c *Config) { c.ReadTimeout = 100 * time.Millisecond }, ""},
		{"no shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "-shutdown-timeout 0s: must be positive"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "-shutdown-timeout -1s: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// -snapshot-every 0 reaches the hub as the rule README states (64, or a
// quarter of -max-ops-per-session when smaller), and -1 as no compaction.
func TestSnapshotEveryReachesTheHub(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ maxOps, every, want int }{
		{100, 0, 25},
		{256, 0, 64},
		{256, -1, -1},
	} {
		s := startServer(t, func(c *Config) { c.MaxOpsPerSession, c.SnapshotEvery = tc.maxOps, tc.every })
		if got := s.Hub().Options(); got.SnapshotEvery != tc.want || got.MaxOpsPerSession != tc.maxOps {
			t.Errorf("-max-ops-per-session %d -snapshot-every %d: the hub compacts every %d of %d entries, want every %d",
				tc.maxOps, tc.every, got.SnapshotEvery, got.MaxOpsPerSession, tc.want)
		}
	}
}
