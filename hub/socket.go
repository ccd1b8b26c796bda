package hub

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// EventHandler handles a client event. Its reply, when not nil, is sent
// JSON-encoded in the ack's data; an error is sent as an error message
// (an *Error keeps its code, anything else is internal and only logged).
type EventHandler func(ctx context.Context, ev *Event) (reply any, err error)

// Event is a client event and the socket it came from.
type Event struct {
	Name   string
	Data   json.RawMessage
	Socket *Socket
}

// Handle registers the handler of client events called name.
func (h *Hub) Handle(name string, fn EventHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handlers[name] = fn
}

func (h *Hub) handler(name string) EventHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.handlers[name]
}

// Socket is the Go API of one WebSocket for event handlers: read the
// session, write any key through the log, push events to the browser.
type Socket struct {
	c    *conn
	last atomic.Uint64
}

// SessionID returns the session's ID.
func (s *Socket) SessionID() string { return s.c.id }

// Seq returns the version of the session as this socket knows it.
func (s *Socket) Seq() uint64 { return s.c.snapSeq() }

// Get decodes the value of key into dst; false when absent.
func (s *Socket) Get(key string, dst any) (bool, error) {
	snap := s.c.snapshot()
	raw, ok := snap.Values[key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, dst)
}

// Values returns every value of the session (not only client-readable
// ones: this is server-side code).
func (s *Socket) Values() map[string]json.RawMessage { return s.c.snapshot().Values }

// Set stages key = v (any key: this is server-side code). It returns once
// JetStream acknowledged it.
func (s *Socket) Set(ctx context.Context, key string, v any) (uint64, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, wrapErr(ErrInternal, err)
	}
	op, err := session.SetOp(key, raw)
	if err != nil {
		return 0, Errorf(CodeInvalid, "%v", err)
	}
	return s.apply(ctx, op)
}

// Delete stages the removal of key.
func (s *Socket) Delete(ctx context.Context, key string) (uint64, error) {
	return s.apply(ctx, session.Op{Type: session.OpDelete, Key: key})
}

func (s *Socket) apply(ctx context.Context, ops ...session.Op) (uint64, error) {
	// After the socket's pipelined writes are answered: the budget is
	// measured on the log with them.
	if !s.c.pipe.wait(ctx) {
		return 0, wrapErr(ErrUnavailable, ctx.Err())
	}
	seq, err := s.c.stage(ctx, SourceWS, ops)
	if err == nil {
		s.last.Store(seq)
	}
	return seq, err
}

func (s *Socket) lastSeq() uint64 {
	if seq := s.last.Load(); seq > 0 {
		return seq
	}
	return s.c.snapSeq()
}

// Push sends an event to this socket: {"type":"push","name":...,"data":...}.
func (s *Socket) Push(name string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if !s.c.queue(protocol.Marshal(protocol.Push{Type: protocol.TypePush, Name: name, Data: raw})) {
		return errors.New("hub: socket closed")
	}
	return nil
}
