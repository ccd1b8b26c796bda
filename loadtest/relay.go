package loadtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/protocol"
)

// The bare relay is the floor of the side by side: the least a server
// spends per write when it stages every write in JetStream and sends it
// on to the other sockets of its session, built on the hub's own
// libraries (coder/websocket, nats.go) against the run's nats-server, a
// stream configured as the hub's (file storage, republished to a live
// subject). It speaks as much of the hub's wire protocol as the shapes
// use: a set is published to the session's subject; its republished copy
// goes to the session's other sockets as a change, and to the writer with
// its ack in one frame once JetStream acknowledged it (sessionhub.v2's
// batching). It has none of what a hub needs beyond that: no cookie or
// session state, no budget, limits, resume or order repair, no slow
// client guard (one goroutine writes every frame itself), so the hub
// cannot spend less per write than it does. Its CPU per write against
// Centrifugo's tells what the staging leg costs on these libraries;
// against the hub's, what the hub adds.
const serveRelayCmd = "serve-relay"

// relay subjects: the sockets' writes go to relayLog.<session>, JetStream
// republishes them to relayLive.<session>.
const (
	relayStream = "LOADTEST_RELAY"
	relayLog    = "loadtest.relay.log"
	relayLive   = "loadtest.relay.live"
)

// relay is the bare relay's state: every session's sockets and the
// writes awaiting JetStream.
type relay struct {
	nc    *nats.Conn
	inbox string // prefix of the acknowledgements' reply subjects

	mu      sync.Mutex
	rooms   map[string]*relayRoom
	waiting map[uint64]*relayWrite // by reply token
	token   uint64
}

// relayRoom is one session's sockets and its writes not republished yet,
// in the order they were published (JetStream's order for the subject:
// they go out on one connection, under relay.mu).
type relayRoom struct {
	conns []*websocket.Conn
	fifo  []*relayWrite
}

// relayWrite is one set in flight: its socket, its id, and its change
// once republished (sent with the ack).
type relayWrite struct {
	ws     *websocket.Conn
	id     uint64
	change []byte
}

// serveRelay runs the bare relay against -nats until SIGTERM.
func serveRelay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(serveRelayCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	natsURL := fs.String("nats", "", "nats-server URL (empty: an embedded nats-server in -data, on an in-process connection)")
	data := fs.String("data", "", "the embedded nats-server's store directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []nats.Option{nats.Name("loadtest relay")}
	if *natsURL == "" {
		ns, err := natsserver.Start(natsserver.Options{StoreDir: *data, DontListen: true})
		if err != nil {
			return err
		}
		defer ns.Close()
		opts = append(opts, ns.InProcess()...) // as the hub's
	}
	nc, js, err := connectJetStream(*natsURL, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, relayStreamConfig()); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, relayStream)
	}()
	r := &relay{nc: nc, inbox: nats.NewInbox(), rooms: map[string]*relayRoom{}, waiting: map[uint64]*relayWrite{}}
	live := make(chan *nats.Msg, 1<<16)
	acks := make(chan *nats.Msg, 1<<16)
	for subj, ch := range map[string]chan *nats.Msg{relayLive + ".*": live, r.inbox + ".*": acks} {
		if _, err := nc.ChanSubscribe(subj, ch); err != nil {
			return err
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.dispatch(live, acks, stop)
	}()
	defer func() { close(stop); <-done }()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", r.serveWS)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile) // -hub-cpuprofile profiles the relay too
	return serve(*addr, mux, "relay", stdout, nil)
}

// relayStreamConfig is the hub's stream configuration (hub/stream.go) on
// the relay's subjects, with the hub's default limits.
func relayStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 relayStream,
		Subjects:             []string{relayLog + ".*"},
		Retention:            jetstream.LimitsPolicy,
		MaxAge:               24 * time.Hour,
		MaxMsgsPerSubject:    2_000_000,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           1 << 20,
		Storage:              jetstream.FileStorage,
		AllowDirect:          true,
		AllowRollup:          true,
		RePublish:            &jetstream.RePublish{Source: relayLog + ".*", Destination: relayLive + ".{{wildcard(1)}}"},
	}
}

