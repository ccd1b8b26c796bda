package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// Every error code of the protocol, each from the situation that causes
// it, and none of them closes the socket.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.MaxOpsPerSession = 3
		o.SnapshotEvery = -1 // no compaction: the log fills up (TestSnapshotKeepsHonestSessionBelowLimit has it on)
		o.RateLimit, o.RateBurst = 1000, 1000
	})
	in.hub.Handle("boom", func(ctx context.Context, ev *hub.Event) (any, error) {
		return nil, errors.New("database password is hunter2") // must not leak
	})
	in.hub.Handle("refuse", func(ctx context.Context, ev *hub.Event) (any, error) {
		return nil, hub.Errorf(hub.CodeForbidden, "not today")
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")

	big := strings.Repeat("x", 4000)
	cases := []struct {
		name, frame, code string
	}{
		{"not JSON", `{"id":1,"type":`, "invalid"},
		{"not an object", `[1,2]`, "invalid"},
		{"unknown type", `{"id":2,"type":"explode"}`, "invalid"},
		{"missing type", `{"id":3}`, "invalid"},
		{"missing id", `{"type":"set","key":"colour","value":"red"}`, "invalid"},
		{"set without key", `{"id":4,"type":"set","value":"red"}`, "invalid"},
		{"set without value", `{"id":5,"type":"set","key":"colour"}`, "invalid"},
		{"resume without after", `{"id":6,"type":"resume"}`, "invalid"},
		{"event without name", `{"id":7,"type":"event"}`, "invalid"},
		{"key not client-writable", `{"id":8,"type":"set","key":"user_id","value":"admin"}`, "forbidden"},
		{"delete not client-writable", `{"id":9,"type":"delete","key":"user_id"}`, "forbidden"},
		{"readable but not writable", `{"id":10,"type":"set","key":"theme","value":"dark"}`, "forbidden"},
		{"validator refuses", `{"id":11,"type":"set","key":"colour","value":42}`, "forbidden"},
		{"cookie would not fit", fmt.Sprintf(`{"id":12,"type":"set","key":"note","value":%q}`, big), "too_large"},
		{"unknown event", `{"id":13,"type":"event","name":"nope"}`, "not_found"},
		{"key over 256 bytes", fmt.Sprintf(`{"id":16,"type":"set","key":%q,"value":1}`, strings.Repeat("k", 257)), "invalid"},
		// A set's value is read as JSON when its frame is decoded, and
		// not scanned again before it is staged (validateDecoded): a frame
		// whose value is not JSON is not JSON, and its id goes unread.
		{"not JSON: a value", `{"id":18,"type":"set","key":"note","value":tru}`, "invalid"},
		{"not JSON: a broken object value", `{"id":19,"type":"set","key":"note","value":{"a":}}`, "invalid"},
		{"not JSON: a control character in a value", "{\"id\":20,\"type\":\"set\",\"key\":\"note\",\"value\":\"a\x01\"}", "invalid"},
		{"event name over 128 bytes", fmt.Sprintf(`{"id":17,"type":"event","name":%q}`, strings.Repeat("e", 129)), "invalid"},
		{"handler error is internal", `{"id":14,"type":"event","name":"boom"}`, "internal"},
		{"handler error keeps its code", `{"id":15,"type":"event","name":"refuse"}`, "forbidden"},
	}
	for _, tc := range cases {
		s.sendRaw(tc.frame)
		m := s.expect("error")
		if m["code"] != tc.code {
			t.Errorf("%s: code %v, want %s (%v)", tc.name, m["code"], tc.code, m)
		}
		// The reply names the request when its id could be read, 0 when not.
		wantID := float64(0)
		if id := regexp.MustCompile(`"id":([0-9]+)`).FindStringSubmatch(tc.frame); id != nil && !strings.HasPrefix(tc.name, "not JSON") {
			wantID, _ = strconv.ParseFloat(id[1], 64)
		}
		if m["id"] != wantID {
			t.Errorf("%s: error id %v, want %v", tc.name, m["id"], wantID)
		}
		if strings.Contains(fmt.Sprint(m["message"]), "hunter2") {
			t.Errorf("%s: internal detail leaked: %v", tc.name, m)
		}
	}
	// Nothing was staged by any of them.
	if _, body := c.do(in, "POST", "/hub/flush", nil); uint64(num(body["seq"])) != 0 {
		t.Fatalf("a refused write was staged: %v", body)
	}

	// too_many_pending: the log holds 3 entries of this session at most.
	for i := range 3 {
		s.set("colour", fmt.Sprintf("c%d", i))
	}
	r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "c3"}))
	if r["code"] != "too_many_pending" {
		t.Fatalf("4th write: %v", r)
	}
	// The socket is still open and the acknowledged writes are all there.
	if _, body := c.do(in, "POST", "/hub/flush", nil); values(body)["colour"] != "c2" {
		t.Fatalf("after too_many_pending: %v", body)
	}
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.RateLimit, o.RateBurst = 0.001, 2 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	s.set("colour", "a")
	s.set("colour", "b")
	r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "c"}))
	if r["code"] != "rate_limited" {
		t.Fatalf("third write: %v", r)
	}
}

