package hub

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/sessionhub/sessionhub/session"
)

// view is one instance's picture of one session's log: a subscription to
// its live changes, the recent tail of entries, and the sockets of the
// session on this instance. Reads on the hot path (a request's fold, a
// socket's welcome) are served from the tail without a NATS round trip;
// only what the tail lacks is fetched from JetStream.
type view struct {
	h       *Hub
	id      string
	subject string // the session's log subject (jsLog.opsSubject), for its appends

	ready chan struct{} // closed once load finished (ok or not)

	mu     sync.Mutex
	sub    *nats.Subscription
	loaded bool    // load finished
	stale  bool    // the tail may lack entries (a failed load, a NATS reconnect): reads go to JetStream
	from   uint64  // every entry of the session above from is in tail
	last   uint64  // the highest sequence seen
	tail   []entry // ascending, all above from
	ring   []entry // the tail's array once it holds ViewTail entries (appendLocked)
	early  []*nats.Msg
	conns  map[*conn]struct{} // changed only by addConnLocked and removeConnLocked
	// socks holds the sockets of conns, for what reads them without the
	// lock (waitSessionBacklog, on every socket write): a slice replaced,
	// never changed, whenever conns changes.
	socks  atomic.Pointer[[]*conn]
	want   uint64        // the highest sequence this instance acknowledged
	moved  chan struct{} // closed when last advances; made by a waiter, nil when none waits
	refs   int
	idle   time.Time
	closed bool

	// This instance's pipelined appends of the session (pipeline.go):
	// counted by the cookie budget until the view holds them; settled is
	// closed once none is unanswered (settledLocked).
	inflight []*ownWrite
	unacked  int
	settled  chan struct{}
	// woken collects the sockets whose writers the dispatcher starts
	// after onLive (wakeLocked); nil otherwise.
	woken *[]*conn
	// For the write budget: the writes taken in and neither failed nor in
	// the view yet (where their entry takes its tokens), and their ops.
	owing []*ownWrite
	owed  int
	// publishes numbers this instance's pipelined appends of the session
	// in the order they were published (ownWrite.echoable).
	publishes uint64
	// growth sums session.GrowthBound over every op the view took in and
	// every write of this instance measured (an own entry counts twice):
	// a socket's last measure and the growth since bound its next
	// (conn.sizeLocked).
	growth int

	repairing bool // a repair goroutine runs (repairLocked)
	missed    bool // an entry arrived past a gap while repairing: repair again

	// Compaction (snapshot.go): entries seen since the last snapshot, and
	// whether that count is the log's (the view has read the log since its
	// last snapshot) or a lower bound.
	sinceSnap  int
	counted    bool
	compacting bool      // a compaction runs
	snapRetry  int       // compactions refused in a row by a moving log
	snapAfter  time.Time // no compaction starts before (after a refused or failed one)
	ended      bool      // the log holds an end op: never compacted
	// The retained log as the view knows it, so that a compaction needs
	// no read of JetStream (view.retainedLocked): snapSeq is the last
	// snapshot the view saw (0: none), and base the compaction of the
	// entries from it that left the tail (ViewTail): the last op on each
	// key, after a clear when baseCleared. baseOK: base and the tail hold
	// the whole retained log (the view read the log from its start or
	// since saw a snapshot).
	snapSeq     uint64
	base        map[string]session.Op
	baseCleared bool
	baseOK      bool
	// gate is non-nil while a compaction waits for this instance's
	// pipelined appends of the session to settle and publishes its
	// snapshot: new pipelined appends wait for it to close.
	gate chan struct{}

	// budget is the session's write budget (Options.SessionWriteRate),
	// debited by every entry the view sees, whoever wrote it.
	budget *rate.Limiter
	// fresh is when the view last saw an entry just written (its own
	// append or a live one): until Retention/2 after it, the log is known
	// not to be empty, and a write needs no wake (lazy.go).
	fresh time.Time

	// revoked: the session ended (the revocation bucket holds it);
	// revChecked: revoked is known, kept up to date by the bucket's
	// subscription until a NATS reconnect.
	revoked, revChecked bool
}

// lookup returns the view of session id on this instance, or nil; it
// neither creates nor references it.
func (h *Hub) lookup(id string) *view {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.views[id]
}

