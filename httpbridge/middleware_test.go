package httpbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

func setOp(key, value string) session.Op {
	return session.Op{Type: session.OpSet, Key: key, Value: json.RawMessage(value)}
}

// TestMiddlewarePlain: without a log the middleware is a signed cookie
// session: load, hand to the handler, save by the store's rules.
func TestMiddlewarePlain(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	var loads []error
	var mu sync.Mutex
	mw := httpbridge.Middleware(store, &httpbridge.Options{Logger: testLogger(t), OnLoad: func(r *http.Request, err error) {
		mu.Lock()
		defer mu.Unlock()
		loads = append(loads, err)
	}})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		switch r.URL.Path {
		case "/login":
			_ = s.Set("user", r.URL.Query().Get("user"))
		case "/whoami":
			fmt.Fprint(w, s.GetString("user"))
		case "/logout":
			s.End()
		case "/static":
		}
	}))
	do := func(path string, c *http.Cookie) *http.Response {
		r := get()
		r.URL.Path = path
		if path == "/login" {
			r.URL.RawQuery = "user=ada"
		}
		if c != nil {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		return roundTrip(h, r)
	}

	resp := do("/login", nil)
	c := sessionCookie(t, resp)
	if c == nil || resp.Header.Get("Vary") != "Cookie" {
		t.Fatalf("login: Set-Cookie %q, Vary %q", resp.Header.Values("Set-Cookie"), resp.Header.Get("Vary"))
	}
	resp = do("/whoami", c)
	if body, _ := io.ReadAll(resp.Body); string(body) != "ada" {
		t.Errorf("whoami = %q", body)
	}
	if sessionCookie(t, resp) != nil || resp.Header.Get("Vary") != "Cookie" {
		t.Errorf("read-only request: Set-Cookie %q, Vary %q", resp.Header.Values("Set-Cookie"), resp.Header.Get("Vary"))
	}
	resp = do("/static", c)
	if len(resp.Header.Values("Set-Cookie")) != 0 || resp.Header.Get("Vary") != "" {
		t.Errorf("request that ignores the session: %v", resp.Header)
	}
	resp = do("/logout", c)
	if del := sessionCookie(t, resp); del == nil || del.MaxAge >= 0 || del.Value != "" {
		t.Errorf("logout did not delete the cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	forged := *c
	forged.Value = strings.ToUpper(c.Value[:20]) + c.Value[20:]
	resp = do("/whoami", &forged)
	if body, _ := io.ReadAll(resp.Body); len(body) != 0 {
		t.Errorf("forged cookie read as %q", body)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(loads) != 5 || loads[0] != nil || loads[1] != nil || session.ReasonOf(loads[4]) != session.ReasonTampered {
		t.Errorf("OnLoad saw %v", loads)
	}
}

// TestCookieBeforeBody: the cookie is in the header whichever way the
// handler starts its response, over a real connection.
func TestCookieBeforeBody(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, s *session.Session)
		status  int
	}{
		{"Write", func(w http.ResponseWriter, s *session.Session) {
			_ = s.Set("k", 1)
			fmt.Fprint(w, "body")
		}, http.StatusOK},
		{"WriteHeader", func(w http.ResponseWriter, s *session.Session) {
			_ = s.Set("k", 1)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, "body")
		}, http.StatusCreated},
		{"Flush", func(w http.ResponseWriter, s *session.Session) {
			_ = s.Set("k", 1)
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "body")
		}, http.StatusOK},
		{"ResponseController", func(w http.ResponseWriter, s *session.Session) {
			_ = s.Set("k", 1)
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
			fmt.Fprint(w, "body")
		}, http.StatusOK},
		{"informational first", func(w http.ResponseWriter, s *session.Session) {
			w.WriteHeader(http.StatusEarlyHints) // 1xx: not the response header yet
			_ = s.Set("k", 1)
			fmt.Fprint(w, "body")
		}, http.StatusOK},
		{"no body", func(w http.ResponseWriter, s *session.Session) {
			_ = s.Set("k", 1)
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := httpbridge.Middleware(store, &httpbridge.Options{Logger: testLogger(t)})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.handler(w, httpbridge.FromContext(r.Context()))
			}))
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			c := sessionCookie(t, resp)
			if c == nil {
				t.Fatalf("no session cookie: %v", resp.Header)
			}
			if s, err := store.Decode(c.Value); err != nil || s.Len() != 1 {
				t.Errorf("cookie holds %v, %v", s.Values(), err)
			}
		})
	}
}

