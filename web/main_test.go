package web_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/internal/browsertest"
)

// serverBin is the sessionhub binary under test, built by TestMain.
var serverBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sessionhub-web-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if serverBin, err = buildServer(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code := m.Run(); code != 0 {
		return code
	}
	// The browser tests start goroutines of their own (chromedp, the
	// server's output): none may outlive its test.
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// buildServer builds ./cmd/sessionhub into dir, with the race detector
// when the tests run with it (so a data race in the server fails its
// test: it then exits with status 66 instead of 0).
func buildServer(dir string) (string, error) {
	root, err := browsertest.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sessionhub")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/sessionhub")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("web_test: go %v (in %s): %v\n%s", args, root, err, out)
	}
	fmt.Fprintf(os.Stderr, "web_test: built %s (race detector %v) in %v\n", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin, nil
}
