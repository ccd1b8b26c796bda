package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/natsconn"
	"github.com/sessionhub/sessionhub/session"
)

// EnvPrefix prefixes the environment variable of every flag: -cookie-name
// is SESSIONHUB_COOKIE_NAME.
const EnvPrefix = "SESSIONHUB_"

// EnvKeys holds the signing keys (see ParseKeys). There is no flag for
// them, so that they never show in a process list.
const EnvKeys = "SESSIONHUB_KEYS"

// Config is the server's configuration. DefaultConfig holds the defaults;
// ReadSecretsEnv reads the secrets that have no flag, only an
// environment variable: the server API's token and the NATS password or
// token. The server and the proxy both call it.
func (c *Config) ReadSecretsEnv(getenv func(string) string) {
	c.APIToken = strings.TrimSpace(getenv(EnvAPIToken))
	c.NATSConn.ReadEnv(getenv)
}

// ParseConfig reads flags and environment variables into it.
type Config struct {
	// Addr is the HTTP listen address. Default: 127.0.0.1:8080.
	Addr string
	// DebugAddr, when set, serves the Go profiler (/debug/pprof/) on a
	// listener of its own. Default: empty, none.
	DebugAddr string
	// NATS lists external NATS server URLs; empty runs an embedded server.
	NATS []string
	// NATSConn authenticates the connection to external NATS and sets its
	// TLS: flags -nats-creds, -nats-nkey, -nats-user, -nats-tls-ca,
	// -nats-tls-cert, -nats-tls-key; the password and token come from
	// SESSIONHUB_NATS_PASSWORD and SESSIONHUB_NATS_TOKEN only.
	NATSConn natsconn.Options
	// DataDir holds the embedded server's JetStream store and generated
	// keys. Default: ./sessionhub-data.
	DataDir string
	// AllowedOrigins: origin patterns allowed besides the page's own origin
	// (hub.Options.AllowedOrigins).
	AllowedOrigins []string
	// TrustProxy takes the request's scheme from X-Forwarded-Proto, for a
	// server behind a TLS-terminating proxy. Default: false.
	TrustProxy bool

	// Cookie attributes and lifetime (session.Options).
	CookieName        string
	CookieDomain      string
	CookiePath        string
	CookieSecure      bool
	CookieSameSite    http.SameSite
	CookiePartitioned bool
	Lifetime          time.Duration
	Refresh           bool

	// Durability of the embedded server; with external NATS it is the
	// server's own configuration.
	Durability natsserver.Durability
	// Replicas of the JetStream stream.
	Replicas int

	// Limits (hub.Options).
	Retention        time.Duration
	MaxOpsPerSession int
	SnapshotEvery    int
	ReadLimit        int64
	RateLimit        float64
	RateBurst        int
	SendBuffer       int

	SendBufferBytes   int
	SessionWriteRate  float64
	SessionWriteBurst int
	SocketsPerSession int
	SocketsPerAddr    int

	// KeysFile is a file of key entries; Keys the entries themselves (from
	// SESSIONHUB_KEYS). At most one may be set; with neither, keys are
	// generated and kept in DataDir.
	KeysFile string
	Keys     string
	// APIToken is the server API's bearer token (from SESSIONHUB_API_TOKEN;
	// no flag). Empty turns the API off.
	APIToken string

	// LogJSON logs JSON lines instead of text; LogLevel is the minimum level.
	LogJSON  bool
	LogLevel slog.Level
	// ShutdownTimeout bounds a graceful shutdown. Default: 10s.
	ShutdownTimeout time.Duration
	// GCHeadroom is the least the heap may grow by between two garbage
	// collections, in bytes (package gctune): GOGC is raised while the
	// live heap is small. 0 keeps Go's GOGC, and so does a GOGC in the
	// environment unless GCHeadroom is set too. Default: 64 MiB.
	GCHeadroom int64
	// MetricsAddr, when set, serves /metrics on its own listener instead
	// of the main one (127.0.0.1:9090, say, out of the public's reach).
	// Default: empty, /metrics on Addr.
	MetricsAddr string
	// MetricsToken, when set, makes /metrics require the header
	// "Authorization: Bearer <token>". Default: empty, no token.
	MetricsToken string
	// ReadTimeout bounds the reading of a whole request, body included
	// (the header alone: at most 10s). A socket is not held to it once
	// upgraded. Default: 30s.
	ReadTimeout time.Duration
}

