package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/internal/natsconn"
)

// counters of the load, updated by every socket.
type counters struct {
	sent, acked, failed, connLost, skipped atomic.Int64
	changes, delivered, replayed, resets   atomic.Int64
	reconnects, dialErrors                 atomic.Int64
	flushes, flushErrors                   atomic.Int64
	errMu                                  sync.Mutex
	errs                                   map[string]int64
	closes                                 map[int]int64
}

// load is the state of one load phase.
type load struct {
	cfg   *Config
	urls  []string
	start time.Time
	httpc *http.Client
	dialc *http.Client

	writing context.Context // done when the writers stop

	c                          counters
	ack, same, cross, flushLat *hist
	tl                         timeline
	sessions                   []*lsession
	marks                      *marks   // acks and unavailable answers per 10ms, for faults
	faults                     faultLog // the fault windows
}

// now returns nanoseconds since the load started.
func (l *load) now() int64 { return int64(time.Since(l.start)) }

// countClose counts why a connection ended: its close code, or 1006
// when it ended without a close frame.
func (l *load) countClose(err error) {
	code := int(websocket.CloseStatus(err))
	if code < 0 {
		code = int(websocket.StatusAbnormalClosure)
	}
	l.c.errMu.Lock()
	l.c.closes[code]++
	l.c.errMu.Unlock()
}

func (l *load) countErr(code string) {
	l.c.errMu.Lock()
	l.c.errs[code]++
	l.c.errMu.Unlock()
}

func newHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// Run runs the load test cfg describes and returns its report; progress
// goes to progress. An error means the run could not be carried out; a
// lost op is in the report's verdict.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Peer.Name != "" {
		return runPeer(ctx, cfg, progress)
	}
	if cfg.Cluster.CompareR1 > 0 {
		return runCompared(ctx, cfg, progress)
	}
	pr := newProgress(progress)
	rep := &Report{Started: time.Now().UTC(), Machine: thisMachine()}
	rep.Setup = setupOf(&cfg)
	// Each socket takes a descriptor in the load generator and one in a
	// server, which inherits the limit; HTTP clients and stores need more.
	need := 2*(cfg.IdleSockets+cfg.Sessions*cfg.Sockets) + 8192
	if err := raiseNoFile(uint64(need)); err != nil {
		pr.logf("could not raise the file-descriptor limit to %d: %v", need, err)
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		rep.Setup.NoFile = lim.Cur
	}

	urls := cfg.URLs
	natsURL, natsConn := cfg.NATSURL, cfg.NATSConn
	var topo *topology
	if len(urls) == 0 {
		pr.logf("starting nats-server (%s durability) and %d hub instances", cfg.Durability, cfg.Instances)
		t, err := startTopology(ctx, &cfg, pr.logf)
		if err != nil {
			return nil, err
		}
		defer t.close()
		topo, urls, natsURL, natsConn = t, t.urls, t.natsURL, natsconn.Options{}
		rep.Setup.Server = t.hubKind
		pr.logf("nats-server at %s; hubs at %s (%s)", natsURL, strings.Join(urls, ", "), t.hubKind)
	} else {
		rep.Setup.Server = "given URLs"
	}

	if cfg.Baselines {
		if natsURL == "" {
			nc := cfg
			nc.Instances = 0
			t, err := startTopology(ctx, &nc, pr.logf)
			if err != nil {
				return nil, fmt.Errorf("nats-server for the baselines: %w", err)
			}
			defer t.close()
			natsURL, natsConn = t.natsURL, natsconn.Options{}
		}
		b, err := measureBaselines(ctx, &cfg, natsURL, &natsConn, pr)
		if err != nil {
			return nil, fmt.Errorf("baselines: %w", err)
		}
		rep.Baselines = b
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	l := &load{
		cfg: &cfg, urls: urls,
		httpc: newHTTPClient(max(cfg.Concurrency, cfg.Sessions)),
		dialc: newHTTPClient(16),
		ack:   newHist(), same: newHist(), cross: newHist(), flushLat: newHist(),
	}
	l.c.errs, l.c.closes = map[string]int64{}, map[int]int64{}
	if err := l.run(ctx, topo, rep, pr); err != nil {
		return nil, err
	}

	if cfg.PhaseDuration > 0 {
		// As the browser client flushes: with the highest seq seen, which
		// the instance's view holds. Then without it: every flush reads
		// from JetStream.
		phase := func(withSeq bool) *Throughput {
			tp := httpThroughput(ctx, l.httpc, cfg.Concurrency, cfg.PhaseDuration, func(worker, i int) (*http.Request, error) {
				s := l.sessions[(worker+i*cfg.Concurrency)%len(l.sessions)]
				var seq uint64
				if withSeq {
					seq = s.highestSeq()
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.flushURL(worker%len(urls), seq), nil)
				if err == nil {
					req.Header.Set("Cookie", s.cookieHeader())
				}
				return req, err
			})
			return &tp
		}
		pr.logf("bridge flush throughput: %d clients for %v with ?seq, then %v without", cfg.Concurrency, cfg.PhaseDuration, cfg.PhaseDuration)
		rep.Flush = phase(true)
		rep.FlushNoSeq = phase(false)
	}

	if cfg.IdleSockets > 0 && ctx.Err() == nil {
		pid := 0
		if topo != nil {
			pid = topo.hubs[0].pid()
		}
		m, err := measureIdle(ctx, l, 0, pid, cfg.IdleSockets, pr)
		if err != nil {
			pr.logf("idle sockets: %v", err)
		}
		rep.Memory = m
	}
	rep.Targets = targets(rep)
	return rep, nil
}

