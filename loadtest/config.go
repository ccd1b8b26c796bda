package loadtest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sessionhub/sessionhub/internal/natsconn"
	"github.com/sessionhub/sessionhub/internal/protocol"
)

// Config is one load test run. The zero value is not useful: start from
// DefaultConfig, which is the short CI scenario.
type Config struct {
	// URLs of running hub instances (http://host:port). Empty: the run
	// starts its own nats-server and Instances hub instances on 127.0.0.1.
	URLs []string
	// Instances is how many hub instances the run starts. Default: 2.
	Instances int
	// NATSURL is the nats-server of the JetStream baselines when URLs is
	// set. Empty: the run starts a nats-server of its own for them.
	NATSURL string
	// NATSConn authenticates the connection to NATSURL and sets its TLS
	// (the servers the run starts take neither): the -nats-creds,
	// -nats-nkey, -nats-user and -nats-tls-* flags, the password and
	// token from SESSIONHUB_NATS_PASSWORD and SESSIONHUB_NATS_TOKEN.
	NATSConn natsconn.Options
	// Durability of the nats-server the run starts: "default" or "strict"
	// (sync_interval: always). Default: "default".
	Durability string
	// ServerBin is a prebuilt hub server binary taking cmd/sessionhub's
	// flags. Empty: go build ./cmd/sessionhub, or the fallback.
	ServerBin string
	// FallbackHub serves the hub instances with the loadtest's own
	// serve-hub mode (hub.New behind net/http) even when cmd/sessionhub
	// exists.
	FallbackHub bool
	// NATSBin is a prebuilt nats-server binary. Empty: go build it from
	// the nats-server/v2 module of go.mod.
	NATSBin string
	// KeepData keeps the run's directory (stores and server logs).
	KeepData bool

	// Hub settings passed to the instances the run starts.
	MaxOpsPerSession int     // Default: 2,000,000.
	HubRateLimit     float64 // messages per second per socket. Default: 100,000.
	SendBuffer       int     // Default: 0 (the hub's default).

	// Sessions, Sockets per session (tabs), and Writers among them (the
	// first sockets of each session). Default: 50, 3, 1.
	Sessions int
	Sockets  int
	Writers  int
	// Keys the writers set, writer i the key Keys[i%len(Keys)]. They must
	// be client-writable and client-readable, and accept the load's
	// values ("x-s1-w0-n42", a private-use BCP 47 language tag).
	// Default: ["language"], the demo's.
	Keys []string
	// Rate of set ops per writer per second (open loop); 0 is a closed
	// loop, each writer sending its next op once the last one is
	// answered. Default: 20.
	Rate float64
	// MaxInflight bounds a writer's unanswered ops in open loop; past it
	// ops are skipped, not queued. Default: 1000.
	MaxInflight int
	// Duration of the load. Default: 10s.
	Duration time.Duration
	// Ops stops the load once this many ops were acknowledged (Duration
	// still bounds it). Default: 0, none.
	Ops int64
	// FlushEvery is how often each session POSTs /hub/flush during the
	// load. Default: 1s.
	FlushEvery time.Duration

	// KillInstance SIGKILLs one hub instance at this point of the load
	// and restarts it. Negative: at half of Duration. Zero: no kill.
	// Default: -1 (half).
	KillInstance time.Duration
	// RestartNATS stops nats-server with NATSSignal at this point of the
	// load and restarts it (same port and store). Default: 0, none.
	RestartNATS time.Duration
	NATSSignal  string // "kill" or "term". Default: "kill".

	// Cluster is the NATS cluster scenario (-nats-cluster and its faults).
	Cluster ClusterConfig

	// Baselines measures the machine's baselines in the same run.
	// Default: true.
	Baselines bool
	// Concurrency of the HTTP throughput phases (hello baseline and
	// flush). Default: 32.
	Concurrency int
	// PhaseDuration of each throughput phase. Default: 3s.
	PhaseDuration time.Duration
	// IdleSockets opens this many idle sockets, each its own session, on
	// one instance at the end to measure memory per socket. Default: 500.
	IdleSockets int

	// JSONPath and HTMLPath, when set, receive the JSON report and the
	// HTML latency plot.
	JSONPath string
	HTMLPath string
	// CPUProfile, when set, receives the load generator's own CPU profile
	// (is the generator the bottleneck?).
	CPUProfile string

	// HubProtocol is the WebSocket subprotocol the sockets ask for, as the
	// browser client does; empty: none (one message per frame).
	// Default: "sessionhub.v2".
	HubProtocol string

	// Peer, when named, makes the run a side-by-side one (see PeerConfig).
	Peer PeerConfig
	// HubArgs are more flags for the hub instances the run starts (e.g.
	// "-snapshot-every -1"). Default: none.
	HubArgs []string

	// debugPorts are the hub instances' profiler ports (-debug-addr), set
	// by a run that profiles them.
	debugPorts []int
}

