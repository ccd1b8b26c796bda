package hub_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
)

// sndbuf reads SO_SNDBUF of a TCP connection.
func sndbuf(t *testing.T, c net.Conn) int {
	t.Helper()
	n, err := readSndbuf(c)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readSndbuf(c net.Conn) (int, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		return 0, err
	}
	return n, serr
}

// accepted is a connection the test server accepted, with its SO_SNDBUF
// as the kernel gave it (-1 when unreadable).
type accepted struct {
	c      net.Conn
	sndbuf int
}

// TestSocketKernelBuffer: the TCP connection of every socket, over plain
// HTTP or TLS, has SocketKernelBuffer as its kernel send buffer
// (SO_SNDBUF; Linux reserves twice the value set, for its bookkeeping,
// and reports that); a plain HTTP request's connection keeps the
// kernel's own.
func TestSocketKernelBuffer(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	for _, tt := range []struct {
		name string
		size int // 0: the default
		tls  bool
	}{
		{"default", 0, false},
		{"24 KiB", 24 << 10, false},
		{"24 KiB over TLS", 24 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t, ns, func(o *hub.Options) { o.SocketKernelBuffer = tt.size })
			want := tt.size
			if want == 0 {
				want = hub.DefaultSocketKernelBuffer
			}
			// The hub's own server, to see the connections it accepts (for
			// TLS, the TCP connection under each).
			conns := make(chan accepted, 4)
			srv := httptest.NewUnstartedServer(in.hub)
			srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
				if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
					c = tc.NetConn()
				}
				// Read now: a plain request's connection may be closed by
				// the time the test looks (nothing sets it later).
				n, err := readSndbuf(c)
				if err != nil {
					n = -1
				}
				conns <- accepted{c, n}
				return ctx
			}
			if tt.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			hc := srv.Client()
			t.Cleanup(hc.CloseIdleConnections)

			// A plain request first, on a connection of its own.
			resp, err := hc.Post(srv.URL+"/hub/flush", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			plain := (<-conns).sndbuf
			if plain < 0 {
				t.Fatal("SO_SNDBUF of the plain request's connection not readable at accept")
			}
			hc.CloseIdleConnections() // the socket gets a connection of its own

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/hub/ws"
			ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			if _, _, err := ws.Read(ctx); err != nil { // the welcome: the hub has the socket
				t.Fatal(err)
			}
			if got := sndbuf(t, (<-conns).c); got != 2*want {
				t.Errorf("SO_SNDBUF of a socket's connection: %d, want 2 × %d", got, want)
			}
			if plain == 2*want {
				t.Errorf("SO_SNDBUF of a plain request's connection: %d, the socket's", plain)
			}
			_ = ws.Close(websocket.StatusNormalClosure, "")
		})
	}
}
