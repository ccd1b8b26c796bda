package browsertest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// killLeftovers kills the processes still running with the user-data-dir
// dir in their command line (the browser's helpers can outlive it and write
// there while the test removes it), and waits until none is left, for at
// most a few seconds. The directory is the test's own, so only processes of
// the browser this package started match.
func killLeftovers(dir string) {
	want := []byte("--user-data-dir=" + dir)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if killProcessesWithArg(want) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // let the killed processes exit
	}
}

// killProcessesWithArg sends SIGKILL to every live process one of whose
// arguments is arg, and returns how many there were.
func killProcessesWithArg(arg []byte) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !hasArg(cmdline, arg) || zombie(e.Name()) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		n++
	}
	return n
}

func hasArg(cmdline, arg []byte) bool {
	for a := range bytes.SplitSeq(cmdline, []byte{0}) {
		if bytes.Equal(a, arg) {
			return true
		}
	}
	return false
}

// zombie reports whether the process has exited and waits to be reaped.
func zombie(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true // gone
	}
	// The state follows the command name, which is in parentheses and may
	// hold spaces: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}
