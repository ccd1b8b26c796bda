package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
)

// subjectCount returns how many entries session id's log holds in
// JetStream.
func subjectCount(t testing.TB, in *instance, id string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(in.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "SESSIONHUB")
	if err != nil {
		t.Fatal(err)
	}
	subj := "sessionhub.ops." + id
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// A stale first cookie after many writes folds one snapshot plus a short
// tail, and gets the values a fresh cookie gets. The stream was made
// without rollups (an older sessionhub): New updates it.
// compacted waits, for 10 seconds at most, until the session's log holds
// at most bound entries (compaction runs in the background, and a busy
// log's is retried after a pause), and returns how many it holds.
func compacted(t testing.TB, in *instance, id string, bound uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := subjectCount(t, in, id)
		if n <= bound || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSnapshotBoundsStaleFold(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	nc := connect(t, ns)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SESSIONHUB", Subjects: []string{"sessionhub.ops.*"}}); err != nil {
		t.Fatal(err)
	}

	const every, writes = 16, 300
	tweak := func(o *hub.Options) {
		o.SessionWriteRate = 1e6
		o.SnapshotEvery = every
		o.RateLimit, o.RateBurst = 10000, 10000
	}
	in := newInstance(t, ns, tweak)
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	first := c.cookie(in)
	id := sessionID(t, in.store, first)
	keys := []string{"k0", "k1", "k2", "note"}
	want := map[string]any{}
	for i := range writes {
		k := keys[i%len(keys)]
		s.set(k, fmt.Sprintf("v%d", i))
		want[k] = fmt.Sprintf("v%d", i)
	}
	if st, _ := c.do(in, "POST", "/hub/flush", nil); st != http.StatusOK {
		t.Fatalf("flush: %d", st)
	}
	fresh := c.cookie(in)

	// The log holds a snapshot and the entries since; without snapshots
	// it would hold every write.
	n := compacted(t, in, id, 2*every)
	t.Logf("%d writes, %d entries in the log", writes, n)
	if n > 2*every {
		t.Fatalf("the log holds %d entries after %d writes, want at most %d (one snapshot and a short tail)", n, writes, 2*every)
	}

	// A new instance has no view of the session: the first cookie's fold
	// reads the log from JetStream, i.e. at most those n entries.
	b := newInstance(t, ns, tweak)
	for name, ck := range map[string]string{"first cookie": first, "fresh cookie": fresh} {
		other := newClient(t)
		other.setCookie(b, ck)
		_, got := other.do(b, "GET", "/app/get", nil)
		for k, v := range want {
			if values(got)[k] != v {
				t.Errorf("%s: %s = %v, want %v", name, k, values(got)[k], v)
			}
		}
	}

	// The writer's socket held the state already: no snapshot reached it
	// as a change (each change is one write's single op).
	for _, m := range append(s.backlog, drain(s)...) {
		if m["type"] == "change" {
			if ops, _ := m["ops"].([]any); len(ops) != 1 {
				t.Fatalf("a socket holding the state got a snapshot as a change: %v", m)
			}
		}
	}
}

// drain returns the messages s has received and not read yet.
func drain(s *sock) []map[string]any {
	var out []map[string]any
	for {
		select {
		case m := <-s.in:
			out = append(out, m)
		default:
			return out
		}
	}
}

// HTTP and socket writers on two instances write one session while
// snapshots keep compacting its log: every acknowledged write is in the
// final fold, each writer's writes in their order, and a socket sees the
// changes in sequence order.
func TestSnapshotConcurrentWritersLoseNothing(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	tweak := func(o *hub.Options) {
		o.SessionWriteRate = 1e6
		o.SnapshotEvery = 8
		o.RateLimit, o.RateBurst = 10000, 10000
	}
	a := newInstance(t, ns, tweak)
	b := newInstance(t, ns, tweak)
	c := newClient(t)
	seed := c.dial(a)
	seed.expect("welcome")
	ck := c.cookie(a)
	id := sessionID(t, a.store, ck)
	observer := newClient(t)
	observer.setCookie(b, ck)
	watch := observer.dial(b)
	watch.expect("welcome")

	const httpWrites, socketWrites = 30, 60
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i, in := range []*instance{a, a, b, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			u, _ := url.Parse(in.srv.URL)
			jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: ck, Path: "/"}})
			hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			for n := range httpWrites {
				resp, err := hc.Post(fmt.Sprintf("%s/app/set?h%d=%d", in.srv.URL, i, n), "", nil)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("writer h%d: write %d: status %d", i, n, resp.StatusCode)
					return
				}
			}
		}()
	}
	// Sockets are driven from this goroutine (the harness's sock is not
	// safe for concurrent use), alternating between the two instances.
	sockClient := newClient(t)
	sockClient.setCookie(a, ck)
	sa := sockClient.dial(a)
	sa.expect("welcome")
	sockClient.setCookie(b, ck)
	sb := sockClient.dial(b)
	sb.expect("welcome")
	for n := range socketWrites {
		sa.set("k0", n)
		sb.set("k1", n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := map[string]any{"k0": float64(socketWrites - 1), "k1": float64(socketWrites - 1)}
	for i := range 4 {
		want[fmt.Sprintf("h%d", i)] = fmt.Sprint(httpWrites - 1)
	}
	fresh := newInstance(t, ns, tweak)
	for _, in := range []*instance{a, b, fresh} {
		other := newClient(t)
		other.setCookie(in, ck)
		_, got := other.do(in, "GET", "/app/get", nil)
		for k, v := range want {
			if values(got)[k] != v {
				t.Errorf("fold at %s: %s = %v, want %v: an acknowledged write was lost", in.srv.URL, k, values(got)[k], v)
			}
		}
	}
	total := 4*httpWrites + 2*socketWrites
	n := compacted(t, a, id, uint64(total)/2-1)
	t.Logf("%d writes, %d entries in the log", total, n)
	if n >= uint64(total)/2 {
		t.Errorf("the log holds %d entries after %d writes: snapshots did not compact it", n, total)
	}

	// The watcher on B saw the changes in sequence order, and each key's
	// values in the order they were written.
	var last uint64
	lastK := map[string]float64{"k0": -1, "k1": -1}
	for seen := 0; lastK["k0"] < socketWrites-1 || lastK["k1"] < socketWrites-1; seen++ {
		m := watch.next()
		if m["type"] != "change" {
			continue
		}
		seq := uint64(num(m["seq"]))
		if seq <= last {
			t.Fatalf("change %d after %d: out of order", seq, last)
		}
		last = seq
		ops, _ := m["ops"].([]any)
		for _, o := range ops {
			op := o.(map[string]any)
			k, _ := op["key"].(string)
			prev, ok := lastK[k]
			if !ok || op["type"] != "set" {
				continue
			}
			if v := num(op["value"]); v < prev {
				t.Fatalf("%s went from %v back to %v", k, prev, v)
			} else {
				lastK[k] = v
			}
		}
	}
}

// An honest session written three times MaxOpsPerSession entries, by a
// socket and HTTP requests, never gets too_many_pending: snapshots keep
// its log short. Without them it does.
func TestSnapshotKeepsHonestSessionBelowLimit(t *testing.T) {
	t.Parallel()
	const limit = 40
	for _, tc := range []struct {
		name      string
		every     int
		wantLimit bool
	}{
		{"snapshots", 0, false}, // the default: MaxOpsPerSession/4
		{"no snapshots", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := startNATS(t)
			in := newInstance(t, ns, func(o *hub.Options) {
				o.MaxOpsPerSession, o.SnapshotEvery = limit, tc.every
				o.RateLimit, o.RateBurst = 10000, 10000
			})
			c := newClient(t)
			s := c.dial(in)
			s.expect("welcome")
			limited := false
			for n := 0; n < 3*limit && !limited; n++ {
				if n%3 == 2 {
					if st, _ := c.do(in, "POST", fmt.Sprintf("/app/set?user_id=%d", n), nil); st != http.StatusNoContent {
						limited = true
						if !tc.wantLimit {
							t.Fatalf("HTTP write %d: status %d", n, st)
						}
					}
					continue
				}
				r := s.reply(s.send(map[string]any{"type": "set", "key": "note", "value": n}))
				if r["type"] != "ack" {
					limited = true
					if !tc.wantLimit || r["code"] != "too_many_pending" {
						t.Fatalf("socket write %d: %v", n, r)
					}
				}
			}
			if limited != tc.wantLimit {
				t.Fatalf("limit reached: %v, want %v", limited, tc.wantLimit)
			}
		})
	}
}

