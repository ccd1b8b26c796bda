package hub

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// entry is one log entry of a session: the ops one writer appended
// together, with their sequence number.
type entry struct {
	Seq    uint64
	Ops    []session.Op // each with Seq set
	Source string       // protocol.SourceWS or protocol.SourceHTTP
	// Covers is, for a snapshot (snapshot.go), the sequence of the last
	// entry it compacts; 0 for every other entry.
	Covers uint64
}

// entryOf parses a log entry from a stored, republished or direct-get
// message with sequence seq.
func entryOf(m *nats.Msg, seq uint64) (entry, error) {
	ops, err := decodeEntry(m.Data, seq)
	if err != nil {
		return entry{}, err
	}
	e := entry{Seq: seq, Ops: ops}
	if c := m.Header.Get(hdrSnapshot); c != "" {
		if e.Covers, err = strconv.ParseUint(c, 10, 64); err != nil || e.Covers == 0 || e.Covers >= seq {
			return entry{}, fmt.Errorf("hub: log entry %d: bad %s header %q", seq, hdrSnapshot, c)
		}
	}
	e.Source = sourceOf(m, e.Covers != 0)
	return e, nil
}

// sourceOf is the source of log entry m: its Sessionhub-Source header; a
// socket's entry when it has none and is not a snapshot. A socket's
// entries are appended without the header (appendReserved), which nats.go
// would encode on every publish and JetStream store with every entry;
// those of earlier versions carry it, and read the same.
func sourceOf(m *nats.Msg, snapshot bool) string {
	if src := m.Header.Get(hdrSource); src != "" || snapshot {
		return src
	}
	return SourceWS
}

// entryWrites returns the writes of the session's write budget entry e
// counts: a socket's entry is a batch of writes of one op each
// (pipeline.go); any other entry, however many ops, is one.
func entryWrites(e entry) int {
	if e.Source == SourceWS {
		return max(1, len(e.Ops))
	}
	return 1
}

// encodeEntry returns the payload of a log entry.
func encodeEntry(ops []session.Op) ([]byte, error) {
	if err := validateOps(ops); err != nil {
		return nil, err
	}
	return encodeValid(ops), nil
}

// validateOps checks ops as encodeEntry does.
func validateOps(ops []session.Op) error { return validateEach(ops, session.Op.Validate) }

// validateDecoded is validateOps for the ops of a client frame, whose
// values protocol.DecodeClientMessage read as JSON already (its fuzz
// target holds them to json.Valid): it checks the rest without scanning
// a value again.
func validateDecoded(ops []session.Op) error {
	return validateEach(ops, session.Op.ValidateDecoded)
}

// validateEach checks each op with check, the first failure an invalid
// error.
func validateEach(ops []session.Op, check func(session.Op) error) error {
	for _, op := range ops {
		if err := check(op); err != nil {
			return Errorf(CodeInvalid, "%v", err)
		}
	}
	return nil
}

// encodeValid is encodeEntry for ops validateOps passed.
func encodeValid(ops []session.Op) []byte {
	var small [4]protocol.WireOp // a socket's entry of one write: no allocation
	w := small[:0]
	for _, op := range ops {
		w = append(w, protocol.WireOp{Type: op.Type, Key: op.Key, Value: op.Value})
	}
	return protocol.AppendOps(nil, w)
}

// decodeEntry parses a log entry's payload; every op gets seq.
func decodeEntry(data []byte, seq uint64) ([]session.Op, error) {
	w, err := protocol.DecodeOps(data)
	if err != nil {
		return nil, fmt.Errorf("hub: log entry %d: %w", seq, err)
	}
	ops := make([]session.Op, 0, len(w))
	for _, o := range w {
		op := session.Op{Seq: seq, Type: o.Type, Key: o.Key, Value: o.Value}
		if err := op.ValidateDecoded(); err != nil { // DecodeOps read the values as JSON
			return nil, fmt.Errorf("hub: log entry %d: %w", seq, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// flatten returns the ops of entries, in order.
func flatten(entries []entry) []session.Op {
	n := 0
	for _, e := range entries {
		n += len(e.Ops)
	}
	ops := make([]session.Op, 0, n)
	for _, e := range entries {
		ops = append(ops, e.Ops...)
	}
	return ops
}
