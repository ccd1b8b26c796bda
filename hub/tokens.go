package hub

import "time"

// tokens holds the publishes awaiting their acknowledgement (asyncAcks),
// by token. Tokens are given one after the other, so those awaiting lie
// in a window [first, first+count) of a ring: finding a token's publish
// is a subtraction, not a hash, and the window's head is the oldest
// publish, the first whose deadline passes. An answered publish leaves a
// hole (nil) until the holes before it are gone too; the window then
// moves past them. A hole is only ever behind an older publish still
// awaiting: with acknowledgements in order, the window holds the
// publishes in flight and no more. The ring grows as the window does and
// shrinks again once it narrows. Not safe for concurrent use: asyncAcks
// holds its lock.
type tokens struct {
	ring  []*pubAck // len a power of two, or 0
	head  int       // ring index of token first
	count int       // the window's width
	first uint64    // the oldest token in the window; the next one given is first+count
}

// minTokenRing is the ring's smallest length once it holds a publish.
const minTokenRing = 64

// push gives f the next token and holds it.
func (t *tokens) push(f *pubAck) {
	if t.first == 0 {
		t.first = 1 // token 0 is never given: a zero pubAck has none
	}
	if t.count == len(t.ring) {
		t.resize(max(2*len(t.ring), minTokenRing))
	}
	f.token = t.first + uint64(t.count)
	t.ring[(t.head+t.count)&(len(t.ring)-1)] = f
	t.count++
}

// take removes and returns the publish of token, nil when none holds it
// (answered, forgotten, expired, or never given).
func (t *tokens) take(token uint64) *pubAck {
	if token < t.first || token-t.first >= uint64(t.count) {
		return nil
	}
	i := (t.head + int(token-t.first)) & (len(t.ring) - 1)
	f := t.ring[i]
	t.ring[i] = nil
	t.trim()
	return f
}

// takeDue removes and returns the publishes from the oldest on whose
// deadline is not after now, up to the first that is: tokens are given
// in publish order, so in the order of their deadlines (give or take the
// few nanoseconds between a deadline's clock read and its token).
func (t *tokens) takeDue(now time.Time) []*pubAck {
	var due []*pubAck
	for t.count > 0 {
		f := t.ring[t.head]
		if now.Before(f.deadline) {
			break
		}
		due = append(due, f)
		t.ring[t.head] = nil
		t.trim()
	}
	return due
}

// takeAll removes and returns every publish held.
func (t *tokens) takeAll() []*pubAck {
	var all []*pubAck
	for i := range t.count {
		if f := t.ring[(t.head+i)&(len(t.ring)-1)]; f != nil {
			all = append(all, f)
		}
	}
	t.first += uint64(t.count)
	t.ring, t.head, t.count = nil, 0, 0
	return all
}

// trim moves the window past the holes at its head, and shrinks the ring
// once the window fills less than an eighth of it.
func (t *tokens) trim() {
	for t.count > 0 && t.ring[t.head] == nil {
		t.head = (t.head + 1) & (len(t.ring) - 1)
		t.count--
		t.first++
	}
	if t.count == 0 {
		t.head = 0
	}
	n := len(t.ring)
	for n > minTokenRing && t.count < n/8 {
		n /= 2
	}
	if n != len(t.ring) {
		t.resize(n)
	}
}

// resize moves the window to a ring of n slots, n a power of two not
// below count.
func (t *tokens) resize(n int) {
	ring := make([]*pubAck, n)
	for i := range t.count {
		ring[i] = t.ring[(t.head+i)&(len(t.ring)-1)]
	}
	t.ring, t.head = ring, 0
}