// A socket that resumes across a snapshot (the entries after its seq were
// rolled up) converges on the current values, whichever instance it
// resumes on.
func TestResumeAcrossSnapshot(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	tweak := func(o *hub.Options) {
		o.SessionWriteRate = 1e6
		o.SnapshotEvery, o.ViewTail = 8, 4
		o.RateLimit, o.RateBurst = 10000, 10000
	}
	a := newInstance(t, ns, tweak)
	c := newClient(t)
	s := c.dial(a)
	s.expect("welcome")
	seq0 := s.set("note", "n0")
	s.set("k9", "gone soon")
	seq1 := s.set("colour", "red")
	_ = s.ws.CloseNow()

	w := newClient(t)
	w.setCookie(a, c.cookie(a))
	ws := w.dial(a)
	ws.expect("welcome")
	r := ws.reply(ws.send(map[string]any{"type": "delete", "key": "k9"}))
	if r["type"] != "ack" {
		t.Fatalf("delete: %v", r)
	}
	for n := range 40 {
		ws.set([]string{"k0", "k1", "k2"}[n%3], n)
	}
	ws.set("note", "last")
	id := sessionID(t, a.store, c.cookie(a))
	if n := compacted(t, a, id, 20); n > 20 {
		t.Fatalf("no snapshot: %d entries", n)
	}

	for _, tc := range []struct {
		name  string
		in    *instance
		after uint64
		state map[string]any // the client's values at after
	}{
		{"same instance", a, seq1, map[string]any{"note": "n0", "k9": "gone soon", "colour": "red"}},
		{"other instance", newInstance(t, ns, tweak), seq0, map[string]any{"note": "n0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newClient(t)
			rc.setCookie(tc.in, c.cookie(a))
			rs := rc.dial(tc.in)
			welcome := rs.expect("welcome")
			rs.send(map[string]any{"type": "resume", "after": tc.after})
			state := tc.state
			replayed := 0
		loop:
			for {
				m := rs.next()
				switch m["type"] {
				case "resumed":
					break loop
				case "reset":
					state = values(m)
					break loop
				case "change":
					replayed++
					ops, _ := m["ops"].([]any)
					for _, o := range ops {
						op := o.(map[string]any)
						switch op["type"] {
						case "set":
							state[op["key"].(string)] = op["value"]
						case "delete":
							delete(state, op["key"].(string))
						case "clear":
							clear(state)
						}
					}
				case "closed":
					t.Fatalf("closed during resume: %v", m)
				}
			}
			wantJSON, _ := json.Marshal(values(welcome))
			gotJSON, _ := json.Marshal(state)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("after resume from %d: %s, want %s", tc.after, gotJSON, wantJSON)
			}
			t.Logf("resume from %d: %d changes replayed, then %v", tc.after, replayed, state)
			if replayed > 20 {
				t.Fatalf("resume replayed %d changes: the snapshot did not replace the entries", replayed)
			}
		})
	}
}

