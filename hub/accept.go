package hub

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/sessionhub/sessionhub/internal/origin"
	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// ServeHTTP serves the socket at <Prefix>/ws and the bridge at
// <Prefix>/flush; anything else under the prefix is 404. Mount the hub
// at the prefix, e.g. mux.Handle("/hub/", h).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case h.opts.Prefix + "/ws":
		h.serveWS(w, r)
	case h.opts.Prefix + "/flush":
		h.flush.ServeHTTP(w, r)
	default:
		protocol.WriteCode(w, protocol.CodeNotFound, "no such endpoint")
	}
}

var _ http.Handler = (*Hub)(nil)

// refuseHandshake answers a request that will not become a socket, as a
// JSON error; no session, view or cookie is made for it.
func refuseHandshake(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		protocol.WriteCode(w, protocol.CodeMethodNotAllowed, "use GET with a WebSocket handshake")
	case !headerHasToken(r.Header, "Upgrade", "websocket") || !headerHasToken(r.Header, "Connection", "upgrade"):
		w.Header().Set("Upgrade", "websocket")
		protocol.WriteCode(w, protocol.CodeUpgradeRequired, "")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		protocol.WriteCode(w, protocol.CodeInvalid, "unsupported WebSocket version: want 13")
	case !validKey(r.Header.Get("Sec-WebSocket-Key")):
		protocol.WriteCode(w, protocol.CodeInvalid, "missing or malformed Sec-WebSocket-Key")
	default:
		return false
	}
	return true
}

// validKey reports whether k is a handshake key: base64 of 16 bytes.
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

