package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is a fixed signing key, so that cookies are reproducible.
var testKey = session.KeyPair{Hash: bytes.Repeat([]byte("k"), 64)}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer starts a server on 127.0.0.1:0 with embedded NATS in a
// temporary directory; tweak may change the configuration first.
func startServer(t testing.TB, tweak func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Keys = FormatKey(testKey)
	if tweak != nil {
		tweak(&cfg)
	}
	s := New(cfg, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// browser is one browser: a cookie jar shared by its requests and sockets.
type browser struct {
	t    testing.TB
	base string
	jar  http.CookieJar
	c    *http.Client
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base, jar: jar, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	t.Cleanup(b.c.CloseIdleConnections)
	return b
}

// do sends a request and returns the status, the headers and the body.
func (b *browser) do(method, path, contentType, body string) (int, http.Header, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// doJSON is do with a JSON body, decoding a JSON answer.
func (b *browser) doJSON(method, path, body string) (int, map[string]any) {
	b.t.Helper()
	status, _, data := b.do(method, path, "application/json", body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		b.t.Fatalf("%s %s: %d, not JSON: %q", method, path, status, data)
	}
	return status, m
}

func (b *browser) cookie() string {
	u, _ := url.Parse(b.base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "session" {
			return c.Value
		}
	}
	return ""
}

// sock is a test socket speaking the protocol.
type sock struct {
	t  testing.TB
	ws *websocket.Conn
	id uint64
	in chan map[string]any
}

func (b *browser) dial() *sock {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(b.base, "http") + "/hub/ws"
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: b.c})
	if err != nil {
		b.t.Fatalf("dial: %v", err)
	}
	if resp != nil {
		pu, _ := url.Parse(b.base)
		b.jar.SetCookies(pu, resp.Cookies())
	}
	s := &sock{t: b.t, ws: ws, in: make(chan map[string]any, 256)}
	go s.readLoop()
	b.t.Cleanup(func() { _ = ws.CloseNow() })
	return s
}

func (s *sock) readLoop() {
	defer close(s.in)
	for {
		_, data, err := s.ws.Read(context.Background())
		if err != nil {
			s.in <- map[string]any{"type": "closed", "code": float64(websocket.CloseStatus(err))}
			return
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		s.in <- m
	}
}

// expect returns the next message of type typ, skipping others.
func (s *sock) expect(typ string) map[string]any {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.in:
			if !ok {
				s.t.Fatalf("socket gone while waiting for %s", typ)
			}
			if m["type"] == typ {
				return m
			}
			if m["type"] == "closed" {
				s.t.Fatalf("socket closed (%v) while waiting for %s", m["code"], typ)
			}
		case <-timeout:
			s.t.Fatalf("no %s within 10s", typ)
		}
	}
}

// closed waits for the socket to close and returns the close code.
func (s *sock) closed() int {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.in:
			if !ok {
				s.t.Fatal("socket gone")
			}
			if m["type"] == "closed" {
				return int(m["code"].(float64))
			}
		case <-timeout:
			s.t.Fatal("socket not closed within 10s")
		}
	}
}

// request sends a request with a fresh id and returns its reply.
func (s *sock) request(m map[string]any) map[string]any {
	s.t.Helper()
	s.id++
	m["id"] = s.id
	data, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, data); err != nil {
		s.t.Fatalf("write: %v", err)
	}
	for {
		r := s.expect2("ack", "error")
		if id, _ := r["id"].(float64); uint64(id) == s.id {
			return r
		}
	}
}

func (s *sock) expect2(a, b string) map[string]any {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.in:
			if !ok {
				s.t.Fatal("socket gone")
			}
			if m["type"] == a || m["type"] == b {
				return m
			}
			if m["type"] == "closed" {
				s.t.Fatalf("socket closed (%v) while waiting for %s", m["code"], a)
			}
		case <-timeout:
			s.t.Fatalf("no %s within 10s", a)
		}
	}
}

func values(m map[string]any) map[string]any {
	v, _ := m["values"].(map[string]any)
	return v
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func itoa(n int) string { return strconv.Itoa(n) }

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
