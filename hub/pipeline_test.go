package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/session"
)

// replies reads the next n acks and errors of s, in the order they came.
func replies(s *sock, n int) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	for len(out) < n {
		m := s.next()
		switch m["type"] {
		case "ack", "error":
			out = append(out, m)
		case "closed":
			s.t.Fatalf("socket closed after %d replies: %v", len(out), m)
		}
	}
	return out
}

// TestPipelinedWritesAnswerInOrder: sets sent without waiting are
// appended while earlier ones are in flight, and every request, whatever
// its kind, is answered in the order it was sent, each set's ack after
// JetStream's with increasing sequences.
func TestPipelinedWritesAnswerInOrder(t *testing.T) {
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.RateLimit, o.RateBurst, o.SessionWriteRate = 10000, 10000, 1e6 })
	in.hub.Handle("echo", func(ctx context.Context, ev *hub.Event) (any, error) { return "pong", nil })
	s := newClient(t).dial(in)
	s.expect("welcome")
	var kinds []string
	for i := range 120 {
		switch i % 10 {
		case 3:
			s.send(map[string]any{"type": "set", "key": "user_id", "value": "admin"}) // forbidden
			kinds = append(kinds, "error")
		case 6:
			s.send(map[string]any{"type": "event", "name": "echo"})
			kinds = append(kinds, "event")
		case 8:
			s.sendRaw(fmt.Sprintf(`{"id":%d,"type":"bogus"}`, s.id+1)) // invalid
			s.id++
			kinds = append(kinds, "error")
		default:
			s.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i%3), "value": i})
			kinds = append(kinds, "ack")
		}
	}
	var lastSeq float64
	for i, m := range replies(s, len(kinds)) {
		if got := num(m["id"]); got != float64(i+1) {
			t.Fatalf("reply %d answers id %v: out of order", i+1, got)
		}
		switch kinds[i] {
		case "ack":
			if m["type"] != "ack" || num(m["seq"]) <= lastSeq {
				t.Fatalf("reply %d: %v after seq %v", i+1, m, lastSeq)
			}
			lastSeq = num(m["seq"])
		case "event":
			if m["type"] != "ack" || m["data"] != "pong" {
				t.Fatalf("reply %d: %v, want the event's ack", i+1, m)
			}
		default:
			if m["type"] != "error" {
				t.Fatalf("reply %d: %v, want an error", i+1, m)
			}
		}
	}
}

// TestPipelinedWritesKeepTheCookieBudget: sets sent without waiting each
// count the ones still in flight, so together they never push the
// cookie past its budget.
func TestPipelinedWritesKeepTheCookieBudget(t *testing.T) {
	in, c, s := oneTab(t, nil)
	big := strings.Repeat("x", 800) // one is under half the budget, five are over it
	keys := []string{"note", "k0", "k1", "k2", "k9"}
	for _, k := range keys {
		s.send(map[string]any{"type": "set", "key": k, "value": big})
	}
	tooLarge := 0
	for _, m := range replies(s, len(keys)) {
		if m["type"] == "error" {
			if m["code"] != "too_large" {
				t.Fatalf("error %v, want too_large", m)
			}
			tooLarge++
		}
	}
	if tooLarge == 0 {
		t.Fatalf("4 KB of values in flight together all accepted")
	}
	if code, body := c.do(in, http.MethodPost, "/hub/flush", http.Header{"Origin": {in.srv.URL}}); code != http.StatusOK {
		t.Fatalf("flush: %d %v: the accepted writes do not fit the cookie", code, body)
	}
}

