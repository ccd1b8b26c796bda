package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		base, want     int
	}{
		{8 * mib, 64 * mib, 100, 800},       // a small heap waits for 64 MiB
		{10 * mib, 64 * mib, 100, 640},      //
		{10*mib + 1, 64 * mib, 100, 640},    // rounded up: never less than the headroom
		{64 * mib, 64 * mib, 100, 100},      // as much as the default gives
		{300 * mib, 64 * mib, 100, 100},     // a large heap keeps GOGC
		{300 * mib, 64 * mib, 200, 200},     // whatever it was
		{3 * mib, 64 * mib, 100, 1600},      // the runtime's smallest goal is 4 MiB times GOGC
		{0, 64 * mib, 100, 1600},            // nothing collected yet
		{4 * mib, 1 << 40, 100, MaxPercent}, // bounded
		{1 << 60, 1 << 63, 100, 800},        // no overflow
		{8 * mib, 0, 100, 100},              // no headroom asked
	} {
		if got := Percent(c.live, c.headroom, c.base); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.live, c.headroom, c.base, got, c.want)
		}
	}
}

func gogc() int {
	p, _ := GOGC()
	return int(p)
}

// Keep raises GOGC for this test's small heap, and stop puts back what
// it found.
func TestKeepRaisesGOGCAndPutsItBack(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := Keep(1 << 30) // far more than this heap holds
	if got := gogc(); got <= 100 {
		t.Errorf("GOGC %d with a headroom of 1 GiB over this heap, want it raised", got)
	}
	stop()
	stop() // twice is fine
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after stop, want 100 back", got)
	}
}

// With the collector off, or no headroom asked, Keep leaves GOGC alone.
func TestKeepLeavesGOGCAlone(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	stop := Keep(1 << 30)
	runtime.GC()
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC %d with the collector off, want it left off", got)
	}
	stop()
	debug.SetGCPercent(100)
	stop = Keep(0)
	runtime.GC()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d with no headroom asked, want 100", got)
	}
	stop()
}

// After every collection Keep tunes GOGC to the live heap it found: as
// the live heap grows past the headroom's worth, GOGC comes back down to
// base, without waiting for a clock.
func TestKeepFollowsEveryCollection(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const headroom = 32 << 20
	stop := Keep(headroom)
	defer stop()
	raised := gogc()
	if raised <= 100 {
		t.Fatalf("GOGC %d over this small heap, want it raised", raised)
	}
	held := make([][]byte, 0, 64)
	for range 64 { // 64 MiB live, twice the headroom
		held = append(held, make([]byte, 1<<20))
	}
	// The cleanup runs after a collection, on a goroutine of the
	// runtime's: one armed during a collection follows the next one.
	deadline := time.Now().Add(5 * time.Second)
	for gogc() != 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d over a live heap of twice the headroom, want 100", got)
	}
	runtime.KeepAlive(held)
	runtime.GC()
	for gogc() == 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := gogc(); got <= 100 {
		t.Errorf("GOGC %d once the heap is small again, want it raised", got)
	}
}
