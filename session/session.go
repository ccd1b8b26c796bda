package session

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// MaxKeyLength is the longest key a session accepts.
const MaxKeyLength = 256

// Session is one client's session: an ID, a version (Seq), JSON values,
// a permanent flag and a creation time. It is the snapshot the cookie
// carries, plus everything a request or socket changed since it was
// loaded.
//
// A Session is safe for concurrent use.
type Session struct {
	mu        sync.Mutex
	id        string
	seq       uint64
	values    map[string]json.RawMessage
	permanent bool
	created   time.Time

	accessed bool // a value was read or written
	modified bool // the application changed it (values, permanent flag, MarkModified)
	advanced bool // ops from the log were folded in: the cookie is behind
	pinned   bool // EnsureID: the ID must reach the client even when empty
	ended    bool // End: forget the session and delete the cookie
	ops      []Op // the changes made through Set/Delete/Clear, in order

	retired []Retired // IDs given up by End and Rotate, for TakeRetired
}

// Retired is a session ID this session gave up: ended by End (logout) or
// replaced by Rotate (login).
type Retired struct {
	ID    string
	Ended bool // End; false for Rotate
}

// New returns an empty session without an ID. The ID is created when the
// session is first written or when EnsureID is called.
func New() *Session {
	return &Session{values: map[string]json.RawMessage{}}
}

// NewID returns a new random session ID: 128 bits from crypto/rand,
// hex-encoded (32 characters, safe in a NATS subject token).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form NewID produces.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ID returns the session ID, or "" when the session has none yet.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// EnsureID gives the session an ID if it has none and returns it. The
// session is then pinned: its cookie is kept even while it holds no
// values (the pin travels in the cookie), so that a socket and later HTTP
// requests share one ID. Pinning an unpinned session marks it modified.
func (s *Session) EnsureID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureIDLocked()
	if !s.pinned {
		s.pinned = true
		s.modified = true
	}
	return s.id
}

// Seq returns the version of the snapshot: the sequence number of the last
// log op folded into it, 0 for none.
func (s *Session) Seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Created returns when the session was created (zero when it has no ID).
func (s *Session) Created() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Permanent reports whether the cookie outlives the browser session
// (Flask's session.permanent).
func (s *Session) Permanent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.permanent
}

// SetPermanent sets the permanent flag. A permanent session's cookie
// carries Expires and Max-Age; others are browser-session cookies.
func (s *Session) SetPermanent(p bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.permanent != p {
		s.permanent = p
		s.modified = true
		s.ensureIDLocked()
	}
}

// Get decodes the value of key into dst. It reports false, with dst
// untouched, when the key is absent.
func (s *Session) Get(key string, dst any) (bool, error) {
	raw, ok := s.Value(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return true, fmt.Errorf("session: decoding %q: %w", key, err)
	}
	return true, nil
}

// GetString returns the value of key when it is a JSON string, else "".
func (s *Session) GetString(key string) string {
	var v string
	if ok, err := s.Get(key, &v); !ok || err != nil {
		return ""
	}
	return v
}

// Value returns the raw JSON value of key. The returned slice must not be
// modified. Values are stored as JSON, so a nested value read with Get is
// a copy: change it, then Set it back.
func (s *Session) Value(key string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	v, ok := s.values[key]
	return v, ok
}

// Has reports whether key is present.
func (s *Session) Has(key string) bool {
	_, ok := s.Value(key)
	return ok
}

// Len returns the number of keys.
func (s *Session) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	return len(s.values)
}

// Keys returns the keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	return slices.Sorted(maps.Keys(s.values))
}

// Values returns a copy of all values.
func (s *Session) Values() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	return maps.Clone(s.values)
}

// Set stores v, marshalled as JSON, under key.
func (s *Session) Set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return s.SetRaw(key, raw)
}

// SetRaw stores a raw JSON value under key. The value is compacted; it
// must be valid JSON.
func (s *Session) SetRaw(key string, raw json.RawMessage) error {
	op, err := SetOp(key, raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(op)
	return nil
}

// Delete removes key. Deleting an absent key changes nothing.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	if _, ok := s.values[key]; !ok {
		return
	}
	s.applyLocked(Op{Type: OpDelete, Key: key})
}

// Clear removes every key (Flask's session.clear()). The ID is kept; use
// End to forget the session altogether.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	if len(s.values) == 0 {
		return
	}
	s.applyLocked(Op{Type: OpClear})
}

// Apply applies an op made by the application, as Set, Delete or Clear
// would, and records it in Ops.
func (s *Session) Apply(op Op) error {
	if err := op.Validate(); err != nil {
		return err
	}
	op.Seq = 0
	s.mu.Lock()
	defer s.mu.Unlock()
	if op.Type == OpEnd {
		if id := s.endLocked(); id != "" {
			s.retired = append(s.retired, Retired{ID: id, Ended: true})
		}
		return nil
	}
	s.applyLocked(op)
	return nil
}

