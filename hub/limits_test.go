package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// The tests of this file hold each limit of docs/PROTOCOL.md's table on
// its own: the others are set out of reach.

// dialNotReading opens a socket of c's session that does not read (until
// the test says so).
func dialNotReading(t *testing.T, c *client, in *instance) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.srv.URL, "http")+"/hub/ws", &websocket.DialOptions{HTTPClient: c.http(in)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// writtenSession makes a session with one entry in its log and returns
// its client and ID: its sockets have a view from their handshake.
func writtenSession(t *testing.T, in *instance) (*client, string) {
	t.Helper()
	c := newClient(t)
	if st, _ := c.do(in, "POST", "/app/set?colour=red", nil); st != http.StatusNoContent {
		t.Fatalf("set: %d", st)
	}
	return c, sessionID(t, in.store, c.cookie(in))
}

// changeSeq returns the seq of a change message, 0 for any other.
func changeSeq(b []byte) uint64 {
	var m struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	if json.Unmarshal(b, &m) != nil || m.Type != "change" {
		return 0
	}
	return m.Seq
}

// TestSendBufferMessageCap: a client that stops reading is closed with
// 4200 once more than SendBuffer messages wait for it, on their count
// alone: every byte sent to it together stays below SendBufferBytes, and
// no frame write times out within the test.
func TestSendBufferMessageCap(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	in := newInstance(t, ns, func(o *hub.Options) {
		o.Metrics = m
		o.SendBuffer = 8
		o.SocketKernelBuffer = 4 << 10
		o.WriteWait = time.Minute
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
		o.SnapshotEvery = -1
	})
	c, id := writtenSession(t, in)
	reader := c.dial(in)
	reader.expect("welcome")
	stalled := dialNotReading(t, c, in)
	other := newClient(t).dial(in)
	other.expect("welcome")

	// 768 KiB in 16 KiB values: far more than the kernel buffers of the
	// stalled connection hold (SocketKernelBuffer, and a receive buffer
	// that does not grow while its client does not read), less than
	// SendBufferBytes.
	ctx := context.Background()
	value := []byte(`"` + strings.Repeat("x", 16<<10) + `"`)
	const writes = 48
	if writes*(len(value)+100) >= hub.DefaultSendBufferBytes {
		t.Fatal("the writes would near the byte cap")
	}
	// Each write once the reader has the last one's change: the reader,
	// whose socket has as small a kernel buffer, never has more than one
	// waiting, the stalled one has them all.
	for range writes {
		seq, err := in.hub.Write(ctx, id, session.Op{Type: session.OpSet, Key: "note", Value: value})
		if err != nil {
			t.Fatal(err)
		}
		for uint64(num(reader.expect("change")["seq"])) < seq {
		}
	}
	last, err := in.hub.Write(ctx, id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(`"last"`)})
	if err != nil {
		t.Fatal(err)
	}
	// The view delivers each entry to every socket before the next: once
	// the reader has the last, the stalled socket was offered every one.
	for uint64(num(reader.expect("change")["seq"])) < last {
	}

	// The stalled client reads now: what was written to it before the
	// close, then the close frame.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	changes := 0
	for {
		_, b, err := stalled.Read(rctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != hub.CloseTooSlow || ce.Reason != "too slow: send buffer full" {
				t.Fatalf("after %d changes: %v, want close %d for the send buffer", changes, err, hub.CloseTooSlow)
			}
			break
		}
		if seq := changeSeq(b); seq > 0 {
			changes++
			if seq == last {
				t.Fatalf("the stalled client got all %d changes and was not closed", changes)
			}
		}
	}
	t.Logf("closed with %d after %d of %d changes", hub.CloseTooSlow, changes, writes+1)
	waitFor(t, "the close counted", func() bool { return m.closedWith(int(hub.CloseTooSlow)) == 1 })
	reader.set("colour", "green")
	other.set("colour", "blue")
}

