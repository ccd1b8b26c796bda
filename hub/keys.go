package hub

import (
	"encoding/json"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// KeyPolicy says what the browser may do with one session key. Server-side
// Go code (HTTP handlers, event handlers) may write any key; the browser
// only keys declared in Options.ClientKeys.
type KeyPolicy struct {
	// Read: the key's value is sent to the browser (welcome, change,
	// reset, the bridge's response).
	Read bool
	// Write: the browser may set and delete the key over the socket.
	Write bool
	// Validate checks a value the browser sets; a non-nil error refuses it
	// with the code forbidden (the error text is shown to the client).
	// Required when Write is set.
	Validate func(value json.RawMessage) error
}

// ReadableValues returns the client-readable subset of values: what the
// browser may see of a session (for an application's own JSON API).
func (h *Hub) ReadableValues(values map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(values))
	for k, v := range values {
		if h.readable(k) {
			out[k] = v
		}
	}
	return out
}

func (h *Hub) readable(key string) bool { return h.opts.ClientKeys[key].Read }

// changeMessage encodes an entry for the browser: ops on keys it cannot
// read are left out, the sequence still advances.
func (h *Hub) changeMessage(e entry) []byte {
	var small [4]protocol.WireOp // most entries: no allocation
	ops := small[:0]
	for _, op := range e.Ops {
		if op.Type == session.OpEnd {
			continue // the socket is closed with CloseSessionEnded instead
		}
		if op.Type == session.OpClear || h.readable(op.Key) {
			ops = append(ops, protocol.WireOp{Type: op.Type, Key: op.Key, Value: op.Value})
		}
	}
	src := e.Source
	if src != SourceWS {
		src = SourceHTTP
	}
	return protocol.AppendChange(nil, e.Seq, ops, src)
}
