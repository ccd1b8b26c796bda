package session_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Fixed keys, so that failures are reproducible and seed cookies stay valid.
var (
	keyA = session.KeyPair{Hash: bytes.Repeat([]byte("a"), 64)}
	keyB = session.KeyPair{Hash: bytes.Repeat([]byte("b"), 64)}
	keyC = session.KeyPair{Hash: bytes.Repeat([]byte("c"), 64), Block: bytes.Repeat([]byte("C"), 32)}
)

// t0 is the test clock's start. Cookies carry a second-resolution issue time.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for the Now options.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newStore returns a store of opts (keyA and the test clock when unset).
func newStore(t testing.TB, opts session.Options) *session.Store {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = []session.KeyPair{keyA}
	}
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	st, err := session.NewStore(&opts)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return st
}

// saved is the outcome of one Store.Save.
type saved struct {
	decision session.Decision
	header   http.Header
	raw      string       // the Set-Cookie line, "" when none
	cookie   *http.Cookie // parsed from raw, nil when none
}

func (sv saved) vary() bool {
	for _, v := range sv.header.Values("Vary") {
		if v == "Cookie" {
			return true
		}
	}
	return false
}

// save runs st.Save on a fresh header and parses the Set-Cookie it wrote.
func save(t testing.TB, st *session.Store, s *session.Session) saved {
	t.Helper()
	h := http.Header{}
	d, err := st.Save(h, s)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	sv := saved{decision: d, header: h}
	switch lines := h.Values("Set-Cookie"); len(lines) {
	case 0:
	case 1:
		sv.raw = lines[0]
		c, err := http.ParseSetCookie(lines[0])
		if err != nil {
			t.Fatalf("ParseSetCookie(%q): %v", lines[0], err)
		}
		sv.cookie = c
	default:
		t.Fatalf("Save wrote %d Set-Cookie lines: %q", len(lines), lines)
	}
	return sv
}

// request returns a GET request carrying the cookie c (none when nil).
func request(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	if c != nil {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// load loads the session of a request carrying c and fails on any error.
func load(t testing.TB, st *session.Store, c *http.Cookie) *session.Session {
	t.Helper()
	s, err := st.Load(request(c))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// issue returns the cookie of a session holding values, written by st.
func issue(t testing.TB, st *session.Store, permanent bool, kv ...any) *http.Cookie {
	t.Helper()
	s := session.New()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := s.Set(kv[i].(string), kv[i+1]); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	s.SetPermanent(permanent)
	sv := save(t, st, s)
	if sv.cookie == nil {
		t.Fatalf("no cookie written (decision %v)", sv.decision)
	}
	return sv.cookie
}
