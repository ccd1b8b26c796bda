package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const python = "/usr/bin/python3"

// needFlask skips when Debian's python3-flask is absent outside CI (in CI,
// and wherever ./test.sh ran, it is installed).
func needFlask(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import flask, quart, hypercorn").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-flask, python3-quart and python3-hypercorn are required in CI: %v", err)
		}
		t.Skip("python3-flask/python3-quart/python3-hypercorn not installed (./test.sh installs them): skipping the tests against the real app")
	}
}

// pyApp is a running testdata app: its URL, and its log (stderr), which
// goes to t.Log and can be waited on.
type pyApp struct {
	url *url.URL
	log *lineLog
}

// startApp runs testdata/<script> with SECRET_KEY (and env).
func startApp(t *testing.T, script, secret string, env ...string) *pyApp {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("testdata", script))
	cmd.Env = append(append(os.Environ(), "SECRET_KEY="+secret, "PYTHONUNBUFFERED=1"), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := &lineLog{t: t, changed: make(chan struct{})}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "port ") {
				lines <- strings.TrimPrefix(sc.Text(), "port ")
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case port := <-lines:
		u, _ := url.Parse("http://127.0.0.1:" + port)
		return &pyApp{url: u, log: log}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start", script)
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lineLog is an app's stderr: logged with t.Log and kept, so that a test
// can wait for a line.
type lineLog struct {
	t       *testing.T
	mu      sync.Mutex
	text    strings.Builder
	changed chan struct{} // closed and replaced on every write
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// wait waits until the log holds s, at most 10 seconds.
func (l *lineLog) wait(s string) {
	l.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		found, changed := strings.Contains(l.text.String(), s), l.changed
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			l.t.Fatalf("the app did not log %q", s)
		}
	}
}

// startProxy runs the proxy in front of upstream with the given secrets.
func startProxy(t *testing.T, upstream *pyApp, token string, secrets ...string) *server.Server {
	t.Helper()
	cfg := &Config{Server: server.DefaultConfig(), Upstream: upstream.url, CookieFormat: "flask",
		ClientKeys: []string{"colour", "theme"}, ReadableKeys: []string{"user"}}
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.DataDir = t.TempDir()
	cfg.Server.APIToken = token
	if len(secrets) == 0 {
		secrets = []string{secret}
	}
	for _, s := range secrets {
		cfg.FlaskSecrets = append(cfg.FlaskSecrets, []byte(s))
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := App(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s := server.NewApp(cfg.Server, app, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// browser is a cookie jar and an HTTP client pointed at the proxy.
type browser struct {
	t    *testing.T
	base *url.URL
	jar  *cookiejar.Jar
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	u, _ := url.Parse(base)
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: u, jar: jar, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	t.Cleanup(b.c.CloseIdleConnections)
	return b
}

func (b *browser) do(method, path string) map[string]any {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base.String()+path, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		b.t.Fatalf("%s %s: %d, not JSON: %v", method, path, resp.StatusCode, err)
	}
	return m
}

// appSession is the session the app saw on GET /session.
func (b *browser) appSession() map[string]any {
	b.t.Helper()
	return b.do("GET", "/session")["session"].(map[string]any)
}

func (b *browser) cookie() string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == "session" {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(v string) {
	b.jar.SetCookies(b.base, []*http.Cookie{{Name: "session", Value: v, Path: "/"}})
}

// flaskLoads verifies the browser's cookie with Flask's own serializer
// and the secret, and returns the session it holds.
func flaskLoads(t *testing.T, secret, cookie string) map[string]any {
	t.Helper()
	cmd := exec.Command(python, "-c", `
import json, sys, flask
app = flask.Flask("check")
app.secret_key = sys.argv[1]
with app.app_context():
    s = app.session_interface.get_signing_serializer(app)
    print(json.dumps(s.loads(sys.argv[2], max_age=3600)))
`, secret, cookie)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Flask's serializer refused the cookie %q: %v\n%s", cookie, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return m
}

type sock struct {
	t  *testing.T
	ws *websocket.Conn
	in chan map[string]any
	id int
}

func (b *browser) dial() *sock {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(b.base.String(), "http") + "/hub/ws"
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: b.c})
	if err != nil {
		b.t.Fatalf("dial: %v", err)
	}
	if resp != nil {
		b.jar.SetCookies(b.base, resp.Cookies())
	}
	s := &sock{t: b.t, ws: ws, in: make(chan map[string]any, 64)}
	go func() {
		defer close(s.in)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				s.in <- map[string]any{"type": "closed", "code": float64(websocket.CloseStatus(err))}
				return
			}
			var m map[string]any
			_ = json.Unmarshal(data, &m)
			s.in <- m
		}
	}()
	b.t.Cleanup(func() { _ = ws.CloseNow() })
	return s
}

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
				s.t.Fatalf("socket closed while waiting for %s: %v", typ, m)
			}
		case <-timeout:
			s.t.Fatalf("no %s", typ)
		}
	}
}

