package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// A snapshot's ops, applied at any version below it, give the values the
// entries it replaces give: on any starting values (a cookie may hold
// keys written while NATS was down, or ops that aged out), after any
// prefix of those entries (a stale cookie folded some of them already).
func TestCompactOpsEquivalent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "b", "c", "d"}
	randomOp := func() session.Op {
		k := keys[r.IntN(len(keys))]
		switch n := r.IntN(10); {
		case n < 6:
			return session.Op{Type: session.OpSet, Key: k, Value: json.RawMessage(fmt.Sprintf("%d", r.IntN(100)))}
		case n < 9:
			return session.Op{Type: session.OpDelete, Key: k}
		default:
			return session.Op{Type: session.OpClear}
		}
	}
	for i := range 5000 {
		ops := make([]session.Op, r.IntN(12))
		for j := range ops {
			ops[j] = randomOp()
			ops[j].Seq = uint64(j + 1)
		}
		base := map[string]json.RawMessage{}
		for _, k := range keys {
			if r.IntN(2) == 0 {
				base[k] = json.RawMessage(`"old"`)
			}
		}
		prefix := r.IntN(len(ops) + 1)
		want := session.Snapshot{Values: maps.Clone(base)}.Fold(ops)

		compact, ok := compactOps(ops)
		if !ok {
			t.Fatal("no end op, but compactOps refused")
		}
		snapSeq := uint64(len(ops) + 1)
		for j := range compact {
			compact[j].Seq = snapSeq
		}
		// A reader that folded the first prefix entries, then the snapshot.
		got := session.Snapshot{Values: maps.Clone(base)}.Fold(ops[:prefix]).Fold(compact)
		if !maps.EqualFunc(got.Values, want.Values, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Fatalf("case %d: ops %v, base %v, prefix %d: snapshot %v gives %v, the entries give %v", i, ops, base, prefix, compact, got.Values, want.Values)
		}
		// And a snapshot of a snapshot and more entries is one too.
		more := []session.Op{randomOp(), randomOp()}
		for j := range more {
			more[j].Seq = snapSeq + uint64(j) + 1
		}
		again, _ := compactOps(append(append([]session.Op(nil), compact...), more...))
		for j := range again {
			again[j].Seq = snapSeq + 10
		}
		want2 := want.Fold(more)
		got2 := session.Snapshot{Values: maps.Clone(base)}.Fold(ops[:prefix]).Fold(again)
		if !maps.EqualFunc(got2.Values, want2.Values, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Fatalf("case %d: second snapshot %v gives %v, want %v", i, again, got2.Values, want2.Values)
		}
	}
}

func TestCompactOpsRefusesEnd(t *testing.T) {
	ops := []session.Op{{Seq: 1, Type: session.OpSet, Key: "a", Value: json.RawMessage(`1`)}, {Seq: 2, Type: session.OpEnd}, {Seq: 3, Type: session.OpSet, Key: "a", Value: json.RawMessage(`2`)}}
	if _, ok := compactOps(ops); ok {
		t.Fatal("a log with an end op was compacted: a stale cookie would no longer fold the logout")
	}
}

