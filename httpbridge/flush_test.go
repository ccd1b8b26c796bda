package httpbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

// syncLog is a memLog that counts Sync calls.
type syncLog struct {
	*memLog
	syncs atomic.Int32
}

func (l *syncLog) Sync(context.Context, string, uint64) error {
	l.syncs.Add(1)
	return nil
}

// TestFlush covers the bridge endpoint.
func TestFlush(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	log := &syncLog{memLog: newMemLog()}
	readable := func(k string) bool { return !strings.HasPrefix(k, "secret") }

	// A session at seq 0 in the cookie, with ops staged since.
	s := session.New()
	_ = s.Set("user", "ada")
	_ = s.Set("secret_token", "t")
	h := http.Header{}
	if _, err := store.Save(h, s); err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{Header: h}
	cookie := sessionCookie(t, resp)
	seq := log.write(t, s.ID(), setOp("theme", `"dark"`))

	flush := httpbridge.Flush(store, &httpbridge.FlushOptions{Log: log, Readable: readable, Logger: testLogger(t), AllowedOrigins: []string{"app.example.com"}})
	post := func(c *http.Cookie, header ...string) *http.Response {
		r := httptest.NewRequest(http.MethodPost, "http://example.com/_session/flush", nil)
		if c != nil {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return roundTrip(flush, r)
	}
	errorCode := func(t *testing.T, resp *http.Response) string {
		t.Helper()
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("error body: %v", err)
		}
		return body.Error.Code
	}

	t.Run("folds the log into the cookie", func(t *testing.T) {
		resp := post(cookie, "Origin", "http://example.com")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, header %v", resp.StatusCode, resp.Header)
		}
		var body httpbridge.FlushResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.Seq != seq || len(body.Values) != 2 || string(body.Values["theme"]) != `"dark"` || string(body.Values["user"]) != `"ada"` {
			t.Errorf("body %+v: want seq %d, user and theme, no secret", body, seq)
		}
		got, err := store.Decode(sessionCookie(t, resp).Value)
		if err != nil || got.Seq() != seq || got.GetString("secret_token") != "t" {
			t.Errorf("flushed cookie: %v, %v", got, err)
		}
		if log.syncs.Load() == 0 {
			t.Error("Sync was not called")
		}
	})
	t.Run("allowed other origin", func(t *testing.T) {
		if resp := post(cookie, "Origin", "http://app.example.com"); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
		// The same host on another scheme than the page's is another origin.
		for _, o := range []string{"https://app.example.com", "https://example.com", "ftp://example.com"} {
			if resp := post(cookie, "Origin", o); resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %s: status %d", o, resp.StatusCode)
			}
		}
	})
	t.Run("no cookie: empty answer, no cookie", func(t *testing.T) {
		resp := post(nil)
		var body httpbridge.FlushResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Seq != 0 || len(body.Values) != 0 {
			t.Errorf("%d %+v %v", resp.StatusCode, body, err)
		}
		if sessionCookie(t, resp) != nil {
			t.Error("flush without a session set a cookie")
		}
	})
	t.Run("GET refused", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/_session/flush", nil)
		resp := roundTrip(flush, r)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost || errorCode(t, resp) != "method_not_allowed" {
			t.Errorf("GET: %d %v", resp.StatusCode, resp.Header)
		}
	})
	// Must run last: it breaks the log.
	defer t.Run("log unreadable: 503, the cookie untouched", func(t *testing.T) {
		log.mu.Lock()
		log.pendingErr = errors.New("nats: timeout")
		log.mu.Unlock()
		resp := post(cookie)
		if resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, resp) != "unavailable" || sessionCookie(t, resp) != nil {
			t.Errorf("flush with the log unreadable: %d %v: want 503 unavailable and no cookie (a 200 would claim every write is in the cookie)", resp.StatusCode, resp.Header)
		}
	})
	t.Run("cross-site refused", func(t *testing.T) {
		for _, h := range [][]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
			resp := post(cookie, h...)
			if resp.StatusCode != http.StatusForbidden || errorCode(t, resp) != "forbidden" || sessionCookie(t, resp) != nil {
				t.Errorf("%v: %d", h, resp.StatusCode)
			}
		}
	})
}
