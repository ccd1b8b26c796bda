package hub

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

// Server message types (server to client).
const (
	TypeWelcome = "welcome"
	TypeAck     = "ack"
	TypeError   = "error"
	TypeChange  = "change"
	TypeResumed = "resumed"
	TypeReset   = "reset"
	TypePush    = "push"
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

// DecodeClientMessage parses and validates one client frame. On failure it
// returns an *Error of code invalid whose message says what is wrong, and
// the message id when it could be read (so the error can name it).
func DecodeClientMessage(b []byte) (ClientMessage, error) {
	var m ClientMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return ClientMessage{ID: salvageID(b)}, Errorf(CodeInvalid, "malformed JSON message")
	}
	if dec.More() {
		return ClientMessage{ID: m.ID}, Errorf(CodeInvalid, "trailing data after the JSON message")
	}
	if m.ID == 0 {
		return m, Errorf(CodeInvalid, "missing id")
	}
	switch m.Type {
	case TypeSet:
		if err := checkKey(m.Key); err != nil {
			return m, err
		}
		if m.Value == nil {
			return m, Errorf(CodeInvalid, "set needs a value")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, m.Value); err != nil {
			return m, Errorf(CodeInvalid, "value is not valid JSON")
		}
		m.Value = buf.Bytes()
	case TypeDelete:
		if err := checkKey(m.Key); err != nil {
			return m, err
		}
	case TypeEvent:
		if m.Name == "" || len(m.Name) > MaxEventName {
			return m, Errorf(CodeInvalid, "event needs a name of 1 to %d bytes", MaxEventName)
		}
		if m.Data == nil {
			m.Data = json.RawMessage("null")
		}
	case TypeResume:
		if m.After == nil {
			return m, Errorf(CodeInvalid, "resume needs after")
		}
	case "":
		return m, Errorf(CodeInvalid, "missing type")
	default:
		return m, Errorf(CodeInvalid, "unknown type %q", truncate(m.Type, 32))
	}
	return m, nil
}

func checkKey(key string) error {
	if key == "" {
		return Errorf(CodeInvalid, "missing key")
	}
	if len(key) > session.MaxKeyLength {
		return Errorf(CodeInvalid, "key longer than %d bytes", session.MaxKeyLength)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WireOp is an op as the change message carries it.
type WireOp struct {
	Type  session.OpType  `json:"type"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

type welcomeMsg struct {
	Type    string                     `json:"type"`
	Seq     uint64                     `json:"seq"`
	Values  map[string]json.RawMessage `json:"values"`
	Session string                     `json:"session,omitempty"`
}

type ackMsg struct {
	Type string          `json:"type"`
	ID   uint64          `json:"id"`
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data,omitempty"`
}

type errorMsg struct {
	Type    string `json:"type"`
	ID      uint64 `json:"id"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

type changeMsg struct {
	Type   string   `json:"type"`
	Seq    uint64   `json:"seq"`
	Ops    []WireOp `json:"ops"`
	Source string   `json:"source"`
}

type seqMsg struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

type resetMsg struct {
	Type   string                     `json:"type"`
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

type pushMsg struct {
	Type string          `json:"type"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own message structs with valid raw JSON reach here.
		panic(fmt.Sprintf("hub: encoding a server message: %v", err))
	}
	return b
}