func (s *Session) applyLocked(op Op) {
	s.accessed = true
	s.modified = true
	s.ensureIDLocked()
	op.apply(s.values)
	s.ops = append(s.ops, op)
}

func (s *Session) ensureIDLocked() {
	if s.id == "" {
		s.id = NewID()
		s.created = now()
		s.ended = false // a write after End starts a new session
	}
}

// MarkModified forces the cookie to be written at the end of the request
// even when no value changed, like Flask's session.modified = True.
func (s *Session) MarkModified() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
	s.modified = true
	s.ensureIDLocked()
}

// MarkAccessed records that the response depends on the session (so it
// carries Vary: Cookie) without reading a value.
func (s *Session) MarkAccessed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessed = true
}

// Accessed reports whether a value was read or written.
func (s *Session) Accessed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accessed
}

// Modified reports whether the application changed the session.
func (s *Session) Modified() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modified
}

// Advanced reports whether ops from the log were folded in since the
// session was loaded, so the cookie is behind.
func (s *Session) Advanced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanced
}

// Ops returns the changes made through Set, Delete, Clear and Apply since
// the session was loaded (or since the last TakeOps), without sequence
// numbers.
func (s *Session) Ops() []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

// TakeOps returns the recorded ops and forgets them. The middleware uses it
// to append an HTTP handler's changes to the session log.
func (s *Session) TakeOps() []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = nil
	return ops
}

// Empty reports whether the session holds no values and is not bound to a
// log: it has no sequence number and no pinned ID. An empty session has no
// cookie.
func (s *Session) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emptyLocked()
}

func (s *Session) emptyLocked() bool {
	return s.ended || (len(s.values) == 0 && s.seq == 0 && !s.pinned)
}

// End forgets the session (logout): its values and ID are dropped and the
// cookie is deleted. It returns the ID the session had. A later write
// starts a new session with a new ID.
func (s *Session) End() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.endLocked()
	if id != "" {
		s.retired = append(s.retired, Retired{ID: id, Ended: true})
	}
	return id
}

func (s *Session) endLocked() string {
	id := s.id
	s.id = ""
	s.seq = 0
	s.created = time.Time{}
	s.permanent = false
	s.pinned = false
	s.ended = true
	s.accessed = true
	s.modified = true
	s.values = map[string]json.RawMessage{}
	s.ops = nil
	return id
}

// Ended reports whether End was called and no new session was started
// since (by a write, EnsureID or Rotate).
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// TakeRetired returns the IDs the session gave up since the last call, in
// order, and forgets them: the middleware hands them to the hub, which
// ends the logged-out ones and closes the rotated ones' sockets.
func (s *Session) TakeRetired() []Retired {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.retired
	s.retired = nil
	return r
}

// Rotate gives the session a new ID and keeps its values (call it on
// login, against session fixation). The values become the new session's
// snapshot at version 0. It returns the old ID.
func (s *Session) Rotate() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.id
	if old != "" {
		s.retired = append(s.retired, Retired{ID: old})
	}
	s.id = NewID()
	s.created = now()
	s.seq = 0
	s.ended = false
	s.pinned = true
	s.accessed = true
	s.modified = true
	s.ops = nil
	return old
}

// Fold applies the log ops that follow the snapshot's version, in sequence
// order, and advances the version to the last one. Ops at or below Seq are
// skipped, so folding the same ops again changes nothing. Several ops may
// share one sequence number (one log entry); a log entry is folded whole
// or not at all. It returns how
// many ops were applied. Fold does not record the ops in Ops: they are
// already in the log.
func (s *Session) Fold(ops []Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ended := foldInto(s.values, &s.seq, ops)
	if n > 0 {
		s.advanced = true
	}
	if ended {
		s.endLocked() // logged out elsewhere: the cookie is deleted
	}
	return n
}

// foldInto applies the ops with a sequence above *seq to values in
// sequence order and advances *seq.
// An end op stops the fold: the session is over, and it reports ended.
func foldInto(values map[string]json.RawMessage, seq *uint64, ops []Op) (n int, ended bool) {
	if !slices.IsSortedFunc(ops, cmpSeq) {
		ops = slices.SortedStableFunc(slices.Values(ops), cmpSeq)
	}
	// Ops sharing a sequence number were appended as one log entry (one
	// HTTP request's changes): they are applied together, in order.
	base := *seq
	for _, op := range ops {
		if op.Seq <= base {
			continue
		}
		op.apply(values)
		*seq = op.Seq
		n++
		if op.Type == OpEnd {
			return n, true
		}
	}
	return n, false
}

