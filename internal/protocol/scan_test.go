package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

var scanSeeds = []string{
	`{"id":1,"type":"set","key":"colour","value":"blue"}`,
	`{"id":2,"type":"delete","key":"colour"}`,
	`{"id":3,"type":"event","name":"greet","data":{"a":[1,2,{"b":null}],"c":"\u00e9\n"}}`,
	`{"id":4,"type":"resume","after":41}`,
	`{"id":5,"type":"set","key":"k","value":null}`,
	` { "id" : 6 , "type" : "set" , "key" : "k" , "value" : [ 1 , -2.5e+3 , true , false , { } , [ ] ] } `,
	`{"ID":7,"type":"set"}`, `{"id":8,"Type":"set","type":"delete"}`, `{"id":9,"id":10}`,
	`{"id":11,"extra":{"x":[1,2]},"type":"resume","after":0}`, `{"id":12,"type":"set","key":"k\u0041","value":1}`,
	`{"id":01}`, `{"id":18446744073709551615}`, `{"id":18446744073709551616}`, `{"id":1e3}`,
	`{"id":1,"type":"set","key":"é","value":1}`, "{\"id\":1,\"key\":\"\xff\"}", `{"id":1,"after":null}`,
	`{"id":1,"type":`, `[]`, `null`, `{"id":-1}`, `{"id":1.5,"type":"set"}`, `{}`, ` {} `, `{"id":1}x`,
	`[{"type":"set","key":"a","value":1},{"type":"delete","key":"b"},{"type":"clear"},{"type":"end"}]`,
	`[{"type":"set","key":"a","value":{"x":"<&>","y":[null,1.5e-3]}}]`, `[]`, `[{"type":"set","value":1}]`,
	`[{"key":"a","type":"set","value":1}]`, `[{"type":"set","key":"a","value":01}]`, `[{"type":"set"} ]`,
	`[{"type":"set","key":"a","value":"\ud800"}]`, `[{"type":"set","key":"a","value":"a\tb"}]`,
	`[{"type":"set","key":"a","value":tru}]`, `[{"type":"set","key":"a","value":[1,]}]`, `[{"type":"set","key":"a","value":{"a"}}]`,
	`"x"`, `1`, `-`, `-0`, `0.`, `1e`, `[1,2`, `{"a":1,}`, `{"a" 1}`, `[[[[[]]]]]`, `{"a":{"b":{}}}`,
}

// scanValue accepts exactly the values json.Valid accepts, and ends
// where the value ends.
func FuzzScanValue(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := scanValue(b, 0, 0)
		whole := end == len(b)
		if want := json.Valid(b) && len(b) > 0 && !isSpace(b[0]) && !isSpace(b[len(b)-1]); whole != want {
			t.Fatalf("scanValue(%q) = %d of %d, json.Valid says %v", short(b), end, len(b), json.Valid(b))
		}
		if end >= 0 && !json.Valid(b[:end]) {
			t.Fatalf("scanValue(%q) ends at %d: %q is not valid", short(b), end, short(b[:end]))
		}
	})
}

// deepSeeds nest a value right at encoding/json's depth limit inside a
// log entry and a client frame: the enclosing [{ and { count.
var deepSeeds = []string{
	`[{"type":"set","key":"a","value":` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `}]`,
	`[{"type":"set","key":"a","value":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}]`,
	`{"id":1,"type":"event","name":"x","data":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`,
	`{"id":1,"type":"event","name":"x","data":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
	`{"id":1,"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
}

// DecodeOps returns what json.Unmarshal returns.
func FuzzDecodeOps(f *testing.F) {
	for _, s := range append(scanSeeds, deepSeeds...) {
		f.Add([]byte(s))
	}
	f.Add(AppendOps(nil, []WireOp{{Type: session.OpSet, Key: "a<b", Value: json.RawMessage(`"x&y"`)}, {Type: session.OpClear}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeOps(b)
		var want []WireOp
		wantErr := json.Unmarshal(b, &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("DecodeOps(%q): error %v, json.Unmarshal: %v", short(b), err, wantErr)
		}
		if err == nil && !sameOps(got, want) {
			t.Fatalf("DecodeOps(%q) = %q, json.Unmarshal: %q", short(b), got, want)
		}
	})
}

// short trims an input for a failure message.
func short(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func sameOps(a, b []WireOp) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Key != b[i].Key || string(a[i].Value) != string(b[i].Value) || (a[i].Value == nil) != (b[i].Value == nil) {
			return false
		}
	}
	return true
}

// The fast path of client frames decodes what json.Unmarshal decodes,
// whenever it takes a frame.
func FuzzFastClientMessage(f *testing.F) {
	for _, s := range append(scanSeeds, deepSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastClientMessage(b)
		if !ok {
			return
		}
		var want ClientMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path took %q, which json.Unmarshal refuses: %v", short(b), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast path: %q -> %+v, json.Unmarshal: %+v", short(b), got, want)
		}
	})
}

// The frames the browser client and the load generator send, and the
// entries the hub writes, take the fast paths.
func TestFastPathsTakeWhatSessionhubWrites(t *testing.T) {
	for _, s := range []string{
		`{"id":1,"type":"set","key":"colour","value":"blue"}`,
		`{"type":"set","key":"note","value":{"a":[1,2]},"id":2}`,
		`{"id":3,"type":"delete","key":"colour"}`,
		`{"id":4,"type":"event","name":"greet","data":{"who":"world"}}`,
		`{"id":5,"type":"resume","after":41}`,
	} {
		if _, ok := fastClientMessage([]byte(s)); !ok {
			t.Errorf("client frame %s fell back to encoding/json", s)
		}
	}
	ops := []WireOp{{Type: session.OpSet, Key: "a", Value: json.RawMessage(`{"b":[1,"c"]}`)}, {Type: session.OpDelete, Key: "d"}, {Type: session.OpClear}}
	if got, ok := fastOps(AppendOps(nil, ops)); !ok || !sameOps(got, ops) {
		t.Errorf("log entry %s: fast path %v, %q", AppendOps(nil, ops), ok, got)
	}
}

func BenchmarkDecodeOps(b *testing.B) {
	data := AppendOps(nil, []WireOp{{Type: session.OpSet, Key: "note", Value: json.RawMessage(`"a note of some length, as the loadtest writes"`)}})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeOps(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ops []WireOp
			if err := json.Unmarshal(data, &ops); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeClientSet(b *testing.B) {
	frame := []byte(fmt.Sprintf(`{"id":%d,"type":"set","key":"note","value":"a note of some length, as the loadtest writes"}`, 123456))
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeClientMessage(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m ClientMessage
			if err := json.Unmarshal(frame, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeClientSetAllocatesTheKeyOnly holds the socket's read path to
// one allocation per set, its key: the message itself stays on the
// caller's stack (encoding/json's fallback has a message of its own), a
// type is one of the constants, and the value is a slice of the frame.
func TestDecodeClientSetAllocatesTheKeyOnly(t *testing.T) {
	frame := []byte(`{"id":12345,"type":"set","key":"language","value":"x-s12-w0-n12345"}`)
	var m ClientMessage
	n := testing.AllocsPerRun(100, func() {
		var err error
		if m, err = DecodeClientMessage(frame); err != nil {
			t.Fatal(err)
		}
	})
	if n != 1 {
		t.Errorf("DecodeClientMessage allocated %v times per set, want 1", n)
	}
	if m.Type != TypeSet || m.Key != "language" || string(m.Value) != `"x-s12-w0-n12345"` {
		t.Errorf("decoded %+v", m)
	}
}
