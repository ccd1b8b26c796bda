package hub_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/sessionhub/sessionhub/hub"
)

// The caveat itself: a socket set, acknowledged, reaches the cookie through
// the bridge, and a plain GET with only that cookie sees it.
func TestSocketWriteReachesCookie(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	c := newClient(t)
	s := c.dial(in)
	w := s.expect("welcome")
	if num(w["seq"]) != 0 || len(values(w)) != 0 {
		t.Fatalf("welcome of a new session: %v", w)
	}
	if c.cookie(in) == "" {
		t.Fatal("the 101 response set no session cookie")
	}
	seq := s.set("colour", "blue")
	if seq == 0 {
		t.Fatal("ack without seq")
	}
	ch := s.expect("change")
	if uint64(num(ch["seq"])) != seq || ch["source"] != "ws" {
		t.Fatalf("change: %v", ch)
	}

	status, body := c.do(in, "POST", "/hub/flush", nil)
	if status != 200 || uint64(num(body["seq"])) != seq || values(body)["colour"] != "blue" {
		t.Fatalf("flush: %d %v", status, body)
	}
	// Only the cookie, a new client: no socket, no jar history.
	other := newClient(t)
	other.setCookie(in, c.cookie(in))
	_, got := other.do(in, "GET", "/app/get", nil)
	if values(got)["colour"] != `"blue"` && values(got)["colour"] != "blue" {
		t.Fatalf("GET with the flushed cookie: %v", got)
	}
}

// A stale cookie replayed after newer flushes still folds to the full
// state, and a flush response the client never stored loses nothing.
func TestStaleCookieConverges(t *testing.T) {
	t.Parallel()
	in, c, s := oneTab(t, nil)
	stale := c.cookie(in)

	s.set("colour", "blue")
	if st, _ := c.do(in, "POST", "/hub/flush", nil); st != 200 {
		t.Fatalf("flush: %d", st)
	}
	afterFirst := c.cookie(in)
	s.set("note", "second")
	if st, _ := c.do(in, "POST", "/hub/flush", nil); st != 200 {
		t.Fatalf("flush: %d", st)
	}
	s.set("colour", "green")
	// This flush's response is lost: the client keeps its old cookie.
	lost := c.cookie(in)
	if st, _ := c.do(in, "POST", "/hub/flush", nil); st != 200 {
		t.Fatalf("flush: %d", st)
	}
	want := map[string]any{"colour": "green", "note": "second"}
	for name, ck := range map[string]string{"handshake cookie": stale, "first flush": afterFirst, "dropped flush response": lost} {
		other := newClient(t)
		other.setCookie(in, ck)
		_, got := other.do(in, "GET", "/app/get", nil)
		for k, v := range want {
			if values(got)[k] != v {
				t.Errorf("%s: %s = %v, want %v (got %v)", name, k, values(got)[k], v, got)
			}
		}
		// And through the bridge, which writes the caught-up cookie.
		_, body := other.do(in, "POST", "/hub/flush", nil)
		if values(body)["colour"] != "green" || values(body)["note"] != "second" {
			t.Errorf("%s: flush = %v", name, body)
		}
	}
}

// Concurrent HTTP requests (all with the same, increasingly stale cookie)
// and socket writes to different keys: none is lost.
func TestConcurrentHTTPAndSocketWrites(t *testing.T) {
	t.Parallel()
	in, c, s := oneTab(t, func(o *hub.Options) { o.RateLimit, o.RateBurst = 1000, 1000 })
	ck := c.cookie(in)

	const httpWriters, socketWrites = 20, 40
	var wg sync.WaitGroup
	errs := make(chan error, httpWriters)
	for i := range httpWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/app/set?k%02d=v%d", in.srv.URL, i, i), nil)
			req.AddCookie(&http.Cookie{Name: "session", Value: ck})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	for i := range socketWrites {
		s.set("note", fmt.Sprintf("n%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	other := newClient(t)
	other.setCookie(in, ck)
	_, got := other.do(in, "GET", "/app/get", nil)
	vals := values(got)
	for i := range httpWriters {
		if k := fmt.Sprintf("k%02d", i); vals[k] != fmt.Sprintf("v%d", i) {
			t.Errorf("%s = %v: an HTTP write was lost", k, vals[k])
		}
	}
	if vals["note"] != fmt.Sprintf("n%d", socketWrites-1) {
		t.Errorf("note = %v, want the last socket write", vals["note"])
	}
}

// Two hub instances on one NATS: a set on a socket at A arrives as a
// change on a socket of the same session at B, B's bridge returns it, and
// it survives A being killed right after the ack.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b) // the second tab lands on B

	seq := sa.set("colour", "teal")
	ch := sb.expect("change")
	if uint64(num(ch["seq"])) != seq || ch["source"] != "ws" {
		t.Fatalf("change at B: %v", ch)
	}
	if _, body := c.do(b, "POST", "/hub/flush", nil); values(body)["colour"] != "teal" {
		t.Fatalf("flush at B: %v", body)
	}
	// With the client's seq, B's view answers without a round trip.
	seqB := sa.set("colour", "olive")
	if _, body := c.do(b, "POST", fmt.Sprintf("/hub/flush?seq=%d", seqB), nil); values(body)["colour"] != "olive" || uint64(num(body["seq"])) != seqB {
		t.Fatalf("flush at B with seq: %v", body)
	}

	// Kill A right after an ack: its HTTP server, hub and NATS connection.
	seq2 := sa.set("note", "after-kill")
	a.srv.CloseClientConnections()
	a.nc.Close()
	a.stop()
	_, body := c.do(b, "POST", "/hub/flush", nil)
	if values(body)["note"] != "after-kill" || uint64(num(body["seq"])) < seq2 {
		t.Fatalf("flush at B after A died: %v", body)
	}
}

// HTTP writes reach open sockets live, with source http.
func TestHTTPWritesReachSockets(t *testing.T) {
	t.Parallel()
	in, c, s := oneTab(t, nil)
	if st, _ := c.do(in, "POST", "/app/set?colour=navy&user_id=42", nil); st != http.StatusNoContent {
		t.Fatalf("status %d", st)
	}
	ch := s.expect("change")
	if ch["source"] != "http" {
		t.Fatalf("source: %v", ch)
	}
	ops, _ := ch["ops"].([]any)
	if len(ops) != 1 || ops[0].(map[string]any)["key"] != "colour" {
		t.Fatalf("ops (user_id must be left out): %v", ops)
	}
}
