package hub

import (
	"context"

	"github.com/sessionhub/sessionhub/session"
)

// Lazy sockets. A socket of a session whose log is empty (a handshake
// without a cookie, or with a cookie of a session never written) costs no
// JetStream or NATS state: it has no view, hence no subscription and no
// tail, only an entry in Hub.lazy. It joins a view (view.go) on its own
// first write or resume, or when a wake says the log may have had its
// first entry: a writer that does not know the log to hold an entry (its
// view saw none written within Retention/2, or it has no view) publishes
// "wake" on the session's control subject once JetStream acknowledged
// the append, and every instance's lazy sockets of the session join a
// view then, folding what the log holds. End, Rotated and PushSession
// reach lazy sockets as they reach the others (Hub.sessionSockets).
//
// A handshake registers its session as pending before it reads the log:
// a wake for an append it did not read then arrives after the
// registration, and is kept (woken) until the socket registers.

// lazySet is the lazy sockets of one session on this instance.
type lazySet struct {
	conns   map[*conn]struct{}
	pending int  // handshakes between their log check and their registration
	woken   bool // a wake came while handshakes were pending
}

// pendLazy marks a handshake of session id as pending (under no lock).
func (h *Hub) pendLazy(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.lazy[id]
	if ls == nil {
		ls = &lazySet{conns: map[*conn]struct{}{}}
		h.lazy[id] = ls
	}
	ls.pending++
}

// unpendLazy ends a pending handshake of session id; with c, it registers
// c as a lazy socket, and reports whether a wake came meanwhile (c is
// marked joining then, and the caller joins it to a view).
func (h *Hub) unpendLazy(id string, c *conn) (woken bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.lazy[id]
	ls.pending--
	if c != nil {
		ls.conns[c] = struct{}{}
		if ls.woken {
			c.joining, woken = true, true
		}
	}
	if ls.pending == 0 && len(ls.conns) == 0 {
		delete(h.lazy, id)
	}
	return woken
}

// wake tells every instance that session id's log may have had its
// first entry.
func (h *Hub) wake(id string) {
	if err := h.opts.Conn.Publish(h.log.ctlSubject(id), []byte(ctlWake)); err != nil {
		h.opts.Logger.Warn("wake not published: lazy sockets of the session see the write at their next one", "session", id, "err", err)
	}
}

// wakeLazy joins the lazy sockets of session id on this instance to a
// view (a wake came), off the control subscription's goroutine. They stay
// in the lazy set until they are in the view, so that an end, a rotation
// or a push meanwhile reaches them.
func (h *Hub) wakeLazy(id string) {
	h.mu.Lock()
	ls := h.lazy[id]
	if ls == nil {
		h.mu.Unlock()
		return
	}
	var conns []*conn
	for c := range ls.conns {
		if !c.joining {
			c.joining = true
			conns = append(conns, c)
		}
	}
	if ls.pending > 0 {
		ls.woken = true
	}
	closing := h.closing.Load()
	if len(conns) > 0 && !closing {
		h.workers.Add(1)
	}
	h.mu.Unlock()
	if len(conns) == 0 || closing {
		return
	}
	go func() {
		defer h.workers.Done()
		h.joinLazy(id, conns)
	}()
}

// takeLazy marks c, a lazy socket, as joining and reports whether it was
// not already (false: a wake is joining it).
func (h *Hub) takeLazy(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.lazy[c.id]
	if ls == nil {
		return false
	}
	if _, ok := ls.conns[c]; !ok || c.joining {
		return false
	}
	c.joining = true
	return true
}

// leaveLazyLocked removes c from the lazy sockets of its session.
func (h *Hub) leaveLazyLocked(c *conn) {
	ls := h.lazy[c.id]
	if ls == nil {
		return
	}
	delete(ls.conns, c)
	if ls.pending == 0 && len(ls.conns) == 0 {
		delete(h.lazy, c.id)
	}
}

// joinLazy joins lazy sockets of session id, marked joining, to its view.
func (h *Hub) joinLazy(id string, conns []*conn) {
	if h.closing.Load() {
		for _, c := range conns {
			close(c.joined) // Shutdown closes the sockets
		}
		return
	}
	ctx, cancel := context.WithTimeout(h.bg, h.log.timeout) // ends with the hub
	defer cancel()
	v := h.acquire(ctx, id, 0)
	for i, c := range conns {
		if i > 0 {
			v.mu.Lock()
			v.refs++ // one reference per socket; the first is acquire's
			v.mu.Unlock()
		}
		h.join(ctx, c, v)
	}
}

// join adds a lazy socket to view v, which it holds a reference of: every
// entry after the socket's snapshot is delivered to it as a change, then
// it receives the session's changes as any other socket. A socket closed
// meanwhile gives the reference back.
func (h *Hub) join(ctx context.Context, c *conn, v *view) {
	defer close(c.joined)
	for attempt := 0; attempt < 3; attempt++ {
		h.mu.Lock()
		if c.gone {
			h.leaveLazyLocked(c)
			h.mu.Unlock()
			v.release()
			return
		}
		v.mu.Lock()
		after := c.snapSeq()
		entries, ok := v.sinceLocked(after)
		if ok || !v.loaded || v.stale || after >= v.from {
			// A stale view delivers nothing until its gap is filled, and
			// then every entry in order.
			for _, e := range entries {
				c.deliver(e, h.changeMessage(e))
			}
			v.addConnLocked(c)
			c.v.Store(v)
			h.leaveLazyLocked(c)
			v.mu.Unlock()
			h.mu.Unlock()
			return
		}
		upTo := v.last
		v.mu.Unlock()
		h.mu.Unlock()
		// The view started after the socket's version (a cookie's view):
		// read what lies between from JetStream.
		missed, err := h.log.fetch(ctx, c.id, after, upTo)
		if err != nil {
			break
		}
		for _, e := range missed {
			c.deliver(e, h.changeMessage(e))
		}
	}
	h.mu.Lock()
	gone := c.gone
	h.leaveLazyLocked(c)
	h.mu.Unlock()
	v.release()
	if !gone {
		c.close(CloseInternal, "session state unavailable, reconnect")
	}
}

// view returns the socket's view, joining one first when the socket is
// lazy; nil when the socket closed or its session state is unavailable.
func (c *conn) view() *view {
	if v := c.v.Load(); v != nil {
		return v
	}
	if c.h.takeLazy(c) {
		c.h.joinLazy(c.id, []*conn{c})
	}
	select {
	case <-c.joined:
	case <-c.ctx.Done():
		return nil
	}
	return c.v.Load()
}

// probeEmpty reports whether session id's log is empty and the session
// not revoked, reading JetStream once for each and keeping nothing:
// whether a socket of the session can be lazy. An error counts as not
// empty (the socket takes a view, which degrades on its own).
func (h *Hub) probeEmpty(ctx context.Context, id string) (empty, revoked bool) {
	revoked, err := h.revoked.revoked(ctx, id)
	if err != nil {
		return false, false
	}
	if revoked {
		return false, true
	}
	empty, err = h.log.empty(ctx, id)
	return err == nil && empty, false
}

var endOp = []session.Op{{Type: session.OpEnd, Seq: 1}}
