package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// Timeout bounds every wait and every action of this package: starting the
// browser, opening a tab, navigating, waiting on a text. It is generous so
// that a loaded two-core CI machine does not fail a correct test.
const Timeout = 60 * time.Second

// Flags are Chromium's command-line flags, without the leading dashes
// (headless mode, and nothing that talks to Google or a GPU). [Launch]
// adds --user-data-dir (a fresh directory) and chromedp adds
// --remote-debugging-pipe and the first tab's about:blank.
var Flags = []string{
	"headless",
	"no-sandbox",
	"disable-gpu",
	"disable-background-networking",
	"disable-component-update",
	"disable-sync",
	"no-first-run",
	"disable-quic",
}

// ErrNoChromium is returned by ExecPath when no Chromium is found.
var ErrNoChromium = errors.New("browsertest: chromium not found: set CHROMIUM_PATH, install /usr/bin/chromium (apt-get install chromium), or put chromium on PATH; test.sh installs it")

// ExecPath returns the Chromium to run: $CHROMIUM_PATH when set, else
// /usr/bin/chromium when it exists, else chromium found on $PATH.
func ExecPath() (string, error) {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.Join(ErrNoChromium, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", ErrNoChromium
}

// Browser is a running headless Chromium, stopped when its test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context // the chromedp context that owns the browser (its first tab)
	out *tailBuffer     // the browser's stdout and stderr
}

// Launch starts Chromium with [Flags] and a fresh user-data-dir under
// t.TempDir(), and registers its shutdown with t.Cleanup. It fails the
// test when Chromium cannot be found or does not start within [Timeout].
func Launch(t testing.TB) *Browser {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir() // registered first, so removed after the browser stopped

	b := &Browser{t: t, out: newTailBuffer(64 << 10)}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dataDir),
		chromedp.CombinedOutput(b.out),
	}
	for _, f := range Flags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(func(format string, args ...any) { t.Logf("chromedp: "+format, args...) }),
		chromedp.WithErrorf(func(format string, args ...any) { t.Logf("chromedp error: "+format, args...) }),
	)
	b.ctx = ctx
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output (last %d bytes, D-Bus noise left out):\n%s", b.out.max, b.out.Filtered("dbus/"))
		}
		// Close the browser gracefully, then free the allocator; neither
		// may hang the test run.
		done := make(chan error, 1)
		go func() {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			err := chromedp.Cancel(cctx)
			cancel()
			cancelAlloc()
			killLeftovers(dataDir)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("browsertest: closing chromium: %v", err)
			}
		case <-time.After(Timeout):
			t.Errorf("browsertest: chromium did not stop within %v", Timeout)
		}
	})

	if err := firstRun(ctx, cancel); err != nil {
		t.Fatalf("browsertest: starting %s: %v\nchromium output:\n%s", path, err, b.out.Filtered("dbus/"))
	}
	vctx, vcancel := context.WithTimeout(ctx, Timeout)
	defer vcancel()
	version, err := chromedp.CallBrowser(vctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		t.Fatalf("browsertest: reading the browser's version: %v", err)
	}
	t.Logf("browsertest: %s started: %s", path, version.Product)
	return b
}

// firstRun runs the first actions of a chromedp context: that Run starts
// the browser or opens the tab and binds it to ctx, so ctx must carry no
// deadline. firstRun bounds it by [Timeout] from outside, cancelling ctx
// when it expires.
func firstRun(ctx context.Context, cancel context.CancelFunc, actions ...chromedp.Action[chromedp.Void]) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx, actions...) }()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		cancel()
		<-done
		return fmt.Errorf("not done within %v", Timeout)
	}
}

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// Filtered returns the buffer's lines that do not contain noise.
func (b *tailBuffer) Filtered(noise string) string {
	var keep []string
	for line := range strings.Lines(b.String()) {
		if !strings.Contains(line, noise) {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, ""))
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
