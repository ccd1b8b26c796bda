package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/session"
)

// A socket's write is encoded into its log entry, and an entry into its
// change message, in one allocation each: the buffer, sized up front, at
// any sequence and whether the client may read the entry's keys or not.
func TestEntryEncodingAllocatesOnce(t *testing.T) {
	h := internalHubWith(t, func(o *Options) {
		o.ClientKeys = map[string]KeyPolicy{"colour": {Read: true}}
	})
	value := json.RawMessage(`"a fairly long value, longer than the first guesses of append"`)
	ops := []session.Op{{Type: session.OpSet, Key: "colour", Value: value}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := encodeEntry(ops); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("encodeEntry allocates %v times", n)
	}
	hidden := []session.Op{{Type: session.OpSet, Key: "user_id", Value: value}}
	for _, e := range []entry{
		{Seq: 42, Ops: ops, Source: SourceWS},
		{Seq: math.MaxUint64, Ops: ops, Source: SourceWS},
		{Seq: math.MaxUint64, Ops: hidden, Source: SourceHTTP}, // "ops":[]
	} {
		var msg []byte
		if n := testing.AllocsPerRun(100, func() { msg = h.changeMessage(e) }); n != 1 {
			t.Errorf("changeMessage allocates %v times for %s", n, msg)
		}
	}
}

// A socket's entry is stored without the Sessionhub-Source header, which
// nats.go would encode on every publish and JetStream would keep with
// every entry, and still reads as a socket's: in the change every socket
// is sent, and in the session's write budget (a batch counts its
// writes). An HTTP write keeps its header; entries of earlier versions,
// which carry it on a socket's entry too, read as they were written.
func TestSocketEntriesCarryNoSourceHeader(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) {
		o.SnapshotEvery = -1
		o.ClientKeys = map[string]KeyPolicy{"k": {Read: true, Write: true, Validate: func(json.RawMessage) error { return nil }}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := dialBatched(ctx, t, h)
	// next reads the socket's messages until one of type typ, and returns
	// it, keeping the sources of the changes read on the way by sequence
	// (a frame may hold several messages: those after it wait in lines).
	sources := map[uint64]string{}
	var lines [][]byte
	next := func(typ string) map[string]any {
		t.Helper()
		for {
			for len(lines) > 0 {
				line := lines[0]
				lines = lines[1:]
				var m map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				if m["type"] == "change" {
					sources[uint64(m["seq"].(float64))] = m["source"].(string)
				}
				if m["type"] == typ {
					return m
				}
			}
			_, frame, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			lines = bytes.Split(frame, []byte("\n"))
		}
	}
	next("welcome")
	var seqs []uint64         // of the socket's entries
	for i := 1; i <= 3; i++ { // the first is staged on its own, the others pipelined
		if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":%d,"type":"set","key":"k","value":%d}`, i, i)); err != nil {
			t.Fatal(err)
		}
		ack := next("ack")
		if ack["id"] != float64(i) {
			t.Fatalf("write %d: %v", i, ack)
		}
		seqs = append(seqs, uint64(ack["seq"].(float64)))
	}
	var id string
	h.mu.Lock()
	for vid := range h.views { // the socket's session's, the only one
		id = vid
	}
	h.mu.Unlock()
	httpSeq, err := h.Write(ctx, id, session.Op{Type: session.OpSet, Key: "k", Value: []byte(`4`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range append(seqs, httpSeq) { // a change may follow its ack
		for sources[seq] == "" {
			next("change")
		}
	}

	stream, err := h.log.js.Stream(ctx, h.log.stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if src, ok := m.Header[hdrSource]; ok {
			t.Errorf("the socket's entry %d is stored with %s: %q", seq, hdrSource, src)
		}
		if sources[seq] != SourceWS {
			t.Errorf("the socket's entry %d came as a change from %q, want %q", seq, sources[seq], SourceWS)
		}
	}
	m, err := stream.GetMsg(ctx, httpSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(hdrSource); got != SourceHTTP {
		t.Errorf("the HTTP write's entry is stored with %s %q, want %q", hdrSource, got, SourceHTTP)
	}
	if sources[httpSeq] != SourceHTTP {
		t.Errorf("the HTTP write came as a change from %q, want %q", sources[httpSeq], SourceHTTP)
	}

	// Entries as read back from the log (a view's load, a repair, a
	// resume), those of earlier versions included.
	set := []session.Op{{Type: session.OpSet, Key: "a", Value: []byte(`1`)}, {Type: session.OpSet, Key: "b", Value: []byte(`2`)}}
	data, err := encodeEntry(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		header nats.Header
		source string
		writes int
	}{
		{"a socket's entry", nil, SourceWS, 2},
		{"a socket's entry of an earlier version", nats.Header{hdrSource: {SourceWS}}, SourceWS, 2},
		{"an HTTP write", nats.Header{hdrSource: {SourceHTTP}}, SourceHTTP, 1},
		{"a snapshot", nats.Header{hdrSnapshot: {"5"}}, "", 1},
	} {
		e, err := entryOf(&nats.Msg{Header: c.header, Data: data}, 9)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if e.Source != c.source || entryWrites(e) != c.writes {
			t.Errorf("%s: source %q counting %d writes, want %q counting %d", c.name, e.Source, entryWrites(e), c.source, c.writes)
		}
	}
}
