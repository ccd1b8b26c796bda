package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// lsocket is one tab's socket; it reconnects (with backoff, then resume)
// whenever its connection ends, until the load is over.
type lsocket struct {
	l      *load
	s      *lsession
	idx    int
	home   int    // the instance it connects to first
	key    string // the key it sets, when a writer
	writer bool

	inst      atomic.Int32  // instance of the current connection
	up        atomic.Bool   // connected
	lastSeq   atomic.Uint64 // highest sequence seen in a change
	replaying atomic.Bool   // between a resume and its "resumed"
	// resetSeq is the highest sequence of a reset or of a snapshot
	// change received: the ops before it reached the socket folded. The
	// socket's reader and the writers' acks (foldedAt) raise it.
	resetSeq atomic.Uint64

	reply chan bool // closed loop: an answer arrived (true: ack)

	mu      sync.Mutex
	ops     []opRec
	pending map[uint64]int32 // message id → op counter, current connection
	nextID  uint64
	next    time.Time // open loop: when the next op is due
}

// wsconn is one connection of a socket.
type wsconn struct {
	ws   *websocket.Conn
	inst int
	rest []byte // messages that came in the welcome's frame
}

// serverMsg is any server message, decoded as far as the load needs.
type serverMsg struct {
	Type string `json:"type"`
	ID   uint64 `json:"id"`
	Seq  uint64 `json:"seq"`
	Code string `json:"code"`
	Ops  []struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"ops"`
}

func wsURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/hub/ws"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/hub/ws"
}

// dial opens a socket of session s (nil: a new session without cookie)
// on instance inst and reads its welcome.
func (l *load) dial(ctx context.Context, s *lsession, inst int) (*websocket.Conn, error) {
	ws, _, err := l.dialRest(ctx, s, inst)
	return ws, err
}

// dialRest is dial, and returns the messages that shared the welcome's
// frame (subprotocol sessionhub.v2), for the socket's reader.
func (l *load) dialRest(ctx context.Context, s *lsession, inst int) (*websocket.Conn, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hdr := http.Header{}
	if s != nil {
		if ck := s.cookieHeader(); ck != "" {
			hdr.Set("Cookie", ck)
		}
	}
	ws, resp, err := websocket.Dial(ctx, wsURL(l.urls[inst]), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: l.dialc, Subprotocols: l.cfg.subprotocols()})
	if err != nil {
		return nil, nil, err
	}
	if s != nil {
		s.setCookies(resp)
	}
	ws.SetReadLimit(1 << 20)
	_, b, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, nil, fmt.Errorf("reading welcome: %w", err)
	}
	first, rest := b, []byte(nil)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		first, rest = b[:i], b[i+1:]
	}
	var m serverMsg
	if err := json.Unmarshal(first, &m); err != nil || m.Type != "welcome" {
		ws.CloseNow()
		return nil, nil, fmt.Errorf("first message is not a welcome: %.100s", b)
	}
	return ws, rest, nil
}

// connect dials the socket's session on inst.
func (k *lsocket) connect(ctx context.Context, inst int) (*wsconn, error) {
	ws, rest, err := k.l.dialRest(ctx, k.s, inst)
	if err != nil {
		return nil, err
	}
	return &wsconn{ws: ws, inst: inst, rest: rest}, nil
}

// reconnect dials with exponential backoff and jitter, home first, then
// the other instances in turn; nil once ctx is done.
func (k *lsocket) reconnect(ctx context.Context) *wsconn {
	n := len(k.l.urls)
	for attempt := 0; ; attempt++ {
		if !sleepCtx(ctx, backoff(attempt)) {
			return nil
		}
		c, err := k.connect(ctx, (k.home+attempt)%n)
		if err == nil {
			return c
		}
		k.l.c.dialErrors.Add(1)
	}
}

// backoff is 50ms doubling up to 2s, with ±50% jitter.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 6)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loop serves c and every later connection until ctx is done.
func (k *lsocket) loop(ctx context.Context, c *wsconn) {
	resume := false
	for {
		k.serve(ctx, c, resume)
		if ctx.Err() != nil {
			return
		}
		k.l.c.reconnects.Add(1)
		if c = k.reconnect(ctx); c == nil {
			return
		}
		resume = true
	}
}

// serve runs one connection: its reader, and the writer when the socket
// writes, until the connection ends or ctx is done. Ops left unanswered
// are not acknowledged (state opLost).
func (k *lsocket) serve(ctx context.Context, c *wsconn, resume bool) {
	k.inst.Store(int32(c.inst))
	k.mu.Lock()
	k.pending = map[uint64]int32{}
	k.mu.Unlock()
	k.up.Store(true)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		err := k.read(ctx, c)
		if ctx.Err() == nil {
			k.l.countClose(err)
		}
	}()
	ok := true
	if resume {
		k.replaying.Store(true)
		ok = k.sendResume(ctx, c) == nil
	}
	if ok && k.writer {
		k.write(ctx, c, readerDone)
	}
	select {
	case <-readerDone:
	case <-ctx.Done():
	}
	c.ws.CloseNow()
	<-readerDone
	k.up.Store(false)
	k.replaying.Store(false)
	k.mu.Lock()
	for _, i := range k.pending {
		k.ops[i].state = opLost
	}
	lost := len(k.pending)
	k.pending = nil
	k.mu.Unlock()
	k.l.c.connLost.Add(int64(lost))
}

func (k *lsocket) sendResume(ctx context.Context, c *wsconn) error {
	k.mu.Lock()
	k.nextID++
	id := k.nextID
	k.mu.Unlock()
	b := fmt.Appendf(nil, `{"id":%d,"type":"resume","after":%d}`, id, k.lastSeq.Load())
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, b)
}

// write sends set ops until the load's writing stops or the connection
// ends: open loop at Config.Rate, or closed loop.
func (k *lsocket) write(ctx context.Context, c *wsconn, readerDone <-chan struct{}) {
	stop := k.l.writing.Done()
	if rate := k.l.cfg.Rate; rate > 0 {
		interval := time.Duration(float64(time.Second) / rate)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			now := time.Now()
			switch {
			case k.next.IsZero():
				// A random phase: writers started together must not send
				// together, in bursts, every interval.
				k.next = now.Add(rand.N(interval))
			case now.Sub(k.next) > time.Second:
				k.next = now // after a stall or a reconnect: no burst to catch up
			}
			t.Reset(time.Until(k.next))
			select {
			case <-t.C:
			case <-stop:
				return
			case <-readerDone:
				return
			}
			k.next = k.next.Add(interval)
			k.mu.Lock()
			inflight := len(k.pending)
			k.mu.Unlock()
			if inflight >= k.l.cfg.MaxInflight {
				k.l.c.skipped.Add(1)
				continue
			}
			if k.send(ctx, c) != nil {
				return
			}
		}
	}
	streak := 0
	for {
		select {
		case <-stop:
			return
		case <-k.reply: // a late answer of the previous connection
		default:
		}
		if k.send(ctx, c) != nil {
			return
		}
		select {
		case acked := <-k.reply:
			if acked {
				streak = 0
				continue
			}
			streak++ // unavailable and friends: back off a little
			select {
			case <-time.After(min(time.Duration(streak)*20*time.Millisecond, time.Second)):
			case <-stop:
				return
			case <-readerDone:
				return
			}
		case <-stop:
			return
		case <-readerDone:
			return
		}
	}
}

// send writes the writer's next set op, with a value unique in the run.
func (k *lsocket) send(ctx context.Context, c *wsconn) error {
	k.mu.Lock()
	n := len(k.ops)
	k.nextID++
	id := k.nextID
	k.ops = append(k.ops, opRec{sent: k.l.now(), inst: int8(c.inst), state: opSent})
	k.pending[id] = int32(n)
	k.mu.Unlock()
	b := make([]byte, 0, 96)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"type":"set","key":`...)
	b = strconv.AppendQuote(b, k.key)
	b = append(b, `,"value":"`...)
	b = appendValue(b, k.s.idx, k.idx, n)
	b = append(b, `"}`...)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	k.l.c.sent.Add(1)
	return c.ws.Write(wctx, websocket.MessageText, b)
}

