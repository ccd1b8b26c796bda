package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// latencyOf records ds in a histogram and summarizes it.
func latencyOf(ds ...time.Duration) Latency {
	h := newHist()
	for _, d := range ds {
		h.record(d)
	}
	return h.summary()
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// sampleReport is a report as a run builds it, from histograms and a
// verdict, for the scenario of the changes/s goal.
func sampleReport(lost bool) *Report {
	final := "x-s0-w1-n1"
	if lost {
		final = "x-s0-w0-n0"
	}
	v := Verify([]SessionLog{{
		Name: "s0",
		Acked: []AckedOp{
			{Key: "language", Value: "x-s0-w0-n0", Seq: 1},
			{Key: "language", Value: "x-s0-w1-n1", Seq: 2},
		},
		Seqs:  map[string]uint64{"x-s0-w0-n0": 1, "x-s0-w1-n1": 2},
		Final: map[string]json.RawMessage{"language": str(final)},
	}})
	var tl timeline
	tl.ack(int64(200*time.Millisecond), ms(0.4))
	tl.ack(int64(1500*time.Millisecond), ms(0.9))
	r := &Report{
		Started: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, OS: "linux", Arch: "amd64", Go: "go1.26"},
		Setup: Setup{Command: "go run ./cmd/loadtest -sessions 100 -sockets 2 -writers 2 -rate 0", Server: "cmd/sessionhub",
			Instances: 2, Durability: "default", Sessions: 100, Sockets: 2, Writers: 2, Keys: []string{"language"},
			Duration: "10s", KillInstance: "5s"},
		Baselines: &Baselines{
			WSEcho:        latencyOf(ms(0.05), ms(0.06), ms(0.07)),
			JSPublish:     latencyOf(ms(0.1), ms(0.12), ms(0.2)),
			JSAsyncPerSec: 100000, JSAsyncCount: 300000,
			Hello: Throughput{Concurrency: 32, Seconds: 3, Requests: 90000, PerSec: 30000, Latency: latencyOf(ms(1), ms(2))},
		},
		Load: LoadResult{
			Seconds: 10, Sent: 2, Acked: 2, AckedPerSec: 0.2, Changes: 450000, ChangesPerSec: 45000,
			Ack:           latencyOf(ms(0.3), ms(0.35), ms(5)),
			DeliverySame:  latencyOf(ms(0.25)),
			DeliveryCross: latencyOf(ms(0.9), ms(1), ms(1.1)),
			Flush:         latencyOf(ms(2)),
		},
		Flush:    &Throughput{Concurrency: 32, Seconds: 3, Requests: 30000, PerSec: 10000, Latency: latencyOf(ms(3))},
		Memory:   &Memory{Instance: "http://127.0.0.1:1", Asked: 20000, Held: 20000, RSSBefore: 30 << 20, RSSAfter: 30<<20 + 20000*20*1024, RSSPerSocket: 20 * 1024, HeapPerSocket: 12 * 1024},
		Verdict:  v,
		Events:   []Event{{At: 5, What: "SIGKILL hub instance 1"}, {At: 5.2, What: "hub instance 1 restarted"}},
		Timeline: tl.seconds(),
	}
	r.Targets = targets(r)
	return r
}