// serveWS upgrades the request to a session socket. The handshake's
// cookie names the session; without a valid one the hub creates a session
// and sets its cookie on the 101 response, and a cookie behind the log is
// refreshed there too. A socket of a session whose log is empty is lazy
// (lazy.go): it holds no view until the session is written.
func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	if h.closing.Load() {
		protocol.WriteCode(w, protocol.CodeUnavailable, "shutting down")
		return
	}
	if !origin.Allowed(r, h.opts.AllowedOrigins) {
		protocol.WriteCode(w, protocol.CodeForbidden, "origin not allowed")
		return
	}
	if refuseHandshake(w, r) {
		return
	}
	addr := clientAddr(r)
	if !h.reserve(h.perAddr, addr, h.opts.MaxSocketsPerAddr) {
		w.Header().Set("Retry-After", "10")
		protocol.WriteCode(w, protocol.CodeRateLimited, "too many sockets from this address")
		return
	}
	s, err := h.opts.Store.Load(r)
	if err != nil {
		h.opts.Logger.Debug("session cookie refused at handshake", "reason", session.ReasonOf(err), "err", err)
		h.opts.Metrics.CookieRefused(session.ReasonOf(err))
	}
	id, v, lazy := h.handshakeSession(r.Context(), s)
	// unreserve gives back what the handshake holds when no socket comes
	// of it.
	unreserve := func(session bool) {
		if v != nil {
			v.release()
		}
		if lazy {
			h.unpendLazy(id, nil)
		}
		if session {
			h.unreserve(h.perSession, id)
		}
		h.unreserve(h.perAddr, addr)
	}
	if !h.reserve(h.perSession, id, h.opts.MaxSocketsPerSession) {
		unreserve(false)
		w.Header().Set("Retry-After", "10")
		protocol.WriteCode(w, protocol.CodeRateLimited, "too many sockets for this session")
		return
	}
	if _, err := h.opts.Store.Save(w.Header(), s); err != nil {
		h.opts.Logger.Error("session cookie not written at handshake", "session", id, "err", err)
	}

	sw := &sndbufWriter{ResponseWriter: w, size: h.opts.SocketKernelBuffer}
	// c is set below, before the socket's read loop starts: the read
	// loop is where coder/websocket calls OnPingReceived.
	var c *conn
	ws, err := websocket.Accept(sw, r, &websocket.AcceptOptions{
		// The origin was checked above, by scheme, host and port.
		InsecureSkipVerify: true,
		Subprotocols:       []string{protocol.Subprotocol},
		// The pong coder/websocket writes takes room in the kernel's
		// send buffer too (conn.writeSoon), and is written only while
		// half of it is free.
		OnPingReceived: func(context.Context, []byte) bool {
			if !c.pongFits() {
				return false
			}
			c.ctrl.Add(controlCost)
			return true
		},
	})
	if err != nil {
		unreserve(true)
		return // Accept wrote the HTTP error
	}
	ws.SetReadLimit(h.opts.ReadLimit)

	ctx, cancel := context.WithCancel(context.Background())
	c = &conn{
		h:        h,
		ws:       ws,
		raw:      sw.conn,
		rawc:     rawConn(sw.conn),
		id:       id,
		joined:   make(chan struct{}),
		limiter:  rate.NewLimiter(rate.Limit(h.opts.RateLimit), h.opts.RateBurst),
		out:      newOutbox(h.opts.SendBuffer, h.opts.SendBufferBytes),
		batch:    ws.Subprotocol() == protocol.Subprotocol,
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		snap:     s.Snapshot(),
	}
	h.mu.Lock()
	if h.closing.Load() {
		h.mu.Unlock()
		unreserve(true)
		_ = ws.Close(CloseGoingAway, "server shutting down")
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	h.opts.Metrics.SocketOpened()
	finish := func() {
		cancel()
		h.mu.Lock()
		c.gone = true
		if !c.joining {
			h.leaveLazyLocked(c) // a join in progress removes it itself
		}
		cv := c.v.Load()
		h.mu.Unlock()
		if cv != nil {
			cv.mu.Lock()
			cv.removeConnLocked(c)
			cv.mu.Unlock()
			cv.release()
		}
		h.unreserve(h.perSession, id)
		h.unreserve(h.perAddr, addr)
		h.opts.Metrics.SocketClosed(int(c.closeCode))
		h.conns.Done()
	}

	if lazy {
		// The welcome first: a wake's changes follow it.
		c.out.push(protocol.Marshal(protocol.Welcome{Type: protocol.TypeWelcome, Seq: c.snap.Seq, Values: h.ReadableValues(c.snap.Values)}))
		if h.unpendLazy(id, c) {
			h.workers.Add(1)
			go func() {
				defer h.workers.Done()
				h.joinLazy(id, []*conn{c})
			}()
		}
	} else {
		close(c.joined)
		c.v.Store(v)
		h.welcome(c, v)
	}
	if h.closing.Load() { // Shutdown may have collected the sockets before this one
		c.close(CloseGoingAway, "server shutting down")
	}

	// The socket lives on fresh goroutines; the handler returns (Accept
	// hijacked the connection), so the stack it grew during the handshake
	// is not kept for the life of an idle socket.
	c.kick() // the welcome
	go func() {
		defer finish()
		c.readLoop() // ends with c.close
		<-c.finished // the close frame went out (bounded by WriteWait and the close handshake)
		c.stopped()  // the queue's driver saw the socket's context end
		_ = c.ws.CloseNow()
	}()
}

// handshakeSession folds into s what the log holds after its version and
// returns the session the socket is of, with its view (one reference
// taken), or none and lazy set (a pending lazy handshake, lazy.go) when
// the session's log is empty: a handshake without a cookie, with the
// cookie of a session never written, or of a session logged out (a new
// session starts then).
func (h *Hub) handshakeSession(ctx context.Context, s *session.Session) (id string, v *view, lazy bool) {
	anonymous := s.ID() == ""
	id = s.EnsureID()
	if s.Seq() == 0 && h.lookup(id) == nil {
		h.pendLazy(id)
		if anonymous {
			return id, nil, true // a new random ID: nothing can be logged under it yet
		}
		empty, revoked := h.probeEmpty(ctx, id)
		if empty {
			return id, nil, true
		}
		h.unpendLazy(id, nil)
		if revoked {
			s.Fold(endOp)
			id = s.EnsureID()
			h.pendLazy(id)
			return id, nil, true
		}
	}
	v = h.acquire(ctx, id, s.Seq())
	if v.isRevoked(ctx) {
		s.Fold([]session.Op{{Type: session.OpEnd, Seq: s.Seq() + 1}})
	} else {
		// Fold what the view holds after the cookie's version; older
		// entries come from JetStream.
		v.mu.Lock()
		v.waitAckedDroppingLock(ctx)
		// The tail's entries are read under the view's lock: the
		// dispatcher clears the ones the tail lets go of in place.
		entries, ok := v.sinceLocked(s.Seq())
		ops := flatten(entries)
		v.mu.Unlock()
		if !ok {
			if fetched, err := h.log.fetch(ctx, id, s.Seq(), 0); err == nil {
				ops = flatten(fetched)
			}
		}
		s.Fold(ops)
	}
	if s.Ended() {
		// The cookie names a session that was logged out: start a new one,
		// lazy as any new session.
		v.release()
		id = s.EnsureID()
		h.pendLazy(id)
		return id, nil, true
	}
	return id, v, false
}