// read handles server messages until the connection ends, and returns
// why it ended.
func (k *lsocket) read(ctx context.Context, c *wsconn) error {
	lines(c.rest, func(b []byte) { k.handle(b, k.l.now()) })
	for {
		_, frame, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		now := k.l.now()
		// With the subprotocol sessionhub.v2 a frame may hold several
		// messages, one per line.
		lines(frame, func(b []byte) { k.handle(b, now) })
	}
}

// handle handles one server message.
func (k *lsocket) handle(b []byte, now int64) {
	var m serverMsg
	if json.Unmarshal(b, &m) != nil {
		k.l.countErr("garbage")
		return
	}
	switch m.Type {
	case "ack":
		k.answer(m.ID, m.Seq, "", now)
	case "error":
		k.answer(m.ID, 0, m.Code, now)
	case "change":
		k.change(&m, now)
	case "resumed":
		k.replaying.Store(false)
	case "reset":
		k.replaying.Store(false)
		k.seen(m.Seq)
		k.raiseReset(m.Seq)
		k.l.c.resets.Add(1)
	}
}

// foldedAt notes that the socket received an op acknowledged at seq in the
// change at sequence at: a snapshot of the log when at is above seq, and
// the ops before it reached the socket folded (resetMask). Any goroutine
// may call it.
func (k *lsocket) foldedAt(at, seq uint64) {
	if snapshotSighting(at, seq) {
		k.raiseReset(at)
	}
}

