package hub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
)

// A reconnecting socket resumes: every change after its last seq, in
// order, then resumed.
func TestResume(t *testing.T) {
	t.Parallel()
	in, c, s := oneTab(t, nil)
	first := s.set("colour", "red")
	_ = s.ws.CloseNow()

	// Written while the first socket is gone.
	w := c.dial(in)
	w.expect("welcome")
	second := w.set("colour", "green")
	third := w.set("note", "hello")

	r := c.dial(in)
	welcome := r.expect("welcome")
	if uint64(num(welcome["seq"])) != third || values(welcome)["colour"] != "green" {
		t.Fatalf("welcome after reconnect: %v", welcome)
	}
	r.send(map[string]any{"type": "resume", "after": first})
	var got []uint64
	for {
		m := r.next()
		if m["type"] == "resumed" {
			if uint64(num(m["seq"])) != third {
				t.Fatalf("resumed: %v", m)
			}
			break
		}
		if m["type"] == "change" {
			got = append(got, uint64(num(m["seq"])))
		}
	}
	if len(got) != 2 || got[0] != second || got[1] != third {
		t.Fatalf("replayed %v, want [%d %d]", got, second, third)
	}
}

// Resume beyond the view's tail reads JetStream.
func TestResumeFromJetStream(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.ViewTail = 2; o.RateLimit, o.RateBurst = 1000, 1000 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	var seqs []uint64
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		seqs = append(seqs, s.set("colour", v))
	}
	s.send(map[string]any{"type": "resume", "after": 0})
	var got []uint64
	for {
		m := s.next()
		if m["type"] == "resumed" {
			break
		}
		if m["type"] == "change" && len(got) < 10 {
			got = append(got, uint64(num(m["seq"])))
		}
	}
	// The live changes come first (5), then the replay (5).
	replay := got[len(got)-5:]
	for i := range seqs {
		if replay[i] != seqs[i] {
			t.Fatalf("replay %v, want %v", replay, seqs)
		}
	}
}

// When the log no longer holds the changes asked for (aged out of the
// retention window), resume answers reset with the whole state.
func TestResumeReset(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.Retention = time.Second; o.ViewTail = 1 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	s.set("colour", "old")
	waitAgedOut(t, in)
	s.set("colour", "new")
	s.set("note", "n")
	s.send(map[string]any{"type": "resume", "after": 0})
	m := s.expect("reset")
	if values(m)["colour"] != "new" || values(m)["note"] != "n" {
		t.Fatalf("reset: %v", m)
	}
}

// A Go event handler writes the session (any key) and replies.
func TestEventHandlerWrites(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	in.hub.Handle("promote", func(ctx context.Context, ev *hub.Event) (any, error) {
		var req struct{ Role string }
		if err := json.Unmarshal(ev.Data, &req); err != nil {
			return nil, hub.Errorf(hub.CodeInvalid, "bad data")
		}
		if _, err := ev.Socket.Set(ctx, "role", req.Role); err != nil {
			return nil, err
		}
		return map[string]string{"granted": req.Role}, nil
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	r := s.reply(s.send(map[string]any{"type": "event", "name": "promote", "data": map[string]string{"role": "editor"}}))
	if r["type"] != "ack" || r["data"].(map[string]any)["granted"] != "editor" || num(r["seq"]) == 0 {
		t.Fatalf("event ack: %v", r)
	}
	_, got := c.do(in, "GET", "/app/get", nil)
	if values(got)["role"] != "editor" {
		t.Fatalf("server-side write from the socket: %v", got)
	}
}

// A replay larger than the send buffer answers reset instead of
// overflowing the buffer and closing the socket part-way.
func TestResumeLargerThanBufferResets(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.SendBuffer = 8; o.RateLimit, o.RateBurst = 1000, 1000 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	var last uint64
	for i := range 20 {
		last = s.set("colour", string(rune('a'+i)))
		// Each change taken before the next write: on a starved machine
		// the changes would otherwise pile up past the 8 messages the
		// socket may have waiting, and close it 4200 before the resume.
		for uint64(num(s.expect("change")["seq"])) < last {
		}
	}
	s.send(map[string]any{"type": "resume", "after": 0})
	for {
		m := s.next()
		switch m["type"] {
		case "reset":
			if uint64(num(m["seq"])) != last || values(m)["colour"] != "t" {
				t.Fatalf("reset: %v", m)
			}
			return
		case "resumed", "closed":
			t.Fatalf("want reset, got %v", m)
		}
	}
}

// Go code pushes an event to the socket: {"type":"push","name","data"}.
func TestPush(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	in.hub.Handle("ping", func(ctx context.Context, ev *hub.Event) (any, error) {
		return nil, ev.Socket.Push("pong", map[string]int{"n": 7})
	})
	s := newClient(t).dial(in)
	s.expect("welcome")
	if r := s.reply(s.send(map[string]any{"type": "event", "name": "ping"})); r["type"] != "ack" {
		t.Fatalf("event: %v", r)
	}
	m := s.expect("push")
	if m["name"] != "pong" || m["data"].(map[string]any)["n"] != float64(7) {
		t.Fatalf("push: %v", m)
	}
}

// waitAgedOut waits until every entry of in's stream aged out
// (Options.Retention).
func waitAgedOut(t *testing.T, in *instance) {
	t.Helper()
	js, _ := jetstream.New(in.nc)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := js.Stream(context.Background(), hub.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the entries never aged out")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
