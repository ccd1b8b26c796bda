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
// JetStream's with sequences that never go back (sets taken in while
// others are in flight share an entry).
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
			if m["type"] != "ack" || num(m["seq"]) < lastSeq || num(m["seq"]) == 0 {
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

// TestPipelineDepth: a socket owes at most 32 answers. With JetStream's
// acknowledgements held back, its first write is in flight, the 31 after
// it gather into one batch that waits unpublished, and its 33rd write
// waits unread. Once they flow, every write is answered in order, the
// batched ones with one sequence, and the session's other socket gets
// each batch as one change carrying its writes in the order sent.
func TestPipelineDepth(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in, p := holdAcks(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, s, sb := twoTabs(t, in, b)
	s.set("k1", "x") // pipelined: the session's first write was twoTabs'
	id := sessionID(t, in.store, c.cookie(in))

	p.hold()
	const n = 40
	first := s.id + 1
	for i := range n {
		s.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i%3), "value": i})
	}
	waitFor(t, "a write waiting for room in the pipeline", func() bool { return hub.PipelineWaited(in.hub, id) })
	if got := hub.AsyncPending(in.hub); got != 1 {
		t.Fatalf("%d appends in flight while a write waits, want 1 (the first; the next 31 batched behind it)", got)
	}
	p.release()
	var last float64
	seqs := map[float64]int{} // writes acknowledged at each sequence
	var batched float64       // the sequence of the writes behind the first
	for i, m := range replies(s, n) {
		if m["type"] != "ack" || uint64(num(m["id"])) != first+uint64(i) || num(m["seq"]) < last {
			t.Fatalf("reply %d: %v after seq %v", i, m, last)
		}
		last = num(m["seq"])
		seqs[last]++
		if i == 1 {
			batched = last
		}
	}
	if seqs[batched] < 31 {
		t.Fatalf("%d writes in the entry after the first, want the 31 taken in behind it (%v)", seqs[batched], seqs)
	}
	for got := 0; got < n; {
		m := sb.expect("change")
		want, ok := seqs[num(m["seq"])]
		if !ok {
			continue // a write before the hold
		}
		ops := m["ops"].([]any)
		if len(ops) != want {
			t.Fatalf("change %v at B carries %d ops, want the %d writes acknowledged at its sequence", m, len(ops), want)
		}
		for _, op := range ops {
			if v := num(op.(map[string]any)["value"]); v != float64(got) {
				t.Fatalf("op %d at B carries value %v: out of order", got, v)
			}
			got++
		}
	}
}

// TestBatchedWritesSpendTheWriteBudgetPerWrite: the session's write
// budget counts a socket's writes, not the entries its batches make.
// With at most 11 tokens left and JetStream's acknowledgements held, the
// socket's first write is in flight and the next ones wait in one batch
// until the tokens run out: the rest of its 14 writes are refused
// rate_limited. Once the batch
// landed, the budget is spent: the next write is refused too.
func TestBatchedWritesSpendTheWriteBudgetPerWrite(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in, p := holdAcks(t, ns, func(o *hub.Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 0.001, 12 // no refill within the test
		o.RateLimit, o.RateBurst = 1000, 1000
	})
	s := newClient(t).dial(in)
	s.expect("welcome")
	// The session's first write, staged on its own; its change means the
	// socket's view is live, so the next write's entry is debited.
	for seq := s.set("k0", 0); uint64(num(s.expect("change")["seq"])) < seq; {
	}
	for seq := s.set("k1", 1); uint64(num(s.expect("change")["seq"])) < seq; {
	}
	p.hold()
	const n = 14
	for i := range n {
		s.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i%3), "value": i})
	}
	waitFor(t, "the writes taken in", func() bool { return hub.AsyncPending(in.hub) == 1 })
	p.release()
	seqs := map[float64]bool{}
	acked, answered := 0, 0
	var last, seen float64 // the last ack's sequence, and the last change's
	for answered < n || seen < last {
		switch m := s.next(); {
		case m["type"] == "change":
			seen = num(m["seq"])
		case m["type"] == "ack":
			last = num(m["seq"])
			seqs[last] = true
			acked++
			answered++
		case m["type"] == "error" && m["code"] == "rate_limited":
			answered++
		default:
			t.Fatalf("after %d replies: %v, want an ack, rate_limited or a change", answered, m)
		}
	}
	// At most the 11 tokens left (10 when the view took the session's
	// first write in live). Counted by entries, all 14 would pass.
	if acked == 0 || acked > 11 || len(seqs) >= acked {
		t.Fatalf("%d of %d writes acknowledged in %d entries, want at most 11 (the tokens left), batched", acked, n, len(seqs))
	}
	// The view took the batch in (its change came): debited.
	if m := s.reply(s.send(map[string]any{"type": "set", "key": "k0", "value": "after"})); m["code"] != "rate_limited" {
		t.Fatalf("a write once the batch landed: %v, want rate_limited (each write of the batch took its token)", m)
	}
}

