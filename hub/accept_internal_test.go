package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessionhub/sessionhub/internal/protocol"
)

// A request that cannot become a socket is refused with a JSON error at
// its code's status, before any session, view or cookie is made for it.
func TestHandshakeRefusalsMakeNoSession(t *testing.T) {
	t.Parallel()
	h := internalHub(t)
	upgrade := func(r *http.Request) {
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	tests := []struct {
		name   string
		method string
		tweak  func(*http.Request)
		code   protocol.Code
		status int
		header []string // a response header and its value, when the refusal sets one
	}{
		{"post", "POST", upgrade, protocol.CodeMethodNotAllowed, http.StatusMethodNotAllowed, []string{"Allow", "GET"}},
		{"no upgrade", "GET", func(*http.Request) {}, protocol.CodeUpgradeRequired, http.StatusUpgradeRequired, []string{"Upgrade", "websocket"}},
		{"version 8", "GET", func(r *http.Request) { upgrade(r); r.Header.Set("Sec-WebSocket-Version", "8") }, protocol.CodeInvalid, http.StatusBadRequest, []string{"Sec-WebSocket-Version", "13"}},
		{"no version", "GET", func(r *http.Request) { upgrade(r); r.Header.Del("Sec-WebSocket-Version") }, protocol.CodeInvalid, http.StatusBadRequest, nil},
		{"no key", "GET", func(r *http.Request) { upgrade(r); r.Header.Del("Sec-WebSocket-Key") }, protocol.CodeInvalid, http.StatusBadRequest, nil},
		{"short key", "GET", func(r *http.Request) { upgrade(r); r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, protocol.CodeInvalid, http.StatusBadRequest, nil},
		{"not base64", "GET", func(r *http.Request) { upgrade(r); r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!=") }, protocol.CodeInvalid, http.StatusBadRequest, nil},
		{"cross-site", "GET", func(r *http.Request) { upgrade(r); r.Header.Set("Origin", "https://evil.example") }, protocol.CodeForbidden, http.StatusForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://app.example/hub/ws", nil)
			tt.tweak(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var body protocol.HTTPError
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q (%s): not a JSON error", w.Code, w.Body, w.Header().Get("Content-Type"))
			}
			if w.Code != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
				t.Fatalf("%d %+v, want %d %s", w.Code, body, tt.status, tt.code)
			}
			if tt.header != nil && w.Header().Get(tt.header[0]) != tt.header[1] {
				t.Fatalf("%s: %q, want %q", tt.header[0], w.Header().Get(tt.header[0]), tt.header[1])
			}
			if c := w.Header().Values("Set-Cookie"); len(c) != 0 {
				t.Fatalf("a refused handshake set a cookie: %q", c)
			}
		})
	}
	h.mu.Lock()
	n := len(h.views)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused handshakes left %d session views", n)
	}
	// While the hub shuts down, a handshake gets 503 unavailable.
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://app.example/hub/ws", nil)
	upgrade(r)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var sd protocol.HTTPError
	if err := json.Unmarshal(w.Body.Bytes(), &sd); err != nil || w.Code != http.StatusServiceUnavailable || sd.Error.Code != protocol.CodeUnavailable || len(w.Header().Values("Set-Cookie")) != 0 {
		t.Fatalf("handshake while shutting down: %d %s %q, want 503 unavailable and no cookie", w.Code, w.Body, w.Header().Values("Set-Cookie"))
	}
	// Under the prefix, anything else is a JSON 404.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://app.example/hub/other", nil))
	var nf protocol.HTTPError
	if err := json.Unmarshal(w.Body.Bytes(), &nf); err != nil || w.Code != http.StatusNotFound || nf.Error.Code != protocol.CodeNotFound {
		t.Fatalf("GET /hub/other: %d %s, want 404 not_found", w.Code, w.Body)
	}
}
