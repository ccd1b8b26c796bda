package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// Hidden subcommands of cmd/loadtest: the servers a run starts as
// separate processes when nothing else provides them.
const (
	serveHubCmd      = "serve-hub"
	serveBaselineCmd = "serve-baseline"
)

// loadKeys reads the signing keys as cmd/sessionhub does (the same
// parser: hash keys and optional AES block keys) from SESSIONHUB_KEYS; a
// fresh key when it is unset.
func loadKeys() ([]session.KeyPair, error) {
	env := strings.TrimSpace(os.Getenv(server.EnvKeys))
	if env == "" {
		return []session.KeyPair{session.GenerateKeyPair(false)}, nil
	}
	keys, err := server.ParseKeys(env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server.EnvKeys, err)
	}
	return keys, nil
}

// loadKeyPolicy is what the fallback hub lets the load generator write:
// "language" as in the demo and "note", any JSON string up to 256 bytes,
// both readable.
func loadKeyPolicy() map[string]hub.KeyPolicy {
	str := func(v json.RawMessage) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || len(s) > 256 {
			return errors.New("want a string of at most 256 bytes")
		}
		return nil
	}
	return map[string]hub.KeyPolicy{
		"note":     {Read: true, Write: true, Validate: str},
		"language": {Read: true, Write: true, Validate: str},
	}
}

// serveHub runs a hub instance with cmd/sessionhub's flags: the fallback
// while the tree has no cmd/sessionhub (and with -fallback-hub).
func serveHub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(serveHubCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	data := fs.String("data", "sessionhub-data", "data directory (embedded NATS store)")
	natsURL := fs.String("nats", "", "NATS URLs; empty: embedded nats-server")
	durability := fs.String("durability", "default", "default or strict")
	maxOps := fs.Int("max-ops-per-session", 0, "hub.Options.MaxOpsPerSession")
	rateLimit := fs.Float64("rate-limit", 0, "hub.Options.RateLimit (messages per second per socket)")
	rateBurst := fs.Int("rate-burst", 0, "hub.Options.RateBurst")
	sendBuffer := fs.Int("send-buffer", 0, "hub.Options.SendBuffer")
	sessionRate := fs.Float64("session-write-rate", 0, "hub.Options.SessionWriteRate")
	sessionBurst := fs.Int("session-write-burst", 0, "hub.Options.SessionWriteBurst")
	replicas := fs.Int("replicas", 0, "hub.Options.Replicas")
	debugAddr := fs.String("debug-addr", "", "the Go profiler's listen address (net/http/pprof); empty: at /debug/pprof/ on -addr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dur, err := natsserver.ParseDurability(*durability)
	if err != nil {
		return err
	}
	keys, err := loadKeys()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Profiling the hub's hot paths (127.0.0.1 only): on its own address
	// when asked, listened on first, so that an address in use fails
	// before the hub starts.
	var debug *http.ServeMux
	if *debugAddr != "" {
		ln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			return err
		}
		debug = http.NewServeMux()
		srv := &http.Server{Handler: debug, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}

	var nc *nats.Conn
	if *natsURL == "" {
		ns, err := natsserver.Start(natsserver.Options{StoreDir: *data, DontListen: true, Durability: dur})
		if err != nil {
			return err
		}
		defer ns.Close()
		if nc, err = ns.Connect("sessionhub"); err != nil {
			return err
		}
	} else {
		nc, err = nats.Connect(*natsURL, nats.Name("sessionhub"), nats.MaxReconnects(-1),
			nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
		if err != nil {
			return err
		}
	}
	defer nc.Close()
	store, err := session.NewStore(&session.Options{Keys: keys})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h, err := hub.New(ctx, &hub.Options{
		Store: store, Conn: nc, ClientKeys: loadKeyPolicy(), Logger: log,
		MaxOpsPerSession: *maxOps, RateLimit: *rateLimit, RateBurst: *rateBurst, SendBuffer: *sendBuffer, Replicas: *replicas,
		SessionWriteRate: *sessionRate, SessionWriteBurst: *sessionBurst,
	})
	cancel()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/hub/", h)
	mux.HandleFunc("GET /metrics", serveMemMetrics)
	if debug == nil {
		debug = mux
	}
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	debug.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return serve(*addr, mux, "sessionhub", stdout, func(ctx context.Context) { _ = h.Shutdown(ctx); _ = h.Close() })
}

// serveMemMetrics writes the Go memory gauges in Prometheus text format,
// the few lines of cmd/sessionhub's /metrics the load generator reads.
func serveMemMetrics(w http.ResponseWriter, _ *http.Request) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes %d\ngo_memstats_sys_bytes %d\ngo_goroutines %d\n",
		m.HeapInuse, m.StackInuse, m.Sys, runtime.NumGoroutine())
}

// serveBaseline runs the baseline server: a coder/websocket echo at
// /echo and a bare hello handler at /hello.
func serveBaseline(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(serveBaselineCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	})
	mux.HandleFunc("/echo", echo)
	return serve(*addr, mux, "baseline", stdout, nil)
}

// echo writes every message back.
func echo(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx := r.Context()
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := ws.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// serve listens, prints "<name> listening on http://ADDR", and serves
// until SIGINT or SIGTERM.
func serve(addr string, h http.Handler, name string, stdout io.Writer, shutdown func(context.Context)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if shutdown != nil {
		srv.RegisterOnShutdown(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shutdown(ctx)
		})
	}
	fmt.Fprintf(stdout, "%s listening on http://%s\n", name, ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-sig:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
}