// TestPipelineWaitsForASlowReader: a client that sends writes without
// reading its answers is not closed as too slow for the acks it asked
// for: past half the send buffer the hub takes no new write in, so the
// client's own writes wait, and every answer arrives once it reads.
func TestPipelineWaitsForASlowReader(t *testing.T) {
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.RateLimit, o.RateBurst, o.SendBuffer, o.SessionWriteRate = 100000, 100000, 64, 1e6
	})
	s := newClient(t).dial(in)
	s.expect("welcome")
	const n = 2000
	value := strings.Repeat("v", 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			b := fmt.Appendf(nil, `{"id":%d,"type":"set","key":"note","value":%q}`, i+1, value)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := s.ws.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				t.Errorf("write %d: %v", i+1, err)
				return
			}
		}
	}()
	time.Sleep(2 * time.Second) // the answers pile up unread meanwhile
	got := 0
	for got < n {
		m := s.next()
		switch m["type"] {
		case "ack":
			got++
			if num(m["id"]) != float64(got) {
				t.Fatalf("ack %v, want id %d", m["id"], got)
			}
		case "error":
			t.Fatalf("error: %v", m)
		case "closed":
			t.Fatalf("closed after %d acks: %v", got, m)
		}
	}
	<-done
}

// holdAcks returns a hub instance whose NATS connection goes through a
// proxy that can hold back what the server sends (JetStream's PubAcks
// among it).
func holdAcks(t *testing.T, ns *natsserver.Server, tweak func(*hub.Options)) (*instance, *proxy) {
	t.Helper()
	p := newProxy(t, ns.Addr().String())
	nc, err := nats.Connect("nats://"+p.addr(), nats.Name(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return newInstanceOn(t, nc, func(o *hub.Options) {
		o.WriteTimeout = time.Minute // no append in flight times out while held
		o.SnapshotEvery = -1
		if tweak != nil {
			tweak(o)
		}
	}), p
}

// TestPipelineDepth: a socket has at most 32 appends in flight to
// JetStream. With JetStream's acknowledgements held back, its 33rd write
// waits unpublished; once they flow, every write is answered in order.
func TestPipelineDepth(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in, p := holdAcks(t, ns, nil)
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	s.set("k0", 0) // the session's first write, staged on its own
	s.set("k1", 1) // pipelined
	id := sessionID(t, in.store, c.cookie(in))

	p.hold()
	const n = 40
	first := s.id + 1
	for i := range n {
		s.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i%3), "value": i})
	}
	waitFor(t, "a write waiting for room in the pipeline", func() bool { return hub.PipelineWaited(in.hub, id) })
	if got := hub.AsyncPending(in.hub); got != 32 {
		t.Fatalf("%d appends in flight while a write waits, want 32", got)
	}
	p.release()
	var last float64
	for i, m := range replies(s, n) {
		if m["type"] != "ack" || uint64(num(m["id"])) != first+uint64(i) || num(m["seq"]) <= last {
			t.Fatalf("reply %d: %v after seq %v", i, m, last)
		}
		last = num(m["seq"])
	}
}

// TestPipelineStallStagesOnItsOwn: a pipelined write that finds the
// connection's asynchronous publishes stalled at their limit is staged on
// its own once the writes before it are answered: acknowledged once, in
// order, and delivered to the session's socket on another instance.
func TestPipelineStallStagesOnItsOwn(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a, p := holdAcks(t, ns, func(o *hub.Options) { hub.SetAsyncMaxPending(o, 1) })
	b := newInstance(t, ns, nil)
	_, sa, sb := twoTabs(t, a, b)
	seq0 := sa.set("colour", "red") // the session's first write, staged on its own
	expectUpTo(t, "socket at B", sb, seq0)

	p.hold()
	id1 := sa.send(map[string]any{"type": "set", "key": "k0", "value": 1}) // the one async publish allowed
	id2 := sa.send(map[string]any{"type": "set", "key": "k1", "value": 2}) // stalls
	waitFor(t, "a stalled append", func() bool { return hub.Stalls(a.hub) > 0 })
	p.release()
	r := replies(sa, 2)
	if r[0]["type"] != "ack" || uint64(num(r[0]["id"])) != id1 || r[1]["type"] != "ack" || uint64(num(r[1]["id"])) != id2 ||
		num(r[1]["seq"]) <= num(r[0]["seq"]) {
		t.Fatalf("replies %v, want the acks of %d and %d in order", r, id1, id2)
	}
	// Answered once: the next reply is the next request's.
	id3 := sa.send(map[string]any{"type": "set", "key": "k2", "value": 3})
	if m := replies(sa, 1)[0]; m["type"] != "ack" || uint64(num(m["id"])) != id3 {
		t.Fatalf("reply %v, want the ack of %d", m, id3)
	}
	for i, want := range []struct {
		key string
		seq float64
	}{{"k0", num(r[0]["seq"])}, {"k1", num(r[1]["seq"])}} {
		m := sb.expect("change")
		if num(m["seq"]) != want.seq || !strings.Contains(jsonOf(m["ops"]), `"key":"`+want.key+`"`) {
			t.Fatalf("change %d at B: %v, want %s at seq %v", i, m, want.key, want.seq)
		}
	}
}

