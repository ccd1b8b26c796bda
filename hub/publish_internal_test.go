package hub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/session"
)

// await returns f's outcome, failing the test when it takes a second.
func await(t *testing.T, f *pubAck) (uint64, error) {
	t.Helper()
	if !settledWithin(f, time.Second) {
		t.Fatal("no acknowledgement")
	}
	return f.seq, f.err
}

// settledWithin reports whether f is settled within d.
func settledWithin(f *pubAck, d time.Duration) bool {
	for deadline := time.Now().Add(d); !f.settled(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// publish reserves a slot within stall (errStalled otherwise) and
// publishes m in it, as pipelineWrite does before jsLog.appendReserved.
func (a *asyncAcks) publish(m *nats.Msg, stall time.Duration) (*pubAck, error) {
	if !a.reserve(context.Background(), stall) {
		return nil, errStalled
	}
	return a.publishReserved(m, 0, new(pubAck))
}

// startAcks starts an asyncAcks of max awaiting on nc, stopped with the
// test, and subscribes a channel of n messages to log.ops, where the
// test answers (or not) the publishes it receives.
func startAcks(t *testing.T, nc *nats.Conn, max, n int) (*asyncAcks, chan *nats.Msg) {
	t.Helper()
	a := new(asyncAcks)
	// One lane, routed as a dispatcher routes its shard's (Hub.dispatch).
	lane := make(chan *nats.Msg, max)
	if err := a.start(nc, max, time.Minute, []chan *nats.Msg{lane}); err != nil {
		t.Fatal(err)
	}
	stop, routed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(routed)
		for {
			select {
			case m := <-lane:
				a.route(m)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-routed; a.stop() })
	got := make(chan *nats.Msg, n)
	sub, err := nc.ChanSubscribe("log.ops", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a, got
}

// Each asynchronous append gets its own acknowledgement, whatever order
// they come back in; a publish nobody receives is told so; every answered
// or forgotten publish frees its slot, and past max awaiting, a publish
// stalls.
func TestAsyncAcks(t *testing.T) {
	nc := internalConn(t)
	// The test answers the first two publishes in reverse order and leaves
	// the third unanswered.
	a, got := startAcks(t, nc, 3, 3)
	var futs []*pubAck
	for range 3 {
		f, err := a.publish(nats.NewMsg("log.ops"), time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	if _, err := a.publish(nats.NewMsg("log.ops"), 10*time.Millisecond); !errors.Is(err, errStalled) {
		t.Fatalf("a fourth publish with 3 awaiting: %v, want errStalled", err)
	}
	ms := []*nats.Msg{<-got, <-got, <-got}
	if err := nc.Publish(ms[1].Reply, []byte(`{"stream":"S","seq":8}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(ms[0].Reply, []byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 4"}}`)); err != nil {
		t.Fatal(err)
	}
	if seq, err := await(t, futs[1]); seq != 8 || err != nil {
		t.Fatalf("second publish: %d, %v; want 8", seq, err)
	}
	if _, err := await(t, futs[0]); !errors.Is(classifyPublish(err), errConflict) {
		t.Fatalf("first publish: %v, want the wrong-last-sequence conflict", err)
	}
	if n := a.pending(); n != 1 {
		t.Fatalf("%d publishes awaiting, want 1", n)
	}
	a.forget(futs[2])
	a.forget(futs[2]) // twice: its slot is freed once
	if n := a.pending(); n != 0 {
		t.Fatalf("after forgetting the third: %d awaiting, want 0", n)
	}
	if err := nc.Publish(ms[2].Reply, []byte(`{"stream":"S","seq":9}`)); err != nil {
		t.Fatal(err) // a late answer for a forgotten publish is dropped
	}

	f, err := a.publish(nats.NewMsg("nobody.listens"), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := await(t, f); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a publish nobody receives: %v, want no responders", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := a.pending(); n != 0 {
		t.Fatalf("%d awaiting at the end, want 0", n)
	}
}

// Stopping fails the publishes still awaiting their acknowledgement.
func TestAsyncAcksStop(t *testing.T) {
	a, _ := startAcks(t, internalConn(t), defaultAsyncMaxPending, 1) // never answered; stopped twice
	f, err := a.publish(nats.NewMsg("log.ops"), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	if _, err := await(t, f); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("after stop: %v, want connection closed", err)
	}
	if n := a.pending(); n != 0 {
		t.Fatalf("%d awaiting after stop, want 0", n)
	}
}

// Once stopped, an asyncAcks publishes nothing: nothing would settle it
// (its acknowledgements are unsubscribed, its deadlines no longer
// expired). The publish is refused, its slot freed.
func TestAsyncAcksRefuseAfterStop(t *testing.T) {
	a, got := startAcks(t, internalConn(t), defaultAsyncMaxPending, 1)
	a.stop()
	f, err := a.publish(nats.NewMsg("log.ops"), time.Millisecond)
	if !errors.Is(err, nats.ErrConnectionClosed) || f != nil {
		t.Fatalf("a publish after stop: %v, %v; want it refused, connection closed", f, err)
	}
	if n := a.pending(); n != 0 {
		t.Fatalf("%d awaiting after a refused publish, want 0", n)
	}
	select {
	case m := <-got:
		t.Fatalf("published after stop: %v", m)
	case <-time.After(50 * time.Millisecond):
	}
}

// A hub's appends await their acknowledgements 4,000 at a time by default
// (docs/ARCHITECTURE.md), past which a pipelined write stalls
// (TestPipelineStallStagesOnItsOwn), each for at most WriteTimeout, 5 s
// by default, from its publish (TestAckDeadlineCountsFromThePublish).
func TestAsyncAcksDefault(t *testing.T) {
	h := internalHub(t)
	if n := int(h.log.acks.max); n != 4000 {
		t.Fatalf("a hub's appends await %d acknowledgements at most, the docs say 4,000", n)
	}
	if h.log.timeout != 5*time.Second {
		t.Fatalf("an append awaits its acknowledgement %v at most, the docs say 5 s", h.log.timeout)
	}
}

// A reply to an append published before the hub's connection to NATS
// dropped can no longer come (the server sent it to the old connection):
// when the connection starts reconnecting, every publish awaiting its
// acknowledgement fails with nats.ErrDisconnected and frees its slot, as
// nats.go's PublishMsgAsync does (its pending acknowledgements are reset
// on RECONNECTING), rather than each waiting for its waiter's
// WriteTimeout. A publish made after the reconnect is answered as usual.
func TestAsyncAcksReconnect(t *testing.T) {
	nc := internalConn(t)
	a, got := startAcks(t, nc, defaultAsyncMaxPending, 4) // the test answers only when told
	f, err := a.publish(nats.NewMsg("log.ops"), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	<-got // at the server: its acknowledgement would go to this connection
	connected := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(connected)
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	if !settledWithin(f, 10*time.Second) {
		t.Fatal("an append published before the reconnect still awaits its acknowledgement 10s later")
	}
	if !errors.Is(f.err, nats.ErrDisconnected) {
		t.Fatalf("after a reconnect: %v, want disconnected", f.err)
	}
	if n := a.pending(); n != 0 {
		t.Fatalf("%d awaiting after the reconnect, want 0", n)
	}

	// After the reconnect, the inbox subscription answers again.
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("not reconnected within 10s")
	}
	f, err = a.publish(nats.NewMsg("log.ops"), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m := <-got
	if err := nc.Publish(m.Reply, []byte(`{"stream":"S","seq":3}`)); err != nil {
		t.Fatal(err)
	}
	if seq, err := await(t, f); seq != 3 || err != nil {
		t.Fatalf("after the reconnect: %d, %v; want 3", seq, err)
	}
}

// A socket's appends whose acknowledgements never come are each answered
// unavailable once WriteTimeout has passed since their own publish: the
// third of three published together is not answered after three
// timeouts, one after the other.
func TestAckDeadlineCountsFromThePublish(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h := internalHubWith(t, func(o *Options) { o.WriteTimeout = timeout })
	silence(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &conn{h: h, id: session.NewID(), ctx: ctx, cancel: cancel, out: newOutbox(64, 1<<20)}
	c.writing.Store(true) // no writer: the answers stay queued, to be read here
	v := h.acquire(ctx, c.id, 0)
	defer v.release()
	start := time.Now()
	for i := range 3 {
		f, err := h.log.acks.publish(nats.NewMsg("silent.log"), time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		own := &ownWrite{v: v, ops: []session.Op{{Type: session.OpDelete, Key: "k"}}}
		v.mu.Lock()
		v.inflight = append(v.inflight, own)
		v.oweLocked(own)
		v.publishedLocked(own, nil)
		v.mu.Unlock()
		c.push(pending{id: uint64(i + 1), b: &batch{own: own, n: 1, fut: f, start: start, closed: true, appended: true}, start: start})
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*timeout)
	defer wcancel()
	if !c.pipe.wait(wctx) {
		t.Fatal("the pipeline was not answered")
	}
	if took := time.Since(start); took > 2*timeout {
		t.Fatalf("three appends without acknowledgement answered after %v, want about one WriteTimeout (%v)", took, timeout)
	}
	msgs := c.out.take()
	if len(msgs) != 3 {
		t.Fatalf("%d answers, want 3", len(msgs))
	}
	for _, m := range msgs {
		if !strings.Contains(string(m), `"unavailable"`) {
			t.Fatalf("answer %s, want unavailable", m)
		}
	}
	if n := h.log.acks.pending(); n != 0 {
		t.Fatalf("%d publishes still awaiting, want 0", n)
	}
}

// An append asks the connection whether it is up only while the
// connection's status events say it may not be (asyncAcks.connected):
// down once its server went away, up again once it reconnected; and a
// CONNECTED event nats.go dropped leaves the connection itself to answer.
func TestAsyncAcksFollowTheConnection(t *testing.T) {
	ns, stop, start := StoppableNATS(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a, _ := startAcks(t, nc, defaultAsyncMaxPending, 1)
	within := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s within 10s", what)
			}
		}
	}
	if a.down.Load() || !a.connected() {
		t.Fatal("a fresh connection is not up")
	}

	stop()
	within("down once the server went away", a.down.Load)
	if a.connected() {
		t.Fatal("connected while the server is away")
	}

	start()
	within("up once reconnected", func() bool { return !a.down.Load() && a.connected() })

	a.down.Store(true) // as if the CONNECTED event had been dropped
	if !a.connected() {
		t.Fatal("a connection that is up, its CONNECTED event missed, counts as down")
	}
}

// A reserve waiting for a slot gets one as soon as one comes free, and
// several slots freed together go to as many waiters: none waits out its
// time with a slot free.
func TestReserveWaitsForAFreeSlot(t *testing.T) {
	a := &asyncAcks{max: 2, freed: make(chan struct{}, 1)}
	for i, want := range []bool{true, true, false} {
		if got := a.tryReserve(); got != want {
			t.Fatalf("reserve %d of 2 slots: %v, want %v", i+1, got, want)
		}
	}
	const waiters = 5
	got := make(chan bool, waiters)
	for range waiters {
		go func() { got <- a.reserve(context.Background(), time.Minute) }()
	}
	for deadline := time.Now().Add(5 * time.Second); a.waiters.Load() < waiters; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reserves waiting after 5 s", a.waiters.Load(), waiters)
		}
	}
	// Free both slots at once, then three more one by one: every waiter
	// gets one, and at no time do more than max hold one.
	a.release()
	a.release()
	for range 2 {
		if !<-got {
			t.Fatal("a reserve failed with a slot free")
		}
	}
	for i := range waiters - 2 {
		select {
		case ok := <-got:
			t.Fatalf("a reserve returned %v with no slot freed", ok)
		case <-time.After(20 * time.Millisecond):
		}
		if n := a.slots.Load(); n != 2 {
			t.Fatalf("%d slots held, want 2", n)
		}
		a.release()
		if !<-got {
			t.Fatalf("waiter %d: a reserve failed with a slot free", i+3)
		}
	}
	if n := a.slots.Load(); n != 2 {
		t.Fatalf("%d slots held at the end, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a.reserve(ctx, time.Minute) {
		t.Fatal("a reserve with every slot held and its context ended succeeded")
	}
	if a.reserve(context.Background(), time.Millisecond) {
		t.Fatal("a reserve with every slot held succeeded after its wait")
	}
}
