package hub_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/sessionhub/sessionhub/hub"
)

// TestLazySocketsCostNothing: sockets of sessions never written hold no
// view and no NATS subscription, on the instance of the handshake and on
// another one (a second tab); the session's first write, from a socket or
// from HTTP on another instance, reaches them, and so do a push, a logout
// and a login.
func TestLazySocketsCostNothing(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	ma, mb := &counting{}, &counting{}
	a := newInstance(t, ns, func(o *hub.Options) { o.Metrics = ma })
	b := newInstance(t, ns, func(o *hub.Options) { o.Metrics = mb })
	subsA, subsB := a.nc.NumSubscriptions(), b.nc.NumSubscriptions()

	const anonymous = 50
	for range anonymous {
		newClient(t).dial(a).expect("welcome")
	}
	// Second tabs on b of four sessions never written.
	tabs := make([]*client, 4)
	socks := make([][2]*sock, 4)
	for i := range tabs {
		c, sa, sb := twoTabs(t, a, b)
		tabs[i], socks[i] = c, [2]*sock{sa, sb}
	}
	if n := a.nc.NumSubscriptions() - subsA; n != 0 {
		t.Fatalf("%d handshakes of unwritten sessions made %d NATS subscriptions", anonymous+len(tabs), n)
	}
	if n := b.nc.NumSubscriptions() - subsB; n != 0 {
		t.Fatalf("second tabs of unwritten sessions made %d NATS subscriptions", n)
	}
	if na, nb := ma.views.Load(), mb.views.Load(); na+nb != 0 {
		t.Fatalf("handshakes of unwritten sessions opened %d + %d views", na, nb)
	}

	// 0: the first write from a socket on a reaches the tab on b.
	seq := socks[0][0].set("colour", "red")
	if m := socks[0][1].expect("change"); uint64(num(m["seq"])) != seq || opValue(m, "colour") != "red" {
		t.Fatalf("the second tab got %v", m)
	}
	if m := socks[0][0].expect("change"); opValue(m, "colour") != "red" {
		t.Fatalf("the writing tab got %v", m)
	}
	// ...and the next one too, both ways.
	socks[0][1].set("colour", "blue")
	if m := socks[0][0].expect("change"); opValue(m, "colour") != "blue" {
		t.Fatalf("the first tab got %v", m)
	}

	// 1: the first write over HTTP on a reaches both tabs.
	if st, _ := tabs[1].do(a, "POST", "/app/set?theme=dark", nil); st != http.StatusNoContent {
		t.Fatalf("set: %d", st)
	}
	for _, s := range socks[1] {
		if m := s.expect("change"); opValue(m, "theme") != "dark" {
			t.Fatalf("a tab got %v", m)
		}
	}

	// 2: a push reaches lazy sockets on both instances.
	id2 := sessionID(t, a.store, tabs[2].cookie(a))
	if err := a.hub.PushSession(context.Background(), id2, "hello", 1); err != nil {
		t.Fatal(err)
	}
	for _, s := range socks[2] {
		s.expect("push")
	}
	// A logout closes them with CloseSessionEnded.
	if st, _ := tabs[2].do(a, "POST", "/app/logout", nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	for _, s := range socks[2] {
		if m := s.expect("closed"); int(num(m["code"])) != int(hub.CloseSessionEnded) {
			t.Fatalf("after logout: %v", m)
		}
	}

	// 3: a login closes them with CloseSessionRotated.
	if st, _ := tabs[3].do(b, "POST", "/app/login?name=ann", nil); st != http.StatusNoContent {
		t.Fatalf("login: %d", st)
	}
	for _, s := range socks[3] {
		if m := s.expect("closed"); int(num(m["code"])) != int(hub.CloseSessionRotated) {
			t.Fatalf("after login: %v", m)
		}
	}
}

// opValue returns the value a change message sets key to.
func opValue(m map[string]any, key string) any {
	ops, _ := m["ops"].([]any)
	for _, o := range ops {
		if op, _ := o.(map[string]any); op["key"] == key {
			return op["value"]
		}
	}
	return nil
}
