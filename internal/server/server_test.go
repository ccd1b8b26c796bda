package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/testtls"
	"github.com/sessionhub/sessionhub/session"
	"github.com/sessionhub/sessionhub/web"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	status, body := b.doJSON("GET", "/healthz", "")
	if status != http.StatusOK || body["status"] != "ok" || body["jetstream"] != "ok" {
		t.Fatalf("healthz: %d %v", status, body)
	}
	if body["nats"] != "embedded, connected" || body["durability"] != "default" {
		t.Fatalf("healthz: %v", body)
	}
	// The in-process connection's writes take no deadline (a timer per
	// publish); the shutdown below still ends them.
	if d := s.nc.Opts.FlusherTimeout; d != 0 {
		t.Errorf("embedded connection's flusher timeout %v, want none", d)
	}

	// NATS gone: 503 with a JSON body, and the page still renders (a plain
	// cookie session).
	s.ns.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body = b.doJSON("GET", "/healthz", "")
		if status == http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Fatalf("healthz without NATS: %d %v", status, body)
	}
	if st, _, page := b.do("GET", "/", "", ""); st != http.StatusOK || !strings.Contains(string(page), `id="colour-value"`) {
		t.Fatalf("page without NATS: %d", st)
	}
}

func TestMetricsFamilies(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	// Some traffic: a page, a socket write, a flush.
	b.do("GET", "/", "", "")
	ws := b.dial()
	ws.expect("welcome")
	if r := ws.request(map[string]any{"type": "set", "key": "colour", "value": "red"}); r["type"] != "ack" {
		t.Fatalf("set: %v", r)
	}
	if r := ws.request(map[string]any{"type": "set", "key": "name", "value": "x"}); r["code"] != "forbidden" {
		t.Fatalf("set name: %v", r)
	}
	if st, _ := b.doJSON("POST", "/hub/flush", ""); st != http.StatusOK {
		t.Fatalf("flush: %d", st)
	}
	status, _, data := b.do("GET", "/metrics", "", "")
	if status != http.StatusOK {
		t.Fatalf("metrics: %d", status)
	}
	text := string(data)
	for _, family := range []string{
		"sessionhub_sockets_open 1",
		"sessionhub_sockets_closed_total",
		"sessionhub_session_views_open",
		"sessionhub_sessions_viewed_total",
		`sessionhub_ops_staged_total{source="ws"} 1`,
		`sessionhub_ack_latency_seconds_bucket{source="ws"`,
		`sessionhub_errors_total{code="forbidden"} 1`,
		"sessionhub_changes_delivered_total",
		`sessionhub_http_request_duration_seconds_count{handler="flush"} 1`,
		`sessionhub_http_requests_total{code="200",handler="page",method="GET"} 1`,
		`sessionhub_http_requests_total{code="200",handler="flush",method="POST"} 1`,
		`sessionhub_http_request_duration_seconds_bucket{handler="page"`,
		"sessionhub_cookies_refused_total",
		"go_goroutines",
	} {
		if !strings.Contains(text, family) {
			t.Errorf("metrics lack %q", family)
		}
	}
}

