package hub

import (
	"context"
	"encoding/base64"
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
// refreshed there too.
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
	s, err := h.opts.Store.Load(r)
	if err != nil {
		h.opts.Logger.Debug("session cookie refused at handshake", "reason", session.ReasonOf(err), "err", err)
		h.opts.Metrics.CookieRefused(session.ReasonOf(err))
	}
	id := s.EnsureID()
	v := h.acquire(r.Context(), id, s.Seq())
	// Fold what the view holds after the cookie's version; older entries
	// come from JetStream.
	v.mu.Lock()
	v.waitAckedDroppingLock(r.Context())
	entries, ok := v.sinceLocked(s.Seq())
	v.mu.Unlock()
	if !ok {
		if fetched, err := h.log.fetch(r.Context(), id, s.Seq(), 0); err == nil {
			entries = fetched
		}
	}
	s.Fold(flatten(entries))
	if s.Ended() {
		// The cookie names a session that was logged out: start a new one.
		v.release()
		id = s.EnsureID()
		v = h.acquire(r.Context(), id, 0)
	}
	if _, err := h.opts.Store.Save(w.Header(), s); err != nil {
		h.opts.Logger.Error("session cookie not written at handshake", "session", id, "err", err)
	}

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// The origin was checked above, by scheme, host and port.
		InsecureSkipVerify: true,
	})
	if err != nil {
		v.release()
		return // Accept wrote the HTTP error
	}
	ws.SetReadLimit(h.opts.ReadLimit)

	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		h:        h,
		ws:       ws,
		v:        v,
		id:       id,
		limiter:  rate.NewLimiter(rate.Limit(h.opts.RateLimit), h.opts.RateBurst),
		out:      newOutbox(h.opts.SendBuffer),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		snap:     s.Snapshot(),
	}
	h.mu.Lock()
	if h.closing.Load() {
		h.mu.Unlock()
		v.release()
		_ = ws.Close(CloseGoingAway, "server shutting down")
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	h.opts.Metrics.SocketOpened()
	finish := func() {
		cancel()
		v.mu.Lock()
		delete(v.conns, c)
		v.mu.Unlock()
		v.release()
		h.opts.Metrics.SocketClosed(int(c.closeCode))
		h.conns.Done()
	}

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
		_ = c.ws.CloseNow()
	}()
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
	v.conns[c] = struct{}{}
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
