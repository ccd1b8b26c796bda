package hub

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/internal/protocol"
)

// Sources of a change, as the change message reports them.
const (
	SourceWS   = protocol.SourceWS   // a socket's write
	SourceHTTP = protocol.SourceHTTP // an HTTP handler's or other Go code's write
)

// Hub is the realtime core of sessionhub: the session logs on JetStream,
// the per-session fan-out over NATS, the WebSocket endpoint and the
// session middleware. A Hub is safe for concurrent use.
type Hub struct {
	opts    Options
	log     *jsLog
	revoked revocations // ended sessions, kept for the cookie lifetime (revoke.go)

	mw    func(http.Handler) http.Handler // the session middleware (middleware.go)
	flush http.Handler                    // the bridge at <Prefix>/flush

	mu         sync.Mutex
	views      map[string]*view
	lazy       map[string]*lazySet // sockets of sessions with an empty log, no view (lazy.go)
	handlers   map[string]EventHandler
	perSession map[string]int // open sockets (and handshakes past the check) per session
	perAddr    map[string]int // the same per client address, with MaxSocketsPerAddr

	live     []chan *nats.Msg // republished entries, one channel per dispatcher (dispatch.go, shardsFor)
	ackLanes []chan *nats.Msg // the acknowledgements of the shards' asynchronous appends (asyncAcks)
	ctlSub   *nats.Subscription

	reconnects atomic.Uint64 // NATS reconnects seen, see checkReconnect
	stalls     atomic.Uint64 // pipelined appends staged on their own after the async publishes stalled (pipeline.go)
	resync     resyncer
	status     chan nats.Status // the connection's reconnections, see resyncLoop

	snapshotJobs chan struct{}      // one token per running compaction (snapshot.go)
	viewless     map[string]int     // appends to sessions without a view, by ID (snapshotViewless; under mu)
	bg           context.Context    // background work (compactions); cancelled by Close
	stopBg       context.CancelFunc //

	run       *runner        // sockets' ackers and writers (runner.go)
	conns     sync.WaitGroup // open sockets
	workers   sync.WaitGroup // dispatchers, janitor, pinger, resyncer, view repairs, compactions
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
}

// New connects the hub to JetStream: it creates or updates the stream and
// starts the hub's goroutines. Close stops them.
func New(ctx context.Context, opts *Options) (*Hub, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("hub: jetstream: %w", err)
	}
	h := &Hub{
		opts:       o,
		log:        newLog(o.Conn, js, &o),
		views:      map[string]*view{},
		lazy:       map[string]*lazySet{},
		handlers:   map[string]EventHandler{},
		perSession: map[string]int{},
		perAddr:    map[string]int{},
		closed:     make(chan struct{}),

		snapshotJobs: make(chan struct{}, maxSnapshotJobs),
		viewless:     map[string]int{},
	}
	h.bg, h.stopBg = context.WithCancel(context.Background())
	h.run = newRunner(h.closed)
	h.mw = h.newMiddleware()
	h.flush = h.newFlush()
	if err := h.log.ensure(ctx, &o); err != nil {
		return nil, err
	}
	if err := h.revoked.open(ctx, js, o.Conn, &o, h.onRevoked); err != nil {
		h.revoked.close()
		return nil, fmt.Errorf("hub: revocation bucket %s: %w", o.RevocationBucket, err)
	}
	if err := h.log.replies.start(o.Conn); err != nil {
		h.revoked.close()
		return nil, fmt.Errorf("hub: reply subscription: %w", err)
	}
	h.live, h.ackLanes = make([]chan *nats.Msg, o.dispatchers), make([]chan *nats.Msg, o.dispatchers)
	for i := range h.live {
		h.live[i] = make(chan *nats.Msg, o.liveBuffer)
		// Room for every acknowledgement awaited: none is dropped.
		h.ackLanes[i] = make(chan *nats.Msg, o.asyncMaxPending)
	}
	if err := h.log.acks.start(o.Conn, o.asyncMaxPending, o.WriteTimeout, h.ackLanes); err != nil {
		h.log.replies.stop()
		h.revoked.close()
		return nil, fmt.Errorf("hub: acknowledgement subscription: %w", err)
	}
	for i := range h.live {
		h.workers.Add(1)
		go h.dispatch(h.live[i], h.ackLanes[i])
	}
	h.ctlSub, err = o.Conn.Subscribe(o.Subject+".ctl.*", h.onControl)
	if err != nil {
		h.stopWorkers()
		return nil, fmt.Errorf("hub: control subscription: %w", err)
	}
	h.resync.init()
	h.status = h.watchConn()
	h.workers.Add(3)
	go h.janitor()
	go h.pinger()
	go h.resyncLoop(h.status)
	return h, nil
}

// Options returns the hub's options with defaults filled in.
func (h *Hub) Options() Options { return h.opts }

// Shutdown closes every socket with 1001 Going Away (clients reconnect and
// resume) and waits for them, or for ctx. Register it with
// http.Server.RegisterOnShutdown, which does not see hijacked connections.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing.Store(true) // under h.mu: no socket registers after this
	h.mu.Unlock()
	conns := h.sockets()
	for _, c := range conns {
		c.close(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close shuts the hub down: sockets are closed with 1001, subscriptions
// and goroutines stopped. It waits up to 10 seconds for sockets to close.
// Safe to call more than once. The NATS connection stays open.
func (h *Hub) Close() error {
	var err error
	h.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = h.Shutdown(ctx)
		h.stopWorkers()
	})
	return err
}

func (h *Hub) stopWorkers() {
	if h.ctlSub != nil {
		_ = h.ctlSub.Unsubscribe()
	}
	h.log.replies.stop()
	h.log.acks.stop()
	h.revoked.close()
	h.mu.Lock()
	views := slices.Collect(maps.Values(h.views))
	h.views = map[string]*view{}
	h.mu.Unlock()
	for _, v := range views {
		v.close()
	}
	if !isClosed(h.closed) {
		close(h.closed)
	}
	h.stopBg()
	if h.status != nil {
		h.opts.Conn.RemoveStatusListener(h.status)
	}
	h.workers.Wait()
}

// Closed returns a channel closed once the hub is closed.
func (h *Hub) Closed() <-chan struct{} { return h.closed }

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
