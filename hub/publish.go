package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// asyncAcks publishes log entries without waiting for JetStream's
// acknowledgements and routes each acknowledgement to its publish: one
// wildcard inbox subscription per lane, one token per publish, at most
// max publishes awaiting theirs. A hub has a lane per dispatcher
// (dispatch.go): a session's acknowledgements go to the dispatcher of
// its republished entries, which nats-server sends before them, so the
// view holds an entry by the time its acknowledgement is routed. It
// does what nats.go's PublishMsgAsync does for the pipeline
// (pipeline.go) and for snapshots (snapshot.go), with an acknowledgement
// read by hand (parsePubAck) and a future that takes no allocation of
// its own. As PublishMsgAsync does, it fails the publishes awaiting
// their acknowledgement when the connection starts reconnecting: their
// replies went to the connection that dropped. A publish not
// acknowledged within timeout of it fails with
// jetstream.ErrAsyncPublishTimeout (expire): its waiter needs no timer of
// its own.
type asyncAcks struct {
	nc     *nats.Conn
	prefix string // "<inbox>.", then "<lane>.<token>"
	// slots counts the publishes awaiting their acknowledgement, at most
	// max; a reserve waiting for one (waiters) is told of one coming
	// free on freed.
	slots   atomic.Int32
	max     int32
	waiters atomic.Int32
	freed   chan struct{} // capacity 1
	subs    []*nats.Subscription
	status  chan nats.Status // the connection's status events
	// down is set once the connection's status left CONNECTED (as watch
	// learnt it), cleared once it is CONNECTED again: only then does an
	// append ask the connection (connected), whose lock its flusher holds
	// through every write.
	down    atomic.Bool
	watched chan struct{} // closed when watch returns
	timeout time.Duration
	stopped chan struct{} // closed by stop: expire returns
	expired chan struct{} // closed when expire returns
	once    sync.Once     // of closing stopped

	mu      sync.Mutex
	waiting tokens // the publishes awaiting their acknowledgement
}

// pubAck is the future of one asynchronous append: once seq (the entry's
// sequence) or err is known it is settled, and a socket's answer queue
// parked on it (park) is resumed (conn.resumeAnswers), or its then is
// called (a snapshot's: jsLog.publishSnapshotAsync). Nothing else waits
// for it: it has no channel, and is made with its batch (newBatch).
type pubAck struct {
	token    uint64
	seq      uint64
	err      error
	deadline time.Time // of its acknowledgement

	state  atomic.Int32 // futurePending, futureParked or futureSettled
	waiter *conn        // the socket whose queue is parked on it
	// then, set before the publish, is called once f is settled, by
	// whoever settles it (route, expire, failAll), which holds no view's
	// lock: then may take one.
	then func(*pubAck)
}

const (
	futurePending = iota
	futureParked
	futureSettled
)

// park makes c's answer queue wait for f: settling f resumes it
// (conn.resumeAnswers). It reports false when f is settled already, or
// another queue waits.
func (f *pubAck) park(c *conn) bool {
	if f.state.Load() != futurePending {
		return false
	}
	f.waiter = c
	return f.state.CompareAndSwap(futurePending, futureParked)
}

// unpark takes back the queue parked on f; false when f's settling has
// begun (it resumes the queue).
func (f *pubAck) unpark() bool {
	return f.state.CompareAndSwap(futureParked, futurePending)
}

// settled reports whether seq or err is known.
func (f *pubAck) settled() bool { return f.state.Load() == futureSettled }

// expireEvery is how often, in fractions of the timeout, the publishes
// past their deadline are failed: at most a fiftieth of it late.
const expireEvery = 50

// defaultAsyncMaxPending is how many asynchronous appends of a hub may
// await their acknowledgement before the next one stalls (nats.go's
// default for PublishMsgAsync).
const defaultAsyncMaxPending = 4000

// errStalled: max asynchronous appends await their acknowledgement and
// none was answered within the stall wait.
var errStalled = errors.New("hub: too many appends awaiting their acknowledgement")

