package loadtest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain serves the hidden subcommands when a run starts this test
// binary as a server (os.Executable is the test binary in tests), and
// checks for leaked goroutines otherwise.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		if _, ok := subcommands[os.Args[1]]; ok {
			os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
		}
	}
	goleak.VerifyTestMain(m,
		// nats.go and net/http keep these for the life of the process.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}