// A session written only by Go code outside sockets and requests (a
// worker, the server API: no view on this instance) is compacted too, so
// its first cookie folds a short log.
func TestSnapshotWithoutView(t *testing.T) {
	t.Parallel()
	const every = 8
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = every })
	ctx := context.Background()
	id := session.NewID()
	for i := range 10 * every {
		op, _ := session.SetOp("n", []byte(strconv.Itoa(i)))
		if _, err := h.Write(ctx, id, op); err != nil {
			t.Fatal(err)
		}
	}
	if h.lookup(id) != nil {
		t.Fatal("the writes made a view: this test wants none")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := h.log.fetch(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		snap := session.Snapshot{ID: id}.Fold(flatten(entries))
		if string(snap.Values["n"]) != strconv.Itoa(10*every-1) {
			t.Fatalf("the log folds to n=%s, want %d", snap.Values["n"], 10*every-1)
		}
		if len(entries) <= 2*every {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries after %d writes without a view: never compacted", len(entries), 10*every)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The retained log a view hands a compaction (base, then the tail from
// its last snapshot) folds like the log JetStream retains, on any
// starting values, however many entries left the tail and wherever the
// snapshots fall.
func TestViewRetainedLog(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) { o.ViewTail = 5 })
	ctx := context.Background()
	v := h.acquire(ctx, session.NewID(), 0)
	defer v.release()
	r := rand.New(rand.NewPCG(3, 4))
	keys := []string{"a", "b", "c", "d", "e", "f"}
	start := map[string]json.RawMessage{"a": json.RawMessage(`"old"`), "c": json.RawMessage(`"old"`), "z": json.RawMessage(`"old"`)}
	fold := func(ops []session.Op) map[string]json.RawMessage {
		vals := maps.Clone(start)
		for _, op := range ops {
			switch op.Type {
			case session.OpSet:
				vals[op.Key] = op.Value
			case session.OpDelete:
				delete(vals, op.Key)
			case session.OpClear:
				clear(vals)
			}
		}
		return vals
	}
	var retained []entry // what JetStream holds: from the last snapshot on
	for seq := uint64(1); seq <= 3000; seq++ {
		e := entry{Seq: seq}
		if r.IntN(16) == 0 && len(retained) > 0 {
			e.Ops, _ = compactOps(flatten(retained))
			e.Covers = seq - 1
			retained = nil
		} else {
			for range 1 + r.IntN(3) {
				k := keys[r.IntN(len(keys))]
				switch n := r.IntN(20); {
				case n < 12:
					e.Ops = append(e.Ops, session.Op{Type: session.OpSet, Key: k, Value: json.RawMessage(strconv.Itoa(int(seq)))})
				case n < 19:
					e.Ops = append(e.Ops, session.Op{Type: session.OpDelete, Key: k})
				default:
					e.Ops = append(e.Ops, session.Op{Type: session.OpClear})
				}
			}
		}
		for i := range e.Ops {
			e.Ops[i].Seq = seq
		}
		retained = append(retained, e)
		v.mu.Lock()
		v.takeInLocked(e, time.Now())
		ops, last, ok := v.retainedLocked()
		v.mu.Unlock()
		if !ok || last != seq {
			t.Fatalf("entry %d: the view cannot tell its retained log (ok %v, last %d)", seq, ok, last)
		}
		compact, _ := compactOps(ops)
		want, got := fold(flatten(retained)), fold(compact)
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Fatalf("entry %d: the view's retained log folds to %v, JetStream's to %v", seq, got, want)
		}
	}
}

// A view read after a cookie's version does not know the log before it:
// it cannot hand a compaction the retained log until it sees a snapshot.
func TestViewRetainedLogNeedsTheStart(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	ctx := context.Background()
	v := h.acquire(ctx, session.NewID(), 7)
	defer v.release()
	set := session.Op{Seq: 8, Type: session.OpSet, Key: "a", Value: json.RawMessage(`1`)}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.takeInLocked(entry{Seq: 8, Ops: []session.Op{set}}, time.Now())
	if _, _, ok := v.retainedLocked(); ok {
		t.Fatal("a view loaded after seq 7 claims to hold the whole retained log")
	}
	snap := set
	snap.Seq = 9
	v.takeInLocked(entry{Seq: 9, Ops: []session.Op{snap}, Covers: 8}, time.Now())
	if ops, last, ok := v.retainedLocked(); !ok || last != 9 || len(ops) != 1 {
		t.Fatalf("after a snapshot: ops %v, last %d, ok %v; want the snapshot alone", ops, last, ok)
	}
}

