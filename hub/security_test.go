package hub_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// replay sends a copy of a cookie, as an attacker holding it would, and
// returns what the session looks like with it.
func replay(t testing.TB, in *instance, cookie string) (int, map[string]any) {
	t.Helper()
	c := newClient(t)
	c.setCookie(in, cookie)
	return c.do(in, "GET", "/app/get", nil)
}

// counting is a hub.Metrics that counts views, sockets, close codes and
// errors.
type counting struct {
	views, viewsOpen, sockets, socketsOpen atomic.Int64
	closed                                 sync.Map // close code -> *atomic.Int64
	errs                                   sync.Map // hub.Code -> *atomic.Int64
}

func (m *counting) SocketOpened() { m.sockets.Add(1); m.socketsOpen.Add(1) }
func (m *counting) SocketClosed(code int) {
	m.socketsOpen.Add(-1)
	n, _ := m.closed.LoadOrStore(code, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}
func (m *counting) ViewOpened()                  { m.views.Add(1); m.viewsOpen.Add(1) }
func (m *counting) ViewClosed()                  { m.viewsOpen.Add(-1) }
func (m *counting) Staged(string, time.Duration) {}
func (m *counting) Error(code hub.Code) {
	n, _ := m.errs.LoadOrStore(code, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}
func (m *counting) Delivered(int)                {}
func (m *counting) CookieRefused(session.Reason) {}

func (m *counting) closedWith(code int) int64 {
	n, ok := m.closed.Load(code)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

func (m *counting) errors(code hub.Code) int64 {
	n, ok := m.errs.Load(code)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// subjectMsgs returns how many entries session id's log holds.
func subjectMsgs(t testing.TB, in *instance, id string) uint64 {
	t.Helper()
	js, _ := jetstream.New(in.nc)
	st, err := js.Stream(context.Background(), "SESSIONHUB")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("sessionhub.ops."+id))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects["sessionhub.ops."+id]
}

// waitFor polls cond every 10ms for up to 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}

// TestLogoutWithAFullLog: a session whose log holds its maximum of entries
// can still be logged out, and a copy of its cookie is dead afterwards.
func TestLogoutWithAFullLog(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	// No snapshots: the log stays full.
	in := newInstance(t, ns, func(o *hub.Options) { o.MaxOpsPerSession = 20; o.SnapshotEvery = -1 })
	c := newClient(t)
	if st, _ := c.do(in, "POST", "/app/set?colour=red", nil); st != http.StatusNoContent {
		t.Fatalf("set: %d", st)
	}
	id := sessionID(t, in.store, c.cookie(in))
	// Fill the log (a holder of the cookie could do it over HTTP).
	for i := 0; ; i++ {
		_, err := in.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(`"x"`)})
		if errors.Is(err, hub.ErrTooManyPending) {
			break
		}
		if err != nil || i > 100 {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// Another session keeps writing meanwhile.
	other := newClient(t).dial(in)
	other.expect("welcome")
	other.set("colour", "blue")
	stolen := c.cookie(in)
	if st, _ := c.do(in, "POST", "/app/logout", nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	if st, body := replay(t, in, stolen); st != http.StatusOK || len(values(body)) != 0 {
		t.Fatalf("the copied cookie still works after logout with a full log: %d %v", st, body)
	}
	// A handshake with it starts a new session.
	c2 := newClient(t)
	c2.setCookie(in, stolen)
	w := c2.dial(in).expect("welcome")
	if len(values(w)) != 0 || sessionID(t, in.store, c2.cookie(in)) == id {
		t.Fatalf("handshake with the copied cookie: %v", w)
	}
}

// TestLogoutOutlivesRetention: a logout holds after the log dropped the
// end op (retention), on the instance that logged out and on one that
// never saw the session, for as long as a cookie verifies.
func TestLogoutOutlivesRetention(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	tweak := func(o *hub.Options) {
		o.Retention = time.Second
		o.ViewIdle = 20 * time.Millisecond
	}
	a := newInstance(t, ns, tweak)
	c := newClient(t)
	if st, _ := c.do(a, "POST", "/app/set?colour=red", nil); st != http.StatusNoContent {
		t.Fatalf("set: %d", st)
	}
	stolen := c.cookie(a)
	if st, _ := c.do(a, "POST", "/app/logout", nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	// Wait for the log to age out entirely (bounded).
	js, _ := jetstream.New(a.nc)
	waitFor(t, "the log aged out", func() bool {
		st, err := js.Stream(context.Background(), "SESSIONHUB")
		return err == nil && st.CachedInfo().State.Msgs == 0
	})
	b := newInstance(t, ns, tweak) // never saw the session
	for _, in := range []*instance{a, b} {
		if st, body := replay(t, in, stolen); st != http.StatusOK || len(values(body)) != 0 {
			t.Fatalf("the copied cookie came back after the retention window: %d %v", st, body)
		}
		c2 := newClient(t)
		c2.setCookie(in, stolen)
		if w := c2.dial(in).expect("welcome"); len(values(w)) != 0 {
			t.Fatalf("a handshake with the copied cookie got its values back: %v", w)
		}
	}
}

// TestSocketsPerSessionCapped: past MaxSocketsPerSession a handshake gets
// 429 and no cookie; closing one frees a slot; other sessions are not
// affected.
func TestSocketsPerSessionCapped(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const max = 4
	in := newInstance(t, ns, func(o *hub.Options) { o.MaxSocketsPerSession = max })
	c := newClient(t)
	var socks []*sock
	for range max {
		s := c.dial(in)
		s.expect("welcome")
		socks = append(socks, s)
	}
	// A flood of handshakes on the same cookie: every one refused.
	for i := range 50 {
		_, resp, err := c.tryDial(in, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || len(resp.Cookies()) != 0 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("handshake %d past the cap: err=%v resp=%v", i, err, resp)
		}
	}
	// Meanwhile another session opens sockets and writes.
	other := newClient(t)
	os := other.dial(in)
	os.expect("welcome")
	os.set("colour", "red")
	// The session's own sockets still work, and a closed one frees a slot.
	socks[0].set("colour", "blue")
	_ = socks[1].ws.Close(1000, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _, err := c.tryDial(in, nil)
		if err == nil {
			s.expect("welcome")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed by a closed socket: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSocketsPerAddrCapped: with MaxSocketsPerAddr, one client address
// opens at most that many sockets, whatever the sessions; another
// instance (another address's view of the world) is not affected.
func TestSocketsPerAddrCapped(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.MaxSocketsPerAddr = 3 })
	var open []*sock
	for range 3 {
		s := newClient(t).dial(in)
		s.expect("welcome")
		open = append(open, s)
	}
	for i := range 20 {
		_, resp, err := newClient(t).tryDial(in, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("socket %d from one address past the cap: err=%v resp=%v", i+4, err, resp)
		}
	}
	// The open sockets keep working.
	open[0].set("colour", "red")
}

// sessionReader opens a socket of a new session on in that reads
// everything (its welcome taken), and returns its client and the
// session's ID.
func sessionReader(t *testing.T, in *instance) (*client, *sock, string) {
	t.Helper()
	c := newClient(t)
	reader := c.dial(in)
	reader.expect("welcome")
	return c, reader, sessionID(t, in.store, c.cookie(in))
}

// noteLatency writes the JSON value to session id's "note" from server
// code and returns how long its change took to reach reader.
func noteLatency(t *testing.T, in *instance, id string, reader *sock, value string) time.Duration {
	t.Helper()
	at := time.Now()
	if _, err := in.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(value)}); err != nil {
		t.Fatal(err)
	}
	reader.expect("change")
	return time.Since(at)
}

// dialStalled opens a socket of c's session on in that never reads after
// its handshake, closed with the test.
func dialStalled(t *testing.T, in *instance, c *client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	stalled, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.srv.URL, "http")+"/hub/ws", &websocket.DialOptions{HTTPClient: c.http(in)})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stalled.CloseNow() })
}