// TestModifyAfterHeader: a change made after the response header was
// written cannot reach the cookie (no second Set-Cookie, no panic); with a
// log it is appended there, so the next request folds it.
func TestModifyAfterHeader(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	log := newMemLog()
	for _, withLog := range []bool{false, true} {
		opts := &httpbridge.Options{Logger: testLogger(t)}
		if withLog {
			opts.Log = log
		}
		h := httpbridge.Middleware(store, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := httpbridge.FromContext(r.Context())
			fmt.Fprint(w, "body")
			_ = s.Set("late", 1)
			w.WriteHeader(http.StatusTeapot) // superfluous, ignored by net/http
			fmt.Fprint(w, " more")
		}))
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ErrorLog = slog.NewLogLogger(testLogger(t).Handler(), slog.LevelWarn)
		srv.Start()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "body more" {
			t.Errorf("log %v: %d %q", withLog, resp.StatusCode, body)
		}
		if n := len(resp.Header.Values("Set-Cookie")); n != 0 {
			t.Errorf("log %v: %d Set-Cookie after the header was sent", withLog, n)
		}
	}
	// With a log, the late change is not lost: it was appended, and the
	// next request folds it.
	total := 0
	log.set(func(l *memLog) {
		for _, ops := range l.ops {
			for _, op := range ops {
				if op.Key == "late" {
					total++
				}
			}
		}
	})
	if total != 1 {
		t.Fatalf("late change appended %d times, want 1", total)
	}
}

// TestFromContext: the handler's context carries the session; others do
// not.
func TestFromContext(t *testing.T) {
	t.Parallel()
	if httpbridge.FromContext(context.Background()) != nil {
		t.Error("FromContext of an empty context is not nil")
	}
	s := session.New()
	if httpbridge.FromContext(httpbridge.NewContext(context.Background(), s)) != s {
		t.Error("NewContext/FromContext lost the session")
	}
	var seen []*session.Session
	h := httpbridge.Middleware(newStore(t), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, httpbridge.FromContext(r.Context()))
		seen = append(seen, httpbridge.FromContext(r.Context()))
	}))
	roundTrip(h, get())
	roundTrip(h, get())
	if len(seen) != 4 || seen[0] == nil || seen[0] != seen[1] || seen[2] == seen[0] {
		t.Errorf("sessions seen: %p", seen)
	}
}