// request sends a set and returns its ack or error.
func (s *sock) set(key string, value any) map[string]any {
	s.t.Helper()
	s.id++
	msg, _ := json.Marshal(map[string]any{"type": "set", "id": s.id, "key": key, "value": value})
	if err := s.ws.Write(context.Background(), websocket.MessageText, msg); err != nil {
		s.t.Fatal(err)
	}
	for {
		m := s.expect2("ack", "error")
		if m["id"] == float64(s.id) {
			return m
		}
	}
}

func (s *sock) expect2(a, b string) map[string]any {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.in:
			if m["type"] == a || m["type"] == b {
				return m
			}
			if m["type"] == "closed" {
				s.t.Fatalf("socket closed while waiting for %s/%s: %v", a, b, m)
			}
		case <-timeout:
			s.t.Fatalf("no %s/%s", a, b)
		}
	}
}

const secret = "flask-app-secret"

// TestFlaskApp runs the real Flask app behind the proxy: a socket write
// reaches the app's next request (a stale cookie too), the app's HTTP
// write reaches the open socket as a change, the browser cannot write
// user, the app's logout closes the socket with 4000, and the cookie the
// browser holds verifies with Flask's own serializer at every step.
func TestFlaskApp(t *testing.T) {
	needFlask(t)
	t.Parallel()
	app := startApp(t, "flaskapp.py", secret)
	px := startProxy(t, app, "")
	b := newBrowser(t, px.URL())

	b.do("POST", "/login?user=ada")
	if got := flaskLoads(t, secret, b.cookie()); got["user"] != "ada" {
		t.Fatalf("after login, Flask reads %v", got)
	}
	stale := b.cookie()
	s := b.dial()
	if w := s.expect("welcome"); w["values"].(map[string]any)["user"] != "ada" {
		t.Fatalf("welcome: %v", w)
	}
	if r := s.set("colour", "red"); r["type"] != "ack" {
		t.Fatalf("set colour: %v", r)
	}
	if got := b.appSession(); got["colour"] != "red" || got["user"] != "ada" {
		t.Fatalf("the app's next request saw %v", got)
	}
	if got := flaskLoads(t, secret, b.cookie()); got["colour"] != "red" || got["user"] != "ada" {
		t.Fatalf("after the socket write, Flask reads %v", got)
	}
	fresh := b.cookie()
	b.setCookie(stale)
	if got := b.appSession(); got["colour"] != "red" {
		t.Fatalf("with a stale cookie the app saw %v", got)
	}
	b.setCookie(fresh)
	if resp := b.do("GET", "/session"); resp["hub_session"] == nil || resp["hub_session"] == "" {
		t.Fatalf("no Sessionhub-Session header upstream: %v", resp)
	}

	// The app's HTTP write reaches the open socket as a change.
	b.do("POST", "/write?key=theme&value=dark")
	ch := s.expect("change")
	for ch["source"] == "ws" { // the socket's own write came first
		ch = s.expect("change")
	}
	if ch["source"] != "http" || !strings.Contains(mustJSON(t, ch["ops"]), `"theme"`) {
		t.Fatalf("change: %v", ch)
	}
	if got := flaskLoads(t, secret, b.cookie()); got["theme"] != "dark" || got["colour"] != "red" {
		t.Fatalf("after the app's write, Flask reads %v", got)
	}

	// The browser may not write user, nor a value Flask would read as a tag.
	if r := s.set("user", "admin"); r["type"] != "error" || r["code"] != "forbidden" {
		t.Fatalf("set user: %v", r)
	}
	if r := s.set("colour", map[string]any{" m": "<script>"}); r["type"] != "error" || r["code"] != "forbidden" {
		t.Fatalf("set a Markup tag: %v", r)
	}
	if got := b.appSession(); got["user"] != "ada" || got["colour"] != "red" {
		t.Fatalf("after the refused writes the app saw %v", got)
	}

	// Logout: the app clears its session, the socket closes with 4000.
	b.do("POST", "/logout")
	if m := s.expect("closed"); m["code"] != float64(4000) {
		t.Fatalf("after logout: %v", m)
	}
	if got := b.appSession(); len(got) != 0 {
		t.Fatalf("after logout the app saw %v", got)
	}
	// The stale cookie of the ended session does not bring it back.
	b.setCookie(fresh)
	if got := b.appSession(); len(got) != 0 {
		t.Fatalf("an ended session's cookie gave the app %v", got)
	}
}

