package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// TestWritesWaitForALaggingDispatcher: while a session's dispatcher has
// more than a quarter of its channel to deliver, socket writes of its
// sessions wait (waitDispatch), and go on once it caught up.
func TestWritesWaitForALaggingDispatcher(t *testing.T) {
	h := internalHub(t)
	ctx := context.Background()
	log := bridgeLog{h}
	set := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}}
	a, b := session.NewID(), session.NewID()
	for h.shard(a) != h.shard(b) {
		b = session.NewID()
	}
	for _, id := range []string{a, b} {
		if _, err := h.Write(ctx, id, set...); err != nil {
			t.Fatal(err)
		}
		if _, err := log.Pending(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	va := h.views[a]
	h.mu.Unlock()
	if !h.waitDispatch(ctx, b) {
		t.Fatal("an idle dispatcher made a write wait")
	}
	va.mu.Lock() // the dispatcher blocks on a's next entry
	if _, err := h.log.append(ctx, a, SourceWS, nil, set); err != nil {
		va.mu.Unlock()
		t.Fatal(err)
	}
	ch := h.shard(b)
	for len(ch) <= cap(ch)/4+10 {
		if _, err := h.log.append(ctx, b, SourceWS, nil, set); err != nil {
			va.mu.Unlock()
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	waited := !h.waitDispatch(short, b)
	cancel()
	va.mu.Unlock()
	if !waited {
		t.Fatal("a write did not wait for a dispatcher with a quarter of its channel queued")
	}
	long, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !h.waitDispatch(long, b) {
		t.Fatal("the write still waits 10s after the dispatcher was released")
	}
}

// BenchmarkBudgetMeasure measures the cookie budget of a socket's write
// with pipelineDepth-1 of the session's appends unanswered, each setting
// the key the write sets, as a pipelined writer keeps them.
func BenchmarkBudgetMeasure(b *testing.B) {
	h := internalHub(b)
	ctx := context.Background()
	id := session.NewID()
	value := func(n int) []byte { return []byte(`"x-s12-w0-n` + strconv.Itoa(n) + `"`) }
	if _, err := h.Write(ctx, id, session.Op{Type: session.OpSet, Key: "language", Value: value(0)}); err != nil {
		b.Fatal(err)
	}
	v := h.acquire(ctx, id, 0)
	defer v.release()
	c := &conn{h: h, id: id}
	v.mu.Lock()
	c.snap = session.Snapshot{ID: id, Seq: v.last}
	for i := range pipelineDepth - 1 {
		v.inflight = append(v.inflight, &ownWrite{v: v, ops: []session.Op{{Type: session.OpSet, Key: "language", Value: value(i + 1)}}})
	}
	v.mu.Unlock()
	ops := []session.Op{{Type: session.OpSet, Key: "language", Value: value(pipelineDepth)}}
	b.ReportAllocs()
	for b.Loop() {
		v.mu.Lock()
		n, _, _, err := c.measureLocked(v, ops)
		v.mu.Unlock()
		if err != nil || n == 0 {
			b.Fatal(n, err)
		}
	}
}

// A write that waits (here behind a compaction's gate; or for room among
// its socket's appends in flight) meets the session's write budget as it
// stands once it goes on: the tokens refilled while it waited count, not
// the budget as it was before the entries taken in meanwhile.
func TestWriteBudgetAfterAWait(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 10, 2
		o.ClientKeys = map[string]KeyPolicy{"k": {Read: true, Write: true, Validate: func(json.RawMessage) error { return nil }}}
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/hub/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	reply := func() map[string]any {
		t.Helper()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil && (m["type"] == "ack" || m["type"] == "error") {
				return m
			}
		}
	}
	set := func(id int) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":%d,"type":"set","key":"k","value":%d}`, id, id)); err != nil {
			t.Fatal(err)
		}
	}
	set(1) // the session's first write: the log holds an entry from now on
	if m := reply(); m["type"] != "ack" {
		t.Fatalf("first write: %v", m)
	}
	h.mu.Lock()
	var v *view
	for _, vv := range h.views { // the socket's session's, the only one
		v = vv
	}
	h.mu.Unlock()
	if v == nil {
		t.Fatal("no view after a write")
	}
	time.Sleep(300 * time.Millisecond) // the budget full again: 2 tokens

	gate := make(chan struct{})
	v.mu.Lock()
	v.gate = gate // a compaction's turn: the next write waits for it
	v.mu.Unlock()
	set(2)
	time.Sleep(300 * time.Millisecond) // the write measured its budget and waits at the gate
	v.mu.Lock()
	v.budget.ReserveN(time.Now(), 2) // two entries taken in meanwhile: none left
	v.mu.Unlock()
	time.Sleep(300 * time.Millisecond) // refilled: 2 tokens again
	v.mu.Lock()
	v.gate = nil
	close(gate)
	v.mu.Unlock()
	if m := reply(); m["type"] != "ack" || m["id"] != float64(2) {
		t.Fatalf("the write after the wait: %v, want its ack (the budget refilled while it waited)", m)
	}
}

