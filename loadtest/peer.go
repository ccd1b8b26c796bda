package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/internal/natsconn"
)

// PeerConfig is the side-by-side run against another realtime server
// (-peer): the same load shapes against one hub instance and against the
// peer, in the same run, on the same machine.
type PeerConfig struct {
	// Name of the peer: "centrifugo". Empty: no peer run.
	Name string
	// Bin is a prebuilt peer binary. Empty: go install it into the user's
	// cache directory (once; later runs reuse it).
	Bin string
	// Pairs is N of the throughput shapes: N sessions (hub) or channels
	// (peer), each 1 writer + 1 reader. Default: 100.
	Pairs int
	// Windows are the most unanswered writes per writer of the closed
	// loop throughput shapes. Default: 1 and 32.
	Windows []int
	// Rate is the open loop's total writes per second, over RateWriters
	// writers. Default: 1,000 over 50.
	Rate        float64
	RateWriters int
	// Duration of each shape on each server. Default: 5s.
	Duration time.Duration
	// NATS is where the hub's nats-server runs: natsEmbedded (in the hub's
	// process, on an in-process connection, as one sessionhub runs on one
	// machine: docs/DEPLOY.md) or natsExternal (a separate nats-server
	// process over TCP, as N instances share one). The bare relay's is
	// arranged the same way. Default: natsEmbedded.
	NATS string
	// Rounds runs each shape this many times on every server in turn,
	// for the spread of the ratios on a noisy machine. Default: 1.
	Rounds int
	// HubCPUProfile, when set, is the path prefix of a CPU profile of the
	// hub instance per shape (PREFIX-<shape>.pprof), taken from its
	// profiler (cmd/sessionhub -debug-addr), and of the bare relay
	// (PREFIX-relay-<shape>.pprof).
	HubCPUProfile string
}

func defaultPeerConfig() PeerConfig {
	return PeerConfig{Pairs: 100, Windows: []int{1, 32}, Rate: 1000, RateWriters: 50, Duration: 5 * time.Second, Rounds: 1, NATS: natsEmbedded}
}

// Where a -peer run's hub and relay find their nats-server (PeerConfig.NATS).
const (
	natsEmbedded = "embedded"
	natsExternal = "external"
)

// peerFlags registers the -peer flags.
func peerFlags(fs *flag.FlagSet, pc *PeerConfig) {
	fs.StringVar(&pc.Name, "peer", pc.Name, "run the load shapes side by side against this server too: centrifugo (built with go install the first time)")
	fs.StringVar(&pc.Bin, "peer-bin", pc.Bin, "prebuilt peer binary (empty: go install it into the user cache directory)")
	fs.IntVar(&pc.Pairs, "peer-pairs", pc.Pairs, "with -peer: sessions or channels of the throughput shapes, each 1 writer + 1 reader")
	fs.Float64Var(&pc.Rate, "peer-rate", pc.Rate, "with -peer: total writes per second of the open loop shape")
	fs.IntVar(&pc.RateWriters, "peer-rate-writers", pc.RateWriters, "with -peer: writers of the open loop shape")
	fs.DurationVar(&pc.Duration, "peer-duration", pc.Duration, "with -peer: duration of each shape on each server (whole seconds: a server's profile over a shape takes whole seconds)")
	fs.StringVar(&pc.NATS, "peer-nats", pc.NATS, "with -peer: the hub's nats-server: embedded (in its process, as one instance runs) or external (a separate process, as N instances share)")
	fs.IntVar(&pc.Rounds, "peer-rounds", pc.Rounds, "with -peer: run each shape this many times on every server in turn, and report the spread of the ratios")
	fs.StringVar(&pc.HubCPUProfile, "hub-cpuprofile", pc.HubCPUProfile, "with -peer: write a CPU profile of the hub instance per shape to PREFIX-<shape>.pprof, and of the bare relay to PREFIX-relay-<shape>.pprof")
}

func (pc *PeerConfig) validate() error {
	switch pc.Name {
	case "":
		return nil
	case peerCentrifugo:
	default:
		return fmt.Errorf("-peer %q: want %s", pc.Name, peerCentrifugo)
	}
	if pc.Pairs < 1 || pc.RateWriters < 1 || pc.Rate <= 0 || pc.Duration <= 0 || len(pc.Windows) == 0 || pc.Rounds < 1 {
		return errors.New("-peer wants -peer-pairs ≥ 1, -peer-rate-writers ≥ 1, -peer-rate > 0, -peer-duration > 0, -peer-rounds ≥ 1")
	}
	if pc.NATS != natsEmbedded && pc.NATS != natsExternal {
		return fmt.Errorf("-peer-nats %q: want %s or %s", pc.NATS, natsEmbedded, natsExternal)
	}
	return nil
}

// PeerReport is the side-by-side run: every shape on both servers.
type PeerReport struct {
	Peer    string `json:"peer"`
	Version string `json:"peer_version"`
	// NATS is where the hub's and the relay's nats-server ran
	// (PeerConfig.NATS).
	NATS   string      `json:"nats"`
	Shapes []PeerShape `json:"shapes"`
	// Idle is memory per idle connection: hub sockets each their own
	// session, peer connections each subscribed to its own channel.
	HubIdle  *Memory `json:"sessionhub_idle,omitempty"`
	PeerIdle *Memory `json:"peer_idle,omitempty"`
}