// DefaultReadTimeout bounds the reading of one request, header and body;
// MaxReadHeaderTimeout bounds its header alone.
const (
	DefaultReadTimeout   = 30 * time.Second
	MaxReadHeaderTimeout = 10 * time.Second
)

// DefaultGCHeadroom is the least the heap grows by between two garbage
// collections (Config.GCHeadroom): at window 1, a hub of 200 sockets
// spent about 4% less CPU per write for it (BENCHMARKS.md, ninth round).
const DefaultGCHeadroom = 64 << 20

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8080",
		DataDir:          "sessionhub-data",
		CookieName:       "session",
		CookiePath:       "/",
		CookieSameSite:   http.SameSiteLaxMode,
		Lifetime:         session.DefaultLifetime,
		Refresh:          true,
		Durability:       natsserver.DurabilityDefault,
		Replicas:         hub.DefaultReplicas,
		Retention:        hub.DefaultRetention,
		MaxOpsPerSession: hub.DefaultMaxOpsPerSession,
		ReadLimit:        hub.DefaultReadLimit,
		RateLimit:        hub.DefaultRateLimit,
		RateBurst:        hub.DefaultRateBurst,
		SendBuffer:       hub.DefaultSendBuffer,

		SendBufferBytes:   hub.DefaultSendBufferBytes,
		SessionWriteRate:  hub.DefaultSessionWriteRate,
		SessionWriteBurst: hub.DefaultSessionWriteBurst,
		SocketsPerSession: hub.DefaultMaxSocketsPerSession,
		LogLevel:          slog.LevelInfo,
		ShutdownTimeout:   10 * time.Second,
		ReadTimeout:       DefaultReadTimeout,
		GCHeadroom:        DefaultGCHeadroom,
	}
}

// Flag describes one flag for the help text and the README: its Flask
// equivalent, when there is one.
type Flag struct {
	Name    string
	Env     string
	Flask   string
	Usage   string
	Default string // as the flag package prints it ("" when none)
}

// flask maps flags to the Flask configuration they mirror.
var flask = map[string]string{
	"cookie-name":        "SESSION_COOKIE_NAME",
	"cookie-domain":      "SESSION_COOKIE_DOMAIN",
	"cookie-path":        "SESSION_COOKIE_PATH",
	"cookie-secure":      "SESSION_COOKIE_SECURE",
	"cookie-samesite":    "SESSION_COOKIE_SAMESITE",
	"cookie-partitioned": "SESSION_COOKIE_PARTITIONED",
	"lifetime":           "PERMANENT_SESSION_LIFETIME",
	"refresh":            "SESSION_REFRESH_EACH_REQUEST",
	"keys-file":          "SECRET_KEY, SECRET_KEY_FALLBACKS",
}

