package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/demo"
	"github.com/sessionhub/sessionhub/internal/origin"
	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
	"github.com/sessionhub/sessionhub/web"
)

// ListeningMessage starts the log line that tells where the server
// listens; the URL follows it. Scripts and tests parse it.
const ListeningMessage = "sessionhub listening on "

// Server is the sessionhub server: NATS (embedded or external), the hub at
// /hub/, the demo app, /healthz and /metrics on one HTTP listener (or
// /metrics on its own, with MetricsAddr). Start
// it, then Shutdown (or Close) it.
type Server struct {
	cfg Config
	app *App // nil: the demo
	log *slog.Logger

	store     *session.Store
	ns        *natsserver.Server // nil with external NATS
	nc        *nats.Conn
	ncDone    chan struct{} // closed once nc is closed
	ncOnce    sync.Once
	js        jetstream.JetStream
	hub       *hub.Hub
	metrics   *Metrics
	http      *http.Server
	ln        net.Listener
	url       string
	debug     *http.Server // the profiler's listener (Config.DebugAddr), nil without
	debugAddr net.Addr

	metricsHTTP *http.Server // nil unless MetricsAddr is set
	metricsLn   net.Listener
	metricsURL  string

	serveErr  chan error
	closing   atomic.Bool
	stopOnce  sync.Once
	stopErr   error
	hubMu     sync.Mutex
	hubCtx    context.Context // bounds the hub's shutdown, set by Shutdown
	hubClosed chan struct{}   // closed once the hub's sockets are closed
}

// New returns a server for cfg that serves the demo beside the hub;
// logger receives its logs (default slog.Default()).
func New(cfg Config, logger *slog.Logger) *Server {
	return NewApp(cfg, nil, logger)
}

// App is what a Server serves in place of the demo: sessionhub proxy's
// reverse proxy in front of a Flask or Quart app.
type App struct {
	// Keys are the hub's client key policies.
	Keys map[string]hub.KeyPolicy
	// FlaskSecrets, when set, switch the cookie to Flask's format with
	// these secrets (session.Options.FlaskSecrets) instead of the
	// configured keys.
	FlaskSecrets [][]byte
	// CheckOp refuses ops of the server API (see APIOptions.CheckOp).
	CheckOp func(session.Op) error
	// Handler builds the handler of every path outside /hub/.
	Handler func(store *session.Store, h *hub.Hub) (http.Handler, error)
}

// NewApp returns a server for cfg that serves app beside the hub (the
// demo when app is nil). With an app, health and metrics move to
// /hub/healthz and /hub/metrics, and the browser client is served at
// /hub/sessionhub.js: every other path is the app's.
func NewApp(cfg Config, app *App, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{cfg: cfg, app: app, log: logger, serveErr: make(chan error, 1), hubClosed: make(chan struct{})}
}

// Start starts NATS, the hub and the HTTP server, and returns once the
// server accepts connections (URL tells where). On failure, everything
// started is stopped again.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.cleanup(ctx)
		}
	}()
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	var sopts *session.Options
	if s.app != nil && len(s.app.FlaskSecrets) > 0 {
		sopts = s.cfg.SessionOptions(nil)
		sopts.FlaskSecrets = s.app.FlaskSecrets
	} else {
		keys, src, err := LoadKeys(&s.cfg, true, s.log)
		if err != nil {
			return err
		}
		s.log.Debug("signing keys loaded", "source", src, "keys", len(keys))
		sopts = s.cfg.SessionOptions(keys)
	}
	if s.store, err = session.NewStore(sopts); err != nil {
		return err
	}
	policies := demo.Keys()
	if s.app != nil {
		policies = s.app.Keys
	}
	if err := s.startNATS(); err != nil {
		return err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	s.metrics = NewMetrics()
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.hub, err = hub.New(hctx, &hub.Options{
		Store:            s.store,
		Conn:             s.nc,
		ClientKeys:       policies,
		AllowedOrigins:   s.cfg.AllowedOrigins,
		Replicas:         s.cfg.Replicas,
		Retention:        s.cfg.Retention,
		MaxOpsPerSession: s.cfg.MaxOpsPerSession,
		SnapshotEvery:    s.cfg.SnapshotEvery,
		ReadLimit:        s.cfg.ReadLimit,
		RateLimit:        s.cfg.RateLimit,
		RateBurst:        s.cfg.RateBurst,
		SendBuffer:       s.cfg.SendBuffer,

		SendBufferBytes:      s.cfg.SendBufferBytes,
		SessionWriteRate:     s.cfg.SessionWriteRate,
		SessionWriteBurst:    s.cfg.SessionWriteBurst,
		MaxSocketsPerSession: s.cfg.SocketsPerSession,
		MaxSocketsPerAddr:    s.cfg.SocketsPerAddr,
		Logger:               s.log,
		Metrics:              s.metrics,
	})
	if err != nil {
		return err
	}
	handler, err := s.routes()
	if err != nil {
		return err
	}
	s.http = s.httpServer(handler)
	// http.Server.Shutdown does not see hijacked connections: the hub
	// closes its sockets with 1001 itself.
	s.http.RegisterOnShutdown(func() {
		defer close(s.hubClosed)
		s.hubMu.Lock()
		ctx := s.hubCtx
		s.hubMu.Unlock()
		if ctx == nil {
			ctx = context.Background()
		}
		if err := s.hub.Shutdown(ctx); err != nil {
			s.log.Warn("hub shutdown", "err", err)
		}
	})
	if s.ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
		return err
	}
	if err := s.startDebug(); err != nil {
		s.ln.Close()
		return err
	}
	s.url = "http://" + displayAddr(s.ln.Addr())
	if s.cfg.MetricsAddr != "" {
		if s.metricsLn, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			_ = s.ln.Close()
			return fmt.Errorf("-metrics-addr: %w", err)
		}
		s.metricsURL = "http://" + displayAddr(s.metricsLn.Addr())
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metricsHandler())
		s.metricsHTTP = s.httpServer(mux)
		go func() {
			if err := s.metricsHTTP.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener stopped", "err", err)
			}
		}()
		s.log.Info("metrics on "+s.metricsURL+"/metrics", "addr", s.metricsLn.Addr().String())
	}
	go func() {
		err := s.http.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	s.log.Info(ListeningMessage+s.url, "addr", s.ln.Addr().String(), "nats", s.natsDescription(), "durability", s.cfg.Durability)
	return nil
}

