package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// apiDo posts body to the server API with the bearer token and returns
// the status, the headers and the decoded answer.
func apiDo(t *testing.T, s *Server, path, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, m
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// jsFor returns a JetStream client on the server's embedded NATS.
func jsFor(t *testing.T, s *Server) jetstream.JetStream {
	t.Helper()
	nc, err := s.ns.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// sessionOf returns the ID of the session the browser's cookie holds.
func sessionOf(t *testing.T, s *Server, b *browser) string {
	t.Helper()
	snap, err := s.Store().Decode(b.cookie())
	if err != nil {
		t.Fatal(err)
	}
	return snap.ID()
}

const setColour = `{"ops":[{"type":"set","key":"colour","value":"red"}]}`

// A session whose log holds its maximum of entries (and cannot be
// compacted) gets 429 too_many_pending from /ops; a logout still passes.
func TestServerAPIFullLog(t *testing.T) {
	t.Parallel()
	const max = 3
	s := startServer(t, func(c *Config) { c.APIToken, c.MaxOpsPerSession, c.SnapshotEvery = "t", max, -1 })
	base := "/hub/api/sessions/" + strings.Repeat("cd", 16)
	for i := range max {
		if status, _, m := apiDo(t, s, base+"/ops", "t", setColour); status != http.StatusOK {
			t.Fatalf("write %d of %d: %d %v", i+1, max, status, m)
		}
	}
	status, _, m := apiDo(t, s, base+"/ops", "t", setColour)
	if status != http.StatusTooManyRequests || errCode(m) != "too_many_pending" {
		t.Fatalf("a write to a full log: %d %v, want 429 too_many_pending", status, m)
	}
	if status, _, m := apiDo(t, s, base+"/end", "t", ""); status != http.StatusOK {
		t.Fatalf("end of a session with a full log: %d %v, want 200", status, m)
	}
}

// The session's write budget holds for the server API too: once a
// session open on the instance has spent it, /ops answers 429
// rate_limited and stages nothing; a logout always passes.
func TestServerAPIWriteBudget(t *testing.T) {
	t.Parallel()
	const burst = 3
	s := startServer(t, func(c *Config) { c.APIToken, c.SessionWriteRate, c.SessionWriteBurst = "t", 0.001, burst })
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")
	base := "/hub/api/sessions/" + sessionOf(t, s, b)
	ok := 0
	for ; ; ok++ {
		if ok > burst+1 {
			t.Fatalf("%d writes past a burst of %d were all accepted", ok, burst)
		}
		body := `{"ops":[{"type":"set","key":"colour","value":"c` + itoa(ok) + `"}]}`
		status, _, m := apiDo(t, s, base+"/ops", "t", body)
		if status == http.StatusTooManyRequests {
			if errCode(m) != "rate_limited" {
				t.Fatalf("write %d: 429 %v, want rate_limited", ok, m)
			}
			break
		}
		if status != http.StatusOK {
			t.Fatalf("write %d: %d %v", ok, status, m)
		}
		ws.expect("change") // the session's view saw it: the budget is debited
	}
	if ok < burst {
		t.Fatalf("refused after %d writes, within the burst of %d", ok, burst)
	}
	if _, v := b.doJSON("POST", "/hub/flush", ""); values(v)["colour"] != "c"+itoa(ok-1) {
		t.Fatalf("after the refused write the session holds %v, want the last accepted c%d", values(v), ok-1)
	}
	if status, _, m := apiDo(t, s, base+"/end", "t", ""); status != http.StatusOK {
		t.Fatalf("end past the budget: %d %v, want 200", status, m)
	}
	if code := ws.closed(); code != 4000 {
		t.Fatalf("after the end the socket closed with %d, want 4000", code)
	}
}

// A JetStream failure that is not unavailability (the stream sealed by an
// operator: JetStream refuses every append with its own error) answers 500
// internal with the generic message; the details stay in the log.
func TestServerAPIInternal(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *Config) { c.APIToken = "t" })
	js := jsFor(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, s.Hub().Options().Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	status, hdr, m := apiDo(t, s, "/hub/api/sessions/"+strings.Repeat("ef", 16)+"/ops", "t", setColour)
	if status != http.StatusInternalServerError || errCode(m) != "internal" {
		t.Fatalf("a write to a sealed stream: %d %v, want 500 internal", status, m)
	}
	if msg := errMessage(m); msg != "internal error" {
		t.Fatalf("500's message %q, want the generic \"internal error\"", msg)
	}
	if ra := hdr.Get("Retry-After"); ra != "" {
		t.Fatalf("500 with Retry-After %q: only unavailable says when to retry", ra)
	}
}

// With JetStream stopped while NATS stays up (nats-server disables it when
// its store fails), /ops and /end answer 503 unavailable with
// Retry-After: 1, and the failed end closes no socket: the logout did not
// happen.
func TestServerAPIJetStreamDown(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *Config) { c.APIToken = "t" })
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")
	base := "/hub/api/sessions/" + sessionOf(t, s, b)
	if err := s.ns.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []struct{ path, body string }{{"/ops", setColour}, {"/end", ""}} {
		status, hdr, m := apiDo(t, s, base+ep.path, "t", ep.body)
		if status != http.StatusServiceUnavailable || errCode(m) != "unavailable" || hdr.Get("Retry-After") != "1" {
			t.Fatalf("%s without JetStream: %d %v Retry-After %q, want 503 unavailable, Retry-After: 1", ep.path, status, m, hdr.Get("Retry-After"))
		}
	}
	// The socket is still open: its request is answered.
	if r := ws.request(map[string]any{"type": "set", "key": "colour", "value": "blue"}); r["type"] != "error" || r["code"] != "unavailable" {
		t.Fatalf("a socket write without JetStream: %v, want error unavailable", r)
	}
}

