package hub

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/session"
)

// Control messages, on <Subject>.ctl.<id>, close a session's sockets on
// every instance.
const (
	ctlEnd    = "end"
	ctlRotate = "rotate"
	ctlWake   = "wake" // a session's log may have had its first entry (lazy.go)
)

func (h *Hub) onControl(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, h.opts.Subject+".ctl.")
	switch string(m.Data) {
	case ctlEnd:
		h.closeSession(id, CloseSessionEnded, "session ended")
	case ctlRotate:
		h.closeSession(id, CloseSessionRotated, "session rotated")
	case ctlWake:
		h.wakeLazy(id)
	default:
		h.pushLocal(id, m.Data) // PushSession
	}
}

// closeSession closes every socket of session id on this instance, lazy
// ones included.
func (h *Hub) closeSession(id string, code websocket.StatusCode, reason string) {
	for _, c := range h.sessionSockets(id) {
		c.close(code, reason)
	}
}

// sessionSockets returns the sockets of session id on this instance: its
// view's and its lazy ones.
func (h *Hub) sessionSockets(id string) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var conns []*conn
	if ls := h.lazy[id]; ls != nil {
		conns = slices.Collect(maps.Keys(ls.conns))
	}
	if v := h.views[id]; v != nil {
		v.mu.Lock()
		for c := range v.conns {
			conns = append(conns, c)
		}
		v.mu.Unlock()
	}
	return conns
}

// End ends session id: the end is recorded first in the revocation
// bucket, kept for the cookie lifetime and never subject to the log's
// limits, so that any cookie of the session loaded later (a flush in
// flight, a stale copy, a replay after the log's retention window), on
// any instance, is deleted instead of bringing the session back. An error
// means the revocation was not recorded (NATS unreachable): the logout
// did not happen and should be retried. An end op is then appended to the
// log when the log takes it (a full log does not matter), for the views
// and sockets that fold it, and every socket of the session, on every
// instance, is closed with CloseSessionEnded (logout: the client must not
// reconnect).
//
// The middleware calls End itself for a handler that called
// session.Session.End; call it directly to end a session from elsewhere
// (an admin action, a worker).
func (h *Hub) End(ctx context.Context, id string) error {
	if !session.ValidID(id) {
		return nil
	}
	if h.closing.Load() {
		return wrapErr(ErrUnavailable, ErrClosed)
	}
	if err := h.revoked.revoke(ctx, id); err != nil {
		return err
	}
	h.onRevoked(id)
	if _, err := h.stage(ctx, id, SourceHTTP, nil, []session.Op{{Type: session.OpEnd}}); err != nil {
		h.opts.Logger.Debug("end op not logged; the revocation holds", "session", id, "err", err)
	}
	return h.control(ctx, id, ctlEnd, CloseSessionEnded, "session ended")
}

// onRevoked marks this instance's view of session id ended and closes its
// sockets with CloseSessionEnded: the revocation bucket's subscription
// calls it for every logout, made on any instance.
func (h *Hub) onRevoked(id string) {
	if v := h.lookup(id); v != nil {
		v.mu.Lock()
		v.markRevokedLocked(true)
		v.mu.Unlock()
	}
	h.closeSession(id, CloseSessionEnded, "session ended")
}

// Rotated closes every socket of the old session ID, on every instance,
// with CloseSessionRotated (login: reconnect with the new cookie). The
// middleware calls it itself for a handler that called
// session.Session.Rotate.
func (h *Hub) Rotated(ctx context.Context, oldID string) error {
	return h.control(ctx, oldID, ctlRotate, CloseSessionRotated, "session rotated")
}

// control closes the session's sockets here, then tells every other
// instance to, and waits until NATS has the message.
func (h *Hub) control(ctx context.Context, id, what string, code websocket.StatusCode, reason string) error {
	if !session.ValidID(id) {
		return nil
	}
	h.closeSession(id, code, reason)
	return h.publishControl(ctx, id, []byte(what))
}

// publishControl sends msg on session id's control subject, which every
// instance (this one included) subscribes to, and waits until NATS has it.
func (h *Hub) publishControl(ctx context.Context, id string, msg []byte) error {
	if err := h.opts.Conn.Publish(h.log.ctlSubject(id), msg); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	fctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	if err := h.opts.Conn.FlushWithContext(fctx); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	return nil
}