// startNATS starts the embedded server, or connects to the external ones.
func (s *Server) startNATS() error {
	s.ncDone = make(chan struct{})
	opts := []nats.Option{
		nats.Name("sessionhub"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DrainTimeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("NATS disconnected; HTTP serves plain cookie sessions, socket writes answer unavailable", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { s.ncClosed() }),
	}
	if len(s.cfg.NATS) > 0 {
		s.log.Info("durability is the external NATS servers' setting: strict needs sync_interval: always in their JetStream configuration",
			"requested", s.cfg.Durability)
		nc, err := s.cfg.NATSConn.Connect(s.cfg.NATS, opts...)
		if err != nil {
			s.ncClosed()
			return err
		}
		s.nc = nc
		return nil
	}
	ns, err := natsserver.Start(natsserver.Options{
		StoreDir:   filepath.Join(s.cfg.DataDir, "nats"),
		DontListen: true,
		Durability: s.cfg.Durability,
	})
	if err != nil {
		s.ncClosed()
		return err
	}
	s.ns = ns
	nc, err := nats.Connect("", append(opts, ns.InProcess()...)...)
	if err != nil {
		s.ncClosed()
		return fmt.Errorf("nats: in-process connection: %w", err)
	}
	s.nc = nc
	return nil
}

func (s *Server) ncClosed() { s.ncOnce.Do(func() { close(s.ncDone) }) }

func (s *Server) natsDescription() string {
	if s.ns != nil {
		return "embedded (" + filepath.Join(s.cfg.DataDir, "nats") + ")"
	}
	return s.nc.ConnectedUrlRedacted()
}

// routes returns the server's handler: the hub, the bridge, the demo,
// health and metrics, each counted under its route name.
func (s *Server) routes() (http.Handler, error) {
	m := s.metrics
	mux := http.NewServeMux()
	mux.Handle("/hub/ws", m.Instrument("ws", s.hub))
	mux.Handle("/hub/flush", m.Instrument("flush", s.hub))
	var checkOp func(session.Op) error
	if s.app != nil {
		checkOp = s.app.CheckOp
	}
	mux.Handle("/hub/api/", m.Instrument("server_api", API(APIOptions{Hub: s.hub, Token: s.cfg.APIToken, CheckOp: checkOp, Logger: s.log})))
	mux.Handle("/hub/", m.Instrument("hub", s.hub))
	if s.app != nil {
		if err := s.appRoutes(mux); err != nil {
			return nil, err
		}
	} else if err := s.demoRoutes(mux); err != nil {
		return nil, err
	}
	if s.cfg.TrustProxy {
		return origin.TrustForwardedProto(mux), nil
	}
	return mux, nil
}

// appRoutes mounts an App (proxy mode): the hub's own endpoints under
// /hub/, every other path the app's.
func (s *Server) appRoutes(mux *http.ServeMux) error {
	m := s.metrics
	app, err := s.app.Handler(s.store, s.hub)
	if err != nil {
		return err
	}
	mux.Handle("GET /hub/healthz", m.Instrument("healthz", http.HandlerFunc(s.healthz)))
	if s.cfg.MetricsAddr == "" {
		mux.Handle("GET /hub/metrics", s.metricsHandler())
	}
	mux.Handle("GET /hub/sessionhub.js", m.Instrument("client", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, web.FS(), "sessionhub.js")
	})))
	mux.Handle("/", m.Instrument("app", app))
	return nil
}