// embedded reports whether the hub's nats-server ran in its process (a
// report without NATS is from before -peer-nats: external).
func (pre *PeerReport) embedded() bool { return pre.NATS == natsEmbedded }

// PeerShape is one load shape on both servers: its first round, and with
// PeerConfig.Rounds above 1 every round.
type PeerShape struct {
	Name      string  `json:"name"`
	Pairs     int     `json:"pairs"`
	Window    int     `json:"window,omitempty"`     // closed loop: most unanswered per writer
	Rate      float64 `json:"rate_total,omitempty"` // open loop: writes/s over all writers
	PeerRound         // the first round
	// Rounds are every round, the first included, when the run had more
	// than one.
	Rounds []PeerRound `json:"rounds,omitempty"`
}

// PeerRound is one shape once on each server, one after the other.
type PeerRound struct {
	Hub     ShapeResult `json:"sessionhub"`
	PeerRes ShapeResult `json:"peer"`
	// PeerSubscribed is the closed-loop shapes once more on the peer,
	// each writer subscribed to its channel: the same deliveries per
	// write as the hub's (its writer's socket gets its own changes).
	PeerSubscribed *ShapeResult `json:"peer_writer_subscribed,omitempty"`
	// Relay is the shape on the bare relay (relay.go): the floor of what
	// a server staging every write in JetStream spends on the hub's
	// libraries.
	Relay *ShapeResult `json:"relay,omitempty"`
}

// ShapeResult is one shape on one server. Ack is a write's answer (the
// hub's ack, after JetStream's; the peer's publish reply); Delivery the
// write reaching the pair's reader.
type ShapeResult struct {
	Seconds     float64 `json:"seconds"`
	Sent        int64   `json:"sent"`
	Acked       int64   `json:"acked"`
	Failed      int64   `json:"failed"`
	Skipped     int64   `json:"skipped,omitempty"`
	Delivered   int64   `json:"delivered"`
	Undelivered int64   `json:"acked_undelivered"` // acknowledged, never reached the reader
	// Folded counts the acknowledged ops that reached the reader only in
	// a snapshot change that replaced them (a hub reader joining a log
	// compacted meanwhile).
	Folded     int64 `json:"acked_folded,omitempty"`
	OutOfOrder int64 `json:"out_of_order"`
	// Frames counts the frames the load generator read on the pair's
	// connections (each one read of a socket, whatever its messages) from
	// the shape's start to the end of its drain.
	Frames int64 `json:"frames"`
	// WriterDeliveries counts the delivery messages the writers' connections
	// read besides their answers (a hub socket's own changes, a
	// subscribed publisher's publications), not decoded (pair).
	WriterDeliveries int64            `json:"writer_deliveries,omitempty"`
	Errors           map[string]int64 `json:"errors,omitempty"`
	AckedPerSec      float64          `json:"acked_per_sec"`
	Ack              Latency          `json:"ack"`
	Delivery         Latency          `json:"delivery"`
	// CPU of each process over the shape, per acknowledged write; the
	// load generator's own included.
	CPU []ProcCPU `json:"cpu"`
	// ServerCPUPerOpUS sums the server side: hub + nats-server, or peer.
	ServerCPUPerOpUS float64 `json:"server_cpu_per_op_us"`
	// Split tells the server's own CPU apart from its embedded
	// nats-server's (PeerConfig.NATS embedded), by its profile.
	Split *CPUSplit `json:"embedded_split,omitempty"`
}

// pairTarget is a server the shapes drive.
type pairTarget interface {
	name() string
	// procs are the server's processes, whose CPU counts as its own.
	procs() []namedPID
	// dialPair connects pair p's writer and reader; the readers call p's
	// acked and delivered.
	dialPair(ctx context.Context, p *pair) (pairConn, error)
}

// pairConn is a pair's connections.
type pairConn interface {
	// publish writes op n of the pair.
	publish(ctx context.Context, n int) error
	close()
}

// pairOp is one write of a pair.
type pairOp struct {
	sent  int64 // ns since the shape started
	seq   uint64
	state uint8 // opSent, opAcked, opFailed
	seen  bool  // the reader's connection got it one by one
	// at is the highest sequence of a change the reader got it in (0: not
	// yet): above seq when it came in a snapshot of the log.
	at uint64
}

// pair is one writer + one reader: a session of the hub, a channel of the
// peer. Deliveries are counted at the reader, on every server: what a
// server sends the writer besides its answers (a hub socket's own
// changes, a subscribed Centrifugo publisher's publications) is read but
// not decoded (writerDelivery), so the load generator spends the same per
// write whatever the server sends there.
type pair struct {
	sh  *shapeRun
	idx int // unique in the run: the s of the values it writes

	mu       sync.Mutex
	ops      []pairOp
	inflight int
	lastN    int // highest n delivered to the reader, -1 before any
	// folded is the highest sequence of a change that came to the reader
	// as a snapshot of the log (a hub socket joining a compacted log,
	// PROTOCOL.md): it replaced every entry before it, so the ops below
	// it that the reader did not get one by one reached it folded.
	folded   uint64
	answered chan struct{}
	arrived  chan struct{}
	// writerGot counts the delivery messages the writer's connection read
	// (writerDelivery).
	writerGot atomic.Int64
}

