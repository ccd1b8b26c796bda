package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// conn is one WebSocket of a session on this instance.
type conn struct {
	h   *Hub
	ws  *websocket.Conn
	raw net.Conn // the connection under ws (under its TLS, if any): closing it ends any read or write of ws
	// rawc is raw's file descriptor, when it has one: what writeSoon asks
	// the kernel about (sendRoom). sendRoom is the room it last told, less
	// what was written since (sendCost). ctrl counts the control frames
	// others write on the connection (the read loop's pongs, the
	// pinger's pings), in sendCost; ctrlSeen is how much of it sendRoom
	// takes into account. Only the socket's writer (who holds writing)
	// reads or writes sendRoom, sendSize and ctrlSeen.
	rawc     syscall.RawConn
	sendRoom int
	sendSize int // the send buffer's size, as last measured
	ctrl     atomic.Int64
	ctrlSeen int64
	// v is the session's view; nil while the socket is lazy (lazy.go),
	// until joined is closed.
	v       atomic.Pointer[view]
	joined  chan struct{}
	gone    bool   // the socket finished (under h.mu): a join gives its reference back
	joining bool   // a lazy socket being joined to a view (under h.mu)
	id      string // session ID
	limiter *rate.Limiter
	out     outbox
	pipe    pipeline  // set and delete appends in flight (pipeline.go)
	batch   bool      // negotiated protocol.Subprotocol: several messages per frame
	held    *ownWrite // whose change waits for its first ack (ownWrite.echoable); guarded by the view's lock
	// The socket's last measure of the cookie budget (conn.sizeLocked): n
	// bytes on view sizedIn when its growth was sizedAt. Guarded by that
	// view's lock.
	sized, sizedAt int
	sizedIn        *view

	ctx    context.Context // cancelled when the socket closes
	cancel context.CancelFunc

	closing   atomic.Bool
	closeCode websocket.StatusCode
	closeMsg  string
	closeOnce sync.Once
	finished  chan struct{} // closed once the close frame was sent (or given up)

	// An idle socket has no writer goroutine: one runs while messages wait
	// (writing), and the hub's pinger pings every socket (pinging).
	writing atomic.Bool
	pinging atomic.Bool

	// The writer's frame deadline (write.go, conn.write): wstart is when
	// the frame being written began (monoNow; 0 between frames), wtimer
	// the timer that checks it, made by the first write and armed
	// (warmed) from a frame's start until it finds no frame in progress,
	// wexpired set once a frame outlived WriteWait.
	wstart   atomic.Int64
	wtimer   atomic.Pointer[time.Timer]
	warmed   atomic.Bool
	wexpired atomic.Bool

	mu   sync.Mutex
	snap session.Snapshot // the session as this socket knows it: folded up to snap.Seq
}

// deliver folds a change into the socket's snapshot and queues its
// message. It never blocks: a socket whose buffer is full is closed with
// CloseTooSlow, everyone else keeps receiving. Called under the view's lock.
func (c *conn) deliver(e entry, msg []byte) {
	if c.deliverHolding(e, msg, nil) {
		c.kick()
	}
}

// deliverHolding is deliver, holding the change for the first ack of the
// socket's own write w instead of queueing it (ownWrite.echoable) when w is
// not nil, and leaving the writer to the caller: it reports whether it
// queued a message (view.wakeLocked starts the writer). A change held
// before goes first. Called with the view's lock held, or for a socket
// not among the view's yet (lazy.go), which holds nothing.
func (c *conn) deliverHolding(e entry, msg []byte, w *ownWrite) (queued bool) {
	c.mu.Lock()
	if e.Seq <= c.snap.Seq {
		// The socket has it already (its handshake read it from
		// JetStream): sending an older change would step the client back.
		c.mu.Unlock()
		return false
	}
	// A snapshot of what the socket holds already changes none of its
	// values: it only advances the version, and the client is not sent
	// the whole state again.
	quiet := e.Covers > 0 && c.snap.Seq >= e.Covers
	// The socket's own copy of the values (c.snap is only ever assigned
	// copies: Session.Snapshot, Fold; readers copy it under c.mu or read
	// it under the view's lock, held here): folded in place.
	c.snap.FoldInPlace(e.Ops)
	c.mu.Unlock()
	switch {
	case msg == nil || quiet:
	case w != nil:
		if c.held != nil {
			queued = c.enqueue(c.takeEchoLocked(c.held))
		}
		w.echo, c.held = msg, w
	case c.held != nil:
		queued = c.enqueue(c.takeEchoLocked(c.held), msg)
	default:
		queued = c.enqueue(msg)
	}
	for _, op := range e.Ops {
		if op.Type == session.OpEnd {
			c.close(CloseSessionEnded, "session ended")
		}
	}
	return queued
}

