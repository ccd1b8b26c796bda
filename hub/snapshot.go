package hub

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/session"
)

// Snapshots keep a session's log short. A snapshot is a log entry whose
// ops are the compaction of every entry before it: the last op on each
// key (a set or a delete), after a clear when the log held one. It is
// published with Nats-Rollup: sub, so JetStream drops the entries it
// replaces, and with Nats-Expected-Last-Subject-Sequence set to the last
// entry it folds, so it lands only when no entry was appended since it was
// read: no acknowledged write is ever rolled away. A conflict just skips
// the compaction; a later append tries again.
//
// Applying the compaction to a session at any version below the snapshot
// gives the same values as applying the entries it replaces (each op
// overwrites one key, or every key for a clear, so replaying a prefix of
// the entries before all of them changes nothing), whether or not older
// entries aged out of the log and whatever the cookie held before it:
// folding stays idempotent, and a stale cookie folds one snapshot plus the
// short tail after it. A session whose log holds an end op is never
// compacted: the end op must stay for any stale cookie to fold.
const hdrSnapshot = "Sessionhub-Snapshot" // the sequence of the last entry a snapshot compacts

// maxSnapshotJobs bounds the compactions a hub runs at once; a session
// whose turn finds them all busy is compacted at a later append.
const maxSnapshotJobs = 4

// snapshotTurnAfter: a session whose socket keeps appends in flight
// (pipelined) is compacted in a turn of its own (compactGated) once its log
// grew by snapshotTurnAfter*SnapshotEvery entries (at most half of
// MaxOpsPerSession: snapshotTurn); before that, at the first moment none
// is in flight.
const snapshotTurnAfter = 4

// snapshotTurn is how long a session's log grows while this instance's
// appends of it are in flight before a compaction takes its turn: well
// below MaxOpsPerSession, so that a pipelining socket is compacted
// before its log fills.
func (h *Hub) snapshotTurn() int {
	every := h.opts.SnapshotEvery
	return max(every, min(snapshotTurnAfter*every, h.opts.MaxOpsPerSession/2))
}

// errViewClosed: a compaction's view was closed before it could publish.
var errViewClosed = errors.New("hub: session view closed")

// snapshotAttempts bounds one compaction job's tries against a moving log.
const snapshotAttempts = 3

// A compaction refused by a moving log is tried again after
// snapshotRetryBase, doubling while it keeps being refused, up to
// snapshotRetryMax.
const (
	snapshotRetryBase = 20 * time.Millisecond
	snapshotRetryMax  = 250 * time.Millisecond
)

// retrySnapshot asks for a compaction of session id's log after delay,
// unless the hub closes first.
func (h *Hub) retrySnapshot(id string, delay time.Duration) {
	if h.closing.Load() {
		return
	}
	h.workers.Add(1)
	go func() {
		defer h.workers.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			h.snapshotLater(id)
		case <-h.closed:
		}
	}()
}

// compactOps returns one list of ops equivalent to ops applied in order,
// on any starting values: a clear (when ops hold one) and the last op on
// every key. ok is false when ops hold an end op.
func compactOps(ops []session.Op) (out []session.Op, ok bool) {
	last := map[string]session.Op{}
	cleared := false
	for _, op := range ops {
		switch op.Type {
		case session.OpEnd:
			return nil, false
		case session.OpClear:
			cleared = true
			clear(last)
		default:
			last[op.Key] = session.Op{Type: op.Type, Key: op.Key, Value: op.Value}
		}
	}
	if cleared {
		out = append(out, session.Op{Type: session.OpClear})
	}
	for _, k := range slices.Sorted(maps.Keys(last)) {
		op := last[k]
		if cleared && op.Type == session.OpDelete {
			continue // absent after the clear anyway
		}
		out = append(out, op)
	}
	return out, true
}

// snapshotResult is what a compaction found in the log.
type snapshotResult struct {
	last  uint64 // the last entry read
	since int    // entries after the last snapshot read (all of them when none)
	ended bool   // the log holds an end op: never compacted
	made  uint64 // the snapshot's sequence, 0 when none was published
}

