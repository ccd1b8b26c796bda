package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/session"
)

// startHubs starts an embedded nats-server listening on 127.0.0.1 and n
// hub instances on it, sharing one key, behind httptest servers.
func startHubs(t *testing.T, n int) (urls []string, natsURL string) {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	key := session.GenerateKeyPair(false)
	for range n {
		nc, err := ns.Connect(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{key}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		h, err := hub.New(ctx, &hub.Options{
			Store: store, Conn: nc, ClientKeys: loadKeyPolicy(), RateLimit: 10000, RateBurst: 10000, SessionWriteRate: 1e6,
			Logger: slog.New(slog.DiscardHandler),
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/hub/", h)
		mux.HandleFunc("GET /metrics", serveMemMetrics)
		srv := httptest.NewServer(mux)
		t.Cleanup(func() {
			srv.CloseClientConnections()
			srv.Close()
			_ = h.Close()
			nc.Close()
		})
		urls = append(urls, srv.URL)
	}
	return urls, ns.ClientURL()
}

// A short run against two in-process instances: every number the report
// needs is there, and nothing acknowledged is lost.
func TestRunAgainstURLs(t *testing.T) {
	urls, natsURL := startHubs(t, 2)
	cfg := DefaultConfig()
	cfg.URLs, cfg.NATSURL = urls, natsURL
	cfg.Sessions, cfg.Sockets, cfg.Writers = 4, 3, 2
	cfg.Keys = []string{"language", "note"}
	cfg.Rate = 50
	cfg.Duration = time.Second
	cfg.FlushEvery = 200 * time.Millisecond
	cfg.PhaseDuration = 500 * time.Millisecond
	cfg.IdleSockets = 20
	var progress bytes.Buffer
	rep, err := Run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	ld := rep.Load
	if ld.Acked == 0 || ld.Changes == 0 || ld.DeliverySame.Count == 0 || ld.DeliveryCross.Count == 0 || ld.Flushes == 0 {
		t.Fatalf("load figures missing: %+v", ld)
	}
	if !rep.Verdict.OK() || rep.Verdict.Acked != ld.Acked || rep.Verdict.Present == 0 ||
		!rep.Verdict.DeliveryChecked || rep.Verdict.Undelivered != 0 {
		t.Fatalf("verdict %+v, acked %d", rep.Verdict, ld.Acked)
	}
	b := rep.Baselines
	if b == nil || b.WSEcho.Count != baselineRounds || b.JSPublish.Count != baselineRounds || b.JSAsyncPerSec == 0 || b.Hello.PerSec == 0 {
		t.Fatalf("baselines %+v", b)
	}
	if rep.Flush == nil || rep.Flush.Requests == 0 || rep.FlushNoSeq == nil || rep.FlushNoSeq.Requests == 0 {
		t.Fatalf("flush phases %+v %+v", rep.Flush, rep.FlushNoSeq)
	}
	if m := rep.Memory; m == nil || m.Held == 0 || m.Held+m.Failed != 20 || m.HeapAfter == 0 {
		t.Fatalf("memory %+v", m)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text.String(), "\nlost: 0\n") {
		t.Fatalf("text report does not end with lost: 0:\n%s", text.String())
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-durability", "paranoid"}, "durability"},
		{[]string{"-writers", "4", "-sockets", "3"}, "writers"},
		{[]string{"-urls", "http://127.0.0.1:1", "-kill-instance", "1s"}, "need the servers"},
		{[]string{"-keys", ""}, "keys"},
		{[]string{"stray"}, "unexpected"},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		err := parseFlags(&cfg, tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	if err := parseFlags(&cfg, []string{"-duration", "10s"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if cfg.killAt() != 5*time.Second || cfg.instances() != 2 {
		t.Fatalf("default scenario: kill at %v, %d instances", cfg.killAt(), cfg.instances())
	}
}

// Main exits 2 on a bad flag, without running anything.
func TestMainBadFlag(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := Main([]string{"-no-such-flag"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2 (%s)", code, stderr.String())
	}
}

// A socket that gets a writer's op in a snapshot change of the log (a
// change above the op's acknowledged sequence) got every op before it
// folded, whether the change came before the writer's ack or after it; a
// socket that got ops one by one gets nothing excused.
func TestSocketCountsSnapshotFolds(t *testing.T) {
	for _, early := range []bool{false, true} {
		// Ops 0-2 at 10-12, the log's snapshot of them at 13, op 3 at 14.
		seqs := []uint64{10, 11, 12, 14}
		s, w, r, change := foldSession(t, len(seqs))
		for n, seq := range seqs {
			change(w, seq, n) // the writer gets each one by one
		}
		if early {
			change(r, 13, 2) // the snapshot, carrying op 2's value, before the acks
		}
		for n, seq := range seqs {
			w.answer(uint64(n+1), seq, "", 0)
		}
		if !early {
			change(r, 13, 2)
		}
		for n, seq := range seqs {
			reached := w.ops[n].seen | resetMask(s, seq)
			if want := n < 3; (reached&2 != 0) != want {
				t.Errorf("early %v: op %d at %d reached the reader: %v, want %v", early, n, seq, reached&2 != 0, want)
			}
		}
		if resetMask(s, 10)&1 != 0 {
			t.Errorf("early %v: the writer, which got every op one by one, counted a fold", early)
		}
		// An op whose connection ended before its answer, that landed:
		// its sequence is learnt from its change (the verdict needs it).
		w.ops = append(w.ops, opRec{state: opLost})
		change(r, 20, 4)
		if w.ops[4].seq != 20 {
			t.Errorf("early %v: an op that landed without an ack has seq %d, want the change's 20", early, w.ops[4].seq)
		}
	}
}

// An op answered with an error (or whose connection ended) may have
// landed all the same: when a snapshot change carries its value, the
// acknowledged ops the snapshot replaced reached that socket folded.
func TestSocketCountsFoldsOfUnackedOps(t *testing.T) {
	s, w, r, change := foldSession(t, 3)
	// Ops 0 and 1 acknowledged at 10 and 11; op 2 answered unavailable
	// but landed at 12; the log's snapshot of the three at 13.
	w.answer(1, 10, "", 0)
	w.answer(2, 11, "", 0)
	change(w, 12, 2)
	w.answer(3, 0, "unavailable", 0)
	change(r, 13, 2) // the reader gets only the snapshot
	s.noteUnackedFolds()
	for n, seq := range []uint64{10, 11} {
		if resetMask(s, seq)&2 == 0 {
			t.Errorf("op %d at %d: not counted as reaching the reader in the snapshot", n, seq)
		}
	}
	if resetMask(s, 10)&1 != 0 {
		t.Error("the writer, which got op 2 one by one, counted a fold")
	}
}

// foldSession is a session of the load with a writer socket (idx 0) that
// has sent ops ops, unanswered (ids 1..ops), and a reader (idx 1), and
// change, which hands socket k a change at seq carrying op n's value.
func foldSession(t *testing.T, ops int) (s *lsession, w, r *lsocket, change func(k *lsocket, seq uint64, n int)) {
	t.Helper()
	cfg := DefaultConfig()
	l := &load{cfg: &cfg, ack: newHist(), same: newHist(), cross: newHist(), flushLat: newHist()}
	l.c.errs, l.c.closes = map[string]int64{}, map[int]int64{}
	s = &lsession{l: l, idx: 7, name: "s7", cookies: map[string]string{}}
	w = &lsocket{l: l, s: s, idx: 0, writer: true, reply: make(chan bool, 1), pending: map[uint64]int32{}}
	r = &lsocket{l: l, s: s, idx: 1, reply: make(chan bool, 1)}
	s.sockets = []*lsocket{w, r}
	for n := range ops {
		w.ops = append(w.ops, opRec{state: opSent})
		w.pending[uint64(n+1)] = int32(n)
	}
	change = func(k *lsocket, seq uint64, n int) {
		var m serverMsg
		raw := fmt.Sprintf(`{"type":"change","seq":%d,"ops":[{"type":"set","key":"language","value":%q}]}`, seq, opValue(7, 0, n))
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		k.change(&m, 0)
	}
	return s, w, r, change
}