// heldWrites starts an instance (options tweaked) whose acknowledgements
// the returned proxy holds, and a socket of a fresh session: after the
// session's first write, staged on its own, the socket sends n sets of k1
// (values value(i)) while the acknowledgements are held, and heldWrites
// returns once the first is appended and the rest wait behind it.
func heldWrites(t *testing.T, tweak func(*hub.Options), n int, value func(i int) any) (*proxy, *sock) {
	t.Helper()
	ns := startNATS(t)
	in, p := holdAcks(t, ns, tweak)
	s := newClient(t).dial(in)
	s.expect("welcome")
	s.set("k0", "first")
	p.hold()
	for i := range n {
		s.send(map[string]any{"type": "set", "key": "k1", "value": value(i)})
	}
	waitFor(t, "the writes taken in", func() bool { return hub.AsyncPending(in.hub) == 1 })
	return p, s
}

// TestFailedBatchFailsEachWrite: writes batched into one entry whose
// acknowledgement never comes are each answered unavailable, and their
// entry lands, or not, as one: once JetStream's answers flow again the
// session's socket gets the batch as one change.
func TestFailedBatchFailsEachWrite(t *testing.T) {
	t.Parallel()
	const n = 6
	p, s := heldWrites(t, func(o *hub.Options) { o.WriteTimeout = 300 * time.Millisecond }, n, func(i int) any { return fmt.Sprint("v", i) })
	for i, m := range replies(s, n) {
		if m["type"] != "error" || m["code"] != "unavailable" {
			t.Fatalf("reply %d: %v, want unavailable", i, m)
		}
	}
	p.release()
	for {
		m := s.expect("change")
		ops := m["ops"].([]any)
		if v := ops[0].(map[string]any)["value"]; v != "v1" {
			continue // v0's, on its own
		}
		if len(ops) != n-1 {
			t.Fatalf("the batch landed as %v, want its %d writes in one change", m, n-1)
		}
		return
	}
}

// TestBatchStaysWithinTheEntryLimit: a batch takes writes only while its
// entry cannot pass MaxEntrySize (batchCost); the writes behind it start
// the next. With a 2 KiB limit and 100-byte values, 20 writes batched
// behind a held acknowledgement are all acknowledged, a few per entry,
// where one batch of 19 would be refused as too large.
func TestBatchStaysWithinTheEntryLimit(t *testing.T) {
	t.Parallel()
	const n = 20
	p, s := heldWrites(t, func(o *hub.Options) { o.MaxEntrySize = 2 << 10 }, n, func(i int) any { return fmt.Sprintf("%03d%s", i, strings.Repeat("x", 97)) })
	p.release()
	perEntry := map[float64]int{}
	for i, m := range replies(s, n) {
		if m["type"] != "ack" {
			t.Fatalf("reply %d: %v, want an ack", i, m)
		}
		perEntry[num(m["seq"])]++
	}
	for seq, k := range perEntry {
		if k > 2 { // 2 KiB / batchCost of one write (64 + 6*(2+102))
			t.Fatalf("%d writes in the entry at %v (%v), want at most 2", k, seq, perEntry)
		}
	}
}

