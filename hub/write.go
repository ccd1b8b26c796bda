package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// queue hands msgs to the writer without blocking, taken together (one
// frame on a socket that negotiated protocol.Subprotocol).
func (c *conn) queue(msgs ...[]byte) bool {
	if !c.enqueue(msgs...) {
		return false
	}
	c.kick()
	return true
}

// enqueue is queue without starting a writer: a running one takes msgs,
// or the caller writes them itself (writeHere).
func (c *conn) enqueue(msgs ...[]byte) bool {
	if c.closing.Load() {
		return false
	}
	if !c.out.push(msgs...) {
		c.close(CloseTooSlow, "too slow: send buffer full")
		return false
	}
	return true
}

// writeHere is the writer on the calling goroutine, unless one runs: the
// socket's acker writes its last answers itself rather than handing them
// to a goroutine of their own (a write answered one at a time costs one
// goroutine less). A close is left to a writer goroutine.
func (c *conn) writeHere() {
	if c.writing.CompareAndSwap(false, true) {
		c.drainOn(true)
	}
}

// kick starts the writer unless one runs.
func (c *conn) kick() {
	if c.writing.CompareAndSwap(false, true) {
		c.h.run.run(c.drain)
	}
}

// writeSoon is kick from a goroutine that must not wait for this socket's
// client (the shard's dispatcher, an ack routed there): it is the writer
// itself, once, when the write cannot wait, and starts the writer
// otherwise. A write cannot wait when no writer runs and the kernel's
// send buffer of the connection has room for what is queued (sendRoom):
// the frame goes straight to the kernel. The room is measured once, then
// counted down by every frame written on the connection (sendCost: the
// writer's, and the control frames others write, conn.ctrl) until it
// runs short: the client only ever frees some, by reading. A client that
// stops reading fills that buffer, and its frames then go to a writer
// goroutine, which waits for it as long as WriteWait. (A message queued
// between the measure and the write past its margin, or a system short
// of TCP memory, could still make the write wait: as long as WriteWait at
// most, the frame deadline of every write.) Called with no lock held.
//
// A change delivered, or an ack, costs no goroutine hand-off then: at
// window 1, about a twentieth of the hub's CPU per write (BENCHMARKS.md,
// eighth round).
func (c *conn) writeSoon() {
	if !c.writing.CompareAndSwap(false, true) {
		return // the running writer takes it
	}
	// The control frames written on the connection since took room too.
	ctrl := c.ctrl.Load()
	c.sendRoom -= int(ctrl - c.ctrlSeen)
	c.ctrlSeen = ctrl
	need := framesCost(c.out.unsent()) + controlReserve
	if c.sendRoom < need && c.rawc != nil {
		if room, size, ok := sendRoom(c.rawc); ok {
			// ctrl was read before the measure: a control frame counted
			// after it is taken off again, whether the measure saw it or
			// not.
			c.sendRoom, c.sendSize = room, size
		}
	}
	// Pongs are written while half the buffer is free (pongFits): past
	// what was measured, they leave that half to this write.
	if c.sendRoom < need || need > c.sendSize/2 || c.closing.Load() {
		c.h.run.run(c.drain)
		return
	}
	c.drainOn(true)
}

// outbox is a socket's bounded send queue. An idle socket holds no
// buffer beyond a few slots: the queue's slice is allocated when messages
// wait and handed to the writer, which gives a small one back once it
// wrote it (recycle), so that a socket's next messages take no
// allocation; a larger one is dropped.
type outbox struct {
	mu       sync.Mutex
	q        [][]byte
	n        atomic.Int32 // len(q), set under mu, read without it (backlogged, waitBelow)
	max      int
	bytes    int // queued, and taken but not yet written
	maxBytes int
	taken    chan struct{} // closed by take, for waitBelow; nil when nobody waits
}

func newOutbox(max, maxBytes int) outbox {
	return outbox{max: max, maxBytes: maxBytes}
}

// push appends msgs in one hold of the lock, or reports false when they
// would take the messages waiting past max or the unsent bytes past
// maxBytes (messages pushed when none are unsent always fit the bytes).
func (o *outbox) push(msgs ...[]byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	if len(o.q)+len(msgs) > o.max || (o.bytes > 0 && o.bytes+n > o.maxBytes) {
		return false
	}
	o.q = append(o.q, msgs...)
	o.n.Store(int32(len(o.q)))
	o.bytes += n
	return true
}

