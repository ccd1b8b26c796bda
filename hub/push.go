package hub

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// PushSession sends an event to every socket of session id, on every
// instance: {"type":"push","name":...,"data":...}, as Socket.Push does for
// one socket. It returns once NATS took the message; sockets that are not
// open miss it (a push is not in the log). data is JSON-encoded.
func (h *Hub) PushSession(ctx context.Context, id, name string, data any) error {
	if !session.ValidID(id) {
		return Errorf(CodeInvalid, "invalid session id")
	}
	if name == "" {
		return Errorf(CodeInvalid, "push needs a name")
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Errorf(CodeInvalid, "push data is not JSON: %v", err)
	}
	if h.closing.Load() {
		return wrapErr(ErrUnavailable, ErrClosed)
	}
	// The push rides the control subject, which every instance (this one
	// included) subscribes to: onControl hands it to pushLocal.
	return h.publishControl(ctx, id, protocol.Marshal(protocol.Push{Type: protocol.TypePush, Name: name, Data: raw}))
}

// pushLocal queues a push message (a control message that is a JSON
// object) to every socket of session id on this instance.
func (h *Hub) pushLocal(id string, msg []byte) {
	if !strings.HasPrefix(string(msg), "{") {
		return
	}
	for _, c := range h.sessionSockets(id) {
		c.queue(msg)
	}
}
