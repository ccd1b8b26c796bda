package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := []byte("4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 12 0 100 0 0\n")
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Fatalf("utime+stime = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 x y 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	// This process's own CPU time is readable and grows.
	a, err := procCPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	sink := 0
	for deadline := time.Now().Add(5 * time.Second); ; sink++ {
		if b, _ := procCPUTime(os.Getpid()); b > a {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time did not grow from %v in 5s of spinning (%d)", a, sink)
		}
	}
}

// The read and write system calls and the context switches of a window
// are read from /proc: parsed from their lines, and this process's own
// grow with the reads it makes and the sleeps of its threads.
func TestProcCounts(t *testing.T) {
	io := []byte("rchar: 10\nwchar: 20\nsyscr: 7\nsyscw: 5\nread_bytes: 0\n")
	if got := parseProcIO(io); got != 12 {
		t.Errorf("parseProcIO: %d, want 12", got)
	}
	status := []byte("Name:\tx\nvoluntary_ctxt_switches:\t30\nnonvoluntary_ctxt_switches:\t4\n")
	if got := parseSwitches(status); got != 34 {
		t.Errorf("parseSwitches: %d, want 34", got)
	}
	if parseProcIO([]byte("rchar: 1\n")) != -1 || parseSwitches(nil) != -1 {
		t.Error("a file without the fields is not unknown (-1)")
	}
	w := startCPU(namedPID{"self", os.Getpid()})
	for range 50 {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	c := w.end(50)
	if len(c) != 1 || c[0].Syscalls < 50 || c[0].Switches < 10 || c[0].SyscallsPerOp != float64(c[0].Syscalls)/50 {
		t.Fatalf("after 50 reads and sleeps: %+v", c)
	}
}

func TestPeerReportText(t *testing.T) {
	shape := func(name string, window int, hubRate, peerRate float64) PeerShape {
		return PeerShape{Name: name, Pairs: 100, Window: window, PeerRound: PeerRound{
			Hub: ShapeResult{AckedPerSec: hubRate, Acked: 10, Sent: 10, Delivered: 10, Frames: 25, ServerCPUPerOpUS: 30,
				CPU: []ProcCPU{{Name: "hub0", PerOpUS: 20, SyscallsPerOp: 4.5, SwitchesPerOp: 6}, {Name: "nats-server", PerOpUS: 10}}},
			PeerRes: ShapeResult{AckedPerSec: peerRate, Acked: 8, Frames: 16, ServerCPUPerOpUS: 15, Delivery: Latency{P50: 0.2},
				CPU: []ProcCPU{{Name: "centrifugo", PerOpUS: 15, SyscallsPerOp: 3, SwitchesPerOp: -1}}}}}
	}
	r := &Report{Peer: &PeerReport{Peer: "centrifugo", Version: "v6.9.1", Shapes: []PeerShape{
		shape("sequential", 1, 0, 0), shape("window 1", 1, 5000, 10000), shape("window 32", 32, 30000, 20000),
	}}}
	r.Peer.Shapes[2].PeerSubscribed = &ShapeResult{AckedPerSec: 15000, ServerCPUPerOpUS: 24}
	r.Peer.Shapes[0].Pairs = 1
	r.Peer.Shapes[0].Hub.Delivery.P50 = 0.3
	r.Baselines = &Baselines{JSPublish: Latency{P50: 0.15}}
	r.Targets = peerTargets(r)
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	text := sb.String()
	for _, want := range []string{"side by side", "writes answered/s", "5000", "10000", "0.50x", "1.50x", "sequential delivery p50", "0.86x",
		"peer's writer subscribed (24.0 µs): 1.25x, hub alone 0.83x", "window 32 (100 pairs): centrifugo, writer subscribed, "} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// The subscribed rows: the hub's figure, the subscribed peer's, the ratio.
	for _, row := range []string{
		`peer's writer subscribed: writes answered/s\s+30000\s+15000\s+2\.00x`,
		`\n\s+server CPU per write \(µs\)\s+30\.0\s+24\.0\s+1\.25x`,
		`\n\s+of which hub alone\s+20\.0\s+24\.0\s+0\.83x`,
		`\n\s+frames read per write\s+2\.50\s+2\.00\s+1\.25x`,
		`\n\s+read/write system calls per write, hub alone\s+4\.50\s+3\.00\s+1\.50x`,
		`\n\s+context switches per write, hub alone\s+6\.00\s+-\s+-`,
	} {
		if !regexp.MustCompile(row).MatchString(text) {
			t.Errorf("text lacks a row matching %s:\n%s", row, text)
		}
	}
	got := map[string]string{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg.Status
	}
	if got["ops/s, window 1"] != StatusNotMet || got["ops/s, window 32"] != StatusMet || got["sequential delivery p50"] != StatusMet ||
		got["CPU per op, window 1"] != StatusNotMet {
		t.Errorf("targets: %v", got)
	}
	if !strings.Contains(r.peerHTML(), "<td>window 32</td>") {
		t.Errorf("HTML table: %s", r.peerHTML())
	}
	if strings.Contains(text, "floor:") {
		t.Errorf("a floor table without relay runs:\n%s", text)
	}

	// The floor table: the relay, the hub, the peer with its writers
	// subscribed where it ran so (else as it ran), and both ratios.
	r.Peer.Shapes[2].Relay = &ShapeResult{AckedPerSec: 60000, Acked: 10, Frames: 20, ServerCPUPerOpUS: 20,
		CPU: []ProcCPU{{Name: "relay", PerOpUS: 12, SyscallsPerOp: 2, SwitchesPerOp: 0.5}, {Name: "nats-server", PerOpUS: 8}}}
	r.Peer.Shapes[0].Relay = &ShapeResult{AckedPerSec: 1000, Acked: 10, Delivery: Latency{P50: 0.1},
		CPU: []ProcCPU{{Name: "relay", PerOpUS: 40}}}
	sb.Reset()
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	text = sb.String()
	for _, row := range []string{
		`floor: the bare relay`,
		`\n\s+sequential\s+writes answered/s\s+1000\s+0\s+0\s+-\s+-`,
		`\n\s+delivery p50 \(ms\)\s+0\.100\s+0\.300\s+0\.200\s+3\.00x\s+0\.50x`,
		`\n\s+window 32\s+writes answered/s\s+60000\s+30000\s+15000\s+0\.50x\s+4\.00x`,
		`\n\s+relay alone, hub alone\s+12\.0\s+20\.0\s+24\.0\s+1\.67x\s+0\.50x`,
		`\n\s+context switches per write\s+0\.50\s+6\.00\s+-\s+12\.00x\s+-`,
		`window 32 \(100 pairs\): relay 0 sent, 10 answered`,
	} {
		if !regexp.MustCompile(row).MatchString(text) {
			t.Errorf("text lacks a row matching %s:\n%s", row, text)
		}
	}
	if h := r.peerHTML(); !strings.Contains(h, "<th>sessionhub / relay</th>") || !strings.Contains(h, "<td align=right>1.67x</td>") {
		t.Errorf("HTML floor table: %s", h)
	}
}

func TestCentrifugoConfig(t *testing.T) {
	b, err := centrifugoConfig(8000, 9000)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		HTTP struct {
			Address         string `json:"address"`
			Port            int    `json:"port"`
			InternalAddress string `json:"internal_address"`
			InternalPort    string `json:"internal_port"`
		} `json:"http_server"`
		UsageStats struct {
			Disabled bool `json:"disabled"`
		} `json:"usage_stats"`
		Engine struct {
			Type string `json:"type"`
		} `json:"engine"`
		Client struct {
			Anonymous bool `json:"allow_anonymous_connect_without_token"`
		} `json:"client"`
		Channel struct {
			Namespaces []map[string]any `json:"namespaces"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Address != "127.0.0.1" || c.HTTP.InternalAddress != "127.0.0.1" || c.HTTP.Port != 8000 || c.HTTP.InternalPort != "9000" {
		t.Errorf("listeners: %+v", c.HTTP)
	}
	if !c.UsageStats.Disabled || c.Engine.Type != "memory" || !c.Client.Anonymous {
		t.Errorf("usage stats %v, engine %q, anonymous %v", c.UsageStats.Disabled, c.Engine.Type, c.Client.Anonymous)
	}
	if len(c.Channel.Namespaces) != 1 || c.Channel.Namespaces[0]["name"] != centrifugoNS ||
		c.Channel.Namespaces[0]["allow_publish_for_anonymous"] != true || c.Channel.Namespaces[0]["allow_subscribe_for_anonymous"] != true {
		t.Errorf("namespaces: %v", c.Channel.Namespaces)
	}
}

func TestLines(t *testing.T) {
	var got []string
	lines([]byte("{}\n{\"id\":1}\n\n{\"id\":2}"), func(b []byte) { got = append(got, string(b)) })
	if strings.Join(got, "|") != `{}|{"id":1}|{"id":2}` {
		t.Fatalf("lines: %q", got)
	}
}

// checkShape fails unless every write was acknowledged, delivered once
// to the reader, in order.
func checkShape(t *testing.T, name string, r ShapeResult) {
	t.Helper()
	if r.Acked == 0 || r.Acked != r.Sent || r.Failed != 0 || r.Undelivered != 0 || r.OutOfOrder != 0 || r.Delivered != r.Acked {
		t.Errorf("%s: %+v", name, r)
	}
	if r.Ack.Count != r.Acked || r.Delivery.Count != r.Delivered {
		t.Errorf("%s: latencies %d/%d for %d acked, %d delivered", name, r.Ack.Count, r.Delivery.Count, r.Acked, r.Delivered)
	}
}

// TestShapesOnHub runs every shape of a -peer run, briefly, against a
// real hub and checks the verdict of its sessions.
func TestShapesOnHub(t *testing.T) {
	urls, _ := startHubs(t, 1)
	cfg := DefaultConfig()
	l := &load{cfg: &cfg, urls: urls, httpc: newHTTPClient(8), dialc: newHTTPClient(8), start: time.Now()}
	h := &hubTarget{l: l, key: "language"}
	pc := defaultPeerConfig()
	pc.Pairs, pc.RateWriters, pc.Rate, pc.Duration = 4, 4, 200, 300*time.Millisecond
	ctx := context.Background()
	var all []*pair
	next := 0
	for _, spec := range peerShapes(&pc) {
		r, pairs, err := runShape(ctx, h, spec, next, newProgress(nil))
		if err != nil {
			t.Fatal(err)
		}
		next += spec.pairs
		all = append(all, pairs...)
		checkShape(t, spec.name, r)
		if spec.sequential && r.Delivery.P50 < r.Ack.P50/100 {
			t.Errorf("sequential: delivery p50 %v vs ack p50 %v", r.Delivery.P50, r.Ack.P50)
		}
		// The writer's socket gets its own changes: read, counted, not
		// decoded (the last ones may still be on their way).
		if r.WriterDeliveries == 0 || r.WriterDeliveries > r.Acked {
			t.Errorf("%s: %d of the writers' own changes read for %d acknowledged", spec.name, r.WriterDeliveries, r.Acked)
		}
	}
	v := Verify(h.sessionLogs(ctx, all))
	if !v.OK() || v.Undelivered != 0 || v.Acked == 0 || v.Present != int64(len(all)) {
		t.Fatalf("verdict: %+v", v)
	}
}

// TestShapesOnCentrifugo runs the shapes against a real Centrifugo when
// a built one is in the cache (go run ./cmd/loadtest -peer centrifugo
// builds it once): its config and client protocol are the ones it takes.
func TestShapesOnCentrifugo(t *testing.T) {
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(cache, "sessionhub", "peers", "centrifugo@"+centrifugoVersion, "centrifugo")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Centrifugo built in %s: go run ./cmd/loadtest -peer centrifugo builds it", bin)
	}
	ctx := context.Background()
	c, err := startCentrifugo(ctx, bin, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	pc := defaultPeerConfig()
	pc.Pairs, pc.RateWriters, pc.Rate, pc.Duration = 4, 4, 200, 300*time.Millisecond
	for i, spec := range peerShapes(&pc) {
		r, _, err := runShape(ctx, c, spec, i*10, newProgress(nil))
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, spec.name, r)
		if len(r.CPU) == 0 || r.CPU[0].Name != peerCentrifugo {
			t.Errorf("%s: CPU %+v", spec.name, r.CPU)
		}
	}
	// With the writer subscribed, each publication reaches both
	// connections of the channel, as a hub change reaches both sockets:
	// the writer's are read (counted) but not decoded.
	for _, sub := range []bool{false, true} {
		c.writerSubscribed = sub
		res, _, err := runShape(ctx, c, shapeSpec{name: "window 4", pairs: 2, window: 4, duration: 200 * time.Millisecond}, 100, newProgress(nil))
		if err != nil {
			t.Fatal(err)
		}
		own, acked := int(res.WriterDeliveries), int(res.Acked)
		// Subscribed, only the last window's may still be on their way.
		if acked == 0 || (sub && own < acked-2*4) || (!sub && own != 0) {
			t.Errorf("writer subscribed %v: the writer got %d of its %d publications", sub, own, acked)
		}
	}
	c.writerSubscribed = false
	m, err := c.measureIdle(ctx, 20, newProgress(nil))
	if err != nil || m.Held != 20 || m.RSSAfter == 0 {
		t.Fatalf("idle: %+v, %v", m, err)
	}
}

func TestHubArgsFlags(t *testing.T) {
	cfg := DefaultConfig()
	if err := parseFlags(&cfg, []string{"-hub-args", "-snapshot-every -1", "-peer", "centrifugo", "-hub-protocol", ""}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg.debugPorts = []int{4242}
	if got := strings.Join(cfg.hubArgs(0), " "); got != "-snapshot-every -1 -debug-addr 127.0.0.1:4242" {
		t.Errorf("hub 0 args: %q", got)
	}
	if got := strings.Join(cfg.hubArgs(1), " "); got != "-snapshot-every -1" {
		t.Errorf("hub 1 args: %q", got)
	}
	if cfg.subprotocols() != nil || cfg.Peer.Name != peerCentrifugo {
		t.Errorf("subprotocols %v, peer %q", cfg.subprotocols(), cfg.Peer.Name)
	}
	if err := parseFlags(&cfg, []string{"-peer", "pusher"}, io.Discard); err == nil {
		t.Error("-peer pusher accepted")
	}
	if cfg.Peer.NATS != natsEmbedded {
		t.Errorf("-peer-nats defaults to %q", cfg.Peer.NATS)
	}
	for _, nats := range []string{natsEmbedded, natsExternal} {
		if err := parseFlags(&cfg, []string{"-peer", "centrifugo", "-peer-nats", nats}, io.Discard); err != nil || cfg.Peer.NATS != nats {
			t.Errorf("-peer-nats %s: %v, %q", nats, err, cfg.Peer.NATS)
		}
	}
	if err := parseFlags(&cfg, []string{"-peer", "centrifugo", "-peer-nats", "tcp"}, io.Discard); err == nil {
		t.Error("-peer-nats tcp accepted")
	}
}

// A pair is settled once its last acknowledged write reached the
// reader: the writer's own deliveries are not waited for (pair).
func TestPairSettlesOnTheReader(t *testing.T) {
	sh := &shapeRun{ack: newHist(), del: newHist(), errs: map[string]int64{}, start: time.Now()}
	p := newPair(sh, 0)
	if _, ok := p.begin(1); !ok {
		t.Fatal("begin refused")
	}
	p.acked(0, 10, "", 0)
	if p.settled() {
		t.Fatal("settled before the reader got the write")
	}
	p.delivered(0, 10, 0)
	if !p.settled() {
		t.Fatal("the reader got the write: not settled")
	}
}

// A hub socket that joins a compacted log gets the replaced entries as
// one snapshot change (PROTOCOL.md): the ops it replaced reached the
// reader folded, whichever of the ack and the change came first; an op
// no snapshot replaced and the reader never got stays undelivered.
func TestPairCountsSnapshotFolds(t *testing.T) {
	sh := &shapeRun{ack: newHist(), del: newHist(), errs: map[string]int64{}, start: time.Now()}
	p := newPair(sh, 0)
	for range 6 {
		if _, ok := p.begin(8); !ok {
			t.Fatal("begin refused")
		}
	}
	// Ops 0-2 at 10-12, the log's snapshot of them at 13, ops 3-5 at 14-16.
	seqs := []uint64{10, 11, 12, 14, 15, 16}
	p.acked(0, 10, "", 0)
	p.acked(1, 11, "", 0)
	p.delivered(2, 13, 0) // op 2's value in the snapshot change, before its ack
	for n := 2; n < 6; n++ {
		p.acked(n, seqs[n], "", 0)
	}
	p.delivered(5, 16, 0) // op 5 one by one
	p.mu.Lock()
	var got []bool
	for i := range p.ops {
		got = append(got, p.reachedLocked(&p.ops[i]))
	}
	p.mu.Unlock()
	want := []bool{true, true, true, false, false, true} // 3 and 4 came after the snapshot, and never
	if !slices.Equal(got, want) {
		t.Fatalf("reached %v, want %v", got, want)
	}
	if p.done(3) || !p.done(1) || !p.settled() {
		t.Fatalf("done(3) %v, done(1) %v, settled %v", p.done(3), p.done(1), p.settled())
	}
	if u, f := p.deliveryCounts(); u != 2 || f != 2 {
		t.Fatalf("%d undelivered, %d folded; want ops 3 and 4 undelivered, 0 and 1 folded", u, f)
	}
	if p.folded != 13 {
		t.Fatalf("folded at %d, want the snapshot's 13", p.folded)
	}

	// An op answered with an error that landed all the same: the reader
	// got it one by one at 42, then again in a snapshot at 43 (a resume
	// past a compaction), which folds the acknowledged ops before it.
	f := newPair(sh, 2)
	for range 3 {
		f.begin(8)
	}
	f.acked(0, 40, "", 0)
	f.acked(1, 41, "", 0)
	f.delivered(2, 42, 0)
	f.acked(2, 0, "unavailable", 0)
	f.delivered(2, 43, 0)
	if u, fo := f.deliveryCounts(); u != 0 || fo != 2 {
		t.Fatalf("failed op: %d undelivered, %d folded; want 0 and ops 0 and 1 folded", u, fo)
	}

	// Without the snapshot change, the reader's missing ops stay missing.
	q := newPair(sh, 1)
	for n := range 2 {
		q.begin(8)
		q.acked(n, uint64(30+n), "", 0)
	}
	q.delivered(1, 31, 0)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.reachedLocked(&q.ops[0]) {
		t.Fatal("op 0 counted as reaching the reader")
	}
}

// The load generator decodes, on every server, the writer's answers and
// the reader's deliveries only: what else a server sends the writer (a
// hub socket's own changes, a subscribed Centrifugo publisher's
// publications) is counted, not decoded, so a server that sends it costs
// the load generator no more per write than one that does not.
func TestWriterDeliveriesReadUndecoded(t *testing.T) {
	sh := &shapeRun{ack: newHist(), del: newHist(), errs: map[string]int64{}, start: time.Now()}
	hp := &hubPair{p: newPair(sh, 7)}
	hp.p.begin(4)
	change := []byte(`{"type":"change","seq":12,"ops":[{"type":"set","key":"language","value":"` + opValue(7, 0, 0) + `"}],"source":"ws"}`)
	hp.line(change, false, 0) // the writer's own change
	hp.line([]byte(`{"type":"ack","id":1,"seq":12}`), false, 0)
	if hp.p.ops[0].state != opAcked || hp.p.ops[0].seen || hp.p.writerGot.Load() != 1 {
		t.Fatalf("hub writer: op %+v, writer got %d; want acknowledged, unseen, 1 counted", hp.p.ops[0], hp.p.writerGot.Load())
	}
	hp.line(change, true, 0) // the reader's
	if !hp.p.ops[0].seen || sh.c.delivered.Load() != 1 {
		t.Fatalf("hub reader: op %+v, %d delivered", hp.p.ops[0], sh.c.delivered.Load())
	}

	cp := &cfPair{p: newPair(sh, 8)}
	cp.p.begin(4)
	push := []byte(`{"push":{"channel":"` + cfChannel(8) + `","pub":{"data":"` + opValue(8, 0, 0) + `","offset":5}}}`)
	cp.line(context.Background(), nil, push, false, 0) // a subscribed writer's
	cp.line(context.Background(), nil, []byte(`{"id":3,"publish":{}}`), false, 0)
	if cp.p.ops[0].state != opAcked || cp.p.ops[0].seen || cp.p.writerGot.Load() != 1 {
		t.Fatalf("centrifugo writer: op %+v, writer got %d", cp.p.ops[0], cp.p.writerGot.Load())
	}
	cp.line(context.Background(), nil, push, true, 0)
	if !cp.p.ops[0].seen || sh.c.delivered.Load() != 2 || len(sh.errs) != 0 {
		t.Fatalf("centrifugo reader: op %+v, %d delivered, errors %v", cp.p.ops[0], sh.c.delivered.Load(), sh.errs)
	}
}

// A run of several rounds reports each shape's ratios over them: median,
// lowest, highest; a round without a figure is left out of it.
func TestPeerReportSpread(t *testing.T) {
	round := func(hubCPU, peerCPU, relayCPU, hubDel float64) PeerRound {
		return PeerRound{
			Hub: ShapeResult{AckedPerSec: 100, Delivery: Latency{P50: hubDel}, ServerCPUPerOpUS: hubCPU + 10,
				CPU: []ProcCPU{{Name: "hub0", PerOpUS: hubCPU}, {Name: "nats-server", PerOpUS: 10}}},
			PeerRes: ShapeResult{AckedPerSec: 200, Delivery: Latency{P50: 0.1}, ServerCPUPerOpUS: peerCPU},
			Relay:   &ShapeResult{CPU: []ProcCPU{{Name: "relay", PerOpUS: relayCPU}}, Delivery: Latency{P50: 0.2}},
		}
	}
	rounds := []PeerRound{round(20, 20, 10, 0.3), round(40, 20, 20, 0.6), round(30, 20, 0, 0.45)}
	seq := PeerShape{Name: "sequential", Pairs: 1, Window: 1, PeerRound: rounds[0], Rounds: rounds}
	one := PeerShape{Name: "window 32", Pairs: 100, Window: 32, PeerRound: rounds[0]} // one round: no spread
	r := &Report{Peer: &PeerReport{Peer: "centrifugo", Shapes: []PeerShape{seq, one}}, Baselines: &Baselines{JSPublish: Latency{P50: 0.2}}}
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	text := sb.String()
	for _, row := range []string{
		`ratios over the rounds \(each shape run on every server in turn, 3 times\)`,
		`ratio = sessionhub / centrifugo \(the first of 3 rounds; every round's ratios after the tables\)`,
		`\n\s+sequential\s+writes answered/s, sessionhub / centrifugo\s+0\.50x\s+0\.50x\s+0\.50x`,
		`\n\s+CPU per write, hub alone / centrifugo\s+1\.50x\s+1\.00x\s+2\.00x`,
		`\n\s+server CPU per write, sessionhub \(with nats-server\) / centrifugo\s+2\.00x\s+1\.50x\s+2\.50x`,
		`\n\s+CPU per write, hub alone / relay alone\s+2\.00x\s+2\.00x\s+2\.00x`, // the relay-less round left out
		`\n\s+CPU per write, relay alone / centrifugo\s+0\.75x\s+0\.50x\s+1\.00x`,
		`\n\s+delivery p50, sessionhub / its bar\s+1\.50x\s+1\.00x\s+2\.00x`,
		`\n\s+delivery p50, relay / the bar\s+0\.67x\s+0\.67x\s+0\.67x`,
	} {
		if !regexp.MustCompile(row).MatchString(text) {
			t.Errorf("text lacks a row matching %s:\n%s", row, text)
		}
	}
	if strings.Contains(text, "window 32  writes answered/s, sessionhub") {
		t.Errorf("a shape of one round has a spread:\n%s", text)
	}
	if h := r.peerHTML(); !strings.Contains(h, "<td>CPU per write, hub alone / centrifugo</td><td align=right>1.50x</td><td align=right>1.00x</td><td align=right>2.00x</td>") {
		t.Errorf("HTML spread table: %s", h)
	}
}

// With rounds, a target is judged on its median round, and says so; the
// out-of-order count is every round's.
func TestPeerTargetsOnTheMedianRound(t *testing.T) {
	round := func(hubRate float64, ooo int64) PeerRound {
		return PeerRound{Hub: ShapeResult{AckedPerSec: hubRate, OutOfOrder: ooo}, PeerRes: ShapeResult{AckedPerSec: 200}}
	}
	rounds := []PeerRound{round(100, 0), round(300, 0), round(150, 2)}
	r := &Report{Peer: &PeerReport{Peer: "centrifugo", Shapes: []PeerShape{
		{Name: "window 1", Pairs: 100, Window: 1, PeerRound: rounds[0], Rounds: rounds},
	}}}
	var ops, loss Target
	for _, tg := range peerTargets(r) {
		switch tg.Name {
		case "ops/s, window 1":
			ops = tg
		case "zero loss":
			loss = tg
		}
	}
	if ops.Measured != "150/s vs 200/s" || ops.Ratio != 0.75 || ops.Status != StatusNotMet ||
		ops.Note != "median of 3 rounds (round 3); lowest 0.50x, highest 1.50x" {
		t.Errorf("ops/s target: %+v", ops)
	}
	if !strings.Contains(loss.Measured, "2 out of order") || loss.Status == StatusMet {
		t.Errorf("zero loss target: %+v", loss)
	}
}

// A goal the bare relay misses too, on a shape of one write in flight per
// writer, is out of reach; where the relay meets it, or where writes may
// batch (window 32, where the relay is no floor), it is not met. The CPU
// goal falls back to the hub alone once the relay with nats-server misses
// it.
func TestPeerTargetsOutOfReach(t *testing.T) {
	res := func(rate, delivery, server float64, own string, ownCPU float64) ShapeResult {
		return ShapeResult{AckedPerSec: rate, Delivery: Latency{P50: delivery}, ServerCPUPerOpUS: server,
			CPU: []ProcCPU{{Name: own, PerOpUS: ownCPU}, {Name: "nats-server", PerOpUS: server - ownCPU}}}
	}
	peer := ShapeResult{AckedPerSec: 100, Delivery: Latency{P50: 0.1}, ServerCPUPerOpUS: 30}
	// hubAlone and relayAlone are the processes' own CPU per write; each
	// spends 20 µs more with nats-server.
	shape := func(name string, window int, hubRate, hubDelivery, hubAlone float64, relay *ShapeResult) PeerShape {
		var rounds []PeerRound
		for _, f := range []float64{0.9, 1, 1.1} { // the median round is the middle one
			r := PeerRound{Hub: res(hubRate*f, hubDelivery*f, (hubAlone+20)*f, "hub0", hubAlone*f), PeerRes: peer}
			if relay != nil {
				rel := *relay
				r.Relay = &rel
			}
			rounds = append(rounds, r)
		}
		pairs := 100
		if name == "sequential" {
			pairs = 1
		}
		return PeerShape{Name: name, Pairs: pairs, Window: window, PeerRound: rounds[0], Rounds: rounds}
	}
	relay := func(rate, delivery, alone float64) *ShapeResult {
		r := res(rate, delivery, alone+20, "relay", alone)
		return &r
	}
	judged := func(shapes ...PeerShape) map[string]Target {
		r := &Report{Peer: &PeerReport{Peer: "centrifugo", Shapes: shapes}, Baselines: &Baselines{JSPublish: Latency{P50: 0.2}}}
		got := map[string]Target{}
		for _, tg := range peerTargets(r) {
			got[tg.Name] = tg
		}
		return got
	}
	for _, c := range []struct {
		name    string
		shape   PeerShape
		target  string
		status  string
		ratio   float64
		inNote  string
		noFloor bool
	}{
		{"window 1: the relay too slow", shape("window 1", 1, 50, 0, 40, relay(80, 0, 35)),
			"ops/s, window 1", StatusOutOfReach, 0.5, "floor: the relay 0.80x (median), 1.0x wanted", false},
		{"window 1: the relay fast enough", shape("window 1", 1, 50, 0, 40, relay(120, 0, 35)),
			"ops/s, window 1", StatusNotMet, 0.5, "floor: the relay 1.20x (median)", false},
		{"window 32: the relay is no floor", shape("window 32", 32, 50, 0, 40, relay(40, 0, 35)),
			"ops/s, window 32", StatusNotMet, 0.5, "", true},
		{"sequential: the relay over the bar", shape("sequential", 1, 0, 0.35, 40, relay(0, 0.32, 35)),
			"sequential delivery p50", StatusOutOfReach, 0.35 / 0.3, "floor: the relay 1.07x (median)", false},
		{"sequential: the relay within the bar", shape("sequential", 1, 0, 0.35, 40, relay(0, 0.25, 35)),
			"sequential delivery p50", StatusNotMet, 0.35 / 0.3, "floor: the relay 0.83x (median)", false},
		{"CPU: both floors missed", shape("window 1", 1, 50, 0, 40, relay(80, 0, 35)),
			"CPU per op, window 1", StatusOutOfReach, 40.0 / 30, "judged on the hub alone: 1.33x", false},
		{"CPU: the relay alone within reach", shape("window 1", 1, 50, 0, 40, relay(80, 0, 25)),
			"CPU per op, window 1", StatusNotMet, 40.0 / 30, "floor: the relay 0.83x (median), alone", false},
		{"CPU: the hub alone within the fallback", shape("window 1", 1, 50, 0, 28, relay(80, 0, 25)),
			"CPU per op, window 1", StatusMet, 28.0 / 30, "judged on the hub alone: 0.93x", false},
		{"CPU: the relay with nats-server within reach", shape("window 1", 1, 50, 0, 40, relay(80, 0, 5)),
			"CPU per op, window 1", StatusNotMet, 2, "floor: the relay 0.83x (median), with nats-server", false},
		{"CPU of the sequential shape", shape("sequential", 1, 0, 0.35, 40, relay(0, 0.32, 35)),
			"CPU per op, sequential", StatusOutOfReach, 40.0 / 30, "judged on the hub alone", false},
		{"CPU at window 32: no floor", shape("window 32", 32, 50, 0, 40, relay(40, 0, 35)),
			"CPU per op, window 32", StatusNotMet, 2, "", true},
	} {
		tg, ok := judged(c.shape)[c.target]
		if !ok {
			t.Errorf("%s: no target %q", c.name, c.target)
			continue
		}
		if tg.Status != c.status || math.Abs(tg.Ratio-c.ratio) > 1e-9 || !strings.Contains(tg.Note, c.inNote) ||
			c.noFloor == strings.Contains(tg.Note, "floor:") {
			t.Errorf("%s: %+v; want %s at %.3fx, a note with %q", c.name, tg, c.status, c.ratio, c.inNote)
		}
	}
	// Without relay runs nothing is out of reach.
	if tg := judged(shape("window 1", 1, 50, 0, 40, nil))["CPU per op, window 1"]; tg.Status != StatusNotMet || strings.Contains(tg.Note, "floor:") {
		t.Errorf("without the relay: %+v", tg)
	}
}

// With the nats-servers in the hub's and the relay's processes
// (-peer-nats embedded), each process is its server: the CPU goal is the
// process's, out of reach where the relay's process misses it too, and
// the report has no "alone" figures, which would repeat it.
func TestPeerTargetsEmbedded(t *testing.T) {
	one := func(name string, rate, cpu float64) ShapeResult {
		return ShapeResult{AckedPerSec: rate, Acked: 10, ServerCPUPerOpUS: cpu, CPU: []ProcCPU{{Name: name, PerOpUS: cpu}}}
	}
	// hubOwn and relayOwn are the processes' own CPU by their profiles
	// (CPUSplit): 0, no profile.
	shape := func(hubCPU, relayCPU, hubOwn, relayOwn float64) PeerShape {
		split := func(cpu, own, f float64) *CPUSplit {
			if own == 0 {
				return nil
			}
			return &CPUSplit{Samples: 500, NATSShare: 1 - own/cpu, OwnPerOpUS: own * f, NATSPerOpUS: (cpu - own) * f}
		}
		var rounds []PeerRound
		for _, f := range []float64{0.9, 1, 1.1} {
			rel := one("relay", 120*f, relayCPU*f)
			rel.Split = split(relayCPU, relayOwn, f)
			hub := one("hub0", 50*f, hubCPU*f)
			hub.Split = split(hubCPU, hubOwn, f)
			rounds = append(rounds, PeerRound{Hub: hub, PeerRes: one("centrifugo", 100, 30), Relay: &rel})
		}
		return PeerShape{Name: "window 1", Pairs: 100, Window: 1, PeerRound: rounds[0], Rounds: rounds}
	}
	report := func(nats string, s PeerShape) *Report {
		r := &Report{Peer: &PeerReport{Peer: "centrifugo", NATS: nats, Shapes: []PeerShape{s}}}
		r.Targets = peerTargets(r)
		return r
	}
	cpu := func(r *Report) Target {
		for _, tg := range r.Targets {
			if tg.Name == "CPU per op, window 1" {
				return tg
			}
		}
		t.Fatalf("no CPU target in %+v", r.Targets)
		return Target{}
	}
	const goal = "hub with its embedded nats-server ≤ peer (else: hub alone, by its profile, ≤ peer)"
	for _, c := range []struct {
		name             string
		hub, relay       float64
		hubOwn, relayOwn float64
		status, inNote   string
		measured, noNote string
	}{
		{"the relay's process over the peer, no profile", 40, 35, 0, 0, StatusNotMet, "no profile told the hub alone apart",
			"40.0 µs (one process) vs 30.0 µs", "judged on"},
		{"the relay's process over the peer, the hub alone within", 40, 35, 27, 20, StatusMet, "judged on the hub alone by its profile: 0.90x (median of 3 rounds",
			"40.0 µs (one process: hub 27.0 + nats-server 13.0 by 500 samples) vs 30.0 µs", "out of reach"},
		{"the relay's process over the peer, the hub alone over the relay alone", 40, 35, 36, 20, StatusNotMet, "floor: the relay 0.67x (median), alone",
			"40.0 µs (one process: hub 36.0 + nats-server 4.0 by 500 samples) vs 30.0 µs", "out of reach"},
		{"the relay alone over the peer too", 40, 35, 36, 33, StatusOutOfReach, "judged on the hub alone by its profile: 1.20x",
			"40.0 µs (one process: hub 36.0 + nats-server 4.0 by 500 samples) vs 30.0 µs", "no profile"},
		{"the relay's process within reach", 40, 25, 30, 20, StatusNotMet, "floor: the relay 0.83x (median), with nats-server",
			"40.0 µs (one process: hub 30.0 + nats-server 10.0 by 500 samples) vs 30.0 µs", "judged"},
		{"the hub's process within the goal", 27, 35, 0, 0, StatusMet, "median of 3 rounds", "27.0 µs (one process) vs 30.0 µs", "floor:"},
	} {
		tg := cpu(report(natsEmbedded, shape(c.hub, c.relay, c.hubOwn, c.relayOwn)))
		if tg.Status != c.status || tg.Goal != goal || tg.Measured != c.measured ||
			!strings.Contains(tg.Note, c.inNote) || strings.Contains(tg.Note, c.noNote) {
			t.Errorf("%s: %+v", c.name, tg)
		}
	}
	// A round without the hub's profile does not count for the hub alone:
	// its median is over the rounds with one.
	mixed := shape(40, 35, 24, 33)
	mixed.Rounds[0].Hub.Split, mixed.Rounds[2].Hub.Split = nil, nil
	mixed.Rounds[1].Hub.Split.OwnPerOpUS = 36
	if tg := cpu(report(natsEmbedded, mixed)); tg.Status != StatusOutOfReach || tg.Ratio != 1.2 ||
		!strings.Contains(tg.Note, "judged on the hub alone by its profile: 1.20x (median of 1 of 3 rounds (round 2); lowest 1.20x, highest 1.20x)") ||
		strings.Contains(tg.Note, "0.00x") {
		t.Errorf("rounds without the hub's profile: %+v", tg)
	}
	// Without the relay's profile, the hub alone over the peer has no
	// floor to be out of reach by.
	norelay := shape(40, 35, 36, 0)
	if tg := cpu(report(natsEmbedded, norelay)); tg.Status != StatusNotMet || !strings.Contains(tg.Note, "judged on the hub alone by its profile: 1.20x") ||
		!strings.Contains(tg.Note, "no profile told the relay alone apart") || strings.Contains(tg.Note, ", alone") {
		t.Errorf("no relay profile: %+v", tg)
	}
	// The same figures from separate processes judge the hub alone (the
	// relay alone over the peer too: out of reach on the hub's own CPU).
	if tg := cpu(report(natsExternal, shape(40, 35, 0, 0))); tg.Status != StatusOutOfReach || !strings.Contains(tg.Note, "judged on the hub alone: 1.33x") ||
		strings.Contains(tg.Note, "profile") || tg.Goal == goal {
		t.Errorf("external: %+v", tg)
	}

	text := func(r *Report) string {
		var sb strings.Builder
		if err := r.WriteText(&sb); err != nil {
			t.Fatal(err)
		}
		return sb.String()
	}
	r := report(natsEmbedded, shape(40, 25, 0, 0))
	plain := text(r)
	for _, want := range []string{"sessionhub (1 hub instance with its nats-server embedded, one process, ",
		"CPU per write, sessionhub / relay", "CPU per write, relay / centrifugo"} {
		if !strings.Contains(plain, want) {
			t.Errorf("text lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(strings.ReplaceAll(plain, goal, ""), "alone") {
		t.Errorf("an \"alone\" figure with the nats-servers embedded and no profile:\n%s", plain)
	}
	// With their profiles, the hub and the relay alone are reported.
	split := text(report(natsEmbedded, shape(40, 35, 27, 20)))
	for _, want := range []string{"  of which hub alone, by its profile ", "  relay alone, hub alone, by their profiles ",
		"CPU per write, hub alone by its profile / centrifugo ", "CPU per write, relay alone by its profile / centrifugo "} {
		if !strings.Contains(split, want) {
			t.Errorf("text lacks %q:\n%s", want, split)
		}
	}
	if h := r.peerHTML(); !strings.Contains(h, "<p>sessionhub: 1 hub instance with its nats-server embedded, one process</p>") {
		t.Errorf("HTML: %s", h)
	}
}

// embeddedHub prepares one hub instance of a -peer run with its
// nats-server embedded (the run's own at a port where none listens) and
// its profiler on debug, started with hubArgv.
func embeddedHub(t *testing.T, hubArgv []string) (topo *topology, debug int) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Instances, cfg.Peer.Name = 1, peerCentrifugo // PeerConfig.NATS: embedded by default
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if debug, err = freePort(); err != nil {
		t.Fatal(err)
	}
	cfg.debugPorts = []int{debug}
	topo = &topology{cfg: &cfg, dir: t.TempDir(), natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	t.Cleanup(topo.close)
	if err := topo.prepareHubs(hubArgv); err != nil {
		t.Fatal(err)
	}
	return topo, debug
}

// A hub server that does not know -debug-addr (a -server-bin older than
// the profiler's flag) cannot be profiled: a run that embeds its
// nats-server fails to start it, and says why.
func TestHubWithoutDebugAddrFails(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old-sessionhub")
	script := "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -debug-addr ]; then echo 'flag provided but not defined: -debug-addr' >&2; exit 2; fi\ndone\nsleep 60\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	topo, _ := embeddedHub(t, []string{old})
	if err := topo.startHub(0); err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -debug-addr") {
		t.Fatalf("started a hub without -debug-addr: %v", err)
	}
}

// A -peer run's hub with -peer-nats embedded is started without -nats: it
// serves every shape on the nats-server in its process (the run's own,
// here at a port where none listens, is not needed), and its process
// alone is measured, told apart from its nats-server by its profile.
func TestHubEmbedsNATS(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	topo, debug := embeddedHub(t, []string{self, serveHubCmd})
	if argv := topo.hubs[0].argv; slices.Contains(argv, "-nats") || slices.Contains(argv, "-replicas") {
		t.Fatalf("hub argv %q", argv)
	}
	if err := topo.startHub(0); err != nil {
		t.Fatal(err)
	}
	l := &load{cfg: topo.cfg, urls: topo.urls, httpc: newHTTPClient(8), dialc: newHTTPClient(8), start: time.Now()}
	// The profile is asked to be kept where no file can be written: the
	// failure is said, and the profile still splits the hub's CPU.
	h := &hubTarget{l: l, topo: topo, key: "language", debugPort: debug, profile: filepath.Join(t.TempDir(), "missing", "hub")}
	spec := shapeSpec{name: "window 32", pairs: 2, window: 32, duration: time.Second}
	var log strings.Builder
	r, pairs, err := runShape(context.Background(), h, spec, 0, newProgress(&log))
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, spec.name, r)
	if p := procOf(r.CPU, "hub0"); p.PID != topo.hubs[0].pid() || p.Ops != r.Acked || procOf(r.CPU, "nats-server").PID != 0 {
		t.Errorf("measured %+v, want the hub's process and no nats-server", r.CPU)
	}
	checkSplit(t, r)
	if !strings.Contains(log.String(), "window 32: sessionhub profile: open ") {
		t.Errorf("the profile's failed file not said:\n%s", log.String())
	}
	if v := Verify(h.sessionLogs(context.Background(), pairs)); !v.OK() || v.Acked == 0 {
		t.Errorf("verdict: %+v", v)
	}
}

// checkSplit checks that r's server CPU per write is told apart by a
// profile (CPUSplit) between its own code and its nats-server, both at
// work in every shape.
func checkSplit(t *testing.T, r ShapeResult) {
	t.Helper()
	s := r.Split
	if s == nil || s.Samples == 0 || s.NATSShare <= 0 || s.NATSShare >= 1 || s.OwnPerOpUS <= 0 ||
		math.Abs(s.OwnPerOpUS+s.NATSPerOpUS-r.ServerCPUPerOpUS) > 1e-6*r.ServerCPUPerOpUS {
		t.Errorf("split %+v of %.1f µs per write", s, r.ServerCPUPerOpUS)
	}
}