// written accounts for n bytes of taken messages that went out (or never
// will).
func (o *outbox) written(n int) {
	o.mu.Lock()
	o.bytes -= n
	o.mu.Unlock()
}

// unsent is how many messages are queued, and the bytes of those and of
// the ones taken but not yet written.
func (o *outbox) unsent() (msgs, size int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q), o.bytes
}

// room reports whether n more messages fit now.
func (o *outbox) room(n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q)+n <= o.max
}

// unshift puts msgs back at the front of the queue (they were taken but
// not written), whatever the bound.
func (o *outbox) unshift(msgs [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.q = append(append([][]byte(nil), msgs...), o.q...)
	o.n.Store(int32(len(o.q)))
}

// takeOrIdle is take for the socket's writer, who holds writing: with
// no message waiting it lets writing go in the same hold of the lock (a
// message pushed after it finds no writer and starts one), and with
// leave, it takes none and reports left when some wait (drainOn's here).
func (o *outbox) takeOrIdle(leave bool, writing *atomic.Bool) (msgs [][]byte, left bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case len(o.q) == 0:
		writing.Store(false)
		return nil, false
	case leave:
		return nil, true
	}
	return o.takeLocked(), false
}

// keptQueue bounds the slots of the array a queue takes back from its
// writer (recycle): enough for the answers and changes of a socket that
// writes one at a time, not a burst's.
const keptQueue = 4

// recycle gives the queue back the array of msgs, which the writer took
// and wrote, unless it is larger than keptQueue or the queue has one
// again meanwhile. The messages are dropped from it first: the array does
// not keep them alive.
func (o *outbox) recycle(msgs [][]byte) {
	if cap(msgs) > keptQueue {
		return
	}
	clear(msgs[:cap(msgs)])
	o.mu.Lock()
	if o.q == nil {
		o.q = msgs[:0]
	}
	o.mu.Unlock()
}

// take returns the waiting messages and empties the queue.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.takeLocked()
}

// takeLocked is take with o.mu held.
func (o *outbox) takeLocked() [][]byte {
	q := o.q
	o.q = nil
	o.n.Store(0)
	if o.taken != nil {
		close(o.taken)
		o.taken = nil
	}
	return q
}

// close asks the writer to close the socket with code. Safe to call many
// times and from any goroutine; the first code wins.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeMsg = code, reason
		c.closing.Store(true)
		c.kick()
	})
}

// drain is the socket's writer while messages wait: it writes them, exits
// once the queue is empty, and on a close sends the close frame.
func (c *conn) drain() { c.drainOn(false) }

// drainOn is drain; here: on a goroutine with more to do (writeHere),
// which writes what waits once, and hands what came meanwhile, and a
// close, to a writer goroutine: a socket that keeps receiving changes
// does not keep its acker from its next answers.
func (c *conn) drainOn(here bool) {
	for wrote := false; ; wrote = true {
		if c.closing.Load() {
			if here {
				c.h.run.run(c.drain) // writing stays set: the role passes to it
				return
			}
			c.finish()
			c.stopWriteTimer()
			_ = c.ws.CloseNow() // closed by now; the read loop ends with it
			c.cancel()
			close(c.finished)
			return // writing stays set: no writer after the close
		}
		msgs, left := c.out.takeOrIdle(here && wrote, &c.writing)
		if left {
			c.h.run.run(c.drain) // writing stays set: the role passes to it
			return
		}
		if msgs == nil {
			// The role went with the queue found empty (a message queued
			// after it starts a writer); a close that came meanwhile
			// found it still held and did not: take it back.
			if !c.closing.Load() || !c.writing.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		n, err := c.writeMsgs(msgs, true)
		switch {
		case err != nil:
			// A frame not written within WriteWait (write closed the
			// socket with CloseTooSlow): the client stopped reading, and
			// the close frame cannot get through either.
			if !errors.Is(err, errWriteTimeout) {
				c.close(CloseInternal, "write failed")
			}
			_ = c.ws.CloseNow()
		case n < len(msgs):
			c.out.unshift(msgs[n:]) // closing: finish decides what still goes out
		default:
			c.out.recycle(msgs)
		}
	}
}

// ping checks that the client answers; the hub's pinger calls it.
func (c *conn) ping() {
	defer c.pinging.Store(false)
	c.ctrl.Add(controlCost) // room it takes in the kernel's send buffer (writeSoon)
	ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.PingTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil && c.ctx.Err() == nil {
		c.close(ClosePingTimeout, "no pong")
	}
}

// finish sends what is already queued when the close is orderly (a final
// error or change), then the close frame.
func (c *conn) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.opts.WriteWait)
	defer cancel()
	// The close handshake is bounded too: ws.Close waits up to 5 s to
	// write the close frame and 5 s more for the client's, and CloseNow
	// does nothing once Close has begun; closing the connection under it
	// ends both.
	stop := context.AfterFunc(ctx, func() { _ = c.raw.Close() })
	defer stop()
	if c.closeCode != CloseTooSlow {
		_, _ = c.writeMsgs(c.out.take(), false)
	}
	_ = c.ws.Close(c.closeCode, c.closeMsg)
}

