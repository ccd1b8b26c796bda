package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// The shape of TestBudgetHoldsUnderContention's races.
const (
	contendInstances = 2
	contendPerInst   = 16 // sockets of the session on each instance
	contendPerSocket = 48 // keys each socket may write: more than fit
	contendRounds    = 3  // sessions raced one after the other
	contendRetries   = 50 // rate_limited answers one socket retries
)

// Many sockets of one session on two instances race small writes into the
// last room of its cookie. Every write near the budget is conditional on
// the log not having moved since it was measured, so most tries lose the
// race to another socket's write and measure again, many times in a row.
// However often a write loses, the writes acknowledged together fit the
// cookie: the flush afterwards answers 200 with every one of them, never
// 413. (An append made without the condition after a few lost races
// overran the budget.)
func TestBudgetHoldsUnderContention(t *testing.T) {
	t.Parallel()
	keys := map[string]hub.KeyPolicy{}
	for s := range contendInstances * contendPerInst {
		for k := range contendPerSocket {
			keys[contendedKey(s, k)] = hub.KeyPolicy{Read: true, Write: true, Validate: func(json.RawMessage) error { return nil }}
		}
	}
	tweak := func(o *hub.Options) {
		o.ClientKeys = keys
		o.RateLimit, o.RateBurst = 1000, 1000
		o.SessionWriteRate, o.SessionWriteBurst = 1000, 1000
		o.MaxSocketsPerSession = 64
	}
	ns := startNATS(t)
	var ins []*instance
	for range contendInstances {
		ins = append(ins, newInstance(t, ns, tweak))
	}
	for round := range contendRounds {
		raceIntoBudget(t, ins, round)
	}
}

// raceIntoBudget is one round of TestBudgetHoldsUnderContention, on a new
// session.
func raceIntoBudget(t *testing.T, ins []*instance, round int) {
	t.Helper()
	c := newClient(t)
	first := c.dial(ins[0])
	first.expect("welcome")
	cookie := c.cookie(ins[0])
	id := sessionID(t, ins[0].store, cookie)
	// A server-side write takes the cookie past half its budget: every
	// browser write from here on is measured and appended conditionally.
	filler, _ := session.SetOp("filler", json.RawMessage(fmt.Sprintf("%q", strings.Repeat("f", 1500))))
	if _, err := ins[0].hub.Write(context.Background(), id, filler); err != nil {
		t.Fatal(err)
	}
	var socks []*sock
	for _, in := range ins {
		for range contendPerInst {
			c.setCookie(in, cookie)
			s := c.dial(in)
			s.expect("welcome")
			socks = append(socks, s)
		}
	}

	// A value of 8 bytes costs some 60 bytes of cookie: a few dozen of
	// them fit in the room the filler leaves.
	value := strings.Repeat("v", 8)
	acked := make([][]string, len(socks))
	refused := make([]int, len(socks))
	errs := make([]error, len(socks))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			acked[i], refused[i], errs[i] = writeUntilFull(s, i, value)
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total, retried := 0, 0
	for i, a := range acked {
		total += len(a)
		retried += refused[i]
	}

	req, _ := http.NewRequest("POST", ins[1].srv.URL+"/hub/flush", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Values map[string]any
		Error  struct{ Code string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("round %d: flush after %d acknowledged writes: %d %q: the writes overran the cookie budget", round, total, resp.StatusCode, body.Error.Code)
	}
	for i, a := range acked {
		for _, key := range a {
			if _, ok := body.Values[key]; !ok {
				t.Errorf("round %d: socket %d: acknowledged %s is not in the flushed session", round, i, key)
			}
		}
	}
	if len(body.Values) != total { // the filler is not client-readable
		t.Errorf("round %d: flushed session has %d values, want the %d acknowledged writes", round, len(body.Values), total)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" && len(ck.String()) > session.MaxCookieSize {
			t.Errorf("round %d: flushed cookie is %d bytes, over %d", round, len(ck.String()), session.MaxCookieSize)
		}
	}
	t.Logf("round %d: %d writes acknowledged over %d sockets on %d instances, %d refused as rate_limited and retried", round, total, len(socks), len(ins), retried)
}