// snapshot reads the retained log of session id and, when it holds at
// least every entries after its last snapshot, publishes a snapshot of it
// in their place (errConflict when an entry was appended meanwhile).
func (l *jsLog) snapshot(ctx context.Context, id string, every int) (snapshotResult, error) {
	var res snapshotResult
	entries, err := l.fetch(ctx, id, 0, 0)
	if err != nil || len(entries) == 0 {
		return res, err
	}
	res.last = entries[len(entries)-1].Seq
	for _, e := range entries {
		if e.Covers > 0 {
			res.since = 0
		} else {
			res.since++
		}
	}
	ops, ok := compactOps(flatten(entries))
	if !ok {
		res.ended = true
		return res, nil
	}
	if res.since < every {
		return res, nil
	}
	res.made, err = l.publishSnapshot(ctx, id, ops, res.last)
	return res, err
}

// publishSnapshot appends the compaction ops of session id's log up to
// entry last as a snapshot replacing them, provided last is still the
// log's last entry (errConflict otherwise), and returns its sequence.
func (l *jsLog) publishSnapshot(ctx context.Context, id string, ops []session.Op, last uint64) (uint64, error) {
	m, err := l.snapshotMsg(id, ops, last)
	if err != nil {
		return 0, err
	}
	if !l.nc.IsConnected() {
		return 0, wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	return l.request(ctx, m)
}

// snapshotMsg is the message of a snapshot of session id's log replacing
// its entries up to last with ops, their compaction.
func (l *jsLog) snapshotMsg(id string, ops []session.Op, last uint64) (*nats.Msg, error) {
	data, err := encodeEntry(ops)
	if err != nil {
		return nil, err
	}
	if len(data) > l.maxEntry {
		return nil, wrapErr(ErrTooLarge, errors.New("snapshot larger than MaxEntrySize"))
	}
	m := nats.NewMsg(l.opsSubject(id))
	m.Data = data
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(hdrNatsExpected, strconv.FormatUint(last, 10))
	m.Header.Set(hdrSnapshot, strconv.FormatUint(last, 10))
	return m, nil
}

// snapshotLater starts a compaction of session id's log after this
// instance appended to it, when its view has seen SnapshotEvery entries
// since the last snapshot, or does not know how many there are (a view
// loaded after the cookie's version). It never waits: the view publishes
// the snapshot at once when it can (snapshotHereLocked), or else the
// compaction runs on a goroutine of its own, one per session at a time
// and at most maxSnapshotJobs per hub, and the hub waits for it on Close.
// A snapshot published and not answered yet when the hub closes is failed
// with the rest of its publishes (asyncAcks.stop): it may still land, as
// any snapshot may, on the log's last entry only.
func (h *Hub) snapshotLater(id string) {
	if h.opts.SnapshotEvery <= 0 {
		return
	}
	v := h.lookup(id)
	if v == nil {
		h.snapshotViewless(id)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	h.snapshotLaterLocked(v)
}

// snapshotLaterLocked is snapshotLater for the session of view v, with
// the view's lock held.
func (h *Hub) snapshotLaterLocked(v *view) {
	if h.opts.SnapshotEvery <= 0 {
		return
	}
	if v.closed || v.compacting || v.ended || h.closing.Load() || (v.counted && v.sinceSnap < h.opts.SnapshotEvery) {
		return
	}
	if v.unacked > 0 && v.sinceSnap < h.snapshotTurn() {
		// Appends of this instance are in flight: the compaction would
		// hold the session's next ones until they land. Wait for a pause
		// (the last one's ack calls again) unless the log grew long.
		return
	}
	if time.Now().Before(v.snapAfter) {
		return
	}
	if v.snapshotHereLocked() {
		return
	}
	select {
	case h.snapshotJobs <- struct{}{}:
	default:
		return // busy: a later append tries again
	}
	v.compacting = true
	h.workers.Add(1)
	go v.snapshot()
}

// maxViewless bounds the sessions whose appends snapshotViewless counts;
// past it the counts start over (a session then compacts later, and a
// full log still compacts on the append it refuses).
const maxViewless = 4096

// snapshotViewless counts this instance's appends to a session it has no
// view of (Hub.Write from a worker, the server API) and compacts the
// session's log once they reach SnapshotEvery, so a session written only
// from outside sockets and requests stays short too.
func (h *Hub) snapshotViewless(id string) {
	every := h.opts.SnapshotEvery
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.viewless[id]
	if ok && n < 0 { // compacting
		return
	}
	n++
	if n < every || h.closing.Load() {
		if !ok && len(h.viewless) >= maxViewless {
			clear(h.viewless)
		}
		h.viewless[id] = n
		return
	}
	select {
	case h.snapshotJobs <- struct{}{}:
	default:
		h.viewless[id] = n // busy: a later append tries again
		return
	}
	h.viewless[id] = -1
	h.workers.Add(1)
	go func() {
		defer h.workers.Done()
		defer func() { <-h.snapshotJobs }()
		res, err := h.compact(id)
		h.mu.Lock()
		defer h.mu.Unlock()
		switch {
		case errors.Is(err, errConflict):
			h.viewless[id] = every - 1 // the next append, or the retry, tries again
			h.retrySnapshot(id, snapshotRetryBase)
		case err != nil, res.ended:
			h.viewless[id] = 0
		case res.made > 0:
			h.viewless[id] = 0
		default:
			h.viewless[id] = res.since
		}
	}()
}

// compact runs one compaction of session id's log, retrying a few times
// against a moving log.
func (h *Hub) compact(id string) (res snapshotResult, err error) {
	// A write that lands between the read and the publish refuses the
	// snapshot; under steady writes the next read usually wins.
	for attempt := 0; attempt < snapshotAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(h.bg, h.log.timeout)
		res, err = h.log.snapshot(ctx, id, h.opts.SnapshotEvery)
		cancel()
		if !errors.Is(err, errConflict) {
			break
		}
	}
	if err != nil && !errors.Is(err, errConflict) && h.bg.Err() == nil {
		h.opts.Logger.Warn("session snapshot failed", "session", id, "err", err)
	}
	return res, err
}

// snapshotHereLocked compacts the view's session log on the caller's
// goroutine, from what the view holds, when none of this instance's
// appends of the session is unanswered and the view holds every entry
// this instance acknowledged: it then knows the log up to its last entry
// (retainedLocked). The snapshot is published at once, its
// acknowledgement routed as an append's is (asyncAcks), to snapshotAcked:
// nothing waits for it. Published under the view's lock, it goes out
// ahead of this instance's next append of the session, which needs no
// gate: a write of another instance, or staged, landing first refuses it
// (errConflict), as it does any snapshot. It reports false when the view
// cannot tell, or an append is in flight: the compaction then runs on a
// goroutine (view.snapshot). Called with the view's lock held.
func (v *view) snapshotHereLocked() bool {
	if v.unacked > 0 || v.last < v.want {
		return false
	}
	// ok: the view read the log from its start or saw a snapshot since,
	// so sinceSnap is the log's count (view.counted).
	ops, last, ok := v.retainedLocked()
	if !ok {
		return false
	}
	v.compacting = true
	v.publishSnapshotLocked(ops, last)
	return true
}

// publishSnapshotLocked publishes the snapshot of the retained log ops,
// whose last entry is last (retainedLocked), without waiting for its
// acknowledgement, and ends the view's compaction (snapshotDoneLocked):
// once acknowledged (snapshotAcked), or at once when the log needs none
// (too few entries since the last, or an end op) or the publish failed.
// Called with the view's lock held and v.compacting set.
func (v *view) publishSnapshotLocked(ops []session.Op, last uint64) {
	if v.sinceSnap < v.h.opts.SnapshotEvery {
		v.snapshotDoneLocked(snapshotResult{last: last, since: v.sinceSnap}, nil)
		return
	}
	compact, ok := compactOps(ops)
	if !ok {
		v.snapshotDoneLocked(snapshotResult{last: last, ended: true}, nil)
		return
	}
	if err := v.h.log.publishSnapshotAsync(v.id, v.h.lane(v.id), compact, last, func(f *pubAck) { v.snapshotAcked(f, last) }); err != nil {
		v.snapshotDoneLocked(snapshotResult{last: last}, err)
	}
}

// publishSnapshotAsync is publishSnapshot without a wait: its
// acknowledgement, on lane, goes to then.
func (l *jsLog) publishSnapshotAsync(id string, lane int, ops []session.Op, last uint64, then func(*pubAck)) error {
	m, err := l.snapshotMsg(id, ops, last)
	if err != nil {
		return err
	}
	if !l.acks.tryReserve() {
		return errStalled // the connection's publishes are at their limit: later
	}
	if !l.acks.connected() {
		l.acks.release()
		return wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	if _, err := l.acks.publishReserved(m, lane, &pubAck{then: then}); err != nil {
		return classifyPublish(err)
	}
	return nil
}

// snapshotAcked records the acknowledgement of a snapshot that
// publishSnapshotLocked published, of the log up to entry last.
func (v *view) snapshotAcked(f *pubAck, last uint64) {
	err := f.err
	if err != nil {
		err = classifyPublish(err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.snapshotDoneLocked(snapshotResult{last: last, made: f.seq}, err)
}

// snapshot compacts the view's session log on a goroutine of its own
// (snapshotLater, compactGated).
func (v *view) snapshot() {
	h := v.h
	defer h.workers.Done()
	defer func() { <-h.snapshotJobs }()
	ctx, cancel := context.WithTimeout(h.bg, h.log.timeout)
	res, handed, err := v.compactGated(ctx)
	cancel()
	if handed {
		return // publishSnapshotLocked ends it
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.snapshotDoneLocked(res, err)
}

// snapshotDoneLocked ends the view's compaction, which found res in the
// log or failed with err, and records what it learnt of the log. Called
// with the view's lock held.
func (v *view) snapshotDoneLocked(res snapshotResult, err error) {
	h := v.h
	v.compacting = false
	if err != nil && !errors.Is(err, errConflict) && !errors.Is(err, errStalled) && !errors.Is(err, errViewClosed) && !h.closing.Load() && h.bg.Err() == nil {
		h.opts.Logger.Warn("session snapshot failed", "session", v.id, "err", err)
	}
	switch {
	case errors.Is(err, errConflict), errors.Is(err, errStalled):
		// Busy log: rather than re-read it at every append, try again after
		// a pause that grows while the log keeps moving, whether or not
		// anyone writes meanwhile (the writes that refused it may have
		// been the last). A log that fills up meanwhile is compacted by the
		// append it refuses (Hub.stage).
		v.snapRetry++
		delay := min(snapshotRetryBase<<min(v.snapRetry, 8), snapshotRetryMax)
		v.snapAfter = time.Now().Add(delay)
		h.retrySnapshot(v.id, delay)
		h.opts.Logger.Debug("session snapshot skipped: the log moved on", "session", v.id, "retry_in", delay)
	case err != nil:
		// Logged above. A later append tries again, not at once: a
		// snapshot too large, or a connection down, would fail again at
		// every append.
		v.snapAfter = time.Now().Add(snapshotRetryMax)
	case res.ended:
		v.ended = true
	default:
		v.snapRetry, v.snapAfter = 0, time.Time{}
		// The log's count is known now: what was read, and what the view
		// took in after it.
		v.sinceSnap, v.counted = res.since, true
		if res.made > 0 {
			v.sinceSnap = 0
			h.opts.Logger.Debug("session snapshot", "session", v.id, "seq", res.made, "covers", res.last)
		}
		for _, e := range v.tail {
			if e.Seq > max(res.last, res.made) {
				v.sinceSnap++
			}
		}
	}
}

// compactGated compacts the view's session log while this instance's
// pipelined appends of it wait (view.gate): a snapshot lands only on the
// log's last entry, and a socket that always has appends in flight
// would otherwise refuse every one. Once the appends in flight are
// answered and their entries are in the view, the view knows the log up
// to its last entry and the snapshot is made from what it holds (base
// and tail), without reading JetStream, and published before the gate
// opens: handed reports that publishSnapshotLocked took the compaction
// over. A view that cannot tell (it read the log after a cookie's
// version and saw no snapshot since) reads the log once, the gate shut.
// Appends from other instances, or staged one at a time, can still
// refuse it (errConflict).
func (v *view) compactGated(ctx context.Context) (res snapshotResult, handed bool, err error) {
	h := v.h
	gate := make(chan struct{})
	v.mu.Lock()
	v.gate = gate
	settled := v.settledLocked()
	v.mu.Unlock()
	open := func() {
		v.gate = nil
		close(gate)
	}
	if !waitClosed(ctx, settled) {
		v.mu.Lock()
		defer v.mu.Unlock()
		open()
		return snapshotResult{}, false, errConflict // the appends did not settle in time: later
	}
	v.mu.Lock()
	v.waitAckedDroppingLock(ctx)
	if v.closed {
		// Closed meanwhile (the janitor, Close): its tail is gone, and
		// its compaction with it.
		open()
		v.mu.Unlock()
		return snapshotResult{}, false, errViewClosed
	}
	ops, last, ok := v.retainedLocked()
	switch {
	case v.ended:
		open()
		v.mu.Unlock()
		return snapshotResult{last: last, ended: true}, false, nil
	case ok:
		v.publishSnapshotLocked(ops, last)
		open()
		v.mu.Unlock()
		return snapshotResult{}, true, nil
	}
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		open()
		v.mu.Unlock()
	}()
	res, err = h.log.snapshot(ctx, v.id, h.opts.SnapshotEvery)
	return res, false, err
}
