package hub

import (
	"testing"
	"time"
)

// waitIdle waits until r has n idle goroutines.
func waitIdle(t *testing.T, r *runner, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.idle.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle goroutines, want %d", r.idle.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// giveSoon gives f to r's idle goroutine, retrying while it is between
// its count and its wait.
func giveSoon(t *testing.T, r *runner, f func()) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !r.give(f) {
		if time.Now().After(deadline) {
			t.Fatal("no idle goroutine took the job")
		}
		time.Sleep(time.Millisecond)
	}
}

// trimSoon trims r until no goroutine is idle: one between its count and
// its wait is trimmed at the next try, as at the janitor's next pass.
func trimSoon(t *testing.T, r *runner) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.trim(); r.idle.Load() > 0; r.trim() {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle goroutines after trims", r.idle.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A job goes to the goroutine a finished one left idle; the idle ones end
// after a trim that found them unneeded, and when the hub closes.
func TestRunnerKeepsItsGoroutines(t *testing.T) {
	stop := make(chan struct{})
	r := newRunner(stop)
	ran := make(chan struct{}, 8)
	r.run(func() { ran <- struct{}{} })
	<-ran
	waitIdle(t, r, 1)

	// The next job takes the idle goroutine: none is idle while it runs.
	// (Counted idle a moment before it waits for a job, it may miss one
	// given at once: give is retried.)
	release := make(chan struct{})
	giveSoon(t, r, func() { <-release; ran <- struct{}{} })
	if !r.used.Load() {
		t.Fatal("a job given is not counted as used")
	}
	waitIdle(t, r, 0) // a new goroutine would have left the idle one idle
	close(release)
	<-ran
	waitIdle(t, r, 1)

	r.trim() // used since the last trim: kept
	if r.idle.Load() != 1 {
		t.Fatalf("trim after a busy spell: %d idle", r.idle.Load())
	}
	trimSoon(t, r) // not used since: ended
	waitIdle(t, r, 0)

	for range 3 {
		r.run(func() { ran <- struct{}{} })
	}
	for range 3 {
		<-ran
	}
	if r.idle.Load() == 0 {
		waitIdle(t, r, 1) // at least one is idle by now
	}
	close(stop)
	waitIdle(t, r, 0)
}

// No more than maxIdleRunners goroutines stay idle.
func TestRunnerBoundsItsIdleGoroutines(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	r := newRunner(stop)
	release := make(chan struct{})
	n := maxIdleRunners + 50
	for range n {
		r.run(func() { <-release })
	}
	close(release)
	waitIdle(t, r, maxIdleRunners)
	time.Sleep(20 * time.Millisecond)
	if got := r.idle.Load(); got != maxIdleRunners {
		t.Fatalf("%d idle goroutines, want %d", got, maxIdleRunners)
	}
}

// A hub's idle runner goroutines end within two janitor passes of their
// last job, and at once when the hub closes.
func TestHubRunnerTrimmedByTheJanitor(t *testing.T) {
	h := internalHubWith(t, func(o *Options) { o.ViewIdle = 40 * time.Millisecond }) // a pass every 10 ms
	done := make(chan struct{})
	h.run.run(func() { close(done) })
	<-done
	// Five passes later: the goroutine, idle once its job ended, is gone.
	time.Sleep(50 * time.Millisecond)
	waitIdle(t, h.run, 0)

	h2 := internalHub(t) // passes a quarter of the default ViewIdle apart
	done = make(chan struct{})
	h2.run.run(func() { close(done) })
	<-done
	time.Sleep(50 * time.Millisecond)
	waitIdle(t, h2.run, 1) // kept: no pass yet
	_ = h2.Close()
	waitIdle(t, h2.run, 0)
}
