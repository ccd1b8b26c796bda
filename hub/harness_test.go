package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/session"
)

var testKey = session.KeyPair{Hash: []byte("0123456789abcdef0123456789abcdef-sessionhub-test-key")}

// startNATS starts an embedded nats-server with JetStream on a random
// 127.0.0.1 port.
func startNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// restartableNATS starts an embedded NATS server and returns restart,
// which stops it and starts it again on the same store and port, as a
// NATS restart does; both servers are closed with the test.
func restartableNATS(t testing.TB) (ns *natsserver.Server, restart func()) {
	t.Helper()
	ns, stop, start := hub.StoppableNATS(t)
	return ns, func() {
		t.Helper()
		stop()
		start()
	}
}

func connect(t testing.TB, srv *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

var demoKeys = map[string]hub.KeyPolicy{
	"colour": {Read: true, Write: true, Validate: func(v json.RawMessage) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || s == "" || len(s) > 32 {
			return fmt.Errorf("want a colour name")
		}
		return nil
	}},
	"note":  {Read: true, Write: true, Validate: func(v json.RawMessage) error { return nil }},
	"theme": {Read: true},
	"k0":    {Read: true, Write: true, Validate: func(v json.RawMessage) error { return nil }},
	"k1":    {Read: true, Write: true, Validate: func(v json.RawMessage) error { return nil }},
	"k2":    {Read: true, Write: true, Validate: func(v json.RawMessage) error { return nil }},
	"k9":    {Read: true, Write: true, Validate: func(v json.RawMessage) error { return nil }},
	// user_id is neither readable nor writable by the browser.
}

// instance is one hub behind an HTTP server: the socket and bridge at
// /hub/, an app behind the middleware at /app/.
type instance struct {
	t     testing.TB
	hub   *hub.Hub
	nc    *nats.Conn
	srv   *httptest.Server
	store *session.Store
}

func newInstance(t testing.TB, ns *natsserver.Server, tweak func(*hub.Options)) *instance {
	t.Helper()
	return newInstanceOn(t, connect(t, ns), tweak)
}

// newInstanceOn is newInstance on a given NATS connection.
func newInstanceOn(t testing.TB, nc *nats.Conn, tweak func(*hub.Options)) *instance {
	t.Helper()
	return newInstanceWithin(t, nc, 10*time.Second, tweak)
}