// /end ends the session as a logout does: its socket closes with 4000,
// the end is recorded in the revocation bucket and as an end op in the
// session's log, and the next flush of the session's cookie, a stale copy
// too, deletes the cookie and answers no values.
func TestServerAPIEndRecorded(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *Config) { c.APIToken = "t" })
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")
	if r := ws.request(map[string]any{"type": "set", "key": "colour", "value": "red"}); r["type"] != "ack" {
		t.Fatalf("set: %v", r)
	}
	if _, v := b.doJSON("POST", "/hub/flush", ""); values(v)["colour"] != "red" {
		t.Fatalf("flush: %v", v)
	}
	stale := b.cookie()
	id := sessionOf(t, s, b)

	if status, _, m := apiDo(t, s, "/hub/api/sessions/"+id+"/end", "t", ""); status != http.StatusOK {
		t.Fatalf("end: %d %v", status, m)
	}
	if code := ws.closed(); code != 4000 {
		t.Fatalf("socket closed with %d, want 4000", code)
	}

	js := jsFor(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := s.Hub().Options()
	st, err := js.Stream(ctx, o.Stream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(ctx, o.Subject+".ops."+id)
	if err != nil {
		t.Fatal(err)
	}
	var ops []struct{ Type string }
	if err := json.Unmarshal(last.Data, &ops); err != nil || len(ops) != 1 || ops[0].Type != "end" {
		t.Fatalf("the session's last log entry is %s, want one end op", last.Data)
	}
	kv, err := js.KeyValue(ctx, o.RevocationBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, id); err != nil {
		t.Fatalf("revocation of %s: %v", id, err)
	}

	for _, name := range []string{"the cookie", "a stale copy"} {
		if name == "a stale copy" {
			b.jar.SetCookies(mustURL(t, s.URL()), []*http.Cookie{{Name: "session", Value: stale, Path: "/"}})
		}
		status, hdr, data := b.do("POST", "/hub/flush", "", "")
		var v map[string]any
		_ = json.Unmarshal(data, &v)
		if status != http.StatusOK || len(values(v)) != 0 {
			t.Fatalf("flush of %s after the end: %d %s, want 200 and no values", name, status, data)
		}
		deleted := false
		for _, line := range hdr.Values("Set-Cookie") {
			if c, err := http.ParseSetCookie(line); err == nil && c.Name == "session" && c.MaxAge < 0 {
				deleted = true
			}
		}
		if !deleted || b.cookie() != "" {
			t.Fatalf("flush of %s after the end: Set-Cookie %q, want the cookie deleted", name, hdr.Values("Set-Cookie"))
		}
	}
}

// The revocation bucket keeps a logout for the cookie lifetime (-lifetime,
// 31 days by default) plus the clock skew (none in the server) and a
// minute (docs/PROTOCOL.md, SECURITY.md): the bucket's TTL, as JetStream
// holds it, and a logged-out session's record carries no shorter TTL of
// its own.
func TestRevocationTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"default", 0, 31*24*time.Hour + time.Minute},
		{"-lifetime 12h", 12 * time.Hour, 12*time.Hour + time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, func(c *Config) {
				c.APIToken = "t"
				if tc.lifetime > 0 {
					c.Lifetime = tc.lifetime
				}
			})
			js := jsFor(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bucket := s.Hub().Options().RevocationBucket
			if bucket != s.Hub().Options().Stream+"_REVOKED" {
				t.Fatalf("revocation bucket %q, want <Stream>_REVOKED", bucket)
			}
			kv, err := js.KeyValue(ctx, bucket)
			if err != nil {
				t.Fatal(err)
			}
			status, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if status.TTL() != tc.want {
				t.Fatalf("revocation bucket TTL %v, want %v", status.TTL(), tc.want)
			}
			id := strings.Repeat("0f", 16)
			if code, _, m := apiDo(t, s, "/hub/api/sessions/"+id+"/end", "t", ""); code != http.StatusOK {
				t.Fatalf("end: %d %v", code, m)
			}
			st, err := js.Stream(ctx, "KV_"+bucket)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.CachedInfo().Config.MaxAge; got != tc.want {
				t.Fatalf("the bucket's stream keeps records for %v, want %v", got, tc.want)
			}
			rec, err := st.GetLastMsgForSubject(ctx, "$KV."+bucket+"."+id)
			if err != nil {
				t.Fatalf("revocation record: %v", err)
			}
			if ttl := rec.Header.Get(jetstream.MsgTTLHeader); ttl != "" {
				t.Fatalf("the revocation record has a TTL of its own: %s", ttl)
			}
		})
	}
}