// TestStalledBatchIsStagedOnItsOwn: a batch the acker reaches while the
// connection's asynchronous publishes stay at their limit (here one,
// taken by a publish nobody answers) is staged on its own: acknowledged
// at its entry, which holds its ops in order, and no longer counted in
// flight by either budget.
func TestStalledBatchIsStagedOnItsOwn(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.asyncMaxPending = 1 })
	silence(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, v := writtenView(t, h)
	c := &conn{h: h, id: id, ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20)}
	c.v.Store(v)
	v.mu.Lock()
	c.snap = session.Snapshot{ID: id, Seq: v.last}
	ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}, {Type: session.OpSet, Key: "k", Value: []byte(`2`)}}
	own := &ownWrite{v: v, ops: ops}
	v.inflight = append(v.inflight, own)
	v.oweLocked(own)
	v.mu.Unlock()
	b := &batch{own: own, n: 2}

	if _, err := h.log.acks.publish(nats.NewMsg("silent.log"), time.Millisecond); err != nil { // the one slot
		t.Fatal(err)
	}
	if !c.publishBatch(ctx, b) {
		t.Fatal("publishBatch: the socket closed")
	}
	c.settle(1, b)
	if b.err != nil || b.seq == 0 || b.fut != nil || h.stalls.Load() != 1 {
		t.Fatalf("batch answered %d, %v (published: %v), %d stalls; want staged on its own", b.seq, b.err, b.fut != nil, h.stalls.Load())
	}
	entries, err := h.log.fetch(ctx, id, b.seq-1, b.seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Seq != b.seq || len(entries[0].Ops) != 2 || string(entries[0].Ops[1].Value) != `2` {
		t.Fatalf("the log after %d: %+v, want the batch's entry", b.seq-1, entries)
	}
	// Owed until the view holds it (its entry takes its tokens there).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		v.mu.Lock()
		held := v.last >= b.seq
		v.mu.Unlock()
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the view never held the batch")
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.releaseLandedLocked()
	if v.owed != 0 || slices.Contains(v.inflight, own) || v.unacked != 0 {
		t.Fatalf("after its answer: %d ops owed, counted in flight %v, %d unacked; want none", v.owed, slices.Contains(v.inflight, own), v.unacked)
	}
}

