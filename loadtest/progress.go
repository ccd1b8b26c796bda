package loadtest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress writes the run's progress: log lines, and a bar during the
// load (redrawn in place on a terminal, a line every 5s otherwise).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	every time.Duration
	inBar bool
	start time.Time
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	p := &progress{w: w, every: 5 * time.Second, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inBar && p.tty {
		fmt.Fprintln(p.w)
		p.inBar = false
	}
	fmt.Fprintf(p.w, "loadtest %6.1fs: %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// bar draws the load's progress.
func (p *progress) bar(l *load, cfg *Config) {
	el := time.Since(l.start)
	frac := min(el.Seconds()/cfg.Duration.Seconds(), 1)
	acked := l.c.acked.Load()
	if cfg.Ops > 0 {
		frac = max(frac, min(float64(acked)/float64(cfg.Ops), 1))
	}
	const width = 30
	fill := int(frac * width)
	up := 0
	for _, s := range l.sessions {
		for _, k := range s.sockets {
			if k.up.Load() {
				up++
			}
		}
	}
	line := fmt.Sprintf("[%s%s] %3.0f%% %5.1fs acked %d (%.0f/s) errors %d unanswered %d reconnects %d sockets %d/%d",
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, el.Seconds(),
		acked, float64(acked)/max(el.Seconds(), 0.001), l.c.failed.Load(), l.c.connLost.Load(),
		l.c.reconnects.Load(), up, cfg.Sessions*cfg.Sockets)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.inBar = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) endBar() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inBar {
		fmt.Fprintln(p.w)
		p.inBar = false
	}
}