// errWriteTimeout: a frame was not written within WriteWait.
var errWriteTimeout = errors.New("hub: frame write timed out")

// write writes msg as one frame within WriteWait. A frame not written in
// time closes the socket with CloseTooSlow before its write is cut off:
// closing the connection ends the write, and the read loop, woken by
// that, must find the code set (its own close would say 1000).
//
// A frame's deadline costs a clock read, two stores and a
// compare-and-swap, not a timer's reset and stop: write notes when the
// frame began (wstart), and the socket's timer, armed by the first frame
// after it went quiet, checks that note when it fires. A frame still in
// progress past WriteWait times the socket out; one younger re-arms the
// timer for the rest of its time; none disarms it, so a quiet socket's
// timer fires at most once more.
// Only the socket's writer writes (drain, one at a time). A timeout that
// comes as its frame completes closes the connection all the same: the
// client then sees 1006, not 4200.
//
// The write's context has no cancellation: with one, coder/websocket
// would register and remove a cancellation hook on every frame.
func (c *conn) write(msg []byte) error {
	c.sendRoom -= sendCost(len(msg))
	c.wstart.Store(monoNow())
	if c.warmed.CompareAndSwap(false, true) {
		c.armWriteTimer(c.h.opts.WriteWait)
	}
	err := c.ws.Write(context.Background(), websocket.MessageText, msg)
	c.wstart.Store(0)
	if err != nil && c.wexpired.Load() {
		return fmt.Errorf("%w: %w", errWriteTimeout, err)
	}
	return err
}

// armWriteTimer arms the socket's frame timer to fire in d, making it the
// first time: made idle, then stored, then armed, so that it never fires
// before the socket holds it.
func (c *conn) armWriteTimer(d time.Duration) {
	t := c.wtimer.Load()
	if t == nil {
		t = time.AfterFunc(time.Duration(math.MaxInt64), c.checkWrite)
		c.wtimer.Store(t)
	}
	t.Reset(d)
}

// checkWrite is the frame timer's: it times out a frame in progress past
// WriteWait, re-arms the timer for a younger one, and disarms it when no
// frame is in progress (a frame that began meanwhile and found it armed
// has it armed again).
func (c *conn) checkWrite() {
	for {
		began := c.wstart.Load()
		if began == 0 {
			c.warmed.Store(false)
			if c.wstart.Load() == 0 || !c.warmed.CompareAndSwap(false, true) {
				return
			}
			continue // a frame began as the timer went idle
		}
		if left := began + int64(c.h.opts.WriteWait) - monoNow(); left > 0 {
			c.armWriteTimer(time.Duration(left))
			return
		}
		c.wexpired.Store(true)
		c.writeTimedOut()
		return
	}
}

// stopWriteTimer stops the socket's frame timer once it wrote its last
// frame: a closed socket is held by it at most one WriteWait more (a
// check that read the last frame's start re-arms it once).
func (c *conn) stopWriteTimer() {
	if t := c.wtimer.Load(); t != nil {
		t.Stop()
	}
}

// monoStart is the origin of monoNow.
var monoStart = time.Now()

// monoNow is the monotonic clock in nanoseconds, never 0.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

// writeTimedOut closes the socket whose frame was not written within
// WriteWait, then its connection, which ends the write.
func (c *conn) writeTimedOut() {
	c.close(CloseTooSlow, "too slow: frame write timed out")
	_ = c.raw.Close()
}