func TestTargets(t *testing.T) {
	t.Parallel()
	r := sampleReport(false)
	want := map[string]string{
		"ack latency":                       StatusMet,         // 0.35 / (0.06+0.12) < 2
		"delivery, same instance":           StatusMet,         // 0.25 / 0.18 < 1.5
		"delivery, across instances":        StatusNotMet,      // 1.0 / 0.18 > 3
		"changes delivered/s":               StatusMet,         // 0.45
		"bridge flush req/s (?seq)":         StatusNotMet,      // 0.33
		"bridge flush req/s (no seq)":       StatusNotMeasured, // no phase without seq
		"memory per idle socket":            StatusMet,         // 20 KiB
		"idle sockets held by one instance": StatusMet,         // 20000
		"zero loss":                         StatusNotMeasured, // 2 ops, not 1,000,000
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("%d targets, want %d", len(r.Targets), len(want))
	}
	for _, tg := range r.Targets {
		if tg.Status != want[tg.Name] {
			t.Errorf("%s: %s (%s, ratio %.2f), want %s", tg.Name, tg.Status, tg.Measured, tg.Ratio, want[tg.Name])
		}
	}
	if r.Targets[0].Note == "" {
		t.Error("ack target of a 200-writer run without the note on the goal's scenario")
	}
	one := sampleReport(false)
	one.Setup.Sessions, one.Setup.Writers = 1, 1
	if n := targets(one)[0].Note; n != "" {
		t.Errorf("ack target of the goal's own scenario with a note: %s", n)
	}
	lost := sampleReport(true)
	if z := lost.Targets[len(lost.Targets)-1]; z.Status != StatusNotMet {
		t.Errorf("zero loss with a lost op: %s", z.Status)
	}
	none := &Report{}
	for _, tg := range targets(none) {
		if tg.Status != StatusNotMeasured && tg.Name != "zero loss" {
			t.Errorf("%s measured without data: %+v", tg.Name, tg)
		}
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := sampleReport(false).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2 hub instances (cmd/sessionhub), nats-server durability default; RLIMIT_NOFILE 0",
		"fault at   5.00s: SIGKILL hub instance 1",
		"baseline: WS echo round trip",
		"changes delivered",
		"bridge flush",
		"zero-loss verdict (default durability): 2 acknowledged ops in 1 sessions: 1 present in the final flush, 1 superseded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\nlost: 0\n") {
		t.Errorf("last line is not lost: 0:\n%s", out)
	}

	b.Reset()
	if err := sampleReport(true).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	if !strings.Contains(out, `LOST s0 language="x-s0-w1-n1" seq 2: final value "x-s0-w0-n0" has the older sequence 1`) ||
		!strings.HasSuffix(out, "\nlost: 1\n") {
		t.Errorf("lost op not reported:\n%s", out)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	r := sampleReport(true)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Verdict.LostCount != 1 || back.Load.Ack.P50 != r.Load.Ack.P50 || back.Baselines.JSAsyncPerSec != 100000 ||
		len(back.Targets) != len(r.Targets) || back.Memory.Held != 20000 || len(back.Timeline) != 2 {
		t.Fatalf("JSON round trip lost data: %s", b.String())
	}
}

// The HTML page is self-contained: its SVG plots are well-formed XML and
// it loads nothing.
func TestWriteHTML(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := sampleReport(false).WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(page, "<svg "); n != 2 {
		t.Fatalf("%d plots, want 2", n)
	}
	for _, forbidden := range []string{"<script", "src=", "href="} {
		if strings.Contains(page, forbidden) {
			t.Errorf("page holds %q: not self-contained", forbidden)
		}
	}
	rest := page
	for {
		i := strings.Index(rest, "<svg ")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		svg := rest[i : i+j+len("</svg>")]
		dec := xml.NewDecoder(strings.NewReader(svg))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("svg is not well-formed: %v\n%s", err, svg)
			}
		}
		rest = rest[i+j:]
	}
	if !strings.Contains(page, "lost: 0") {
		t.Error("the page lacks the text report")
	}
}

func TestParseMetric(t *testing.T) {
	t.Parallel()
	text := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes_total 1
go_memstats_heap_inuse_bytes 1.2345678e+07
`
	if got := parseMetric(bufio.NewScanner(strings.NewReader(text)), "go_memstats_heap_inuse_bytes"); got != 12345678 {
		t.Fatalf("got %d", got)
	}
	if got := parseMetric(bufio.NewScanner(strings.NewReader("other 1\n")), "go_memstats_heap_inuse_bytes"); got != 0 {
		t.Fatalf("got %d for a missing metric", got)
	}
}

func TestParseRSS(t *testing.T) {
	t.Parallel()
	status := "Name:\tsessionhub\nVmPeak:\t  999 kB\nVmRSS:\t   131572 kB\nRssAnon:\t  118848 kB\n"
	if got := parseRSS([]byte(status)); got != 131572*1024 {
		t.Fatalf("got %d", got)
	}
	if got := parseRSS([]byte("Name:\tx\n")); got != 0 {
		t.Fatalf("got %d without VmRSS", got)
	}
	// The run's own process: the file is kept open and read twice.
	r := openRSS(os.Getpid())
	defer r.Close()
	if a, b := r.read(), r.read(); a <= 0 || b <= 0 {
		t.Fatalf("VmRSS of this process: %d, %d", a, b)
	}
}