// serveWS joins a socket to session ?s and publishes its sets until it
// closes.
func (r *relay) serveWS(w http.ResponseWriter, req *http.Request) {
	id := req.URL.Query().Get("s")
	if id == "" || strings.ContainsAny(id, ".*> ") {
		http.Error(w, "want ?s=<session>", http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	r.mu.Lock()
	room := r.rooms[id]
	if room == nil {
		room = &relayRoom{}
		r.rooms[id] = room
	}
	room.conns = append(room.conns, ws)
	r.mu.Unlock()
	defer r.leave(id, ws)

	subject := relayLog + "." + id
	ctx := context.WithoutCancel(req.Context())
	var buf bytes.Buffer
	for {
		_, rd, err := ws.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			return
		}
		m, err := protocol.DecodeClientMessage(buf.Bytes())
		if err != nil || m.Type != protocol.TypeSet {
			_ = ws.Write(ctx, websocket.MessageText, protocol.AppendError(nil, m.ID, protocol.CodeInvalid, "the relay takes sets"))
			continue
		}
		if err := r.publish(room, ws, subject, m); err != nil {
			_ = ws.Write(ctx, websocket.MessageText, protocol.AppendError(nil, m.ID, protocol.CodeUnavailable, err.Error()))
		}
	}
}

// publish sends set m of socket ws to JetStream, its reply subject
// naming it among the writes awaited.
func (r *relay) publish(room *relayRoom, ws *websocket.Conn, subject string, m protocol.ClientMessage) error {
	data := make([]byte, 0, 40+len(m.Key)+len(m.Value))
	data = append(data, `[{"type":"set","key":`...)
	data = protocol.AppendString(data, m.Key)
	data = append(data, `,"value":`...)
	data = append(data, m.Value...)
	data = append(data, "}]"...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.token++
	t := r.token
	w := &relayWrite{ws: ws, id: m.ID}
	if err := r.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: r.inbox + "." + strconv.FormatUint(t, 10), Data: data}); err != nil {
		return err
	}
	r.waiting[t] = w
	room.fifo = append(room.fifo, w)
	return nil
}

// leave takes ws out of session id.
func (r *relay) leave(id string, ws *websocket.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room := r.rooms[id]
	if room == nil {
		return
	}
	for i, c := range room.conns {
		if c == ws {
			room.conns = append(room.conns[:i], room.conns[i+1:]...)
			break
		}
	}
	if len(room.conns) == 0 {
		delete(r.rooms, id)
	}
}

// dispatch writes every republished entry to its session's sockets and
// every acknowledgement to its writer, the entries waiting first (as the
// hub's dispatchers do: JetStream republishes an entry before it
// acknowledges it), until stop.
func (r *relay) dispatch(live, acks chan *nats.Msg, stop chan struct{}) {
	for {
		select {
		case m := <-live:
			r.onLive(m)
		case m := <-acks:
			for n := len(live); n > 0; n-- {
				r.onLive(<-live)
			}
			r.onAck(m)
		case <-stop:
			return
		}
	}
}

// onLive sends a republished entry as a change to the session's sockets
// but its writer's, which gets it with its ack.
func (r *relay) onLive(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, relayLive+".")
	seq := m.Header.Get(jetstream.SequenceHeader)
	change := make([]byte, 0, 48+len(seq)+len(m.Data))
	change = append(change, `{"type":"change","seq":`...)
	change = append(change, seq...)
	change = append(change, `,"ops":`...)
	change = append(change, m.Data...)
	change = append(change, `,"source":"ws"}`...)
	r.mu.Lock()
	room := r.rooms[id]
	if room == nil {
		r.mu.Unlock()
		return
	}
	var own *relayWrite
	if len(room.fifo) > 0 {
		own = room.fifo[0]
		room.fifo[0] = nil
		room.fifo = room.fifo[1:]
		own.change = change
	}
	conns := append([]*websocket.Conn(nil), room.conns...)
	r.mu.Unlock()
	for _, c := range conns {
		if own == nil || c != own.ws {
			_ = c.Write(context.Background(), websocket.MessageText, change)
		}
	}
}

