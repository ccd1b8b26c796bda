package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// hist is a latency histogram safe for concurrent use: HDR, microsecond
// resolution, 1 µs to 5 min, 3 significant digits.
type hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

const histMax = int64(5 * time.Minute / time.Microsecond)

func newHist() *hist {
	return &hist{h: hdrhistogram.New(1, histMax, 3)}
}

// record adds one latency.
func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	if us > histMax {
		us = histMax
	}
	h.mu.Lock()
	_ = h.h.RecordValue(us)
	h.mu.Unlock()
}

// summary returns the histogram's figures.
func (h *hist) summary() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	return summarize(h.h)
}

// Latency summarizes one latency histogram; every duration is in
// milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	// Curve is the percentile distribution for plots: latency at
	// percentiles 0, 50, 75, 87.5, ... (halving the rest each step).
	Curve []CurvePoint `json:"curve,omitempty"`
}

// CurvePoint is one point of a percentile distribution.
type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

func usToMs(v int64) float64 { return float64(v) / 1000 }

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	l := Latency{
		Count: h.TotalCount(),
		Min:   usToMs(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   usToMs(h.ValueAtQuantile(50)),
		P90:   usToMs(h.ValueAtQuantile(90)),
		P99:   usToMs(h.ValueAtQuantile(99)),
		P999:  usToMs(h.ValueAtQuantile(99.9)),
		Max:   usToMs(h.Max()),
	}
	// 0, 50, 75, 87.5, ... up to the resolution the count supports.
	rest := 100.0
	for p := 0.0; ; {
		l.Curve = append(l.Curve, CurvePoint{Percentile: p, Ms: usToMs(h.ValueAtQuantile(p))})
		if rest*float64(h.TotalCount()) < 100 || len(l.Curve) > 24 {
			break
		}
		rest /= 2
		p = 100 - rest
	}
	l.Curve = append(l.Curve, CurvePoint{Percentile: 100, Ms: l.Max})
	return l
}
