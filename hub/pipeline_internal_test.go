package hub

import (
	"context"
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