func cmpSeq(a, b Op) int { return cmp.Compare(a.Seq, b.Seq) }

// Snapshot returns a copy of the session's persistent state: what the
// cookie carries.
func (s *Session) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		ID:        s.id,
		Seq:       s.seq,
		Values:    maps.Clone(s.values),
		Permanent: s.permanent,
		Created:   s.created,
		Pinned:    s.pinned,
	}
}

// Snapshot is the persistent state of a session.
type Snapshot struct {
	ID        string
	Seq       uint64
	Values    map[string]json.RawMessage
	Permanent bool
	Created   time.Time
	// Pinned: the ID is kept even while the session holds no values
	// (a socket may be using it). See Session.EnsureID.
	Pinned bool
}

// FromSnapshot returns a session holding snap, unmodified and not accessed.
func FromSnapshot(snap Snapshot) *Session {
	v := snap.Values
	if v == nil {
		v = map[string]json.RawMessage{}
	}
	return &Session{id: snap.ID, seq: snap.Seq, values: v, permanent: snap.Permanent, created: snap.Created, pinned: snap.Pinned}
}

// Fold applies ops after snap.Seq to a copy of the snapshot's values and
// returns the result; snap itself is not changed.
func (snap Snapshot) Fold(ops []Op) Snapshot {
	out := snap
	out.Values = maps.Clone(snap.Values)
	if out.Values == nil {
		out.Values = map[string]json.RawMessage{}
	}
	foldInto(out.Values, &out.Seq, ops)
	return out
}

// FoldInPlace is Fold on snap itself: ops after snap.Seq are applied to
// snap.Values, not to a copy. It is for a holder that owns the values map
// (a copy of its own, which nothing else reads unsynchronized), and saves
// a copy of the map per fold.
func (snap *Snapshot) FoldInPlace(ops []Op) {
	if snap.Values == nil {
		snap.Values = map[string]json.RawMessage{}
	}
	foldInto(snap.Values, &snap.Seq, ops)
}

// OpType is the kind of a change.
type OpType string

// The op types.
const (
	OpSet    OpType = "set"
	OpDelete OpType = "delete"
	OpClear  OpType = "clear"
	// OpEnd ends the session (logout, hub.End): folding it clears the
	// values and ends the session, so any cookie that folds it, however
	// stale, is deleted. It is written to the log by the server only.
	OpEnd OpType = "end"
)

// Op is one change to a session. Seq is its position in the session's log
// (0 while it is not in a log yet).
type Op struct {
	Seq   uint64          `json:"seq,omitempty"`
	Type  OpType          `json:"type"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// SetOp returns a set op for key with the compacted raw JSON value.
func SetOp(key string, raw json.RawMessage) (Op, error) {
	if err := validKey(key); err != nil {
		return Op{}, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil || buf.Len() == 0 {
		return Op{}, fmt.Errorf("%w: key %q", ErrInvalidValue, key)
	}
	return Op{Type: OpSet, Key: key, Value: buf.Bytes()}, nil
}

func validKey(key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return nil
}

// Validate reports whether op is well formed: a known type, a key for set
// and delete, a valid JSON value for set.
func (op Op) Validate() error {
	if err := op.ValidateDecoded(); err != nil {
		return err
	}
	if op.Type == OpSet && !json.Valid(op.Value) {
		return fmt.Errorf("%w: key %q", ErrInvalidValue, op.Key)
	}
	return nil
}

// ValidateDecoded is Validate for an op read by a JSON decoder, whose
// value, when it has one, is valid JSON already: it checks everything
// else (the type, the key, a set's value present, no key or value on a
// clear or an end) without scanning the value again.
func (op Op) ValidateDecoded() error {
	switch op.Type {
	case OpSet:
		if err := validKey(op.Key); err != nil {
			return err
		}
		if len(op.Value) == 0 {
			return fmt.Errorf("%w: key %q", ErrInvalidValue, op.Key)
		}
	case OpDelete:
		return validKey(op.Key)
	case OpClear, OpEnd:
		if op.Key != "" || op.Value != nil {
			return fmt.Errorf("%w: %s takes no key or value", ErrInvalidOp, op.Type)
		}
	default:
		return fmt.Errorf("%w: type %q", ErrInvalidOp, op.Type)
	}
	return nil
}

func (op Op) apply(values map[string]json.RawMessage) {
	switch op.Type {
	case OpSet:
		values[op.Key] = op.Value
	case OpDelete:
		delete(values, op.Key)
	case OpClear, OpEnd:
		clear(values)
	}
}

// now is the clock of the package; tests do not replace it (codecs and
// stores take their own clock).
func now() time.Time { return time.Now().Truncate(time.Second) }