// noteUnackedFolds credits the snapshot folds of the session's ops that
// got no ack (failed or lost, yet landed): a sighting above an op's lowest
// one came in a snapshot. Called once the load is over, before the
// verdict reads resetMask.
func (s *lsession) noteUnackedFolds() {
	for _, w := range s.sockets {
		w.mu.Lock()
		for i := range w.ops {
			rec := &w.ops[i]
			if rec.state == opAcked {
				continue
			}
			for _, sg := range rec.early {
				sg.k.foldedAt(sg.seq, rec.seq)
			}
		}
		w.mu.Unlock()
	}
}

// raiseReset raises resetSeq to at.
func (k *lsocket) raiseReset(at uint64) {
	for {
		cur := k.resetSeq.Load()
		if cur >= at || k.resetSeq.CompareAndSwap(cur, at) {
			return
		}
	}
}

func (k *lsocket) seen(seq uint64) {
	if seq > k.lastSeq.Load() {
		k.lastSeq.Store(seq) // only the reader writes it
	}
}

// answer handles the ack (code "") or error of one of the socket's ops.
func (k *lsocket) answer(id, seq uint64, code string, now int64) {
	k.mu.Lock()
	i, ok := k.pending[id]
	if !ok {
		k.mu.Unlock()
		return // the resume's id, or a connection already given up
	}
	delete(k.pending, id)
	rec := &k.ops[i]
	sent := rec.sent
	if code == "" {
		rec.state, rec.seq = opAcked, seq
		for _, s := range rec.early {
			s.k.foldedAt(s.seq, seq)
		}
		rec.early = nil
	} else {
		rec.state = opFailed // it may have landed all the same: its sightings stay
	}
	k.mu.Unlock()
	l := k.l
	l.marks.note(now, code)
	if code == "" {
		lat := time.Duration(now - sent)
		l.ack.record(lat)
		l.tl.ack(now, lat)
		l.c.acked.Add(1)
		k.s.noteSeq(seq)
	} else {
		l.c.failed.Add(1)
		l.countErr(code)
	}
	select {
	case k.reply <- code == "":
	default:
	}
}

// change handles a change message: the sequence of its ops is learnt, and
// its delivery latency recorded when another socket wrote it.
func (k *lsocket) change(m *serverMsg, now int64) {
	k.seen(m.Seq)
	l := k.l
	l.c.changes.Add(1)
	replaying := k.replaying.Load()
	for _, op := range m.Ops {
		if op.Type != "set" {
			continue
		}
		si, wi, n, ok := parseValue(op.Value)
		if !ok || si != k.s.idx || wi >= len(k.s.sockets) {
			continue
		}
		w := k.s.sockets[wi]
		w.mu.Lock()
		if n >= len(w.ops) {
			w.mu.Unlock()
			continue
		}
		rec := &w.ops[n]
		if rec.state == opAcked {
			// Above the ack's sequence: a snapshot of the log that
			// replaced the op's entry and every one before it (a socket
			// that joined a compacted log).
			k.foldedAt(m.Seq, rec.seq)
		} else {
			// Not acknowledged (yet): the lowest change it came in is its
			// sequence, or a snapshot above it; an op that landed without
			// an ack has no other. The ack, or the verdict for an op that
			// got none (noteUnackedFolds), tells which sightings were
			// snapshots.
			if rec.seq == 0 || m.Seq < rec.seq {
				rec.seq = m.Seq
			}
			rec.early = append(rec.early, sighting{k, m.Seq})
		}
		if k.idx < 64 {
			rec.seen |= 1 << k.idx
		}
		sent, inst := rec.sent, int32(rec.inst)
		w.mu.Unlock()
		if w == k {
			continue
		}
		l.c.delivered.Add(1)
		if replaying {
			l.c.replayed.Add(1)
			continue
		}
		if inst == k.inst.Load() {
			l.same.record(time.Duration(now - sent))
		} else {
			l.cross.record(time.Duration(now - sent))
		}
	}
}

// subprotocols are what the sockets ask for: Config.HubProtocol.
func (c *Config) subprotocols() []string {
	if c.HubProtocol == "" {
		return nil
	}
	return []string{c.HubProtocol}
}

// lines calls fn for each newline-separated message of a frame.
func lines(b []byte, fn func([]byte)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > 0 {
			fn(line)
		}
	}
}
