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
)

func (h *Hub) onControl(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, h.opts.Subject+".ctl.")
	switch string(m.Data) {
	case ctlEnd:
		h.closeSession(id, CloseSessionEnded, "session ended")
	case ctlRotate:
		h.closeSession(id, CloseSessionRotated, "session rotated")
	default:
		h.pushLocal(id, m.Data) // PushSession
	}
}

// closeSession closes every socket of session id on this instance.
func (h *Hub) closeSession(id string, code websocket.StatusCode, reason string) {
	v := h.lookup(id)
	if v == nil {
		return
	}
	v.mu.Lock()
	conns := slices.Collect(maps.Keys(v.conns))
	v.mu.Unlock()
	for _, c := range conns {
		c.close(code, reason)
	}
}

// End ends session id: an end op is appended to its log, so that any
// cookie of the session that folds it later (a flush in flight, a stale
// copy, an instance that missed the control message) is deleted instead
// of bringing the session back, and every socket of it, on every
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
	_, logErr := h.stage(ctx, id, SourceHTTP, nil, []session.Op{{Type: session.OpEnd}})
	if err := h.control(ctx, id, ctlEnd, CloseSessionEnded, "session ended"); err != nil {
		return err
	}
	return logErr
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
	if err := h.opts.Conn.Publish(h.log.ctlSubject(id), []byte(what)); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	fctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	if err := h.opts.Conn.FlushWithContext(fctx); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	return nil
}
