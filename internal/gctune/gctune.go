// Package gctune keeps the garbage collector of a process with a small
// heap from running every few megabytes allocated.
//
// The Go runtime collects when the heap has grown by GOGC percent of what
// was live after the last collection. A hub holding few sockets has a
// live heap of some ten megabytes and allocates a few kilobytes per
// write, so with the default GOGC of 100 it collects several times a
// second, and each collection marks every goroutine's stack and makes the
// goroutines that allocate meanwhile help (BENCHMARKS.md, ninth round).
// Keep gives the heap a minimum headroom instead: GOGC is raised while
// the live heap is small, so that a collection comes only after headroom
// bytes at least, and stays at its starting value once the live heap is
// large enough for that value to give as much. The memory it costs is
// bounded by headroom, whatever the heap; a GOMEMLIMIT still applies.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// MaxPercent bounds the GOGC that Keep sets, for a live heap of almost
// nothing.
const MaxPercent = 10000

// Percent is the GOGC that lets a heap grow by headroom bytes at least
// before its next collection, and never less than base, where live is
// what GOGC is a percentage of (the live heap, stacks and globals).
// live counts as minHeap at least: the runtime's smallest heap goal is
// minHeap times GOGC percent, and a GOGC made for less would let a heap
// that has not been collected yet grow far past headroom.
func Percent(live, headroom uint64, base int) int {
	live = max(live, minHeap)
	p := MaxPercent
	if q := math.Ceil(float64(headroom) * 100 / float64(live)); q < MaxPercent {
		p = int(q)
	}
	return max(base, p)
}

// minHeap is the runtime's smallest heap goal at GOGC 100.
const minHeap = 4 << 20

// Keep sets GOGC from the live heap after every garbage collection, so
// that the heap has at least headroom bytes to grow by before the next
// one, until stop is called; stop puts back the GOGC it started from.
// With headroom 0, or with the garbage collector off (GOGC=off), Keep
// does nothing. GOGC is the process's: one Keep at a time (a second one
// would take the first one's GOGC for its base).
//
// It follows every collection rather than a clock, so that a live heap
// growing fast (thousands of sockets opening) never runs on a GOGC made
// for a smaller one: the heap's goal is the live heap of the last
// collection plus the larger of headroom and what base gives.
func Keep(headroom uint64) (stop func()) {
	base, ok := GOGC()
	if headroom == 0 || !ok || base == 0 || base > math.MaxInt32 {
		return func() {} // off, or nothing Keep could set back
	}
	k := &keeper{headroom: headroom, base: int(base), set: int(base)}
	k.mu.Lock()
	k.tuneLocked()
	k.mu.Unlock()
	k.arm()
	return k.stop
}

// GOGC is the process's GOGC percent (0: the collector is off); ok is
// false when the runtime does not tell.
func GOGC() (percent uint64, ok bool) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64(), true
}

// keeper is Keep's state; a cleanup of an unreachable object, run after
// the collection that found it so, retunes it and arms the next one.
type keeper struct {
	headroom uint64
	base     int

	mu      sync.Mutex
	set     int // the GOGC last set
	stopped bool
}

// sentinel is the object whose cleanup follows a collection: larger
// than the runtime's tiny allocations, which are freed together.
type sentinel struct{ _ [16]byte }

func (k *keeper) arm() {
	runtime.AddCleanup(new(sentinel), func(k *keeper) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.stopped {
			return
		}
		k.tuneLocked()
		k.arm()
	}, k)
}

func (k *keeper) tuneLocked() {
	if p := Percent(scanned(), k.headroom, k.base); p != k.set {
		debug.SetGCPercent(p)
		k.set = p
	}
}

// scanned is what GOGC is a percentage of: the heap the last collection
// found live, and the goroutines' stacks and the globals it scanned (the
// runtime's heap goal is that heap plus GOGC percent of the three).
func scanned() uint64 {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(samples)
	var n uint64
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return n
}

func (k *keeper) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.stopped = true
	if k.set != k.base {
		debug.SetGCPercent(k.base)
	}
}