// run connects every session, runs the load with its faults, drains,
// flushes every session and checks the verdict.
func (l *load) run(ctx context.Context, topo *topology, rep *Report, pr *progress) error {
	cfg := l.cfg
	n := len(l.urls)
	l.start = time.Now()
	for i := range cfg.Sessions {
		s := &lsession{l: l, idx: i, name: fmt.Sprintf("s%d", i), cookies: map[string]string{}}
		for j := range cfg.Sockets {
			k := &lsocket{l: l, s: s, idx: j, home: (i + j) % n, writer: j < cfg.Writers, reply: make(chan bool, 1)}
			k.key = cfg.Keys[j%len(cfg.Keys)]
			s.sockets = append(s.sockets, k)
		}
		l.sessions = append(l.sessions, s)
	}

	pr.logf("connecting %d sessions x %d sockets", cfg.Sessions, cfg.Sockets)
	conns := make([][]*wsconn, len(l.sessions))
	err := parallel(ctx, 32, len(l.sessions), func(i int) error {
		s := l.sessions[i]
		for _, k := range s.sockets {
			var c *wsconn
			var err error
			for attempt := range 5 {
				if c, err = k.connect(ctx, k.home); err == nil {
					break
				}
				sleepCtx(ctx, backoff(attempt))
			}
			if err != nil {
				return fmt.Errorf("session %s socket %d: %w", s.name, k.idx, err)
			}
			conns[i] = append(conns[i], c)
		}
		return nil
	})
	if err != nil {
		for _, cs := range conns {
			for _, c := range cs {
				c.ws.CloseNow()
			}
		}
		return err
	}

	sockCtx, stopSockets := context.WithCancel(ctx)
	defer stopSockets()
	writing, stopWriting := context.WithTimeout(ctx, cfg.Duration)
	defer stopWriting()
	l.writing = writing
	l.start = time.Now()
	l.marks, l.faults.start = newMarks(cfg.Duration), l.start
	cpu := startCPU(topo.cpuProcs()...)
	var wg sync.WaitGroup
	for i, s := range l.sessions {
		for j, k := range s.sockets {
			wg.Go(func() { k.loop(sockCtx, conns[i][j]) })
		}
		if cfg.FlushEvery > 0 {
			wg.Go(func() { l.flushLoop(s) })
		}
	}
	mode := "closed loop"
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g ops/s per writer", cfg.Rate)
	}
	pr.logf("load: %d writers, %s, for %v%s", cfg.Sessions*cfg.Writers, mode, cfg.Duration, opsBound(cfg.Ops))

	var events eventLog
	events.start = l.start
	var faults sync.WaitGroup
	if at := cfg.killAt(); at > 0 && topo != nil {
		victim := 1 % len(topo.hubs)
		faults.Go(func() {
			if !sleepCtx(writing, at) {
				return
			}
			events.add("SIGKILL hub instance %d (%s)", victim, l.urls[victim])
			end := l.faults.begin(fmt.Sprintf("SIGKILL hub instance %d", victim))
			down, err := topo.killHub(victim)
			end(err)
			if err != nil {
				events.add("hub instance %d did not restart: %v", victim, err)
				return
			}
			events.add("hub instance %d restarted, down %v", victim, down.Round(time.Millisecond))
		})
	}
	if at := cfg.RestartNATS; at > 0 && topo != nil {
		sig := syscall.SIGKILL
		if cfg.NATSSignal == "term" {
			sig = syscall.SIGTERM
		}
		faults.Go(func() {
			if !sleepCtx(writing, at) {
				return
			}
			events.add("nats-server stopped with SIG%s", strings.ToUpper(cfg.NATSSignal))
			end := l.faults.begin("nats-server stopped with SIG" + strings.ToUpper(cfg.NATSSignal))
			down, err := topo.restartNATS(sig)
			end(err)
			if err != nil {
				events.add("nats-server did not restart: %v", err)
				return
			}
			events.add("nats-server restarted, down %v", down.Round(time.Millisecond))
		})
	}

	l.clusterFaults(writing, topo, &events, &faults)

	// Progress until the duration or the ops bound.
	tick := time.NewTicker(100 * time.Millisecond)
	lastPrint := time.Time{}
