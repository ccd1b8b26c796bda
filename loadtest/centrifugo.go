package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const (
	peerCentrifugo    = "centrifugo"
	centrifugoModule  = "github.com/centrifugal/centrifugo/v6"
	centrifugoVersion = "v6.9.1"
	// centrifugoNS is the namespace of the shapes' channels, where
	// anonymous clients may subscribe and publish.
	centrifugoNS = "bench"
)

// centrifugoBinary returns bin when given, else the Centrifugo binary in
// the user's cache directory, go installed there the first time.
func centrifugoBinary(ctx context.Context, bin string, logf func(string, ...any)) (string, error) {
	if bin != "" {
		return bin, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the build (give -peer-bin): %w", err)
	}
	dir := filepath.Join(cache, "sessionhub", "peers", "centrifugo@"+centrifugoVersion)
	bin = filepath.Join(dir, "centrifugo")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	logf("building Centrifugo %s into %s (minutes, the first time)", centrifugoVersion, dir)
	cmd := exec.CommandContext(ctx, "go", "install", centrifugoModule+"@"+centrifugoVersion)
	cmd.Dir = os.TempDir() // outside any module: the version given is the one built
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", centrifugoModule, centrifugoVersion, err, out)
	}
	return bin, nil
}

// centrifugoConfig is the peer's configuration: both listeners on
// 127.0.0.1, no usage statistics, the memory engine, anonymous connects,
// and one namespace where clients subscribe and publish.
func centrifugoConfig(port, internalPort int) ([]byte, error) {
	ns := map[string]any{
		"name":                          centrifugoNS,
		"allow_subscribe_for_anonymous": true,
		"allow_subscribe_for_client":    true,
		"allow_publish_for_anonymous":   true,
		"allow_publish_for_client":      true,
		"allow_publish_for_subscriber":  true,
	}
	cfg := map[string]any{
		"http_server": map[string]any{
			"address": "127.0.0.1", "port": port,
			"internal_address": "127.0.0.1", "internal_port": strconv.Itoa(internalPort),
		},
		"usage_stats": map[string]any{"disabled": true},
		"engine":      map[string]any{"type": "memory"},
		"log":         map[string]any{"level": "warn"},
		"client": map[string]any{
			"allow_anonymous_connect_without_token": true,
			"allowed_origins":                       []string{"*"},
		},
		"channel":    map[string]any{"namespaces": []any{ns}},
		"prometheus": map[string]any{"enabled": true},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// centrifugo is the running peer.
type centrifugo struct {
	p           *proc
	url         string // ws://127.0.0.1:port/connection/websocket
	internalURL string // http://127.0.0.1:internal_port
	hc          *http.Client
	// writerSubscribed subscribes each pair's writer to its channel too:
	// every publication then goes to both connections, as every change
	// of a hub session goes to both its sockets, the writer's included.
	writerSubscribed bool
}

// startCentrifugo writes the config into dir, starts bin and waits until
// a client connects.
func startCentrifugo(ctx context.Context, bin, dir string, logf func(string, ...any)) (*centrifugo, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	iport, err := freePort()
	if err != nil {
		return nil, err
	}
	conf, err := centrifugoConfig(port, iport)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, err
	}
	c := &centrifugo{
		p:           &proc{name: "centrifugo", argv: []string{bin, "--config", confPath}, logPath: filepath.Join(dir, "centrifugo.log")},
		url:         fmt.Sprintf("ws://127.0.0.1:%d/connection/websocket", port),
		internalURL: fmt.Sprintf("http://127.0.0.1:%d", iport),
		hc:          newHTTPClient(4),
	}
	if err := c.p.start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := c.connect(ctx)
		if err == nil {
			ws.CloseNow()
			break
		}
		if isDone(c.p.done) || time.Now().After(deadline) || ctx.Err() != nil {
			c.close()
			return nil, fmt.Errorf("centrifugo not ready: %v; its log: %s\n%s", err, c.p.logPath, tail(c.p.logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("centrifugo %s at %s", centrifugoVersion, c.url)
	return c, nil
}

func (c *centrifugo) close() { _ = c.p.stop() }

func (c *centrifugo) name() string { return peerCentrifugo }

func (c *centrifugo) procs() []namedPID { return []namedPID{{peerCentrifugo, c.p.pid()}} }

// cfReply is a reply or push of Centrifugo's JSON protocol, decoded as
// far as the shapes need. An empty object is the server's ping.
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    uint32 `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		} `json:"pub"`
	} `json:"push"`
}

// connect dials and sends the connect command (id 1), waiting for its
// reply.
func (c *centrifugo) connect(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, c.url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	if err := c.call(dctx, ws, 1, []byte(`{"id":1,"connect":{}}`)); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return ws, nil
}

// call writes cmd and reads until the reply with id, answering pings.
func (c *centrifugo) call(ctx context.Context, ws *websocket.Conn, id uint32, cmd []byte) error {
	if err := ws.Write(ctx, websocket.MessageText, cmd); err != nil {
		return err
	}
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		var res error
		found := false
		lines(b, func(line []byte) {
			var r cfReply
			if json.Unmarshal(line, &r) != nil {
				res, found = fmt.Errorf("not JSON: %.100s", line), true
				return
			}
			if r.ID == id {
				found = true
				if r.Error != nil {
					res = fmt.Errorf("error %d: %s", r.Error.Code, r.Error.Message)
				}
			}
		})
		if found {
			return res
		}
	}
}

func (c *centrifugo) subscribe(ctx context.Context, ws *websocket.Conn, channel string) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := fmt.Appendf(nil, `{"id":2,"subscribe":{"channel":%q}}`, channel)
	return c.call(sctx, ws, 2, cmd)
}

func cfChannel(idx int) string { return centrifugoNS + ":p" + strconv.Itoa(idx) }

// cfPair is one channel: the writer publishes (subscribed only with
// writerSubscribed), the reader is subscribed. Publish ids are n+3 (1 and 2: connect and
// subscribe).
type cfPair struct {
	p       *pair
	w, r    *websocket.Conn
	done    sync.WaitGroup
	cancel  context.CancelFunc
	closing atomic.Bool // the shape is over: closes are not counted
}

func (c *centrifugo) dialPair(ctx context.Context, p *pair) (pairConn, error) {
	w, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.connect(ctx)
	if err != nil {
		w.CloseNow()
		return nil, err
	}
	subscribers := []*websocket.Conn{r}
	if c.writerSubscribed {
		subscribers = append(subscribers, w)
	}
	for _, ws := range subscribers {
		if err := c.subscribe(ctx, ws, cfChannel(p.idx)); err != nil {
			w.CloseNow()
			r.CloseNow()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	cp := &cfPair{p: p, w: w, r: r, cancel: cancel}
	cp.done.Add(2)
	go cp.read(rctx, w, false)
	go cp.read(rctx, r, true)
	return cp, nil
}

func (cp *cfPair) publish(ctx context.Context, n int) error {
	b := make([]byte, 0, 96)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(n)+3, 10)
	b = append(b, `,"publish":{"channel":"`...)
	b = append(b, cfChannel(cp.p.idx)...)
	b = append(b, `","data":"`...)
	b = appendValue(b, cp.p.idx, 0, n)
	b = append(b, `"}}`...)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cp.w.Write(wctx, websocket.MessageText, b)
}

var cfPong = []byte(`{}`)

func (cp *cfPair) read(ctx context.Context, ws *websocket.Conn, reader bool) {
	defer cp.done.Done()
	sh := cp.p.sh
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if !cp.closing.Load() {
				sh.countClose(err)
			}
			return
		}
		now := sh.now()
		sh.c.frames.Add(1)
		lines(b, func(line []byte) { cp.line(ctx, ws, line, reader, now) })
	}
}

// cfPush starts every push (a publication) Centrifugo sends: a subscribed
// writer's are skipped undecoded (pair).
const cfPush = `{"push":`

// line handles one message Centrifugo sent on ws, the writer's connection
// (reader false) or the reader's, read at now.
func (cp *cfPair) line(ctx context.Context, ws *websocket.Conn, line []byte, reader bool, now int64) {
	if cp.p.writerDelivery(line, reader, cfPush) {
		return
	}
	var r cfReply
	if json.Unmarshal(line, &r) != nil {
		cp.p.sh.countErr("garbage")
		return
	}
	switch {
	case r.ID == 0 && r.Push == nil && r.Error == nil: // ping
		_ = ws.Write(ctx, websocket.MessageText, cfPong)
	case r.ID >= 3 && r.Error != nil:
		cp.p.acked(int(r.ID)-3, 0, fmt.Sprintf("centrifugo %d", r.Error.Code), now)
	case r.ID >= 3:
		cp.p.acked(int(r.ID)-3, 0, "", now)
	case r.Push != nil && r.Push.Pub != nil:
		if si, wi, n, ok := parseValue(r.Push.Pub.Data); ok && si == cp.p.idx && wi == 0 {
			cp.p.delivered(n, r.Push.Pub.Offset, now)
		}
	}
}

func (cp *cfPair) close() {
	cp.closing.Store(true)
	cp.w.Close(websocket.StatusNormalClosure, "")
	cp.r.Close(websocket.StatusNormalClosure, "")
	cp.cancel()
	cp.done.Wait()
}

// measureIdle opens n idle connections, each subscribed to a channel of
// its own (as each hub socket has a session of its own), answering pings,
// and measures the memory they take.
func (c *centrifugo) measureIdle(ctx context.Context, n int, pr *progress) (*Memory, error) {
	m := &Memory{Instance: c.url, Asked: n}
	settle := func() { sleepCtx(ctx, 2*time.Second) }
	settle()
	rss := openRSS(c.p.pid())
	defer rss.Close()
	m.RSSBefore = rss.read()
	m.HeapBefore = readHeap(c.hc, c.internalURL)
	pr.logf("idle connections: opening %d on centrifugo (RSS %s, heap %s)", n, mib(m.RSSBefore), mib(m.HeapBefore))
	var mu sync.Mutex
	var conns []*websocket.Conn
	var failed atomic.Int64
	var firstErr atomic.Value
	rctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	defer func() {
		for _, ws := range conns {
			ws.CloseNow()
		}
		cancel()
		readers.Wait()
	}()
	var held atomic.Int64
	start := time.Now()
	_ = parallel(ctx, 64, n, func(i int) error {
		ws, err := c.connect(ctx)
		if err == nil {
			if err = c.subscribe(ctx, ws, centrifugoNS+":idle"+strconv.Itoa(i)); err != nil {
				ws.CloseNow()
			}
		}
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return nil
		}
		mu.Lock()
		conns = append(conns, ws)
		mu.Unlock()
		readers.Go(func() {
			for {
				_, b, err := ws.Read(rctx)
				if err != nil {
					return
				}
				if bytes.Equal(bytes.TrimSpace(b), cfPong) {
					_ = ws.Write(rctx, websocket.MessageText, cfPong)
				}
			}
		})
		return nil
	})
	m.OpenSecs = time.Since(start).Seconds()
	settle()
	m.RSSAfter = rss.read()
	m.HeapAfter = readHeap(c.hc, c.internalURL)
	// A connection still open answers a WebSocket ping.
	_ = parallel(ctx, 64, len(conns), func(i int) error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if conns[i].Ping(pctx) == nil {
			held.Add(1)
		}
		return nil
	})
	m.Held, m.Failed = int(held.Load()), int(failed.Load())
	if m.Held > 0 {
		if m.RSSBefore > 0 && m.RSSAfter > 0 {
			m.RSSPerSocket = float64(m.RSSAfter-m.RSSBefore) / float64(m.Held)
		}
		if m.HeapBefore > 0 && m.HeapAfter > 0 {
			m.HeapPerSocket = float64(m.HeapAfter-m.HeapBefore) / float64(m.Held)
		}
	}
	pr.logf("idle connections: %d held on centrifugo, %d failed; RSS %s", m.Held, m.Failed, mib(m.RSSAfter))
	if e := firstErr.Load(); e != nil {
		return m, fmt.Errorf("first error: %s", e)
	}
	return m, nil
}