// start subscribes the acknowledgements of lane i to lanes[i], whose
// reader hands them to route; each lane has room for max of them
// (Options.asyncMaxPending, defaulted there).
func (a *asyncAcks) start(nc *nats.Conn, max int, timeout time.Duration, lanes []chan *nats.Msg) error {
	a.nc = nc
	a.timeout = timeout
	a.prefix = nc.NewInbox() + "."
	a.max = int32(min(max, math.MaxInt32))
	a.freed = make(chan struct{}, 1)
	for i, ch := range lanes {
		sub, err := nc.ChanSubscribe(a.prefix+strconv.Itoa(i)+".*", ch)
		if err != nil {
			a.unsubscribe()
			return err
		}
		a.subs = append(a.subs, sub)
	}
	a.status = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	a.down.Store(!nc.IsConnected()) // after the subscription: no change is missed
	a.watched = make(chan struct{})
	go a.watch()
	a.stopped, a.expired = make(chan struct{}), make(chan struct{})
	go a.expire()
	return nil
}

// expire fails the publishes past their deadline, until stop.
func (a *asyncAcks) expire() {
	defer close(a.expired)
	t := time.NewTicker(max(a.timeout/expireEvery, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-a.stopped:
			return
		case now := <-t.C:
			a.mu.Lock()
			late := a.waiting.takeDue(now)
			a.mu.Unlock()
			for _, f := range late {
				a.release()
				a.settle(f, 0, jetstream.ErrAsyncPublishTimeout)
			}
		}
	}
}

// watch follows the connection's status (down), and fails the publishes
// awaiting their acknowledgement each time the connection starts
// reconnecting, until stop.
func (a *asyncAcks) watch() {
	defer close(a.watched)
	for s := range a.status {
		a.down.Store(s != nats.CONNECTED)
		if s == nats.RECONNECTING {
			a.failAll(nats.ErrDisconnected)
		}
	}
}

// connected reports whether the connection is up, at the cost of an
// atomic load while it is: once watch saw it leave CONNECTED, the
// connection itself answers, until watch sees it back. So a CONNECTED
// event that nats.go dropped (it drops what a full listener channel
// cannot take) only costs the connection's lock again. Until watch sees
// the connection leave (or if that event was dropped), an append goes to
// nats.go's reconnect buffer, as one published just before the drop
// does: acknowledged after the reconnect, or failed at WriteTimeout
// (expire), never acknowledged without JetStream's acknowledgement.
func (a *asyncAcks) connected() bool {
	return !a.down.Load() || a.nc.IsConnected()
}

// stop unsubscribes and fails the publishes still awaiting their
// acknowledgement.
func (a *asyncAcks) stop() {
	a.unsubscribe()
	if a.status != nil {
		a.nc.RemoveStatusListener(a.status)
		<-a.watched
	}
	if a.stopped != nil {
		a.once.Do(func() { close(a.stopped) })
		<-a.expired
	}
	a.failAll(nats.ErrConnectionClosed)
}

func (a *asyncAcks) unsubscribe() {
	for _, sub := range a.subs {
		_ = sub.Unsubscribe()
	}
	a.subs = nil
}

// failAll fails every publish awaiting its acknowledgement with err.
func (a *asyncAcks) failAll(err error) {
	a.mu.Lock()
	waiting := a.waiting.takeAll()
	a.mu.Unlock()
	for _, f := range waiting {
		a.release()
		a.settle(f, 0, err)
	}
}