// NATS unreachable: the socket answers unavailable, HTTP keeps working as
// a plain cookie session.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.WriteTimeout = time.Second })
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	s.set("colour", "before")
	ns.Close()
	r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "during"}))
	if r["code"] != "unavailable" {
		t.Fatalf("write with NATS down: %v", r)
	}
	if st, _ := c.do(in, "POST", "/app/set?theme=dark", nil); st != http.StatusNoContent {
		t.Fatalf("HTTP write with NATS down: %d", st)
	}
	_, got := c.do(in, "GET", "/app/get", nil)
	if values(got)["theme"] != "dark" {
		t.Fatalf("plain cookie session: %v", got)
	}
}

func TestForeignOriginRefused(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.AllowedOrigins = []string{"app.example.com"} })
	c := newClient(t)
	_, resp, err := c.tryDial(in, http.Header{"Origin": {"https://evil.example.net"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err=%v resp=%v", err, resp)
	}
	if _, _, err := c.tryDial(in, http.Header{"Origin": {"http://app.example.com"}}); err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	// The page's own host on another scheme, and an allowed host on
	// another scheme than the page's, are other origins.
	for _, o := range []string{"https://" + strings.TrimPrefix(in.srv.URL, "http://"), "https://app.example.com", "ftp://app.example.com"} {
		if _, resp, err := c.tryDial(in, http.Header{"Origin": {o}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %s: err=%v resp=%v", o, err, resp)
		}
	}
	for _, tc := range []struct {
		name   string
		method string
		hdr    http.Header
		status int
	}{
		{"foreign origin", "POST", http.Header{"Origin": {"https://evil.example.net"}}, 403},
		{"cross-site fetch without origin", "POST", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"allowed origin", "POST", http.Header{"Origin": {"http://app.example.com"}, "Sec-Fetch-Site": {"cross-site"}}, 200},
		{"allowed host, other scheme", "POST", http.Header{"Origin": {"https://app.example.com"}, "Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same origin", "POST", http.Header{"Origin": {in.srv.URL}, "Sec-Fetch-Site": {"same-origin"}}, 200},
		{"GET", "GET", nil, 405},
	} {
		if st, _ := c.do(in, tc.method, "/hub/flush", tc.hdr); st != tc.status {
			t.Errorf("flush, %s: %d, want %d", tc.name, st, tc.status)
		}
	}
}

func TestOversizeFrameCloses1009(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.ReadLimit = 1024 })
	s := newClient(t).dial(in)
	s.expect("welcome")
	s.sendRaw(fmt.Sprintf(`{"id":1,"type":"set","key":"note","value":%q}`, strings.Repeat("y", 2048)))
	m := s.expect("closed")
	if websocket.StatusCode(num(m["code"])) != websocket.StatusMessageTooBig {
		t.Fatalf("close: %v", m)
	}
}

func TestBinaryFrameCloses1008(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	s := newClient(t).dial(in)
	s.expect("welcome")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.ws.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	if m := s.expect("closed"); websocket.StatusCode(num(m["code"])) != websocket.StatusPolicyViolation {
		t.Fatalf("close: %v", m)
	}
}

// A socket that stops reading is closed with CloseTooSlow once its buffer is full,
// while another socket of the same session keeps receiving every change
// and the writer is never blocked.
func TestSlowReaderClosed(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	m := &counting{}
	in := newInstance(t, ns, func(o *hub.Options) {
		o.SendBuffer = 64
		o.WriteWait = 30 * time.Second
		o.Metrics = m
		o.SessionWriteRate = 1e6 // 400 writes in a second or two: the budget is not what this test is about
		// 400 entries of 60 KB: compacting them (a whole-log read of up to
		// 4 MB each time) is not what this test is about, and costs a
		// loaded CI machine tens of seconds.
		o.SnapshotEvery = -1
	})
	c := newClient(t)
	fast := c.dial(in)
	fast.expect("welcome")
	// The slow socket reads its welcome, then nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(in.srv.URL, "http") + "/hub/ws"
	slow, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http(in)})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	if _, _, err := slow.Read(ctx); err != nil {
		t.Fatal(err)
	}
	id := sessionID(t, in.store, c.cookie(in))
	// Server-side writes skip the cookie budget: 60 KB entries fill the
	// slow socket's TCP buffers and then its send buffer quickly.
	value := strings.Repeat("z", 60000)
	const writes = 400
	for i := range writes {
		op, _ := session.SetOp("note", json.RawMessage(fmt.Sprintf(`"%s-%d"`, value, i)))
		if _, err := in.hub.Write(ctx, id, op); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The fast socket got every change, in order.
	var last float64
	for range writes {
		m := fast.expect("change")
		if num(m["seq"]) <= last {
			t.Fatalf("out of order: %v after %v", m["seq"], last)
		}
		last = num(m["seq"])
	}
	// The slow one was closed with CloseTooSlow: reading what it buffered
	// ends in that close or, when the close frame itself could not be
	// written within WriteWait (the socket's kernel buffer is bounded), in
	// the connection's end. The server side says which code it closed with.
	for {
		_, _, err := slow.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != hub.CloseTooSlow && code != -1 {
				t.Fatalf("slow socket: %v (code %d)", err, code)
			}
			break
		}
	}
	waitFor(t, "the slow socket closed with CloseTooSlow", func() bool { return m.closedWith(int(hub.CloseTooSlow)) == 1 })
}