// TestWritesBeforeACloseLand: writes a socket took in before its client
// closed are appended, the batched ones too, although nobody reads their
// acks: with JetStream's acknowledgements held, the first of ten sets is
// in flight and nine wait in a batch when the client closes; the
// session's socket on another instance gets all ten.
func TestWritesBeforeACloseLand(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a, p := holdAcks(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	id := sessionID(t, a.store, c.cookie(a))
	seq0 := sa.set("k0", "before")
	expectUpTo(t, "socket at B", sb, seq0)

	p.hold()
	const n = 10
	for i := range n {
		sa.send(map[string]any{"type": "set", "key": "k0", "value": fmt.Sprint("v", i)})
	}
	waitFor(t, "the ten writes taken in", func() bool { return hub.AsyncPending(a.hub) == 1 && hub.Owed(a.hub, id) == n })
	if err := sa.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	p.release()
	got := 0
	for got < n {
		m := sb.expect("change")
		for _, op := range m["ops"].([]any) {
			if v := op.(map[string]any)["value"]; v != fmt.Sprint("v", got) {
				t.Fatalf("value %v at B, want v%d", v, got)
			}
			got++
		}
	}
}

// TestPipelineStallStagesOnItsOwn: a pipelined write that finds the
// connection's asynchronous publishes stalled at their limit (taken by
// another socket's) is staged on its own: acknowledged once, and
// delivered to the session's socket on another instance in order.
func TestPipelineStallStagesOnItsOwn(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a, p := holdAcks(t, ns, func(o *hub.Options) { hub.SetAsyncMaxPending(o, 1) })
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	seq0 := sa.set("colour", "red") // the session's first write, staged on its own
	expectUpTo(t, "socket at B", sb, seq0)
	sc := c.dial(a) // another tab on A
	sc.expect("welcome")

	p.hold()
	id1 := sa.send(map[string]any{"type": "set", "key": "k0", "value": 1}) // the one async publish allowed
	waitFor(t, "the first append in flight", func() bool { return hub.AsyncPending(a.hub) == 1 })
	id2 := sc.send(map[string]any{"type": "set", "key": "k1", "value": 2}) // stalls
	waitFor(t, "a stalled append", func() bool { return hub.Stalls(a.hub) > 0 })
	p.release()
	r1, r2 := replies(sa, 1)[0], replies(sc, 1)[0]
	if r1["type"] != "ack" || uint64(num(r1["id"])) != id1 || r2["type"] != "ack" || uint64(num(r2["id"])) != id2 ||
		num(r2["seq"]) <= num(r1["seq"]) {
		t.Fatalf("replies %v and %v, want the acks of %d and %d in order", r1, r2, id1, id2)
	}
	// Answered once: the next reply is the next request's.
	id3 := sc.send(map[string]any{"type": "set", "key": "k2", "value": 3})
	if m := replies(sc, 1)[0]; m["type"] != "ack" || uint64(num(m["id"])) != id3 {
		t.Fatalf("reply %v, want the ack of %d", m, id3)
	}
	for i, want := range []struct {
		key string
		seq float64
	}{{"k0", num(r1["seq"])}, {"k1", num(r2["seq"])}} {
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
	bySeq := map[float64][]string{} // the values each change carries, in order
	acked := map[float64][]uint64{} // the requests acknowledged at each sequence, in order
	changed, answered := 0, 0
	for answered < len(sent) || changed < len(sent) {
		m := s.next()
		switch m["type"] {
		case "ack":
			acked[num(m["seq"])] = append(acked[num(m["seq"])], uint64(num(m["id"])))
			answered++
		case "change":
			for _, op := range m["ops"].([]any) {
				bySeq[num(m["seq"])] = append(bySeq[num(m["seq"])], op.(map[string]any)["value"].(string))
				changed++
			}
		case "error", "closed":
			t.Fatalf("%v", m)
		}
	}
	for seq, ids := range acked {
		if len(bySeq[seq]) != len(ids) {
			t.Fatalf("requests %v acknowledged at %v; its entry holds %d values", ids, seq, len(bySeq[seq]))
		}
		for i, id := range ids {
			if bySeq[seq][i] != sent[id] {
				t.Fatalf("request %d was sent %q; its entry %v holds %q", id, sent[id], seq, bySeq[seq][i])
			}
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
