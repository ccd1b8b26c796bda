package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// timeline keeps per-second figures of the load: acks and their latency.
type timeline struct {
	mu   sync.Mutex
	secs []*tlSec
}

type tlSec struct {
	h *hdrhistogram.Histogram // ack latency, µs
}

const maxTimeline = 2 * 3600

// ack records an ack at now (nanoseconds since the load started).
func (t *timeline) ack(now int64, lat time.Duration) {
	sec := int(now / int64(time.Second))
	if sec < 0 || sec >= maxTimeline {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.secs) <= sec {
		t.secs = append(t.secs, nil)
	}
	s := t.secs[sec]
	if s == nil {
		s = &tlSec{h: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)}
		t.secs[sec] = s
	}
	_ = s.h.RecordValue(max(lat.Microseconds(), 1))
}

// Second is one second of the load in the report.
type Second struct {
	T     int     `json:"t"`
	Acked int64   `json:"acked"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (t *timeline) seconds() []Second {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Second, len(t.secs))
	for i, s := range t.secs {
		out[i].T = i
		if s == nil {
			continue
		}
		out[i].Acked = s.h.TotalCount()
		out[i].P50 = usToMs(s.h.ValueAtQuantile(50))
		out[i].P99 = usToMs(s.h.ValueAtQuantile(99))
		out[i].Max = usToMs(s.h.Max())
	}
	return out
}
