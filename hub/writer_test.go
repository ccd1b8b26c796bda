package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// connServer serves one WebSocket, offering protocol.Subprotocol and with
// a 64 KiB kernel send buffer, as a conn (write wait wait, send buffer
// maxBytes) that serve gets on the handler's goroutine. It returns the
// client's end, dialled asking for subprotocols (read limit 8 MiB), and
// a channel closed once serve returned.
func connServer(t *testing.T, subprotocols []string, wait time.Duration, maxBytes int, serve func(c *conn)) (*websocket.Conn, <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	closed := make(chan struct{}) // the hub's, for its runner's goroutines
	h := &Hub{opts: Options{WriteWait: wait}, run: newRunner(closed)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		sw := &sndbufWriter{ResponseWriter: w, size: 64 << 10}
		ws, err := websocket.Accept(sw, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
		if err != nil {
			t.Error(err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		serve(&conn{h: h, ws: ws, raw: sw.conn, ctx: ctx, cancel: cancel, out: newOutbox(64, maxBytes),
			batch: ws.Subprotocol() == protocol.Subprotocol, finished: make(chan struct{})})
	}))
	t.Cleanup(func() { srv.Close(); close(closed) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(8 << 20)
	return ws, done
}

// frames writes msgs through a conn's writer to a client that asked for
// subprotocols, and returns the frames the client read.
func frames(t *testing.T, subprotocols []string, msgs [][]byte) (negotiated string, got []string) {
	t.Helper()
	ws, done := connServer(t, subprotocols, 5*time.Second, 1<<20, func(c *conn) {
		if n, err := c.writeMsgs(msgs, true); n != len(msgs) || err != nil {
			t.Errorf("writeMsgs: %d of %d, %v", n, len(msgs), err)
		}
		c.closing.Store(true)
		if n, err := c.writeMsgs(msgs, true); n != 0 || err != nil {
			t.Errorf("writeMsgs while closing: %d, %v; want 0 written", n, err)
		}
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			break
		}
		got = append(got, string(b))
	}
	<-done
	return ws.Subprotocol(), got
}

func TestWriterFrames(t *testing.T) {
	big := []byte(`{"type":"push","name":"big","data":"` + strings.Repeat("x", maxBatchBytes) + `"}`)
	half := []byte(`{"type":"push","name":"half","data":"` + strings.Repeat("y", maxBatchBytes/2) + `"}`)
	msgs := [][]byte{[]byte(`{"type":"ack","id":1,"seq":5}`), []byte(`{"type":"ack","id":2,"seq":6}`), big,
		[]byte(`{"type":"ack","id":3,"seq":7}`), half, half, []byte(`{"type":"ack","id":4,"seq":8}`)}

	proto, got := frames(t, nil, msgs)
	if proto != "" || len(got) != len(msgs) {
		t.Fatalf("no subprotocol: negotiated %q, %d frames for %d messages", proto, len(got), len(msgs))
	}
	for i, f := range got {
		if f != string(msgs[i]) {
			t.Errorf("no subprotocol: frame %d is not message %d alone: %.80q", i, i, f)
		}
	}

	proto, got = frames(t, []string{"other", protocol.Subprotocol}, msgs)
	if proto != protocol.Subprotocol {
		t.Fatalf("negotiated %q, want %q", proto, protocol.Subprotocol)
	}
	// Two acks share a frame; the big one is alone; the next ack and one
	// half fit a frame, the second half and the last ack another.
	want := []string{string(msgs[0]) + "\n" + string(msgs[1]), string(big), string(msgs[3]) + "\n" + string(half), string(half) + "\n" + string(msgs[6])}
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", protocol.Subprotocol, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d: %.80q, want %.80q", i, got[i], want[i])
		}
		if len(got[i]) > maxBatchBytes && strings.Contains(got[i], "\n") {
			t.Errorf("frame %d: %d bytes of several messages, over %d", i, len(got[i]), maxBatchBytes)
		}
	}
}

func TestAppendBatch(t *testing.T) {
	m := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	b, j := appendBatch(nil, [][]byte{m(10), m(maxBatchBytes - 11), m(1)}, 0)
	if j != 2 || len(b) != maxBatchBytes {
		t.Fatalf("j %d, %d bytes: want 2 messages filling %d", j, len(b), maxBatchBytes)
	}
	if b, j = appendBatch(b[:0], [][]byte{m(maxBatchBytes + 1), m(1)}, 0); j != 1 || len(b) != maxBatchBytes+1 {
		t.Fatalf("an oversize message: j %d, %d bytes", j, len(b))
	}
}

