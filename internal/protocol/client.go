package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/sessionhub/sessionhub/session"
)

// Client message types (client to server).
const (
	TypeSet    = "set"
	TypeDelete = "delete"
	TypeEvent  = "event"
	TypeResume = "resume"
)

// MaxEventName is the longest event name accepted.
const MaxEventName = 128

// ClientMessage is one decoded message from a browser.
type ClientMessage struct {
	ID    uint64          `json:"id"`
	Type  string          `json:"type"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	Name  string          `json:"name,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	After *uint64         `json:"after,omitempty"`
}

// DecodeError is why a client frame was refused; every one is answered
// with the code invalid and Message, naming the frame's ID when it could
// be read.
type DecodeError struct {
	ID      uint64
	Message string
}

func (e *DecodeError) Error() string { return "protocol: " + e.Message }

func invalid(id uint64, format string, args ...any) *DecodeError {
	return &DecodeError{ID: id, Message: fmt.Sprintf(format, args...)}
}

// DecodeClientMessage parses and validates one client frame. On failure it
// returns a *DecodeError whose message says what is wrong, and the message
// id when it could be read (so the error can name it).
func DecodeClientMessage(b []byte) (ClientMessage, error) {
	m, ok := fastClientMessage(b)
	if !ok {
		var err error
		if m, err = slowClientMessage(b); err != nil {
			return m, err
		}
	}
	if m.ID == 0 {
		return m, invalid(0, "missing id")
	}
	switch m.Type {
	case TypeSet:
		if err := checkKey(m.ID, m.Key); err != nil {
			return m, err
		}
		if m.Value == nil {
			return m, invalid(m.ID, "set needs a value")
		}
		if space, _ := rawShape(m.Value); space { // else compact already: decoding checked it
			var buf bytes.Buffer
			if err := json.Compact(&buf, m.Value); err != nil {
				return m, invalid(m.ID, "value is not valid JSON")
			}
			m.Value = buf.Bytes()
		}
	case TypeDelete:
		if err := checkKey(m.ID, m.Key); err != nil {
			return m, err
		}
	case TypeEvent:
		if m.Name == "" || len(m.Name) > MaxEventName {
			return m, invalid(m.ID, "event needs a name of 1 to %d bytes", MaxEventName)
		}
		if m.Data == nil {
			m.Data = json.RawMessage("null")
		}
	case TypeResume:
		if m.After == nil {
			return m, invalid(m.ID, "resume needs after")
		}
	case "":
		return m, invalid(m.ID, "missing type")
	default:
		return m, invalid(m.ID, "unknown type %q", Truncate(m.Type, 32))
	}
	return m, nil
}

// slowClientMessage decodes with encoding/json a frame that
// fastClientMessage does not take: its own message escapes to the heap
// (json.Unmarshal takes its address), the fast path's does not.
func slowClientMessage(b []byte) (ClientMessage, error) {
	var m ClientMessage
	if json.Unmarshal(b, &m) == nil {
		return m, nil
	}
	// Tell a malformed message from one with trailing data.
	m = ClientMessage{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		id := salvageID(b)
		return ClientMessage{ID: id}, invalid(id, "malformed JSON message")
	}
	return ClientMessage{ID: m.ID}, invalid(m.ID, "trailing data after the JSON message")
}

func checkKey(id uint64, key string) error {
	if key == "" {
		return invalid(id, "missing key")
	}
	if len(key) > session.MaxKeyLength {
		return invalid(id, "key longer than %d bytes", session.MaxKeyLength)
	}
	return nil
}

// salvageID reads the id of a message that failed to decode as a whole,
// so the error can still be matched to its request.
func salvageID(b []byte) uint64 {
	var m struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	return m.ID
}

// Truncate shortens s to n bytes for an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
