package protocol

import (
	"encoding/json"
	"fmt"

	"github.com/sessionhub/sessionhub/session"
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

// Sources of a change, as the change message reports them.
const (
	SourceWS   = "ws"
	SourceHTTP = "http"
)

// WireOp is an op as change messages and log entries carry it.
type WireOp struct {
	Type  session.OpType  `json:"type"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Welcome is the first message on every socket.
type Welcome struct {
	Type   string                     `json:"type"`
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

// Ack answers a client's set, delete or event once it is staged.
type Ack struct {
	Type string          `json:"type"`
	ID   uint64          `json:"id"`
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Error answers a client's message that failed.
type Error struct {
	Type    string `json:"type"`
	ID      uint64 `json:"id"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Change is one log entry as the browser sees it.
type Change struct {
	Type   string   `json:"type"`
	Seq    uint64   `json:"seq"`
	Ops    []WireOp `json:"ops"`
	Source string   `json:"source"`
}

// Resumed ends the replay of a resume.
type Resumed struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

// Reset replaces the client's state when a resume cannot replay.
type Reset struct {
	Type   string                     `json:"type"`
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

// Push is an event the server sends to a socket.
type Push struct {
	Type string          `json:"type"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// HTTPError is the body of every JSON error an HTTP endpoint answers:
// {"error":{"code":...,"message":...}}.
type HTTPError struct {
	Error HTTPErrorBody `json:"error"`
}

// HTTPErrorBody is the inside of an HTTPError.
type HTTPErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Marshal encodes a server message. Only the message types above, holding
// valid raw JSON, are passed to it.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encoding a server message: %v", err))
	}
	return b
}
