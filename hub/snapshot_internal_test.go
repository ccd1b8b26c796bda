package hub

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// A snapshot's ops, applied at any version below it, give the values the
// entries it replaces give: on any starting values (a cookie may hold
// keys written while NATS was down, or ops that aged out), after any
// prefix of those entries (a stale cookie folded some of them already).
func TestCompactOpsEquivalent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "b", "c", "d"}
	randomOp := func() session.Op {
		k := keys[r.IntN(len(keys))]
		switch n := r.IntN(10); {
		case n < 6:
			return session.Op{Type: session.OpSet, Key: k, Value: json.RawMessage(fmt.Sprintf("%d", r.IntN(100)))}
		case n < 9:
			return session.Op{Type: session.OpDelete, Key: k}
		default:
			return session.Op{Type: session.OpClear}
		}
	}
	for i := range 5000 {
		ops := make([]session.Op, r.IntN(12))
		for j := range ops {
			ops[j] = randomOp()
			ops[j].Seq = uint64(j + 1)
		}
		base := map[string]json.RawMessage{}
		for _, k := range keys {
			if r.IntN(2) == 0 {
				base[k] = json.RawMessage(`"old"`)
			}
		}
		prefix := r.IntN(len(ops) + 1)
		want := session.Snapshot{Values: maps.Clone(base)}.Fold(ops)

		compact, ok := compactOps(ops)
		if !ok {
			t.Fatal("no end op, but compactOps refused")
		}
		snapSeq := uint64(len(ops) + 1)
		for j := range compact {
			compact[j].Seq = snapSeq
		}
		// A reader that folded the first prefix entries, then the snapshot.
		got := session.Snapshot{Values: maps.Clone(base)}.Fold(ops[:prefix]).Fold(compact)
		if !maps.EqualFunc(got.Values, want.Values, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Fatalf("case %d: ops %v, base %v, prefix %d: snapshot %v gives %v, the entries give %v", i, ops, base, prefix, compact, got.Values, want.Values)
		}
		// And a snapshot of a snapshot and more entries is one too.
		more := []session.Op{randomOp(), randomOp()}
		for j := range more {
			more[j].Seq = snapSeq + uint64(j) + 1
		}
		again, _ := compactOps(append(append([]session.Op(nil), compact...), more...))
		for j := range again {
			again[j].Seq = snapSeq + 10
		}
		want2 := want.Fold(more)
		got2 := session.Snapshot{Values: maps.Clone(base)}.Fold(ops[:prefix]).Fold(again)
		if !maps.EqualFunc(got2.Values, want2.Values, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Fatalf("case %d: second snapshot %v gives %v, want %v", i, again, got2.Values, want2.Values)
		}
	}
}

func TestCompactOpsRefusesEnd(t *testing.T) {
	ops := []session.Op{{Seq: 1, Type: session.OpSet, Key: "a", Value: json.RawMessage(`1`)}, {Seq: 2, Type: session.OpEnd}, {Seq: 3, Type: session.OpSet, Key: "a", Value: json.RawMessage(`2`)}}
	if _, ok := compactOps(ops); ok {
		t.Fatal("a log with an end op was compacted: a stale cookie would no longer fold the logout")
	}
}
