package loadtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sessionhub/sessionhub/internal/demo"
)

func str(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		log        SessionLog
		present    int64
		superseded int64
		lost       []string // values lost, in seq order
		reason     string   // substring of the first lost op's reason
	}{
		{
			name: "present",
			log: SessionLog{
				Acked: []AckedOp{{Key: "language", Value: "x-s0-w0-n0", Seq: 3}},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n0")},
			},
			present: 1,
		},
		{
			name: "superseded by a later acknowledged op of the same key",
			log: SessionLog{
				Acked: []AckedOp{
					{Key: "language", Value: "x-s0-w0-n0", Seq: 3},
					{Key: "language", Value: "x-s0-w1-n0", Seq: 7},
				},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w1-n0": 7},
				Final: map[string]json.RawMessage{"language": str("x-s0-w1-n0")},
			},
			present: 1, superseded: 1,
		},
		{
			name: "superseded by an unacknowledged op seen in a change",
			log: SessionLog{
				Acked: []AckedOp{{Key: "language", Value: "x-s0-w0-n0", Seq: 3}},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w0-n1": 9},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n1")},
			},
			superseded: 1,
		},
		{
			name: "superseded by a later write of the same socket in its entry",
			log: SessionLog{
				Acked: []AckedOp{
					{Key: "language", Value: "x-s0-w0-n0", Seq: 3},
					{Key: "language", Value: "x-s0-w0-n1", Seq: 3},
				},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w0-n1": 3},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n1")},
			},
			present: 1, superseded: 1,
		},
		{
			name: "overwritten by an earlier write in its entry: lost",
			log: SessionLog{
				Acked: []AckedOp{
					{Key: "language", Value: "x-s0-w0-n0", Seq: 3},
					{Key: "language", Value: "x-s0-w0-n1", Seq: 3},
				},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w0-n1": 3},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n0")},
			},
			present: 1, lost: []string{"x-s0-w0-n1"}, reason: "before it in the entry at 3",
		},
		{
			name: "overwritten by an older op: lost",
			log: SessionLog{
				Acked: []AckedOp{
					{Key: "language", Value: "x-s0-w0-n0", Seq: 3},
					{Key: "language", Value: "x-s0-w0-n1", Seq: 8},
				},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w0-n1": 8},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n0")},
			},
			present: 1, lost: []string{"x-s0-w0-n1"}, reason: "older sequence 3",
		},
		{
			name: "final value of unknown sequence: lost",
			log: SessionLog{
				Acked: []AckedOp{{Key: "language", Value: "x-s0-w0-n0", Seq: 3}},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n5")},
			},
			lost: []string{"x-s0-w0-n0"}, reason: "no known sequence",
		},
		{
			name: "key absent: lost",
			log: SessionLog{
				Acked: []AckedOp{{Key: "language", Value: "x-s0-w0-n0", Seq: 3}, {Key: "note", Value: "x-s0-w1-n0", Seq: 4}},
				Seqs:  map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w1-n0": 4},
				Final: map[string]json.RawMessage{"language": str("x-s0-w0-n0")},
			},
			present: 1, lost: []string{"x-s0-w1-n0"}, reason: "absent",
		},
		{
			name: "final flush failed: every acknowledged op lost",
			log: SessionLog{
				Acked:    []AckedOp{{Key: "language", Value: "x-s0-w0-n0", Seq: 3}, {Key: "language", Value: "x-s0-w0-n1", Seq: 5}},
				Seqs:     map[string]uint64{"x-s0-w0-n0": 3, "x-s0-w0-n1": 5},
				FlushErr: "flush: status 503",
			},
			lost: []string{"x-s0-w0-n0", "x-s0-w0-n1"}, reason: "final flush failed",
		},
		{
			name: "a value that is not a string",
			log: SessionLog{
				Acked: []AckedOp{{Key: "n", Value: "42", Seq: 3}},
				Seqs:  map[string]uint64{"42": 3},
				Final: map[string]json.RawMessage{"n": json.RawMessage("42")},
			},
			present: 1,
		},
		{
			name: "no ops",
			log:  SessionLog{Final: map[string]json.RawMessage{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.log.Name = "s0"
			v := Verify([]SessionLog{tc.log})
			if v.Present != tc.present || v.Superseded != tc.superseded || v.LostCount != int64(len(tc.lost)) {
				t.Fatalf("present %d superseded %d lost %d, want %d %d %d (%+v)",
					v.Present, v.Superseded, v.LostCount, tc.present, tc.superseded, len(tc.lost), v.Lost)
			}
			if v.Acked != v.Present+v.Superseded+v.LostCount {
				t.Fatalf("acked %d is not present+superseded+lost", v.Acked)
			}
			if v.OK() != (len(tc.lost) == 0) {
				t.Fatalf("OK() = %v with %d lost", v.OK(), len(tc.lost))
			}
			for i, want := range tc.lost {
				if v.Lost[i].Value != want || v.Lost[i].Session != "s0" {
					t.Fatalf("lost[%d] = %+v, want value %s", i, v.Lost[i], want)
				}
			}
			if tc.reason != "" && !strings.Contains(v.Lost[0].Reason, tc.reason) {
				t.Fatalf("reason %q does not say %q", v.Lost[0].Reason, tc.reason)
			}
			if (tc.log.FlushErr != "") != (len(v.Unflushed) == 1) {
				t.Fatalf("unflushed %v with flush error %q", v.Unflushed, tc.log.FlushErr)
			}
		})
	}
}