// acquire returns the view of session id, creating and loading it when
// needed; after is the caller's version (its cookie's seq), where a new
// view starts. The caller must release it.
func (h *Hub) acquire(ctx context.Context, id string, after uint64) *view {
	h.checkReconnect()
	h.mu.Lock()
	v, ok := h.views[id]
	if !ok {
		v = &view{h: h, id: id, subject: h.log.opsSubject(id), ready: make(chan struct{}), conns: map[*conn]struct{}{},
			budget: rate.NewLimiter(rate.Limit(h.opts.SessionWriteRate), h.opts.SessionWriteBurst)}
		h.views[id] = v
	}
	v.mu.Lock()
	v.refs++
	v.mu.Unlock()
	h.mu.Unlock()
	if !ok {
		h.opts.Metrics.ViewOpened()
		v.load(ctx, after)
	} else {
		// Always the loaded view, whatever ctx: a socket that joined a view
		// still loading would miss the entries its load reads (they go to
		// the tail, not to the sockets). The load is bounded by the log's
		// timeouts.
		<-v.ready
	}
	return v
}

// checkReconnect marks every view stale after the NATS connection
// reconnected: republished entries may have been missed while it was down.
// Reads then go to JetStream until the view is whole again (the resync of
// resync.go, or the repair a later entry's gap starts).
func (h *Hub) checkReconnect() {
	n := h.opts.Conn.Stats().Reconnects
	if n == h.reconnects.Load() {
		return
	}
	h.reconnects.Store(n)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.views {
		v.mu.Lock()
		v.stale = true
		// JetStream may have lost entries the view holds (a restart, a
		// leader change) and given their sequences to others: the next
		// compaction reads the log once rather than trust the view.
		v.baseOK = false
		if !v.revoked {
			v.revChecked = false // a revocation may have been missed too
		}
		v.mu.Unlock()
	}
}

// release drops a reference; the janitor closes views idle past ViewIdle.
func (v *view) release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refs--
	if v.refs == 0 {
		v.idle = time.Now()
	}
}

// load subscribes to the live changes, then reads the log after the
// given sequence from JetStream. Changes that arrive meanwhile are
// buffered and merged by sequence. A view whose load failed still serves
// its sockets; the resyncer retries until it catches up.
func (v *view) load(ctx context.Context, after uint64) {
	defer close(v.ready)
	log := v.h.log
	var sub *nats.Subscription
	err := error(nats.ErrDisconnected)
	if log.nc.IsConnected() { // degraded mode answers at once
		sub, err = log.nc.ChanSubscribe(log.liveSubject(v.id), v.h.shard(v.id))
	}
	if err == nil {
		v.mu.Lock()
		v.sub = sub
		v.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, log.timeout)
		err = log.nc.FlushWithContext(fctx) // the server has the subscription
		cancel()
	}
	var changes []entry
	if err == nil {
		changes, err = log.fetch(ctx, v.id, after, 0)
	}
	if err == nil {
		v.checkRevoked(ctx)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.from, v.last = after, after
	// Read from the start, the tail holds the whole retained log, and so
	// do the repairs that fill it after a failed load.
	v.baseOK = after == 0
	if err != nil {
		v.h.opts.Logger.Warn("session view not loaded; reading JetStream until it is", "session", v.id, "err", err)
		v.early = nil
		v.loaded, v.stale = true, true
		v.h.resync.schedule(v) // retried until JetStream answers
		return
	}
	v.tail = changes
	if n := len(changes); n > 0 {
		v.last = changes[n-1].Seq
	}
	v.counted = after == 0 // read from the start
	for _, e := range changes {
		v.countLocked(e)
	}
	v.loaded = true
	early := v.early
	v.early = nil
	for _, m := range early {
		v.applyLocked(m)
	}
}

// isRevoked reports whether the session ended: from the view once known,
// otherwise from the revocation bucket. When the bucket cannot be reached
// the session is served as the log has it (degraded, logged) and the next
// read asks again.
func (v *view) isRevoked(ctx context.Context) bool {
	v.mu.Lock()
	known, revoked := v.revChecked, v.revoked
	v.mu.Unlock()
	if known {
		return revoked
	}
	return v.checkRevoked(ctx)
}

// checkRevoked asks the revocation bucket whether the session ended.
func (v *view) checkRevoked(ctx context.Context) bool {
	revoked, err := v.h.revoked.revoked(ctx, v.id)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.h.opts.Logger.Warn("revocation not checked; serving the session as its log has it", "session", v.id, "err", err)
		return v.revoked
	}
	v.markRevokedLocked(revoked)
	return v.revoked
}

// markRevokedLocked records what the revocation bucket says of the
// session; a revoked session's log is never compacted.
func (v *view) markRevokedLocked(revoked bool) {
	v.revoked = v.revoked || revoked
	v.revChecked = true
	v.ended = v.ended || v.revoked
}