// TestNonReadingSocketClosed: a client that stops reading is closed with
// CloseTooSlow once its unsent bytes pass SendBufferBytes or a frame write
// takes longer than WriteWait, within a bounded time, while a reading
// socket of the same session and another session keep receiving.
func TestNonReadingSocketClosed(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	in := newInstance(t, ns, func(o *hub.Options) {
		o.Metrics = m
		o.SendBufferBytes = 256 << 10
		o.WriteWait = time.Second
		// The close comes WriteWait after the buffer filled: the loop must
		// not meet the session's write budget first.
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
	})
	c, reader, id := sessionReader(t, in)
	// The stalled client: a socket of the same session that never reads
	// after its handshake.
	dialStalled(t, in, c)
	other := newClient(t).dial(in)
	other.expect("welcome")

	big := `"` + strings.Repeat("x", 16<<10) + `"`
	start := time.Now()
	writes := 0
	for i := 0; m.closedWith(int(hub.CloseTooSlow)) == 0; i++ {
		writes = i
		if i >= 5000 || time.Since(start) > 20*time.Second {
			t.Fatalf("a client not reading was not closed with %d after %d writes of 16 KiB, %v", hub.CloseTooSlow, i, time.Since(start))
		}
		if _, err := in.hub.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "note", Value: []byte(big)}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			reader.expect("change") // the reader keeps up meanwhile
		}
		if i >= 100 {
			// The buffer is long full: the close comes once the blocked
			// frame write has waited WriteWait; write slowly meanwhile.
			time.Sleep(5 * time.Millisecond)
		} else {
			// Fast enough to fill the stalled socket's buffers within a
			// fifth of a second, slow enough that the reading socket's
			// client, in this process with the hub and nats-server, keeps
			// well within SendBufferBytes of them through a pause of the
			// garbage collector: written back to back, 16 KiB a write, it
			// was closed as too slow itself about one run in five.
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("closed with %d after %d writes of 16 KiB, %v", hub.CloseTooSlow, writes, time.Since(start))
	other.set("colour", "green")
	if _, err := in.hub.Write(context.Background(), id, session.Op{Type: session.OpDelete, Key: "note"}); err != nil {
		t.Fatal(err)
	}
	reader.set("colour", "red")
}