// TestStageReplacingKeepsTheBatchOwed: the measure that starts staging a
// stalled batch on its own counts its ops for the cookie budget as the
// stage's write instead of the batch's, and leaves them owed against the
// write budget: no write is measured or admitted without them.
func TestStageReplacingKeepsTheBatchOwed(t *testing.T) {
	h := internalHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, v := writtenView(t, h)
	c := &conn{h: h, id: id, ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20)}
	c.v.Store(v)
	ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}, {Type: session.OpSet, Key: "k", Value: []byte(`2`)}}
	old := &ownWrite{v: v, ops: ops}
	v.mu.Lock()
	c.snap = session.Snapshot{ID: id, Seq: v.last}
	v.inflight = append(v.inflight, old)
	v.oweLocked(old)
	v.mu.Unlock()
	_, _, _, _, _, own, err := c.measure(ctx, ops, old)
	if err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if slices.Contains(v.inflight, old) || !slices.Contains(v.inflight, own) || v.owed != len(ops) {
		t.Fatalf("staging: batch in flight %v, stage's write in flight %v, %d ops owed; want the stage's write counted and %d owed",
			slices.Contains(v.inflight, old), slices.Contains(v.inflight, own), v.owed, len(ops))
	}
}

// TestHeldChangeGoesWithTheAck: the republished entry of a socket's
// pipelined append, taken in by the view before its PubAck, is held for
// the socket (sessionhub.v2) and queued with the write's ack, change
// first, in one take of the writer; a later change to the socket sends
// a held one first; a socket without the subprotocol is sent its change
// at once.
func TestHeldChangeGoesWithTheAck(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = -1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, v := writtenView(t, h)
	newConn := func(batch bool) *conn {
		c := &conn{h: h, id: id, ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20), batch: batch}
		c.writing.Store(true) // no writer: what is queued stays, to be taken here
		c.v.Store(v)
		v.mu.Lock()
		c.snap = session.Snapshot{ID: id, Seq: v.last}
		v.addConnLocked(c)
		v.mu.Unlock()
		return c
	}
	c, plain := newConn(true), newConn(false)
	// append publishes nothing: it is the view taking in the republished
	// entry of a pipelined append of c (or of plain), at the view's next
	// sequence.
	pipelined := func(c *conn, value string) (*batch, uint64) {
		ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(value)}}
		own := &ownWrite{v: v, ops: ops, c: c}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.inflight = append(v.inflight, own)
		v.oweLocked(own)
		v.publishedLocked(own, nil)
		seq := v.last + 1
		e := entry{Seq: seq, Source: SourceWS, Ops: []session.Op{{Seq: seq, Type: session.OpSet, Key: "k", Value: []byte(value)}}}
		v.takeInLocked(e, time.Now())
		fut := &pubAck{seq: seq}
		fut.state.Store(futureSettled) // answered
		return &batch{own: own, n: 1, fut: fut, start: time.Now(), closed: true, appended: true}, seq
	}
	types := func(msgs [][]byte) []string {
		var out []string
		for _, m := range msgs {
			var x struct {
				Type string `json:"type"`
				Seq  uint64 `json:"seq"`
			}
			if err := json.Unmarshal(m, &x); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(x.Type, x.Seq))
		}
		return out
	}

	b, seq := pipelined(c, `1`)
	if got := types(c.out.take()); len(got) != 0 {
		t.Fatalf("before the ack, the socket was sent %v; want its change held", got)
	}
	if got := types(plain.out.take()); fmt.Sprint(got) != fmt.Sprint([]string{fmt.Sprint("change", seq)}) {
		t.Fatalf("the other socket was sent %v, want the change at once", got)
	}
	if sent := c.settle(7, b); !sent {
		t.Fatal("settle: the ack not sent with the change")
	}
	if got, want := types(c.out.take()), []string{fmt.Sprint("change", seq), fmt.Sprint("ack", seq)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("with the ack, one take got %v, want %v", got, want)
	}

	// A later entry sends the held change first.
	b, seq = pipelined(c, `2`)
	_, later := pipelined(plain, `3`)
	if got, want := types(c.out.take()), []string{fmt.Sprint("change", seq), fmt.Sprint("change", later)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a later change: the socket got %v, want %v", got, want)
	}
	if sent := c.settle(8, b); sent {
		t.Fatal("settle: the ack sent with a change; want it alone (the change went)")
	}

	// Without the subprotocol, the change goes at once.
	plain.out.take()
	_, seq = pipelined(plain, `4`)
	if got := types(plain.out.take()); fmt.Sprint(got) != fmt.Sprint([]string{fmt.Sprint("change", seq)}) {
		t.Fatalf("a socket without the subprotocol was sent %v, want its change at once", got)
	}

	// A batch taken in before c's write but published after it (v.inflight
	// is in take-in order) does not hide c's entry, the first to land.
	c.out.take() // plain's change
	taken := &ownWrite{v: v, ops: []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`5`)}}, c: plain}
	mine := &ownWrite{v: v, ops: []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`6`)}}, c: c}
	v.mu.Lock()
	v.inflight = append(v.inflight, taken, mine)
	v.oweLocked(taken)
	v.oweLocked(mine)
	v.publishedLocked(mine, nil)
	v.publishedLocked(taken, nil)
	seq = v.last + 1
	v.takeInLocked(entry{Seq: seq, Source: SourceWS, Ops: []session.Op{{Seq: seq, Type: session.OpSet, Key: "k", Value: []byte(`6`)}}}, time.Now())
	v.mu.Unlock()
	if got := types(c.out.take()); len(got) != 0 {
		t.Fatalf("c's write published before the batch taken in before it: c was sent %v; want its change held", got)
	}
}