// onLive receives a republished log entry, from the dispatcher goroutine
// of the view's shard, one message at a time. The sockets a change was
// queued for are added to woken, for the dispatcher to start their
// writers once the view's lock is let go (conn.writeSoon).
func (v *view) onLive(m *nats.Msg, woken *[]*conn) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	if !v.loaded {
		v.early = append(v.early, m)
		return
	}
	v.woken = woken
	v.applyLocked(m)
	v.woken = nil
}

// applyLocked merges one republished entry: duplicates are dropped; an
// entry that follows what the view holds is appended and delivered; an
// entry past a gap (its predecessor is newer than what the view has: a
// reconnect, a dropped message) is not applied: the view goes stale and a
// repair reads everything it lacks from JetStream, the entry included,
// off the dispatcher's goroutine. A view never holds a hole.
func (v *view) applyLocked(m *nats.Msg) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrNatsSeq), 10, 64)
	if err != nil || seq <= v.last {
		return
	}
	e, own, err := v.entryLocked(m, seq)
	if err != nil {
		v.h.opts.Logger.Error("session view: bad log entry", "session", v.id, "seq", seq, "err", err)
		return
	}
	prev, _ := strconv.ParseUint(m.Header.Get(hdrNatsLastSeq), 10, 64)
	if prev > v.last {
		v.repairLocked()
		return
	}
	if prev == v.last && !v.repairing {
		// The entry follows what the view holds: nothing is missing.
		v.stale = false
	}
	now := time.Now()
	v.fresh = now
	v.appendLocked(e, own, now)
}

// entryLocked is entryOf for a republished entry m at seq, and the
// pipelined append of this instance that it is, if it is one: one whose
// payload is that of the next own append (nextOwnLocked) is not decoded,
// its ops are at hand as published; any other is not one of them (a
// republished entry carries its published payload).
func (v *view) entryLocked(m *nats.Msg, seq uint64) (entry, *ownWrite, error) {
	w := v.nextOwnLocked()
	if w == nil || !bytes.Equal(w.data, m.Data) || m.Header.Get(hdrSnapshot) != "" {
		e, err := entryOf(m, seq)
		return e, nil, err
	}
	ops := make([]session.Op, len(w.ops))
	for i, op := range w.ops {
		op.Seq = seq
		ops[i] = op
	}
	return entry{Seq: seq, Ops: ops, Source: sourceOf(m, false)}, w, nil
}

// repairLocked marks the view stale (reads go to JetStream meanwhile) and
// makes sure one repair goroutine reads what the view lacks. The hub
// waits for it on Close.
func (v *view) repairLocked() {
	v.stale = true
	if v.closed {
		return
	}
	if v.repairing {
		v.missed = true
		return
	}
	v.repairing = true
	v.h.workers.Add(1)
	go v.repair()
}

// repairBackoff is the wait between failed repair attempts, doubled each
// time up to repairBackoffMax; a repair gives up after repairAttempts
// (the view stays stale: reads go to JetStream, the next gap or Sync
// tries again).
const (
	repairBackoff    = 50 * time.Millisecond
	repairBackoffMax = 2 * time.Second
	repairAttempts   = 8
)

