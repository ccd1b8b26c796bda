package loadtest

import (
	"context"
	"fmt"
	"io"
)

// ClusterReport is the cluster scenario's figures.
type ClusterReport struct {
	Nodes    int `json:"nats_nodes"`
	Replicas int `json:"replicas"`
	// R1 is the same load at R1 on a fresh cluster without faults, run
	// first (-compare-r1); nil when not asked for.
	R1 *R1Compare `json:"r1,omitempty"`
}

// R1Compare is the R1 run and the ratios of this run's ops/s to it.
type R1Compare struct {
	Seconds     float64 `json:"seconds"`
	Acked       int64   `json:"acked"`
	AckedPerSec float64 `json:"acked_per_sec"`
	Lost        int64   `json:"lost"`
	// Ratio is this run's acknowledged ops/s over the R1 run's, faults
	// included; PreFaultRatio the same over the seconds before this
	// run's first fault (0 without one).
	Ratio         float64 `json:"ratio"`
	PreFaultRatio float64 `json:"pre_fault_ratio,omitempty"`
}

// runCompared runs cfg's load at R1 without faults for CompareR1, then
// cfg itself, and reports the ratio.
func runCompared(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	r1 := cfg
	r1.Cluster.CompareR1, r1.Cluster.Replicas = 0, 1
	r1.Cluster.KillLeader, r1.Cluster.PauseFollower, r1.Cluster.RestartAll = 0, 0, 0
	r1.KillInstance, r1.RestartNATS = 0, 0
	r1.Duration, r1.Ops = cfg.Cluster.CompareR1, 0
	r1.Baselines, r1.PhaseDuration, r1.IdleSockets = false, 0, 0
	r1.JSONPath, r1.HTMLPath = "", ""
	fmt.Fprintf(progress, "R1 comparison: the same load for %v at R1 on its own cluster, no faults\n", r1.Duration)
	r1rep, err := Run(ctx, r1, progress)
	if err != nil {
		return nil, fmt.Errorf("R1 comparison run: %w", err)
	}
	r3 := cfg
	r3.Cluster.CompareR1 = 0
	rep, err := Run(ctx, r3, progress)
	if err != nil {
		return nil, err
	}
	c := &R1Compare{Seconds: r1rep.Load.Seconds, Acked: r1rep.Load.Acked, AckedPerSec: r1rep.Load.AckedPerSec, Lost: r1rep.Verdict.LostCount}
	if c.AckedPerSec > 0 {
		c.Ratio = rep.Load.AckedPerSec / c.AckedPerSec
		if pre := preFaultPerSec(rep); pre > 0 {
			c.PreFaultRatio = pre / c.AckedPerSec
		}
	}
	if rep.Cluster == nil {
		rep.Cluster = &ClusterReport{}
	}
	rep.Cluster.R1 = c
	t := Target{Name: "R3 ops/s against R1", Goal: "≥ 0.5x the same load at R1, same run", Ratio: c.Ratio,
		Measured: fmt.Sprintf("%.0f/s vs %.0f/s at R1 (faults included)", rep.Load.AckedPerSec, c.AckedPerSec), Status: status(c.Ratio >= 0.5)}
	if c.PreFaultRatio > 0 {
		t.Note = fmt.Sprintf("before the first fault: %.2fx", c.PreFaultRatio)
	}
	rep.Targets = append(rep.Targets, t)
	// A loss in the R1 run is a loss of this run.
	rep.Verdict.LostCount += c.Lost
	return rep, nil
}

// preFaultPerSec is the acknowledged ops/s of the whole seconds before
// the run's first fault, skipping the first second (ramp-up).
func preFaultPerSec(r *Report) float64 {
	if len(r.FaultWindows) == 0 {
		return 0
	}
	first := r.FaultWindows[0].At
	for _, w := range r.FaultWindows {
		first = min(first, w.At)
	}
	var n int64
	secs := 0
	for _, s := range r.Timeline {
		if s.T >= 1 && float64(s.T+1) <= first {
			n += s.Acked
			secs++
		}
	}
	if secs == 0 {
		return 0
	}
	return float64(n) / float64(secs)
}

// writeCluster adds the cluster's figures to the text report.
func writeCluster(p func(string, ...any), c *ClusterReport) {
	if c == nil {
		return
	}
	p("")
	p("NATS cluster: %d nats-server processes, the stream at R%d", c.Nodes, c.Replicas)
	if r := c.R1; r != nil {
		pre := ""
		if r.PreFaultRatio > 0 {
			pre = fmt.Sprintf("; before the first fault %.2fx", r.PreFaultRatio)
		}
		p("  R%d/R1: %.2fx of the R1 run's %.0f ops/s (%d acknowledged in %.1fs, lost %d), faults included%s",
			c.Replicas, r.Ratio, r.AckedPerSec, r.Acked, r.Seconds, r.Lost, pre)
	}
}