// newInstanceWithin is newInstanceOn with hub.New given up to timeout.
func newInstanceWithin(t testing.TB, nc *nats.Conn, timeout time.Duration, tweak func(*hub.Options)) *instance {
	t.Helper()
	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	o := &hub.Options{Store: store, Conn: nc, ClientKeys: demoKeys, Logger: testLogger(t), MemoryStorage: false}
	if tweak != nil {
		tweak(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h, err := hub.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hub/", h)
	app := http.NewServeMux()
	app.HandleFunc("GET /app/get", func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"seq": s.Seq(), "values": s.Values()})
	})
	app.HandleFunc("POST /app/set", func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		for k, vs := range r.URL.Query() {
			if err := s.Set(k, vs[0]); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Logout and login as an app writes them: session calls only; the
	// middleware ends or rotates the session in the hub.
	app.HandleFunc("POST /app/logout", func(w http.ResponseWriter, r *http.Request) {
		httpbridge.FromContext(r.Context()).End()
		w.WriteHeader(http.StatusNoContent)
	})
	app.HandleFunc("POST /app/login", func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		s.Rotate()
		_ = s.Set("name", r.URL.Query().Get("name"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/app/", h.Middleware(app))
	srv := httptest.NewServer(mux)
	in := &instance{t: t, hub: h, nc: nc, srv: srv, store: store}
	t.Cleanup(in.stop)
	return in
}

// stop closes the HTTP server and the hub (idempotent).
func (in *instance) stop() {
	in.srv.Close()
	_ = in.hub.Close()
}

// client is one browser: a cookie jar shared by its HTTP requests and
// socket handshakes.
type client struct {
	t   testing.TB
	jar http.CookieJar
}

func newClient(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, jar: jar}
}

func (c *client) http(in *instance) *http.Client {
	return &http.Client{Jar: c.jar, Timeout: 10 * time.Second}
}

// do sends a request to in with the client's cookies and returns the
// status and the decoded JSON body.
func (c *client) do(in *instance, method, path string, hdr http.Header) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(method, in.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http(in).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (c *client) cookie(in *instance) string {
	u, _ := url.Parse(in.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "session" {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setCookie(in *instance, value string) {
	u, _ := url.Parse(in.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: value, Path: "/"}})
}

// sock is a test WebSocket client speaking the protocol.
type sock struct {
	t       testing.TB
	backlog []map[string]any // messages skipped by reply, read first by next
	ws      *websocket.Conn
	id      uint64
	in      chan map[string]any
}

func (c *client) dial(in *instance) *sock {
	c.t.Helper()
	s, resp, err := c.tryDial(in, nil)
	if err != nil {
		c.t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	return s
}

func (c *client) tryDial(in *instance, hdr http.Header) (*sock, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(in.srv.URL, "http") + "/hub/ws"
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http(in), HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	// The 101 response's cookie goes into the jar like a browser's.
	if resp != nil {
		pu, _ := url.Parse(in.srv.URL)
		c.jar.SetCookies(pu, resp.Cookies())
	}
	ws.SetReadLimit(1 << 20)
	s := &sock{t: c.t, ws: ws, in: make(chan map[string]any, 1024)}
	go s.readLoop()
	c.t.Cleanup(func() { _ = ws.CloseNow() })
	return s, resp, nil
}

func (s *sock) readLoop() {
	defer close(s.in)
	for {
		_, b, err := s.ws.Read(context.Background())
		if err != nil {
			s.in <- map[string]any{"type": "closed", "code": float64(websocket.CloseStatus(err))}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			s.in <- map[string]any{"type": "garbage", "raw": string(b)}
			continue
		}
		s.in <- m
	}
}

// next returns the next message, failing after 10 seconds.
func (s *sock) next() map[string]any {
	s.t.Helper()
	if len(s.backlog) > 0 {
		m := s.backlog[0]
		s.backlog = s.backlog[1:]
		return m
	}
	select {
	case m, ok := <-s.in:
		if !ok {
			s.t.Fatal("socket closed")
		}
		return m
	case <-time.After(10 * time.Second):
		s.t.Fatal("no message within 10s")
	}
	return nil
}

// expect returns the next message of type typ, skipping others.
func (s *sock) expect(typ string) map[string]any {
	s.t.Helper()
	for {
		m := s.next()
		if m["type"] == typ {
			return m
		}
		if m["type"] == "closed" {
			s.t.Fatalf("socket closed while waiting for %s: %v", typ, m)
		}
	}
}

// send writes a message with a fresh id and returns the id.
func (s *sock) send(m map[string]any) uint64 {
	s.t.Helper()
	s.id++
	if _, ok := m["id"]; !ok {
		m["id"] = s.id
	}
	b, _ := json.Marshal(m)
	s.sendRaw(string(b))
	return s.id
}

func (s *sock) sendRaw(frame string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// reply waits for the ack or error of id.
func (s *sock) reply(id uint64) map[string]any {
	s.t.Helper()
	var skipped []map[string]any
	defer func() { s.backlog = append(skipped, s.backlog...) }()
	for {
		m := s.next()
		if (m["type"] == "ack" || m["type"] == "error") && uint64(num(m["id"])) == id {
			return m
		}
		if m["type"] == "closed" {
			s.t.Fatalf("socket closed while waiting for reply %d: %v", id, m)
		}
		skipped = append(skipped, m)
	}
}

// set sends a set and returns the ack's seq, failing on an error reply.
func (s *sock) set(key string, value any) uint64 {
	s.t.Helper()
	r := s.reply(s.send(map[string]any{"type": "set", "key": key, "value": value}))
	if r["type"] != "ack" {
		s.t.Fatalf("set %s: %v", key, r)
	}
	return uint64(num(r["seq"]))
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func values(m map[string]any) map[string]any {
	v, _ := m["values"].(map[string]any)
	return v
}

// twoTabs opens two sockets of one new session (one browser): the first at
// a, the second, with the same cookie, at b. Both have their welcome.
// oneTab starts NATS and an instance (tweak as newInstance takes it), and
// opens a client's socket on it, welcomed.
func oneTab(t testing.TB, tweak func(*hub.Options)) (*instance, *client, *sock) {
	t.Helper()
	in := newInstance(t, startNATS(t), tweak)
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	return in, c, s
}

func twoTabs(t testing.TB, a, b *instance) (*client, *sock, *sock) {
	t.Helper()
	c := newClient(t)
	sa := c.dial(a)
	sa.expect("welcome")
	c.setCookie(b, c.cookie(a))
	sb := c.dial(b)
	sb.expect("welcome")
	return c, sa, sb
}