// readLoop reads and handles client messages until the socket closes.
func (c *conn) readLoop() {
	// The socket's context ends only once its writer closed the
	// connection (drain), which ends a read anyway: reading without it
	// spares coder/websocket a cancellation hook per message.
	ctx := context.WithoutCancel(c.ctx)
	// One buffer for the socket's frames, read one at a time (handle
	// copies what it keeps): a frame is not a new allocation each.
	var buf bytes.Buffer
	for {
		typ, r, err := c.ws.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.close(CloseTooBig, "message too big")
			} else {
				c.close(CloseNormal, "")
			}
			return
		}
		if typ != websocket.MessageText {
			c.close(ClosePolicy, "binary frames are not part of the protocol")
			return
		}
		c.handle(buf.Bytes())
		if buf.Cap() > maxReadBuffer {
			buf = bytes.Buffer{} // a large frame's buffer is not kept
		}
	}
}

// maxReadBuffer is the largest frame buffer a socket keeps between
// frames.
const maxReadBuffer = 4 << 10

// handle processes one client frame; every id'd message gets an ack or an
// error. Errors never close the socket.
func (c *conn) handle(data []byte) {
	m, err := protocol.DecodeClientMessage(data)
	// data is the read loop's buffer, reused for the next frame: what the
	// message keeps of it is copied.
	m.Value, m.Data = bytes.Clone(m.Value), bytes.Clone(m.Data)
	// Every frame counts against the socket's limit, valid or not.
	if !c.limiter.Allow() {
		c.answer(m.ID, ErrRateLimited)
		return
	}
	if err != nil {
		c.answer(m.ID, err)
		return
	}
	switch m.Type {
	case protocol.TypeSet, protocol.TypeDelete:
		c.pipelineWrite(m) // answered in order, after JetStream's ack (pipeline.go)
	case protocol.TypeEvent:
		if c.pipe.wait(c.ctx) {
			c.event(m)
		}
	case protocol.TypeResume:
		if c.pipe.wait(c.ctx) {
			c.resume(m.ID, *m.After)
		}
	}
}

func (c *conn) fail(id uint64, err error) {
	code, msg := publicError(err)
	if code == CodeInternal {
		c.h.opts.Logger.Error("socket request failed", "session", c.id, "id", id, "err", err)
	}
	c.h.opts.Metrics.Error(code)
	c.queue(protocol.AppendError(nil, id, code, msg))
}

// stageAttempts bounds the tries of a write near the cookie budget
// (conn.stage).
const stageAttempts = 4

// errContended: a write near the cookie budget lost the race for the log
// to the session's other writers on every try; nothing was appended.
var errContended = Errorf(CodeRateLimited, "the session changed while this write was measured against its cookie budget; retry")

// stage checks the cookie budget against the session as the log holds it
// and appends ops as one entry. Near the budget (the cookie would pass
// half of it) the append is conditional on the log not having moved since
// the check (JetStream's expected last subject sequence), so concurrent
// writers cannot together push the cookie past its size; they measure
// again on the moved log. The last of stageAttempts tries is conditional
// on the log's last sequence as JetStream tells it (the view's last entry
// may have aged out of the log, and a condition on it never matches), with
// the view brought up to it first. A write that loses that race too is
// refused with rate_limited (errContended): near the budget nothing is
// appended without the condition.
func (c *conn) stage(ctx context.Context, source string, ops []session.Op) (uint64, error) {
	return c.stageReplacing(ctx, source, ops, nil)
}

