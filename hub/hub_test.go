package hub_test

import (
	"testing"
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