// writtenView writes a first op to a new session on h and returns the
// session and its view, released with the test.
func writtenView(t *testing.T, h *Hub) (string, *view) {
	t.Helper()
	id := session.NewID()
	if _, err := h.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "k", Value: []byte(`0`)}); err != nil {
		t.Fatal(err)
	}
	v := h.acquire(context.Background(), id, 0)
	t.Cleanup(v.release)
	return id, v
}

// TestAckedWriteStaysOwedUntilTheViewHoldsIt: a pipelined write whose
// PubAck comes before the view takes its entry in still counts against
// the session's write budget until the view does (and the entry takes
// its token there): never counted twice, never not at all.
func TestAckedWriteStaysOwedUntilTheViewHoldsIt(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.SessionWriteRate, o.SessionWriteBurst = 0.001, 5 })
	_, v := writtenView(t, h)
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	tokens := v.budget.TokensAt(now)
	ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}, {Type: session.OpSet, Key: "k", Value: []byte(`2`)}}
	own := &ownWrite{v: v, ops: ops}
	v.inflight = append(v.inflight, own)
	v.oweLocked(own)
	v.publishedLocked(own, nil)
	seq := v.last + 1

	v.settleLocked(own, seq) // acknowledged; its republished entry not taken in yet
	v.releaseLandedLocked()
	if v.owed != len(ops) {
		t.Fatalf("acknowledged, not in the view: %d ops owed, want %d", v.owed, len(ops))
	}
	v.takeInLocked(entry{Seq: seq, Source: SourceWS, Ops: []session.Op{
		{Seq: seq, Type: session.OpSet, Key: "k", Value: []byte(`1`)},
		{Seq: seq, Type: session.OpSet, Key: "k", Value: []byte(`2`)},
	}}, now)
	v.releaseLandedLocked()
	if got := v.budget.TokensAt(now); v.owed != 0 || got > tokens-float64(len(ops))+0.01 {
		t.Fatalf("in the view: %d ops owed, %.2f tokens of %.2f; want 0 owed and the entry's %d taken", v.owed, got, tokens, len(ops))
	}
}

