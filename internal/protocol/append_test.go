package protocol

import (
	"encoding/json"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

var appendStrings = []string{
	"", "plain", `quote " and \ backslash`, "<script>&</script>", "tab\tnew\nline\r\b\f\x00\x1f",
	"é ü 日本 🙂", "\u2028\u2029", "bad \xff utf-8 \xc3", "\x7f",
}

func TestAppendMatchesMarshal(t *testing.T) {
	for _, s := range appendStrings {
		if got, want := string(AppendString(nil, s)), string(Marshal(s)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
		e := Error{Type: TypeError, ID: 7, Code: CodeForbidden, Message: s}
		if got, want := string(AppendError(nil, e.ID, e.Code, e.Message)), string(Marshal(e)); got != want {
			t.Errorf("AppendError: %s, want %s", got, want)
		}
	}
	for _, data := range []json.RawMessage{nil, json.RawMessage(`{"a":1}`), json.RawMessage(`{ "a" : "<b> c" }`), json.RawMessage(`"é"`)} {
		a := Ack{Type: TypeAck, ID: 1, Seq: 1 << 60, Data: data}
		if got, want := string(AppendAck(nil, a.ID, a.Seq, a.Data)), string(Marshal(a)); got != want {
			t.Errorf("AppendAck: %s, want %s", got, want)
		}
	}
	for _, ops := range [][]WireOp{nil, {}, {
		{Type: session.OpSet, Key: "colour", Value: json.RawMessage(`"red"`)},
		{Type: session.OpDelete, Key: "k<&>"},
		{Type: session.OpClear},
		{Type: session.OpSet, Key: "n", Value: json.RawMessage(`[1, 2, {"x": null}]`)},
	}} {
		if got, want := string(AppendOps(nil, ops)), string(Marshal(ops)); got != want {
			t.Errorf("AppendOps: %s, want %s", got, want)
		}
		c := Change{Type: TypeChange, Seq: 42, Ops: ops, Source: SourceWS}
		if got, want := string(AppendChange(nil, c.Seq, c.Ops, c.Source)), string(Marshal(c)); got != want {
			t.Errorf("AppendChange: %s, want %s", got, want)
		}
	}
}

// FuzzAppendString: the appender writes what encoding/json writes, for
// any string, and for any JSON value embedded as raw.
func FuzzAppendString(f *testing.F) {
	for _, s := range appendStrings {
		f.Add(s)
	}
	f.Add(`{"a": [1, "<x>"]}`)
	f.Add(`"São Paulo, a note with spaces"`)
	f.Add(`["a\u2028b", "\" \\ ", " "]`)
	f.Add("\"a\u2028b\"")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendString(nil, s)), string(Marshal(s)); got != want {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
		if json.Valid([]byte(s)) {
			raw := json.RawMessage(s)
			c := Change{Type: TypeChange, Seq: 1, Ops: []WireOp{{Type: session.OpSet, Key: s, Value: raw}}, Source: SourceHTTP}
			if got, want := string(AppendChange(nil, c.Seq, c.Ops, c.Source)), string(Marshal(c)); got != want {
				t.Fatalf("AppendChange(%q) = %s, want %s", s, got, want)
			}
		}
	})
}

var benchOps = []WireOp{{Type: session.OpSet, Key: "language", Value: json.RawMessage(`"x-s12-w0-n12345"`)}}

func BenchmarkChange(b *testing.B) { benchChange(b, benchOps) }

// BenchmarkChangeSpacedValue: a value with spaces and non-ASCII inside
// its string is copied as it is, not run through encoding/json.
func BenchmarkChangeSpacedValue(b *testing.B) {
	benchChange(b, []WireOp{{Type: session.OpSet, Key: "note", Value: json.RawMessage(`"São Paulo, a note with spaces"`)}})
}

// benchChange encodes a change of ops with AppendChange, then with
// encoding/json, the baseline.
func benchChange(b *testing.B, ops []WireOp) {
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AppendChange(nil, 123456, ops, SourceWS)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Marshal(Change{Type: TypeChange, Seq: 123456, Ops: ops, Source: SourceWS})
		}
	})
}

func BenchmarkAck(b *testing.B) {
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AppendAck(nil, 42, 123456, nil)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Marshal(Ack{Type: TypeAck, ID: 42, Seq: 123456})
		}
	})
}

func BenchmarkDecodeClientMessage(b *testing.B) {
	frame := []byte(`{"id":12345,"type":"set","key":"language","value":"x-s12-w0-n12345"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeClientMessage(frame); err != nil {
			b.Fatal(err)
		}
	}
}