// TestStalledSocketHoldsNoDispatcher: the dispatcher that delivers a
// session's changes writes a socket's frames itself only while the
// kernel takes them at once: a socket of the same session whose client
// stopped reading, its kernel buffers full and a frame write waiting out
// WriteWait, does not hold the delivery to the session's other sockets.
// Each change reaches the reading socket well within WriteWait of its
// write, until the stalled one is closed.
func TestStalledSocketHoldsNoDispatcher(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	const wait = 4 * time.Second
	in := newInstance(t, ns, func(o *hub.Options) {
		o.Metrics = m
		// The close comes from the frame that waits out WriteWait, not
		// from the send buffer.
		o.SendBuffer, o.SendBufferBytes = 1<<20, 1<<30
		o.WriteWait = wait
		o.SessionWriteRate, o.SessionWriteBurst = 1e6, 1e6
	})
	c, reader, id := sessionReader(t, in)
	dialStalled(t, in, c)

	big := `"` + strings.Repeat("x", 16<<10) + `"`
	start := time.Now()
	var slowest time.Duration
	writes := 0
	for ; m.closedWith(int(hub.CloseTooSlow)) == 0; writes++ {
		if writes >= 5000 || time.Since(start) > 40*time.Second {
			t.Fatalf("the stalled socket was not closed with %d after %d writes of 16 KiB, %v", hub.CloseTooSlow, writes, time.Since(start))
		}
		slowest = max(slowest, noteLatency(t, in, id, reader, big))
		if writes >= 800 {
			// The stalled client's buffers are long full (12.5 MiB
			// sent): its frame waits out WriteWait; write slowly
			// meanwhile.
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("stalled socket closed after %d writes of 16 KiB, %v; slowest change to the reader %v", writes, time.Since(start), slowest)
	if slowest > wait/2 {
		t.Fatalf("a change reached the reading socket %v after its write (WriteWait %v): the stalled socket held its delivery", slowest, wait)
	}
}

// TestInvalidFramesRateLimited: frames that do not decode count against
// the socket's rate limit like any other, and another session's socket is
// answered meanwhile.
func TestInvalidFramesRateLimited(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	in := newInstance(t, ns, func(o *hub.Options) { o.Metrics = m; o.RateLimit = 1; o.RateBurst = 10 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	other := newClient(t).dial(in)
	other.expect("welcome")
	const frames = 100
	for range frames {
		s.sendRaw(`{"id":1,"type":"no-such-type"}`)
	}
	other.set("colour", "red")
	for range frames {
		s.expect("error")
	}
	if n := m.errors(hub.CodeRateLimited); n < frames-20 {
		t.Fatalf("%d invalid frames answered, %d of them rate_limited (burst 10)", frames, n)
	}
}

// TestSessionWriteBudget: one session's writers together, sockets and
// HTTP on two instances, append at most the session's budget; another
// session keeps writing meanwhile.
func TestSessionWriteBudget(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const rate, burst = 5.0, 20
	tweak := func(o *hub.Options) {
		o.SessionWriteRate, o.SessionWriteBurst = rate, burst
		o.SnapshotEvery = -1 // count every entry in the log
		o.RateLimit, o.RateBurst = 1000, 1000
	}
	a, b := newInstance(t, ns, tweak), newInstance(t, ns, tweak)
	c, sa, sb := twoTabs(t, a, b)
	sa.set("colour", "red") // the session is written: both tabs have views
	id := sessionID(t, a.store, c.cookie(a))
	start := time.Now()
	const attempts = 150
	var wg sync.WaitGroup
	refused := atomic.Int64{}
	for _, s := range []*sock{sa, sb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range attempts / 3 {
				r := s.reply(s.send(map[string]any{"type": "set", "key": "note", "value": i}))
				if r["code"] == "rate_limited" {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := c.http(a)
		for i := range attempts / 3 {
			req, _ := http.NewRequest("POST", a.srv.URL+"/app/set?theme="+strconv.Itoa(i), nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}
	}()
	// Meanwhile another session writes as usual.
	other := newClient(t).dial(b)
	other.expect("welcome")
	other.set("colour", "red")
	wg.Wait()
	elapsed := time.Since(start)
	n := subjectMsgs(t, a, id)
	// Allowed: the first entry, then on each of the two instances its
	// burst and its rate over the run: written on both at once, each may
	// spend its burst before it sees the other's entries (both did, about
	// one run in twenty, when this allowed one burst and 10 entries).
	allowed := uint64(1 + 2*burst + 2*rate*elapsed.Seconds())
	t.Logf("%d write attempts in %v: %d entries in the log (allowed %d), %d socket writes refused", attempts, elapsed, n, allowed, refused.Load())
	if n > allowed {
		t.Fatalf("the session appended %d entries in %v, budget %d", n, elapsed, allowed)
	}
	if refused.Load() == 0 {
		t.Fatal("no socket write was refused")
	}
	other.set("colour", "blue")
	// A logout is never refused by the budget.
	if st, _ := c.do(a, "POST", "/app/logout", nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	sa.expect("closed")
}

// TestOversizedFramesFlood: sockets sending frames past ReadLimit are
// closed with CloseTooBig, one after the other, while another session's
// socket keeps writing.
func TestOversizedFramesFlood(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.ReadLimit = 1 << 10 })
	other := newClient(t).dial(in)
	other.expect("welcome")
	big := `{"id":1,"type":"set","key":"note","value":"` + strings.Repeat("x", 2<<10) + `"}`
	for i := range 20 {
		s := newClient(t).dial(in)
		s.expect("welcome")
		s.sendRaw(big)
		if m := s.expect("closed"); int(num(m["code"])) != int(hub.CloseTooBig) {
			t.Fatalf("oversized frame %d: %v", i, m)
		}
		if i%5 == 0 {
			other.set("colour", "red")
		}
	}
	other.set("colour", "green")
}