// TestPipelinedWritesKeepTheirValues: frames read one after the other
// into the socket's one buffer, each pipelined set lands with the value
// it was sent with, whatever the lengths of the frames after it, and is
// measured by the cookie budget with it. With Flask's cookie, whose measure encodes the values of the writes in
// flight again, a value read from a reused buffer would be the next
// frame's bytes by then.
func TestPipelinedWritesKeepTheirValues(t *testing.T) {
	t.Run("securecookie", func(t *testing.T) { testPipelinedValues(t, nil) })
	t.Run("flask", func(t *testing.T) {
		store, err := session.NewStore(&session.Options{FlaskSecrets: [][]byte{[]byte("flask secret")}})
		if err != nil {
			t.Fatal(err)
		}
		testPipelinedValues(t, store)
	})
}

func testPipelinedValues(t *testing.T, store *session.Store) {
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.RateLimit, o.RateBurst, o.SessionWriteRate = 10000, 10000, 1e6
		if store != nil {
			o.Store = store
		}
	})
	s := newClient(t).dial(in)
	s.expect("welcome")
	sent := map[uint64]string{}
	for i := range 96 {
		v := fmt.Sprintf("v%d-%s", i, strings.Repeat("x", (i*37)%300))
		sent[s.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i%3), "value": v})] = v
	}
	bySeq := map[float64]string{} // the value each change carries
	acked := map[float64]uint64{} // the request each ack answers
	for len(acked) < len(sent) || len(bySeq) < len(sent) {
		m := s.next()
		switch m["type"] {
		case "ack":
			acked[num(m["seq"])] = uint64(num(m["id"]))
		case "change":
			ops := m["ops"].([]any)
			bySeq[num(m["seq"])] = ops[0].(map[string]any)["value"].(string)
		case "error", "closed":
			t.Fatalf("%v", m)
		}
	}
	for seq, id := range acked {
		if bySeq[seq] != sent[id] {
			t.Fatalf("request %d was sent %q; its entry %v holds %q", id, sent[id], seq, bySeq[seq])
		}
	}
}

// TestEventDataOutlivesItsFrame: a handler may keep an event's data; the
// frames read after it do not change it.
func TestEventDataOutlivesItsFrame(t *testing.T) {
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	var kept []json.RawMessage
	in.hub.Handle("keep", func(ctx context.Context, ev *hub.Event) (any, error) {
		kept = append(kept, ev.Data) // the handlers of one socket run one at a time
		return nil, nil
	})
	s := newClient(t).dial(in)
	s.expect("welcome")
	want := []string{`{"n":1,"pad":"aaaaaaaaaaaaaaaa"}`, `{"n":22,"pad":"bbbb"}`, `[3]`}
	var ids []uint64
	for _, d := range want {
		ids = append(ids, s.send(map[string]any{"type": "event", "name": "keep", "data": json.RawMessage(d)}))
	}
	for _, id := range ids {
		if m := s.reply(id); m["type"] != "ack" {
			t.Fatalf("event %d: %v", id, m)
		}
	}
	for i, d := range want {
		if string(kept[i]) != d {
			t.Fatalf("event %d's data is %s once later frames were read, want %s", i+1, kept[i], d)
		}
	}
}