// A view closed while its compaction waits (the janitor swept it, the
// hub closes) holds no tail any more: the compaction gives up rather than
// publish a snapshot of what is left, which would roll away the entries
// only the tail held.
func TestCompactionOfAClosedView(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = 1000 })
	ctx := context.Background()
	id := session.NewID()
	for i := range 20 {
		op, _ := session.SetOp(fmt.Sprint("k", i), []byte(strconv.Itoa(i)))
		if _, err := h.Write(ctx, id, op); err != nil {
			t.Fatal(err)
		}
	}
	v := h.acquire(ctx, id, 0)
	v.release()
	// As the janitor does.
	h.mu.Lock()
	delete(h.views, id)
	h.mu.Unlock()
	v.close()
	h.opts.SnapshotEvery = 8
	res, handed, err := v.compactGated(ctx)
	if res.made != 0 || handed {
		t.Errorf("a closed view published snapshot %d (handed %v, err %v)", res.made, handed, err)
	}
	entries, err := h.log.fetch(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := (session.Snapshot{ID: id}).Fold(flatten(entries)); len(got.Values) != 20 {
		t.Fatalf("the log folds to %d keys after the compaction, want 20: acknowledged writes rolled away", len(got.Values))
	}
}

// After a NATS reconnect the view no longer vouches for the retained log
// (JetStream may have lost entries it holds and reused their sequences):
// the next compaction reads the log, until a snapshot is seen again.
func TestViewRetainedLogAfterReconnect(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	ctx := context.Background()
	v := h.acquire(ctx, session.NewID(), 0)
	defer v.release()
	set := session.Op{Seq: 1, Type: session.OpSet, Key: "a", Value: json.RawMessage(`1`)}
	v.mu.Lock()
	v.takeInLocked(entry{Seq: 1, Ops: []session.Op{set}}, time.Now())
	_, _, ok := v.retainedLocked()
	v.mu.Unlock()
	if !ok {
		t.Fatal("a view read from the start does not hold its retained log")
	}
	h.reconnects.Store(h.reconnects.Load() + 1) // as if the connection had reconnected
	h.checkReconnect()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stale = false // whole again, as the resync leaves it
	if _, _, ok := v.retainedLocked(); ok {
		t.Fatal("after a reconnect the view still vouches for the retained log")
	}
	snap := set
	snap.Seq = 2
	v.takeInLocked(entry{Seq: 2, Ops: []session.Op{snap}, Covers: 1}, time.Now())
	if _, last, ok := v.retainedLocked(); !ok || last != 2 {
		t.Fatalf("after a snapshot: last %d, ok %v", last, ok)
	}
}

// The cookie budget counts an append still unanswered only where it can
// make the session larger: an unanswered delete may lose its condition
// or land after the write measured, so a set measured meanwhile is
// measured as if the deleted value stayed (past the budget here), and is
// told the measure is uncertain rather than refused outright. Once the
// delete is acknowledged it counts.
func TestBudgetCountsUnansweredWritesAtWorst(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	ctx := context.Background()
	id := session.NewID()
	big := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n) + `"`) }
	for _, kv := range []struct {
		k string
		n int
	}{{"f", 1300}, {"a", 1300}} {
		if _, err := h.Write(ctx, id, session.Op{Type: session.OpSet, Key: kv.k, Value: big(kv.n)}); err != nil {
			t.Fatal(err)
		}
	}
	v := h.acquire(ctx, id, 0)
	defer v.release()
	c := &conn{h: h, id: id, snap: session.Snapshot{ID: id}}
	del := &ownWrite{v: v, ops: []session.Op{{Type: session.OpDelete, Key: "a"}}}
	smaller := &ownWrite{v: v, ops: []session.Op{{Type: session.OpSet, Key: "f", Value: big(10)}}}
	set := session.Op{Seq: math.MaxUint64, Type: session.OpSet, Key: "b", Value: big(1300)}
	measure := func() (int, bool) {
		v.mu.Lock()
		defer v.mu.Unlock()
		n, _, uncertain, err := c.measureLocked(v, []session.Op{set})
		if err != nil {
			t.Fatal(err)
		}
		return n, uncertain
	}
	v.mu.Lock()
	v.inflight = append(v.inflight, del, smaller)
	v.mu.Unlock()
	if n, uncertain := measure(); n <= session.MaxCookieSize || !uncertain {
		t.Fatalf("with a delete and a smaller set unanswered: measured %d bytes (uncertain %v), want past %d and uncertain", n, uncertain, session.MaxCookieSize)
	}
	v.mu.Lock()
	del.seq, smaller.seq = v.last+1, v.last+2 // acknowledged, not yet in the view
	v.mu.Unlock()
	if n, uncertain := measure(); n > session.MaxCookieSize || uncertain {
		t.Fatalf("with both acknowledged: measured %d bytes (uncertain %v), want within %d", n, uncertain, session.MaxCookieSize)
	}
}

