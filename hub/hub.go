package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/session"
)

// Sources of a change, as the change message reports them.
const (
	SourceWS   = "ws"
	SourceHTTP = "http"
)

const shards = 8

// Hub is the realtime core of sessionhub: the session logs on JetStream,
// the per-session fan-out over NATS, and the WebSocket endpoint. It
// implements httpbridge.Log. A Hub is safe for concurrent use.
type Hub struct {
	opts Options
	log  *jsLog

	flush http.Handler // the bridge at <Prefix>/flush

	mu       sync.Mutex
	views    map[string]*view
	handlers map[string]EventHandler

	live   [shards]chan *nats.Msg
	ctlSub *nats.Subscription

	reconnects atomic.Uint64 // NATS reconnects seen, see checkReconnect

	conns     sync.WaitGroup
	workers   sync.WaitGroup
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
		opts:     o,
		log:      &jsLog{nc: o.Conn, js: js, stream: o.Stream, directGet: "$JS.API.DIRECT.GET." + o.Stream, prefix: o.Subject, timeout: o.WriteTimeout},
		views:    map[string]*view{},
		handlers: map[string]EventHandler{},
		closed:   make(chan struct{}),
	}
	h.flush = h.FlushHandler(nil)
	if err := h.log.ensure(ctx, &o); err != nil {
		return nil, err
	}
	if err := h.log.replies.start(o.Conn); err != nil {
		return nil, fmt.Errorf("hub: reply subscription: %w", err)
	}
	for i := range h.live {
		h.live[i] = make(chan *nats.Msg, 4096)
		h.workers.Add(1)
		go h.dispatch(h.live[i])
	}
	h.ctlSub, err = o.Conn.Subscribe(o.Subject+".ctl.*", h.onControl)
	if err != nil {
		h.log.replies.stop()
		h.stopWorkers()
		return nil, fmt.Errorf("hub: control subscription: %w", err)
	}
	h.workers.Add(2)
	go h.janitor()
	go h.pinger()
	return h, nil
}

// Options returns the hub's options with defaults filled in.
func (h *Hub) Options() Options { return h.opts }

func (h *Hub) shard(id string) chan *nats.Msg {
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	return h.live[f.Sum32()%shards]
}

// dispatch hands republished entries to their views, one shard's sessions
// in order.
func (h *Hub) dispatch(ch chan *nats.Msg) {
	defer h.workers.Done()
	prefix := h.opts.Subject + ".live."
	for {
		select {
		case m := <-ch:
			id := strings.TrimPrefix(m.Subject, prefix)
			h.mu.Lock()
			v := h.views[id]
			h.mu.Unlock()
			if v != nil {
				v.onLive(m)
			}
		case <-h.closed:
			return
		}
	}
}

// janitor closes views that have been idle past ViewIdle.
func (h *Hub) janitor() {
	defer h.workers.Done()
	t := time.NewTicker(max(h.opts.ViewIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.sweep(time.Now())
		case <-h.closed:
			return
		}
	}
}

// pinger pings every socket each PingInterval; a socket whose pong does
// not come within PingTimeout is closed with 4003.
func (h *Hub) pinger() {
	defer h.workers.Done()
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, c := range h.sockets() {
				if !c.closing.Load() && c.pinging.CompareAndSwap(false, true) {
					go c.ping()
				}
			}
		case <-h.closed:
			return
		}
	}
}

// sockets returns every socket of this instance.
func (h *Hub) sockets() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*conn
	for _, v := range h.views {
		v.mu.Lock()
		for c := range v.conns {
			out = append(out, c)
		}
		v.mu.Unlock()
	}
	return out
}

func (h *Hub) sweep(now time.Time) {
	var idle []*view
	h.mu.Lock()
	for id, v := range h.views {
		v.mu.Lock()
		if v.refs == 0 && now.Sub(v.idle) >= h.opts.ViewIdle {
			delete(h.views, id)
			idle = append(idle, v)
		}
		v.mu.Unlock()
	}
	h.mu.Unlock()
	for _, v := range idle {
		v.close()
		h.opts.Metrics.ViewClosed()
	}
}

// control messages, on <Subject>.ctl.<id>.
const (
	ctlEnd    = "end"
	ctlRotate = "rotate"
)

func (h *Hub) onControl(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, h.opts.Subject+".ctl.")
	switch string(m.Data) {
	case ctlEnd:
		h.closeSession(id, CloseSessionEnded, "session ended")
	case ctlRotate:
		h.closeSession(id, CloseSessionRotated, "session rotated")
	}
}

