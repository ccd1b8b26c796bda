package hub

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// pipelineDepth bounds the answers a socket owes: past it, the socket's
// next write waits unpublished, and its next message is read, once the
// oldest is answered.
const pipelineDepth = 32

// A socket's set and delete requests are appended to JetStream without
// waiting for each other's answers: up to pipelineDepth unanswered, the
// ones taken in while others are in flight gathered into one entry
// (batch). Their answers keep the order of the requests: an acker
// goroutine, started while answers are owed and gone once none is,
// appends each batch in turn, waits for its PubAck and only then queues
// its writes' acks (or their error). Any other request (an event, a
// resume, a request refused before it reached JetStream) is answered
// once the appends before it were.

// pending is one answer the pipeline owes the client, in request order:
// a set or delete in the log entry b, or an error already known (err).
type pending struct {
	id    uint64
	b     *batch
	err   error
	start time.Time // when the request was taken in
}

// batch is one log entry of a socket's sets and deletes. A write that
// finds none of the socket's answers owed is appended at once, in a batch
// of its own. One taken in while answers are owed joins the socket's open
// batch, the last one and not appended yet, while it has room
// (maxBatchWrites, batchCost); the acker appends a batch when it reaches
// its first write, once every answer before it went. So a socket that
// keeps writes in flight has at most one entry in flight and gathers the
// writes behind it into the next: one append, one acknowledgement, one
// republished entry and one change message per batch rather than per
// write. Each write is still answered in order, with the batch's
// sequence, and only after JetStream's acknowledgement; a failed batch
// fails each of its writes. The session's write budget counts writes
// (view.appendLocked), not entries.
type batch struct {
	own   *ownWrite // the batch's ops, counted by the cookie budget from the first write on
	cost  int       // batchCost of its ops
	n     int       // its writes
	fut   *pubAck   // nil until appended, and when staged on its own; then &ack
	start time.Time // when it was appended: the view's freshest write once acknowledged
	ack   pubAck    // the future of its append, made once (newBatch)

	// appended once its append was made or tried (acker only, or the
	// read loop before it pushes the batch).
	appended bool

	// Guarded by the view's lock: closed once the batch takes no more
	// writes (it is being appended, or the socket closed), finished once
	// the view no longer counts it in flight.
	closed, finished bool

	// The outcome, set by the acker before it answers the first write.
	answered bool
	seq      uint64
	err      error
}

// newBatch returns a batch of the write of ops on v by c, which opens
// it: the batch, its ownWrite and its append's future are one
// allocation.
func newBatch(v *view, c *conn, ops []session.Op, cost int) *batch {
	p := &struct {
		b   batch
		own ownWrite
	}{own: ownWrite{v: v, ops: ops, c: c}}
	p.b.own, p.b.cost, p.b.n = &p.own, cost, 1
	return &p.b
}

// maxBatchWrites bounds the writes of one batch: with at most
// pipelineDepth answers owed, a batch never gathers more.
const maxBatchWrites = pipelineDepth

// joinable reports whether a write of cost on view v may join b (nil: no
// batch): b is that view's, takes writes still, and has room. Called
// with v's lock held.
func (b *batch) joinable(v *view, cost, maxEntry int) bool {
	return b != nil && b.own.v == v && !b.closed && b.n < maxBatchWrites && b.cost+cost <= maxEntry
}

// batchCost bounds the bytes ops add to a log entry's payload: an op's
// framing, then its key and its value, each counted six times over (the
// longest escape of a byte, \u003c). A batch joined while its cost stays
// within the log's entry limit can be appended.
func batchCost(ops []session.Op) int {
	n := 0
	for _, op := range ops {
		n += 64 + 6*(len(op.Key)+len(op.Value))
	}
	return n
}

// ownWrite is an append of this instance that the session's view may not
// hold yet: the cookie budget of the session's next writes on this
// instance counts it. Guarded by the view's lock.
type ownWrite struct {
	v         *view
	seq       uint64 // 0 until acknowledged
	ops       []session.Op
	lens      []int  // session.ValueLen of each op's value, measured once (valueLen)
	published bool   // a pipelined append in flight: counted in view.unacked
	order     uint64 // its place among the view's publishes (view.publishes)
	owing     bool   // its ops count in view.owed

	// A pipelined append's socket, and its change to that socket, held
	// for its first ack (ownWrite.echoable): landed once the view took its
	// entry in.
	c      *conn
	landed bool
	echo   []byte
	data   []byte // the published payload: its republished copy is not decoded (view.entryLocked)
}

// keptAnswers bounds the slots of the array a socket's answer queue
// keeps once empty: a socket that writes one at a time reuses it, one
// that sent a burst lets its array go.
const keptAnswers = 4