// stageReplacing is stage for ops the cookie budget counts in flight as
// old already (a batch staged on its own, pipeline.go): the first
// measure stops counting old in the hold of the view's lock that starts
// counting ops, so that no other write is measured without them.
func (c *conn) stageReplacing(ctx context.Context, source string, ops []session.Op, old *ownWrite) (uint64, error) {
	for attempt := 1; ; attempt++ {
		final := attempt == stageAttempts
		var floor uint64 // on the final try: the log's last sequence
		if final {
			var err error
			if floor, err = c.h.log.lastSeq(ctx, c.id); err != nil {
				return 0, err
			}
			if v := c.view(); v != nil {
				if err := v.catchUp(ctx, floor); err != nil {
					return 0, err
				}
			}
		}
		n, grows, uncertain, last, whole, own, err := c.measure(ctx, ops, old)
		if err != nil {
			return 0, err
		}
		if n > session.MaxCookieSize && grows && uncertain && !final {
			// Past the budget only if appends still unanswered do not
			// land as they would shrink the session: measure again once
			// they are answered.
			c.settleOwn(own, 0)
			select {
			case <-time.After(unansweredPoll):
			case <-ctx.Done():
				return 0, wrapErr(ErrUnavailable, ctx.Err())
			}
			continue
		}
		if n > session.MaxCookieSize && grows {
			// A write that does not grow a session already past the
			// budget passes (pipelineWrite), conditionally like any write
			// near it.
			c.settleOwn(own, 0)
			return 0, wrapErr(ErrTooLarge, fmt.Errorf("%d bytes", n))
		}
		var expect *uint64
		if n > session.MaxCookieSize/2 {
			if !whole || last < floor {
				// Near the budget on a view that may lack entries (a gap
				// being repaired, a reconnect, a log that moved during the
				// final read): read them, then measure again, so the append
				// can be conditional on the whole log.
				c.settleOwn(own, 0)
				if final {
					return 0, errContended
				}
				if v := c.view(); v != nil {
					_ = v.sync(ctx)
				}
				continue
			}
			expect = &last
			if final && floor == 0 {
				// The view holds the log up to floor (catchUp): what was
				// measured is the log as JetStream has it. A subject whose
				// entries all aged out is empty there while the view holds
				// them: the condition is the empty subject.
				expect = &floor
			}
		}
		seq, err := c.h.stage(ctx, c.id, source, expect, ops)
		c.settleOwn(own, seq) // 0 on an error
		if errors.Is(err, errConflict) {
			if final {
				return 0, errContended
			}
			// Someone wrote in between: wait for their entry and measure
			// again.
			c.h.acked(c.id, time.Time{}, last+1)
			continue
		}
		return seq, err
	}
}

// settleOwn records the outcome of a write measure counted:
// acknowledged at seq (counted until the view holds it), or not appended,
// 0 (no longer counted).
func (c *conn) settleOwn(own *ownWrite, seq uint64) {
	if own == nil {
		return
	}
	v := own.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if seq > v.last {
		own.seq = seq
		return
	}
	v.dropOwnLocked(own) // failed, or in the view already
}

// measure measures the cookie budget of ops on the session as it counts
// it (budgetLocked: the socket's snapshot, then the ops of every entry
// the view holds after it and of this instance's appends of the session
// still in flight, whichever socket made them), and counts ops among
// those appends in the same hold of the view's lock, from before their
// append until the view holds them (settleOwn records the outcome; a
// caller that does not append settles with 0). Measured and
// counted apart, two writes could each miss the other: one appended on
// the condition of the view's last entry, the other, measured on a
// smaller session without the condition, landing after it past the
// budget. It returns the measure, whether ops grow the cookie, the
// view's last sequence, and whether the view is known to be whole.
func (c *conn) measure(ctx context.Context, ops []session.Op, old *ownWrite) (n int, grows, uncertain bool, last uint64, whole bool, own *ownWrite, err error) {
	v := c.view()
	if v == nil {
		return 0, false, false, 0, false, nil, wrapErr(ErrUnavailable, errNoView)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.waitAckedDroppingLock(ctx)
	if old != nil && old.v == v {
		v.dropOwnLocked(old) // counted as own from here on
	}
	if n, grows, uncertain, err = c.measureLocked(v, ops); err != nil {
		return 0, false, false, 0, false, nil, err
	}
	_, ok := v.sinceLocked(c.snapSeq())
	own = &ownWrite{v: v, ops: ops}
	v.inflight = append(v.inflight, own)
	return n, grows, uncertain, v.last, ok && !v.stale, own, nil
}

// unansweredPoll is how long a write measured past the budget waits for
// the appends it could not count (budgetLocked) before measuring again.
const unansweredPoll = 5 * time.Millisecond

// errNoView: a lazy socket could not join its session's view.
var errNoView = errors.New("hub: session state unavailable")

// event runs the application's handler for a client event.
func (c *conn) event(m protocol.ClientMessage) {
	fn := c.h.handler(m.Name)
	if fn == nil {
		c.fail(m.ID, Errorf(CodeNotFound, "no handler for event %q", protocol.Truncate(m.Name, 64)))
		return
	}
	s := &Socket{c: c}
	reply, err := safeCall(c.ctx, fn, &Event{Name: m.Name, Data: m.Data, Socket: s})
	if err != nil {
		c.fail(m.ID, err)
		return
	}
	var data json.RawMessage
	if reply != nil {
		if data, err = json.Marshal(reply); err != nil {
			c.fail(m.ID, wrapErr(ErrInternal, fmt.Errorf("event %q reply: %w", m.Name, err)))
			return
		}
	}
	c.queue(protocol.Marshal(protocol.Ack{Type: protocol.TypeAck, ID: m.ID, Seq: s.lastSeq(), Data: data}))
}

func safeCall(ctx context.Context, fn EventHandler, ev *Event) (reply any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = wrapErr(ErrInternal, fmt.Errorf("event %q handler panicked: %v", ev.Name, r))
		}
	}()
	return fn(ctx, ev)
}