// TestMiddlewareLog covers the middleware's use of the log.
func TestMiddlewareLog(t *testing.T) {
	t.Parallel()
	store := newStore(t)

	// issue returns a cookie for a session that holds user=ada, already
	// appended to log (cookie at the entry's seq).
	issue := func(t *testing.T, log *memLog, extra func(s *session.Session)) (*http.Cookie, string) {
		t.Helper()
		var id string
		h := httpbridge.Middleware(store, &httpbridge.Options{Log: log, Logger: testLogger(t)})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := httpbridge.FromContext(r.Context())
			_ = s.Set("user", "ada")
			if extra != nil {
				extra(s)
			}
			id = s.ID()
		}))
		c := sessionCookie(t, roundTrip(h, get()))
		if c == nil {
			t.Fatal("no cookie issued")
		}
		return c, id
	}
	decode := func(t *testing.T, c *http.Cookie) *session.Session {
		t.Helper()
		if c == nil {
			t.Fatal("no cookie")
		}
		s, err := store.Decode(c.Value)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	serve := func(t *testing.T, log *memLog, c *http.Cookie, handler func(s *session.Session)) *http.Response {
		t.Helper()
		h := httpbridge.Middleware(store, &httpbridge.Options{Log: log, Logger: testLogger(t)})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handler(httpbridge.FromContext(r.Context()))
		}))
		return roundTrip(h, get(c))
	}

	t.Run("handler writes appended as one entry from http", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, func(s *session.Session) {
			_ = s.Set("theme", "dark")
			s.Delete("theme")
		})
		entries := log.entriesOf(id)
		if len(entries) != 1 || entries[0].source != "http" || len(entries[0].ops) != 3 {
			t.Fatalf("log entries: %+v", entries)
		}
		snap := decode(t, c)
		if snap.Seq() != entries[0].seq || snap.GetString("user") != "ada" || snap.Has("theme") {
			t.Errorf("cookie at seq %d (entry %d) holds %v", snap.Seq(), entries[0].seq, snap.Values())
		}
	})

	t.Run("read-only request appends nothing", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		resp := serve(t, log, c, func(s *session.Session) { s.GetString("user") })
		if n := len(log.entriesOf(id)); n != 1 {
			t.Errorf("%d entries after a read-only request", n)
		}
		if sessionCookie(t, resp) != nil {
			t.Error("read-only request rewrote an up-to-date cookie")
		}
	})

	t.Run("pending ops folded at request start", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		seq := log.write(t, id, setOp("theme", `"dark"`), session.Op{Type: session.OpDelete, Key: "user"})
		var sawTheme, sawUser string
		resp := serve(t, log, c, func(s *session.Session) {
			sawTheme, sawUser = s.GetString("theme"), s.GetString("user")
		})
		if sawTheme != "dark" || sawUser != "" {
			t.Errorf("handler saw theme %q user %q", sawTheme, sawUser)
		}
		// The cookie catches up, so the next request asks the log for
		// less.
		next := decode(t, sessionCookie(t, resp))
		if next.Seq() != seq || next.GetString("theme") != "dark" || next.Has("user") {
			t.Errorf("cookie after fold: seq %d (want %d) values %v", next.Seq(), seq, next.Values())
		}
		serve(t, log, sessionCookie(t, resp), func(*session.Session) {})
		log.mu.Lock()
		calls := log.pendingCalls
		log.mu.Unlock()
		if got := calls[len(calls)-1]; got != seq {
			t.Errorf("next request asked for ops after %d, want %d", got, seq)
		}
	})

	t.Run("interleaved writer keeps its keys", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		var otherSeq uint64
		log.set(func(l *memLog) {
			l.beforeAppend = func(id string) {
				// A socket writes between this request's load and its
				// append.
				otherSeq = log.write(t, id,
					setOp("theirs", `"socket"`),
					setOp("shared", `"socket"`),
					session.Op{Type: session.OpDelete, Key: "user"},
				)
			}
		})
		var during string
		resp := serve(t, log, c, func(s *session.Session) {
			_ = s.Set("mine", "http")
			_ = s.Set("shared", "http")
			during = s.GetString("user")
		})
		if during != "ada" {
			t.Fatalf("handler saw user %q before the other write", during)
		}
		entries := log.entriesOf(id)
		if len(entries) != 3 || entries[2].seq <= otherSeq || entries[2].source != "http" {
			t.Fatalf("log: %+v", entries)
		}
		got := decode(t, sessionCookie(t, resp))
		want := map[string]string{"mine": `"http"`, "theirs": `"socket"`, "shared": `"http"`}
		if got.Seq() != entries[2].seq || got.Len() != len(want) {
			t.Errorf("cookie at seq %d holds %v; want seq %d and %v", got.Seq(), got.Values(), entries[2].seq, want)
		}
		for k, v := range want {
			if raw, _ := got.Value(k); string(raw) != v {
				t.Errorf("%s = %s, want %s (the log order)", k, raw, v)
			}
		}
		// The cookie equals the log folded from scratch.
		replay := session.Snapshot{}.Fold(log.afterLocked(id, 0))
		if !sameValues(replay.Values, got.Values()) || replay.Seq != got.Seq() {
			t.Errorf("cookie %v differs from the log's fold %v", got.Values(), replay.Values)
		}
	})

	t.Run("concurrent requests lose no update", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		const n = 8
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(t, log, c, func(s *session.Session) { _ = s.Set(fmt.Sprint("k", i), i) })
			}()
		}
		wg.Wait()
		final := decode(t, sessionCookie(t, serve(t, log, c, func(s *session.Session) { s.MarkModified() })))
		for i := range n {
			if !final.Has(fmt.Sprint("k", i)) {
				t.Errorf("k%d lost: %v", i, final.Values())
			}
		}
		if len(log.entriesOf(id)) != n+1 {
			t.Errorf("%d entries, want %d", len(log.entriesOf(id)), n+1)
		}
	})

	t.Run("log down at load: the cookie alone", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		log.write(t, id, setOp("theme", `"dark"`))
		log.set(func(l *memLog) { l.pendingErr = errLogDown })
		var user, theme string
		resp := serve(t, log, c, func(s *session.Session) { user, theme = s.GetString("user"), s.GetString("theme") })
		if user != "ada" || theme != "" || resp.StatusCode != http.StatusOK {
			t.Errorf("with the log down the handler saw user %q theme %q (status %d)", user, theme, resp.StatusCode)
		}
	})

	t.Run("log down at append: changes kept in the cookie", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		log.set(func(l *memLog) { l.pendingErr, l.appendErr = errLogDown, errLogDown })
		resp := serve(t, log, c, func(s *session.Session) { _ = s.Set("cart", []int{1}) })
		got := decode(t, sessionCookie(t, resp))
		if got.GetString("user") != "ada" || !got.Has("cart") {
			t.Errorf("cookie after a failed append: %v", got.Values())
		}
		if len(log.entriesOf(id)) != 1 {
			t.Error("a failed append reached the log")
		}
		// A new session works too, as a plain cookie session.
		resp = serve(t, log, nil, func(s *session.Session) { _ = s.Set("user", "bob") })
		if got := decode(t, sessionCookie(t, resp)); got.GetString("user") != "bob" || got.Seq() != 0 {
			t.Errorf("new session with the log down: seq %d values %v", got.Seq(), got.Values())
		}
	})

	t.Run("logout: nothing appended, cookie deleted", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, id := issue(t, log, nil)
		resp := serve(t, log, c, func(s *session.Session) {
			_ = s.Set("ignored", 1)
			s.End()
		})
		if del := sessionCookie(t, resp); del == nil || del.MaxAge >= 0 {
			t.Errorf("logout: %q", resp.Header.Values("Set-Cookie"))
		}
		if len(log.entriesOf(id)) != 1 {
			t.Errorf("ended session appended: %+v", log.entriesOf(id))
		}
	})

	t.Run("logout then write: the new session has its own log", func(t *testing.T) {
		t.Parallel()
		log := newMemLog()
		c, old := issue(t, log, nil)
		var id string
		resp := serve(t, log, c, func(s *session.Session) {
			s.End()
			_ = s.Set("flash", "bye")
			id = s.ID()
		})
		if id == old || len(log.entriesOf(old)) != 1 || len(log.entriesOf(id)) != 1 {
			t.Fatalf("old %q: %d entries, new %q: %d entries", old, len(log.entriesOf(old)), id, len(log.entriesOf(id)))
		}
		got := decode(t, sessionCookie(t, resp))
		if got.ID() != id || got.Len() != 1 || got.GetString("flash") != "bye" {
			t.Errorf("cookie after logout and flash: %s %v", got.ID(), got.Values())
		}
	})
}

