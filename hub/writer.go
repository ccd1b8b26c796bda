package hub

import (
	"context"
	"sync"
)

// A socket's writes have one owner at a time: the writer goroutine that
// queue starts when the first message waits (kick), which writes until
// the queue is empty and exits, so an idle socket holds no goroutine and
// no buffer. Close hands it the close frame (finish); the socket's
// lifecycle waits for it on c.finished. This file is how that writer puts
// messages on the wire: one frame per message, or, on a socket that
// negotiated protocol.Subprotocol, every message waiting in as few frames
// as fit maxBatchBytes, each one write system call.

// maxBatchBytes bounds a frame of several messages; a single message is
// never split, whatever its size.
const maxBatchBytes = 64 << 10

// batchBufs holds frame buffers between batches: a writer takes one while
// it runs, not for the life of the socket.
var batchBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// writeMsgs writes msgs in order and returns how many went out. With
// stopOnClose it stops before the next frame once the socket is closing
// (the caller puts the rest back for finish); err is the failed write's.
func (c *conn) writeMsgs(msgs [][]byte, stopOnClose bool) (int, error) {
	if !c.batch {
		for i, m := range msgs {
			if stopOnClose && c.closing.Load() {
				return i, nil
			}
			err := c.write(m)
			c.out.written(len(m))
			if err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	bp := batchBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 2*maxBatchBytes {
			batchBufs.Put(bp)
		}
	}()
	for i := 0; i < len(msgs); {
		if stopOnClose && c.closing.Load() {
			return i, nil
		}
		if len(msgs[i]) >= maxBatchBytes || i == len(msgs)-1 {
			err := c.write(msgs[i]) // alone in its frame: no copy
			c.out.written(len(msgs[i]))
			if err != nil {
				return i, err
			}
			i++
			continue
		}
		var j int
		*bp, j = appendBatch((*bp)[:0], msgs, i)
		err := c.write(*bp)
		n := 0
		for _, m := range msgs[i:j] {
			n += len(m)
		}
		c.out.written(n) // the frame's messages in one hold of the lock
		if err != nil {
			return i, err
		}
		i = j
	}
	return len(msgs), nil
}

// appendBatch appends msgs[i:j] to b, newline-separated, for the largest
// j that keeps b within maxBatchBytes (at least one message), and returns
// b and j.
func appendBatch(b []byte, msgs [][]byte, i int) ([]byte, int) {
	j := i
	for j < len(msgs) {
		m := msgs[j]
		if j > i {
			if len(b)+1+len(m) > maxBatchBytes {
				break
			}
			b = append(b, '\n')
		}
		b = append(b, m...)
		j++
	}
	return b, j
}

// waitBelow returns once fewer than n messages wait, false when ctx ends
// first: a socket whose client reads slowly stops having its writes
// taken in (pipeline.go) before its acks overflow the send buffer.
func (o *outbox) waitBelow(ctx context.Context, n int) bool {
	if int(o.n.Load()) < n {
		return true // no lock for the usual answer
	}
	for {
		o.mu.Lock()
		if len(o.q) < n {
			o.mu.Unlock()
			return true
		}
		if o.taken == nil {
			o.taken = make(chan struct{})
		}
		taken := o.taken
		o.mu.Unlock()
		select {
		case <-taken:
		case <-ctx.Done():
			return false
		}
	}
}

// half is the backlog past which a session's writes wait: half the send
// buffer.
func (o *outbox) half() int { return max(1, o.max/2) }

// backlogged reports whether half the send buffer waits.
func (o *outbox) backlogged() bool {
	return int(o.n.Load()) >= o.half()
}