// until polls cond until it holds, failing the test with what after 5 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// dueEvery is the SnapshotEvery of dueView's hub.
const dueEvery = 8

// dueView returns a hub and the view of a new session written dueEvery
// times with compaction off, once the view holds every entry, then sets
// SnapshotEvery to dueEvery: a compaction is due, to be started by the
// test (snapshotLaterLocked).
func dueView(t *testing.T) (*Hub, string, *view) {
	t.Helper()
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = 1000 })
	ctx := context.Background()
	id := session.NewID()
	v := h.acquire(ctx, id, 0)
	t.Cleanup(v.release)
	var last uint64
	for i := range dueEvery {
		op, _ := session.SetOp(fmt.Sprint("k", i%3), []byte(strconv.Itoa(i)))
		seq, err := h.Write(ctx, id, op)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	until(t, fmt.Sprintf("the view holds entry %d", last), func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.last >= last
	})
	v.mu.Lock()
	h.opts.SnapshotEvery = dueEvery
	v.mu.Unlock()
	return h, id, v
}

// compactionOver waits for the view's compaction to end.
func compactionOver(t *testing.T, v *view) {
	t.Helper()
	until(t, "the compaction ends", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return !v.compacting
	})
}

// A view that holds the whole retained log, none of this instance's
// appends of it unanswered, publishes its snapshot on the goroutine that
// found it due (the ack of the write that made it so): no goroutine, no
// read, and no gate for the session's next write, which goes out after
// the snapshot and lands after it, the snapshot not refused.
func TestSnapshotPublishedWhereItIsDue(t *testing.T) {
	t.Parallel()
	h, id, v := dueView(t)
	ctx := context.Background()

	v.mu.Lock()
	h.snapshotLaterLocked(v)
	compacting, jobs, gated := v.compacting, len(h.snapshotJobs), v.gate != nil
	v.mu.Unlock()
	if !compacting || jobs != 0 || gated {
		t.Fatalf("compaction due with nothing in flight: compacting %v, %d on goroutines, gate %v; want it published here, with no goroutine or gate", compacting, jobs, gated)
	}
	op, _ := session.SetOp("after", []byte(`1`))
	next, err := h.Write(ctx, id, op) // right behind the snapshot
	if err != nil {
		t.Fatal(err)
	}
	compactionOver(t, v)
	entries, err := h.log.fetch(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Covers != dueEvery || entries[1].Seq != next {
		t.Fatalf("the log after the compaction and a write: %+v; want a snapshot of entries 1-%d, then entry %d", entries, dueEvery, next)
	}
	v.mu.Lock()
	retried, since := v.snapRetry, v.sinceSnap
	v.mu.Unlock()
	if retried != 0 || since != 1 {
		t.Fatalf("after the snapshot: %d refused, %d entries counted since; want none refused, 1 since", retried, since)
	}
	want := map[string]string{"k0": "6", "k1": "7", "k2": "5", "after": "1"}
	got := session.Snapshot{ID: id}.Fold(flatten(entries))
	for k, val := range want {
		if string(got.Values[k]) != val {
			t.Fatalf("the compacted log folds to %v, want %v", got.Values, want)
		}
	}
}

// A compaction that finds the connection's publishes at their limit is
// not lost: it is tried again after a pause, and makes its snapshot then.
func TestSnapshotWaitsOutAStalledConnection(t *testing.T) {
	t.Parallel()
	h, id, v := dueView(t)
	ctx := context.Background()

	acks := &h.log.acks
	v.mu.Lock()
	held := acks.max - acks.slots.Load()
	acks.slots.Add(held) // no slot free
	t0 := time.Now()
	h.snapshotLaterLocked(v)
	acks.slots.Add(-held)
	compacting, after := v.compacting, v.snapAfter
	v.mu.Unlock()
	if compacting || !after.After(t0) {
		t.Fatalf("a compaction without a publish slot: compacting %v, next try at %v; want it over, and a try later", compacting, after)
	}
	until(t, "the compaction tried again makes its snapshot", func() bool {
		entries, err := h.log.fetch(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries) == 1 && entries[0].Covers == dueEvery
	})
}

// A compaction that fails for another reason than a moving log (here a
// snapshot larger than MaxEntrySize) is not tried again at the very next
// append, which would fail it again: it waits a while, and the log stays
// whole.
func TestFailedSnapshotWaitsBeforeTheNextTry(t *testing.T) {
	t.Parallel()
	h, id, v := dueView(t)
	ctx := context.Background()

	v.mu.Lock()
	maxEntry := h.log.maxEntry
	h.log.maxEntry = 10 // smaller than the snapshot
	t0 := time.Now()
	h.snapshotLaterLocked(v)
	compacting, after := v.compacting, v.snapAfter
	h.log.maxEntry = maxEntry
	h.snapshotLaterLocked(v) // the next append's try
	published := v.compacting
	v.mu.Unlock()
	if compacting || !after.After(t0) || published {
		t.Fatalf("a snapshot too large: compacting %v, next try at %v, tried again at the next append %v; want it over, a try later, not now", compacting, after, published)
	}
	entries, err := h.log.fetch(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != dueEvery {
		t.Fatalf("the log holds %d entries after a failed compaction, want its %d", len(entries), dueEvery)
	}
}

// A compaction's turn (a session whose socket keeps appends in flight)
// opens its gate as soon as its snapshot is published, not once
// JetStream answered it: the session's next appends, published after
// the snapshot, land after it anyway. Here the answer cannot be routed
// (the shard's dispatcher is held up by another session's view), and the
// gate opens all the same; the snapshot is taken in once it is.
func TestCompactionTurnOpensOnPublish(t *testing.T) {
	t.Parallel()
	h, id, v := dueView(t)
	ctx := context.Background()

	// Another session on the same shard, whose view holds up the
	// dispatcher: its lock held, an entry of it republished.
	other := session.NewID()
	for h.lane(other) != h.lane(id) {
		other = session.NewID()
	}
	ov := h.acquire(ctx, other, 0)
	t.Cleanup(ov.release)
	ov.mu.Lock()
	held := true
	defer func() {
		if held {
			ov.mu.Unlock()
		}
	}()
	if err := h.log.nc.Publish(h.log.opsSubject(other), encodeValid([]session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}})); err != nil {
		t.Fatal(err)
	}
	until(t, "the other session's entry is stored and handed on", func() bool {
		entries, err := h.log.fetch(ctx, other, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Its republished copy put in the shard's channel, then taken
		// out: the dispatcher's, which handles it before anything else
		// and waits on ov.
		n, err := ov.sub.Delivered()
		if err != nil {
			t.Fatal(err)
		}
		return len(entries) == 1 && n == 1 && len(h.shard(id)) == 0
	})

	// An append of this instance in flight, the log long: a turn.
	own := &ownWrite{v: v, ops: []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`2`)}}}
	v.mu.Lock()
	v.inflight = append(v.inflight, own)
	v.publishedLocked(own, nil)
	v.sinceSnap = h.snapshotTurn()
	h.snapshotLaterLocked(v)
	v.mu.Unlock()
	until(t, "the compaction's turn shuts the gate", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.gate != nil
	})
	v.mu.Lock()
	v.settleLocked(own, 0) // failed: none in flight now
	v.mu.Unlock()
	until(t, "the gate opens", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.gate == nil
	})
	v.mu.Lock()
	compacting := v.compacting
	v.mu.Unlock()
	if awaiting := h.log.acks.pending(); !compacting || awaiting != 1 {
		t.Fatalf("gate open: compacting %v, %d publishes awaiting their answer; want the snapshot published and its answer still to come", compacting, awaiting)
	}

	ov.mu.Unlock()
	held = false
	compactionOver(t, v)
	entries, err := h.log.fetch(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Covers != dueEvery {
		t.Fatalf("the log after the turn: %+v; want one snapshot of its %d entries", entries, dueEvery)
	}
}
