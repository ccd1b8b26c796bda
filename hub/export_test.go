package hub

import (
	"net"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/hub/natsserver"
)

// StoppableNATS starts an embedded NATS server and returns it with stop
// and start: start runs it again on the same store and port, as a NATS
// restart does. Every server it starts is closed with the test.
func StoppableNATS(t testing.TB) (ns *natsserver.Server, stop, start func()) {
	t.Helper()
	dir := t.TempDir()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	port := ns.Addr().(*net.TCPAddr).Port
	return ns, ns.Close, func() {
		t.Helper()
		again, err := natsserver.Start(natsserver.Options{StoreDir: dir, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(again.Close)
	}
}

// SetLiveBuffer sets how many live changes may wait for each dispatcher
// of the hub o configures: 1 makes nats.go drop them as a slow consumer
// as soon as a dispatcher is busy.
func SetLiveBuffer(o *Options, n int) { o.liveBuffer = n }

// SetAsyncMaxPending sets how many asynchronous publishes of the hub o
// configures may await their acknowledgement before the next one stalls.
func SetAsyncMaxPending(o *Options, n int) { o.asyncMaxPending = n }

// Stalls reports how many pipelined appends of h were staged on their own
// because the connection's asynchronous publishes stalled.
func Stalls(h *Hub) uint64 { return h.stalls.Load() }

// StallView holds the view of session id on h (it must exist), so that
// the dispatcher of its shard waits on it, until release is called.
func StallView(h *Hub, id string) (release func()) {
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	v.mu.Lock()
	return v.mu.Unlock
}

// DirectGetSubject is the subject h sends its direct gets of the log to.
func DirectGetSubject(h *Hub) string { return h.log.directGet }

// AsyncPending reports how many of h's asynchronous JetStream publishes
// await their acknowledgement.
func AsyncPending(h *Hub) int { return h.log.acks.pending() }

// Owed returns the ops of the pipelined writes h took in for session id
// (its view must exist) and has not answered.
func Owed(h *Hub, id string) int {
	v := h.lookup(id)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.owed
}

// PipelineWaited reports whether a socket of session id on h (its view
// must exist) has had to wait for room among its appends in flight.
func PipelineWaited(h *Hub, id string) bool {
	v := h.lookup(id)
	v.mu.Lock()
	defer v.mu.Unlock()
	for c := range v.conns {
		c.pipe.mu.Lock()
		waited := c.pipe.space != nil
		c.pipe.mu.Unlock()
		if waited {
			return true
		}
	}
	return false
}

// ResolvedOptions returns o with the defaults New fills in (or New's
// error for o), without connecting to anything.
func ResolvedOptions(o *Options) (Options, error) { return o.withDefaults() }

// RevocationTTL is how long a hub with options o keeps the record of a
// logout.
func RevocationTTL(o *Options) time.Duration { return revocationTTL(o) }
