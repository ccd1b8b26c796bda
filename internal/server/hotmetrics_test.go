package server

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather collects c on a registry of its own and returns its families by
// name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

// The striped series expose what Prometheus's own counter and histogram
// fed the same writes expose: the same families, types, labels, bucket
// counts (a duration on a bound counts in that bound's bucket), counts
// and sums, and the staged count of a source equal to its histogram's.
func TestHotMetricsMatchPrometheus(t *testing.T) {
	hot := newHotMetrics()
	want := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sessionhub_ack_latency_seconds", Help: "reference", Buckets: latencyBuckets,
	}, []string{"source"})
	var wantStaged [2]int
	durations := []time.Duration{0, -time.Millisecond, 250 * time.Microsecond, 250*time.Microsecond + 1, 500 * time.Microsecond,
		4096 * time.Millisecond, 4096*time.Millisecond + 1, time.Hour}
	for range 2000 {
		durations = append(durations, time.Duration(rand.Int64N(int64(10*time.Second))))
	}
	delivered := 0
	for k, d := range durations {
		i := k % 2
		hot.staged(i, d)
		want.WithLabelValues([]string{"ws", "http"}[i]).Observe(max(d, 0).Seconds())
		wantStaged[i]++
		hot.deliver(k % 3)
		delivered += k % 3
	}
	got, ref := gather(t, hot), gather(t, want)

	if f := got["sessionhub_changes_delivered_total"]; f.GetType() != dto.MetricType_COUNTER || f.Metric[0].Counter.GetValue() != float64(delivered) {
		t.Errorf("delivered: %v, want a counter at %d", f, delivered)
	}
	staged := got["sessionhub_ops_staged_total"]
	if staged.GetType() != dto.MetricType_COUNTER || len(staged.Metric) != 2 {
		t.Fatalf("staged: %v", staged)
	}
	lat := got["sessionhub_ack_latency_seconds"]
	if lat.GetType() != dto.MetricType_HISTOGRAM || len(lat.Metric) != 2 {
		t.Fatalf("latency: %v", lat)
	}
	source := func(m *dto.Metric) string { return m.Label[0].GetValue() }
	for n, m := range lat.Metric {
		r := ref["sessionhub_ack_latency_seconds"].Metric[n]
		if source(m) != source(r) {
			t.Fatalf("series %d: source %s, reference %s", n, source(m), source(r))
		}
		h, rh := m.Histogram, r.Histogram
		if h.GetSampleCount() != rh.GetSampleCount() || math.Abs(h.GetSampleSum()-rh.GetSampleSum()) > 1e-6*rh.GetSampleSum() {
			t.Errorf("%s: count %d sum %v, reference %d %v", source(m), h.GetSampleCount(), h.GetSampleSum(), rh.GetSampleCount(), rh.GetSampleSum())
		}
		if len(h.Bucket) != len(rh.Bucket) {
			t.Fatalf("%s: %d buckets, reference %d", source(m), len(h.Bucket), len(rh.Bucket))
		}
		for b := range h.Bucket {
			if h.Bucket[b].GetUpperBound() != rh.Bucket[b].GetUpperBound() || h.Bucket[b].GetCumulativeCount() != rh.Bucket[b].GetCumulativeCount() {
				t.Errorf("%s bucket le=%v: %d, reference le=%v: %d", source(m), h.Bucket[b].GetUpperBound(),
					h.Bucket[b].GetCumulativeCount(), rh.Bucket[b].GetUpperBound(), rh.Bucket[b].GetCumulativeCount())
			}
		}
	}
	for _, m := range staged.Metric {
		i := map[string]int{"ws": 0, "http": 1}[source(m)]
		if m.Counter.GetValue() != float64(wantStaged[i]) {
			t.Errorf("staged %s: %v, want %d", source(m), m.Counter.GetValue(), wantStaged[i])
		}
	}
}

// Additions from many goroutines at once all count; a stripe is whole
// cache lines with at least one of padding, so no line holds counts of
// two stripes; and an addition allocates nothing.
func TestHotMetricsStripes(t *testing.T) {
	if size := unsafe.Sizeof(hotStripe{}); size%64 != 0 || size < hotStripeData+64 {
		t.Fatalf("a stripe is %d bytes, its counts %d", size, hotStripeData)
	}
	hot := newHotMetrics()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 1000 {
				hot.staged(g%2, time.Millisecond)
				hot.deliver(2)
			}
		})
	}
	wg.Wait()
	got := gather(t, hot)
	if n := got["sessionhub_changes_delivered_total"].Metric[0].Counter.GetValue(); n != 16000 {
		t.Errorf("delivered %v, want 16000", n)
	}
	for _, m := range got["sessionhub_ops_staged_total"].Metric {
		if m.Counter.GetValue() != 4000 {
			t.Errorf("staged %s: %v, want 4000", m.Label[0].GetValue(), m.Counter.GetValue())
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		hot.staged(0, time.Millisecond)
		hot.deliver(1)
	}); n != 0 {
		t.Errorf("an addition allocates %v times", n)
	}
}