// writeUntilFull sets socket i's keys one after the other until the
// cookie has no room (too_large) and returns the keys acknowledged and
// how many rate_limited answers (the write lost the race too often) it
// retried after a pause, as the protocol says: at most contendRetries.
func writeUntilFull(s *sock, i int, value string) (acked []string, refused int, err error) {
	id := 0
	for k := 0; k < contendPerSocket; {
		key := contendedKey(i, k)
		id++
		r, err := s.roundTrip(id, map[string]any{"type": "set", "key": key, "value": value})
		if err != nil {
			return acked, refused, err
		}
		switch {
		case r["type"] == "ack":
			acked = append(acked, key)
			k++
		case r["code"] == "too_large":
			return acked, refused, nil
		case r["code"] == "rate_limited" && refused < contendRetries:
			refused++
			time.Sleep(time.Duration(refused) * time.Millisecond)
		default:
			return acked, refused, fmt.Errorf("socket %d: set %s: %v", i, key, r)
		}
	}
	return acked, refused, fmt.Errorf("socket %d: all %d writes acknowledged: the cookie never filled", i, contendPerSocket)
}

func contendedKey(socket, k int) string { return fmt.Sprintf("w%02d_%02d", socket, k) }

// roundTrip sends m with the given id and returns its ack or error,
// skipping other messages; safe off the test's goroutine (it fails
// nothing, it returns errors).
func (s *sock) roundTrip(id int, m map[string]any) (map[string]any, error) {
	m["id"] = id
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, err
	}
	for {
		select {
		case r, ok := <-s.in:
			if !ok || r["type"] == "closed" {
				return nil, fmt.Errorf("socket closed waiting for reply %d: %v", id, r)
			}
			if (r["type"] == "ack" || r["type"] == "error") && num(r["id"]) == float64(id) {
				return r, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("no reply to %d within 10s", id)
		}
	}
}

// Two sockets of a session on one instance write at once: one a value
// that takes the cookie near its budget (measured, then appended
// conditionally), the other a smaller value that alone keeps the cookie
// under half of it (pipelined, appended without a condition). Together
// they do not fit, so one of them is refused with too_large, whichever
// lands first: the pipelined write counts the other while it is in
// flight. (It did not: it was measured without the conditional write in
// flight, and landed after it.)
func TestBudgetCountsConditionalWriteInFlight(t *testing.T) {
	t.Parallel()
	const rounds = 30
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.RateLimit, o.RateBurst = 1000, 1000
		o.SessionWriteRate, o.SessionWriteBurst = 1000, 1000
	})
	near := strings.Repeat("n", 1800) // about 3700 bytes of cookie
	under := strings.Repeat("k", 800) // about 1700
	for round := range rounds {
		c := newClient(t)
		a := c.dial(in)
		a.expect("welcome")
		b := c.dial(in)
		b.expect("welcome")
		a.set("colour", "red") // the log holds an entry: writes are pipelined
		var wg sync.WaitGroup
		var ra, rb map[string]any
		var ea, eb error
		wg.Add(2)
		go func() {
			defer wg.Done()
			ra, ea = a.roundTrip(100, map[string]any{"type": "set", "key": "note", "value": near})
		}()
		go func() {
			defer wg.Done()
			rb, eb = b.roundTrip(100, map[string]any{"type": "set", "key": "k0", "value": under})
		}()
		wg.Wait()
		if err := errors.Join(ea, eb); err != nil {
			t.Fatal(err)
		}
		if ra["type"] == "ack" && rb["type"] == "ack" {
			code, _ := c.do(in, "POST", "/hub/flush", nil)
			t.Fatalf("round %d: both writes acknowledged; the flush answers %d", round, code)
		}
		if (ra["type"] == "ack") == (rb["type"] == "ack") {
			t.Fatalf("round %d: both refused, the cookie holds either: %v, %v", round, ra, rb)
		}
		for _, r := range []map[string]any{ra, rb} {
			if r["type"] != "ack" && r["code"] != "too_large" {
				t.Fatalf("round %d: %v", round, r)
			}
		}
	}
}

// A write near the budget on a log whose entries all aged out of the
// retention window: the condition on the view's last entry can never
// match (JetStream no longer holds it), and the last try, conditional on
// the log's own last sequence, appends it.
func TestBudgetWriteAfterLogAgedOut(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.Retention = time.Second })
	s := newClient(t).dial(in)
	s.expect("welcome")
	s.set("note", strings.Repeat("n", 1800)) // past half the budget
	waitAgedOut(t, in)
	if r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "red"})); r["type"] != "ack" {
		t.Fatalf("write near the budget after the log aged out: %v", r)
	}
}

