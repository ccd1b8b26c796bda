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
	release := make(chan struct{})
	r.run(func() { <-release; ran <- struct{}{} })
	if !r.used.Load() {
		t.Fatal("the job did not go to the idle goroutine")
	}
	waitIdle(t, r, 0) // a new goroutine would have left the idle one idle
	close(release)
	<-ran
	waitIdle(t, r, 1)

	r.trim() // used since the last trim: kept
	if r.idle.Load() != 1 {
		t.Fatalf("trim after a busy spell: %d idle", r.idle.Load())
	}
	r.trim() // not used since: ended
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