// pipeline is a socket's appends in flight. The zero value is ready: an
// idle socket holds no goroutine for it, and no buffer beyond
// keptAnswers slots.
type pipeline struct {
	mu     sync.Mutex
	q      []pending
	space  chan struct{} // signalled when an answer leaves the queue
	acking bool          // the queue has a driver (drive): answers are owed
	parked *pubAck       // the driver is the publish the head waits for (pubAck.park)
	// idle is closed when the driver finds the queue empty; made only by
	// what waits for that (idleLocked), not for every answer.
	idle chan struct{}

	// open is the socket's last batch, which later writes may join while
	// it is not closed: set by the socket's read loop, dropped by the
	// acker as it appends it (an idle socket keeps no batch).
	open atomic.Pointer[batch]
}

// popLocked drops the queue's head, answered: the rest moves to the
// front of the array (at most pipelineDepth answers), so that the queue's
// last answer leaves the whole array for the next ones when it has at
// most keptAnswers slots. Called with pl.mu held.
func (pl *pipeline) popLocked() {
	n := copy(pl.q, pl.q[1:])
	pl.q[n] = pending{}
	switch {
	case n > 0:
		pl.q = pl.q[:n]
	case cap(pl.q) <= keptAnswers:
		pl.q = pl.q[:0] // the next answer takes no allocation
	default:
		pl.q = nil // a burst's array is not kept
	}
}

// owed reports whether answers are owed.
func (pl *pipeline) owed() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.q) > 0
}

// pipelineWrite handles a set or delete: checked and appended (or
// gathered into the socket's open batch) without waiting for the socket's
// appends in flight, or, near the cookie budget, once they are answered
// and with the log's condition (conn.stage).
func (c *conn) pipelineWrite(m protocol.ClientMessage) {
	// What waits for the session's socket writers here counts against
	// the pipeline too: a writer does not outrun the delivery of its own
	// answers, nor, for a moment, of its changes to the session's other
	// sockets.
	if !c.waitSessionBacklog() || !c.h.waitDispatch(c.ctx, c.id) {
		return
	}
	ops, err := c.clientOps(m)
	if err != nil {
		c.answer(m.ID, err)
		return
	}
	v := c.view() // a lazy socket joins its session's view (lazy.go)
	if v == nil {
		c.answer(m.ID, wrapErr(ErrUnavailable, errNoView))
		return
	}
	start := time.Now() // read again below when the write waited
	if err := validateDecoded(ops); err != nil {
		c.answer(m.ID, err)
		return
	}
	// Room first: with pipelineDepth answers owed, this append waits
	// unpublished.
	ok, waited, owed := c.room()
	if !ok {
		return
	}
	// Encoded before the view's lock, which the shard's dispatcher waits
	// on, unless the write is likely to join a batch.
	var data []byte
	if !owed {
		data = encodeValid(ops)
	}
	// A write to append at once takes its publish slot before the view's
	// lock: the dispatchers, which free slots (asyncAcks), wait on it.
	acks := &c.h.log.acks
	reserved := data != nil && acks.reserve(c.ctx, asyncStallWait)
	defer func() {
		if reserved { // not published with
			acks.release()
		}
	}()
	// The check and the publish (or the join) under the view's lock: the
	// session's appends from this instance are counted from the moment
	// they are taken in.
	v.mu.Lock()
	for v.gate != nil { // a compaction's turn (compactGated)
		gate := v.gate
		v.mu.Unlock()
		if !waitClosed(c.ctx, gate) {
			return
		}
		waited = true
		v.mu.Lock()
	}
	if waited {
		// The write budget refilled meanwhile, and the append is made
		// now.
		start = time.Now()
	}
	if !v.writtenLocked(start) {
		// The log may be empty: the session's first write wakes the lazy
		// sockets of every instance once acknowledged (Hub.stage, which
		// checks the write budget).
		v.mu.Unlock()
		if c.pipe.wait(c.ctx) {
			c.stageOne(m.ID, ops)
		}
		return
	}
	v.releaseLandedLocked()
	if v.budget.TokensAt(start) < float64(len(ops)+v.owed) {
		// The session's write budget, the writes in flight counted (each
		// takes its token when the view takes its entry in).
		v.mu.Unlock()
		c.answer(m.ID, c.h.errSessionBudget())
		return
	}
	n, grows, uncertain, err := c.sizeLocked(v, ops)
	switch {
	case err != nil:
		v.mu.Unlock()
		c.answer(m.ID, err)
		return
	case n > session.MaxCookieSize && grows && v.last >= v.want && !uncertain:
		v.mu.Unlock()
		c.answer(m.ID, wrapErr(ErrTooLarge, fmt.Errorf("%d bytes", n)))
		return
	case n > session.MaxCookieSize/2, v.stale, v.counted && v.sinceSnap+v.unacked+1 >= c.h.opts.MaxOpsPerSession:
		// Near the budget, or past it on a view that lacks entries this
		// instance acknowledged (a Hub.Write's delete whose republished
		// copy is on its way) or with appends unanswered that may shrink
		// it, or on a stale view, which cannot tell how near: concurrent
		// writers must not together push the cookie past it, and the
		// measure waits for the view (conn.stage). Near the log's limit:
		// the append it refuses compacts the log first (Hub.stage), in
		// order. Once this instance's appends of the session are
		// acknowledged, one at a time, as the log says.
		settled := v.settledLocked()
		v.mu.Unlock()
		if c.pipe.wait(c.ctx) && waitClosed(c.ctx, settled) {
			c.stageOne(m.ID, ops)
		}
		return
	}
	if c.h.closing.Load() {
		v.mu.Unlock()
		c.answer(m.ID, wrapErr(ErrUnavailable, ErrClosed))
		return
	}
	cost := batchCost(ops)
	if b := c.pipe.open.Load(); b.joinable(v, cost, c.h.opts.MaxEntrySize) {
		b.own.ops = append(b.own.ops, ops...)
		b.cost += cost
		b.n++
		v.owed += len(ops) // b.own is owing
		v.mu.Unlock()
		c.enter(pending{id: m.ID, b: b, start: start})
		return
	}
	b := newBatch(v, c, ops, cost)
	own := b.own
	if data == nil && !c.pipe.owed() {
		data = encodeValid(ops) // the acker answered all meanwhile
	}
	if data == nil {
		// Answers are owed: the acker appends the batch once they went,
		// with the writes that join it meanwhile.
		v.inflight = append(v.inflight, own)
		v.oweLocked(own)
		v.mu.Unlock()
		c.pipe.open.Store(b)
		c.enter(pending{id: m.ID, b: b, start: start})
		return
	}
	var fut *pubAck
	err = errStalled
	if reserved = reserved || acks.tryReserve(); reserved {
		reserved = false // appendReserved gives it back on error
		fut, err = c.h.log.appendReserved(v.subject, c.h.lane(v.id), data, &b.ack)
	}
	if errors.Is(err, errStalled) {
		// The connection's asynchronous publishes are at their limit: do
		// not wait for room under the view's lock (live delivery of the
		// whole shard would wait too); stage this one on its own.
		v.mu.Unlock()
		c.h.stalls.Add(1)
		if c.pipe.wait(c.ctx) {
			c.stageOne(m.ID, ops)
		}
		return
	}
	if err != nil {
		v.mu.Unlock()
		c.answer(m.ID, err)
		return
	}
	b.fut, b.start, b.closed, b.appended = fut, start, true, true
	v.inflight = append(v.inflight, own)
	v.oweLocked(own)
	v.publishedLocked(own, data)
	v.mu.Unlock()
	c.pipe.open.Store(nil)
	c.enter(pending{id: m.ID, b: b, start: start})
}