func sessionID(t testing.TB, st *session.Store, cookie string) string {
	t.Helper()
	s, err := st.Decode(cookie)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID()
}

// Logout closes every socket of the session on every instance with 4000,
// a rotation with CloseSessionRotated.
func TestEndAndRotateCloseSockets(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	id := sessionID(t, a.store, c.cookie(a))
	if err := a.hub.End(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*sock{"A": sa, "B": sb} {
		if m := s.expect("closed"); websocket.StatusCode(num(m["code"])) != hub.CloseSessionEnded {
			t.Errorf("%s: %v", name, m)
		}
	}

	c2 := newClient(t)
	s2 := c2.dial(b)
	s2.expect("welcome")
	if err := a.hub.Rotated(context.Background(), sessionID(t, b.store, c2.cookie(b))); err != nil {
		t.Fatal(err)
	}
	if m := s2.expect("closed"); websocket.StatusCode(num(m["code"])) != hub.CloseSessionRotated {
		t.Errorf("rotated: %v", m)
	}
}

// A handler behind Hub.Middleware that calls session.End or Rotate needs
// no hub call of its own: the middleware closes the session's sockets on
// every instance (4000 for a logout, 4100 for a login, which moves them to
// the new ID), and a logout is final: the logged-out cookie, replayed,
// brings nothing back.
func TestMiddlewareEndsAndRotates(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	sa.set("colour", "red")
	before := sessionID(t, a.store, c.cookie(a))
	if code, _ := c.do(a, "POST", "/app/login?name=ada", nil); code != http.StatusNoContent {
		t.Fatalf("login: %d", code)
	}
	for name, s := range map[string]*sock{"A": sa, "B": sb} {
		if m := s.expect("closed"); websocket.StatusCode(num(m["code"])) != hub.CloseSessionRotated {
			t.Errorf("login, socket on %s: %v, want %d", name, m, hub.CloseSessionRotated)
		}
	}
	after := sessionID(t, a.store, c.cookie(a))
	if after == before || after == "" {
		t.Fatalf("login kept the session ID %q", before)
	}
	// The tabs reconnect with the new cookie: the same values, a new ID.
	sa, sb = c.dial(a), c.dial(b)
	for name, s := range map[string]*sock{"A": sa, "B": sb} {
		if m := s.expect("welcome"); values(m)["colour"] != "red" {
			t.Errorf("after login, socket on %s: %v, want colour red", name, m)
		}
	}
	stale := c.cookie(a)
	if code, _ := c.do(b, "POST", "/app/logout", nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	for name, s := range map[string]*sock{"A": sa, "B": sb} {
		if m := s.expect("closed"); websocket.StatusCode(num(m["code"])) != hub.CloseSessionEnded {
			t.Errorf("logout, socket on %s: %v, want %d", name, m, hub.CloseSessionEnded)
		}
	}
	replay := newClient(t)
	replay.setCookie(a, stale)
	if _, got := replay.do(a, "GET", "/app/get", nil); len(values(got)) != 0 {
		t.Fatalf("the logged-out cookie, replayed, still has %v", values(got))
	}
}

// Shutdown closes sockets with 1001 Going Away.
func TestShutdownGoingAway(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	s := newClient(t).dial(in)
	s.expect("welcome")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if m := s.expect("closed"); websocket.StatusCode(num(m["code"])) != websocket.StatusGoingAway {
		t.Fatalf("close: %v", m)
	}
}

// After End, no copy of the session's cookie brings it back: a stale
// cookie's flush deletes it, a request sees an empty session, and a
// handshake starts a new session.
func TestEndedSessionStaysEnded(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c := newClient(t)
	s := c.dial(a)
	s.expect("welcome")
	s.set("colour", "secret-blue")
	stale := c.cookie(a)
	id := sessionID(t, a.store, stale)
	if err := a.hub.End(context.Background(), id); err != nil {
		t.Fatal(err)
	}

	// A flush in flight at logout, at another instance, with the old cookie.
	req, _ := http.NewRequest("POST", b.srv.URL+"/hub/flush", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: stale})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var deleted bool
	for _, ck := range resp.Cookies() {
		deleted = deleted || (ck.Name == "session" && ck.MaxAge < 0)
	}
	if !deleted {
		t.Fatalf("flush of an ended session did not delete the cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	other := newClient(t)
	other.setCookie(b, stale)
	if _, got := other.do(b, "GET", "/app/get", nil); len(values(got)) != 0 {
		t.Fatalf("ended session still readable: %v", got)
	}
	other.setCookie(b, stale)
	s2 := other.dial(b)
	if w := s2.expect("welcome"); len(values(w)) != 0 {
		t.Fatalf("handshake with an ended session's cookie: %v", w)
	}
	if newID := sessionID(t, b.store, other.cookie(b)); newID == id {
		t.Fatal("the handshake kept the ended session's ID")
	}
}

// Writes that each fit but together would not (pipelined on one socket, or
// racing from two sockets of the session) are refused with too_large: the
// cookie always stays writable.
func TestBudgetHoldsUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) { o.RateLimit, o.RateBurst = 1000, 1000 })
	c := newClient(t)
	a := c.dial(in)
	a.expect("welcome")
	b := c.dial(in)
	b.expect("welcome")
	value := strings.Repeat("v", 900) // two fit in a cookie, three do not
	var fromA []uint64
	for i := range 3 { // pipelined: sent without waiting for the acks
		fromA = append(fromA, a.send(map[string]any{"type": "set", "key": fmt.Sprintf("k%d", i), "value": value}))
	}
	fromB := b.send(map[string]any{"type": "set", "key": "k9", "value": value})
	acked := 0
	for _, id := range fromA {
		if r := a.reply(id); r["type"] == "ack" {
			acked++
		} else if r["code"] != "too_large" {
			t.Fatalf("reply: %v", r)
		}
	}
	if r := b.reply(fromB); r["type"] == "ack" {
		acked++
	} else if r["code"] != "too_large" {
		t.Fatalf("reply: %v", r)
	}
	if acked != 2 {
		t.Fatalf("%d writes of 900 bytes acknowledged, want 2: the cookie holds two", acked)
	}
	resp, body := c.do(in, "POST", "/hub/flush", nil)
	if resp != 200 || len(values(body)) != 2 {
		t.Fatalf("flush: %d %v", resp, body)
	}
	if _, got := newClientWith(t, in, c.cookie(in)).do(in, "GET", "/app/get", nil); len(values(got)) != 2 {
		t.Fatalf("the flushed cookie does not hold both writes: %v", got)
	}
}

