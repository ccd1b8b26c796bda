package session

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// quotedLen and rawLen are json.Marshal's lengths, on any string and any
// valid JSON value.
func FuzzJSONLen(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\"\\\n\r\t\b\f\x01\x1f", "é", "\u2028\u2029", "\xff\xfe", "a\xe2\x80", `{"a": [1, "x\"<y"]}`, " [ true , null ] ", `"\u2028"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := quotedLen(s); got != len(want) {
			t.Fatalf("quotedLen(%q) = %d, json.Marshal writes %d", s, got, len(want))
		}
		if !json.Valid([]byte(s)) {
			return
		}
		want, err := json.Marshal(json.RawMessage(s))
		if err != nil {
			t.Fatal(err)
		}
		if got := rawLen(json.RawMessage(s)); got != len(want) {
			t.Fatalf("rawLen(%q) = %d, json.Marshal writes %d (%s)", s, got, len(want), want)
		}
	})
}

// Size, which measures without folding, gives the length of the cookie
// of the folded session, for random sessions and ops of every kind, in
// and out of order, some already folded.
func TestSizeMatchesFoldedCookie(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	st, err := NewStore(&Options{Keys: []KeyPair{GenerateKeyPair(true)}})
	if err != nil {
		t.Fatal(err)
	}
	flask, err := NewStore(&Options{FlaskSecrets: [][]byte{[]byte("flask secret")}})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "b<", "c\u2028", "d\n", "é", "f", "g", "h", "i", "j"} // more than a Sizer's array
	value := func() json.RawMessage {
		v, _ := json.Marshal(map[string]any{"s": string(rune(rng.IntN(0x3000))) + "<&>", "n": rng.IntN(1000), "l": []int{rng.IntN(9)}})
		return v
	}
	for i := range 3000 {
		snap := Snapshot{ID: NewID(), Seq: uint64(rng.IntN(50)), Permanent: i%3 == 0, Pinned: i%5 == 0, Values: map[string]json.RawMessage{}}
		if i%7 == 0 {
			snap.ID = "" // a new session: Size counts the ID it will get
		}
		for _, k := range keys {
			if rng.IntN(2) == 0 {
				snap.Values[k] = value()
			}
		}
		if i%11 == 0 {
			snap.Values = nil
		}
		var ops []Op
		for range rng.IntN(10) {
			op := Op{Seq: uint64(rng.IntN(80)), Key: keys[rng.IntN(len(keys))]}
			switch n := rng.IntN(20); {
			case n < 11:
				op.Type, op.Value = OpSet, value()
			case n < 17:
				op.Type = OpDelete
			case n < 19:
				op.Type, op.Key = OpClear, ""
			default:
				op.Type, op.Key = OpEnd, ""
			}
			if rng.IntN(4) == 0 {
				op.Seq = 0 // staged: after everything
			}
			ops = append(ops, op)
		}
		got, err := st.Size(snap, ops...)
		if err != nil {
			t.Fatal(err)
		}
		// The reference: fold, then measure the real cookie.
		staged := make([]Op, len(ops))
		for j, op := range ops {
			if op.Seq == 0 {
				op.Seq = 1<<64 - 1
			}
			staged[j] = op
		}
		ref := snap
		ref.Values = maps.Clone(snap.Values)
		ref = ref.Fold(staged)
		if ref.ID == "" {
			ref.ID, ref.Created = NewID(), now() // as Save gives a new session
		}
		want, err := st.cookieLen(ref)
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.Cookie(ref)
		if err == nil && len(c.String()) != want {
			t.Fatalf("case %d: cookieLen %d, the real cookie %d", i, want, len(c.String()))
		}
		if got != want {
			t.Fatalf("case %d: Size %d, the folded session's cookie %d (snap %v, ops %s)", i, got, want, snap, fmt.Sprint(ops))
		}
		if i%5 == 0 {
			checkSizer(t, i, st, snap, staged)
		}
		if i%25 == 0 { // Flask compresses: slower
			checkSizer(t, i, flask, snap, staged)
		}
	}
}

// checkSizer folds ops (staged) into a Sizer one by one, in sequence
// order, and holds each step to Store.Size and Snapshot.Fold: the measure
// so far, and the length each key's value has.
func checkSizer(t *testing.T, i int, st *Store, snap Snapshot, staged []Op) {
	t.Helper()
	if snap.Created.IsZero() {
		// A new session is measured with the time of the measure, which
		// Flask's compression may take a byte more or less to write.
		snap.Created = time.Unix(1_780_000_000, 0)
	}
	sorted := slices.SortedStableFunc(slices.Values(staged), cmpSeq)
	z := st.NewSizer(snap)
	for j, op := range sorted {
		n := -1
		if j%2 == 0 && op.Type == OpSet {
			n = rawLen(op.Value) // known to the caller
		}
		z.Fold(op, n)
		want, err := st.Size(snap, sorted[:j+1]...)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := z.Size(); err != nil || got != want {
			t.Fatalf("case %d, op %d (%T): Sizer %d, %v; Size %d", i, j, st.codec, got, err, want)
		}
		folded := snap.Fold(sorted[:j+1])
		for k, v := range folded.Values {
			if got := z.Held(k); got != rawLen(v) {
				t.Fatalf("case %d, op %d: Held(%q) = %d, the folded value %d", i, j, k, got, rawLen(v))
			}
		}
		if got := z.Held(op.Key); folded.Values[op.Key] == nil && got != 0 {
			t.Fatalf("case %d, op %d: Held(%q) = %d for a key the session does not hold", i, j, op.Key, got)
		}
	}
}

// A Sizer measures without allocating: the cookie budget of every
// pipelined write measures one.
func TestSizerSizeAllocatesNothing(t *testing.T) {
	st, err := NewStore(&Options{Keys: []KeyPair{GenerateKeyPair(false)}})
	if err != nil {
		t.Fatal(err)
	}
	snap := Snapshot{ID: NewID(), Seq: 123456789, Values: map[string]json.RawMessage{"theme": json.RawMessage(`"dark"`)}, Created: time.Now()}
	z := st.NewSizer(snap)
	z.Fold(Op{Seq: 123456790, Type: OpSet, Key: "language", Value: json.RawMessage(`"pt-BR"`)}, -1)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := z.Size(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Size allocates %v times", n)
	}
}

// SizeBound bounds the size a session measured with a staged op can reach
// by the ops folded since, GrowthBound summed over them, whatever they
// are: the cookie budget skips measuring a write while the bound stays
// far from it. A Flask session's is not bounded.
func TestSizeBound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	keys := []string{"a", "b<", "c\u2028", "d\n", "é", "f", "g", "h", "i", "j\"\\"}
	value := func() json.RawMessage {
		v, _ := json.Marshal(map[string]any{"s": strings.Repeat(string(rune(rng.IntN(0x3000)))+"<&>", rng.IntN(40)), "n": rng.IntN(1 << 20)})
		return v
	}
	op := func() Op {
		o := Op{Key: keys[rng.IntN(len(keys))]} // Seq 0: staged, as writes in flight are measured
		switch n := rng.IntN(20); {
		case n < 14:
			o.Type, o.Value = OpSet, value()
		case n < 19:
			o.Type = OpDelete
		default:
			o.Type, o.Key = OpClear, ""
		}
		return o
	}
	tight := 0
	for _, encrypt := range []bool{false, true} {
		st, err := NewStore(&Options{Keys: []KeyPair{GenerateKeyPair(encrypt)}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			snap := Snapshot{ID: NewID(), Seq: uint64(rng.IntN(50)), Permanent: i%3 == 0, Created: time.Unix(1_780_000_000, 0)}
			if i%4 != 0 {
				snap.Values = map[string]json.RawMessage{}
				for _, k := range keys[:rng.IntN(len(keys))] {
					snap.Values[k] = value()
				}
			}
			ops := []Op{op()}
			for range rng.IntN(12) {
				ops = append(ops, op())
			}
			at := 1 + rng.IntN(len(ops)) // measured with ops[:at], at least one staged
			n, err := st.Size(snap, ops[:at]...)
			if err != nil {
				t.Fatal(err)
			}
			grown := 0
			for _, o := range ops[at:] {
				grown += GrowthBound(o, -1)
			}
			bound, ok := st.SizeBound(n, grown)
			after, err := st.Size(snap, ops...)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || after > bound {
				t.Fatalf("encrypt %v, case %d: measured %d with %d ops, %d after %d more (grown at most %d); bound %d, %v", encrypt, i, n, at, after, len(ops)-at, grown, bound, ok)
			}
			if after == bound {
				tight++
			}
		}
	}
	t.Logf("%d of 4000 bounds reached exactly", tight)
	flask, err := NewStore(&Options{FlaskSecrets: [][]byte{[]byte("flask secret")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := flask.SizeBound(100, 10); ok {
		t.Error("a Flask session's size bounded")
	}
}