// publishedLocked counts w, just appended with payload data, among the
// appends in flight that the view's settled waits for.
func (v *view) publishedLocked(w *ownWrite, data []byte) {
	v.publishes++
	w.published, w.order, w.data = true, v.publishes, data
	v.unacked++
}

// settledLocked returns a channel closed once none of the view's
// pipelined appends is unanswered, nil when none is: made only for what
// waits for it, not for every append. Called with the view's lock held.
func (v *view) settledLocked() chan struct{} {
	if v.unacked == 0 {
		return nil
	}
	if v.settled == nil {
		v.settled = make(chan struct{})
	}
	return v.settled
}

// waitClosed waits for ch to close (nil: at once); false when ctx ended
// first.
func waitClosed(ctx context.Context, ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// settleLocked records the answer of a pipelined append: acknowledged at
// seq, or failed (0). An acknowledged one the view does not hold yet
// stays owed until it does (releaseLandedLocked): its token is taken
// when the view takes it in.
func (v *view) settleLocked(w *ownWrite, seq uint64) {
	w.seq = seq
	if seq == 0 || seq <= v.last {
		v.dropOwnLocked(w)
		v.releaseLocked(w)
	}
	if !w.published {
		return
	}
	w.published = false
	if v.unacked--; v.unacked == 0 && v.settled != nil {
		close(v.settled)
		v.settled = nil
	}
}

// finishLocked settles batch b once: acknowledged at seq, or failed or
// abandoned (0). Called with the view's lock held.
func (v *view) finishLocked(b *batch, seq uint64) {
	if b.finished {
		return
	}
	b.finished, b.closed = true, true
	v.settleLocked(b.own, seq)
}

// dropOwnLocked stops counting w among the session's writes in flight for
// the cookie budget (it failed, or the view holds it, or a stage counts
// its ops instead). Its count for the write budget is apart (owing).
func (v *view) dropOwnLocked(w *ownWrite) {
	if i := slices.Index(v.inflight, w); i >= 0 {
		v.inflight = slices.Delete(v.inflight, i, i+1)
	}
}

// oweLocked counts w's ops against the session's write budget until w
// fails or the view holds it (view.owing).
func (v *view) oweLocked(w *ownWrite) {
	v.owed += len(w.ops)
	w.owing = true
	v.owing = append(v.owing, w)
}

// releaseLocked stops counting w's ops against the write budget.
func (v *view) releaseLocked(w *ownWrite) {
	if !w.owing {
		return
	}
	v.owed -= len(w.ops)
	w.owing = false
	if i := slices.Index(v.owing, w); i >= 0 {
		v.owing = slices.Delete(v.owing, i, i+1) // its array kept: a view writes again
	}
}

// releaseLandedLocked stops counting against the write budget the
// acknowledged writes the view holds by now (appendLocked took their
// tokens).
func (v *view) releaseLandedLocked() {
	for i := 0; i < len(v.owing); {
		if w := v.owing[i]; w.seq != 0 && w.seq <= v.last {
			v.releaseLocked(w) // removes v.owing[i]
			continue
		}
		i++
	}
}

// backlogWait bounds how long a write waits for another socket of its
// session to work off its backlog: long enough to ride out a busy moment,
// short enough that a tab which stopped reading is soon closed as too
// slow (CloseTooSlow) rather than holding the session's writers.
const backlogWait = 50 * time.Millisecond

// waitSessionBacklog waits while a socket of the session on this instance
// has half its send buffer waiting: without end for this socket's own
// (its answers are what it waits for), at most backlogWait for another's.
// It reports false when this socket closed first.
func (c *conn) waitSessionBacklog() bool {
	if !c.out.waitBelow(c.ctx, c.out.half()) {
		return false
	}
	v := c.v.Load()
	if v == nil {
		return true // a lazy socket: no other socket of the session in a view
	}
	var busy *conn
	if socks := v.socks.Load(); socks != nil {
		for _, cn := range *socks { // no lock: a socket that just joined or left does not matter here
			if cn != c && !cn.closing.Load() && cn.out.backlogged() {
				busy = cn
				break
			}
		}
	}
	if busy == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(c.ctx, backlogWait)
	defer cancel()
	stop := context.AfterFunc(busy.ctx, cancel) // a closing socket stops counting
	defer stop()
	busy.out.waitBelow(ctx, busy.out.half())
	return c.ctx.Err() == nil
}

// dispatchPoll is how often a write waiting for its dispatcher looks
// again.
const dispatchPoll = time.Millisecond

// waitDispatch waits while the dispatcher of session id has more than a
// sixteenth of its channel (256 of the default 4096) to hand to views:
// the instance's socket writes are not taken in faster than it delivers
// their changes, which would overflow the channel (entries dropped as a
// slow consumer, then read back from JetStream in bursts), and the
// cookie budget's count of acknowledged entries the view does not hold
// yet stays short. The dispatcher never waits on JetStream, so it drains.
// False when ctx ended first.
func (h *Hub) waitDispatch(ctx context.Context, id string) bool {
	ch := h.shard(id)
	lag := cap(ch) / 16
	if len(ch) <= lag {
		return true
	}
	t := time.NewTicker(dispatchPoll)
	defer t.Stop()
	for len(ch) > lag {
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// answer sends the error of request id once the answers before it went.
func (c *conn) answer(id uint64, err error) {
	c.pipe.mu.Lock()
	if len(c.pipe.q) == 0 {
		c.pipe.mu.Unlock()
		c.fail(id, err)
		return
	}
	c.pipe.mu.Unlock()
	c.push(pending{id: id, err: err})
}

// room waits while pipelineDepth answers are owed; false when the socket
// closed first. Only the socket's read loop adds answers, so the room it
// found is still there when it pushes. waited reports that it waited,
// owed that answers were owed still when it found room.
func (c *conn) room() (ok, waited, owed bool) {
	pl := &c.pipe
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for len(pl.q) >= pipelineDepth {
		waited = true
		if pl.space == nil {
			pl.space = make(chan struct{}, 1)
		}
		space := pl.space
		pl.mu.Unlock()
		select {
		case <-space:
		case <-c.ctx.Done():
			pl.mu.Lock()
			return false, waited, true
		}
		pl.mu.Lock()
	}
	return true, waited, len(pl.q) > 0
}

// push adds an answer to the queue, waiting while pipelineDepth are owed,
// and drives the queue (answer) unless something does.
func (c *conn) push(p pending) {
	if ok, _, _ := c.room(); !ok {
		// The socket closed: nobody waits for the answer, and the budget
		// no longer waits for the append.
		if p.b != nil {
			p.b.abandon(&c.h.log.acks)
		}
		return
	}
	c.enter(p)
}

// enter is push for the read loop once room found room: only the read
// loop adds answers, so the room is still there.
func (c *conn) enter(p pending) {
	pl := &c.pipe
	pl.mu.Lock()
	pl.q = append(pl.q, p)
	start := !pl.acking
	pl.acking = true
	pl.mu.Unlock()
	if start {
		c.answerReady()
	}
}

// The queue has one driver at a time while answers are owed (acking):
// the acker goroutine (ack), which may wait, or, between answers, the
// publish the queue's head waits for (pubAck.park): whoever settles that
// publish (the shard's dispatcher, as it routes the acknowledgement)
// answers what is ready then on its own goroutine (answerReady), which
// waits for nothing, and hands anything that would wait to the acker.
// So a write answered one at a time costs no goroutine of its own: its
// ack is queued by the dispatcher that routed JetStream's.

// ack answers the queue in order until it is empty or the socket
// closes, or parks it on the publish its head waits for.
func (c *conn) ack() { c.drive(false) }

// answerReady is ack on a goroutine that must not wait: it answers what
// is ready, parks the queue on the publish its head waits for, or starts
// the acker for what would wait (an append to make, a compaction, a
// closed socket's answers).
func (c *conn) answerReady() { c.drive(true) }

// resumeAnswers drives the queue parked on f, now settled; called by whoever
// settled it.
func (c *conn) resumeAnswers(f *pubAck) {
	pl := &c.pipe
	pl.mu.Lock()
	if pl.parked != f {
		pl.mu.Unlock()
		return // unparked by the socket's end (stopped)
	}
	pl.parked = nil
	pl.mu.Unlock()
	c.answerReady()
}

// drive is ack (inline false) or answerReady (inline true).
func (c *conn) drive(inline bool) {
	pl := &c.pipe
	unsent := false // an answer enqueued, for which no writer was started
	// flush starts the writer for what was enqueued, as the queue's
	// driver leaves: the acker writes it itself, a goroutine that must
	// not wait only when the kernel takes it at once (writeSoon).
	flush := func() {
		switch {
		case !unsent:
		case inline:
			c.writeSoon()
		default:
			c.writeHere()
		}
	}
	handOff := func() {
		// What comes next waits: the acker goroutine takes the queue
		// over (acking stays set).
		pl.mu.Unlock()
		flush()
		c.h.run.run(c.ack)
	}
	for {
		pl.mu.Lock()
		if len(pl.q) == 0 && unsent && !inline {
			// The last answers: written here, then the queue is looked
			// at again (an answer pushed meanwhile finds the acker
			// running).
			pl.mu.Unlock()
			c.writeHere()
			unsent = false
			continue
		}
		if len(pl.q) == 0 {
			pl.acking = false
			if pl.idle != nil {
				close(pl.idle)
				pl.idle = nil
			}
			pl.mu.Unlock()
			flush()
			return
		}
		if unsent && !inline {
			// A writer goroutine writes it while the acker goes on to
			// the next answer; the last one it writes itself.
			c.kick()
			unsent = false
		}
		if c.ctx.Err() != nil {
			if inline {
				handOff()
				return
			}
			rest := pl.q
			pl.q = nil
			pl.mu.Unlock()
			c.orphan(rest) // then the queue is looked at again: empty by now, or what came meanwhile
			continue
		}
		p := pl.q[0]
		if b := p.b; b != nil && !b.answered {
			if !b.appended {
				if inline {
					handOff()
					return
				}
				// The acker is its first to reach it: every answer
				// before it went.
				pl.mu.Unlock()
				c.publishBatch(c.ctx, b) // false: the socket closed, seen above
				continue
			}
			if f := b.fut; f != nil && f.park(c) {
				// Not answered yet: its settling resumes the queue.
				pl.parked = f
				pl.mu.Unlock()
				flush()
				return
			}
			// Settled (park found it so): what it answered may need a
			// wait still.
			if inline && b.fullLog() {
				handOff()
				return
			}
		}
		pl.mu.Unlock()

		err := p.err
		var seq uint64
		sent := false // the ack went with the batch's change (settle)
		if b := p.b; b != nil {
			if !b.answered {
				sent = c.settle(p.id, b)
			}
			seq, err = b.seq, b.err
		}
		// Answer, then leave the queue: a request answered directly
		// (answer) once the queue is empty comes after this answer.
		if err != nil {
			c.fail(p.id, err)
		} else {
			c.h.opts.Metrics.Staged(SourceWS, time.Since(p.start))
			if !sent {
				c.enqueue(protocol.AppendAck(nil, p.id, seq, nil))
			}
			unsent = true
		}
		pl.mu.Lock()
		pl.popLocked()
		if pl.space != nil {
			select {
			case pl.space <- struct{}{}:
			default:
			}
		}
		pl.mu.Unlock()
	}
}

// fullLog reports whether b's publish, settled, found its log full:
// settle compacts the log and appends again, which waits.
func (b *batch) fullLog() bool {
	f := b.fut
	return f != nil && f.settled() && f.err != nil && errors.Is(classifyPublish(f.err), ErrTooManyPending)
}

// orphan handles the answers still owed once the socket closed: nobody
// reads them. The batches not appended yet are appended all the same, in
// order, within one WriteTimeout (a client that sent writes and then
// closed had them taken in, as when each was appended at once); no batch
// is waited for. Each is then no longer counted in flight: the log tells,
// and the view takes it in from there.
func (c *conn) orphan(rest []pending) {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.log.timeout)
	defer cancel()
	for _, p := range rest {
		b := p.b
		if b == nil || b.answered {
			continue
		}
		if !b.appended && ctx.Err() == nil {
			c.publishBatch(ctx, b)
		}
		b.abandon(&c.h.log.acks)
		b.answered = true // once per batch
	}
}

// abandon stops counting b in flight: its socket closed before it was
// answered.
func (b *batch) abandon(acks *asyncAcks) {
	v := b.own.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if b.finished {
		return
	}
	if b.fut != nil {
		acks.forget(b.fut)
	}
	if c := b.own.c; c != nil {
		c.takeEchoLocked(b.own) // nobody reads it
	}
	v.finishLocked(b, 0)
}

// settle records the answer of batch b, appended and its publish settled
// (or staged on its own), in b and in the view; it waits only when the
// log was full, to compact it and append again. An append not
// acknowledged within WriteTimeout of its publish is answered
// unavailable (asyncAcks.expire): appends published together and never
// acknowledged are answered together, not one timeout after the other.
// The batch's change to this socket, if the view held it for the answer
// (ownWrite.echoable), goes out now, with the ack of the batch's first
// write (id) when it succeeded: sent.
func (c *conn) settle(id uint64, b *batch) (sent bool) {
	seq, err := b.seq, b.err // staged, or not appended
	if b.fut != nil {
		if seq, err = b.fut.seq, b.fut.err; err != nil {
			err = classifyPublish(err)
		}
	}
	if b.fut != nil && errors.Is(err, ErrTooManyPending) {
		// A full log (its count unknown here, or other instances
		// wrote): compact it and append again, as Hub.stage does.
		ctx, cancel := context.WithTimeout(c.ctx, c.h.log.timeout)
		seq, err = c.h.compactAndAppend(ctx, c.id, SourceWS, nil, b.own.ops, err)
		cancel()
	}
	if err != nil {
		seq = 0
	}
	// Settled, and on success recorded as the view's freshest write and
	// as one reads through this instance wait for (Hub.acked), and a
	// compaction started if it is time (snapshotLater), in one hold of
	// the view's lock.
	v := b.own.v
	v.mu.Lock()
	v.finishLocked(b, seq)
	if err == nil {
		v.ackedLocked(b.start, seq)
		c.h.snapshotLaterLocked(v)
	}
	if echo := c.takeEchoLocked(b.own); echo != nil {
		// Queued in this hold of the view's lock: no later change to the
		// socket goes before it.
		if err == nil {
			c.enqueue(echo, protocol.AppendAck(nil, id, seq, nil))
			sent = true
		} else {
			c.enqueue(echo) // it landed all the same
		}
	}
	v.mu.Unlock()
	b.answered, b.seq, b.err = true, seq, err
	return sent
}

// takeEchoLocked returns w's change if this socket holds it for w's
// answer, and stops holding it. Called with the view's lock held.
func (c *conn) takeEchoLocked(w *ownWrite) []byte {
	if c.held != w {
		return nil
	}
	c.held = nil
	echo := w.echo
	w.echo = nil
	return echo
}

// flushHeldLocked sends the change the socket holds for its write's
// answer, if any: a later change, or a replay, must not go before it.
// Called with the view's lock held.
func (c *conn) flushHeldLocked() {
	if w := c.held; w != nil {
		c.queue(c.takeEchoLocked(w))
	}
}

// ownOfLocked finds the pipelined append of this instance that entry e
// is, if e is one: the oldest one appended, unanswered and not landed yet
// (a session's appends from one instance land in the order they were
// published, nextOwnLocked), when its ops are e's. Called with the view's
// lock held.
func (v *view) ownOfLocked(e entry) *ownWrite {
	if e.Source != SourceWS || e.Covers != 0 {
		return nil
	}
	if first := v.nextOwnLocked(); first != nil && sameOps(first.ops, e.Ops) {
		return first
	}
	return nil // another writer's entry
}

// echoable reports w (nil: not an own append) when its socket can take
// its change with its first ack in one frame (protocol.Subprotocol) and
// holds no other: nats-server sends the republished entry before the
// PubAck, and the socket's writer would otherwise send the change and
// the ack in two frames (view.appendLocked holds it, settle sends it).
// Called with the view's lock held.
func (w *ownWrite) echoable() *ownWrite {
	if w == nil || w.c == nil || !w.c.batch || w.c.held != nil {
		return nil
	}
	return w
}

// nextOwnLocked returns the pipelined append of this instance whose
// entry the view takes in next, if one is in flight: the oldest one
// published, unanswered and not landed yet (v.inflight is in take-in
// order). Called with the view's lock held.
func (v *view) nextOwnLocked() *ownWrite {
	var first *ownWrite
	for _, w := range v.inflight {
		if w.published && w.seq == 0 && !w.landed && (first == nil || w.order < first.order) {
			first = w
		}
	}
	return first
}

// sameOps reports whether a and b are the same ops, sequences aside.
func sameOps(a, b []session.Op) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// publishBatch appends the open batch b, which the acker reached: every
// answer before it went. It closes b to later writes first. An append
// that cannot be made sets b.err; false when ctx ended first.
func (c *conn) publishBatch(ctx context.Context, b *batch) bool {
	v := b.own.v
	v.mu.Lock()
	b.closed = true
	ops := b.own.ops
	v.mu.Unlock()
	c.pipe.open.CompareAndSwap(b, nil)
	data := encodeValid(ops) // closed: the ops no longer change
	b.appended = true
	acks := &c.h.log.acks
	for {
		// A compaction's turn (compactGated) first, then a slot: a batch
		// waiting for the gate holds none.
		v.mu.Lock()
		gate := v.gate
		v.mu.Unlock()
		if !waitClosed(ctx, gate) {
			return false
		}
		if !acks.reserve(ctx, asyncStallWait) {
			if ctx.Err() != nil {
				return false
			}
			// The connection's asynchronous publishes stayed at their
			// limit: stage the batch on its own, as pipelineWrite stages
			// a write. Its ops stay counted by both budgets meanwhile.
			c.h.stalls.Add(1)
			b.seq, b.err = c.stageReplacing(ctx, SourceWS, ops, b.own)
			return true
		}
		v.mu.Lock()
		if v.gate == nil {
			break
		}
		v.mu.Unlock()
		acks.release()
	}
	defer v.mu.Unlock()
	if c.h.closing.Load() {
		acks.release()
		b.err = wrapErr(ErrUnavailable, ErrClosed)
		return true
	}
	b.start = time.Now()
	fut, err := c.h.log.appendReserved(v.subject, c.h.lane(v.id), data, &b.ack)
	if err != nil {
		b.err = err
		return true
	}
	b.fut = fut
	v.publishedLocked(b.own, data)
	return true
}

// wait returns once every answer owed was sent; false when the socket
// closed first.
func (pl *pipeline) wait(ctx context.Context) bool {
	pl.mu.Lock()
	idle := pl.idleLocked()
	pl.mu.Unlock()
	if idle == nil {
		return true
	}
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

// stopped waits for the queue's driver to finish; the socket's context is
// done. A queue parked on a publish (pubAck.park) is taken back and
// answered here, as a closed socket's (ack, orphan): the publish may
// never be settled (its waiter gave up, asyncAcks.forget).
func (c *conn) stopped() {
	pl := &c.pipe
	pl.mu.Lock()
	if f := pl.parked; f != nil && f.unpark() {
		pl.parked = nil
		pl.mu.Unlock()
		c.ack()
		return
	}
	idle := pl.idleLocked()
	pl.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// idleLocked returns a channel closed once the queue's driver finds it
// empty (a running acker, or a publish it is parked on), nil when it has
// none. Called with pl.mu held.
func (pl *pipeline) idleLocked() chan struct{} {
	if !pl.acking {
		return nil
	}
	if pl.idle == nil {
		pl.idle = make(chan struct{})
	}
	return pl.idle
}

// budgetLocked folds into z the session as the cookie budget of a
// socket's next write counts it: after the socket's snapshot snap (z's),
// the ops of what the view holds after it, of this instance's appends the
// view does not hold yet but JetStream acknowledged (in their order), and
// of its appends still unanswered, which take the sequences after the
// view's last. Called with the view's lock held.
//
// An unanswered append may never land (a lost condition, a closed
// socket) or land after the write measured: its ops are counted only
// where they can only make the cookie larger (a set of a value at least
// as long as the key holds), so that the measure bounds every outcome.
// uncertain reports that some were left out: a write measured past the
// budget is measured again once they are answered rather than refused.
func (c *conn) budgetLocked(v *view, snap session.Snapshot, z *session.Sizer) (uncertain bool) {
	changes, _ := v.sinceLocked(snap.Seq)
	for _, e := range changes {
		for _, op := range e.Ops {
			z.Fold(op, -1)
		}
	}
	next := max(snap.Seq, v.last) + 1
	keep := v.inflight[:0]
	unanswered := 0
	for _, o := range v.inflight {
		if o.seq != 0 && o.seq <= v.last {
			continue // in the view: counted with its entries
		}
		keep = append(keep, o)
		if o.seq == 0 {
			unanswered++
		}
	}
	clear(v.inflight[len(keep):])
	v.inflight = keep
	if len(v.inflight) == 0 {
		v.inflight = nil
	}
	// Acknowledged, not yet in the view: they landed, in sequence order.
	if len(keep) > unanswered {
		acked := make([]*ownWrite, 0, len(keep)-unanswered)
		for _, o := range keep {
			if o.seq != 0 {
				acked = append(acked, o)
			}
		}
		slices.SortFunc(acked, func(a, b *ownWrite) int { return cmp.Compare(a.seq, b.seq) })
		for _, o := range acked {
			for i, op := range o.ops {
				op.Seq = next
				z.Fold(op, o.valueLen(i))
			}
			next++
		}
	}
	for _, o := range keep {
		if o.seq != 0 {
			continue
		}
		for i, op := range o.ops {
			if op.Type != session.OpSet || o.valueLen(i) < z.Held(op.Key) {
				uncertain = true // would shrink the measure: not counted
				continue
			}
			op.Seq = next
			z.Fold(op, o.valueLen(i))
		}
		next++
	}
	return uncertain
}

// measureLocked measures the cookie budget of ops, folded after
// everything the session holds and has in flight (budgetLocked), and
// reports whether they grow the cookie (measured without them only when
// the session is past the budget: a write that does not grow it passes),
// and whether appends left uncounted may change the measure. Called with
// the view's lock held.
func (c *conn) measureLocked(v *view, ops []session.Op) (n int, grows, uncertain bool, err error) {
	// A write measured may be appended: the sockets' last measures of
	// the session (conn.sizeLocked) count it from now on.
	v.growth += growthOf(ops)
	c.mu.Lock()
	snap := c.snap
	c.mu.Unlock()
	st := c.h.opts.Store
	z := st.NewSizer(snap)
	uncertain = c.budgetLocked(v, snap, &z)
	for _, op := range ops {
		op.Seq = math.MaxUint64 // after all of them, and the widest sequence the cookie may get (Store.Size)
		z.Fold(op, -1)
	}
	n, err = z.Size()
	grows = true
	if err == nil && n > session.MaxCookieSize {
		before := st.NewSizer(snap) // the session without ops
		c.budgetLocked(v, snap, &before)
		n0, err0 := before.Size()
		grows = err0 != nil || n > n0
	}
	if err != nil {
		return 0, false, false, wrapErr(ErrInternal, err)
	}
	return n, grows, uncertain, nil
}

// sizeLocked is measureLocked, unless the socket's last measure on v and
// what the session may have grown by since (view.growth, with ops) bound
// its cookie within half the budget (session.Store.SizeBound): the write
// takes the fast path either way, and is not measured. Called with the
// view's lock held.
func (c *conn) sizeLocked(v *view, ops []session.Op) (n int, grows, uncertain bool, err error) {
	if c.sizedIn == v {
		grown := v.growth + growthOf(ops)
		if bound, ok := c.h.opts.Store.SizeBound(c.sized, grown-c.sizedAt); ok && bound <= session.MaxCookieSize/2 {
			v.growth = grown
			return bound, true, false, nil
		}
	}
	n, grows, uncertain, err = c.measureLocked(v, ops)
	c.sizedIn = nil
	if _, whole := v.sinceLocked(c.snapSeq()); err == nil && whole && !v.repairing {
		// An upper bound of every outcome (budgetLocked), ops included,
		// on a view that holds every entry after the socket's snapshot:
		// those before sizedAt are in it.
		c.sized, c.sizedAt, c.sizedIn = n, v.growth, v
	}
	return n, grows, uncertain, err
}

// growthOf sums session.GrowthBound over ops.
func growthOf(ops []session.Op) int {
	g := 0
	for _, op := range ops {
		g += session.GrowthBound(op, -1)
	}
	return g
}

// valueLen returns session.ValueLen of the value of set ops[i], measured
// once. Called with the view's lock held.
func (o *ownWrite) valueLen(i int) int {
	for j := len(o.lens); j < len(o.ops); j++ { // a batch grows
		n := 0
		if op := o.ops[j]; op.Type == session.OpSet {
			n = session.ValueLen(op.Value)
		}
		o.lens = append(o.lens, n)
	}
	return o.lens[i]
}

// clientOps checks a browser's set or delete against the key policy and
// returns its op.
func (c *conn) clientOps(m protocol.ClientMessage) ([]session.Op, error) {
	p, ok := c.h.opts.ClientKeys[m.Key]
	if !ok || !p.Write {
		return nil, Errorf(CodeForbidden, "key %q is not writable by the client", protocol.Truncate(m.Key, 64))
	}
	if m.Type == protocol.TypeSet {
		if err := p.Validate(m.Value); err != nil {
			return nil, Errorf(CodeForbidden, "invalid value for %q: %v", protocol.Truncate(m.Key, 64), err)
		}
		return []session.Op{{Type: session.OpSet, Key: m.Key, Value: m.Value}}, nil
	}
	return []session.Op{{Type: session.OpDelete, Key: m.Key}}, nil
}

// asyncStallWait is how long an asynchronous append waits for room among
// the connection's outstanding publishes, before it takes the view's
// lock.
const asyncStallWait = 5 * time.Millisecond

// appendReserved publishes a socket's encoded entry (encodeEntry) to its
// session's log subject (view.subject), its acknowledgement on lane (the
// session's shard), in a slot asyncAcks.reserve took, without waiting for
// JetStream's acknowledgement: the future f (the batch's) brings it. On
// error the slot is given back. The entry has no header: an entry without
// a source is a socket's (sourceOf).
func (l *jsLog) appendReserved(subject string, lane int, data []byte, f *pubAck) (*pubAck, error) {
	if !l.acks.connected() {
		l.acks.release()
		return nil, wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	fut, err := l.acks.publishReserved(&nats.Msg{Subject: subject, Data: data}, lane, f)
	if err != nil {
		return nil, classifyPublish(err)
	}
	return fut, nil
}

// stageOne stages ops on their own, once the socket's pipelined appends
// are answered, and answers request id.
func (c *conn) stageOne(id uint64, ops []session.Op) {
	seq, err := c.stage(c.ctx, SourceWS, ops)
	if err != nil {
		c.fail(id, err)
		return
	}
	c.queue(protocol.AppendAck(nil, id, seq, nil))
}
