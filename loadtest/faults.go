package loadtest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// markStep is the resolution of the fault windows' figures.
const markStep = 10 * time.Millisecond

// marks counts acks and unavailable answers per markStep of the load, for
// the fault windows.
type marks struct {
	acks, unavailable []atomic.Int32
}

func newMarks(d time.Duration) *marks {
	n := int((d+2*time.Minute)/markStep) + 1
	return &marks{acks: make([]atomic.Int32, n), unavailable: make([]atomic.Int32, n)}
}

// note records an answer at now (nanoseconds since the load started):
// an ack (code "") or an error code.
func (m *marks) note(now int64, code string) {
	if m == nil {
		return
	}
	i := int(now / int64(markStep))
	if i < 0 || i >= len(m.acks) {
		return
	}
	switch code {
	case "":
		m.acks[i].Add(1)
	case "unavailable":
		m.unavailable[i].Add(1)
	}
}

// FaultWindow is one fault of the run and what the load saw around it.
type FaultWindow struct {
	What string `json:"what"`
	// At and Until are when the fault began and when it was over (the
	// node or instance back), in seconds since the load started.
	At    float64 `json:"at_s"`
	Until float64 `json:"until_s"`
	// End is where the window of the figures ends: 10 seconds past
	// Until, or the next fault, or the end of the load.
	End float64 `json:"window_end_s"`
	// NoAcks is the longest time without any acknowledged op from At to
	// End.
	NoAcks float64 `json:"longest_without_acks_s"`
	// Unavailable is the ops answered unavailable in the same window.
	Unavailable int64  `json:"answered_unavailable"`
	Err         string `json:"error,omitempty"`
}

// faultLog collects the fault windows of a run.
type faultLog struct {
	start time.Time
	mu    sync.Mutex
	wins  []FaultWindow
}

// begin records a fault starting now; the returned function ends it.
func (f *faultLog) begin(what string) func(err error) {
	at := time.Since(f.start).Seconds()
	return func(err error) {
		w := FaultWindow{What: what, At: at, Until: time.Since(f.start).Seconds()}
		if err != nil {
			w.Err = err.Error()
		}
		f.mu.Lock()
		f.wins = append(f.wins, w)
		f.mu.Unlock()
	}
}

// windows returns the faults with their figures from m, the load having
// lasted loadSecs.
func (f *faultLog) windows(m *marks, loadSecs float64) []FaultWindow {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]FaultWindow(nil), f.wins...)
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	step := markStep.Seconds()
	for i := range out {
		w := &out[i]
		end := min(w.Until+10, loadSecs)
		if i+1 < len(out) {
			end = min(end, max(out[i+1].At, w.Until)) // up to the next fault
		}
		w.End = end
		from := int(w.At / step)
		to := min(int(end/step), len(m.acks)-1)
		run, longest := 0, 0
		for j := from; j <= to; j++ {
			if m.acks[j].Load() == 0 {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
			w.Unavailable += int64(m.unavailable[j].Load())
		}
		w.NoAcks = float64(longest) * step
	}
	return out
}

// clusterFaults starts the NATS cluster's faults of cfg, each at its
// point of the load (writing ends with the load).
func (l *load) clusterFaults(writing context.Context, topo *topology, events *eventLog, wg *sync.WaitGroup) {
	cc := &l.cfg.Cluster
	if topo == nil || len(topo.nodes) == 0 {
		return
	}
	at := func(d time.Duration, fn func()) {
		if d <= 0 {
			return
		}
		wg.Go(func() {
			if sleepCtx(writing, d) {
				fn()
			}
		})
	}
	at(cc.KillLeader, func() {
		leader, _, err := topo.streamPeers(writing)
		if err != nil {
			events.add("stream leader not found: %v", err)
			return
		}
		what := "SIGKILL the stream leader nats-server " + leader.name
		events.add("%s; restart after %v", what, cc.Pause)
		end := l.faults.begin(what)
		err = topo.killNode(leader, cc.Pause)
		end(err)
		if err != nil {
			events.add("nats-server %s did not come back: %v", leader.name, err)
			return
		}
		events.add("nats-server %s back on its store", leader.name)
	})
	at(cc.PauseFollower, func() {
		_, followers, err := topo.streamPeers(writing)
		if err != nil || len(followers) == 0 {
			events.add("no stream follower found: %v", err)
			return
		}
		f := followers[len(followers)-1]
		what := "SIGSTOP the stream follower nats-server " + f.name
		events.add("%s for %v", what, cc.Pause)
		end := l.faults.begin(what)
		err = topo.pauseNode(f, cc.Pause)
		end(err)
		events.add("nats-server %s continued (SIGCONT)", f.name)
	})
	at(cc.RestartAll, func() {
		names := make([]string, len(topo.nodes))
		for i, n := range topo.nodes {
			names[i] = n.name
		}
		what := "SIGKILL every nats-server (" + strings.Join(names, ", ") + ")"
		events.add("%s; restart after %v", what, cc.Pause)
		end := l.faults.begin(what)
		err := topo.restartAll(cc.Pause)
		end(err)
		if err != nil {
			events.add("the cluster did not come back: %v", err)
			return
		}
		events.add("every nats-server back on its store")
	})
}

// writeFaults adds the fault windows to the text report.
func writeFaults(p func(string, ...any), wins []FaultWindow) {
	if len(wins) == 0 {
		return
	}
	p("")
	p("faults (figures from the fault to 10s after it was over, the next fault or the end of the load)")
	for _, w := range wins {
		line := fmt.Sprintf("  %6.2fs %s (over at %.2fs; window to %.2fs): longest without acks %.2fs, %d ops answered unavailable",
			w.At, w.What, w.Until, w.End, w.NoAcks, w.Unavailable)
		if w.Err != "" {
			line += " (" + w.Err + ")"
		}
		p("%s", line)
	}
}
