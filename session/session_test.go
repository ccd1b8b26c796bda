package session_test

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

func set(seq uint64, key, value string) session.Op {
	return session.Op{Seq: seq, Type: session.OpSet, Key: key, Value: json.RawMessage(value)}
}

func del(seq uint64, key string) session.Op {
	return session.Op{Seq: seq, Type: session.OpDelete, Key: key}
}

func clr(seq uint64) session.Op { return session.Op{Seq: seq, Type: session.OpClear} }

func vals(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func sameValues(a, b map[string]json.RawMessage) bool {
	return maps.EqualFunc(a, b, func(x, y json.RawMessage) bool { return string(x) == string(y) })
}

// TestFold: ops after the snapshot's version are applied in sequence
// order; folding is deterministic and idempotent.
func TestFold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		start   session.Snapshot
		ops     []session.Op
		want    map[string]json.RawMessage
		wantSeq uint64
		applied int
	}{
		{"no ops", session.Snapshot{Seq: 3, Values: vals("a", "1")}, nil, vals("a", "1"), 3, 0},
		{"set delete clear", session.Snapshot{Values: vals("a", "1", "b", "2")},
			[]session.Op{set(1, "c", "3"), del(2, "a"), set(3, "b", "20")}, vals("b", "20", "c", "3"), 3, 3},
		{"clear then set", session.Snapshot{Values: vals("a", "1")},
			[]session.Op{clr(1), set(2, "z", `"z"`)}, vals("z", `"z"`), 2, 2},
		{"ops at or below Seq skipped", session.Snapshot{Seq: 5, Values: vals("a", "1")},
			[]session.Op{set(4, "a", "4"), set(5, "a", "5"), set(6, "b", "6")}, vals("a", "1", "b", "6"), 6, 1},
		{"unsorted input folded in sequence order", session.Snapshot{},
			[]session.Op{set(3, "a", "3"), set(1, "a", "1"), del(2, "a")}, vals("a", "3"), 3, 3},
		{"unsorted: delete last", session.Snapshot{},
			[]session.Op{del(3, "a"), set(1, "a", "1"), set(2, "a", "2")}, map[string]json.RawMessage{}, 3, 3},
		{"one entry: ops sharing a seq applied in order", session.Snapshot{Seq: 1},
			[]session.Op{set(2, "a", "1"), del(2, "a"), set(2, "b", "2")}, vals("b", "2"), 2, 3},
		{"one entry already folded is skipped whole", session.Snapshot{Seq: 2, Values: vals("k", "0")},
			[]session.Op{set(2, "a", "1"), set(2, "b", "2"), set(3, "c", "3")}, vals("k", "0", "c", "3"), 3, 1},
		{"nil values", session.Snapshot{}, []session.Op{set(1, "a", "1")}, vals("a", "1"), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			orig := tt.start
			origValues := maps.Clone(orig.Values)
			origOps := slices.Clone(tt.ops)

			got := tt.start.Fold(tt.ops)
			if !sameValues(got.Values, tt.want) || got.Seq != tt.wantSeq {
				t.Errorf("Snapshot.Fold = %s at %d, want %s at %d", got.Values, got.Seq, tt.want, tt.wantSeq)
			}
			// Snapshot.Fold does not touch its receiver or the ops.
			if !sameValues(tt.start.Values, origValues) || tt.start.Seq != orig.Seq {
				t.Errorf("Snapshot.Fold changed its receiver: %s at %d", tt.start.Values, tt.start.Seq)
			}
			if !slices.EqualFunc(tt.ops, origOps, sameOp) {
				t.Errorf("Fold reordered its input: %v", tt.ops)
			}
			// Idempotent: folding the same ops again changes nothing.
			again := got.Fold(tt.ops)
			if !sameValues(again.Values, got.Values) || again.Seq != got.Seq {
				t.Errorf("second fold: %s at %d, want %s at %d", again.Values, again.Seq, got.Values, got.Seq)
			}
			// Deterministic: any order of the input gives the same result
			// (ops of one entry keep their relative order).
			if r := tt.start.Fold(reverseEntries(tt.ops)); !sameValues(r.Values, got.Values) || r.Seq != got.Seq {
				t.Errorf("fold of reordered input: %s, want %s", r.Values, got.Values)
			}

			// Session.Fold agrees, counts the applied ops and marks the
			// session advanced only when one was applied.
			s := session.FromSnapshot(session.Snapshot{ID: testID, Seq: orig.Seq, Values: maps.Clone(origValues)})
			if n := s.Fold(tt.ops); n != tt.applied {
				t.Errorf("Session.Fold applied %d, want %d", n, tt.applied)
			}
			if !sameValues(s.Values(), tt.want) || s.Seq() != tt.wantSeq {
				t.Errorf("Session.Fold = %s at %d", s.Values(), s.Seq())
			}
			if s.Advanced() != (tt.applied > 0) {
				t.Errorf("Advanced = %v after applying %d", s.Advanced(), tt.applied)
			}
			if n := s.Fold(tt.ops); n != 0 {
				t.Errorf("second Session.Fold applied %d", n)
			}
			if len(s.Ops()) != 0 || s.Modified() {
				t.Errorf("Fold recorded ops %v / modified %v: they are in the log already", s.Ops(), s.Modified())
			}
		})
	}
}