loop:
	for {
		select {
		case <-writing.Done():
			break loop
		case <-tick.C:
			if cfg.Ops > 0 && l.c.acked.Load() >= cfg.Ops {
				stopWriting()
				break loop
			}
			if time.Since(lastPrint) >= pr.every {
				lastPrint = time.Now()
				pr.bar(l, cfg)
			}
		}
	}
	tick.Stop()
	stopWriting()
	loadSecs := time.Since(l.start).Seconds()
	pr.bar(l, cfg)
	pr.endBar()
	faults.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	pr.logf("draining: waiting for answers and for every socket to see the last change")
	l.drain(ctx, 15*time.Second)
	rep.Load.CPU = cpu.end(l.c.acked.Load())
	held := 0
	for _, s := range l.sessions {
		for _, k := range s.sockets {
			if k.up.Load() {
				held++
			}
		}
	}

	pr.logf("flushing every session and checking every acknowledged op")
	logs := l.finalFlush(ctx)
	rep.Verdict = Verify(logs)
	stopSockets()
	wg.Wait()

	lr := &rep.Load
	lr.Seconds = loadSecs
	lr.Sent, lr.Acked, lr.Failed = l.c.sent.Load(), l.c.acked.Load(), l.c.failed.Load()
	lr.ConnLost, lr.Skipped = l.c.connLost.Load(), l.c.skipped.Load()
	lr.Errors = l.c.errs
	lr.Closes = map[string]int64{}
	for code, n := range l.c.closes {
		lr.Closes[strconv.Itoa(code)] = n
	}
	lr.AckedPerSec = float64(lr.Acked) / loadSecs
	lr.Changes, lr.Delivered = l.c.changes.Load(), l.c.delivered.Load()
	lr.ChangesPerSec = float64(lr.Changes) / loadSecs
	lr.Replayed, lr.Resets = l.c.replayed.Load(), l.c.resets.Load()
	lr.Reconnects, lr.DialErrors = l.c.reconnects.Load(), l.c.dialErrors.Load()
	lr.Sockets, lr.SocketsHeld = cfg.Sessions*cfg.Sockets, held
	lr.Flushes, lr.FlushErrors = l.c.flushes.Load(), l.c.flushErrors.Load()
	lr.Ack, lr.DeliverySame, lr.DeliveryCross, lr.Flush = l.ack.summary(), l.same.summary(), l.cross.summary(), l.flushLat.summary()
	rep.Timeline = l.tl.seconds()
	rep.Events = events.list()
	rep.FaultWindows = l.faults.windows(l.marks, loadSecs)
	if topo != nil && len(topo.nodes) > 0 {
		rep.Cluster = &ClusterReport{Nodes: len(topo.nodes), Replicas: cfg.Cluster.replicas()}
	}
	return nil
}

