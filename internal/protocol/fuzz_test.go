package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeClientMessage: the decoder never panics; it either accepts a
// message that satisfies the protocol's invariants or refuses it with the
// code invalid (a *DecodeError).
func FuzzDecodeClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"id":1,"type":"set","key":"colour","value":"blue"}`,
		`{"id":2,"type":"delete","key":"colour"}`,
		`{"id":3,"type":"event","name":"greet","data":{"a":[1,2,{"b":null}]}}`,
		`{"id":4,"type":"resume","after":41}`,
		`{"id":5,"type":"set","key":"k","value":null}`,
		`{"id":1,"type":`, `[]`, `null`, `{"id":-1}`, `{"id":1.5,"type":"set"}`,
		`{"id":1,"type":"set","key":"","value":1}`, `{"id":1,"type":"set","key":"k","value":1} {}`,
		"{\"id\":1,\"type\":\"set\",\"key\":\"k\",\"value\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeClientMessage(b)
		if err != nil {
			var e *DecodeError
			if !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("error %v is not a *DecodeError with a message", err)
			}
			return
		}
		if m.ID == 0 {
			t.Fatal("accepted a message without id")
		}
		switch m.Type {
		case TypeSet:
			if m.Key == "" || !json.Valid(m.Value) {
				t.Fatalf("accepted set %+v", m)
			}
		case TypeDelete:
			if m.Key == "" {
				t.Fatalf("accepted delete %+v", m)
			}
		case TypeEvent:
			if m.Name == "" || len(m.Name) > MaxEventName || !json.Valid(m.Data) {
				t.Fatalf("accepted event %+v", m)
			}
		case TypeResume:
			if m.After == nil {
				t.Fatalf("accepted resume %+v", m)
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		// What was accepted survives a round trip unchanged.
		again, err := DecodeClientMessage(Marshal(m))
		if err != nil || again.ID != m.ID || again.Type != m.Type || again.Key != m.Key || string(again.Value) != string(m.Value) {
			t.Fatalf("round trip: %+v -> %+v (%v)", m, again, err)
		}
	})
}
