package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a run measured. It renders as text (WriteText),
// JSON (WriteJSON) and an HTML latency plot (WriteHTML).
type Report struct {
	Started   time.Time   `json:"started"`
	Machine   Machine     `json:"machine"`
	Setup     Setup       `json:"setup"`
	Baselines *Baselines  `json:"baselines,omitempty"`
	Load      LoadResult  `json:"load"`
	Flush     *Throughput `json:"flush_phase,omitempty"` // with ?seq, as the browser client
	// FlushNoSeq is the same phase without ?seq: each flush reads from
	// JetStream.
	FlushNoSeq *Throughput `json:"flush_phase_no_seq,omitempty"`
	Memory     *Memory     `json:"memory,omitempty"`
	Peer       *PeerReport `json:"peer,omitempty"` // a -peer run's side-by-side shapes
	Verdict    Verdict     `json:"verdict"`
	Targets    []Target    `json:"targets"`
	Events     []Event     `json:"events,omitempty"`
	// FaultWindows are the faults with the time without acks around each.
	FaultWindows []FaultWindow  `json:"faults,omitempty"`
	Cluster      *ClusterReport `json:"cluster,omitempty"`
	Timeline     []Second       `json:"timeline,omitempty"`
}

// Machine is where the run ran.
type Machine struct {
	CPUs int    `json:"cpus"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
	Go   string `json:"go"`
	Host string `json:"host"`
}

// Setup is the scenario.
type Setup struct {
	Command      string   `json:"command"`
	Server       string   `json:"server"`
	Instances    int      `json:"instances"`
	Durability   string   `json:"durability"`
	Sessions     int      `json:"sessions"`
	Sockets      int      `json:"sockets_per_session"`
	Writers      int      `json:"writers_per_session"`
	Keys         []string `json:"keys"`
	Rate         float64  `json:"rate_per_writer"` // 0: closed loop
	Duration     string   `json:"duration"`
	Ops          int64    `json:"ops_bound,omitempty"`
	NoFile       uint64   `json:"rlimit_nofile"` // the descriptor limit of the run and its servers
	KillInstance string   `json:"kill_instance,omitempty"`
	RestartNATS  string   `json:"restart_nats,omitempty"`
}

// LoadResult is the load phase's figures. Latencies are measured from
// the moment the load generator writes the op.
type LoadResult struct {
	Seconds  float64          `json:"seconds"`
	Sent     int64            `json:"sent"`
	Acked    int64            `json:"acked"`
	Failed   int64            `json:"failed"`            // answered with an error
	ConnLost int64            `json:"connection_lost"`   // unanswered when their connection ended
	Skipped  int64            `json:"skipped,omitempty"` // open loop: not sent, too many in flight
	Errors   map[string]int64 `json:"errors,omitempty"`
	// Closes counts the connections that ended during the load, by close
	// code (1006: without a close frame).
	Closes      map[string]int64 `json:"closes,omitempty"`
	AckedPerSec float64          `json:"acked_per_sec"`
	// Changes is every change message the sockets received (the writer's
	// own copy included); Delivered the ops that reached another socket
	// than their writer's, Replayed those of them that came in a resume.
	Changes       int64   `json:"changes"`
	ChangesPerSec float64 `json:"changes_per_sec"`
	Delivered     int64   `json:"delivered_to_others"`
	Replayed      int64   `json:"replayed"`
	Resets        int64   `json:"resets,omitempty"`
	Reconnects    int64   `json:"reconnects"`
	DialErrors    int64   `json:"dial_errors"`
	Sockets       int     `json:"sockets"`
	SocketsHeld   int     `json:"sockets_held_at_end"`
	Flushes       int64   `json:"flushes"`
	FlushErrors   int64   `json:"flush_errors"`

	Ack           Latency `json:"ack"`
	DeliverySame  Latency `json:"delivery_same_instance"`
	DeliveryCross Latency `json:"delivery_cross_instance"`
	Flush         Latency `json:"flush_under_load"`
	// CPU is each process's CPU time over the load and its drain, per
	// acknowledged op.
	CPU []ProcCPU `json:"cpu,omitempty"`
}

// Event is a fault of the run, at seconds since the load started.
type Event struct {
	At   float64 `json:"at_s"`
	What string  `json:"what"`
}

// Target is one goal of issue 5, as a ratio to this run's baselines.
type Target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"`
	Measured string  `json:"measured"`
	Ratio    float64 `json:"ratio,omitempty"`
	Status   string  `json:"status"` // met, not met, out of reach, not measured
	Note     string  `json:"note,omitempty"`
}