// closeSession closes every socket of session id on this instance.
func (h *Hub) closeSession(id string, code websocket.StatusCode, reason string) int {
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	if v == nil {
		return 0
	}
	v.mu.Lock()
	conns := slices.Collect(maps.Keys(v.conns))
	v.mu.Unlock()
	for _, c := range conns {
		c.close(code, reason)
	}
	return len(conns)
}

// End closes every socket of session id, on every instance, with
// CloseSessionEnded (logout: the client must not resume). Call it with
// the ID session.Session.End returned.
//
// The end is also appended to the session's log (an end op), so that any
// cookie of the session that folds it later (a flush in flight, a stale
// copy, an instance that missed the control message) is deleted instead
// of bringing the session back.
func (h *Hub) End(ctx context.Context, id string) error {
	if !session.ValidID(id) {
		return nil
	}
	_, logErr := h.stage(ctx, id, SourceHTTP, nil, []session.Op{{Type: session.OpEnd}})
	if err := h.control(ctx, id, ctlEnd, CloseSessionEnded, "session ended"); err != nil {
		return err
	}
	return logErr
}

// Rotated closes every socket of the old session ID, on every instance,
// with CloseSessionRotated (login: reconnect with the new cookie). Call it
// with the ID session.Session.Rotate returned.
func (h *Hub) Rotated(ctx context.Context, oldID string) error {
	return h.control(ctx, oldID, ctlRotate, CloseSessionRotated, "session rotated")
}

func (h *Hub) control(ctx context.Context, id, what string, code websocket.StatusCode, reason string) error {
	if !session.ValidID(id) {
		return nil
	}
	h.closeSession(id, code, reason)
	if err := h.opts.Conn.Publish(h.log.ctlSubject(id), []byte(what)); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	fctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	if err := h.opts.Conn.FlushWithContext(fctx); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	return nil
}

// stage appends ops to session id's log as one entry and returns its
// sequence once JetStream acknowledged it.
func (h *Hub) stage(ctx context.Context, id, source string, expect *uint64, ops []session.Op) (uint64, error) {
	if h.closing.Load() {
		return 0, wrapErr(ErrUnavailable, ErrClosed)
	}
	start := time.Now()
	seq, err := h.log.append(ctx, id, source, expect, ops)
	if err != nil {
		return 0, err
	}
	h.opts.Metrics.Staged(source, time.Since(start))
	h.acked(id, seq)
	return seq, nil
}

// Write appends ops to session id's log on behalf of server-side code (any
// key may be written) and returns the entry's sequence once JetStream
// acknowledged it. Every socket of the session sees it as a change with
// source "http". The cookie budget is not checked here: HTTP handlers get
// that check when the middleware writes the cookie.
func (h *Hub) Write(ctx context.Context, id string, ops ...session.Op) (uint64, error) {
	if !session.ValidID(id) {
		return 0, Errorf(CodeInvalid, "invalid session id")
	}
	return h.stage(ctx, id, SourceHTTP, nil, ops)
}

// Pending returns the retained ops of session id above after, in order
// (httpbridge.Log). It is served from the session's view on this
// instance, fetching from JetStream only what the view lacks.
func (h *Hub) Pending(ctx context.Context, id string, after uint64) ([]session.Op, error) {
	if !session.ValidID(id) {
		return nil, nil
	}
	if h.closing.Load() {
		return nil, wrapErr(ErrUnavailable, ErrClosed)
	}
	v := h.acquire(ctx, id, after)
	defer v.release()
	v.mu.Lock()
	v.catchUpLocked(ctx)
	changes, ok := v.sinceLocked(after)
	ops := flatten(changes)
	v.mu.Unlock()
	if ok {
		return ops, nil
	}
	changes, err := h.log.fetch(ctx, id, after, 0)
	if err != nil {
		return nil, err
	}
	return flatten(changes), nil
}

// Sync makes the view of session id on this instance hold every entry
// JetStream acknowledged before the call, so the next Pending reads them:
// the bridge calls it before folding (httpbridge.Syncer). With atLeast > 0
// (the highest sequence the client saw), a view already past it answers at
// once; otherwise one round trip reads what the view lacks.
func (h *Hub) Sync(ctx context.Context, id string, atLeast uint64) error {
	if !session.ValidID(id) {
		return nil
	}
	v := h.acquire(ctx, id, 0)
	defer v.release()
	if atLeast > 0 {
		v.mu.Lock()
		fresh := v.loaded && !v.stale && v.last >= atLeast
		v.mu.Unlock()
		if fresh {
			return nil
		}
	}
	return v.sync(ctx)
}