// EnvName returns the environment variable of flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// FlagSet returns a flag set bound to c: every flag of the server, with
// c's values as defaults.
func (c *Config) FlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen `address`; port 0 picks a free port")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve the Go profiler (/debug/pprof/) on this `address` of its own (empty: none)")
	fs.Var((*listValue)(&c.NATS), "nats", "comma-separated external NATS server `URLs`; empty runs an embedded NATS server")
	c.NATSConn.AddFlags(fs)
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data `directory`: the embedded server's JetStream store and the generated keys")
	fs.Var((*listValue)(&c.AllowedOrigins), "allowed-origins", "comma-separated origin `patterns` (path.Match syntax; host[:port] on the page's scheme, or scheme://host[:port]) allowed to open sockets and post, besides the page's own origin")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", c.TrustProxy, "take the request's scheme from X-Forwarded-Proto (behind a TLS-terminating proxy only)")
	fs.StringVar(&c.CookieName, "cookie-name", c.CookieName, "session cookie `name`")
	fs.StringVar(&c.CookieDomain, "cookie-domain", c.CookieDomain, "cookie Domain `attribute`; empty for a host-only cookie")
	fs.StringVar(&c.CookiePath, "cookie-path", c.CookiePath, "cookie Path `attribute`")
	fs.BoolVar(&c.CookieSecure, "cookie-secure", c.CookieSecure, "set the cookie's Secure attribute (serve over HTTPS); forced by -cookie-samesite none and -cookie-partitioned")
	fs.Var((*sameSiteValue)(&c.CookieSameSite), "cookie-samesite", "cookie SameSite `mode`: lax, strict or none")
	fs.BoolVar(&c.CookiePartitioned, "cookie-partitioned", c.CookiePartitioned, "set the cookie's Partitioned attribute (CHIPS)")
	fs.DurationVar(&c.Lifetime, "lifetime", c.Lifetime, "lifetime of a permanent session's cookie, and the longest any cookie is accepted")
	fs.BoolVar(&c.Refresh, "refresh", c.Refresh, "re-issue a permanent session's cookie on every request")
	fs.Var((*durabilityValue)(&c.Durability), "durability", "JetStream durability `mode`: default (ack before fsync) or strict (fsync every append); embedded NATS only")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "`count` of the JetStream stream's replicas (3 on a NATS cluster)")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long ops stay in a session's log after they are written")
	fs.IntVar(&c.MaxOpsPerSession, "max-ops-per-session", c.MaxOpsPerSession, "log entries one session may hold within the retention window (at least 2)")
	fs.IntVar(&c.SnapshotEvery, "snapshot-every", c.SnapshotEvery, "`entries` a session's log may grow by before it is compacted into one snapshot; 0 picks 64 (or a quarter of -max-ops-per-session, at least 1, when smaller), -1 never compacts")
	fs.Int64Var(&c.ReadLimit, "read-limit", c.ReadLimit, "largest client frame in `bytes`; larger frames close the socket with 1009")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "messages per second one socket may send")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "burst of the socket rate limit")
	fs.IntVar(&c.SendBuffer, "send-buffer", c.SendBuffer, "`messages` that may wait for one socket; past it the socket is closed with 4200")
	fs.IntVar(&c.SendBufferBytes, "send-buffer-bytes", c.SendBufferBytes, "`bytes` that may wait for one socket; past them, or when a frame write takes 10s, the socket is closed with 4200")
	fs.Float64Var(&c.SessionWriteRate, "session-write-rate", c.SessionWriteRate, "writes per second one session may append (a socket's set or delete is one, an HTTP request's entry one), all its sockets and HTTP requests on every instance together (then rate_limited)")
	fs.IntVar(&c.SessionWriteBurst, "session-write-burst", c.SessionWriteBurst, "burst of the session write budget")
	fs.IntVar(&c.SocketsPerSession, "max-sockets-per-session", c.SocketsPerSession, "sockets one session may have open on an instance (then 429)")
	fs.IntVar(&c.SocketsPerAddr, "max-sockets-per-addr", c.SocketsPerAddr, "sockets one client address may have open on an instance (then 429); 0 for no bound (behind a proxy every client shares its address)")
	fs.StringVar(&c.KeysFile, "keys-file", c.KeysFile, "`file` of key entries, as in "+EnvKeys+" (set one of them; with neither, a key is generated in the data directory)")
	fs.BoolVar(&c.LogJSON, "log-json", c.LogJSON, "log JSON lines instead of text")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "minimum log `level`: debug, info, warn or error")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics on this listen `address` (e.g. 127.0.0.1:9090) instead of -addr")
	fs.StringVar(&c.MetricsToken, "metrics-token", c.MetricsToken, "require \"Authorization: Bearer `token`\" on /metrics (prefer the environment variable: flags show in process lists)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "bound of reading one request, header and body (a slow client is cut off); upgraded sockets are not held to it")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound of a graceful shutdown on SIGINT or SIGTERM")
	fs.Int64Var(&c.GCHeadroom, "gc-headroom", c.GCHeadroom, "least `bytes` the heap grows by between two garbage collections (GOGC is raised while the live heap is small); 0 keeps Go's GOGC, as does a GOGC in the environment unless this is set too")
	return fs
}