// silence subscribes h's connection to silent.log, where publishes are
// received and never answered, until the test ends.
func silence(t *testing.T, h *Hub) {
	t.Helper()
	sub, err := h.opts.Conn.SubscribeSync("silent.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// TestBudgetMeasureSkippedFarFromTheBudget: a socket's write far below
// half the cookie budget is not measured while its last measure and the
// growth since (every op of the session's view, every write measured)
// bound it there; the bound is never below the measure, and a write that
// takes it past half is measured.
func TestBudgetMeasureSkippedFarFromTheBudget(t *testing.T) {
	h := internalHub(t)
	id, v := writtenView(t, h)
	c := &conn{h: h, id: id, ctx: context.Background(), out: newOutbox(64, 1<<20)}
	c.v.Store(v)
	v.mu.Lock()
	defer v.mu.Unlock()
	c.snap = session.Snapshot{ID: id, Seq: v.last}
	set := func(n int) []session.Op {
		return []session.Op{{Type: session.OpSet, Key: "k", Value: json.RawMessage(`"` + strings.Repeat("x", n) + `"`)}}
	}
	n, _, _, err := c.sizeLocked(v, set(10))
	if err != nil || c.sizedIn != v || c.sized != n {
		t.Fatalf("the first write: %d, %v; measured %d on %p, want a measure on the view", n, err, c.sized, c.sizedIn)
	}
	first := c.sized
	for i := range 5 {
		exact, _, _, err := c.measureLocked(v, set(20))
		if err != nil {
			t.Fatal(err)
		}
		n, _, _, err := c.sizeLocked(v, set(20))
		if err != nil || c.sized != first || n < exact || n > session.MaxCookieSize/2 {
			t.Fatalf("write %d: %d (measured %d), %v; last measure %d; want the bound, at least the measure, unmeasured", i, n, exact, err, c.sized)
		}
	}
	// Another writer's entry, in the view: it grows the bound.
	before := v.growth
	v.takeInLocked(entry{Seq: v.last + 1, Ops: set(1500), Source: SourceHTTP}, time.Now())
	if v.growth <= before+1500 {
		t.Fatalf("growth %d after a 1500-byte value, from %d", v.growth, before)
	}
	exact, _, _, err := c.measureLocked(v, set(600))
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _, err := c.sizeLocked(v, set(600)); err != nil || n != exact || c.sized != exact {
		t.Fatalf("a write past half the budget by the bound: %d, %v (measured %d, last %d); want it measured", n, err, exact, c.sized)
	}

	// A write another socket stages (conn.measure, its own measure) counts
	// from its measure on.
	c.snap = session.Snapshot{ID: id, Seq: v.last}
	c.sizedIn = nil
	c.sizeLocked(v, set(10))
	other := &conn{h: h, id: id, ctx: context.Background(), out: newOutbox(64, 1<<20)}
	other.v.Store(v)
	other.snap = c.snap
	v.mu.Unlock()
	big := []session.Op{{Type: session.OpSet, Key: "big", Value: json.RawMessage(`"` + strings.Repeat("x", 1500) + `"`)}}
	_, _, _, _, _, own, err := other.measure(context.Background(), big, nil)
	v.mu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	first = c.sized
	if n, _, _, _ := c.sizeLocked(v, set(10)); c.sized == first || n <= 1500 {
		t.Fatalf("after another socket's 1500-byte write was measured: %d, last measure %d (was %d); want a measure that counts it", n, c.sized, first)
	}
	v.dropOwnLocked(own)

	// A measure on a view that may lack entries after the socket's
	// snapshot (stale) is not kept: the next write is measured too.
	c.sizedIn = nil
	v.stale = true
	c.sizeLocked(v, set(10))
	v.stale = false
	if c.sizedIn != nil {
		t.Fatal("a measure on a stale view was kept as the socket's last")
	}
}

// parkedWrite pushes a pipelined write of c whose publish nobody answers
// (the test settles it): the queue parks on its future, with no goroutine
// of its own.
func parkedWrite(t *testing.T, h *Hub, c *conn, v *view) (*batch, *pubAck) {
	t.Helper()
	ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}}
	own := &ownWrite{v: v, ops: ops, c: c}
	f, err := h.log.acks.publish(nats.NewMsg("silent.log"), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.inflight = append(v.inflight, own)
	v.oweLocked(own)
	v.publishedLocked(own, nil)
	v.mu.Unlock()
	b := &batch{own: own, n: 1, fut: f, start: time.Now(), closed: true, appended: true}
	c.push(pending{id: 1, b: b, start: time.Now()})
	c.pipe.mu.Lock()
	parked, acking := c.pipe.parked, c.pipe.acking
	c.pipe.mu.Unlock()
	if parked != f || !acking {
		t.Fatalf("after the push: parked on the write's publish %v, answers owed %v; want both", parked == f, acking)
	}
	return b, f
}

// TestSettlingAnswersAParkedQueue: a socket's queue waiting for its
// head's publish parks on the publish's future; whoever settles it (the
// dispatcher routing JetStream's acknowledgement) queues the answer
// before it returns, and the queue has no driver left once empty.
func TestSettlingAnswersAParkedQueue(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = -1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, v := writtenView(t, h)
	c := &conn{h: h, id: id, ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20)}
	c.writing.Store(true) // no writer: what is queued stays, to be taken here
	c.v.Store(v)
	_, f := parkedWrite(t, h, c, v)
	if got := c.out.take(); len(got) != 0 {
		t.Fatalf("before the publish is settled: %q queued, want nothing", got)
	}
	if !h.log.acks.forget(f) { // the test answers it, not JetStream
		t.Fatal("the publish was settled by someone else")
	}
	v.mu.Lock()
	seq := v.last + 1
	v.mu.Unlock()
	h.log.acks.settle(f, seq, nil)
	if got, want := c.out.take(), protocol.AppendAck(nil, 1, seq, nil); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("once settled: %q queued, want %q", got, want)
	}
	c.pipe.mu.Lock()
	defer c.pipe.mu.Unlock()
	if c.pipe.acking || c.pipe.parked != nil || len(c.pipe.q) != 0 {
		t.Fatalf("after the answer: driver %v, parked %v, %d owed; want none", c.pipe.acking, c.pipe.parked != nil, len(c.pipe.q))
	}
}