// A change made over the socket reaches the cookie through the bridge: a
// reload renders it, and the body carries the version.
func TestSocketWriteRendersAfterReload(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	st, _, page := b.do("GET", "/", "", "")
	if st != http.StatusOK || !strings.Contains(string(page), `<body data-seq="0">`) {
		t.Fatalf("first page: %d %s", st, page)
	}
	ws := b.dial()
	ws.expect("welcome")
	ack := ws.request(map[string]any{"type": "set", "key": "colour", "value": "rebeccapurple"})
	seq := int(ack["seq"].(float64))
	if _, body := b.doJSON("POST", "/hub/flush", ""); int(body["seq"].(float64)) != seq {
		t.Fatalf("flush: %v", body)
	}
	// A new browser with only the flushed cookie (no log folding needed).
	other := newBrowser(t, s.URL())
	u := mustURL(t, s.URL())
	other.jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: b.cookie(), Path: "/"}})
	_, _, page = other.do("GET", "/", "", "")
	for _, want := range []string{`<span id="colour-value">rebeccapurple</span>`, `data-seq="` + itoa(seq) + `"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if _, view := other.doJSON("GET", "/api/session", ""); values(view)["colour"] != "rebeccapurple" {
		t.Errorf("api/session: %v", view)
	}
}

func TestSettingsAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	b.do("GET", "/", "", "")
	ws := b.dial()
	ws.expect("welcome")

	for _, tc := range []struct {
		name, body, code string
	}{
		{"invalid JSON", `{"colour":`, "invalid_json"},
		{"not an object", `["colour"]`, "invalid_json"},
		{"null body", `null`, "invalid_json"},
		{"unknown key", `{"user_id":"admin"}`, "unknown_key"},
		{"read-only key", `{"name":"admin"}`, "unknown_key"},
		{"bad colour", `{"colour":"blurple"}`, "invalid_value"},
		{"bad theme", `{"theme":"sepia"}`, "invalid_value"},
		{"bad language", `{"language":"en_US"}`, "invalid_value"},
		{"bad notifications", `{"notifications":"yes"}`, "invalid_value"},
		{"one bad among good", `{"colour":"red","theme":"nope"}`, "invalid_value"},
	} {
		status, body := b.doJSON("POST", "/api/settings", tc.body)
		e, _ := body["error"].(map[string]any)
		if status != http.StatusBadRequest || e["code"] != tc.code {
			t.Errorf("%s: %d %v, want 400 %s", tc.name, status, body, tc.code)
		}
	}
	// Nothing of the refused requests was written.
	if _, view := b.doJSON("GET", "/api/session", ""); len(values(view)) != 0 {
		t.Fatalf("refused settings were written: %v", view)
	}

	status, body := b.doJSON("POST", "/api/settings", `{"colour":"#00AA11","theme":"dark","language":"pt-BR","notifications":true}`)
	if status != http.StatusOK || values(body)["theme"] != "dark" || values(body)["notifications"] != true {
		t.Fatalf("settings: %d %v", status, body)
	}
	// The open socket sees the HTTP write live, as one change.
	ch := ws.expect("change")
	if ch["source"] != "http" || len(ch["ops"].([]any)) != 4 || ch["seq"] != body["seq"] {
		t.Fatalf("change: %v (settings answered %v)", ch, body)
	}
	// null deletes.
	if _, body := b.doJSON("POST", "/api/settings", `{"theme":null}`); values(body)["theme"] != nil || values(body)["colour"] != "#00AA11" {
		t.Fatalf("delete: %v", body)
	}
	// Cross-site posts are refused.
	req, _ := http.NewRequest("POST", s.URL()+"/api/settings", strings.NewReader(`{"theme":"light"}`))
	req.Header.Set("Origin", "https://evil.example")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site settings: %d", resp.StatusCode)
	}
}

func TestLoginRotatesAndLogoutEnds(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	b.do("GET", "/", "", "")
	ws := b.dial()
	ws.expect("welcome")
	ws.request(map[string]any{"type": "set", "key": "colour", "value": "teal"})
	oldCookie := b.cookie()
	oldID := decodeID(t, s, oldCookie)

	if st, body := b.doJSON("POST", "/login", `{"name":""}`); st != http.StatusBadRequest {
		t.Fatalf("empty name: %d %v", st, body)
	}
	status, body := b.doJSON("POST", "/login", `{"name":"Ana"}`)
	if status != http.StatusOK || values(body)["name"] != "Ana" || values(body)["colour"] != "teal" {
		t.Fatalf("login: %d %v", status, body)
	}
	if code := ws.closed(); code != 4100 {
		t.Fatalf("old socket closed with %d, want 4100", code)
	}
	newID := decodeID(t, s, b.cookie())
	if newID == oldID {
		t.Fatal("login kept the session ID")
	}
	// The new cookie's socket belongs to the new session and sees its values.
	ws2 := b.dial()
	w := ws2.expect("welcome")
	if values(w)["name"] != "Ana" || values(w)["colour"] != "teal" {
		t.Fatalf("welcome after login: %v", w)
	}
	// A form login redirects to the page.
	if st, hdr, _ := b.do("POST", "/login", "application/x-www-form-urlencoded", "name=Bea"); st != http.StatusOK || hdr.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("form login: %d %v", st, hdr)
	}
	if code := ws2.closed(); code != 4100 {
		t.Fatalf("socket closed with %d after the second login, want 4100", code)
	}
	ws3 := b.dial()
	ws3.expect("welcome")
	other := b.dial() // a second tab
	other.expect("welcome")

	status, hdr, data := b.do("POST", "/logout", "application/json", "{}")
	if status != http.StatusOK || !strings.Contains(string(data), `"ended":true`) {
		t.Fatalf("logout: %d %s", status, data)
	}
	if sc := hdr.Get("Set-Cookie"); !strings.Contains(sc, "session=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout did not delete the cookie: %q", sc)
	}
	for _, sk := range []*sock{ws3, other} {
		if code := sk.closed(); code != 4000 {
			t.Fatalf("socket closed with %d after logout, want 4000", code)
		}
	}
	if b.cookie() != "" {
		t.Fatal("cookie still in the jar after logout")
	}
}

// Shutdown closes sockets with 1001 and stops within its bound.
func TestShutdownClosesSockets(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if code := ws.closed(); code != 1001 {
		t.Fatalf("socket closed with %d, want 1001", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if !s.nc.IsClosed() {
		t.Fatal("NATS connection still open")
	}
	if err := s.Shutdown(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
}

// The server restarts on the same data directory and port (in strict
// durability): acknowledged changes survive, and a generated key is reused.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	strict := func(c *Config) { c.DataDir, c.Keys, c.Durability = dir, "", natsserver.DurabilityStrict }
	s1 := startServer(t, strict)
	keys, err := os.Stat(filepath.Join(dir, KeysFileName))
	if err != nil {
		t.Fatal(err)
	}
	if keys.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v", keys.Mode().Perm())
	}
	b := newBrowser(t, s1.URL())
	b.do("GET", "/", "", "")
	ws := b.dial()
	ws.expect("welcome")
	ws.request(map[string]any{"type": "set", "key": "language", "value": "pt-BR"})
	addr := s1.Addr().String()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, func(c *Config) { strict(c); c.Addr = addr })
	if s2.URL() != s1.URL() {
		t.Fatalf("restarted at %s, want %s", s2.URL(), s1.URL())
	}
	// The cookie (never flushed) still verifies and the log still holds
	// the change.
	_, view := b.doJSON("GET", "/api/session", "")
	if values(view)["language"] != "pt-BR" {
		t.Fatalf("after restart: %v", view)
	}
	if _, health := b.doJSON("GET", "/healthz", ""); health["durability"] != "strict" {
		t.Fatalf("healthz: %v", health)
	}
}

func TestListeningMessage(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.Keys, cfg.LogJSON = "127.0.0.1:0", t.TempDir(), FormatKey(testKey), true
	s := New(cfg, NewLogger(&buf, &cfg))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := regexp.MustCompile(ListeningMessage + `(http://[^\s"]+)`).FindStringSubmatch(buf.String())
	if m == nil || m[1] != s.URL() || strings.HasSuffix(m[1], ":0") {
		t.Fatalf("log %q lacks the listening line with %s", buf.String(), s.URL())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(buf.String(), "\n", 2)[0]), &line); err != nil {
		t.Fatalf("-log-json wrote %q: %v", buf.String(), err)
	}
}

func decodeID(t *testing.T, s *Server, cookie string) string {
	t.Helper()
	sess, err := s.Store().Decode(cookie)
	if err != nil {
		t.Fatalf("cookie: %v", err)
	}
	return sess.ID()
}

// With -nats the server uses the external servers and leaves them running.
func TestExternalNATS(t *testing.T) {
	t.Parallel()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	s := startServer(t, func(c *Config) { c.NATS = []string{ns.ClientURL()} })
	if s.ns != nil {
		t.Fatal("an embedded server was started")
	}
	if d := s.nc.Opts.FlusherTimeout; d != nats.DefaultFlusherTimeout {
		t.Errorf("external connection's flusher timeout %v, want nats.go's %v", d, nats.DefaultFlusherTimeout)
	}
	b := newBrowser(t, s.URL())
	if _, body := b.doJSON("GET", "/healthz", ""); body["status"] != "ok" || body["nats"] != "external, connected" {
		t.Fatalf("healthz: %v", body)
	}
	ws := b.dial()
	ws.expect("welcome")
	if r := ws.request(map[string]any{"type": "set", "key": "theme", "value": "light"}); r["type"] != "ack" {
		t.Fatalf("set: %v", r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !ns.Running() {
		t.Fatal("the external NATS server was shut down")
	}
}

// A server that cannot reach its NATS servers does not start.
func TestExternalNATSUnreachable(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.Keys = "127.0.0.1:0", t.TempDir(), FormatKey(testKey)
	cfg.NATS = []string{"nats://127.0.0.1:1"}
	s := New(cfg, testLogger(t))
	err := s.Start(context.Background())
	if err == nil {
		s.Close()
		t.Fatal("started without NATS")
	}
	if !strings.Contains(err.Error(), "nats://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

// TestAppRoutes: with an App, the server serves the browser client at
// /hub/sessionhub.js (the file of web.FS), health and metrics under
// /hub/, and every other path is the app's.
func TestAppRoutes(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.Keys = "127.0.0.1:0", t.TempDir(), FormatKey(testKey)
	cfg.MetricsToken = "metrics-secret" // the proxy's /hub/metrics honours it too
	app := &App{Handler: func(*session.Store, *hub.Hub) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "app "+r.URL.Path)
		}), nil
	}}
	s := NewApp(cfg, app, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b := newBrowser(t, s.URL())

	want, err := fs.ReadFile(web.FS(), "sessionhub.js")
	if err != nil {
		t.Fatal(err)
	}
	status, h, body := b.do("GET", "/hub/sessionhub.js", "", "")
	if status != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET /hub/sessionhub.js: %d, %d bytes, want 200 and web's sessionhub.js (%d bytes)", status, len(body), len(want))
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("GET /hub/sessionhub.js: Content-Type %q, want text/javascript (a module script needs it)", ct)
	}
	if status, body := b.doJSON("GET", "/hub/healthz", ""); status != http.StatusOK || body["status"] != "ok" {
		t.Errorf("GET /hub/healthz: %d %v", status, body)
	}
	if status, _, _ := b.do("GET", "/hub/metrics", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /hub/metrics without the metrics token: %d, want 401", status)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/hub/metrics", nil)
	req.Header.Set("Authorization", "Bearer metrics-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(mbody), "# TYPE") {
		t.Errorf("GET /hub/metrics: %d %.200s", resp.StatusCode, mbody)
	}
	for _, path := range []string{"/", "/healthz", "/static/sessionhub.js"} {
		if status, _, body := b.do("GET", path, "", ""); status != http.StatusOK || string(body) != "app "+path {
			t.Errorf("GET %s: %d %q, want the app's", path, status, body)
		}
	}
}

// A real deployment's NATS: TLS with verified client certificates and a
// user whose password comes from the environment, configured through the
// flags and environment variables.
func TestExternalNATSWithTLSAndAuth(t *testing.T) {
	t.Parallel()
	certs, err := testtls.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := testtls.StartNATS(t.TempDir(), certs, func(o *server.Options) {
		o.Users = []*server.User{{Username: "hub", Password: "pa55"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	for _, tc := range []struct {
		name, password, wantErr string
	}{
		{name: "right password", password: "pa55"},
		{name: "wrong password", password: "guess", wantErr: "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// With the right password, a dead server first; with the wrong
			// one, only the live server, whose refusal is then the error.
			urls := "nats://127.0.0.1:1," + ns.ClientURL()
			if tc.wantErr != "" {
				urls = ns.ClientURL()
			}
			args := []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-nats", urls,
				"-nats-tls-cert", certs.ClientCert, "-nats-tls-key", certs.ClientKey}
			env := map[string]string{
				"SESSIONHUB_KEYS": FormatKey(testKey), "SESSIONHUB_NATS_USER": "hub", "SESSIONHUB_NATS_TLS_CA": certs.CA,
				"SESSIONHUB_NATS_PASSWORD": tc.password,
			}
			cfg, _, err := ParseConfig("sessionhub", args, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			s := New(cfg, testLogger(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = s.Start(ctx)
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("started with a wrong password")
				}
				if !strings.Contains(strings.ToLower(err.Error()), tc.wantErr) || strings.Contains(err.Error(), tc.password) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b := newBrowser(t, s.URL())
			if _, body := b.doJSON("GET", "/healthz", ""); body["status"] != "ok" {
				t.Fatalf("healthz: %v", body)
			}
			ws := b.dial()
			ws.expect("welcome")
			if r := ws.request(map[string]any{"type": "set", "key": "theme", "value": "dark"}); r["type"] != "ack" {
				t.Fatalf("set: %v", r)
			}
		})
	}
}
