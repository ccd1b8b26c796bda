package hub_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sessionhub/sessionhub/hub"
)

// PushSession reaches every socket of the session on every instance, the
// pusher's and another's, exactly once each, and no other session's.
func TestPushSession(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	oc := newClient(t)
	other := oc.dial(a)
	other.expect("welcome")
	id := sessionID(t, a.store, c.cookie(a))
	if err := a.hub.PushSession(context.Background(), id, "notice", map[string]string{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	if err := a.hub.PushSession(context.Background(), id, "second", 2); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*sock{"A": sa, "B": sb} {
		if m := s.expect("push"); m["name"] != "notice" || m["data"].(map[string]any)["text"] != "hi" {
			t.Errorf("%s: %v", name, m)
		}
		// The next push follows directly: the first came once only.
		if m := s.expect("push"); m["name"] != "second" {
			t.Errorf("%s: %v", name, m)
		}
	}
	if err := a.hub.PushSession(context.Background(), sessionID(t, a.store, c.cookie(a)), "", nil); !errors.Is(err, hub.ErrInvalid) {
		t.Fatalf("no name: %v", err)
	}
	if err := a.hub.PushSession(context.Background(), "nope", "x", nil); !errors.Is(err, hub.ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	// The other session's first message is its own push, not theirs.
	if err := b.hub.PushSession(context.Background(), sessionID(t, a.store, oc.cookie(a)), "own", nil); err != nil {
		t.Fatal(err)
	}
	if m := other.expect("push"); m["name"] != "own" {
		t.Fatalf("another session got %v", m)
	}
}
