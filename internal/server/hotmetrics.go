package server

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionhub/sessionhub/hub"
)

// The series the hub adds to on every write: sessionhub_ops_staged_total
// and sessionhub_ack_latency_seconds by source, and
// sessionhub_changes_delivered_total. A Prometheus counter or histogram
// is a few atomic words that every core adds to, and on a busy instance
// the cores then take turns at their cache lines: at one write answered
// at a time, these three series cost the hub 1.5% to 2.2% of its CPU per
// write (BENCHMARKS.md, tenth round). hotMetrics spreads each over hotStripes stripes instead, each on
// cache lines of its own, an addition going to a stripe picked at
// random; a scrape sums them. The staged count of a source is its
// latency histogram's count (each staged entry is observed once), and a
// duration is added to the sum in nanoseconds, with no compare-and-swap
// loop on a float.

// hotStripes is how many stripes the hot series spread over: a few per
// core of the machines sessionhub runs on.
const hotStripes = 8

// latencyBoundsNs are latencyBuckets' upper bounds in nanoseconds,
// 0.25 ms times a power of two: exact.
var latencyBoundsNs = func() (b [latencyBucketCount]int64) {
	for i, s := range latencyBuckets {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

// hotStripe is one stripe of the hot series, padded so that no cache
// line holds counts of two stripes, wherever the array starts: at least
// a line of padding, to a whole number of lines.
type hotStripe struct {
	counts    [2][latencyBucketCount + 1]atomic.Uint64 // by source (0: ws, 1: http), then bucket (the last: +Inf)
	sumNs     [2]atomic.Uint64
	delivered atomic.Uint64
	_         [64 + (64-hotStripeData%64)%64]byte
}

// hotStripeData is the size of a stripe's counts.
const hotStripeData = (2*(latencyBucketCount+1) + 2 + 1) * 8

// hotMetrics is a prometheus.Collector of the hot series.
type hotMetrics struct {
	stripes                            [hotStripes]hotStripe
	stagedDesc, latencyDesc, delivDesc *prometheus.Desc
}

func newHotMetrics() *hotMetrics {
	return &hotMetrics{
		stagedDesc: prometheus.NewDesc("sessionhub_ops_staged_total",
			"Log entries appended and acknowledged by JetStream, by source (ws or http).", []string{"source"}, nil),
		latencyDesc: prometheus.NewDesc("sessionhub_ack_latency_seconds",
			"Time from an append to JetStream's acknowledgement, by source.", []string{"source"}, nil),
		delivDesc: prometheus.NewDesc("sessionhub_changes_delivered_total",
			"Change messages queued to sockets.", nil, nil),
	}
}

// stripe picks a stripe at random (math/rand/v2's generator is per
// thread: no lock, no shared word).
func (h *hotMetrics) stripe() *hotStripe { return &h.stripes[rand.Uint32()%hotStripes] }

// staged counts an entry of source i (0: ws, 1: http) acknowledged d
// after its append.
func (h *hotMetrics) staged(i int, d time.Duration) {
	ns := max(int64(d), 0)
	b := 0
	for b < latencyBucketCount && ns > latencyBoundsNs[b] {
		b++
	}
	s := h.stripe()
	s.counts[i][b].Add(1)
	s.sumNs[i].Add(uint64(ns))
}

// deliver counts n change messages queued.
func (h *hotMetrics) deliver(n int) { h.stripe().delivered.Add(uint64(n)) }

// Describe implements prometheus.Collector.
func (h *hotMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.stagedDesc
	ch <- h.latencyDesc
	ch <- h.delivDesc
}

// Collect implements prometheus.Collector: each series is the sum of its
// stripes, a source's count and buckets from the same reads.
func (h *hotMetrics) Collect(ch chan<- prometheus.Metric) {
	var delivered uint64
	for s := range h.stripes {
		delivered += h.stripes[s].delivered.Load()
	}
	for i, src := range []string{hub.SourceWS, hub.SourceHTTP} {
		var counts [latencyBucketCount + 1]uint64
		var sumNs uint64
		for s := range h.stripes {
			st := &h.stripes[s]
			for b := range counts {
				counts[b] += st.counts[i][b].Load()
			}
			sumNs += st.sumNs[i].Load()
		}
		buckets := make(map[float64]uint64, latencyBucketCount)
		var cum uint64
		for b, upper := range latencyBuckets {
			cum += counts[b]
			buckets[upper] = cum
		}
		total := cum + counts[latencyBucketCount]
		ch <- prometheus.MustNewConstMetric(h.stagedDesc, prometheus.CounterValue, float64(total), src)
		ch <- prometheus.MustNewConstHistogram(h.latencyDesc, total, float64(sumNs)/1e9, buckets, src)
	}
	ch <- prometheus.MustNewConstMetric(h.delivDesc, prometheus.CounterValue, float64(delivered))
}
