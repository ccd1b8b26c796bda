package hub

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// maxShards bounds the dispatcher goroutines that hand republished
// entries to views; a session always goes to the same one, so its
// entries stay in order.
const maxShards = 8

// shardsFor is how many dispatchers a hub runs on procs cores (the
// runtime's GOMAXPROCS): one for every two, from 1 to maxShards. A
// dispatcher writes the frames of its sessions' changes and answers
// itself, about half of what a write costs the hub, so one for every two
// cores leaves the others to the sockets' read loops and to nats.go. Each
// dispatcher more is a goroutine nats.go's reader wakes on its own for
// the entries of its sessions: on two cores, eight of them cost about 2%
// more of the hub's CPU per write at window 1 than one (BENCHMARKS.md,
// twelfth round).
func shardsFor(procs int) int { return min(max(procs/2, 1), maxShards) }

func (h *Hub) shard(id string) chan *nats.Msg { return h.live[h.lane(id)] }

// lane is the shard of session id on this hub: its dispatcher, and the
// lane of its asynchronous appends' acknowledgements.
func (h *Hub) lane(id string) int { return shardOf(id, len(h.live)) }

// shardOf is the shard of session id among n.
func shardOf(id string, n int) int {
	if n == 1 {
		return 0 // one dispatcher (two cores or fewer): nothing to hash
	}
	// FNV-1a, 32 bits (hash/fnv's New32a), without its allocation: every
	// socket write asks.
	sum := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		sum ^= uint32(id[i])
		sum *= 16777619
	}
	return int(sum % uint32(n))
}

// dispatch hands republished entries (live) to their views, one shard's
// sessions in order, and routes the acknowledgements of the shard's
// asynchronous appends (acked, asyncAcks). nats-server sends a stream's
// republished entry before the acknowledgement of its append, and
// nats.go's reader puts them in these channels in that order: the live
// entries waiting when an acknowledgement is taken go first. So the view
// holds a socket's own entry when the socket's answer queue learns its
// sequence (most often here: conn.resumeAnswers), and the entry's change
// goes with the ack (ownWrite.echoable). It never waits on JetStream: a
// view that finds a gap repairs it on a goroutine of its own
// (view.repairLocked), and the snapshot a socket's answer finds due is
// published without waiting for its acknowledgement
// (view.snapshotHereLocked); nor on a client: it writes a socket's frame
// only when the kernel takes it at once (conn.writeSoon).
func (h *Hub) dispatch(live, acked chan *nats.Msg) {
	defer h.workers.Done()
	prefix := h.opts.Subject + ".live."
	var woken []*conn
	onLive := func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, prefix)
		if v := h.lookup(id); v != nil {
			v.onLive(m, &woken)
		}
		for i, c := range woken {
			c.writeSoon()
			woken[i] = nil
		}
		woken = woken[:0]
	}
	for {
		select {
		case m := <-live:
			onLive(m)
		case m := <-acked:
			for n := len(live); n > 0; n-- {
				onLive(<-live)
			}
			h.log.acks.route(m)
		case <-h.closed:
			return
		}
	}
}

// janitor closes views that have been idle past ViewIdle, and ends the
// runner's idle goroutines once they are not needed.
func (h *Hub) janitor() {
	defer h.workers.Done()
	t := time.NewTicker(max(h.opts.ViewIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.sweep(time.Now())
			h.run.trim()
		case <-h.closed:
			return
		}
	}
}

func (h *Hub) sweep(now time.Time) {
	var idle []*view
	h.mu.Lock()
	for id, v := range h.views {
		v.mu.Lock()
		if v.refs == 0 && now.Sub(v.idle) >= h.opts.ViewIdle {
			delete(h.views, id)
			idle = append(idle, v)
		}
		v.mu.Unlock()
	}
	h.mu.Unlock()
	for _, v := range idle {
		v.close()
		h.opts.Metrics.ViewClosed()
	}
}

// pinger pings every socket each PingInterval; a socket whose pong does
// not come within PingTimeout is closed with ClosePingTimeout.
func (h *Hub) pinger() {
	defer h.workers.Done()
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, c := range h.sockets() {
				if !c.closing.Load() && c.pinging.CompareAndSwap(false, true) {
					go c.ping()
				}
			}
		case <-h.closed:
			return
		}
	}
}

// sockets returns every socket of this instance, lazy ones included.
func (h *Hub) sockets() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*conn
	for _, ls := range h.lazy {
		for c := range ls.conns {
			out = append(out, c)
		}
	}
	for _, v := range h.views {
		v.mu.Lock()
		for c := range v.conns {
			out = append(out, c)
		}
		v.mu.Unlock()
	}
	return out
}
