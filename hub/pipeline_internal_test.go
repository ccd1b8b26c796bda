package hub

import (
	"context"
	"strconv"
	"testing"
	"time"

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