// welcome registers a socket with its view and queues its welcome, reading
// from JetStream what the view's tail lacks.
func (h *Hub) welcome(c *conn, v *view) {
	id := c.id
	// Register and welcome under the view's lock: no change slips between
	// the welcome's seq and the first change message.
	ended, whole := h.register(c, v)
	for attempt := 0; !whole && attempt < 3; attempt++ {
		// More entries arrived since the handshake's fold than the view's
		// tail keeps: read them, then register again.
		v.mu.Lock()
		upTo := v.last
		v.mu.Unlock()
		missed, err := h.log.fetch(context.Background(), id, c.snap.Seq, upTo)
		if err != nil {
			break
		}
		endedBefore := false
		for _, e := range missed {
			c.snap = c.snap.Fold(e.Ops)
			for _, op := range e.Ops {
				endedBefore = endedBefore || op.Type == session.OpEnd
			}
		}
		ended, whole = h.register(c, v)
		ended = ended || endedBefore
	}
	if !whole {
		c.close(CloseInternal, "session state unavailable, reconnect")
	}
	if ended {
		c.close(CloseSessionEnded, "session ended")
	}
}

// register folds what the view holds after the socket's snapshot, queues
// the welcome and adds the socket to the view, under the view's lock: no
// change slips between the welcome's seq and the first change message. It
// reports whether an end op was folded, and whether the view could account
// for everything since the snapshot.
func (h *Hub) register(c *conn, v *view) (ended, whole bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	after, ok := v.sinceLocked(c.snap.Seq)
	if !ok && v.loaded && !v.stale && c.snap.Seq < v.from {
		return false, false // entries after the snapshot left the tail
	}
	// A stale view delivers nothing until its gap is filled, and then
	// every entry in order: the socket misses nothing by joining now.
	for _, e := range after {
		c.snap = c.snap.Fold(e.Ops)
		for _, op := range e.Ops {
			ended = ended || op.Type == session.OpEnd
		}
	}
	c.out.push(protocol.Marshal(protocol.Welcome{Type: protocol.TypeWelcome, Seq: c.snap.Seq, Values: h.ReadableValues(c.snap.Values)}))
	v.addConnLocked(c)
	return ended, true
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// reserve takes one of the max slots of key in counts (max 0: no bound).
func (h *Hub) reserve(counts map[string]int, key string, max int) bool {
	if max <= 0 {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if counts[key] >= max {
		return false
	}
	counts[key]++
	return true
}

// unreserve gives a slot taken by reserve back.
func (h *Hub) unreserve(counts map[string]int, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n, ok := counts[key]; ok {
		if n <= 1 {
			delete(counts, key)
		} else {
			counts[key] = n - 1
		}
	}
}

// clientAddr is the host of the request's remote address.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sndbufWriter sets the kernel send buffer of the connection a socket
// hijacks (the TCP connection under its TLS, if any), so that the
// kernel's buffers cannot absorb an unbounded backlog for a client that
// stopped reading, and keeps that connection.
type sndbufWriter struct {
	http.ResponseWriter
	size int
	conn net.Conn // the hijacked connection, under its TLS if any
}

func (w *sndbufWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.conn = c
		if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
			w.conn = tc.NetConn()
		}
		if tc, ok := w.conn.(interface{ SetWriteBuffer(int) error }); ok {
			_ = tc.SetWriteBuffer(w.size)
		}
	}
	return c, brw, err
}

func (w *sndbufWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var _ http.Hijacker = (*sndbufWriter)(nil)