// Many sessions: the counts add up, the list of lost ops is capped and
// sorted by session then sequence.
func TestVerifyManySessions(t *testing.T) {
	t.Parallel()
	var logs []SessionLog
	for s := 9; s >= 0; s-- {
		sl := SessionLog{Name: fmt.Sprintf("s%d", s), Seqs: map[string]uint64{}, Final: map[string]json.RawMessage{}}
		for n := 50; n > 0; n-- {
			v := opValue(s, 0, n)
			seq := uint64(s*1000 + n)
			sl.Acked = append(sl.Acked, AckedOp{Key: "language", Value: v, Seq: seq})
			sl.Seqs[v] = seq
		}
		// Odd sessions end on their first op: the 49 later ones are lost.
		last := 50
		if s%2 == 1 {
			last = 1
		}
		sl.Final["language"] = str(opValue(s, 0, last))
		logs = append(logs, sl)
	}
	v := Verify(logs)
	if v.Acked != 500 || v.Present != 10 || v.Superseded != 5*49 || v.LostCount != 5*49 {
		t.Fatalf("verdict %+v", v)
	}
	if len(v.Lost) != maxLostListed {
		t.Fatalf("%d lost listed, want the first %d", len(v.Lost), maxLostListed)
	}
	for i := 1; i < len(v.Lost); i++ {
		a, b := v.Lost[i-1], v.Lost[i]
		if a.Session > b.Session || (a.Session == b.Session && a.Seq >= b.Seq) {
			t.Fatalf("lost ops not sorted: %+v then %+v", a, b)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range [][3]int{{0, 0, 0}, {12, 1, 345}, {99999, 7, 9999999}} {
		v := opValue(c[0], c[1], c[2])
		// The demo server's "language" key must accept every value.
		if err := demo.ValidLanguage(str(v)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
		s, w, n, ok := parseValue(str(v))
		if !ok || s != c[0] || w != c[1] || n != c[2] {
			t.Errorf("parseValue(%q) = %d %d %d %v", v, s, w, n, ok)
		}
	}
	for _, bad := range []string{`"x-s1-w2"`, `"x-s1-w2-n"`, `"x-s1-w2-n3-"`, `x-s1-w2-n3`, `"s1-w2-n3"`, `""`, `1`} {
		if _, _, _, ok := parseValue(json.RawMessage(bad)); ok {
			t.Errorf("parseValue(%s) accepted", bad)
		}
	}
}

// Superseded ops must still have reached every socket of the session.
func TestVerifyDelivery(t *testing.T) {
	t.Parallel()
	v := Verify([]SessionLog{{
		Name: "s0", Sockets: 3,
		Acked: []AckedOp{
			{Key: "language", Value: "x-s0-w0-n0", Seq: 1, Reached: 3},
			{Key: "language", Value: "x-s0-w0-n1", Seq: 2, Reached: 2},
			{Key: "language", Value: "x-s0-w0-n2", Seq: 3, Reached: 3},
		},
		Seqs:  map[string]uint64{"x-s0-w0-n0": 1, "x-s0-w0-n1": 2, "x-s0-w0-n2": 3},
		Final: map[string]json.RawMessage{"language": str("x-s0-w0-n2")},
	}})
	if !v.OK() || !v.DeliveryChecked || v.Undelivered != 1 || v.UndeliveredOps[0].Value != "x-s0-w0-n1" {
		t.Fatalf("verdict %+v", v)
	}
	if v := Verify([]SessionLog{{Name: "s0", Acked: []AckedOp{{Key: "k", Value: "v", Seq: 1}},
		Final: map[string]json.RawMessage{"k": str("v")}}}); v.DeliveryChecked || v.Undelivered != 0 {
		t.Fatalf("delivery checked without a socket count: %+v", v)
	}
}