// TestSubprotocolThroughTheHub: a client asking for sessionhub.v2 reads
// every change of a burst, in order, some of them sharing frames; one
// asking for nothing gets one message per frame.
func TestSubprotocolThroughTheHub(t *testing.T) {
	h := internalHub(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, sub := range [][]string{nil, {protocol.Subprotocol}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/hub/ws", &websocket.DialOptions{Subprotocols: sub})
		if err != nil {
			t.Fatal(err)
		}
		if got := ws.Subprotocol(); (got == protocol.Subprotocol) != (len(sub) > 0) {
			t.Fatalf("asked for %q, negotiated %q", sub, got)
		}
		req := &http.Request{Header: http.Header{"Cookie": {resp.Header.Get("Set-Cookie")}}}
		s, err := h.opts.Store.Load(req)
		if err != nil {
			t.Fatal(err)
		}
		const n = 150 // within the session's write burst (200)
		var wg sync.WaitGroup
		var seqMu sync.Mutex
		var top uint64 // the last write's sequence
		for i := range n {
			wg.Go(func() {
				seq, err := h.Write(ctx, s.ID(), session.Op{Type: session.OpSet, Key: fmt.Sprintf("k%d", i%4), Value: json.RawMessage(`1`)})
				if err != nil {
					t.Error(err)
				}
				seqMu.Lock()
				top = max(top, seq)
				seqMu.Unlock()
			})
		}
		wg.Wait() // the changes wait in the socket's buffer meanwhile
		// Compaction may fold several entries into one snapshot: read
		// until the last write's change.
		var last uint64
		changes, shared := 0, 0
		for last < top {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("after %d changes: %v", changes, err)
			}
			lines := strings.Split(string(b), "\n")
			if len(lines) > 1 {
				if len(sub) == 0 {
					t.Fatalf("a frame of %d messages without the subprotocol", len(lines))
				}
				shared++
			}
			for _, line := range lines {
				var m struct {
					Type string `json:"type"`
					Seq  uint64 `json:"seq"`
				}
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not one message per line: %v: %.100q", err, line)
				}
				if m.Type != protocol.TypeChange {
					continue
				}
				if m.Seq <= last {
					t.Fatalf("change %d after %d", m.Seq, last)
				}
				last = m.Seq
				changes++
			}
		}
		t.Logf("subprotocol %q: %d changes, %d frames of several", sub, changes, shared)
		ws.Close(websocket.StatusNormalClosure, "")
		cancel()
	}
}

