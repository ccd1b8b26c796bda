package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sessionhub/sessionhub/session"
)

// Options configures a Hub. Store and Conn are required; every other
// field has a default, written in its comment.
type Options struct {
	// Store is the session cookie store the hub reads the handshake's cookie
	// with and writes the 101 response's cookie with. Required.
	Store *session.Store
	// Conn is the NATS connection (JetStream enabled on its server).
	// Required. The hub does not close it. New puts the hub's async error
	// handler in front of the connection's (which it still calls), to
	// learn of live changes nats.go drops as a slow consumer, and listens
	// to its reconnections.
	Conn *nats.Conn
	// ClientKeys lists the session keys the browser may read or write, each
	// with its policy. Default: none, so the browser reads nothing and
	// every client set is forbidden.
	ClientKeys map[string]KeyPolicy

	// Prefix is the path prefix of the socket and the bridge.
	// Default: "/hub" (so "/hub/ws" and "/hub/flush").
	Prefix string
	// AllowedOrigins are origin patterns (path.Match syntax) allowed to
	// open sockets and call the bridge besides the page's own origin (the
	// request's scheme, host and port): a pattern holding "://" is matched
	// against the Origin's scheme://host[:port], any other against its
	// host[:port] on the request's own scheme only. Default: none other.
	AllowedOrigins []string

	// RevocationBucket is the JetStream key-value bucket recording ended
	// sessions, each for the cookie lifetime (Store's Lifetime and
	// ClockSkew, plus a minute), so a logout outlives the log's retention
	// and its limits. Default: Stream + "_REVOKED".
	RevocationBucket string
	// Stream is the JetStream stream holding the logs. Default: "SESSIONHUB".
	Stream string
	// Subject is the subject prefix: logs on <Subject>.ops.<id>, live
	// changes on <Subject>.live.<id>, control on <Subject>.ctl.<id>,
	// recorded logouts on <Subject>.revoked.<id> (the revocation bucket's
	// republish). Default: "sessionhub".
	Subject string
	// Replicas of the stream (3 on a NATS cluster). Default: 1.
	Replicas int
	// MemoryStorage keeps the stream in memory (tests). Default: false
	// (file storage).
	MemoryStorage bool
	// Retention is how long an op stays in the log after it was written,
	// flushed or not, so a stale cookie still finds it. Default: 24h.
	Retention time.Duration
	// MaxOpsPerSession bounds the entries one session's log holds within
	// the retention window; past it, writes fail with too_many_pending.
	// At least 2: a full log is compacted into one snapshot, and the write
	// that found it full lands after it. Default: 10000.
	MaxOpsPerSession int
	// MaxEntrySize bounds one log entry in bytes. Default: 64 KiB.
	MaxEntrySize int
	// WriteTimeout bounds one JetStream round trip. Default: 5s.
	WriteTimeout time.Duration

	// ReadLimit is the largest client frame; a larger one closes the
	// socket with 1009. Default: 32 KiB.
	ReadLimit int64
	// RateLimit is the sustained messages per second one socket may send;
	// RateBurst the burst. Past it: the error rate_limited. Default: 50
	// per second, burst 100.
	RateLimit float64
	RateBurst int
	// SessionWriteRate is the sustained writes per second one session may
	// append, all its writers together (sockets, HTTP requests and
	// Hub.Write, on every instance); SessionWriteBurst the burst. A
	// socket's set or delete is one write, even in an entry batching
	// several (pipeline.go); any other entry is one. Each instance's view
	// of the session debits every entry it sees, whoever wrote it, so the
	// budget is shared through the log itself. Past it:
	// rate_limited. Snapshots are not writes and logouts are never
	// refused. Default: 20 per second, burst 200.
	SessionWriteRate  float64
	SessionWriteBurst int
	// SendBuffer is how many messages may wait for one socket; a socket
	// whose buffer is full is closed with CloseTooSlow (4200) while everyone
	// else keeps receiving. Default: 256.
	SendBuffer int
	// SendBufferBytes bounds the bytes waiting for one socket (the messages
	// queued and the frame being written); past it the socket is closed
	// with CloseTooSlow. A single message larger than it is still sent
	// alone. Default: 1 MiB.
	SendBufferBytes int
	// SocketKernelBuffer is the kernel send buffer (SO_SNDBUF) of a
	// socket's TCP connection (under its TLS, if any), so that a client
	// that stops reading pins at most about this much of its data in
	// kernel memory before the frame write blocks and WriteWait closes it
	// with CloseTooSlow. Linux reserves twice the value, the other half for
	// its bookkeeping, and reports that. Default: 64 KiB.
	SocketKernelBuffer int
	// MaxSocketsPerSession bounds the sockets one session may have open on
	// this instance; a handshake past it gets 429 with Retry-After and no
	// cookie. Default: 32.
	MaxSocketsPerSession int
	// MaxSocketsPerAddr bounds the sockets one client address (the
	// request's RemoteAddr host) may have open on this instance; a
	// handshake past it gets 429. Behind a proxy every client has the
	// proxy's address, so it is off by default. Default: 0 (no bound).
	MaxSocketsPerAddr int
	// PingInterval is how often the hub pings an idle socket; a pong must
	// arrive within PingTimeout. Default: 25s and 10s.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// WriteWait bounds writing one frame to a socket; a frame not written
	// in time (a client that stopped reading) closes it with CloseTooSlow.
	// The close handshake is bounded by it too. Default: 10s.
	WriteWait time.Duration
	// ViewIdle is how long a session's view (its cached log tail and NATS
	// subscription) outlives its last socket or request. Default: 2m.
	ViewIdle time.Duration
	// ViewTail is how many recent entries a view keeps in memory to serve
	// folds and resumes without JetStream. Default: 64.
	ViewTail int
	// SnapshotEvery is how long a session's log may grow before it is
	// compacted: once this instance's view of a session has seen this
	// many entries since the log's last snapshot, the next append through
	// this instance starts a snapshot, one entry that replaces every older
	// one (JetStream rollup), so that folding any cookie, however stale,
	// reads one snapshot and a short tail, and an honest session stays far
	// below MaxOpsPerSession. It must be below MaxOpsPerSession; negative
	// disables snapshots. Default: 64, or MaxOpsPerSession/4 (at least 1)
	// when that is smaller.
	SnapshotEvery int

	// Logger receives the hub's logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives the hub's counters. Default: none.
	Metrics Metrics

	// liveBuffer is how many live changes wait for each dispatcher before
	// nats.go drops them as a slow consumer (tests set it). Default: 4096.
	liveBuffer int
	// asyncMaxPending is how many asynchronous publishes may await
	// JetStream's acknowledgement on the hub's connection before the next
	// one stalls (tests set it). Default: defaultAsyncMaxPending.
	asyncMaxPending int
	// dispatchers is how many dispatcher goroutines the hub runs (tests
	// set it). Default: shardsFor(runtime.GOMAXPROCS(0)).
	dispatchers int
}

