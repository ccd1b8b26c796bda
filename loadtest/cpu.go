package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// ProcCPU is the CPU time (user + system, every thread) one process spent
// over a measured window, and per operation of that window. CPU per op
// is steadier than wall-clock rates on a shared machine.
type ProcCPU struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Ops        int64   `json:"ops"`
	PerOpUS    float64 `json:"cpu_per_op_us"`
	// Syscalls counts the process's read and write system calls of the
	// window (/proc/PID/io: syscr + syscw, sockets included), Switches
	// its threads' context switches (/proc/PID/task/*/status, voluntary
	// ones: a thread went to sleep, and involuntary ones); both per op
	// too. Counts, unlike times, do not move with the machine's load.
	// -1 when unreadable.
	Syscalls      int64   `json:"read_write_syscalls"`
	SyscallsPerOp float64 `json:"read_write_syscalls_per_op"`
	Switches      int64   `json:"context_switches"`
	SwitchesPerOp float64 `json:"context_switches_per_op"`
}

// procSample is what a window reads of a process at each end.
type procSample struct {
	cpu      time.Duration
	syscalls int64 // -1: unreadable
	switches int64 // -1: unreadable
}

// sampleProc reads the CPU time of process pid, and its counts when it
// can.
func sampleProc(pid int) (procSample, error) {
	t, err := procCPUTime(pid)
	if err != nil {
		return procSample{}, err
	}
	s := procSample{cpu: t, syscalls: -1, switches: -1}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		s.syscalls = parseProcIO(b)
	}
	if tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid)); err == nil && len(tasks) > 0 {
		s.switches = 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread exited meanwhile
			}
			s.switches += parseSwitches(b)
		}
	}
	return s, nil
}

// parseProcIO returns syscr + syscw of a /proc/PID/io file, -1 when it
// has neither.
func parseProcIO(b []byte) int64 {
	return sumFields(b, "syscr:", "syscw:")
}

// parseSwitches returns voluntary_ctxt_switches +
// nonvoluntary_ctxt_switches of a /proc status file, -1 when it has
// neither.
func parseSwitches(b []byte) int64 {
	return sumFields(b, "voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")
}

// sumFields sums the values of the lines of b that start with one of
// names ("name: value"); -1 when none does.
func sumFields(b []byte, names ...string) int64 {
	sum, found := int64(0), false
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		for _, name := range names {
			if v, ok := bytes.CutPrefix(line, []byte(name)); ok {
				if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
					sum, found = sum+n, true
				}
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPUTime returns utime+stime of process pid from /proc/PID/stat.
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces: the fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadtest: /proc stat without a command name: %.60q", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("loadtest: /proc stat with %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadtest: /proc stat utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// namedPID is a process whose CPU a window measures.
type namedPID struct {
	name string
	pid  int
}

// cpuWindow measures the CPU time of processes from its start to end.
type cpuWindow struct {
	procs []namedPID
	start []procSample
}

// startCPU starts a window over procs; a process whose stat cannot be
// read (pid 0: not the run's own) is left out.
func startCPU(procs ...namedPID) *cpuWindow {
	w := &cpuWindow{}
	for _, p := range procs {
		if p.pid <= 0 {
			continue
		}
		t, err := sampleProc(p.pid)
		if err != nil {
			continue
		}
		w.procs = append(w.procs, p)
		w.start = append(w.start, t)
	}
	return w
}

// end returns each process's CPU time since start, and per op.
func (w *cpuWindow) end(ops int64) []ProcCPU {
	var out []ProcCPU
	for i, p := range w.procs {
		t, err := sampleProc(p.pid)
		if err != nil {
			continue // it exited (a killed instance): its window is unknown
		}
		s := w.start[i]
		c := ProcCPU{Name: p.name, PID: p.pid, CPUSeconds: (t.cpu - s.cpu).Seconds(), Ops: ops, Syscalls: -1, Switches: -1}
		if t.syscalls >= 0 && s.syscalls >= 0 {
			c.Syscalls = t.syscalls - s.syscalls
		}
		if t.switches >= 0 && s.switches >= 0 {
			c.Switches = t.switches - s.switches
		}
		if ops > 0 {
			c.PerOpUS = c.CPUSeconds * 1e6 / float64(ops)
			c.SyscallsPerOp = perOp(c.Syscalls, ops)
			c.SwitchesPerOp = perOp(c.Switches, ops)
		}
		out = append(out, c)
	}
	return out
}

// perOp is n/ops, or -1 when n is unknown (-1).
func perOp(n, ops int64) float64 {
	if n < 0 {
		return -1
	}
	return float64(n) / float64(ops)
}

// procOf returns the window figures of the process named name, with its
// counts unknown (-1) when the window has none.
func procOf(cs []ProcCPU, name string) ProcCPU {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return ProcCPU{Name: name, Syscalls: -1, SyscallsPerOp: -1, Switches: -1, SwitchesPerOp: -1}
}

// cpuPerOp sums the CPU per op of the processes named in names (all of
// them when names is empty).
func cpuPerOp(cs []ProcCPU, names ...string) float64 {
	var sum float64
	for _, c := range cs {
		if len(names) == 0 {
			sum += c.PerOpUS
			continue
		}
		for _, n := range names {
			if c.Name == n {
				sum += c.PerOpUS
			}
		}
	}
	return sum
}

// cpuProcs returns the processes of the topology whose CPU a window
// measures, and the load generator's own; nil-safe.
func (t *topology) cpuProcs() []namedPID {
	var out []namedPID
	if t != nil {
		for i, h := range t.hubs {
			out = append(out, namedPID{fmt.Sprintf("hub%d", i), h.pid()})
		}
		if t.nats != nil {
			out = append(out, namedPID{"nats-server", t.nats.pid()})
		}
	}
	return append(out, namedPID{"loadtest", os.Getpid()})
}

// cpuText renders CPU per op for people: "hub0 41.2 µs, nats-server ...".
func cpuText(cs []ProcCPU) string {
	var b []byte
	for i, c := range cs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%s %.1f µs (%.2f s)", c.Name, c.PerOpUS, c.CPUSeconds)
	}
	return string(b)
}

func selfPID() int { return os.Getpid() }

// hubArgs are the extra flags of hub instance i: Config.HubArgs, and its
// profiler's address when the run profiles the hubs.
func (c *Config) hubArgs(i int) []string {
	args := c.HubArgs
	if i < len(c.debugPorts) {
		args = append(slices.Clone(args), "-debug-addr", "127.0.0.1:"+strconv.Itoa(c.debugPorts[i]))
	}
	return args
}

// hubProfile fetches a CPU profile of the hub whose profiler listens on
// port, over d, and writes it to path unless path is empty. It returns
// the profile once it is taken.
func hubProfile(ctx context.Context, port int, d time.Duration, path string) ([]byte, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadtest: %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if path != "" {
		err = os.WriteFile(path, data, 0o644)
	}
	return data, err
}
