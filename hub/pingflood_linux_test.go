package hub_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/hub"
)

// TestPingFloodHoldsNoDispatcher: a client that never reads and floods
// pings fills its connection's kernel buffer with the pongs the socket's
// read loop writes, frames the hub's writer never wrote itself. The
// dispatcher, which writes a frame itself only while the kernel has room
// for it, counts them too: it leaves that socket's frames to its writer
// goroutine, and the changes to the session's reading socket keep coming
// well within WriteWait.
func TestPingFloodHoldsNoDispatcher(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const wait = 4 * time.Second
	in := newInstance(t, ns, func(o *hub.Options) {
		o.WriteWait = wait
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
	})
	c, reader, id := sessionReader(t, in)
	write := func(value string) time.Duration { return noteLatency(t, in, id, reader, `"`+value+`"`) }
	write("a")

	// The flooding client: a socket of the same session on a raw TCP
	// connection with a 2 KiB receive buffer, which reads nothing after
	// the handshake.
	addr := strings.TrimPrefix(in.srv.URL, "http://")
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(nc, "GET /hub/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sessionhub.v2\r\nCookie: session=%s\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(key), c.cookie(in))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	write("b") // the dispatcher writes this one to the flooder itself, and measures its room

	// Masked pings of 125 bytes, as fast as the connection takes them.
	ping := append([]byte{0x89, 0x80 | 125, 1, 2, 3, 4}, make([]byte, 125)...)
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		for range 20000 {
			_ = nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := nc.Write(ping); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = nc.Close()
		<-flooding
	})
	time.Sleep(2 * time.Second) // the pongs fill the flooder's buffers
	var slowest time.Duration
	for i := range 5 {
		slowest = max(slowest, write(fmt.Sprint("c", i)))
	}
	t.Logf("slowest change to the reader while the flooder's buffers are full: %v", slowest)
	if slowest > wait/2 {
		t.Fatalf("a change reached the reading socket %v after its write (WriteWait %v): the flooding socket held its delivery", slowest, wait)
	}
}

// TestClientPingsAnswered: a client that reads gets the pong of every
// ping it sends (pongFits holds back only those of a client whose
// buffers are half full).
func TestClientPingsAnswered(t *testing.T) {
	t.Parallel()
	in := newInstance(t, startNATS(t), nil)
	s := newClient(t).dial(in)
	s.expect("welcome")
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.ws.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
}
