package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/protocol"
)

// startTestRelay starts the bare relay (this test binary, serve-relay)
// on an embedded nats-server listening on 127.0.0.1.
func startTestRelay(t *testing.T) *relayTarget {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := startRelay(self, ns.ClientURL(), os.Getpid(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rel.close)
	return rel
}

// Every shape of a -peer run, briefly, on the bare relay: every write
// answered, at both sockets of its pair, in order.
func TestShapesOnRelay(t *testing.T) {
	rel := startTestRelay(t)
	pc := defaultPeerConfig()
	pc.Pairs, pc.RateWriters, pc.Rate, pc.Duration = 4, 4, 200, 300*time.Millisecond
	next := 0
	var cpu float64 // the relay's, over the shapes: /proc counts it in 10 ms ticks
	for _, spec := range peerShapes(&pc) {
		r, _, err := runShape(context.Background(), rel, spec, next, newProgress(nil))
		if err != nil {
			t.Fatal(err)
		}
		next += spec.pairs
		checkShape(t, spec.name, r)
		if r.WriterDeliveries == 0 || r.WriterDeliveries > r.Acked { // each write's change, with its ack
			t.Errorf("%s: %d of the writers' own changes read for %d acknowledged", spec.name, r.WriterDeliveries, r.Acked)
		}
		p := procOf(r.CPU, "relay")
		if p.PID != rel.p.pid() || p.Ops != r.Acked {
			t.Errorf("%s: the relay's process not measured: %+v", spec.name, r.CPU)
		}
		cpu += p.CPUSeconds
	}
	if cpu <= 0 {
		t.Error("the relay's CPU was not measured in any shape")
	}
}

// The relay's answers: a set's change reaches the session's other socket
// alone and its writer with its ack, in one frame, at JetStream's
// sequence; what is not a set is refused.
func TestRelayAnswers(t *testing.T) {
	rel := startTestRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}}
	w, _, err := websocket.Dial(ctx, rel.url+"?s=a", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.CloseNow()
	r, _, err := websocket.Dial(ctx, rel.url+"?s=a", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.CloseNow()
	time.Sleep(100 * time.Millisecond) // both joined before the write
	read := func(ws *websocket.Conn) []serverMsg {
		t.Helper()
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []serverMsg
		for _, line := range strings.Split(string(b), "\n") {
			var m serverMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%q: %v", b, err)
			}
			out = append(out, m)
		}
		return out
	}
	for i, v := range []string{"en", "fr"} {
		if err := w.Write(ctx, websocket.MessageText, []byte(`{"id":7,"type":"set","key":"language","value":"`+v+`"}`)); err != nil {
			t.Fatal(err)
		}
		seq := uint64(i + 1)
		got := read(w)
		if len(got) != 2 || got[0].Type != "change" || got[0].Seq != seq || string(got[0].Ops[0].Value) != `"`+v+`"` ||
			got[1].Type != "ack" || got[1].ID != 7 || got[1].Seq != seq {
			t.Fatalf("writer's frame %d: %+v", i, got)
		}
		if got := read(r); len(got) != 1 || got[0].Type != "change" || got[0].Seq != seq {
			t.Fatalf("reader's frame %d: %+v", i, got)
		}
	}
	if err := w.Write(ctx, websocket.MessageText, []byte(`{"id":8,"type":"delete","key":"language"}`)); err != nil {
		t.Fatal(err)
	}
	if got := read(w); len(got) != 1 || got[0].Type != "error" || got[0].ID != 8 || got[0].Code != string(protocol.CodeInvalid) {
		t.Fatalf("a delete: %+v", got)
	}
	if _, _, err := websocket.Dial(ctx, rel.url, opts); err == nil {
		t.Fatal("a socket without ?s was accepted")
	}
}

func TestRelayAckSeq(t *testing.T) {
	for _, c := range []struct {
		in  string
		seq uint64
	}{
		{`{"stream":"LOADTEST_RELAY","seq":42}`, 42},
		{`{"stream":"LOADTEST_RELAY","seq":42,"duplicate":true}`, 42},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages per subject exceeded"},"stream":"LOADTEST_RELAY","seq":0}`, 0},
		{`{"stream":"LOADTEST_RELAY","seq":0}`, 0},
		{`{"stream":"LOADTEST_RELAY"}`, 0},
		{``, 0},
	} {
		seq, err := relayAckSeq([]byte(c.in))
		if seq != c.seq || (err == nil) != (c.seq > 0) {
			t.Errorf("%s: %d, %v; want %d", c.in, seq, err, c.seq)
		}
	}
}

// FuzzRelayAckSeq: any answer gives a sequence or an error, never both,
// never a panic.
func FuzzRelayAckSeq(f *testing.F) {
	f.Add([]byte(`{"stream":"S","seq":1}`))
	f.Add([]byte(`{"error":{"code":400},"seq":3}`))
	f.Add([]byte(`"seq":99999999999999999999999`))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := relayAckSeq(b)
		if (err == nil) != (seq > 0) {
			t.Fatalf("%q: %d, %v", b, seq, err)
		}
	})
}

// With no nats-server URL the relay runs its own in its process, its
// store in the run's directory, and its process alone is measured, told
// apart from its nats-server by its profile.
func TestRelayEmbedsNATS(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := startRelay(self, "", 0, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rel.close)
	spec := shapeSpec{name: "window 1", pairs: 2, window: 1, duration: time.Second}
	r, _, err := runShape(context.Background(), rel, spec, 0, newProgress(nil))
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, spec.name, r)
	if p := procOf(r.CPU, "relay"); p.PID != rel.p.pid() || p.Ops != r.Acked || procOf(r.CPU, "nats-server").PID != 0 {
		t.Errorf("measured %+v, want the relay's process and no nats-server", r.CPU)
	}
	checkSplit(t, r)
	if _, err := os.Stat(filepath.Join(dir, "relay-nats", "jetstream")); err != nil {
		t.Errorf("the relay's own store: %v", err)
	}
}
