package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// hubTarget drives the run's hub instance 0 in the side-by-side shapes: a
// pair is one session with two sockets, the writer setting key.
type hubTarget struct {
	l         *load
	topo      *topology
	key       string
	profile   string // HubCPUProfile: path prefix
	debugPort int    // the hub's profiler, 0 without

	mu       sync.Mutex
	sessions map[int]*lsession // by pair idx, for the final flush
}

func (h *hubTarget) name() string { return "sessionhub" }

// profiled is a target whose server can be profiled per shape.
type profiled interface {
	// profiler returns the port of the server's profiler for shape (0:
	// none to take), the file its profile goes to ("": none), and
	// whether the profile splits the server's CPU (CPUSplit).
	profiler(shape string) (port int, path string, split bool)
}

// profiler profiles the hub when the run asks for its profiles, and
// always when its nats-server runs in its process: the profile is then
// what tells the hub's own CPU apart.
func (h *hubTarget) profiler(shape string) (int, string, bool) {
	split := h.topo != nil && h.topo.cfg.hubNATSEmbedded()
	if h.debugPort == 0 || (h.profile == "" && !split) {
		return 0, "", false
	}
	path := ""
	if h.profile != "" {
		path = h.profile + "-" + strings.ReplaceAll(shape, " ", "") + ".pprof"
	}
	return h.debugPort, path, split
}

func (h *hubTarget) procs() []namedPID {
	if h.topo == nil {
		return nil // servers not the run's own
	}
	hub := namedPID{"hub0", h.topo.hubs[0].pid()}
	if h.topo.cfg.hubNATSEmbedded() {
		return []namedPID{hub} // its nats-server runs in its process
	}
	return []namedPID{hub, {"nats-server", h.topo.nats.pid()}}
}

type hubPair struct {
	p       *pair
	key     string
	w, r    *websocket.Conn
	done    sync.WaitGroup
	cancel  context.CancelFunc
	closing atomic.Bool // the shape is over: closes are not counted
}

func (h *hubTarget) dialPair(ctx context.Context, p *pair) (pairConn, error) {
	s := &lsession{l: h.l, idx: p.idx, name: fmt.Sprintf("p%d", p.idx), cookies: map[string]string{}}
	w, wrest, err := h.l.dialRest(ctx, s, 0) // a new session: its cookie lands in s
	if err != nil {
		return nil, err
	}
	r, rrest, err := h.l.dialRest(ctx, s, 0)
	if err != nil {
		w.CloseNow()
		return nil, err
	}
	h.mu.Lock()
	if h.sessions == nil {
		h.sessions = map[int]*lsession{}
	}
	h.sessions[p.idx] = s
	h.mu.Unlock()
	rctx, cancel := context.WithCancel(context.Background())
	hp := &hubPair{p: p, key: h.key, w: w, r: r, cancel: cancel}
	hp.done.Add(2)
	go hp.read(rctx, w, wrest, false)
	go hp.read(rctx, r, rrest, true)
	return hp, nil
}

func (hp *hubPair) publish(ctx context.Context, n int) error {
	b := make([]byte, 0, 96)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(n)+1, 10)
	b = append(b, `,"type":"set","key":`...)
	b = strconv.AppendQuote(b, hp.key)
	b = append(b, `,"value":"`...)
	b = appendValue(b, hp.p.idx, 0, n)
	b = append(b, `"}`...)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return hp.w.Write(wctx, websocket.MessageText, b)
}

// read handles the server messages of one of the pair's sockets; a frame
// may hold several newline-separated messages (subprotocol
// sessionhub.v2).
// rest holds the messages that shared the welcome's frame.
func (hp *hubPair) read(ctx context.Context, ws *websocket.Conn, rest []byte, reader bool) {
	defer hp.done.Done()
	sh := hp.p.sh
	for b := rest; ; {
		if b == nil {
			var err error
			if _, b, err = ws.Read(ctx); err != nil {
				if !hp.closing.Load() {
					sh.countClose(err)
				}
				return
			}
		}
		now := sh.now()
		sh.c.frames.Add(1)
		lines(b, func(line []byte) { hp.line(line, reader, now) })
		b = nil
	}
}

// hubChange starts every change message (internal/protocol writes the
// type first): the writer's own are skipped undecoded (pair).
const hubChange = `{"type":"change"`

// line handles one server message to the writer's socket (reader false)
// or the reader's, read at now.
func (hp *hubPair) line(line []byte, reader bool, now int64) {
	if hp.p.writerDelivery(line, reader, hubChange) {
		return
	}
	var m serverMsg
	if json.Unmarshal(line, &m) != nil {
		hp.p.sh.countErr("garbage")
		return
	}
	switch m.Type {
	case "ack":
		hp.p.acked(int(m.ID)-1, m.Seq, "", now)
	case "error":
		hp.p.acked(int(m.ID)-1, 0, m.Code, now)
	case "change":
		for _, op := range m.Ops {
			if si, wi, n, ok := parseValue(op.Value); ok && si == hp.p.idx && wi == 0 {
				hp.p.delivered(n, m.Seq, now)
			}
		}
	}
}

func (hp *hubPair) close() {
	hp.closing.Store(true)
	hp.w.Close(websocket.StatusNormalClosure, "")
	hp.r.Close(websocket.StatusNormalClosure, "")
	hp.cancel()
	hp.done.Wait()
}

// sessionLogs flushes the session of every pair and returns what the
// zero-loss verdict needs: every acknowledged op must be in the final
// values or superseded, and must have reached the reader's socket.
func (h *hubTarget) sessionLogs(ctx context.Context, pairs []*pair) []SessionLog {
	logs := make([]SessionLog, len(pairs))
	_ = parallel(ctx, 16, len(pairs), func(i int) error {
		p := pairs[i]
		h.mu.Lock()
		s := h.sessions[p.idx]
		h.mu.Unlock()
		sl := &logs[i]
		sl.Name, sl.Sockets = s.name, 1 // the reader (pair)
		var fr flushResult
		var err error
		for attempt := range 5 {
			if fr, err = h.l.flush(ctx, s, 0, 0); err == nil {
				break
			}
			sleepCtx(ctx, backoff(attempt))
		}
		if err != nil {
			sl.FlushErr = err.Error()
		}
		sl.Final = fr.Values
		sl.Seqs = map[string]uint64{}
		p.mu.Lock()
		defer p.mu.Unlock()
		for n, op := range p.ops {
			if op.seq == 0 {
				continue
			}
			v := opValue(p.idx, 0, n)
			sl.Seqs[v] = op.seq
			if op.state == opAcked {
				reached := 0
				if p.reachedLocked(&op) {
					reached = 1
				}
				sl.Acked = append(sl.Acked, AckedOp{Key: h.key, Value: v, Seq: op.seq, Reached: reached})
			}
		}
		return nil
	})
	return logs
}