// Append appends an HTTP handler's ops as one entry (httpbridge.Log) and
// returns every op above after up to the new entry, in order.
func (h *Hub) Append(ctx context.Context, id, source string, after uint64, ops []session.Op) ([]session.Op, error) {
	if !session.ValidID(id) {
		return nil, Errorf(CodeInvalid, "invalid session id")
	}
	seq, err := h.stage(ctx, id, source, &after, ops)
	if err == nil {
		out := make([]session.Op, len(ops))
		for i, op := range ops {
			op.Seq = seq
			out[i] = op
		}
		return out, nil
	}
	if !errors.Is(err, errConflict) {
		return nil, err
	}
	// Others appended since after: append anyway, then read what lies
	// between, so the caller folds the log in its order.
	if seq, err = h.stage(ctx, id, source, nil, ops); err != nil {
		return nil, err
	}
	changes, err := h.log.fetch(ctx, id, after, seq)
	if err != nil {
		return nil, err
	}
	return flatten(changes), nil
}

// EventHandler handles a client event. Its reply, when not nil, is sent
// JSON-encoded in the ack's data; an error is sent as an error message
// (an *Error keeps its code, anything else is internal and only logged).
type EventHandler func(ctx context.Context, ev *Event) (reply any, err error)

// Event is a client event and the socket it came from.
type Event struct {
	Name   string
	Data   json.RawMessage
	Socket *Socket
}

// Handle registers the handler of client events called name.
func (h *Hub) Handle(name string, fn EventHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handlers[name] = fn
}

func (h *Hub) handler(name string) EventHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.handlers[name]
}

// Socket is the Go API of one WebSocket for event handlers: read the
// session, write any key through the log, push events to the browser.
type Socket struct {
	c    *conn
	last atomic.Uint64
}

// SessionID returns the session's ID.
func (s *Socket) SessionID() string { return s.c.id }

// Seq returns the version of the session as this socket knows it.
func (s *Socket) Seq() uint64 { return s.c.snapSeq() }

// Get decodes the value of key into dst; false when absent.
func (s *Socket) Get(key string, dst any) (bool, error) {
	snap := s.c.snapshot()
	raw, ok := snap.Values[key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, dst)
}

// Values returns every value of the session (not only client-readable
// ones: this is server-side code).
func (s *Socket) Values() map[string]json.RawMessage { return s.c.snapshot().Values }

// Set stages key = v (any key: this is server-side code). It returns once
// JetStream acknowledged it.
func (s *Socket) Set(ctx context.Context, key string, v any) (uint64, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, wrapErr(ErrInternal, err)
	}
	op, err := session.SetOp(key, raw)
	if err != nil {
		return 0, Errorf(CodeInvalid, "%v", err)
	}
	return s.apply(ctx, op)
}

// Delete stages the removal of key.
func (s *Socket) Delete(ctx context.Context, key string) (uint64, error) {
	return s.apply(ctx, session.Op{Type: session.OpDelete, Key: key})
}

func (s *Socket) apply(ctx context.Context, ops ...session.Op) (uint64, error) {
	seq, err := s.c.stage(ctx, SourceWS, ops)
	if err == nil {
		s.last.Store(seq)
	}
	return seq, err
}

func (s *Socket) lastSeq() uint64 {
	if seq := s.last.Load(); seq > 0 {
		return seq
	}
	return s.c.snapSeq()
}

// Push sends an event to this socket: {"type":"push","name":...,"data":...}.
func (s *Socket) Push(name string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if !s.c.queue(mustJSON(pushMsg{Type: TypePush, Name: name, Data: raw})) {
		return errors.New("hub: socket closed")
	}
	return nil
}

// ReadableValues returns the client-readable subset of values: what the
// browser may see of a session.
func (h *Hub) ReadableValues(values map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(values))
	for k, v := range values {
		if h.opts.Keys[k].Read {
			out[k] = v
		}
	}
	return out
}

// Readable reports whether the browser may read key.
func (h *Hub) Readable(key string) bool { return h.opts.Keys[key].Read }

// changeMessage encodes a change for the browser: ops on keys it cannot
// read are left out, the sequence still advances.
func (h *Hub) changeMessage(c Change) []byte {
	ops := make([]WireOp, 0, len(c.Ops))
	for _, op := range c.Ops {
		if op.Type == session.OpEnd {
			continue // the socket is closed with CloseSessionEnded instead
		}
		if op.Type == session.OpClear || h.opts.Keys[op.Key].Read {
			ops = append(ops, WireOp{Type: op.Type, Key: op.Key, Value: op.Value})
		}
	}
	src := c.Source
	if src != SourceWS {
		src = SourceHTTP
	}
	return mustJSON(changeMsg{Type: TypeChange, Seq: c.Seq, Ops: ops, Source: src})
}

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

var _ http.Handler = (*Hub)(nil)