// TestFlaskAppKeys: a cookie signed with another key is a new empty
// session; with the secrets rotated, a cookie signed with the old one
// still reaches the app (re-signed with the new one).
func TestFlaskAppKeys(t *testing.T) {
	needFlask(t)
	t.Parallel()
	const old = "old-secret"
	app := startApp(t, "flaskapp.py", secret)
	px := startProxy(t, app, "", secret, old)

	forged := newBrowser(t, px.URL())
	forged.setCookie(flaskDumps(t, "another-key", `{"user":"mallory"}`))
	if got := forged.appSession(); len(got) != 0 {
		t.Fatalf("a cookie of another key gave the app %v", got)
	}

	rotated := newBrowser(t, px.URL())
	rotated.setCookie(flaskDumps(t, old, `{"user":"ada"}`))
	if got := rotated.appSession(); got["user"] != "ada" {
		t.Fatalf("a cookie of the old secret gave the app %v", got)
	}
	s := rotated.dial()
	s.expect("welcome")
	if got := flaskLoads(t, secret, rotated.cookie()); got["user"] != "ada" {
		t.Fatalf("re-signed cookie: Flask reads %v", got)
	}
}

// flaskDumps signs a session with Flask's own serializer.
func flaskDumps(t *testing.T, key, data string) string {
	t.Helper()
	out, err := exec.Command(python, "-c", `
import json, sys, flask
app = flask.Flask("sign")
app.secret_key = sys.argv[1]
with app.app_context():
    print(app.session_interface.get_signing_serializer(app).dumps(json.loads(sys.argv[2])))
`, key, data).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestQuartApp runs the real Quart app behind the proxy: its own websocket
// route works through the proxy (with the session); Quart's caveat holds,
// a websocket route's write to session is lost (the next request does not
// see it, nor does an open hub socket); and the websocket route that
// stages the write with the server API instead, for the ID the proxy sent
// in Sessionhub-Session, reaches the app's next request and an open hub
// socket.
func TestQuartApp(t *testing.T) {
	needFlask(t)
	t.Parallel()
	const token = "quart-api-token"
	app := startApp(t, "quartapp.py", secret, "SESSIONHUB_API_TOKEN="+token)
	px := startProxy(t, app, token)
	b := newBrowser(t, px.URL())
	b.do("POST", "/login?user=ada")
	hubSock := b.dial()
	hubSock.expect("welcome")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(px.URL(), "http")
	echo, _, err := websocket.Dial(ctx, wsURL+"/ws/echo", &websocket.DialOptions{HTTPClient: b.c})
	if err != nil {
		t.Fatalf("the app's own websocket route through the proxy: %v", err)
	}
	defer echo.CloseNow()
	if err := echo.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := echo.Read(ctx); err != nil || string(got) != "echo hi user=ada" {
		t.Fatalf("echo: %q, %v", got, err)
	}

	// Quart's caveat: a session write during websocket handling is lost,
	// and Quart says so in its log when the handler returns.
	lost, _, err := websocket.Dial(ctx, wsURL+"/ws/colour-lost", &websocket.DialOptions{HTTPClient: b.c})
	if err != nil {
		t.Fatal(err)
	}
	defer lost.CloseNow()
	if err := lost.Write(ctx, websocket.MessageText, []byte("blue")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := lost.Read(ctx); err != nil || string(got) != "ok" {
		t.Fatalf("the app's direct session write: %q, %v", got, err)
	}
	app.log.wait("These modifications will be lost as a cookie cannot be set.")
	if got := b.appSession(); got["colour"] != nil || got["user"] != "ada" {
		t.Fatalf("after the direct write in a websocket handler the app's next request saw %v, want no colour", got)
	}

	// The solution: the server API, for the ID in Sessionhub-Session.
	ws, _, err := websocket.Dial(ctx, wsURL+"/ws/colour", &websocket.DialOptions{HTTPClient: b.c})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte("green")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ws.Read(ctx); err != nil || !strings.HasPrefix(string(got), "ok ") {
		t.Fatalf("the app's API write: %q, %v", got, err)
	}
	// The first change the hub socket gets is the server API's: the lost
	// write made none.
	if ch := hubSock.expect("change"); ch["source"] != "http" || !strings.Contains(mustJSON(t, ch["ops"]), `"green"`) {
		t.Fatalf("change: %v", ch)
	}
	if got := b.appSession(); got["colour"] != "green" || got["user"] != "ada" {
		t.Fatalf("the app's next request saw %v", got)
	}
	if got := flaskLoads(t, secret, b.cookie()); got["colour"] != "green" {
		t.Fatalf("Flask reads %v", got)
	}
}
