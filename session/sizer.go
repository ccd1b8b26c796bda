package session

import "math"

// A Sizer measures a session's cookie as Store.Size does, with ops folded
// in one at a time, in sequence order, without keeping them or copying the
// session's values: it follows only the length each key's value has. The
// cookie budget of a write measures the session with every change in
// flight folded in, on every write; a Sizer makes that a walk over
// lengths measured once. NewSizer makes one.
//
// With a codec other than Codec, the Sizer keeps the ops and Size folds
// them as Store.Size does.
type Sizer struct {
	st      *Store
	snap    Snapshot
	seq     uint64 // the sequence of the last op folded
	cleared bool   // a clear or an end folded: the snapshot's values are gone
	ended   bool   // an end folded: later ops are moot
	n       int    // keys in buf
	buf     [8]heldValue
	more    []heldValue
	ops     []Op // the ops folded, kept for a codec other than Codec
}

type heldValue struct {
	key string
	n   int // ValueLen of its value; 0: deleted
}

// NewSizer returns a Sizer of snap's cookie.
func (st *Store) NewSizer(snap Snapshot) Sizer {
	return Sizer{st: st, snap: snap, seq: snap.Seq}
}

// Fold folds op into the measure; valueLen is ValueLen(op.Value) when the
// caller knows it, -1 to measure it. An op with Seq 0 is folded as the
// widest sequence (as Store.Size stages it); an op not above the
// snapshot's sequence changes nothing, as in Snapshot.Fold. Ops must come
// in sequence order.
func (z *Sizer) Fold(op Op, valueLen int) {
	if op.Seq == 0 {
		op.Seq = math.MaxUint64
	}
	if op.Seq <= z.snap.Seq || z.ended {
		return
	}
	z.seq = op.Seq
	if _, ok := z.st.codec.(*Codec); !ok {
		z.ops = append(z.ops, op)
	}
	switch op.Type {
	case OpClear, OpEnd:
		z.cleared, z.ended, z.n, z.more = true, op.Type == OpEnd, 0, z.more[:0]
		return
	case OpSet:
		if valueLen < 0 {
			valueLen = rawLen(op.Value)
		}
	case OpDelete:
		valueLen = 0
	default:
		return
	}
	if h := z.find(op.Key); h != nil {
		h.n = valueLen
		return
	}
	if z.n < len(z.buf) {
		z.buf[z.n] = heldValue{key: op.Key, n: valueLen}
		z.n++
		return
	}
	z.more = append(z.more, heldValue{key: op.Key, n: valueLen})
}

func (z *Sizer) find(key string) *heldValue {
	for i := range z.buf[:z.n] {
		if z.buf[i].key == key {
			return &z.buf[i]
		}
	}
	for i := range z.more {
		if z.more[i].key == key {
			return &z.more[i]
		}
	}
	return nil
}

// Held returns ValueLen of the value key holds with the ops folded so
// far; 0 when it holds none.
func (z *Sizer) Held(key string) int {
	if h := z.find(key); h != nil {
		return h.n
	}
	if v, ok := z.snap.Values[key]; ok && !z.cleared {
		return rawLen(v)
	}
	return 0
}

// Size returns Store.Size(snap, ops...) for the ops folded so far.
func (z *Sizer) Size() (int, error) {
	if _, ok := z.st.codec.(*Codec); !ok {
		return z.st.Size(z.snap, z.ops...)
	}
	count, n := 0, 0
	if !z.cleared {
		for k, v := range z.snap.Values {
			if z.find(k) != nil {
				continue
			}
			count++
			n += quotedLen(k) + 1 + rawLen(v)
		}
	}
	for _, h := range z.buf[:z.n] {
		if h.n > 0 {
			count++
			n += quotedLen(h.key) + 1 + h.n
		}
	}
	for _, h := range z.more {
		if h.n > 0 {
			count++
			n += quotedLen(h.key) + 1 + h.n
		}
	}
	if count > 0 {
		n += 1 + count // the braces and the commas
	}
	return z.st.sizeOf(z.snap, n, z.seq), nil
}

// GrowthBound returns an upper bound of how many bytes folding op into a
// session can add to the encoded length of its values (what Store.Size
// measures them at): a set adds at most its key and value as a new entry,
// with the braces and the payload's field when it is the first; a delete,
// a clear or an end adds none. valueLen is ValueLen(op.Value) when the
// caller knows it, -1 to measure it.
func GrowthBound(op Op, valueLen int) int {
	if op.Type != OpSet {
		return 0
	}
	if valueLen < 0 {
		valueLen = rawLen(op.Value)
	}
	// A colon and a comma after the others; a first entry: a colon, the
	// map's braces and the payload's field.
	const first = len(":") + len("{}") + len(`,"v":`)
	return quotedLen(op.Key) + valueLen + first
}

// SizeBound returns an upper bound of Store.Size of a session measured at
// n bytes by Store.Size or a Sizer, with at least one op folded at the
// widest sequence (an op of Seq 0, as a write in flight is measured), once
// its values grew by at most grown bytes (GrowthBound summed over the ops
// folded into it since, in any order). ok is false with a codec other
// than Codec, whose encoding it does not know: measure instead.
func (st *Store) SizeBound(n, grown int) (bound int, ok bool) {
	if _, ok := st.codec.(*Codec); !ok {
		return 0, false
	}
	// Codec.encodedLen: the payload (grown bytes longer at most, its
	// sequence already at its widest) is encoded in base64 inside the
	// signed value, itself in base64; each base64 adds at most 4 bytes per
	// 3 or part of 3 more.
	ceil3 := func(x int) int { return (x + 2) / 3 }
	return n + 4*ceil3(4*ceil3(max(grown, 0))), true
}
