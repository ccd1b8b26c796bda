package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
)

// rawSock is a WebSocket client written frame by frame, so that a test
// sees the close frame the server sends, code and all.
type rawSock struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, in *instance) *rawSock {
	t.Helper()
	conn, err := net.DialTimeout("tcp", in.srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /hub/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", in.srv.Listener.Addr())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &rawSock{t: t, conn: conn, br: br}
}

// frame reads one server frame (servers do not mask).
func (r *rawSock) frame() (opcode byte, payload []byte) {
	r.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(r.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		r.t.Fatalf("reading a frame's payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// sendClose sends a masked close frame with code and reason.
func (r *rawSock) sendClose(code uint16, reason string) {
	r.t.Helper()
	payload := binary.BigEndian.AppendUint16(nil, code)
	payload = append(payload, reason...)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x88, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := r.conn.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

// closeCode reads frames until the server's close frame and returns its
// code.
func (r *rawSock) closeCode() int {
	r.t.Helper()
	for {
		op, payload := r.frame()
		if op != 0x8 {
			continue
		}
		if len(payload) < 2 {
			r.t.Fatalf("a close frame without a code: %q", payload)
		}
		return int(binary.BigEndian.Uint16(payload))
	}
}

// The server sends 1000 (normal closure) in answer to a client that
// closes with it: the close handshake repeats the client's code, and the
// hub never starts a close with 1000 itself (docs/PROTOCOL.md). A client
// told 1000 stops (hub.Reconnect).
func TestClientCloseAnswered(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	for _, code := range []uint16{uint16(hub.CloseNormal), uint16(hub.CloseGoingAway)} {
		r := dialRaw(t, in)
		if op, welcome := r.frame(); op != 0x1 || !json.Valid(welcome) {
			t.Fatalf("first frame: opcode %d %q, want the welcome", op, welcome)
		}
		r.sendClose(code, "bye")
		if got := r.closeCode(); got != int(code) {
			t.Fatalf("client closed with %d: the server answered %d", code, got)
		}
		if _, err := r.br.ReadByte(); err != io.EOF {
			t.Fatalf("after the close handshake the server kept the connection: %v", err)
		}
	}
	if rc, rs := hub.Reconnect(hub.CloseNormal); rc || rs {
		t.Fatalf("Reconnect(1000) = %v, %v; want stop", rc, rs)
	}
}

// A socket whose session state cannot be completed closes with 1011
// (internal error) and no welcome: here a handshake with a cookie older
// than its session's view in memory, while JetStream, which holds the
// entries in between, is stopped (nats-server disables it when its store
// fails). The client reconnects and resumes (hub.Reconnect), with
// backoff, and once JetStream is back the same cookie gets its welcome
// and its resume.
func TestUnreadableLogCloses1011(t *testing.T) {
	t.Parallel()
	ns, restartNATS := restartableNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.ViewTail = 2; o.RateLimit, o.RateBurst = 1000, 1000 })

	c := newClient(t)
	s := c.dial(in) // stays open: the session's view stays in memory
	s.expect("welcome")
	first := s.set("k0", "a")
	if _, body := c.do(in, "POST", "/hub/flush", nil); uint64(num(body["seq"])) != first {
		t.Fatalf("flush: %v", body)
	}
	old := c.cookie(in) // at the first entry
	var last uint64
	for _, v := range []string{"b", "c", "d", "e"} {
		last = s.set("k0", v) // the view's tail keeps the last two
	}

	if err := ns.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	b := newClient(t)
	b.setCookie(in, old)
	m := b.dial(in).next()
	if m["type"] != "closed" || m["code"] != float64(hub.CloseInternal) {
		t.Fatalf("a handshake with the old cookie while JetStream is stopped: %v, want close 1011 without a welcome", m)
	}
	reconnect, resume := hub.Reconnect(websocket.StatusCode(num(m["code"])))
	if !reconnect || !resume {
		t.Fatalf("Reconnect(1011) = %v, %v; want reconnect and resume", reconnect, resume)
	}

	restartNATS()
	// Reconnect with backoff, as the policy says, until welcomed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		r := b.dial(in)
		m := r.next()
		if m["type"] == "welcome" {
			if uint64(num(m["seq"])) != last || values(m)["k0"] != "e" {
				t.Fatalf("welcome after the reconnect: %v, want k0 e at %d", m, last)
			}
			r.send(map[string]any{"type": "resume", "after": first})
			if got := r.expect("resumed"); uint64(num(got["seq"])) != last {
				t.Fatalf("resumed: %v, want seq %d", got, last)
			}
			return
		}
		if m["type"] != "closed" || m["code"] != float64(hub.CloseInternal) || ctx.Err() != nil {
			t.Fatalf("reconnect: %v", m)
		}
		time.Sleep(wait)
	}
}
