package loadtest

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// op states of a writer's op record.
const (
	opSent   uint8 = iota // written, no answer yet
	opAcked               // acknowledged with a sequence
	opFailed              // answered with an error: not acknowledged
	opLost                // its connection ended before an answer: not acknowledged
)

// opRec is one set op of a writer, indexed by its counter (the n of its
// value "x-s<session>-w<socket>-n<n>").
type opRec struct {
	sent  int64  // nanoseconds since the load started, when written
	seq   uint64 // from its ack, or from a change message
	inst  int8   // instance of the writer's socket when written
	state uint8
	seen  uint64 // bit i: socket i of the session received its change
	// early is, for an op sockets received while it had no ack (not yet,
	// or never: failed or lost, yet landed), each such socket and the
	// change's sequence (answer and noteUnackedFolds check them,
	// snapshotSighting).
	early []sighting
}

// snapshotSighting reports whether an op whose sequence is seq (0:
// unknown), received in the change at sequence at, came in a snapshot of
// the log: a snapshot entry replaces the entries before it (PROTOCOL.md),
// and carries their values at its own, higher sequence. Whoever got it
// got every op below at, folded.
func snapshotSighting(at, seq uint64) bool { return seq != 0 && at > seq }

// sighting is a socket that received an op in the change at seq.
type sighting struct {
	k   *lsocket
	seq uint64
}

// lsession is one simulated session: a browser with Config.Sockets tabs.
type lsession struct {
	l       *load
	idx     int
	name    string
	sockets []*lsocket
	maxSeq  atomic.Uint64 // highest acknowledged sequence

	cookieMu sync.Mutex
	cookies  map[string]string // the browser's cookie jar for the hubs
}

func (s *lsession) noteSeq(seq uint64) {
	for {
		cur := s.maxSeq.Load()
		if seq <= cur || s.maxSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// seqKnown reports whether the op that wrote raw (a value of this run)
// has a known sequence; true for any other value.
func (s *lsession) seqKnown(raw json.RawMessage) bool {
	si, wi, n, ok := parseValue(raw)
	if !ok || si != s.idx || wi >= len(s.sockets) {
		return true
	}
	w := s.sockets[wi]
	w.mu.Lock()
	defer w.mu.Unlock()
	return n >= len(w.ops) || w.ops[n].seq != 0
}