// TestFrameWriteTimeout: a client that stops reading is closed with 4200
// once one frame write takes longer than WriteWait, with send buffers
// that the test's backlog cannot fill.
func TestFrameWriteTimeout(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	// 1 MiB in 16 KiB values at most: far more than the kernel buffers of
	// the stalled connection hold.
	const maxWrites = 64
	in := newInstance(t, ns, func(o *hub.Options) {
		o.Metrics = m
		o.SendBuffer = 2 * maxWrites
		o.SendBufferBytes = 1 << 30
		o.SocketKernelBuffer = 4 << 10
		o.WriteWait = 200 * time.Millisecond
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
		o.SnapshotEvery = -1
	})
	c, id := writtenSession(t, in)
	reader := c.dial(in)
	reader.expect("welcome")
	dialNotReading(t, c, in)
	other := newClient(t).dial(in)
	other.expect("welcome")

	ctx := context.Background()
	value := []byte(`"` + strings.Repeat("x", 16<<10) + `"`)
	start := time.Now()
	writes := 0
	for ; writes < maxWrites && m.closedWith(int(hub.CloseTooSlow)) == 0; writes++ {
		if _, err := in.hub.Write(ctx, id, session.Op{Type: session.OpSet, Key: "note", Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a client not reading closed with 4200", func() bool { return m.closedWith(int(hub.CloseTooSlow)) == 1 })
	t.Logf("closed with %d after %d writes of 16 KiB, %v", hub.CloseTooSlow, writes, time.Since(start))
	last, err := in.hub.Write(ctx, id, session.Op{Type: session.OpDelete, Key: "note"})
	if err != nil {
		t.Fatal(err)
	}
	for uint64(num(reader.expect("change")["seq"])) < last {
	}
	other.set("colour", "green")
}

// TestCloseHandshakeBounded: the close handshake is bounded by WriteWait
// too: a socket closed (here by a logout) whose client does not answer
// the close frame ends within WriteWait, not coder/websocket's own 5 s
// wait for the answer.
func TestCloseHandshakeBounded(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	const writeWait = 100 * time.Millisecond
	in := newInstance(t, ns, func(o *hub.Options) { o.Metrics = m; o.WriteWait = writeWait })
	c, id := writtenSession(t, in)
	dialNotReading(t, c, in) // never reads, so never answers the close frame
	waitFor(t, "the socket open", func() bool { return m.socketsOpen.Load() == 1 })
	start := time.Now()
	if err := in.hub.End(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket closed", func() bool { return m.closedWith(int(hub.CloseSessionEnded)) == 1 })
	// Far above WriteWait, below coder/websocket's 5 s.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the close handshake took %v, WriteWait %v", d, writeWait)
	}
}

// TestSnapshotsOutsideTheWriteBudget: compaction snapshots are not
// counted in the session's write budget: a socket appends its whole burst
// while the log is compacted every few entries.
func TestSnapshotsOutsideTheWriteBudget(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const burst = 30
	in := newInstance(t, ns, func(o *hub.Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 1e-6, burst
		// A log of at most 4 entries: every append that finds it full
		// compacts it first, so the burst cannot go without snapshots.
		o.MaxOpsPerSession, o.SnapshotEvery = 4, 3
		o.RateLimit, o.RateBurst = 1000, 1000
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	accepted := 0
	for i := 0; ; i++ {
		if i > 2*burst {
			t.Fatalf("%d writes accepted, budget %d", accepted, burst)
		}
		r := s.reply(s.send(map[string]any{"type": "set", "key": "note", "value": i}))
		if r["type"] == "ack" {
			accepted++
			continue
		}
		if r["code"] != "rate_limited" {
			t.Fatalf("write %d: %v", i, r)
		}
		break
	}
	js, _ := jetstream.New(in.nc)
	st, err := js.Stream(context.Background(), "SESSIONHUB")
	if err != nil {
		t.Fatal(err)
	}
	snapshots := int(st.CachedInfo().State.LastSeq) - accepted // the stream holds this session only
	t.Logf("%d writes accepted with a burst of %d, %d snapshots meanwhile", accepted, burst, snapshots)
	if snapshots < 5 {
		t.Fatalf("%d snapshots: the test did not compact the log", snapshots)
	}
	// The view may take the last entries in after the next write's check.
	if accepted < burst || accepted > burst+3 {
		t.Fatalf("%d writes accepted with a burst of %d and %d snapshots", accepted, burst, snapshots)
	}
}

// TestHTTPWritePastTheBudgetStaysInTheCookie: an HTTP handler's write
// that the session's write budget refuses is kept in that response's
// cookie only: it is not in the log, no other tab sees it, and an older
// copy of the cookie does not get it.
func TestHTTPWritePastTheBudgetStaysInTheCookie(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	tweak := func(o *hub.Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 1e-6, 3
		o.SnapshotEvery = -1
	}
	a, b := newInstance(t, ns, tweak), newInstance(t, ns, tweak)
	c, id := writtenSession(t, a)
	tab := c.dial(a)
	tab.expect("welcome")
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("the budget never ran out")
		}
		r := tab.reply(tab.send(map[string]any{"type": "set", "key": "note", "value": i}))
		if r["code"] == "rate_limited" {
			break
		}
		if r["type"] != "ack" {
			t.Fatalf("write %d: %v", i, r)
		}
	}
	before := c.cookie(a)
	entries := subjectMsgs(t, a, id)

	if st, _ := c.do(a, "POST", "/app/set?colour=blue", nil); st != http.StatusNoContent {
		t.Fatalf("set past the budget: %d", st)
	}
	if st, body := c.do(a, "GET", "/app/get", nil); st != http.StatusOK || values(body)["colour"] != "blue" {
		t.Fatalf("the response's cookie lost the write: %d %v", st, body)
	}
	if n := subjectMsgs(t, a, id); n != entries {
		t.Fatalf("the refused write reached the log: %d entries, %d before", n, entries)
	}
	// Server code on an instance without a view of the session is not
	// metered: its write reaches the tab, with nothing before it.
	marker, err := b.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(`"marker"`)})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m := tab.expect("change")
		if strings.Contains(jsonOf(m["ops"]), "blue") {
			t.Fatalf("the other tab saw the refused write: %v", m)
		}
		if uint64(num(m["seq"])) >= marker {
			break
		}
	}
	old := newClient(t)
	old.setCookie(a, before)
	if st, body := old.do(a, "POST", "/hub/flush", http.Header{"Origin": {a.srv.URL}}); st != http.StatusOK ||
		values(body)["colour"] != "red" || values(body)["note"] != "marker" {
		t.Fatalf("flush of the cookie before the refused write: %d %v", st, body)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