// demoRoutes mounts the demo app, health and metrics.
func (s *Server) demoRoutes(mux *http.ServeMux) error {
	m := s.metrics
	app, err := demo.New(&demo.Options{
		Store:  s.store,
		Hub:    s.hub,
		Logger: s.log,
	})
	if err != nil {
		return err
	}
	mux.Handle("GET /healthz", m.Instrument("healthz", http.HandlerFunc(s.healthz)))
	if s.cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	mux.Handle("/static/", m.Instrument("static", app))
	mux.Handle("/api/", m.Instrument("api", app))
	mux.Handle("/login", m.Instrument("login", app))
	mux.Handle("/logout", m.Instrument("logout", app))
	mux.Handle("/", m.Instrument("page", app))
	return nil
}

// metricsHandler serves the metrics, behind the bearer token when one is
// configured (401 without it).
func (s *Server) metricsHandler() http.Handler {
	h := s.metrics.Handler()
	if token := s.cfg.MetricsToken; token != "" {
		want := sha256.Sum256([]byte(token))
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := bearer(r, want); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				protocol.WriteCode(w, protocol.CodeUnauthorized, "metrics need a bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return s.metrics.Instrument("metrics", h)
}

// Health is the body of /healthz.
type Health struct {
	Status     string `json:"status"` // ok, unavailable or shutting_down
	NATS       string `json:"nats"`   // embedded or external, and the connection's state
	JetStream  string `json:"jetstream"`
	Durability string `json:"durability"`
	Error      string `json:"error,omitempty"`
}

// healthz answers 200 when NATS is connected and JetStream answers, 503
// otherwise (and while shutting down).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", NATS: "external", JetStream: "ok", Durability: string(s.cfg.Durability)}
	if s.ns != nil {
		h.NATS = "embedded"
	}
	h.NATS += ", " + strings.ToLower(s.nc.Status().String())
	status := http.StatusOK
	switch {
	case s.closing.Load():
		h.Status, status = "shutting_down", http.StatusServiceUnavailable
	case !s.nc.IsConnected():
		h.Status, h.JetStream, status = "unavailable", "unknown", http.StatusServiceUnavailable
	default:
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.js.AccountInfo(ctx); err != nil {
			h.Status, h.JetStream, h.Error, status = "unavailable", "unavailable", err.Error(), http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(h)
}

// URL returns the server's base URL, e.g. http://127.0.0.1:8080.
func (s *Server) URL() string { return s.url }

// MetricsURL returns the base URL of the metrics listener, or "" when
// /metrics is served at URL.
func (s *Server) MetricsURL() string { return s.metricsURL }

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Hub returns the server's hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Store returns the server's session store.
func (s *Server) Store() *session.Store { return s.store }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Err returns a channel that receives the HTTP server's error if it stops
// serving by itself (nil after Shutdown).
func (s *Server) Err() <-chan error { return s.serveErr }

// Shutdown stops the server gracefully within ctx: it stops accepting
// connections, closes every socket with 1001 (clients reconnect and
// resume), waits for HTTP requests in flight, drains the NATS connection
// and shuts the embedded NATS server down. Past ctx's deadline, what is
// left is closed at once. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

// Close stops the server at once, within a second for what needs one.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

func (s *Server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	start := time.Now()
	var errs []error
	if s.metricsHTTP != nil {
		if err := s.metricsHTTP.Shutdown(ctx); err != nil {
			_ = s.metricsHTTP.Close()
		}
	}
	if s.http != nil {
		s.hubMu.Lock()
		s.hubCtx = ctx
		s.hubMu.Unlock()
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
			_ = s.http.Close()
		}
		select {
		case <-s.hubClosed:
		case <-ctx.Done():
		}
	}
	if s.debug != nil {
		_ = s.debug.Close()
	}
	s.cleanup(ctx)
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	s.log.Info("sessionhub stopped", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// cleanup closes the hub, drains NATS and stops the embedded server;
// past ctx, it closes rather than waits.
func (s *Server) cleanup(ctx context.Context) {
	if s.hub != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.hub.Close()
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("hub did not close in time")
		}
	}
	if s.nc != nil {
		if ctx.Err() != nil || s.nc.Drain() != nil {
			s.nc.Close()
		}
		select {
		case <-s.ncDone:
		case <-ctx.Done():
			s.nc.Close()
		}
	}
	if s.ns != nil {
		s.ns.Close()
	}
}

// displayAddr spells a listener's address for a URL: an unspecified host
// (all interfaces) as 127.0.0.1, so that the URL can be opened.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// httpServer is the HTTP server of a listener: reading one request is
// bounded by the read timeout, its header by at most
// MaxReadHeaderTimeout. ReadTimeout covers the body too, so a client
// trickling one is cut off; the deadline it sets on the connection is
// cleared when a socket hijacks it, so sockets are not held to it.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadTimeout:       s.cfg.ReadTimeout,
		ReadHeaderTimeout: min(s.cfg.ReadTimeout, MaxReadHeaderTimeout),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}