// TestStoppedTakesBackAParkedQueue: a socket that closes while its queue
// is parked on a publish never settled is not held by it: stopped
// answers the queue as a closed socket's (the write no longer counted in
// flight by either budget), and a late settling answers nothing.
func TestStoppedTakesBackAParkedQueue(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = -1 })
	ctx, cancel := context.WithCancel(context.Background())
	id, v := writtenView(t, h)
	c := &conn{h: h, id: id, ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20)}
	c.writing.Store(true)
	c.v.Store(v)
	b, f := parkedWrite(t, h, c, v)
	cancel()
	stopped := make(chan struct{})
	go func() {
		c.stopped()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stopped still waits for the parked queue 10s later")
	}
	v.mu.Lock()
	finished, owed, inflight := b.finished, v.owed, slices.Contains(v.inflight, b.own)
	v.mu.Unlock()
	if !finished || owed != 0 || inflight {
		t.Fatalf("after stopped: batch finished %v, %d ops owed, counted in flight %v; want finished, none", finished, owed, inflight)
	}
	if h.log.acks.forget(f) {
		t.Fatal("the abandoned publish is still awaited")
	}
	h.log.acks.settle(f, 99, nil) // late: the queue is no longer parked on it
	if got := c.out.take(); len(got) != 0 {
		t.Fatalf("a late settling queued %q, want nothing", got)
	}
}

// A socket's write that opens a batch takes one allocation for the batch,
// its ownWrite and its append's future (newBatch), which the publish
// fills in: at window 1 each write opens one.
func TestNewBatchAllocatesOnce(t *testing.T) {
	v := &view{}
	ops := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}}
	var b *batch
	if n := testing.AllocsPerRun(100, func() { b = newBatch(v, nil, ops, batchCost(ops)) }); n != 1 {
		t.Errorf("newBatch allocates %v times", n)
	}
	if b.own.v != v || len(b.own.ops) != 1 || b.n != 1 || b.fut != nil {
		t.Fatalf("newBatch: %+v", b)
	}
}