// Flags lists the server's flags with their environment variables and
// Flask equivalents.
func Flags() []Flag {
	c := DefaultConfig()
	var out []Flag
	c.FlagSet("sessionhub").VisitAll(func(f *flag.Flag) {
		out = append(out, Flag{Name: f.Name, Env: EnvName(f.Name), Flask: flask[f.Name], Usage: f.Usage, Default: f.DefValue})
	})
	return out
}

// ApplyEnv sets every flag of fs whose environment variable is set (and
// not empty), before the command line is parsed: flags win over the
// environment, the environment over the defaults.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", env, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// ParseConfig parses the server's flags from args, on top of the
// environment (getenv) and the defaults, and validates the result. It
// returns the arguments left after the flags. Every error is printed to
// output (with the usage, for flag errors); -help returns flag.ErrHelp.
func ParseConfig(name string, args []string, getenv func(string) string, output io.Writer) (Config, []string, error) {
	c := DefaultConfig()
	fs := c.FlagSet(name)
	fs.SetOutput(output)
	fs.Usage = func() { PrintUsage(output, name) }
	if err := ApplyEnv(fs, getenv); err != nil {
		fmt.Fprintf(output, "%s: %v\n", name, err)
		return c, nil, err
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err // printed by the flag package
	}
	if getenv("GOGC") != "" && !isSet(fs, "gc-headroom") {
		c.GCHeadroom = 0 // the GOGC asked for is the one the process runs with
	}
	c.Keys = strings.TrimSpace(getenv(EnvKeys))
	c.ReadSecretsEnv(getenv)
	if err := c.Validate(); err != nil {
		fmt.Fprintf(output, "%s: %v\n", name, err)
		return c, nil, err
	}
	return c, fs.Args(), nil
}

// isSet reports whether flag name was set, on the command line or from
// the environment (ApplyEnv).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("-addr %q: %v", c.Addr, err)
	}
	if c.DataDir == "" {
		bad("-data is required")
	}
	for _, u := range c.NATS {
		if !strings.Contains(u, "://") && strings.Contains(u, "/") {
			bad("-nats %q: not a NATS URL", u)
		}
	}
	if err := c.NATSConn.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.NATS) == 0 && c.NATSConn != (natsconn.Options{}) {
		bad("NATS authentication and TLS settings need -nats (the embedded server takes neither)")
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(p, ""); err != nil {
			bad("-allowed-origins %q: %v", p, err)
		}
	}
	if c.CookieName == "" {
		bad("-cookie-name is required")
	}
	if !strings.HasPrefix(c.CookiePath, "/") {
		bad("-cookie-path %q: must start with /", c.CookiePath)
	}
	if c.Lifetime < time.Second {
		bad("-lifetime %v: at least 1s", c.Lifetime)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("-replicas %d: 1 to 5", c.Replicas)
	}
	if c.Retention < time.Second {
		bad("-retention %v: at least 1s", c.Retention)
	}
	if c.MaxOpsPerSession < 2 {
		bad("-max-ops-per-session %d: at least 2 (a snapshot and the write after it)", c.MaxOpsPerSession)
	}
	if c.SnapshotEvery < -1 || c.SnapshotEvery >= c.MaxOpsPerSession {
		bad("-snapshot-every %d: -1, 0, or below -max-ops-per-session (%d)", c.SnapshotEvery, c.MaxOpsPerSession)
	}
	if c.ReadLimit < 1024 {
		bad("-read-limit %d: at least 1024 bytes", c.ReadLimit)
	}
	if c.RateLimit <= 0 {
		bad("-rate-limit %v: must be positive", c.RateLimit)
	}
	if c.RateBurst < 1 {
		bad("-rate-burst %d: at least 1", c.RateBurst)
	}
	if c.SendBuffer < 1 {
		bad("-send-buffer %d: at least 1", c.SendBuffer)
	}
	if c.SendBufferBytes < 64<<10 {
		bad("-send-buffer-bytes %d: at least 65536", c.SendBufferBytes)
	}
	if c.SessionWriteRate <= 0 {
		bad("-session-write-rate %v: must be positive", c.SessionWriteRate)
	}
	if c.SessionWriteBurst < 1 {
		bad("-session-write-burst %d: at least 1", c.SessionWriteBurst)
	}
	if c.SocketsPerSession < 1 {
		bad("-max-sockets-per-session %d: at least 1", c.SocketsPerSession)
	}
	if c.SocketsPerAddr < 0 {
		bad("-max-sockets-per-addr %d: 0 (no bound) or more", c.SocketsPerAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("-metrics-addr %q: %v", c.MetricsAddr, err)
		}
	}
	if c.ReadTimeout < 100*time.Millisecond {
		bad("-read-timeout %v: at least 100ms", c.ReadTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("-shutdown-timeout %v: must be positive", c.ShutdownTimeout)
	}
	if c.GCHeadroom < 0 {
		bad("-gc-headroom %d: must not be negative", c.GCHeadroom)
	}
	if c.KeysFile != "" && c.Keys != "" {
		bad("both %s and -keys-file are set: use one", EnvKeys)
	}
	return errors.Join(errs...)
}

