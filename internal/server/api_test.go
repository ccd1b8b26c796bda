package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// apiCall posts body to the server API with the Authorization header auth
// ("" for none) and returns the status and the decoded answer.
func apiCall(t *testing.T, s *Server, path, auth, body string) (int, map[string]any) {
	t.Helper()
	b := newBrowser(t, s.URL())
	req, err := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// The server API: a worker stages ops for a session (an open socket sees
// them as a change with source http, the next HTTP request folds them),
// pushes an event to every socket, and ends the session (4000). Without
// the token 401, a wrong one 403, bad bodies 400, big ones 413, and with
// no token configured the API is 404.
func TestServerAPI(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	s := startServer(t, func(c *Config) { c.APIToken = token })
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")
	snap, err := s.Store().Decode(b.cookie())
	if err != nil {
		t.Fatal(err)
	}
	id := snap.ID()
	base := "/hub/api/sessions/" + id
	bearer := "Bearer " + token

	status, m := apiCall(t, s, base+"/ops", bearer, `{"ops":[{"type":"set","key":"colour","value": "red"},{"type":"delete","key":"x"}]}`)
	if status != 200 || m["seq"].(float64) <= 0 {
		t.Fatalf("ops: %d %v", status, m)
	}
	ch := ws.expect("change")
	if ch["source"] != "http" || !strings.Contains(fmt.Sprint(mustJSON(t, ch["ops"])), `"value":"red"`) {
		t.Fatalf("change: %v", ch)
	}
	if _, v := b.doJSON("POST", "/hub/flush", ""); values(v)["colour"] != "red" {
		t.Fatalf("flush after the API write: %v", v)
	}

	if status, m := apiCall(t, s, base+"/push", bearer, `{"name":"notice","data":{"n":1}}`); status != 200 {
		t.Fatalf("push: %d %v", status, m)
	}
	if p := ws.expect("push"); p["name"] != "notice" {
		t.Fatalf("push: %v", p)
	}

	for _, tc := range []struct {
		name, path, auth, body string
		status                 int
		code                   string
	}{
		{"no token", base + "/ops", "", `{"ops":[]}`, 401, "unauthorized"},
		{"not bearer", base + "/ops", "Basic " + token, `{"ops":[]}`, 401, "unauthorized"},
		{"wrong token", base + "/ops", "Bearer nope", `{"ops":[]}`, 403, "forbidden"},
		{"token prefix", base + "/ops", "Bearer " + token[:4], `{"ops":[]}`, 403, "forbidden"},
		{"bad id", "/hub/api/sessions/xyz/ops", bearer, `{"ops":[{"type":"clear"}]}`, 400, "invalid"},
		{"no ops", base + "/ops", bearer, `{"ops":[]}`, 400, "invalid"},
		{"not JSON", base + "/ops", bearer, `{"ops":`, 400, "invalid"},
		{"unknown field", base + "/ops", bearer, `{"ops":[{"type":"clear"}],"x":1}`, 400, "invalid"},
		{"bad op", base + "/ops", bearer, `{"ops":[{"type":"set","key":"k"}]}`, 400, "invalid"},
		{"end op", base + "/ops", bearer, `{"ops":[{"type":"end"}]}`, 400, "invalid"},
		{"push without name", base + "/push", bearer, `{"data":1}`, 400, "invalid"},
		{"too large", base + "/ops", bearer, `{"ops":[{"type":"set","key":"k","value":"` + strings.Repeat("x", 70<<10) + `"}]}`, 413, "too_large"},
		{"unknown endpoint", base + "/nope", bearer, `{}`, 404, "not_found"},
	} {
		if status, m := apiCall(t, s, tc.path, tc.auth, tc.body); status != tc.status || errCode(m) != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, m, tc.status, tc.code)
		}
	}

	if status, m := apiCall(t, s, base+"/end", bearer, ``); status != 200 {
		t.Fatalf("end: %d %v", status, m)
	}
	if code := ws.closed(); code != 4000 {
		t.Fatalf("socket closed with %d, want 4000", code)
	}

	off := startServer(t, nil)
	if status, m := apiCall(t, off, base+"/ops", bearer, `{"ops":[{"type":"clear"}]}`); status != 404 || errCode(m) != "not_found" {
		t.Fatalf("API off: %d %v", status, m)
	}
}

// With NATS gone, a write answers 503 unavailable with Retry-After, not
// 500.
func TestServerAPIUnavailable(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *Config) { c.APIToken = "t" })
	s.ns.Shutdown()
	path := "/hub/api/sessions/" + strings.Repeat("ab", 16) + "/ops"
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.Options().WriteTimeout*4)
	defer cancel()
	for {
		status, m := apiCall(t, s, path, "Bearer t", `{"ops":[{"type":"set","key":"k","value":1}]}`)
		if status == http.StatusServiceUnavailable && errCode(m) == "unavailable" {
			return
		}
		if status != http.StatusOK || ctx.Err() != nil {
			t.Fatalf("without NATS: %d %v", status, m)
		}
	}
}

// The server API's refusals come from the code table: 401 with
// WWW-Authenticate, 405 with Allow, 415 for a body that is not JSON.
func TestServerAPIRefusals(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	s := startServer(t, func(c *Config) { c.APIToken = token })
	path := s.URL() + "/hub/api/sessions/0123456789abcdef0123456789abcdef/ops"
	for _, tc := range []struct {
		name, method, auth, ctype string
		status                    int
		code                      string
		header, value             string
	}{
		{"no token", "POST", "", "application/json", http.StatusUnauthorized, "unauthorized", "WWW-Authenticate", "Bearer"},
		{"GET", "GET", "Bearer " + token, "", http.StatusMethodNotAllowed, "method_not_allowed", "Allow", "POST"},
		{"not JSON", "POST", "Bearer " + token, "text/plain", http.StatusUnsupportedMediaType, "unsupported_media", "", ""},
	} {
		req, _ := http.NewRequest(tc.method, path, strings.NewReader(`{"ops":[]}`))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error struct{ Code string } }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s: %d %q, want %d %s", tc.name, resp.StatusCode, body.Error.Code, tc.status, tc.code)
		}
		if tc.header != "" && !strings.HasPrefix(resp.Header.Get(tc.header), tc.value) {
			t.Errorf("%s: %s %q, want %s", tc.name, tc.header, resp.Header.Get(tc.header), tc.value)
		}
	}
}