func sameValues(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

// enderLog is a memLog that records the End and Rotated calls, and what
// the client had received when each came.
type enderLog struct {
	*memLog
	rec   *httptest.ResponseRecorder
	calls []string
}

func (l *enderLog) End(_ context.Context, id string) error {
	l.calls = append(l.calls, fmt.Sprintf("end %s flushed=%v", id, l.rec.Flushed))
	return nil
}

func (l *enderLog) Rotated(_ context.Context, id string) error {
	l.calls = append(l.calls, fmt.Sprintf("rotated %s flushed=%v", id, l.rec.Flushed))
	return nil
}

// A handler that ends or rotates its session has the Log end or rotate the
// old IDs (an Ender: the hub closes their sockets), in order, once its
// response with the new cookie was flushed to the client; a session
// ended by folding another's logout is not ended again.
func TestMiddlewareRetiresIDsAfterTheResponse(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	log := &enderLog{memLog: newMemLog()}
	var first, second string
	h := httpbridge.Middleware(store, &httpbridge.Options{Log: log, Logger: testLogger(t)})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		switch r.URL.Path {
		case "/login":
			first = s.EnsureID()
			second = s.Rotate()
			if second != first {
				t.Errorf("Rotate returned %q, want the old ID %q", second, first)
			}
			second = s.ID()
			_ = s.Set("user", "ada")
		case "/logout":
			second = s.End()
		}
		_, _ = w.Write([]byte("ok"))
	}))
	log.rec = httptest.NewRecorder()
	h.ServeHTTP(log.rec, httptest.NewRequest("POST", "/login", nil))
	cookie := sessionCookie(t, log.rec.Result())
	log.rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/logout", nil)
	req.AddCookie(cookie)
	h.ServeHTTP(log.rec, req)
	want := []string{"rotated " + first + " flushed=true", "end " + second + " flushed=true"}
	if !slices.Equal(log.calls, want) {
		t.Fatalf("calls %q, want %q", log.calls, want)
	}

	// Another instance's logout, folded from the log, is not a new end.
	log.calls = nil
	log.write(t, second, session.Op{Type: session.OpEnd})
	log.rec = httptest.NewRecorder()
	h.ServeHTTP(log.rec, req)
	if len(log.calls) != 0 {
		t.Fatalf("folding an end op made calls %q", log.calls)
	}
}