// Target statuses. A side-by-side goal (-peer) is out of reach when the
// bare relay of the same run misses it too, on a shape where the relay is
// the floor of any server staging each write in JetStream on the hub's
// libraries (PeerShape.relayFloor).
const (
	StatusMet         = "met"
	StatusNotMet      = "not met"
	StatusOutOfReach  = "out of reach"
	StatusNotMeasured = "not measured"
)

func setupOf(c *Config) Setup {
	s := Setup{
		Command:    commandLine(),
		Instances:  c.instances(),
		Durability: c.Durability,
		Sessions:   c.Sessions, Sockets: c.Sockets, Writers: c.Writers, Keys: c.Keys,
		Rate: c.Rate, Duration: c.Duration.String(), Ops: c.Ops,
	}
	if len(c.URLs) > 0 {
		s.Durability = "unknown (given URLs)"
	}
	if at := c.killAt(); at > 0 {
		s.KillInstance = at.String()
	}
	if c.RestartNATS > 0 {
		s.RestartNATS = c.RestartNATS.String() + " (" + c.NATSSignal + ")"
	}
	return s
}

func commandLine() string {
	return "go run ./cmd/loadtest " + strings.Join(os.Args[1:], " ")
}

// targets computes the goals of issue 5 from a report.
func targets(r *Report) []Target {
	var out []Target
	b := r.Baselines
	ld := &r.Load
	latTarget := func(name string, lat Latency, limit float64) Target {
		t := Target{Name: name, Goal: fmt.Sprintf("p50 ≤ %gx (WS echo p50 + JetStream publish p50)", limit)}
		if lat.Count == 0 || b == nil {
			t.Status, t.Measured = StatusNotMeasured, "n/a"
			return t
		}
		sum := b.WSEcho.P50 + b.JSPublish.P50
		t.Measured = fmt.Sprintf("p50 %.3f ms vs %.3f ms", lat.P50, sum)
		t.Ratio = lat.P50 / sum
		t.Status = status(t.Ratio <= limit)
		if writers := r.Setup.Sessions * r.Setup.Writers; r.Setup.Rate != 0 || writers != 1 {
			t.Note = fmt.Sprintf("this run: %d writers, %s; the goal compares one writer in a closed loop "+
				"(-sessions 1 -sockets 3 -writers 1 -rate 0) with the baselines' sequential round trips",
				writers, loopName(r.Setup.Rate))
		}
		return t
	}
	out = append(out,
		latTarget("ack latency", ld.Ack, 2),
		latTarget("delivery, same instance", ld.DeliverySame, 1.5),
		latTarget("delivery, across instances", ld.DeliveryCross, 3),
	)

	t := Target{Name: "changes delivered/s", Goal: "≥ 0.4x async JetStream publish rate (100 sessions x 2 sockets)"}
	if b == nil || b.JSAsyncPerSec == 0 || ld.Changes == 0 {
		t.Status, t.Measured = StatusNotMeasured, "n/a"
	} else {
		t.Measured = fmt.Sprintf("%.0f/s vs %.0f/s", ld.ChangesPerSec, b.JSAsyncPerSec)
		t.Ratio = ld.ChangesPerSec / b.JSAsyncPerSec
		t.Status = status(t.Ratio >= 0.4)
		if r.Setup.Sessions != 100 || r.Setup.Sockets != 2 || r.Setup.Rate != 0 {
			t.Note = fmt.Sprintf("this run: %d sessions x %d sockets, %s; the goal's scenario is 100 x 2, closed loop",
				r.Setup.Sessions, r.Setup.Sockets, loopName(r.Setup.Rate))
		}
	}
	out = append(out, t)

	flush := func(name string, tp *Throughput) {
		t := Target{Name: name, Goal: "≥ 0.5x bare net/http hello req/s"}
		if b == nil || tp == nil || b.Hello.PerSec == 0 {
			t.Status, t.Measured = StatusNotMeasured, "n/a"
		} else {
			t.Measured = fmt.Sprintf("%.0f/s vs %.0f/s", tp.PerSec, b.Hello.PerSec)
			t.Ratio = tp.PerSec / b.Hello.PerSec
			t.Status = status(t.Ratio >= 0.5)
		}
		out = append(out, t)
	}
	flush("bridge flush req/s (?seq)", r.Flush)
	flush("bridge flush req/s (no seq)", r.FlushNoSeq)

	t = Target{Name: "memory per idle socket", Goal: "≤ 24 KiB RSS, hub state included"}
	m := r.Memory
	if m == nil || m.RSSPerSocket == 0 {
		t.Status, t.Measured = StatusNotMeasured, "n/a"
	} else {
		t.Measured = fmt.Sprintf("%.1f KiB RSS (%.1f KiB Go heap) over %d sockets", m.RSSPerSocket/1024, m.HeapPerSocket/1024, m.Held)
		t.Ratio = m.RSSPerSocket / (24 * 1024)
		t.Status = status(m.RSSPerSocket <= 24*1024)
	}
	out = append(out, t)

	t = Target{Name: "idle sockets held by one instance", Goal: "20,000"}
	switch {
	case m == nil:
		t.Status, t.Measured = StatusNotMeasured, "n/a"
	case m.Asked < 20000:
		t.Status, t.Measured = StatusNotMeasured, fmt.Sprintf("%d of %d", m.Held, m.Asked)
		t.Note = "run with -idle-sockets 20000"
	default:
		t.Measured = fmt.Sprintf("%d of %d", m.Held, m.Asked)
		t.Ratio = float64(m.Held) / 20000
		t.Status = status(m.Held >= 20000)
		if m.Held < 20000 && r.Setup.NoFile > 0 && r.Setup.NoFile <= 20000+1024 {
			t.Note = fmt.Sprintf("RLIMIT_NOFILE is %d here and could not be raised: a process cannot hold 20,000 sockets and its other descriptors", r.Setup.NoFile)
		}
	}
	out = append(out, t)

	t = Target{Name: "zero loss", Goal: "lost: 0 over ≥ 1,000,000 acknowledged ops, one instance killed mid-run"}
	v := r.Verdict
	t.Measured = fmt.Sprintf("lost %d of %d acknowledged (%s durability)", v.LostCount, v.Acked, r.Setup.Durability)
	killed := r.Setup.KillInstance != ""
	switch {
	case v.LostCount > 0:
		t.Status = StatusNotMet
	case v.Acked >= 1_000_000 && killed:
		t.Status = StatusMet
	default:
		t.Status = StatusNotMeasured
		t.Note = "lost 0, but the goal needs ≥ 1,000,000 acknowledged ops and an instance kill"
	}
	out = append(out, t)
	return out
}

