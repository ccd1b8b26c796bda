package hub

import (
	"sync/atomic"
)

// A socket's acker and writer are short jobs: a writer runs per batch of
// frames that the dispatcher does not write itself (conn.writeSoon: a
// frame the kernel would not take at once, or one queued elsewhere), an
// acker while answers wait for more than an acknowledgement
// (pipeline.go); each then ends, so an idle socket holds no goroutine. A
// goroutine made for each would start on a small stack and grow it on
// every run (coder/websocket's write path is deeper than a fresh stack):
// a sequential write paid 11.6% of the hub's CPU copying stacks. The
// runner keeps the goroutines of finished jobs, idle, for the next ones
// instead: a busy socket's next job finds a stack already grown (the
// runtime may shrink an idle one at a GC, so the gain is between
// collections).

// maxIdleRunners is how many idle goroutines the runner keeps; a job
// that ends with that many idle ends its goroutine too.
const maxIdleRunners = 256

// runner runs jobs on kept goroutines. Its idle goroutines end when the
// hub closes, and, those waiting for a job, at a janitor pass (every
// quarter of ViewIdle) that found none of them needed since the last one
// (trim).
type runner struct {
	jobs chan func() // unbuffered: a send goes through only to an idle goroutine
	idle atomic.Int32
	used atomic.Bool // a job went to an idle goroutine since the last trim
	stop chan struct{}
}

func newRunner(stop chan struct{}) *runner {
	return &runner{jobs: make(chan func()), stop: stop}
}

// run runs f on an idle goroutine, or on a new one.
func (r *runner) run(f func()) {
	if !r.give(f) {
		go r.work(f)
	}
}

// give hands f to a goroutine waiting for a job, if one is: an idle one
// about to wait (counted, not yet receiving) is missed.
func (r *runner) give(f func()) bool {
	select {
	case r.jobs <- f:
		r.used.Store(true)
		return true
	default:
		return false
	}
}

// work runs f, then the jobs given to it while idle, until it is not
// needed any more.
func (r *runner) work(f func()) {
	for {
		f()
		if r.idle.Add(1) > maxIdleRunners {
			r.idle.Add(-1)
			return
		}
		select {
		case f = <-r.jobs:
			r.idle.Add(-1)
			if f == nil {
				return // trimmed
			}
		case <-r.stop:
			r.idle.Add(-1)
			return
		}
	}
}

// trim ends the idle goroutines when no job needed one since the last
// trim: a hub past its busy hour keeps none. The janitor calls it.
func (r *runner) trim() {
	if r.used.Swap(false) {
		return
	}
	for r.idle.Load() > 0 {
		select {
		case r.jobs <- nil:
		default:
			return // the idle ones took jobs meanwhile, or are between jobs
		}
	}
}