// onAck answers the write acknowledgement m is for: its change and its
// ack in one frame.
func (r *relay) onAck(m *nats.Msg) {
	t, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	w := r.waiting[t]
	delete(r.waiting, t)
	r.mu.Unlock()
	if w == nil {
		return
	}
	seq, err := relayAckSeq(m.Data)
	var frame []byte
	if w.change != nil {
		frame = append(append(frame, w.change...), '\n')
	}
	if err != nil {
		frame = protocol.AppendError(frame, w.id, protocol.CodeUnavailable, err.Error())
	} else {
		frame = protocol.AppendAck(frame, w.id, seq, nil)
	}
	_ = w.ws.Write(context.Background(), websocket.MessageText, frame)
}

// relayAckSeq reads the sequence of a JetStream acknowledgement,
// {"stream":"NAME","seq":N,...}; anything else is its error.
func relayAckSeq(data []byte) (uint64, error) {
	_, rest, ok := bytes.Cut(data, []byte(`"seq":`))
	if !ok || bytes.Contains(data, []byte(`"error"`)) {
		return 0, fmt.Errorf("jetstream refused the write: %s", data)
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("jetstream acknowledgement without a sequence: %s", data)
	}
	return seq, nil
}

// relayTarget drives the bare relay in the shapes: a pair is one session
// of two sockets, as on the hub.
type relayTarget struct {
	p       *proc
	url     string // ws://127.0.0.1:port/ws
	port    int
	nats    int    // the run's nats-server's PID
	profile string // PeerConfig.HubCPUProfile: path prefix of a profile per shape
}

func (t *relayTarget) profiler(shape string) (int, string, bool) {
	split := t.nats == 0 // its nats-server runs in its process
	if t.profile == "" && !split {
		return 0, "", false
	}
	path := ""
	if t.profile != "" {
		path = t.profile + "-relay-" + strings.ReplaceAll(shape, " ", "") + ".pprof"
	}
	return t.port, path, split
}

// startRelay starts the bare relay (this binary, serve-relay) against
// natsURL, whose process is natsPID; with natsURL empty, against an
// nats-server in its own process (its store in dir). Its log goes into
// dir. With profile, each shape's CPU profile of the relay goes to
// profile-relay-<shape>.pprof.
func startRelay(self, natsURL string, natsPID int, dir, profile string) (*relayTarget, error) {
	argv := []string{self, serveRelayCmd, "-addr", "127.0.0.1:0", "-nats", natsURL}
	if natsURL == "" {
		argv = append(argv, "-data", filepath.Join(dir, "relay-nats"))
	}
	p := &proc{name: "relay", argv: argv, logPath: filepath.Join(dir, "relay.log")}
	if err := p.start(); err != nil {
		return nil, err
	}
	addr, err := p.waitListening(30 * time.Second)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	return &relayTarget{p: p, url: "ws://" + addr + "/ws", port: port, nats: natsPID, profile: profile}, nil
}

func (t *relayTarget) close() { _ = t.p.stop() }

func (t *relayTarget) name() string { return "relay" }

func (t *relayTarget) procs() []namedPID {
	if t.nats == 0 {
		return []namedPID{{"relay", t.p.pid()}} // its nats-server runs in its process
	}
	return []namedPID{{"relay", t.p.pid()}, {"nats-server", t.nats}}
}

func (t *relayTarget) dialPair(ctx context.Context, p *pair) (pairConn, error) {
	url := fmt.Sprintf("%s?s=p%d", t.url, p.idx)
	opts := &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}}
	w, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	r, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		w.CloseNow()
		return nil, err
	}
	if w.Subprotocol() != protocol.Subprotocol || r.Subprotocol() != protocol.Subprotocol {
		w.CloseNow()
		r.CloseNow()
		return nil, errors.New("the relay did not take subprotocol " + protocol.Subprotocol)
	}
	rctx, cancel := context.WithCancel(context.Background())
	hp := &hubPair{p: p, key: "language", w: w, r: r, cancel: cancel}
	hp.done.Add(2)
	go hp.read(rctx, w, nil, false)
	go hp.read(rctx, r, nil, true)
	return hp, nil
}
