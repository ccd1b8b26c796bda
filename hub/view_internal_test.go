package hub

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/internal/natsserver"
	"github.com/sessionhub/sessionhub/session"
)

func internalHub(t *testing.T) *Hub {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, _ := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	h, err := New(context.Background(), &Options{Store: store, Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func liveMsg(h *Hub, id string, seq, prev uint64, ops []session.Op) *nats.Msg {
	data, _ := encodeEntry(ops)
	m := nats.NewMsg(h.log.liveSubject(id))
	m.Data = data
	m.Header.Set(hdrNatsSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(hdrNatsLastSeq, strconv.FormatUint(prev, 10))
	m.Header.Set(hdrSource, SourceWS)
	return m
}

// A gap that cannot be filled leaves the view stale, never with a hole:
// the entry after the gap is not applied, reads go to JetStream, and the
// next entry fills the gap. Without this, an acknowledged entry would be
// skipped by every fold on this instance, the bridge's included.
func TestViewNeverHoldsAHole(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	ctx := context.Background()
	id := session.NewID()
	set := func(k string) []session.Op { return []session.Op{{Type: session.OpSet, Key: k, Value: []byte(`1`)}} }
	a, err := h.Write(ctx, id, set("a")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pending(ctx, id, 0); err != nil { // loads the view
		t.Fatal(err)
	}
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	// Take live delivery over: the republished copies of b and c are lost.
	v.mu.Lock()
	_ = v.sub.Unsubscribe()
	v.mu.Unlock()
	b, _ := h.log.append(ctx, id, SourceWS, nil, set("b"))
	c, _ := h.log.append(ctx, id, SourceWS, nil, set("c"))
	d, _ := h.log.append(ctx, id, SourceWS, nil, set("d"))

	// c arrives; filling the gap (b) fails.
	failed, cancel := context.WithCancel(ctx)
	cancel()
	v.mu.Lock()
	v.applyLocked(failed, liveMsg(h, id, c, b, set("c")))
	stale, last := v.stale, v.last
	v.mu.Unlock()
	if !stale || last != a {
		t.Fatalf("after a failed gap fill: stale %v, last %d (want stale at %d)", stale, last, a)
	}
	check := func(when string) {
		t.Helper()
		ops, err := h.Pending(ctx, id, a)
		if err != nil {
			t.Fatal(err)
		}
		snap := session.Snapshot{ID: id, Seq: a}.Fold(ops)
		for _, k := range []string{"b", "c"} {
			if _, ok := snap.Values[k]; !ok {
				t.Fatalf("%s: acknowledged %s missing from the fold (seq %d)", when, k, snap.Seq)
			}
		}
	}
	check("while stale")
	// d arrives normally: its gap (b, c) is filled now.
	v.mu.Lock()
	v.applyLocked(ctx, liveMsg(h, id, d, c, set("d")))
	stale, last = v.stale, v.last
	v.mu.Unlock()
	if stale || last != d {
		t.Fatalf("after the next entry: stale %v, last %d, want %d", stale, last, d)
	}
	check("after the gap was filled")
}