// reverseEntries returns ops with the log entries (runs of one Seq) in
// reverse order, the ops inside each entry in their order.
func reverseEntries(ops []session.Op) []session.Op {
	var entries [][]session.Op
	for _, op := range ops {
		if n := len(entries); n > 0 && entries[n-1][0].Seq == op.Seq {
			entries[n-1] = append(entries[n-1], op)
			continue
		}
		entries = append(entries, []session.Op{op})
	}
	slices.Reverse(entries)
	return slices.Concat(entries...)
}

func sameOp(a, b session.Op) bool {
	return a.Seq == b.Seq && a.Type == b.Type && a.Key == b.Key && string(a.Value) == string(b.Value)
}

// TestOpValidate: a known type, a key for set and delete, a JSON value for
// set, nothing for clear.
func TestOpValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", session.MaxKeyLength+1)
	tests := []struct {
		name string
		op   session.Op
		want error
	}{
		{"set", set(0, "a", `{"b":1}`), nil},
		{"set null", set(0, "a", `null`), nil},
		{"set longest key", set(0, long[1:], `1`), nil},
		{"delete", del(0, "a"), nil},
		{"clear", clr(0), nil},
		{"set without key", set(0, "", `1`), session.ErrInvalidKey},
		{"set key too long", set(0, long, `1`), session.ErrInvalidKey},
		{"set without value", session.Op{Type: session.OpSet, Key: "a"}, session.ErrInvalidValue},
		{"set invalid JSON", set(0, "a", `{"b":`), session.ErrInvalidValue},
		{"set two values", set(0, "a", `1 2`), session.ErrInvalidValue},
		{"delete without key", del(0, ""), session.ErrInvalidKey},
		{"clear with key", session.Op{Type: session.OpClear, Key: "a"}, session.ErrInvalidOp},
		{"clear with value", session.Op{Type: session.OpClear, Value: json.RawMessage(`1`)}, session.ErrInvalidOp},
		{"unknown type", session.Op{Type: "merge", Key: "a"}, session.ErrInvalidOp},
		{"no type", session.Op{Key: "a"}, session.ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.op.Validate()
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			// Apply validates the same way.
			s := session.New()
			if err := s.Apply(tt.op); (err == nil) != (tt.want == nil) {
				t.Errorf("Apply = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestOpJSON: the wire form of an op.
func TestOpJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]session.Op{set(7, "a", `[1]`), del(0, "b"), clr(0)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"seq":7,"type":"set","key":"a","value":[1]},{"type":"delete","key":"b"},{"type":"clear"}]`
	if string(b) != want {
		t.Errorf("ops marshal to %s, want %s", b, want)
	}
	var back []session.Op
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || !sameOp(back[0], set(7, "a", `[1]`)) || back[2].Validate() != nil {
		t.Errorf("ops unmarshal to %+v", back)
	}
}

// TestSessionValues: Set/Get/Delete/Clear/Apply record ops and flags.
func TestSessionValues(t *testing.T) {
	t.Parallel()
	s := session.New()
	if s.ID() != "" || !s.Empty() || s.Accessed() || s.Modified() {
		t.Fatal("new session is not empty, unaccessed and unmodified")
	}
	if err := s.Set("", 1); !errors.Is(err, session.ErrInvalidKey) {
		t.Errorf("Set with empty key: %v", err)
	}
	if err := s.Set("ch", make(chan int)); !errors.Is(err, session.ErrInvalidValue) {
		t.Errorf("Set of a channel: %v", err)
	}
	if err := s.SetRaw("raw", json.RawMessage(`{bad`)); !errors.Is(err, session.ErrInvalidValue) {
		t.Errorf("SetRaw of invalid JSON: %v", err)
	}
	if s.ID() != "" || s.Modified() {
		t.Error("a refused write changed the session")
	}
	mustSet(t, s, "user", map[string]any{"name": "ada", "roles": []string{"admin"}})
	if err := s.SetRaw("spaced", json.RawMessage(" { \"a\" : 1 } ")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Value("spaced"); string(v) != `{"a":1}` {
		t.Errorf("SetRaw did not compact: %s", v)
	}
	if !session.ValidID(s.ID()) || s.Created().IsZero() || !s.Modified() || !s.Accessed() {
		t.Errorf("first write: id %q created %v modified %v", s.ID(), s.Created(), s.Modified())
	}
	var user struct {
		Name  string
		Roles []string
	}
	if ok, err := s.Get("user", &user); !ok || err != nil || user.Name != "ada" || len(user.Roles) != 1 {
		t.Errorf("Get = %v, %v, %+v", ok, err, user)
	}
	var n int
	if ok, err := s.Get("user", &n); !ok || err == nil {
		t.Errorf("Get into a wrong type = %v, %v", ok, err)
	}
	if ok, err := s.Get("missing", &n); ok || err != nil || n != 0 {
		t.Errorf("Get of a missing key = %v, %v", ok, err)
	}
	if s.GetString("user") != "" {
		t.Error("GetString of an object is not empty")
	}
	if got := s.Keys(); !slices.Equal(got, []string{"spaced", "user"}) || s.Len() != 2 {
		t.Errorf("Keys = %v", got)
	}
	s.Delete("missing")
	s.Delete("spaced")
	if err := s.Apply(session.Op{Seq: 99, Type: session.OpSet, Key: "x", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	s.Clear()
	want := []session.Op{set(0, "user", `{"name":"ada","roles":["admin"]}`), set(0, "spaced", `{"a":1}`), del(0, "spaced"), set(0, "x", `1`), clr(0)}
	if got := s.Ops(); !slices.EqualFunc(got, want, sameOp) {
		t.Errorf("Ops = %+v\nwant %+v", got, want)
	}
	if got := s.TakeOps(); len(got) != len(want) || len(s.Ops()) != 0 {
		t.Errorf("TakeOps returned %d, left %d", len(got), len(s.Ops()))
	}
	if s.Len() != 0 || !s.Empty() {
		t.Error("cleared session is not empty")
	}
	// Values returns a copy.
	mustSet(t, s, "a", 1)
	s.Values()["a"] = json.RawMessage(`2`)
	if v, _ := s.Value("a"); string(v) != "1" {
		t.Error("Values exposes the session's map")
	}
}

// TestEnsureID: the ID is created once and pinned.
func TestEnsureID(t *testing.T) {
	t.Parallel()
	s := session.New()
	id := s.EnsureID()
	if !session.ValidID(id) || s.ID() != id || s.EnsureID() != id {
		t.Fatalf("EnsureID gave %q, then %q", id, s.EnsureID())
	}
	if s.Empty() {
		t.Error("pinned session counts as empty: it would lose its cookie")
	}
	st := newStore(t, session.Options{})
	c := save(t, st, s).cookie
	if c == nil {
		t.Fatal("pinned session wrote no cookie")
	}
	if got := load(t, st, c).ID(); got != id {
		t.Errorf("cookie carries id %q, want %q", got, id)
	}
	// An existing ID is kept.
	s2 := load(t, st, issue(t, st, false, "a", 1))
	old := s2.ID()
	if s2.EnsureID() != old {
		t.Error("EnsureID replaced an existing ID")
	}
}

// TestEnd: End drops the values and the ID; a later write starts a new
// session.
func TestEnd(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	s := load(t, st, issue(t, st, true, "user", "ada"))
	s.Fold([]session.Op{set(3, "theme", `"dark"`)})
	old := s.ID()
	if got := s.End(); got != old {
		t.Errorf("End returned %q, want %q", got, old)
	}
	if !s.Ended() || s.ID() != "" || s.Len() != 0 || s.Seq() != 0 || s.Permanent() || !s.Empty() {
		t.Errorf("after End: ended %v id %q len %d seq %d permanent %v", s.Ended(), s.ID(), s.Len(), s.Seq(), s.Permanent())
	}
	if sv := save(t, st, s); sv.decision != session.Deleted {
		t.Errorf("Save after End: %v", sv.decision)
	}
	id := s.EnsureID()
	if id == old || s.Ended() {
		t.Errorf("EnsureID after End: id %q (old %q), ended %v", id, old, s.Ended())
	}
	if sv := save(t, st, s); sv.decision != session.Written {
		t.Errorf("Save after End and EnsureID: %v", sv.decision)
	}
}

// TestSnapshotRoundTrip: Snapshot and FromSnapshot carry the state, and
// a loaded session is neither accessed nor modified.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	snap := session.Snapshot{ID: testID, Seq: 4, Values: vals("a", "1"), Permanent: true, Created: t0}
	s := session.FromSnapshot(snap)
	if s.Accessed() || s.Modified() || s.Advanced() {
		t.Error("FromSnapshot session is accessed or modified")
	}
	if !sameSnapshot(s.Snapshot(), snap) {
		t.Errorf("Snapshot = %+v, want %+v", s.Snapshot(), snap)
	}
	if !s.Created().Equal(t0) || !s.Permanent() || s.Seq() != 4 || s.ID() != testID {
		t.Error("accessors disagree with the snapshot")
	}
	if s.Accessed() {
		t.Error("reading the ID, seq or flags counts as an access")
	}
	if got := session.FromSnapshot(session.Snapshot{}); got.Len() != 0 {
		t.Error("FromSnapshot of a zero snapshot is not empty")
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		session.NewID():                    true,
		testID:                             true,
		"":                                 false,
		strings.ToUpper(testID):            false,
		testID[:31]:                        false,
		testID + "0":                       false,
		"0123456789abcdef0123456789abcdeg": false,
	} {
		if got := session.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v", id, got)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		id := session.NewID()
		if seen[id] || !session.ValidID(id) {
			t.Fatalf("NewID gave %q (repeated or invalid)", id)
		}
		seen[id] = true
	}
}

// TestConcurrentUse: a Session is safe for concurrent use (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	s := session.New()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := string(rune('a' + g))
				_ = s.Set(key, i)
				s.GetString(key)
				s.Fold([]session.Op{set(uint64(g*100+i+1), "log", "1")})
				_ = st.Fits(s.Snapshot(), set(0, key, "2"))
				if _, err := st.Save(make(map[string][]string), s); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if s.Len() != 5 {
		t.Errorf("%d keys after concurrent writes, want 5", s.Len())
	}
}

// TestFoldEnd: an end op in the log ends the session and stops the fold:
// the cookie is deleted, and ops after it do not revive it.
func TestFoldEnd(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	s := session.New()
	_ = s.Set("user", "ada")
	s.Fold([]session.Op{
		{Seq: 3, Type: session.OpSet, Key: "colour", Value: json.RawMessage(`"red"`)},
		{Seq: 5, Type: session.OpEnd},
		{Seq: 7, Type: session.OpSet, Key: "late", Value: json.RawMessage(`1`)},
	})
	if !s.Ended() || s.Len() != 0 || s.ID() != "" {
		t.Fatalf("after an end op: ended %v, %d values, id %q", s.Ended(), s.Len(), s.ID())
	}
	h := http.Header{}
	if d, _ := st.Save(h, s); d != session.Deleted {
		t.Fatalf("save after an end op: %v, want deleted", d)
	}
	if err := (session.Op{Type: session.OpEnd, Key: "x"}).Validate(); err == nil {
		t.Error("an end op with a key validated")
	}
}