func status(ok bool) string {
	if ok {
		return StatusMet
	}
	return StatusNotMet
}

func loopName(rate float64) string {
	if rate == 0 {
		return "closed loop"
	}
	return fmt.Sprintf("open loop %g ops/s per writer", rate)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people; its last line is "lost: N".
func (r *Report) WriteText(w io.Writer) error {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format+"\n", args...) }
	s := r.Setup
	p("sessionhub loadtest, %s", r.Started.Format(time.RFC3339))
	p("machine: %d CPUs, %s/%s, %s", r.Machine.CPUs, r.Machine.OS, r.Machine.Arch, r.Machine.Go)
	p("command: %s", s.Command)
	p("servers: %d hub instances (%s), nats-server durability %s; RLIMIT_NOFILE %d", s.Instances, s.Server, s.Durability, s.NoFile)
	p("load: %d sessions x %d sockets, %d writers each setting %s, %s, %s%s",
		s.Sessions, s.Sockets, s.Writers, strings.Join(s.Keys, ","), loopName(s.Rate), s.Duration, opsBound(s.Ops))
	for _, e := range r.Events {
		p("  fault at %6.2fs: %s", e.At, e.What)
	}

	tw := func(write func(t *tabwriter.Writer)) {
		t := tabwriter.NewWriter(&sb, 2, 8, 2, ' ', 0)
		write(t)
		t.Flush()
	}
	p("")
	p("latency (ms)")
	tw(func(t *tabwriter.Writer) {
		fmt.Fprintln(t, "  \tcount\tp50\tp90\tp99\tp99.9\tmax\t")
		row := func(name string, l Latency) {
			if l.Count == 0 {
				fmt.Fprintf(t, "  %s\t0\t-\t-\t-\t-\t-\t\n", name)
				return
			}
			fmt.Fprintf(t, "  %s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, l.Count, l.P50, l.P90, l.P99, l.P999, l.Max)
		}
		if b := r.Baselines; b != nil {
			row("baseline: WS echo round trip", b.WSEcho)
			row("baseline: JetStream publish round trip", b.JSPublish)
			row("baseline: net/http hello", b.Hello.Latency)
		}
		row("ack", r.Load.Ack)
		row("delivery, same instance", r.Load.DeliverySame)
		row("delivery, across instances", r.Load.DeliveryCross)
		row("flush, during the load", r.Load.Flush)
		if r.Flush != nil {
			row("flush ?seq, throughput phase", r.Flush.Latency)
		}
		if r.FlushNoSeq != nil {
			row("flush without seq, throughput phase", r.FlushNoSeq.Latency)
		}
	})

	ld := r.Load
	p("")
	p("throughput")
	tw(func(t *tabwriter.Writer) {
		if b := r.Baselines; b != nil {
			fmt.Fprintf(t, "  baseline: async JetStream publish\t%.0f/s\t(%d acked)\n", b.JSAsyncPerSec, b.JSAsyncCount)
			fmt.Fprintf(t, "  baseline: net/http hello\t%.0f req/s\t(%d clients, %d errors)\n", b.Hello.PerSec, b.Hello.Concurrency, b.Hello.Errors)
		}
		fmt.Fprintf(t, "  ops acknowledged\t%.0f/s\t(%d in %.1fs)\n", ld.AckedPerSec, ld.Acked, ld.Seconds)
		fmt.Fprintf(t, "  changes delivered\t%.0f/s\t(%d; %d to other sockets, %d of them replayed on resume)\n", ld.ChangesPerSec, ld.Changes, ld.Delivered, ld.Replayed)
		if r.Flush != nil {
			fmt.Fprintf(t, "  bridge flush ?seq\t%.0f req/s\t(%d clients, %d errors)\n", r.Flush.PerSec, r.Flush.Concurrency, r.Flush.Errors)
		}
		if r.FlushNoSeq != nil {
			fmt.Fprintf(t, "  bridge flush without seq\t%.0f req/s\t(%d clients, %d errors)\n", r.FlushNoSeq.PerSec, r.FlushNoSeq.Concurrency, r.FlushNoSeq.Errors)
		}
	})

	p("")
	p("ops: %d sent, %d acknowledged, %d errors %s, %d unanswered when their connection ended, %d skipped",
		ld.Sent, ld.Acked, ld.Failed, errorList(ld.Errors), ld.ConnLost, ld.Skipped)
	if len(ld.CPU) > 0 {
		p("CPU per acknowledged op: %s", cpuText(ld.CPU))
	}
	p("sockets: %d, %d held at the end; %d reconnects (closes by code %s), %d failed dials, %d resets; flushes during the load: %d, %d failed",
		ld.Sockets, ld.SocketsHeld, ld.Reconnects, errorList(ld.Closes), ld.DialErrors, ld.Resets, ld.Flushes, ld.FlushErrors)
	if m := r.Memory; m != nil {
		p("idle sockets on %s: %d held of %d (%d failed, opened in %.1fs); RSS %s -> %s, Go heap %s -> %s; per socket %.1f KiB RSS, %.1f KiB heap",
			m.Instance, m.Held, m.Asked, m.Failed, m.OpenSecs, mib(m.RSSBefore), mib(m.RSSAfter), mib(m.HeapBefore), mib(m.HeapAfter),
			m.RSSPerSocket/1024, m.HeapPerSocket/1024)
	}

	r.writePeerText(&sb)
	p("")
	p("targets (ratios to this run's baselines)")
	tw(func(t *tabwriter.Writer) {
		for _, tg := range r.Targets {
			ratio := "-"
			if tg.Ratio != 0 {
				ratio = fmt.Sprintf("%.2fx", tg.Ratio)
			}
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\t%s\n", tg.Name, tg.Measured, ratio, tg.Status, tg.Goal)
			if tg.Note != "" {
				fmt.Fprintf(t, "  \t(%s)\t\t\t\n", tg.Note)
			}
		}
	})

	writeCluster(p, r.Cluster)
	writeFaults(p, r.FaultWindows)

	v := r.Verdict
	p("")
	p("zero-loss verdict (%s durability): %d acknowledged ops in %d sessions: %d present in the final flush, %d superseded by a later op of the same key",
		s.Durability, v.Acked, v.Sessions, v.Present, v.Superseded)
	if v.DeliveryChecked {
		p("delivery: %d acknowledged ops did not reach every socket of their session as a change (live or on resume)", v.Undelivered)
		for i, op := range v.UndeliveredOps {
			if i == 10 {
				break
			}
			p("  UNDELIVERED %s=%q seq %d reached %d sockets", op.Key, op.Value, op.Seq, op.Reached)
		}
	}
	if len(v.Unflushed) > 0 {
		p("sessions whose final flush failed: %s", strings.Join(v.Unflushed, " "))
	}
	for _, op := range v.Lost {
		p("  LOST %s %s=%q seq %d: %s", op.Session, op.Key, op.Value, op.Seq, op.Reason)
	}
	if int64(len(v.Lost)) < v.LostCount {
		p("  ... and %d more", v.LostCount-int64(len(v.Lost)))
	}
	p("lost: %d", v.LostCount)
	_, err := io.WriteString(w, sb.String())
	return err
}

func errorList(m map[string]int64) string {
	if len(m) == 0 {
		return "()"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
