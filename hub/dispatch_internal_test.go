package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/session"
)

// An acknowledgement taken by a dispatcher is routed only once the live
// entries waiting with it are in their views: nats-server sent them
// first, and the acker that learns its sequence then finds its own entry
// held (ownWrite.echoable), to go in one frame with the ack.
func TestDispatchTakesTheEntriesBeforeAnAck(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	ctx := context.Background()
	id := session.NewID()
	set := func(k string) []session.Op { return []session.Op{{Type: session.OpSet, Key: k, Value: []byte(`1`)}} }
	a, err := h.Write(ctx, id, set("a")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (bridgeLog{h}).Pending(ctx, id, 0); err != nil { // loads the view
		t.Fatal(err)
	}
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	v.mu.Lock()
	_ = v.sub.Unsubscribe() // the test delivers the session's entries
	v.mu.Unlock()

	for round := range 20 {
		// Entries and an acknowledgement waiting together, as nats.go's
		// reader leaves them when the dispatcher is busy.
		const n = 40
		from := a + uint64(round*n)
		live, acked := make(chan *nats.Msg, n), make(chan *nats.Msg, 1)
		for i := range uint64(n) {
			live <- liveMsg(h, id, from+i+1, from+i, set(fmt.Sprint("k", i)))
		}
		acks := &h.log.acks
		f := &pubAck{deadline: time.Now().Add(time.Minute)}
		acks.slots.Add(1)
		acks.mu.Lock()
		acks.waiting.push(f)
		acks.mu.Unlock()
		ack := nats.NewMsg(fmt.Sprintf("%s0.%d", acks.prefix, f.token))
		ack.Data = fmt.Appendf(nil, `{"stream":"S","seq":%d}`, from+n)
		acked <- ack

		h.workers.Add(1)
		go h.dispatch(live, acked) // until the hub closes
		if !settledWithin(f, 5*time.Second) {
			t.Fatal("the acknowledgement was not routed")
		}
		v.mu.Lock()
		last := v.last
		v.mu.Unlock()
		if f.seq != from+n || last != from+n {
			t.Fatalf("round %d: acknowledgement of %d routed with the view at %d; want the %d entries waiting with it applied first", round, f.seq, last, n)
		}
	}
}