// shapeRun is one shape on one server.
type shapeRun struct {
	start    time.Time
	ack, del *hist
	c        struct{ sent, acked, failed, skipped, delivered, outOfOrder, frames atomic.Int64 }
	errMu    sync.Mutex
	errs     map[string]int64
}

func (sh *shapeRun) now() int64 { return int64(time.Since(sh.start)) }

func (sh *shapeRun) countErr(code string) {
	sh.errMu.Lock()
	sh.errs[code]++
	sh.errMu.Unlock()
}

// countClose counts a connection that ended during the shape, by close
// code (1006: without a close frame), as an error "close <code>".
func (sh *shapeRun) countClose(err error) {
	code := int(websocket.CloseStatus(err))
	if code < 0 {
		code = int(websocket.StatusAbnormalClosure)
	}
	sh.countErr(fmt.Sprintf("close %d", code))
}

func newPair(sh *shapeRun, idx int) *pair {
	return &pair{sh: sh, idx: idx, lastN: -1, answered: make(chan struct{}, 1), arrived: make(chan struct{}, 1)}
}

// begin records op n as sent and returns it, or false when the pair has
// window writes unanswered already.
func (p *pair) begin(window int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight >= window {
		return 0, false
	}
	p.inflight++
	n := len(p.ops)
	p.ops = append(p.ops, pairOp{sent: p.sh.now(), state: opSent})
	p.sh.c.sent.Add(1)
	return n, true
}

// acked records the answer to op n: code "" is an ack with seq.
func (p *pair) acked(n int, seq uint64, code string, now int64) {
	p.mu.Lock()
	if n < 0 || n >= len(p.ops) || p.ops[n].state != opSent {
		p.mu.Unlock()
		return
	}
	op := &p.ops[n]
	p.inflight--
	sent := op.sent
	if code == "" {
		op.state = opAcked
		if seq != 0 {
			op.seq = seq
		}
	} else {
		op.state = opFailed // it may have landed all the same
	}
	p.noteFoldLocked(op.at, op.seq)
	p.mu.Unlock()
	if code == "" {
		p.sh.ack.record(time.Duration(now - sent))
		p.sh.c.acked.Add(1)
	} else {
		p.sh.c.failed.Add(1)
		p.sh.countErr(code)
	}
	select {
	case p.answered <- struct{}{}:
	default:
	}
}

// delivered records op n reaching the reader's connection in the change
// at sequence seq.
func (p *pair) delivered(n int, seq uint64, now int64) {
	p.mu.Lock()
	if n < 0 || n >= len(p.ops) {
		p.mu.Unlock()
		return
	}
	op := &p.ops[n]
	first := !op.seen
	op.seen = true
	op.at = max(op.at, seq) // a snapshot's sequence is above the op's own
	switch {
	case op.state == opAcked:
		p.noteFoldLocked(seq, op.seq)
	case op.seq == 0 || seq < op.seq:
		// Not acknowledged (yet): the lowest change it came in is its
		// sequence, or a snapshot above it.
		op.seq = seq
	}
	if op.state == opFailed { // failed, yet landed: sightings above the lowest were snapshots
		p.noteFoldLocked(op.at, op.seq)
	}
	if !first {
		p.mu.Unlock()
		return
	}
	sent := op.sent
	inOrder := n > p.lastN
	p.lastN = max(p.lastN, n)
	p.mu.Unlock()
	if !inOrder {
		p.sh.c.outOfOrder.Add(1)
	}
	p.sh.del.record(time.Duration(now - sent))
	p.sh.c.delivered.Add(1)
	select {
	case p.arrived <- struct{}{}:
	default:
	}
}

// noteFoldLocked notes that the reader got an op acknowledged at seq (or
// first seen at seq) in the change at sequence at: a snapshot of the log
// when at is above seq.
func (p *pair) noteFoldLocked(at, seq uint64) {
	if snapshotSighting(at, seq) {
		p.folded = max(p.folded, at)
	}
}

// writerDelivery reports whether line, read on the pair's writer
// connection (reader false), is a delivery there, a message that starts
// with prefix: counted in writerGot, not decoded (pair).
func (p *pair) writerDelivery(line []byte, reader bool, prefix string) bool {
	if reader || len(line) < len(prefix) || string(line[:len(prefix)]) != prefix {
		return false
	}
	p.writerGot.Add(1)
	return true
}

// reachedLocked reports whether op reached the reader: one by one, or
// folded into a snapshot change.
func (p *pair) reachedLocked(op *pairOp) bool {
	return op.seen || (op.seq != 0 && op.seq < p.folded)
}

// settled reports whether every op was answered and every acknowledged
// one reached the reader.
func (p *pair) settled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight > 0 {
		return false
	}
	for i := len(p.ops) - 1; i >= 0; i-- {
		if p.ops[i].state == opAcked {
			return p.reachedLocked(&p.ops[i])
		}
	}
	return true
}

// shapeSpec is a load shape: closed loop with at most window unanswered
// writes per writer, or open loop at rate writes/s in total; sequential
// waits for each write's answer and its delivery before the next.
type shapeSpec struct {
	name       string
	pairs      int
	window     int
	rate       float64
	sequential bool
	duration   time.Duration
}

