package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Memory is the server memory per idle socket: N sockets, each its own
// new session (so each with its hub state: a session view and its NATS
// subscription), opened on one instance and held idle.
type Memory struct {
	Instance string  `json:"instance"`
	Asked    int     `json:"asked"`
	Held     int     `json:"held"`
	Failed   int     `json:"failed"`
	OpenSecs float64 `json:"open_seconds"`
	// RSS of the instance's process (VmRSS from /proc), before and after;
	// 0 when the process is not the run's own.
	RSSBefore int64 `json:"rss_before_bytes"`
	RSSAfter  int64 `json:"rss_after_bytes"`
	// Go heap in use (go_memstats_heap_inuse_bytes of /metrics), before
	// and after; 0 when /metrics has none.
	HeapBefore int64 `json:"heap_before_bytes"`
	HeapAfter  int64 `json:"heap_after_bytes"`
	// Per held socket, in bytes.
	RSSPerSocket  float64 `json:"rss_per_socket_bytes"`
	HeapPerSocket float64 `json:"heap_per_socket_bytes"`
}

// measureIdle opens n idle sockets on instance inst (process pid, 0 when
// unknown) and measures the memory they take.
func measureIdle(ctx context.Context, l *load, inst, pid, n int, pr *progress) (*Memory, error) {
	m := &Memory{Instance: l.urls[inst], Asked: n}
	settle := func() { sleepCtx(ctx, 2*time.Second) }
	settle()
	// Opened now: with the sockets open, the descriptor limit may leave
	// none to open it then.
	rss := openRSS(pid)
	defer rss.Close()
	m.RSSBefore = rss.read()
	m.HeapBefore = readHeap(l.httpc, l.urls[inst])
	pr.logf("idle sockets: opening %d on %s (RSS %s, heap %s)", n, l.urls[inst], mib(m.RSSBefore), mib(m.HeapBefore))

	var mu sync.Mutex
	socks := make([]*websocket.Conn, 0, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	_ = parallel(ctx, 64, n, func(int) error {
		var ws *websocket.Conn
		var err error
		for attempt := range 3 {
			if ws, err = l.dial(ctx, nil, inst); err == nil {
				break
			}
			sleepCtx(ctx, backoff(attempt))
		}
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return nil
		}
		ws.CloseRead(context.Background()) // answers pings, notices the close
		mu.Lock()
		socks = append(socks, ws)
		mu.Unlock()
		return nil
	})
	m.OpenSecs = time.Since(start).Seconds()
	defer func() {
		for _, ws := range socks {
			ws.CloseNow()
		}
	}()
	settle()
	m.RSSAfter = rss.read()
	m.HeapAfter = readHeap(l.httpc, l.urls[inst])
	// A socket still open answers a ping.
	var held atomic.Int64
	_ = parallel(ctx, 64, len(socks), func(i int) error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if socks[i].Ping(pctx) == nil {
			held.Add(1)
		}
		return nil
	})
	m.Held = int(held.Load())
	m.Failed = int(failed.Load())
	if m.Held > 0 {
		if m.RSSBefore > 0 && m.RSSAfter > 0 {
			m.RSSPerSocket = float64(m.RSSAfter-m.RSSBefore) / float64(m.Held)
		}
		if m.HeapBefore > 0 && m.HeapAfter > 0 {
			m.HeapPerSocket = float64(m.HeapAfter-m.HeapBefore) / float64(m.Held)
		}
	}
	pr.logf("idle sockets: %d held, %d failed, in %.1fs; RSS %s, heap %s", m.Held, m.Failed, m.OpenSecs, mib(m.RSSAfter), mib(m.HeapAfter))
	if e := firstErr.Load(); e != nil {
		return m, fmt.Errorf("first dial error: %s", e)
	}
	return m, nil
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// rssFile is /proc/<pid>/status, kept open to be read again.
type rssFile struct{ f *os.File }

func openRSS(pid int) rssFile {
	if pid <= 0 {
		return rssFile{}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rssFile{}
	}
	return rssFile{f}
}

func (r rssFile) Close() {
	if r.f != nil {
		r.f.Close()
	}
}

// read returns VmRSS in bytes, 0 when unknown.
func (r rssFile) read() int64 {
	if r.f == nil {
		return 0
	}
	buf := make([]byte, 8<<10)
	n, err := r.f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0
	}
	return parseRSS(buf[:n])
}

// parseRSS returns the VmRSS of a /proc/<pid>/status text, in bytes.
func parseRSS(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// readHeap returns go_memstats_heap_inuse_bytes of base/metrics, 0 when
// unknown.
func readHeap(hc *http.Client, base string) int64 {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	return parseMetric(bufio.NewScanner(resp.Body), "go_memstats_heap_inuse_bytes")
}

// parseMetric returns the value of an unlabelled metric in Prometheus
// text format.
func parseMetric(sc *bufio.Scanner, name string) int64 {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			return int64(v)
		}
	}
	return 0
}