// directGets counts the direct gets of session id's log that reach
// JetStream from now on (every read of the log, fetch or probe, is one).
func directGets(t testing.TB, ns *natsserver.Server, in *instance, id string) *atomic.Int64 {
	t.Helper()
	nc := connect(t, ns)
	var n atomic.Int64
	subj := "sessionhub.ops." + id
	sub, err := nc.Subscribe(hub.DirectGetSubject(in.hub), func(m *nats.Msg) {
		if strings.Contains(string(m.Data), subj) {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &n
}

// A view that holds the whole retained log compacts it from what it
// holds: a socket's session written many times SnapshotEvery is
// compacted without a single read of its log from JetStream.
func TestSnapshotFromTheView(t *testing.T) {
	t.Parallel()
	const every, writes = 8, 80
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.SnapshotEvery, o.SessionWriteRate = every, 1e6
		o.RateLimit, o.RateBurst = 10000, 10000
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	s.set("colour", "teal") // the first write: the view reads the (empty) log
	id := sessionID(t, in.store, c.cookie(in))
	gets := directGets(t, ns, in, id)
	for i := range writes {
		s.set("note", fmt.Sprint(i))
	}
	if n := compacted(t, in, id, every+1); n > every+1 {
		t.Fatalf("the log holds %d entries after %d writes: not compacted", n, writes+1)
	}
	if n := gets.Load(); n != 0 {
		t.Fatalf("%d reads of the log from JetStream while compacting it: the view holds it", n)
	}
	other := newClient(t)
	other.setCookie(in, c.cookie(in))
	if _, got := other.do(in, "GET", "/app/get", nil); values(got)["note"] != fmt.Sprint(writes-1) || values(got)["colour"] != "teal" {
		t.Fatalf("the compacted log folds to %v", values(got))
	}
}

// A socket that keeps appends in flight still gets its log compacted
// while it writes: at a moment none of them is in flight, or, once its
// log grew long, in a compaction's turn, which holds the session's next
// pipelined appends until its snapshot, made on the log's last entry, is
// published (TestCompactionTurnOpensOnPublish).
func TestSnapshotWhilePipelined(t *testing.T) {
	t.Parallel()
	const every, writes = 4, 2000
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.SnapshotEvery, o.SessionWriteRate = every, 1e6
		o.RateLimit, o.RateBurst = 1e6, 1e6
	})
	c := newClient(t)
	s := c.dial(in)
	s.expect("welcome")
	s.set("colour", "teal")
	id := sessionID(t, in.store, c.cookie(in))

	// Snapshots made while the writes are in flight, counted on the
	// session's live subject (sockets are not sent a snapshot of what
	// they hold).
	var snaps atomic.Int64
	watch := connect(t, ns)
	sub, err := watch.Subscribe("sessionhub.live."+id, func(m *nats.Msg) {
		if m.Header.Get("Sessionhub-Snapshot") != "" {
			snaps.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// Send every set without waiting (the hub keeps up to 32 in
	// flight), reading the replies meanwhile.
	done := make(chan error, 1)
	go func() {
		for i := range writes {
			b, _ := json.Marshal(map[string]any{"id": i + 2, "type": "set", "key": "note", "value": fmt.Sprint(i)})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.ws.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var duringWrites int64
	entries := map[float64]bool{} // the entries the writes before the count landed in (a batch shares one)
	for got := 0; got < writes; {
		m := s.next()
		switch m["type"] {
		case "ack":
			got++
			if got < writes-every {
				entries[num(m["seq"])] = true
			}
			if got == writes-every {
				duringWrites = snaps.Load()
			}
		case "error", "closed":
			t.Fatalf("reply %d: %v", got, m)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d snapshots while %d writes in %d entries were in flight", duringWrites, writes-every, len(entries))
	// With appends always in flight, a compaction takes its turn once
	// 4*every entries are new and waits for the socket's append in flight
	// and its next batch to land: at least one snapshot per 4*every + 2
	// entries.
	per := 4*every + 2
	if len(entries) < 3*per {
		t.Fatalf("%d writes landed in %d entries, too few to count compactions by", writes-every, len(entries))
	}
	if min := int64(len(entries) / per); duringWrites < min {
		t.Fatalf("%d snapshots made while the socket kept appends in flight, want at least %d: compaction never got its turn", duringWrites, min)
	}
	other := newClient(t)
	other.setCookie(in, c.cookie(in))
	if _, got := other.do(in, "GET", "/app/get", nil); values(got)["note"] != fmt.Sprint(writes-1) {
		t.Fatalf("the compacted log folds to %v, want note=%d", values(got), writes-1)
	}
}