func opsBound(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" or %d acknowledged ops", n)
}

// drain waits for every sent op to be answered (or its connection to end)
// and for every connected socket to have seen its session's last
// acknowledged change.
func (l *load) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	settled := func() bool {
		for _, s := range l.sessions {
			want := s.maxSeq.Load()
			for _, k := range s.sockets {
				k.mu.Lock()
				p := len(k.pending)
				k.mu.Unlock()
				if p > 0 || (k.up.Load() && k.lastSeq.Load() < want) {
					return false
				}
			}
		}
		return true
	}
	for !settled() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// finalFlush flushes every session (on another instance than its first
// socket's, retrying while instances restart) and collects what the
// verdict needs.
func (l *load) finalFlush(ctx context.Context) []SessionLog {
	logs := make([]SessionLog, len(l.sessions))
	_ = parallel(ctx, 16, len(l.sessions), func(i int) error {
		s := l.sessions[i]
		sl := &logs[i]
		sl.Name = s.name
		if len(s.sockets) <= 64 {
			sl.Sockets = len(s.sockets)
		}
		var fr flushResult
		var err error
		for attempt := range 8 {
			// No seq: the bridge reads everything acknowledged from JetStream.
			if fr, err = l.flush(ctx, s, (i+1+attempt)%len(l.urls), 0); err == nil {
				break
			}
			sleepCtx(ctx, backoff(attempt))
		}
		if err != nil {
			sl.FlushErr = err.Error()
		}
		sl.Final = fr.Values
		// A final value written by an op that got no ack may have landed
		// just before the flush, its change still on the way to the
		// sockets: give it a moment to tell its sequence.
		deadline := time.Now().Add(3 * time.Second)
		for _, raw := range fr.Values {
			for !s.seqKnown(raw) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		sl.Seqs = map[string]uint64{}
		s.noteUnackedFolds()
		for _, k := range s.sockets {
			k.mu.Lock()
			for n, rec := range k.ops {
				if rec.seq == 0 {
					continue
				}
				v := opValue(s.idx, k.idx, n)
				sl.Seqs[v] = rec.seq
				if rec.state == opAcked {
					sl.Acked = append(sl.Acked, AckedOp{Key: k.key, Value: v, Seq: rec.seq, Reached: bits.OnesCount64(rec.seen | resetMask(s, rec.seq))})
				}
			}
			k.mu.Unlock()
		}
		return nil
	})
	return logs
}

// resetMask returns the sockets of s that got a reset at or after seq:
// the whole state, which holds the op of seq, instead of its change.
func resetMask(s *lsession, seq uint64) uint64 {
	var m uint64
	for i, k := range s.sockets {
		if i < 64 && k.resetSeq.Load() >= seq {
			m |= 1 << i
		}
	}
	return m
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// eventLog records the faults of a run.
type eventLog struct {
	start  time.Time
	mu     sync.Mutex
	events []Event
}

func (e *eventLog) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, Event{At: time.Since(e.start).Seconds(), What: fmt.Sprintf(format, args...)})
}

func (e *eventLog) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]Event(nil), e.events...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// raiseNoFile raises RLIMIT_NOFILE to at least need (the hard limit too,
// when allowed); the servers the run starts inherit it.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = max(need, lim.Cur)
	if want.Max < want.Cur {
		want.Max = want.Cur // needs CAP_SYS_RESOURCE
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want.Cur, want.Max = lim.Max, lim.Max
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil {
			return errors.Join(err, err2)
		}
		return fmt.Errorf("%w; raised to the hard limit %d", err, lim.Max)
	}
	return nil
}

func thisMachine() Machine {
	host, _ := os.Hostname()
	return Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(), Host: host}
}