func newClientWith(t *testing.T, in *instance, cookie string) *client {
	c := newClient(t)
	c.setCookie(in, cookie)
	return c
}

// A plain GET of the socket's path gets 426 and no session cookie.
func TestNotAnUpgrade(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	resp, err := http.Get(in.srv.URL + "/hub/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || len(resp.Cookies()) != 0 {
		t.Fatalf("plain GET: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// A session the cookie can no longer carry (server-side writes skip the
// budget): the bridge answers 413 too_large and leaves the cookie alone,
// rather than a version the client does not have.
func TestFlushTooLarge(t *testing.T) {
	t.Parallel()
	in, c, _ := oneTab(t, nil) // the socket holds the session open
	before := c.cookie(in)
	op, _ := session.SetOp("note", json.RawMessage(fmt.Sprintf("%q", strings.Repeat("x", 5000))))
	if _, err := in.hub.Write(context.Background(), sessionID(t, in.store, before), op); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", in.srv.URL+"/hub/flush", nil)
	req.AddCookie(&http.Cookie{Name: "session", Value: before})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body.Error.Code != "too_large" || len(resp.Cookies()) != 0 {
		t.Fatalf("flush: %d %+v cookies %v", resp.StatusCode, body, resp.Cookies())
	}
}

// A handshake whose cookie does not verify (garbage, or signed with a key
// the store does not hold) starts a new session: an empty welcome, and
// the new session's cookie on the 101.
func TestHandshakeWithARefusedCookieStartsASession(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	other, err := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Encode(session.Snapshot{ID: session.NewID(), Values: map[string]json.RawMessage{"colour": []byte(`"red"`)}})
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{"garbage": "not-a-cookie", "another key": forged} {
		c := newClient(t)
		c.setCookie(in, value)
		s := c.dial(in)
		if w := s.expect("welcome"); len(values(w)) != 0 {
			t.Errorf("%s: welcome %v, want an empty session", name, w)
		}
		if got := c.cookie(in); got == value || !session.ValidID(sessionID(t, in.store, got)) {
			t.Errorf("%s: the 101 did not set a new session's cookie", name)
		}
	}
}

// An entry over MaxEntrySize (64 KiB by default) is refused with
// too_large by JetStream's message size limit, saying so (not that the
// cookie would not fit), and nothing is staged.
func TestEntryOverMaxEntrySize(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, nil)
	id := session.NewID()
	op, err := session.SetOp("note", json.RawMessage(`"`+strings.Repeat("x", 70<<10)+`"`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.hub.Write(context.Background(), id, op)
	var e *hub.Error
	if !errors.Is(err, hub.ErrTooLarge) || !errors.As(err, &e) || !strings.Contains(e.Message, "entry") || strings.Contains(e.Message, "cookie") {
		t.Fatalf("a 70 KiB entry: %v, want too_large about the log's entry limit", err)
	}
	small, _ := session.SetOp("note", json.RawMessage(`"fits"`))
	if _, err := in.hub.Write(context.Background(), id, small); err != nil {
		t.Fatalf("the session's next, small write: %v", err)
	}
}