// resume replays every retained change after the given sequence, in
// order, then "resumed"; when the log no longer holds them all, "reset"
// with the current values.
func (c *conn) resume(id uint64, after uint64) {
	v := c.view()
	if v == nil {
		c.fail(id, wrapErr(ErrUnavailable, errNoView))
		return
	}
	v.mu.Lock()
	v.waitAckedDroppingLock(c.ctx) // this instance's acknowledged writes are in the view
	if changes, ok := v.sinceLocked(after); ok {
		c.replayLocked(after, changes)
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()

	// Older than the view's tail: from JetStream, while it holds them all.
	complete, err := c.h.log.complete(c.ctx, after)
	var fetched []entry
	if err == nil && complete {
		fetched, err = c.h.log.fetch(c.ctx, c.id, after, 0)
	}
	if err != nil {
		c.fail(id, err)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !complete {
		c.resetLocked()
		return
	}
	// Up to what the view has delivered (entries it took in after the
	// fetch reached the socket live already), or up to the socket's own
	// welcome when that is newer: a socket that joined a stale view
	// folded those entries from JetStream, and the view will not send
	// them to it live.
	upTo := max(v.last, c.snapSeq())
	n := 0
	for n < len(fetched) && fetched[n].Seq <= upTo {
		n++
	}
	c.replayLocked(after, fetched[:n])
}

// replayLocked sends changes to a client at version after, then
// "resumed". A snapshot of what the client holds by then is not sent: it
// would change none of its values.
func (c *conn) replayLocked(after uint64, changes []entry) {
	c.flushHeldLocked()
	if !c.out.room(len(changes) + 1) {
		// A replay that cannot fit the send buffer would close the socket
		// part-way (CloseTooSlow) and the client would resume past the gap: send
		// the whole state instead.
		c.resetLocked()
		return
	}
	at := after
	for _, e := range changes {
		if e.Covers == 0 || at < e.Covers {
			c.queue(c.h.changeMessage(e))
		}
		at = e.Seq
	}
	c.queue(protocol.Marshal(protocol.Resumed{Type: protocol.TypeResumed, Seq: c.v.Load().last}))
}

// resetLocked sends the socket's whole current state: the log no longer
// holds the changes asked for.
func (c *conn) resetLocked() {
	c.flushHeldLocked()
	snap := c.snapshot()
	if changes, ok := c.v.Load().sinceLocked(snap.Seq); ok && len(changes) > 0 {
		snap = snap.Fold(flatten(changes))
	}
	c.queue(protocol.Marshal(protocol.Reset{Type: protocol.TypeReset, Seq: snap.Seq, Values: c.h.ReadableValues(snap.Values)}))
}

func (c *conn) snapSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap.Seq
}

// snapshot returns a copy of the socket's snapshot.
func (c *conn) snapshot() session.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snap
	s.Values = maps.Clone(s.Values)
	return s
}