// A set's round trip on one socket (sent, then its ack awaited), with the
// cookie far below its budget (pipelined, unconditional) and past half of
// it (one at a time, conditional on the log): with no other writer, the
// conditional append is won at the first try and costs no extra round
// trip.
func BenchmarkSetRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name   string
		filler int // bytes of a server-written value the cookie carries
	}{{"far", 0}, {"near", 1500}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := startNATS(b)
			in := newInstance(b, ns, func(o *hub.Options) {
				o.RateLimit, o.RateBurst = 1e6, 1e6
				o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
			})
			c := newClient(b)
			s := c.dial(in)
			s.expect("welcome")
			if bc.filler > 0 {
				filler, _ := session.SetOp("filler", json.RawMessage(fmt.Sprintf("%q", strings.Repeat("f", bc.filler))))
				if _, err := in.hub.Write(context.Background(), sessionID(b, in.store, c.cookie(in)), filler); err != nil {
					b.Fatal(err)
				}
			}
			colours := []string{"red", "blue"}
			s.set("colour", colours[0])
			if code, _ := c.do(in, "POST", "/hub/flush", nil); code != http.StatusOK {
				b.Fatalf("flush: %d", code)
			}
			if n := len(c.cookie(in)); (n > session.MaxCookieSize/2) != (bc.filler > 0) {
				b.Fatalf("the cookie is %d bytes: not %s half its budget", n, bc.name)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s.set("colour", colours[i%2])
			}
		})
	}
}

// A write measured right after this instance acknowledged a Go write
// that made room (a Hub.Write delete whose republished copy the view
// has not taken in yet) is measured on the session as acknowledged, not
// refused too_large on the view's older picture.
func TestBudgetSeesItsInstancesAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
		o.RateLimit, o.RateBurst = 1e6, 1e6
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	s.set("colour", "teal")
	id := sessionID(t, in.store, c.cookie(in))
	ctx := context.Background()
	big := json.RawMessage(`"` + strings.Repeat("x", session.MaxCookieSize) + `"`)
	for round := range 100 {
		// Past the budget (Go writes are not held to it), then back.
		if _, err := in.hub.Write(ctx, id, session.Op{Type: session.OpSet, Key: "note", Value: big}); err != nil {
			t.Fatal(err)
		}
		if _, err := in.hub.Write(ctx, id, session.Op{Type: session.OpDelete, Key: "note"}); err != nil {
			t.Fatal(err)
		}
		r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": fmt.Sprint("c", round)}))
		if r["type"] != "ack" {
			t.Fatalf("round %d: a set after the big value's acknowledged delete: %v", round, r)
		}
	}
}

// A session pushed past its cookie budget (Go writes are not held to it;
// writers racing on several instances can pass it too) takes writes that
// shrink it, from a socket, so it can get back under the budget: growing
// writes are refused too_large, a delete and a smaller value pass, and
// the next flush writes the cookie again.
func TestOverBudgetSessionShrinksBack(t *testing.T) {
	t.Parallel()
	in, c, s := oneTab(t, nil)
	s.set("colour", "teal")
	id := sessionID(t, in.store, c.cookie(in))
	ctx := context.Background()
	big := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n) + `"`) }
	if _, err := in.hub.Write(ctx, id, session.Op{Type: session.OpSet, Key: "note", Value: big(2 * session.MaxCookieSize)}); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.do(in, "POST", "/hub/flush", nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a session past its budget: the flush answered %d, want 413", code)
	}
	s.expect("change")
	if r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "a longer colour name"})); r["code"] != "too_large" {
		t.Fatalf("a set growing a session past its budget: %v, want too_large", r)
	}
	if r := s.reply(s.send(map[string]any{"type": "set", "key": "note", "value": strings.Repeat("y", session.MaxCookieSize)})); r["type"] != "ack" {
		t.Fatalf("a set shrinking a session past its budget, still past it: %v, want an ack", r)
	}
	if r := s.reply(s.send(map[string]any{"type": "delete", "key": "note"})); r["type"] != "ack" {
		t.Fatalf("a delete shrinking a session past its budget: %v, want an ack", r)
	}
	if code, _ := c.do(in, "POST", "/hub/flush", nil); code != http.StatusOK {
		t.Fatalf("after shrinking: the flush answered %d", code)
	}
	fresh := newClient(t)
	fresh.setCookie(in, c.cookie(in))
	if _, got := fresh.do(in, "GET", "/app/get", nil); values(got)["colour"] != "teal" || values(got)["note"] != nil {
		t.Fatalf("after shrinking, the flushed cookie holds %v", values(got))
	}
}