// reserve takes the slot of a publish (publishReserved), waiting at most
// wait for one; false when none came free in time or ctx ended. A slot
// not published with is given back by release.
func (a *asyncAcks) reserve(ctx context.Context, wait time.Duration) bool {
	if a.tryReserve() {
		return true
	}
	a.waiters.Add(1)
	defer a.waiters.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		// Counted among the waiters before looking: a slot freed after
		// this look is told on freed.
		if a.tryReserve() {
			if a.waiters.Load() > 1 && a.slots.Load() < a.max {
				a.tellFreed() // another slot came free meanwhile, for the next waiter
			}
			return true
		}
		select {
		case <-a.freed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// tryReserve is reserve without a wait.
func (a *asyncAcks) tryReserve() bool {
	for {
		n := a.slots.Load()
		if n >= a.max {
			return false
		}
		if a.slots.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a slot reserve took.
func (a *asyncAcks) release() {
	a.slots.Add(-1)
	if a.waiters.Load() > 0 {
		a.tellFreed()
	}
}

// tellFreed tells a waiting reserve that a slot came free, unless one
// was told already and has not looked yet.
func (a *asyncAcks) tellFreed() {
	select {
	case a.freed <- struct{}{}:
	default: // told already
	}
}

// publishReserved sends m with a reply subject of its own on lane, in a
// slot reserve took, and returns its future f, a zero pubAck of the
// caller's (a batch's or a snapshot's, made with it). On error the
// publish was not made and f is not settled: the slot is free again. Once
// stop began, nothing is published (nothing would settle it): the error
// is nats.ErrConnectionClosed. A publish that fails while f is being
// failed already (failAll, as the connection drops) returns f: settled,
// with that error.
func (a *asyncAcks) publishReserved(m *nats.Msg, lane int, f *pubAck) (*pubAck, error) {
	f.deadline = time.Now().Add(a.timeout)
	a.mu.Lock()
	if isClosed(a.stopped) {
		a.mu.Unlock()
		a.release()
		return nil, nats.ErrConnectionClosed
	}
	a.waiting.push(f)
	a.mu.Unlock()
	var buf [48]byte
	r := strconv.AppendInt(buf[:0], int64(lane), 10)
	r = append(r, '.')
	m.Reply = a.prefix + string(strconv.AppendUint(r, f.token, 10))
	if err := a.nc.PublishMsg(m); err != nil {
		if !a.forget(f) {
			return f, nil // settled meanwhile, with its own error
		}
		return nil, err
	}
	return f, nil
}

// pending reports how many publishes await their acknowledgement.
func (a *asyncAcks) pending() int { return int(a.slots.Load()) }

// forget stops waiting for f's acknowledgement (its publish failed, or
// its waiter gave up): its slot is free again. It reports false when f
// was no longer waiting: it is settled, or being settled.
func (a *asyncAcks) forget(f *pubAck) bool {
	a.mu.Lock()
	ok := a.waiting.take(f.token) == f
	a.mu.Unlock()
	if ok {
		a.release()
	}
	return ok
}

// route settles the publish whose acknowledgement m is.
func (a *asyncAcks) route(m *nats.Msg) {
	token, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	f := a.waiting.take(token)
	a.mu.Unlock()
	if f == nil {
		return // its waiter gave up
	}
	a.release()
	if len(m.Data) == 0 && m.Header.Get(hdrStatus) == "503" {
		a.settle(f, 0, nats.ErrNoResponders)
		return
	}
	seq, err := parsePubAck(m.Data)
	a.settle(f, seq, err)
}

func (a *asyncAcks) settle(f *pubAck, seq uint64, err error) {
	f.seq, f.err = seq, err
	if f.then != nil {
		f.state.Store(futureSettled)
		f.then(f)
		return
	}
	if f.state.Swap(futureSettled) == futureParked {
		f.waiter.resumeAnswers(f)
	}
}

// parsePubAck reads JetStream's acknowledgement of a publish: the entry's
// sequence, or the *jetstream.APIError it answered (nats.go's reading of
// it: an answer without a stream is jetstream.ErrInvalidJSAck). The usual
// shape, {"stream":"NAME","seq":N}, is read without reflection; anything
// else by encoding/json. FuzzPubAck holds both readings equal.
func parsePubAck(data []byte) (uint64, error) {
	if seq, ok := fastPubAck(data); ok {
		return seq, nil
	}
	return jsonPubAck(data)
}

func jsonPubAck(data []byte) (uint64, error) {
	var r struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return 0, r.Error
	}
	if r.Stream == "" {
		return 0, jetstream.ErrInvalidJSAck
	}
	return r.Seq, nil
}

// fastPubAck reads exactly {"stream":"NAME","seq":N}, NAME of printable
// ASCII other than a quote or a backslash and N without a leading zero;
// ok is false for anything else.
func fastPubAck(data []byte) (seq uint64, ok bool) {
	const head, mid = `{"stream":"`, `","seq":`
	s, ok := bytes.CutPrefix(data, []byte(head))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(s) && s[i] != '"' {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return 0, false
		}
		i++
	}
	if i == 0 {
		return 0, false
	}
	if s, ok = bytes.CutPrefix(s[i:], []byte(mid)); !ok {
		return 0, false
	}
	if s, ok = bytes.CutSuffix(s, []byte("}")); !ok || len(s) == 0 || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for _, c := range s {
		d := uint64(c - '0')
		if c < '0' || c > '9' || seq > (math.MaxUint64-d)/10 {
			return 0, false
		}
		seq = seq*10 + d
	}
	return seq, true
}