// A frame write registers no per-frame cancellation hook with
// coder/websocket (a context.AfterFunc on a cancellable context: several
// allocations on every frame): the socket's timer bounds it instead. The
// client reads only once the writes are counted (AllocsPerRun counts the
// whole process's); the frames fit the sockets' buffers.
func TestFrameWriteAllocatesNothing(t *testing.T) {
	allocs := make(chan float64, 1)
	measured := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &sndbufWriter{ResponseWriter: w, size: 64 << 10}
		ws, err := websocket.Accept(sw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := &conn{h: &Hub{opts: Options{WriteWait: 5 * time.Second}}, ws: ws, raw: sw.conn, ctx: ctx}
		msg := []byte(`{"type":"ack","id":1,"seq":5}`)
		_ = c.write(msg) // the timer is made by the first write
		allocs <- testing.AllocsPerRun(200, func() {
			if err := c.write(msg); err != nil {
				t.Error(err)
			}
		})
		close(measured)
		c.stopWriteTimer()
		_ = ws.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	go func() {
		<-measured
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	if n := <-allocs; n != 0 {
		t.Fatalf("a frame write allocates %v times", n)
	}
}

// TestOwnChangeGoesWithItsAck: on a socket that negotiated sessionhub.v2,
// writes answered one at a time each get one ack and their change, the
// changes in sequence order, and the change in the ack's frame
// (TestHeldChangeGoesWithTheAck).
func TestOwnChangeGoesWithItsAck(t *testing.T) {
	h := internalHubWith(t, func(o *Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
		o.ClientKeys = map[string]KeyPolicy{"language": {Read: true, Write: true, Validate: func(json.RawMessage) error { return nil }}}
		o.RateLimit, o.RateBurst = 1000, 1000
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := dialBatched(ctx, t, h)
	type msg struct {
		Type string `json:"type"`
		ID   uint64 `json:"id"`
		Seq  uint64 `json:"seq"`
	}
	var lastChange uint64
	acks := map[uint64]uint64{} // id: seq
	together := 0
	read := func() {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var frame []msg
		for _, line := range strings.Split(string(b), "\n") {
			var m msg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%v: %q", err, line)
			}
			frame = append(frame, m)
		}
		for j, m := range frame {
			switch m.Type {
			case protocol.TypeChange:
				if m.Seq <= lastChange {
					t.Fatalf("change %d after %d", m.Seq, lastChange)
				}
				lastChange = m.Seq
			case protocol.TypeAck:
				if _, ok := acks[m.ID]; ok {
					t.Fatalf("write %d acknowledged twice", m.ID)
				}
				acks[m.ID] = m.Seq
				if j > 0 && frame[j-1].Type == protocol.TypeChange && frame[j-1].Seq == m.Seq {
					together++
				}
			case protocol.TypeError:
				t.Fatalf("%+v", m)
			}
		}
	}
	read() // the welcome
	const n = 40
	for i := uint64(1); i <= n; i++ {
		if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":%d,"type":"set","key":"language","value":"v%d"}`, i, i)); err != nil {
			t.Fatal(err)
		}
		for acks[i] == 0 || lastChange < acks[i] {
			read()
		}
		if i > 1 && acks[i] <= acks[i-1] {
			t.Fatalf("write %d acknowledged at %d after %d", i, acks[i], acks[i-1])
		}
	}
	// A session's acknowledgements reach its view's dispatcher after the
	// republished entries nats-server sent before them (asyncAcks): every
	// change after the first (which the view may read when it loads) is in
	// its ack's frame.
	if together < n-1 {
		t.Fatalf("%d of %d changes in their ack's frame, want at least %d", together, n, n-1)
	}
}

// TestWriteHere: the caller writes what waits when no writer runs, before
// it returns (the acker's last answers); with a writer running it leaves
// them to it; a close it hands to a writer goroutine, which sends the
// close frame.
func TestWriteHere(t *testing.T) {
	ws, done := connServer(t, []string{protocol.Subprotocol}, 5*time.Second, 1<<20, func(c *conn) {
		c.enqueue([]byte(`{"type":"ack","id":1,"seq":5}`), []byte(`{"type":"ack","id":2,"seq":6}`))
		c.writeHere()
		if msgs, size := c.out.unsent(); msgs != 0 || size != 0 || c.writing.Load() {
			t.Errorf("after writeHere: %d messages waiting, %d bytes unsent, writing %v; want everything written and no writer", msgs, size, c.writing.Load())
		}

		c.writing.Store(true) // a writer runs
		c.enqueue([]byte(`{"type":"ack","id":3,"seq":7}`))
		c.writeHere()
		if msgs, _ := c.out.unsent(); msgs == 0 {
			t.Error("writeHere wrote while a writer ran")
		}
		c.writing.Store(false)
		c.writeHere()

		c.closeCode, c.closeMsg = CloseNormal, ""
		c.closing.Store(true)
		c.writeHere() // hands the close to a writer goroutine
		select {
		case <-c.finished:
		case <-time.After(5 * time.Second):
			t.Error("no close frame after writeHere on a closing socket")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Errorf("read: %v; want a normal close", err)
			}
			break
		}
		got = append(got, string(b))
	}
	<-done
	want := []string{`{"type":"ack","id":1,"seq":5}` + "\n" + `{"type":"ack","id":2,"seq":6}`, `{"type":"ack","id":3,"seq":7}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frames %q, want %q", got, want)
	}
}

// TestWriteHereHandsOnWhatCameMeanwhile: writeHere writes what waits once;
// what came while it wrote goes to a writer goroutine, and writeHere
// returns (the acker goes on to its next answers however many changes
// its socket keeps receiving). Here the second frame cannot go out until
// writeHere has returned: were writeHere to write it, both would wait.
func TestWriteHereHandsOnWhatCameMeanwhile(t *testing.T) {
	big := func(c byte) []byte { return []byte(`"` + strings.Repeat(string(c), 4<<20) + `"`) }
	mid, returned := make(chan struct{}), make(chan struct{})
	ws, done := connServer(t, []string{protocol.Subprotocol}, 10*time.Second, 16<<20, func(c *conn) {
		c.enqueue(big('a'))
		enqueued := make(chan struct{})
		go func() {
			<-mid // the first frame is being written
			c.enqueue(big('b'))
			close(enqueued)
		}()
		c.writeHere()
		close(returned)
		<-enqueued
		c.close(CloseNormal, "")
		<-c.finished
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, r, err := ws.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(mid)
	time.Sleep(50 * time.Millisecond) // the second message is queued while the first is written
	first, err := io.ReadAll(r)
	if err != nil || len(first) != 4<<20+2 || first[1] != 'a' {
		t.Fatalf("first frame: %d bytes, %v", len(first), err)
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("writeHere did not return after its first frame: it wrote what came meanwhile itself")
	}
	_, second, err := ws.Read(ctx)
	if err != nil || len(second) != 4<<20+2 || second[1] != 'b' {
		t.Fatalf("second frame: %d bytes, %v", len(second), err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after the second frame: %v, want the close", err)
	}
	<-done
}

// A frame's deadline holds from the frame's own start, whatever frame
// armed the socket's timer: a frame begun late in the timer's period
// times out WriteWait after it began, not when the timer first fires. A
// quiet socket's timer fires once more and disarms.
func TestFrameDeadline(t *testing.T) {
	const wait = 150 * time.Millisecond
	type result struct {
		quiet   bool          // the timer disarmed after a frame, the socket quiet
		elapsed time.Duration // the stalled frame's write
		err     error
	}
	res := make(chan result, 1)
	ws, done := connServer(t, nil, wait, 64<<20, func(c *conn) {
		var r result
		if err := c.write([]byte(`{"type":"ack","id":1,"seq":1}`)); err != nil {
			t.Error(err)
		}
		time.Sleep(wait + wait/2) // the timer fires, finds no frame: disarmed
		r.quiet = !c.warmed.Load()
		if err := c.write([]byte(`{"type":"ack","id":2,"seq":2}`)); err != nil { // arms it again
			t.Error(err)
		}
		time.Sleep(wait * 2 / 3)
		// The client reads nothing: a frame far larger than the kernel's
		// buffers stalls until its deadline.
		start := time.Now()
		r.err = c.write(bytes.Repeat([]byte("x"), 32<<20))
		r.elapsed = time.Since(start)
		res <- r
	})
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		ws.CloseNow() // ends the stalled write
		t.Fatal("the stalled frame did not time out")
	}
	<-done
	t.Logf("the stalled frame timed out after %v", r.elapsed)
	if !r.quiet {
		t.Error("a quiet socket's frame timer stayed armed")
	}
	if !errors.Is(r.err, errWriteTimeout) {
		t.Fatalf("the stalled frame: %v, want errWriteTimeout", r.err)
	}
	// Timed out no earlier than its own WriteWait; how much later depends
	// on the machine's load (the select above bounds it).
	if r.elapsed < wait-10*time.Millisecond {
		t.Errorf("the stalled frame timed out after %v; WriteWait %v", r.elapsed, wait)
	}
}

// A socket that sends one message at a time, and one that answers one
// write at a time, reuses its queue's array (outbox.recycle,
// pipeline.popLocked): no allocation per message or answer, nothing kept
// alive by the array, and a burst's larger array let go.
func TestQueuesKeepASmallArray(t *testing.T) {
	msg := []byte(`{"type":"ack","id":1,"seq":5}`)
	o := newOutbox(256, 1<<20)
	cycle := func() {
		if !o.push(msg, msg) {
			t.Fatal("push refused")
		}
		o.recycle(o.take())
	}
	cycle() // the array is made once
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("a message to the socket allocates %v times", n)
	}
	if got := o.q[:cap(o.q)]; got[0] != nil || got[1] != nil {
		t.Error("the kept array holds written messages")
	}
	for range keptQueue + 1 {
		o.push(msg)
	}
	o.recycle(o.take())
	if o.q != nil {
		t.Errorf("a burst's array of %d slots is kept", keptQueue+1)
	}

	var pl pipeline
	answer := func() {
		pl.mu.Lock()
		pl.q = append(pl.q, pending{id: 1, err: errStalled})
		pl.popLocked()
		pl.mu.Unlock()
	}
	answer()
	if n := testing.AllocsPerRun(100, answer); n != 0 {
		t.Errorf("an answer allocates %v times", n)
	}
	if p := pl.q[:cap(pl.q)][0]; p.id != 0 || p.err != nil {
		t.Error("the kept array holds an answer")
	}
	pl.mu.Lock()
	for range keptAnswers + 1 {
		pl.q = append(pl.q, pending{id: 1})
	}
	for len(pl.q) > 0 {
		pl.popLocked()
	}
	pl.mu.Unlock()
	if pl.q != nil {
		t.Errorf("a burst's array of %d answers is kept", keptAnswers+1)
	}
}