// runShape runs spec against target; firstIdx numbers its pairs.
func runShape(ctx context.Context, target pairTarget, spec shapeSpec, firstIdx int, pr *progress) (ShapeResult, []*pair, error) {
	sh := &shapeRun{ack: newHist(), del: newHist(), errs: map[string]int64{}, start: time.Now()}
	pairs := make([]*pair, spec.pairs)
	conns := make([]pairConn, spec.pairs)
	for i := range pairs {
		pairs[i] = newPair(sh, firstIdx+i)
	}
	err := parallel(ctx, 16, spec.pairs, func(i int) error {
		var err error
		for attempt := range 5 {
			if conns[i], err = target.dialPair(ctx, pairs[i]); err == nil {
				return nil
			}
			sleepCtx(ctx, backoff(attempt))
		}
		return fmt.Errorf("%s pair %d: %w", target.name(), i, err)
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err != nil {
		return ShapeResult{}, nil, err
	}
	on := target.name()
	if c, ok := target.(*centrifugo); ok && c.writerSubscribed {
		on += ", each writer subscribed to its channel"
	}
	pr.logf("%s: %s on %s for %v", spec.name, shapeText(spec), on, spec.duration)
	sleepCtx(ctx, 200*time.Millisecond) // subscriptions settle

	procs := append(target.procs(), namedPID{"loadtest", selfPID()})
	cpu := startCPU(procs...)
	sh.start = time.Now()
	writing, stop := context.WithTimeout(ctx, spec.duration)
	defer stop()
	var wg sync.WaitGroup
	// The server's profile over the shape: kept in a file when the run
	// asks, split when its nats-server runs in its process.
	var prof struct {
		wg    sync.WaitGroup
		data  []byte
		err   error
		path  string
		split bool
	}
	if p, ok := target.(profiled); ok {
		var port int
		if port, prof.path, prof.split = p.profiler(spec.name); port > 0 {
			prof.wg.Go(func() { prof.data, prof.err = hubProfile(ctx, port, spec.duration, prof.path) })
		}
	}
	defer prof.wg.Wait()
	for i, p := range pairs {
		c := conns[i]
		switch {
		case spec.rate > 0:
			wg.Go(func() { openLoop(writing, ctx, p, c, spec.rate/float64(spec.pairs), spec.window) })
		default:
			wg.Go(func() { closedLoop(writing, ctx, p, c, spec.window, spec.sequential) })
		}
	}
	wg.Wait()
	secs := time.Since(sh.start).Seconds()
	// Drain: every answer, and every acknowledged write at its reader.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, p := range pairs {
			if !p.settled() {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := ShapeResult{
		Seconds: secs,
		Sent:    sh.c.sent.Load(), Acked: sh.c.acked.Load(), Failed: sh.c.failed.Load(), Skipped: sh.c.skipped.Load(),
		Delivered: sh.c.delivered.Load(), OutOfOrder: sh.c.outOfOrder.Load(), Frames: sh.c.frames.Load(),
		Ack: sh.ack.summary(), Delivery: sh.del.summary(),
	}
	res.CPU = cpu.end(res.Acked)
	for _, p := range target.procs() {
		res.ServerCPUPerOpUS += cpuPerOp(res.CPU, p.name)
	}
	prof.wg.Wait()
	switch {
	case prof.err != nil:
		pr.logf("%s: %s profile: %v", spec.name, target.name(), prof.err)
	case prof.path != "":
		pr.logf("%s: %s profile in %s", spec.name, target.name(), prof.path)
	}
	// A profile taken but not kept (its file failed) still splits.
	if prof.data != nil && prof.split {
		var err error
		if res.Split, err = splitProfile(prof.data, res.ServerCPUPerOpUS); err != nil {
			pr.logf("%s: %s profile: %v", spec.name, target.name(), err)
		}
	}
	res.AckedPerSec = float64(res.Acked) / secs
	if len(sh.errs) > 0 {
		res.Errors = sh.errs
	}
	for _, p := range pairs {
		undelivered, folded := p.deliveryCounts()
		res.Undelivered += undelivered
		res.Folded += folded
		res.WriterDeliveries += p.writerGot.Load()
	}
	return res, pairs, ctx.Err()
}

// deliveryCounts returns how many acknowledged ops never reached the
// reader, and how many reached it only folded into a snapshot change.
func (p *pair) deliveryCounts() (undelivered, folded int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.ops {
		op := &p.ops[i]
		if op.state != opAcked {
			continue
		}
		if !p.reachedLocked(op) {
			undelivered++
		} else if !op.seen {
			folded++
		}
	}
	return undelivered, folded
}

func shapeText(s shapeSpec) string {
	switch {
	case s.sequential:
		return "1 writer, each write after the last one's answer and delivery"
	case s.rate > 0:
		return fmt.Sprintf("open loop, %g writes/s over %d writers (at most %d unanswered each)", s.rate, s.pairs, s.window)
	}
	return fmt.Sprintf("%d pairs, at most %d unanswered writes per writer", s.pairs, s.window)
}

// closedLoop writes with at most window unanswered until writing is done;
// sequential also waits for each write's delivery.
func closedLoop(writing, ctx context.Context, p *pair, c pairConn, window int, sequential bool) {
	for writing.Err() == nil {
		n, ok := p.begin(window)
		if !ok {
			select {
			case <-p.answered:
			case <-writing.Done():
			}
			continue
		}
		if c.publish(ctx, n) != nil {
			return
		}
		if !sequential {
			continue
		}
		for !p.done(n) {
			select {
			case <-p.answered:
			case <-p.arrived:
			case <-writing.Done():
				return
			}
		}
	}
}

// done reports whether op n was answered and, when acknowledged, reached
// the reader.
func (p *pair) done(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	op := &p.ops[n]
	return op.state == opFailed || (op.state == opAcked && p.reachedLocked(op))
}

// openLoop writes at rate per second from a random phase; a write due
// while window are unanswered is skipped, not queued.
func openLoop(writing, ctx context.Context, p *pair, c pairConn, rate float64, window int) {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now().Add(rand.N(interval))
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-writing.Done():
			return
		}
		next = next.Add(interval)
		if now := time.Now(); now.Sub(next) > time.Second {
			next = now
		}
		t.Reset(time.Until(next))
		n, ok := p.begin(window)
		if !ok {
			p.sh.c.skipped.Add(1)
			continue
		}
		if c.publish(ctx, n) != nil {
			return
		}
	}
}

// closedLoopShape reports whether spec is one of the many-writer closed
// loops (window W), the shapes the ops/s and CPU targets are on.
func closedLoopShape(spec shapeSpec) bool {
	return spec.window > 0 && spec.rate == 0 && !spec.sequential
}

// peerShapes are the shapes of a -peer run, in order.
func peerShapes(pc *PeerConfig) []shapeSpec {
	out := []shapeSpec{{name: "sequential", pairs: 1, window: 1, sequential: true, duration: pc.Duration}}
	for _, w := range pc.Windows {
		out = append(out, shapeSpec{name: fmt.Sprintf("window %d", w), pairs: pc.Pairs, window: w, duration: pc.Duration})
	}
	return append(out, shapeSpec{name: "open loop", pairs: pc.RateWriters, window: 32, rate: pc.Rate, duration: pc.Duration})
}

// runPeer is a -peer run: one nats-server and one hub instance, the
// baselines, the peer; every shape on the hub then on the peer; idle
// connections on both; the zero-loss verdict of the hub's sessions.
func runPeer(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	pr := newProgress(progress)
	pc := &cfg.Peer
	cfg.Instances = 1
	rep := &Report{Started: time.Now().UTC(), Machine: thisMachine()}
	rep.Setup = setupOf(&cfg)
	if err := raiseNoFile(uint64(4*(cfg.IdleSockets+pc.Pairs*2) + 8192)); err != nil {
		pr.logf("could not raise the file-descriptor limit: %v", err)
	}

	// The peer's build takes minutes the first time: start it now.
	type built struct {
		bin string
		err error
	}
	binc := make(chan built, 1)
	bctx, stopBuild := context.WithCancel(ctx)
	defer stopBuild() // a run that fails before it needs the peer stops its build
	go func() {
		bin, err := centrifugoBinary(bctx, pc.Bin, pr.logf)
		binc <- built{bin, err}
	}()

	if pc.HubCPUProfile != "" || cfg.hubNATSEmbedded() { // the hub's profile splits its CPU (CPUSplit)
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg.debugPorts = []int{port}
	}
	if cfg.hubNATSEmbedded() {
		pr.logf("starting nats-server (%s durability, for the baselines) and 1 hub instance with its embedded nats-server", cfg.Durability)
	} else {
		pr.logf("starting nats-server (%s durability) and 1 hub instance", cfg.Durability)
	}
	topo, err := startTopology(ctx, &cfg, pr.logf)
	if err != nil {
		return nil, err
	}
	defer topo.close()
	rep.Setup.Server = topo.hubKind
	if cfg.Baselines {
		b, err := measureBaselines(ctx, &cfg, topo.natsURL, &natsconn.Options{}, pr)
		if err != nil {
			return nil, fmt.Errorf("baselines: %w", err)
		}
		rep.Baselines = b
	}

	b := <-binc
	if b.err != nil {
		return nil, fmt.Errorf("%s: %w", pc.Name, b.err)
	}
	peer, err := startCentrifugo(ctx, b.bin, topo.dir, pr.logf)
	if err != nil {
		return nil, err
	}
	defer peer.close()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	relayNATS, relayNATSPID := topo.natsURL, topo.nats.pid()
	if cfg.hubNATSEmbedded() {
		relayNATS, relayNATSPID = "", 0 // its own, in its process
	}
	relay, err := startRelay(self, relayNATS, relayNATSPID, topo.dir, pc.HubCPUProfile)
	if err != nil {
		return nil, fmt.Errorf("bare relay: %w", err)
	}
	defer relay.close()

	l := &load{cfg: &cfg, urls: topo.urls, httpc: newHTTPClient(64), dialc: newHTTPClient(16), start: time.Now()}
	hub := &hubTarget{l: l, topo: topo, key: cfg.Keys[0], profile: pc.HubCPUProfile}
	if len(cfg.debugPorts) > 0 {
		hub.debugPort = cfg.debugPorts[0]
	}
	pre := &PeerReport{Peer: pc.Name, Version: centrifugoVersion, NATS: pc.NATS}
	// Idle connections first, on servers that have served no load yet: the
	// memory a load's buffers and the store's caches leave free would take
	// the sockets' growth unseen (with the nats-server in the hub's
	// process, all but a few hundred bytes per socket).
	if cfg.IdleSockets > 0 {
		if pre.HubIdle, err = measureIdle(ctx, l, 0, topo.hubs[0].pid(), cfg.IdleSockets, pr); err != nil {
			pr.logf("idle sockets: %v", err)
		}
		if pre.PeerIdle, err = peer.measureIdle(ctx, cfg.IdleSockets, pr); err != nil {
			pr.logf("idle %s connections: %v", pc.Name, err)
		}
	}
	next := 0
	var hubPairs []*pair
	for _, spec := range peerShapes(pc) {
		ps := PeerShape{Name: spec.name, Pairs: spec.pairs, Window: spec.window, Rate: spec.rate}
		// run runs the shape on target, its pairs numbered after the last.
		run := func(target pairTarget) (ShapeResult, []*pair, error) {
			res, pairs, err := runShape(ctx, target, spec, next, pr)
			next += spec.pairs
			return res, pairs, err
		}
		for round := range pc.Rounds {
			var r PeerRound
			var pairs []*pair
			var err error
			if r.Hub, pairs, err = run(hub); err != nil {
				return nil, err
			}
			hubPairs = append(hubPairs, pairs...)
			if r.PeerRes, _, err = run(peer); err != nil {
				return nil, err
			}
			if closedLoopShape(spec) {
				peer.writerSubscribed = true
				sub, _, err := run(peer)
				peer.writerSubscribed = false
				if err != nil {
					return nil, err
				}
				r.PeerSubscribed = &sub
			}
			rel, _, err := run(relay)
			if err != nil {
				return nil, err
			}
			r.Relay = &rel
			if round == 0 {
				ps.PeerRound = r
			}
			if pc.Rounds > 1 {
				ps.Rounds = append(ps.Rounds, r)
			}
		}
		pre.Shapes = append(pre.Shapes, ps)
	}

	rep.Peer = pre

	pr.logf("flushing every session of the hub's shapes and checking every acknowledged op")
	rep.Verdict = Verify(hub.sessionLogs(ctx, hubPairs))
	rep.Targets = peerTargets(rep)
	return rep, nil
}

// rounds returns every round of s: its first alone in a run of one.
func (s *PeerShape) rounds() []PeerRound {
	if len(s.Rounds) == 0 {
		return []PeerRound{s.PeerRound}
	}
	return s.Rounds
}

// medianRound returns the round of s whose ratio is the median of its
// rounds (the lower of the middle two for an even count), and, for more
// than one round, a note of the ratio's spread over them. A target is
// judged on that round.
func (s *PeerShape) medianRound(ratio func(PeerRound) float64) (PeerRound, string) {
	m, spread, _ := s.medianWhere(ratio, func(PeerRound) bool { return true })
	return m, spread
}

// medianWhere is medianRound over the rounds of s that keep accepts (a
// figure some rounds lack, such as a profile's), numbered as in the whole
// run; ok is false when keep accepts none.
func (s *PeerShape) medianWhere(ratio func(PeerRound) float64, keep func(PeerRound) bool) (m PeerRound, spread string, ok bool) {
	rs := s.rounds()
	var idx []int
	for i, r := range rs {
		if keep(r) {
			idx = append(idx, i)
		}
	}
	switch {
	case len(idx) == 0:
		return PeerRound{}, "", false
	case len(rs) == 1:
		return rs[0], "", true
	}
	sort.SliceStable(idx, func(a, b int) bool { return ratio(rs[idx[a]]) < ratio(rs[idx[b]]) })
	mid := idx[(len(idx)-1)/2]
	of := fmt.Sprintf("%d rounds", len(rs))
	if len(idx) < len(rs) {
		of = fmt.Sprintf("%d of %d rounds", len(idx), len(rs))
	}
	return rs[mid], fmt.Sprintf("median of %s (round %d); lowest %.2fx, highest %.2fx",
		of, mid+1, ratio(rs[idx[0]]), ratio(rs[idx[len(idx)-1]])), true
}

// relayFloor returns the bare relay's median, over the rounds of s, of
// ratio (a goal's ratio with the relay's figures in the hub's place,
// called on the rounds with a relay run only), and whether the relay is
// the floor of the goal on s: a shape of one write in flight per writer
// (window 1, closed loop), where no server can batch writes and a hub can
// only add to what the relay spends on each. ok is false on other shapes,
// or when the relay did not run.
func (s *PeerShape) relayFloor(ratio func(r PeerRound) float64) (median float64, ok bool) {
	if s.Window != 1 || s.Rate > 0 {
		return 0, false
	}
	row := spreadOf(s.rounds(), func(r PeerRound) float64 {
		if r.Relay == nil {
			return 0
		}
		return ratio(r)
	})
	if len(row.ratios) == 0 {
		return 0, false
	}
	return row.median(), true
}

// judge is a goal's status: met; out of reach when the relay, its floor
// in the same run, misses it too (relayFloor); not met otherwise.
func judge(met, floorMisses bool) string {
	switch {
	case met:
		return StatusMet
	case floorMisses:
		return StatusOutOfReach
	}
	return StatusNotMet
}

// floorNote says what the relay, the goal's floor, measured.
func floorNote(median float64, verdict string) string {
	return fmt.Sprintf("floor: the relay %.2fx (median), %s", median, verdict)
}

// peerTargets computes the side-by-side goals of a -peer run. A goal the
// bare relay misses too, on a shape where it is the floor (relayFloor),
// is out of reach on this machine; the CPU goal then falls back to the
// hub's own CPU per write against the peer's, with its own floor (the
// relay alone).
func peerTargets(r *Report) []Target {
	pre := r.Peer
	var out []Target
	shape := func(name string) *PeerShape {
		for i := range pre.Shapes {
			if pre.Shapes[i].Name == name {
				return &pre.Shapes[i]
			}
		}
		return nil
	}
	for _, s := range pre.Shapes {
		if s.Window == 0 || s.Rate > 0 || s.Pairs == 1 {
			continue
		}
		t := Target{Name: "ops/s, " + s.Name, Goal: "hub acknowledged/s ≥ 1.0x peer published/s"}
		m, spread := s.medianRound(func(m PeerRound) float64 { return m.Hub.AckedPerSec / m.PeerRes.AckedPerSec })
		t.Measured = fmt.Sprintf("%.0f/s vs %.0f/s", m.Hub.AckedPerSec, m.PeerRes.AckedPerSec)
		if m.PeerRes.AckedPerSec > 0 {
			t.Ratio = m.Hub.AckedPerSec / m.PeerRes.AckedPerSec
		}
		t.Note = spread
		floor, ok := s.relayFloor(func(r PeerRound) float64 { return r.Relay.AckedPerSec / r.PeerRes.AckedPerSec })
		t.Status = judge(t.Ratio >= 1, ok && floor < 1)
		if ok {
			t.Note = joinNote(t.Note, floorNote(floor, "1.0x wanted"))
		}
		out = append(out, t)
	}
	if s := shape("sequential"); s != nil {
		t := Target{Name: "sequential delivery p50", Goal: "≤ peer delivery p50 + JetStream publish p50"}
		js := r.jsPublishP50()
		m, spread := s.medianRound(func(m PeerRound) float64 { return m.Hub.Delivery.P50 / (m.PeerRes.Delivery.P50 + js) })
		bar := m.PeerRes.Delivery.P50 + js
		t.Measured = fmt.Sprintf("%.3f ms vs %.3f + %.3f ms", m.Hub.Delivery.P50, m.PeerRes.Delivery.P50, js)
		if bar > 0 {
			t.Ratio = m.Hub.Delivery.P50 / bar
		}
		t.Note = spread
		floor, ok := s.relayFloor(func(r PeerRound) float64 { return r.Relay.Delivery.P50 / (r.PeerRes.Delivery.P50 + js) })
		ok = ok && js > 0
		t.Status = judge(bar > 0 && t.Ratio <= 1, ok && floor > 1)
		if ok {
			t.Note = joinNote(t.Note, floorNote(floor, "at most 1.0x of the bar wanted"))
		}
		out = append(out, t)
	}
	if s := shape("open loop"); s != nil {
		t := Target{Name: "open loop ack p50", Goal: "hub ack p50 ≤ 2x peer delivery p50"}
		m, spread := s.medianRound(func(m PeerRound) float64 { return m.Hub.Ack.P50 / m.PeerRes.Delivery.P50 })
		t.Measured = fmt.Sprintf("%.3f ms vs %.3f ms (%g writes/s over %d writers)", m.Hub.Ack.P50, m.PeerRes.Delivery.P50, s.Rate, s.Pairs)
		if m.PeerRes.Delivery.P50 > 0 {
			t.Ratio = m.Hub.Ack.P50 / m.PeerRes.Delivery.P50
		}
		t.Note = spread
		t.Status = status(t.Ratio > 0 && t.Ratio <= 2)
		out = append(out, t)
	}
	for _, s := range pre.Shapes {
		if s.Window == 0 || s.Rate > 0 {
			continue
		}
		out = append(out, cpuTarget(&s, pre.embedded()))
	}
	t := Target{Name: "memory per idle socket", Goal: "≤ 24 KiB RSS, hub state included"}
	if m := pre.HubIdle; m != nil && m.RSSPerSocket > 0 {
		t.Measured = fmt.Sprintf("%.1f KiB over %d sockets", m.RSSPerSocket/1024, m.Held)
		if p := pre.PeerIdle; p != nil && p.RSSPerSocket > 0 {
			t.Measured += fmt.Sprintf("; peer %.1f KiB per connection", p.RSSPerSocket/1024)
		}
		t.Ratio = m.RSSPerSocket / (24 * 1024)
		t.Status = status(t.Ratio <= 1)
	} else {
		t.Status, t.Measured = StatusNotMeasured, "n/a"
	}
	out = append(out, t)
	v := r.Verdict
	t = Target{Name: "zero loss", Goal: "lost: 0, every acknowledged op at the reader in order",
		Measured: fmt.Sprintf("lost %d of %d acknowledged; %d undelivered", v.LostCount, v.Acked, v.Undelivered)}
	ooo := int64(0)
	for _, s := range pre.Shapes {
		for _, m := range s.rounds() {
			ooo += m.Hub.OutOfOrder
		}
	}
	t.Measured += fmt.Sprintf(", %d out of order", ooo)
	t.Status = status(v.LostCount == 0 && v.Undelivered == 0 && ooo == 0)
	return append(out, t)
}

// cpuTarget is the CPU goal of closed-loop shape s: the hub with
// nats-server at most the peer's CPU per write; when the relay with
// nats-server misses that too (relayFloor), the hub alone at most the
// peer's, out of reach in turn when the relay alone misses it. With
// embedded, the hub's nats-server ran in its process, one process to
// /proc: the hub alone is its profile's share (CPUSplit), and so is the
// relay alone; judged over the rounds with a profile, not met when none
// had one.
func cpuTarget(s *PeerShape, embedded bool) Target {
	t := Target{Name: "CPU per op, " + s.Name, Goal: "hub + nats-server ≤ peer (else: hub alone ≤ peer)"}
	aloneOf := "hub alone"
	if embedded {
		t.Goal = "hub with its embedded nats-server ≤ peer (else: hub alone, by its profile, ≤ peer)"
		aloneOf = "hub alone by its profile"
	}
	withNATS := func(m PeerRound) float64 { return m.Hub.ServerCPUPerOpUS / m.PeerRes.ServerCPUPerOpUS }
	alone := func(m PeerRound) float64 { return m.Hub.alone("hub0", embedded) / m.PeerRes.ServerCPUPerOpUS }
	measured := func(m PeerRound) string {
		switch {
		case !embedded:
			return fmt.Sprintf("%.1f µs (hub %.1f + nats-server %.1f) vs %.1f µs", m.Hub.ServerCPUPerOpUS, cpuPerOp(m.Hub.CPU, "hub0"),
				cpuPerOp(m.Hub.CPU, "nats-server"), m.PeerRes.ServerCPUPerOpUS)
		case m.Hub.Split != nil:
			return fmt.Sprintf("%.1f µs (one process: hub %.1f + nats-server %.1f by %d samples) vs %.1f µs", m.Hub.ServerCPUPerOpUS,
				m.Hub.Split.OwnPerOpUS, m.Hub.Split.NATSPerOpUS, m.Hub.Split.Samples, m.PeerRes.ServerCPUPerOpUS)
		}
		return fmt.Sprintf("%.1f µs (one process) vs %.1f µs", m.Hub.ServerCPUPerOpUS, m.PeerRes.ServerCPUPerOpUS)
	}
	m, spread := s.medianRound(withNATS)
	t.Measured = measured(m)
	if m.PeerRes.ServerCPUPerOpUS > 0 {
		t.Ratio = withNATS(m)
		if a := alone(m); a > 0 {
			t.Note = fmt.Sprintf("%s: %.2fx", aloneOf, a)
		}
	}
	if sub := m.PeerSubscribed; sub != nil && sub.ServerCPUPerOpUS > 0 {
		t.Note = joinNote(t.Note, fmt.Sprintf("peer's writer subscribed (%.1f µs): %.2fx", sub.ServerCPUPerOpUS, m.Hub.ServerCPUPerOpUS/sub.ServerCPUPerOpUS))
		if a := m.Hub.alone("hub0", embedded); a > 0 {
			t.Note += fmt.Sprintf(", %s %.2fx", aloneOf, a/sub.ServerCPUPerOpUS)
		}
	}
	t.Note = joinNote(t.Note, spread)
	floor, ok := s.relayFloor(func(r PeerRound) float64 { return r.Relay.ServerCPUPerOpUS / r.PeerRes.ServerCPUPerOpUS })
	t.Status = status(t.Ratio > 0 && t.Ratio <= 1)
	if t.Status == StatusMet || !ok {
		return t
	}
	t.Note = joinNote(t.Note, floorNote(floor, "with nats-server"))
	if floor <= 1 {
		return t // within the floor's reach: not met
	}
	// Out of reach with nats-server: the hub alone is judged, on its own
	// median over the rounds that measured it (with the nats-server
	// embedded, those with a profile).
	m, spread, ok = s.medianWhere(alone, func(r PeerRound) bool { return alone(r) > 0 })
	if !ok {
		t.Note = joinNote(t.Note, "no profile told the hub alone apart")
		return t // nothing measured the fallback's bar: not met
	}
	t.Ratio, t.Measured = alone(m), measured(m)
	floor, ok = s.relayFloor(func(r PeerRound) float64 { return r.Relay.alone("relay", embedded) / r.PeerRes.ServerCPUPerOpUS })
	t.Status = judge(t.Ratio <= 1, ok && floor > 1)
	t.Note = joinNote(t.Note, fmt.Sprintf("judged on the %s: %.2fx", aloneOf, t.Ratio))
	if spread != "" {
		t.Note += " (" + spread + ")"
	}
	switch {
	case ok:
		t.Note = joinNote(t.Note, floorNote(floor, "alone"))
	case embedded:
		t.Note = joinNote(t.Note, "no profile told the relay alone apart")
	}
	return t
}

// alone is the CPU per write of the server's process proc without its
// nats-server: its own process's with the nats-server apart, the
// profile's share when it ran in the process (embedded; 0 without a
// profile).
func (r *ShapeResult) alone(proc string, embedded bool) float64 {
	switch {
	case !embedded:
		return cpuPerOp(r.CPU, proc)
	case r.Split != nil:
		return r.Split.OwnPerOpUS
	}
	return 0
}

// joinNote joins the parts of a target's note that are not empty.
func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