// The defaults of the Options fields a server exposes as flags.
const (
	DefaultReplicas         = 1
	DefaultRetention        = 24 * time.Hour
	DefaultMaxOpsPerSession = 10000
	DefaultReadLimit        = 32 << 10
	DefaultRateLimit        = 50.0
	DefaultRateBurst        = 100
	DefaultSendBuffer       = 256
	DefaultSnapshotEvery    = 64
	DefaultStream           = "SESSIONHUB"

	DefaultSessionWriteRate     = 20.0
	DefaultSessionWriteBurst    = 200
	DefaultSendBufferBytes      = 1 << 20
	DefaultSocketKernelBuffer   = 64 << 10
	DefaultMaxSocketsPerSession = 32
	DefaultWriteWait            = 10 * time.Second
)

func (o *Options) withDefaults() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Store == nil {
		return out, errors.New("hub: Options.Store is required")
	}
	if out.Conn == nil {
		return out, errors.New("hub: Options.Conn is required")
	}
	for k, p := range out.ClientKeys {
		if p.Write && p.Validate == nil {
			return out, fmt.Errorf("hub: client-writable key %q needs a Validate function", k)
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if out.Prefix == "" {
		out.Prefix = "/hub"
	}
	out.Prefix = "/" + strings.Trim(out.Prefix, "/")
	if out.Stream == "" {
		out.Stream = DefaultStream
	}
	if out.RevocationBucket == "" {
		out.RevocationBucket = out.Stream + "_REVOKED"
	}
	if out.Subject == "" {
		out.Subject = "sessionhub"
	}
	def(&out.Replicas, DefaultReplicas)
	defDur(&out.Retention, DefaultRetention)
	def(&out.MaxOpsPerSession, DefaultMaxOpsPerSession)
	if out.MaxOpsPerSession < 2 {
		return out, fmt.Errorf("hub: Options.MaxOpsPerSession %d must be at least 2 (a snapshot and the write after it)", out.MaxOpsPerSession)
	}
	def(&out.MaxEntrySize, 64<<10)
	defDur(&out.WriteTimeout, 5*time.Second)
	if out.ReadLimit <= 0 {
		out.ReadLimit = DefaultReadLimit
	}
	if out.RateLimit <= 0 {
		out.RateLimit = DefaultRateLimit
	}
	def(&out.RateBurst, DefaultRateBurst)
	if out.SessionWriteRate <= 0 {
		out.SessionWriteRate = DefaultSessionWriteRate
	}
	def(&out.SessionWriteBurst, DefaultSessionWriteBurst)
	def(&out.SendBuffer, DefaultSendBuffer)
	def(&out.SendBufferBytes, DefaultSendBufferBytes)
	def(&out.SocketKernelBuffer, DefaultSocketKernelBuffer)
	def(&out.MaxSocketsPerSession, DefaultMaxSocketsPerSession)
	if out.MaxSocketsPerAddr < 0 {
		out.MaxSocketsPerAddr = 0
	}
	defDur(&out.PingInterval, 25*time.Second)
	defDur(&out.PingTimeout, 10*time.Second)
	defDur(&out.WriteWait, DefaultWriteWait)
	defDur(&out.ViewIdle, 2*time.Minute)
	def(&out.ViewTail, 64)
	switch {
	case out.SnapshotEvery == 0:
		out.SnapshotEvery = max(1, min(DefaultSnapshotEvery, out.MaxOpsPerSession/4))
	case out.SnapshotEvery >= out.MaxOpsPerSession:
		return out, fmt.Errorf("hub: Options.SnapshotEvery %d must be below MaxOpsPerSession %d", out.SnapshotEvery, out.MaxOpsPerSession)
	}
	def(&out.asyncMaxPending, defaultAsyncMaxPending)
	def(&out.liveBuffer, 4096)
	def(&out.dispatchers, shardsFor(runtime.GOMAXPROCS(0)))
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Metrics == nil {
		out.Metrics = nopMetrics{}
	}
	return out, nil
}

// Metrics receives the hub's events. cmd/sessionhub implements it with
// Prometheus; every method must be cheap and safe for concurrent use.
type Metrics interface {
	SocketOpened()
	SocketClosed(code int)
	ViewOpened()
	ViewClosed()
	Staged(source string, d time.Duration) // an entry acknowledged by JetStream, and how long it took
	Error(code Code)                       // an error answered to a client
	Delivered(n int)                       // change messages queued to sockets
	CookieRefused(reason session.Reason)   // a cookie refused at a handshake or a request (forged, expired, ...)
}

type nopMetrics struct{}

func (nopMetrics) SocketOpened()                {}
func (nopMetrics) SocketClosed(int)             {}
func (nopMetrics) ViewOpened()                  {}
func (nopMetrics) ViewClosed()                  {}
func (nopMetrics) Staged(string, time.Duration) {}
func (nopMetrics) Error(Code)                   {}
func (nopMetrics) Delivered(int)                {}
func (nopMetrics) CookieRefused(session.Reason) {}