// repair reads from JetStream every entry the view lacks, until a read
// finds the view whole, with a backoff while JetStream cannot be reached.
func (v *view) repair() {
	defer v.h.workers.Done()
	wait := repairBackoff
	for attempt := 1; ; attempt++ {
		v.mu.Lock()
		if v.closed {
			v.repairing = false
			v.mu.Unlock()
			return
		}
		v.missed = false
		// A worker the hub's Close waits for: its read ends with the hub.
		ctx, cancel := context.WithTimeout(v.h.bg, v.h.log.timeout)
		err := v.fetchDroppingLock(ctx)
		cancel()
		done := err == nil && !v.missed && !v.stale
		if done || attempt == repairAttempts || v.closed {
			if err != nil && !v.closed {
				v.h.opts.Logger.Warn("session view: gap not filled", "session", v.id, "attempts", attempt, "err", err)
			}
			v.repairing = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		if err == nil {
			continue // more arrived past the gap meanwhile: read again
		}
		select {
		case <-time.After(wait):
		case <-v.h.closed:
		}
		wait = min(2*wait, repairBackoffMax)
	}
}

// takeInLocked is appendLocked for an entry read from JetStream: the own
// append it may be is found by its ops (ownOfLocked).
func (v *view) takeInLocked(c entry, now time.Time) { v.appendLocked(c, v.ownOfLocked(c), now) }

// appendLocked adds an entry above last to the tail and delivers it to
// every socket of the session on this instance; own is the pipelined
// append of this instance that it is (entryLocked, ownOfLocked), nil for
// any other entry.
func (v *view) appendLocked(c entry, own *ownWrite, now time.Time) {
	if c.Seq <= v.last || v.closed {
		return // a closed view holds nothing any more
	}
	if own != nil {
		own.landed = true
	}
	v.last = c.Seq
	if v.moved != nil {
		close(v.moved)
		v.moved = nil
	}
	v.countLocked(c)
	if c.Covers == 0 {
		// Into debt if need be: the entry is written. A reservation past
		// the burst would take nothing.
		v.budget.ReserveN(now, min(entryWrites(c), v.h.opts.SessionWriteBurst))
	}
	v.growth += growthOf(c.Ops)
	v.tail = append(v.tail, c)
	if max := v.h.opts.ViewTail; len(v.tail) > max {
		drop := len(v.tail) - max
		v.from = v.tail[drop-1].Seq
		for _, e := range v.tail[:drop] {
			v.baseLocked(e)
		}
		// The dropped entries' ops are not kept alive. One by one, not
		// with clear: the race detector sees these writes, and so any
		// reader of the tail's entries that let go of the view's lock.
		for i := range drop {
			v.tail[i] = entry{}
		}
		v.tail = v.tail[drop:]
		if cap(v.tail) == len(v.tail) || cap(v.tail) > 2*max {
			// The next entry would not fit behind the tail (or its array
			// is larger than a tail needs): the tail moves to the front of
			// the view's own array of twice ViewTail, which takes as many
			// entries again before the next move, so that a busy view's
			// tail costs no allocation. (Every reader of the tail holds
			// the view's lock.)
			if len(v.ring) != 2*max {
				v.ring = make([]entry, 2*max)
			}
			n := copy(v.ring, v.tail)
			for i := n; i < len(v.ring); i++ {
				v.ring[i] = entry{} // what was moved is not kept twice
			}
			v.tail = v.ring[:n]
		}
	}
	// The sockets are walked in socks, the slice that mirrors conns
	// (socksChangedLocked, under the lock held here), not in the map,
	// whose walk draws a random start at every entry.
	socks := v.socks.Load()
	if socks == nil || len(*socks) == 0 {
		return
	}
	msg := v.h.changeMessage(c)
	echo := own.echoable()
	for _, cn := range *socks {
		w := echo
		if echo != nil && cn != echo.c {
			w = nil
		}
		if cn.deliverHolding(c, msg, w) {
			v.wakeLocked(cn)
		}
	}
	v.h.opts.Metrics.Delivered(len(*socks))
}

// addConnLocked makes c one of the view's sockets. Called with v.mu held.
func (v *view) addConnLocked(c *conn) {
	v.conns[c] = struct{}{}
	v.socksChangedLocked()
}

// removeConnLocked makes c none of the view's sockets. Called with v.mu
// held.
func (v *view) removeConnLocked(c *conn) {
	delete(v.conns, c)
	v.socksChangedLocked()
}

// socksChangedLocked replaces socks with the sockets of conns.
func (v *view) socksChangedLocked() {
	socks := slices.Collect(maps.Keys(v.conns))
	v.socks.Store(&socks)
}

// wakeLocked starts the writer of c, which a change was queued for: at
// once, or, while the shard's dispatcher holds the view's lock (onLive),
// once it lets go of it (conn.writeSoon). Called with the view's lock
// held.
func (v *view) wakeLocked(c *conn) {
	if v.woken != nil {
		*v.woken = append(*v.woken, c)
		return
	}
	c.kick()
}

// countLocked counts an entry towards the next snapshot.
func (v *view) countLocked(e entry) {
	if e.Covers > 0 {
		v.sinceSnap, v.counted = 0, true
		// The retained log starts at this snapshot now.
		v.snapSeq, v.base, v.baseCleared, v.baseOK = e.Seq, nil, false, true
	} else {
		v.sinceSnap++
	}
	for _, op := range e.Ops {
		v.ended = v.ended || op.Type == session.OpEnd
	}
}

// baseLocked folds an entry leaving the tail into base, when it is part of
// the retained log (not older than the last snapshot).
func (v *view) baseLocked(e entry) {
	if !v.baseOK || e.Seq < v.snapSeq {
		return
	}
	for _, op := range e.Ops {
		switch op.Type {
		case session.OpClear, session.OpEnd:
			// An end op is never compacted (v.ended); a clear makes every
			// earlier op moot.
			clear(v.base)
			v.baseCleared = true
		default:
			if v.base == nil {
				v.base = map[string]session.Op{}
			}
			v.base[op.Key] = session.Op{Type: op.Type, Key: op.Key, Value: op.Value}
		}
	}
}

// retainedLocked returns the ops of the session's retained log in order,
// from what the view holds (base, then the tail from the last snapshot),
// with the sequence of its last entry; ok is false when the view cannot
// tell (it read the log after a cookie's version and saw no snapshot
// since, or may lack entries).
func (v *view) retainedLocked() (ops []session.Op, last uint64, ok bool) {
	if v.closed || !v.loaded || v.stale || v.repairing || !v.baseOK || v.last == 0 {
		return nil, 0, false
	}
	i := 0
	for i < len(v.tail) && v.tail[i].Seq < v.snapSeq {
		i++
	}
	n := len(v.base) + 1
	for _, e := range v.tail[i:] {
		n += len(e.Ops)
	}
	ops = make([]session.Op, 0, n)
	if v.baseCleared {
		ops = append(ops, session.Op{Type: session.OpClear})
	}
	for _, op := range v.base {
		ops = append(ops, op) // one op per key: their order does not matter
	}
	for _, e := range v.tail[i:] {
		ops = append(ops, e.Ops...)
	}
	return ops, v.last, true
}

// acked is view.ackedLocked for session id's view on this instance, if
// it has one.
func (h *Hub) acked(id string, at time.Time, seq uint64) {
	v := h.lookup(id)
	if v == nil {
		return
	}
	v.mu.Lock()
	v.ackedLocked(at, seq)
	v.mu.Unlock()
}

// waitAckedDroppingLock waits until the view holds every entry this
// instance acknowledged (read your writes). The republished copy normally
// arrives within a millisecond; after a short wait the view reads
// JetStream instead. Called with v.mu held, it releases the lock while it
// waits and reads, and holds it again when it returns.
func (v *view) waitAckedDroppingLock(ctx context.Context) {
	if v.last >= v.want || !v.loaded || v.stale {
		return
	}
	deadline := time.NewTimer(250 * time.Millisecond)
	defer deadline.Stop()
	for waiting := true; waiting && v.last < v.want && !v.closed; {
		if v.moved == nil {
			v.moved = make(chan struct{})
		}
		moved := v.moved
		v.mu.Unlock()
		select {
		case <-moved:
		case <-deadline.C:
			waiting = false
		case <-ctx.Done():
			waiting = false
		}
		v.mu.Lock()
	}
	if v.last < v.want && !v.closed {
		if err := v.fetchDroppingLock(ctx); err != nil {
			v.h.opts.Logger.Warn("session view: catching up failed", "session", v.id, "err", err)
			return
		}
		// JetStream has nothing more: do not wait for it again.
		v.want = min(v.want, v.last)
	}
}

// sinceLocked returns the entries above after that the tail holds, and whether
// the tail covers everything above after. They are the tail's own: read
// them before letting go of the view's lock, which the dispatcher takes
// to clear and move them (appendLocked).
func (v *view) sinceLocked(after uint64) ([]entry, bool) {
	if !v.loaded || v.stale || after < v.from {
		return nil, false
	}
	i := 0
	for i < len(v.tail) && v.tail[i].Seq <= after {
		i++
	}
	return v.tail[i:], true
}

// sync reads from JetStream whatever the view lacks, so that it holds
// every entry acknowledged before the call.
func (v *view) sync(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fetchDroppingLock(ctx)
}

// catchUp makes the view hold every entry of the log up to seq and be
// whole: at once when it is, otherwise with one read from JetStream.
func (v *view) catchUp(ctx context.Context, seq uint64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.loaded && !v.stale && v.last >= seq {
		return nil
	}
	return v.fetchDroppingLock(ctx)
}

// fetchDroppingLock reads every entry above last from JetStream and
// appends them. Having read everything above last in one go, the view is
// whole again unless it moved meanwhile. Called with v.mu held, it
// releases the lock during the read and holds it again when it returns.
func (v *view) fetchDroppingLock(ctx context.Context) error {
	after := v.last
	v.mu.Unlock()
	changes, err := v.h.log.fetch(ctx, v.id, after, 0)
	v.mu.Lock()
	if err != nil {
		return err
	}
	if v.last == after {
		v.stale = false
	}
	now := time.Now()
	for _, c := range changes {
		v.takeInLocked(c, now)
	}
	return nil
}

// close unsubscribes and drops the tail (the janitor and Close call it;
// sockets are closed by their own paths).
func (v *view) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	v.closed = true
	if v.moved != nil {
		close(v.moved) // waiters look again and find the view closed
		v.moved = nil
	}
	if v.sub != nil {
		_ = v.sub.Unsubscribe()
	}
	v.tail, v.ring = nil, nil
}
