package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestClusterFlags(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	args := []string{"-nats-cluster", "3", "-instances", "3", "-kill-nats-leader", "5s", "-pause-nats", "7s",
		"-restart-all", "9s", "-nats-pause", "1s", "-compare-r1", "30s"}
	if err := parseFlags(&cfg, args, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	want := ClusterConfig{Nodes: 3, KillLeader: 5 * time.Second, PauseFollower: 7 * time.Second, RestartAll: 9 * time.Second,
		Pause: time.Second, CompareR1: 30 * time.Second}
	if cfg.Cluster != want || cfg.Cluster.replicas() != 3 {
		t.Fatalf("cluster config %+v (R%d)", cfg.Cluster, cfg.Cluster.replicas())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-kill-nats-leader", "1s"}, "need -nats-cluster 3"},
		{[]string{"-nats-cluster", "2", "-pause-nats", "1s"}, "need -nats-cluster 3"},
		{[]string{"-nats-cluster", "3", "-replicas", "5"}, "at most the node count"},
		{[]string{"-nats-cluster", "3", "-restart-nats", "1s"}, "-restart-nats is for one server"},
		{[]string{"-compare-r1", "1s"}, "-compare-r1 needs -nats-cluster"},
		{[]string{"-urls", "http://127.0.0.1:1", "-nats-cluster", "3"}, "need the servers the run starts"},
	} {
		cfg := DefaultConfig()
		if err := parseFlags(&cfg, tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

// The fault windows: the longest stretch without acks and the
// unavailable answers, each window ending at the next fault.
func TestFaultWindows(t *testing.T) {
	t.Parallel()
	m := newMarks(20 * time.Second)
	at := func(s float64) int64 { return int64(s * float64(time.Second)) }
	// Acks every 10ms except from 2.0s to 3.5s (a gap of 1.5s) and from
	// 8.0s to 8.2s; three unavailable answers at 2.5s, one at 8.1s.
	for ms := 0; ms < 12000; ms += 10 {
		s := float64(ms) / 1000
		if (s >= 2.0 && s < 3.5) || (s >= 8.0 && s < 8.2) {
			continue
		}
		m.note(at(s), "")
	}
	for range 3 {
		m.note(at(2.5), "unavailable")
	}
	m.note(at(8.1), "unavailable")
	m.note(at(8.1), "rate_limited")
	f := &faultLog{wins: []FaultWindow{
		{What: "instance", At: 7.9, Until: 8.0},
		{What: "leader", At: 1.9, Until: 2.5},
	}}
	got := f.windows(m, 12)
	if len(got) != 2 || got[0].What != "leader" || got[1].What != "instance" {
		t.Fatalf("windows %+v", got)
	}
	near := func(a, b float64) bool { return a > b-0.015 && a < b+0.015 }
	if w := got[0]; !near(w.NoAcks, 1.5) || w.Unavailable != 3 || !near(w.End, 7.9) {
		t.Errorf("leader window %+v: want 1.5s without acks, 3 unavailable, to 7.9s", w)
	}
	if w := got[1]; !near(w.NoAcks, 0.2) || w.Unavailable != 1 || !near(w.End, 12) {
		t.Errorf("instance window %+v: want 0.2s without acks, 1 unavailable, to 12s", w)
	}
}

func TestPreFaultPerSec(t *testing.T) {
	t.Parallel()
	r := &Report{
		Timeline:     []Second{{T: 0, Acked: 10}, {T: 1, Acked: 100}, {T: 2, Acked: 300}, {T: 3, Acked: 5}, {T: 4, Acked: 900}},
		FaultWindows: []FaultWindow{{At: 3.5}},
	}
	if got := preFaultPerSec(r); got != 200 {
		t.Fatalf("pre-fault rate %v, want 200 (seconds 1 and 2)", got)
	}
	if got := preFaultPerSec(&Report{}); got != 0 {
		t.Fatalf("without faults: %v", got)
	}
}
