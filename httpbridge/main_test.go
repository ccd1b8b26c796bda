package httpbridge_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testKey = session.KeyPair{Hash: bytes.Repeat([]byte("k"), 64)}

func newStore(t testing.TB) *session.Store {
	t.Helper()
	st, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// testLogger routes the middleware's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// memLog is an in-memory httpbridge.Log with the contract of the hub's
// JetStream log: one sequence shared by every session (a stream), an
// append is one entry whose ops share a sequence number, and Append
// returns every op after the caller's version up to its own entry. The
// JetStream-backed log itself is tested by the hub package.
type memLog struct {
	mu      sync.Mutex
	seq     uint64
	ops     map[string][]session.Op
	entries []entry

	// Set by tests, read under mu.
	pendingErr error
	appendErr  error
	// beforeAppend runs at the start of Append, outside the lock: a test
	// makes another writer append there.
	beforeAppend func(id string)
	pendingCalls []uint64 // the after argument of each Pending call
}

type entry struct {
	id, source string
	seq        uint64
	ops        []session.Op
}

var _ httpbridge.Log = (*memLog)(nil)

var errLogDown = errors.New("memlog: unavailable")

func newMemLog() *memLog { return &memLog{ops: map[string][]session.Op{}} }

func (l *memLog) Pending(_ context.Context, id string, after uint64) ([]session.Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pendingCalls = append(l.pendingCalls, after)
	if l.pendingErr != nil {
		return nil, l.pendingErr
	}
	return l.afterLocked(id, after), nil
}

func (l *memLog) Append(ctx context.Context, id string, after uint64, ops []session.Op) ([]session.Op, error) {
	return l.appendFrom(ctx, id, "http", after, ops)
}

func (l *memLog) appendFrom(_ context.Context, id, source string, after uint64, ops []session.Op) ([]session.Op, error) {
	l.mu.Lock()
	hook := l.beforeAppend
	l.beforeAppend = nil
	l.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.appendErr != nil {
		return nil, l.appendErr
	}
	l.seq++
	e := entry{id: id, source: source, seq: l.seq}
	for _, op := range ops {
		if err := op.Validate(); err != nil {
			return nil, err
		}
		op.Seq = l.seq
		e.ops = append(e.ops, op)
	}
	l.ops[id] = append(l.ops[id], e.ops...)
	l.entries = append(l.entries, e)
	return l.afterLocked(id, after), nil
}

func (l *memLog) afterLocked(id string, after uint64) []session.Op {
	var out []session.Op
	for _, op := range l.ops[id] {
		if op.Seq > after {
			out = append(out, op)
		}
	}
	return out
}

// write appends ops for id as another writer (a socket) would.
func (l *memLog) write(t testing.TB, id string, ops ...session.Op) uint64 {
	t.Helper()
	got, err := l.appendFrom(context.Background(), id, "ws", 0, ops)
	if err != nil {
		t.Fatal(err)
	}
	return got[len(got)-1].Seq
}

func (l *memLog) entriesOf(id string) []entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(l.entries), func(e entry) bool { return e.id != id })
}

func (l *memLog) set(f func(l *memLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

// roundTrip serves one request through h with a recorder; the recorder
// keeps the header as it was when the handler first wrote, like a real
// connection.
func roundTrip(h http.Handler, r *http.Request) *http.Response {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func get(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for _, c := range cookies {
		if c == nil {
			continue
		}
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// sessionCookie returns the response's session cookie, or nil.
func sessionCookie(t testing.TB, resp *http.Response) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			if found != nil {
				t.Fatalf("two session cookies: %q", resp.Header.Values("Set-Cookie"))
			}
			found = c
		}
	}
	return found
}
