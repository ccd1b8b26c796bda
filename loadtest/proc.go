package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process of the topology: started, SIGKILLed and
// restarted with the same arguments, its output kept in a log file.
type proc struct {
	name    string
	argv    []string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process exited
	listen chan string   // receives the address of a "listening on http://" line
	starts int
}

// start starts the process (again).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== start %d: %s\n", p.starts, strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	// The servers die with the load generator, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	p.listen = make(chan string, 1)
	var lw sync.Mutex
	var wg sync.WaitGroup
	scan := func(r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			lw.Lock()
			fmt.Fprintln(logf, line)
			lw.Unlock()
			if i := strings.Index(line, "listening on http://"); i >= 0 {
				addr := strings.Fields(line[i+len("listening on http://"):])
				if len(addr) > 0 {
					select {
					case p.listen <- strings.TrimSuffix(addr[0], "/"):
					default:
					}
				}
			}
		}
	}
	wg.Add(2)
	go scan(stdout)
	go scan(stderr)
	done := p.done
	go func() {
		wg.Wait()
		err := cmd.Wait()
		lw.Lock()
		fmt.Fprintf(logf, "=== exit: %v\n", err)
		lw.Unlock()
		logf.Close()
		close(done)
	}()
	return nil
}

// waitListening waits for the process to print its listening line.
func (p *proc) waitListening(timeout time.Duration) (string, error) {
	p.mu.Lock()
	listen, done := p.listen, p.done
	p.mu.Unlock()
	select {
	case addr := <-listen:
		return addr, nil
	case <-done:
		return "", fmt.Errorf("%s exited before listening; its log: %s\n%s", p.name, p.logPath, tail(p.logPath, 20))
	case <-time.After(timeout):
		return "", fmt.Errorf("%s not listening within %v; its log: %s\n%s", p.name, timeout, p.logPath, tail(p.logPath, 20))
	}
}

// pid returns the process ID of the running process, 0 when none.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || isDone(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig and waits up to timeout for the process to exit,
// SIGKILLing it past that.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isDone(done) {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %v of %v; killed", p.name, timeout, sig)
	}
}

// stop ends the process gracefully (SIGTERM, then SIGKILL after 10s).
func (p *proc) stop() error { return p.signal(syscall.SIGTERM, 10*time.Second) }

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() error { return p.signal(syscall.SIGKILL, 10*time.Second) }

func isDone(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
