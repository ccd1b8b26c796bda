package web_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// testKey is the session key of every server the tests start: fixed, so a
// restarted server still accepts the browser's cookies, and so the tests
// can decode those cookies.
var testKey = bytes.Repeat([]byte("sessionhub-web-test-key-64-bytes"), 2)

const (
	// readyTimeout bounds a server's start, from exec to its "listening"
	// line (the race detector and JetStream's recovery make it slow on a
	// loaded machine).
	readyTimeout = 30 * time.Second
	// stopTimeout is how long a server may take to exit after SIGTERM.
	stopTimeout = 10 * time.Second
)

// server is the sessionhub binary running as a subprocess on a fixed
// address and data directory, so that it can be stopped and started again
// in the same place.
type server struct {
	t       *testing.T
	addr    string // 127.0.0.1:port
	dataDir string
	n       int      // how many times it was started
	proc    *process // nil when not running
}

// process is one run of the server.
type process struct {
	cmd    *exec.Cmd
	ready  chan struct{} // closed when it printed its listening line
	exited chan struct{} // closed when it exited; then err is its Wait's
	err    error
}

// startServer starts the server on a free port of 127.0.0.1 with a fresh
// data directory. It is stopped (SIGTERM, and it must exit 0) when the
// test ends, after the browser (registered later) has closed.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, addr: freeAddr(t), dataDir: t.TempDir()}
	t.Cleanup(func() {
		if s.proc != nil {
			s.stop()
		}
	})
	s.start()
	return s
}

// URL returns the server's base URL, without a trailing slash.
func (s *server) URL() string { return "http://" + s.addr }

// freeAddr returns an address on 127.0.0.1 with a port that was free a
// moment ago: the server must listen on a port the test knows, to restart
// on the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// start runs the server and waits until it is listening.
func (s *server) start() {
	s.t.Helper()
	if s.proc != nil {
		s.t.Fatal("server: start while running")
	}
	s.n++
	p := &process{ready: make(chan struct{}), exited: make(chan struct{})}
	cmd := exec.Command(serverBin, "-addr", s.addr, "-data", s.dataDir)
	cmd.Env = append(environWithout("SESSIONHUB_"), "SESSIONHUB_KEYS="+base64.StdEncoding.EncodeToString(testKey))
	var once sync.Once
	out := &lineLogger{t: s.t, prefix: "server" + strconv.Itoa(s.n) + ": ", onLine: func(line string) {
		if strings.Contains(line, "sessionhub listening on http://"+s.addr) {
			once.Do(func() { close(p.ready) })
		}
	}}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second // do not hang on output a child holds open
	p.cmd = cmd
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("server: %v", err)
	}
	s.proc = p
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.exited)
	}()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		s.t.Logf("server%d: ready in %v at %s", s.n, time.Since(begin).Round(time.Millisecond), s.URL())
	case <-p.exited:
		s.proc = nil
		s.t.Fatalf("server%d exited before listening: %v", s.n, p.err)
	case <-timer.C:
		s.stop()
		s.t.Fatalf("server%d did not print %q within %v", s.n, "sessionhub listening on http://"+s.addr, readyTimeout)
	}
}

// stop sends SIGTERM and waits for the exit; the server must exit with
// status 0 within stopTimeout.
func (s *server) stop() {
	s.t.Helper()
	p := s.proc
	if p == nil {
		s.t.Fatal("server: stop while not running")
	}
	s.proc = nil
	begin := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("server%d: SIGTERM: %v", s.n, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		s.t.Errorf("server%d did not exit within %v of SIGTERM; killing it", s.n, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.exited
		return
	}
	if p.err != nil {
		s.t.Errorf("server%d exited with %v after SIGTERM, want status 0", s.n, p.err)
		return
	}
	s.t.Logf("server%d: exited 0 in %v after SIGTERM", s.n, time.Since(begin).Round(time.Millisecond))
}

// environWithout returns the environment without the variables whose
// names start with prefix.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// lineLogger writes each line written to it to the test log, and hands
// it to onLine. It is safe for concurrent use (stdout and stderr).
type lineLogger struct {
	t      *testing.T
	prefix string
	onLine func(string)

	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// flush logs a last line that had no newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	l.t.Log(l.prefix + s)
	l.onLine(s)
}

// codec decodes the session cookies the servers of these tests write.
var codec = func() *session.Codec {
	c, err := session.NewCodec(session.CodecOptions{Keys: []session.KeyPair{{Hash: testKey}}})
	if err != nil {
		panic(err)
	}
	return c
}()