// SessionOptions returns the cookie store's options for keys.
func (c *Config) SessionOptions(keys []session.KeyPair) *session.Options {
	return &session.Options{
		Name:        c.CookieName,
		Domain:      c.CookieDomain,
		Path:        c.CookiePath,
		Secure:      c.CookieSecure,
		SameSite:    c.CookieSameSite,
		Partitioned: c.CookiePartitioned,
		Lifetime:    c.Lifetime,
		NoRefresh:   !c.Refresh,
		Keys:        keys,
	}
}

// PrintUsage writes the help text: the commands, then every flag with its
// environment variable and default.
func PrintUsage(w io.Writer, name string) {
	fmt.Fprintf(w, `Usage:
  %[1]s [flags]                  serve the demo, the hub and the bridge
  %[1]s keygen [-encrypt]        print a new key entry for %[2]s
  %[1]s inspect [flags] COOKIE   verify a session cookie and print its contents
  %[1]s proxy -upstream URL     put the hub in front of a Flask or Quart app (see docs/FLASK.md)

Keys: %[2]s holds comma-separated key entries, the first signs and all
verify (rotation); each is a standard-base64 hash key of at least 32 bytes,
optionally followed by ":" and a base64 AES block key of 16, 24 or 32 bytes.
Without a block key, cookies are signed but readable by whoever holds them
(sessionhub keygen -encrypt makes both). Without keys, one is generated and
kept in <data>/keys.

NATS secrets: %[3]s holds the password of -nats-user, %[4]s a
token; neither has a flag.

Flags (each also an environment variable; flags win):
`, name, EnvKeys, natsconn.EnvPassword, natsconn.EnvToken)
	c := DefaultConfig()
	fs := c.FlagSet(name)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%-34s %s\n", line, EnvName(f.Name))
		def := f.DefValue
		switch {
		case def == "":
			usage += " (default: none)"
		case f.Name == "data":
			usage += " (default: ./" + def + ")"
		default:
			usage += " (default: " + def + ")"
		}
		fmt.Fprintf(w, "      %s\n", usage)
	})
}

// listValue is a comma-separated list flag; setting it replaces the list.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

type sameSiteValue http.SameSite

func (v *sameSiteValue) String() string {
	switch http.SameSite(*v) {
	case http.SameSiteStrictMode:
		return "strict"
	case http.SameSiteNoneMode:
		return "none"
	}
	return "lax"
}

func (v *sameSiteValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "lax":
		*v = sameSiteValue(http.SameSiteLaxMode)
	case "strict":
		*v = sameSiteValue(http.SameSiteStrictMode)
	case "none":
		*v = sameSiteValue(http.SameSiteNoneMode)
	default:
		return errors.New("want lax, strict or none")
	}
	return nil
}

type durabilityValue natsserver.Durability

func (v *durabilityValue) String() string { return string(*v) }

func (v *durabilityValue) Set(s string) error {
	d, err := natsserver.ParseDurability(s)
	if err != nil {
		return errors.New("want default or strict")
	}
	*v = durabilityValue(d)
	return nil
}