// hubNATSEmbedded reports whether the hub instance starts without -nats,
// running its own nats-server in its process: a -peer run with
// PeerConfig.NATS embedded.
func (c *Config) hubNATSEmbedded() bool {
	return c.Peer.Name != "" && c.Peer.NATS == natsEmbedded
}

// DefaultConfig returns the short default scenario: 2 instances, 50
// sessions of 3 sockets (one writer at 20 ops/s), 10 seconds, one
// instance killed at half time.
func DefaultConfig() Config {
	return Config{
		Instances:        2,
		Durability:       "default",
		MaxOpsPerSession: 2_000_000,
		HubRateLimit:     100_000,
		Sessions:         50,
		Sockets:          3,
		Writers:          1,
		Keys:             []string{"language"},
		Rate:             20,
		MaxInflight:      1000,
		Duration:         10 * time.Second,
		FlushEvery:       time.Second,
		KillInstance:     -1,
		NATSSignal:       "kill",
		Cluster:          ClusterConfig{Pause: 2 * time.Second},
		Baselines:        true,
		Concurrency:      32,
		PhaseDuration:    3 * time.Second,
		IdleSockets:      500,
		HubProtocol:      protocol.Subprotocol,
		Peer:             defaultPeerConfig(),
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.URLs) == 0 && c.Instances < 1 {
		errs = append(errs, errors.New("-instances must be at least 1"))
	}
	if c.Durability != "default" && c.Durability != "strict" {
		errs = append(errs, fmt.Errorf("-durability %q: want default or strict", c.Durability))
	}
	if c.Sessions < 1 || c.Sockets < 1 || c.Writers < 0 || c.Writers > c.Sockets {
		errs = append(errs, errors.New("want -sessions ≥ 1, -sockets ≥ 1, 0 ≤ -writers ≤ -sockets"))
	}
	if len(c.Keys) == 0 {
		errs = append(errs, errors.New("-keys must name at least one key"))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if c.NATSSignal != "kill" && c.NATSSignal != "term" {
		errs = append(errs, fmt.Errorf("-nats-signal %q: want kill or term", c.NATSSignal))
	}
	if len(c.URLs) > 0 && (c.KillInstance > 0 || c.RestartNATS > 0) {
		errs = append(errs, errors.New("-kill-instance and -restart-nats need the servers the run starts (no -urls)"))
	}
	errs = append(errs, c.validateCluster())
	if err := c.NATSConn.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.NATSConn != (natsconn.Options{}) && (len(c.URLs) == 0 || c.NATSURL == "") {
		errs = append(errs, errors.New("NATS authentication and TLS settings need -urls and -nats (the servers the run starts take neither)"))
	}
	if c.MaxInflight < 1 {
		c.MaxInflight = 1
	}
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	errs = append(errs, c.Peer.validate())
	return errors.Join(errs...)
}

// instances is how many hub instances the run talks to.
func (c *Config) instances() int {
	if len(c.URLs) > 0 {
		return len(c.URLs)
	}
	return c.Instances
}

// killAt is when the instance kill happens, 0 for none.
func (c *Config) killAt() time.Duration {
	if len(c.URLs) > 0 || c.KillInstance == 0 {
		return 0
	}
	if c.KillInstance < 0 {
		return c.Duration / 2
	}
	return c.KillInstance
}

// parseFlags fills cfg from the command line.
func parseFlags(cfg *Config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: loadtest [flags]

Starts nats-server and hub instances on 127.0.0.1 (or uses -urls), runs
sessions x sockets against them with faults, checks that no acknowledged
op is lost, and reports latency and throughput next to this machine's
baselines. Exits 1 when an acknowledged op was lost.

`)
		fs.PrintDefaults()
	}
	urls := fs.String("urls", "", "comma-separated URLs of running hub instances (http://host:port); empty: start servers")
	keys := fs.String("keys", strings.Join(cfg.Keys, ","), "comma-separated client-writable, client-readable keys the writers set")
	fs.IntVar(&cfg.Instances, "instances", cfg.Instances, "hub instances to start")
	fs.StringVar(&cfg.NATSURL, "nats", cfg.NATSURL, "with -urls: the comma-separated nats-server URLs of the JetStream baselines (empty: start one)")
	cfg.NATSConn.AddFlags(fs)
	cfg.Cluster.addFlags(fs)
	fs.StringVar(&cfg.Durability, "durability", cfg.Durability, "JetStream durability of the started nats-server: default or strict (sync_interval: always)")
	fs.StringVar(&cfg.ServerBin, "server-bin", cfg.ServerBin, "prebuilt hub server binary with cmd/sessionhub's flags (empty: go build ./cmd/sessionhub)")
	fs.BoolVar(&cfg.FallbackHub, "fallback-hub", cfg.FallbackHub, "serve hub instances with the loadtest's own serve-hub mode even when cmd/sessionhub exists")
	fs.StringVar(&cfg.NATSBin, "nats-bin", cfg.NATSBin, "prebuilt nats-server binary (empty: go build it)")
	fs.BoolVar(&cfg.KeepData, "keep", cfg.KeepData, "keep the run's directory: stores and server logs")
	fs.IntVar(&cfg.MaxOpsPerSession, "max-ops-per-session", cfg.MaxOpsPerSession, "hub flag for the started instances")
	fs.Float64Var(&cfg.HubRateLimit, "hub-rate-limit", cfg.HubRateLimit, "hub -rate-limit (messages/s per socket) for the started instances")
	fs.IntVar(&cfg.SendBuffer, "send-buffer", cfg.SendBuffer, "hub -send-buffer for the started instances (0: the hub's default)")
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "sessions")
	fs.IntVar(&cfg.Sockets, "sockets", cfg.Sockets, "sockets (tabs) per session, spread over the instances")
	fs.IntVar(&cfg.Writers, "writers", cfg.Writers, "writer sockets per session")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "set ops per second per writer (open loop); 0: closed loop")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "open loop: unanswered ops per writer past which ops are skipped")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "duration of the load")
	fs.Int64Var(&cfg.Ops, "ops", cfg.Ops, "stop the load after this many acknowledged ops (0: duration only)")
	fs.DurationVar(&cfg.FlushEvery, "flush-every", cfg.FlushEvery, "POST /hub/flush of each session this often during the load (0: only at the end)")
	fs.DurationVar(&cfg.KillInstance, "kill-instance", cfg.KillInstance, "SIGKILL one hub instance at this point of the load and restart it (negative: at half the duration; 0: never)")
	fs.DurationVar(&cfg.RestartNATS, "restart-nats", cfg.RestartNATS, "restart nats-server at this point of the load (0: never)")
	fs.StringVar(&cfg.NATSSignal, "nats-signal", cfg.NATSSignal, "how -restart-nats stops nats-server: kill (SIGKILL) or term (SIGTERM)")
	fs.BoolVar(&cfg.Baselines, "baselines", cfg.Baselines, "measure the baselines (WebSocket echo, JetStream publish, net/http hello)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent clients of the hello and flush throughput phases")
	fs.DurationVar(&cfg.PhaseDuration, "phase-duration", cfg.PhaseDuration, "duration of each throughput phase")
	fs.IntVar(&cfg.IdleSockets, "idle-sockets", cfg.IdleSockets, "idle sockets to open on one instance for memory per socket (0: skip)")
	fs.StringVar(&cfg.JSONPath, "json", cfg.JSONPath, "write the JSON report to this file")
	fs.StringVar(&cfg.HTMLPath, "html", cfg.HTMLPath, "write the HTML latency plot to this file")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", cfg.CPUProfile, "write the load generator's own CPU profile to this file")
	fs.StringVar(&cfg.HubProtocol, "hub-protocol", cfg.HubProtocol, "WebSocket subprotocol the sockets ask for (empty: none, one message per frame)")
	hubArgs := fs.String("hub-args", "", "more flags for the started hub instances, space-separated (e.g. \"-snapshot-every -1\")")
	peerFlags(fs, &cfg.Peer)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg.URLs = splitList(*urls)
	for i, u := range cfg.URLs {
		cfg.URLs[i] = strings.TrimRight(u, "/")
	}
	cfg.Keys = splitList(*keys)
	cfg.NATSConn.ReadEnv(os.Getenv)
	cfg.HubArgs = strings.Fields(*hubArgs)
	return cfg.validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
