package loadtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// AckedOp is a set op the hub acknowledged: the key, the unique value and
// the log sequence of the ack.
type AckedOp struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Seq   uint64 `json:"seq"`
	// Reached is how many sockets of the session received the op as a
	// change (live or replayed on resume).
	Reached int `json:"reached,omitempty"`
}

// SessionLog is what the load generator knows of one session once the
// load stopped: the acknowledged ops, the sequence of every op whose
// sequence it learnt (from an ack or a change message), and the values of
// the session's final flush.
type SessionLog struct {
	Name  string
	Acked []AckedOp
	// Seqs maps an op's unique value to its log sequence, for every op
	// acknowledged or seen in a change: unacknowledged ops (an
	// unavailable error, a dropped connection) may have landed, and may
	// supersede acknowledged ones.
	Seqs map[string]uint64
	// Final holds the values of the final POST /hub/flush; FlushErr is
	// set when it failed, and then every acknowledged op counts as lost.
	Final    map[string]json.RawMessage
	FlushErr string
	// Sockets is how many sockets the session had: every acknowledged op
	// should reach each of them as a change. 0 skips that check.
	Sockets int
}

// Verdict is the zero-loss check: every acknowledged op must be present
// in its session's final flush, or superseded by an op of the same key
// with a higher sequence.
type Verdict struct {
	Sessions   int   `json:"sessions"`
	Acked      int64 `json:"acked"`
	Present    int64 `json:"present"`
	Superseded int64 `json:"superseded"`
	LostCount  int64 `json:"lost"`
	// Lost lists the first lost ops (at most maxLostListed).
	Lost []LostOp `json:"lost_ops,omitempty"`
	// Unflushed names the sessions whose final flush failed.
	Unflushed []string `json:"unflushed,omitempty"`
	// Undelivered counts the acknowledged ops that did not reach every
	// socket of their session as a change, live or on resume: with one
	// key per session most ops are superseded, and this checks that each
	// of them is in the log nonetheless. It is reported, not counted as
	// lost: the loss verdict is the folded session's.
	Undelivered     int64     `json:"undelivered"`
	UndeliveredOps  []AckedOp `json:"undelivered_ops,omitempty"`
	DeliveryChecked bool      `json:"delivery_checked"`
}

// LostOp is an acknowledged op the final session does not account for.
type LostOp struct {
	Session string `json:"session"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	Seq     uint64 `json:"seq"`
	Reason  string `json:"reason"`
}

const maxLostListed = 100

// OK reports whether no acknowledged op was lost.
func (v *Verdict) OK() bool { return v.LostCount == 0 }

// Verify checks every acknowledged op of every session against the
// session's final values.
func Verify(logs []SessionLog) Verdict {
	var v Verdict
	v.Sessions = len(logs)
	for i := range logs {
		verifySession(&v, &logs[i])
	}
	slices.SortFunc(v.Lost, func(a, b LostOp) int {
		return cmp.Or(cmp.Compare(a.Session, b.Session), cmp.Compare(a.Seq, b.Seq))
	})
	return v
}

func verifySession(v *Verdict, sl *SessionLog) {
	v.Acked += int64(len(sl.Acked))
	if sl.FlushErr != "" {
		v.Unflushed = append(v.Unflushed, sl.Name)
	}
	final := make(map[string]string, len(sl.Final))
	for k, raw := range sl.Final {
		final[k] = rawString(raw)
	}
	for _, op := range sl.Acked {
		if sl.Sockets > 0 {
			v.DeliveryChecked = true
			if op.Reached < sl.Sockets {
				v.Undelivered++
				if len(v.UndeliveredOps) < maxLostListed {
					v.UndeliveredOps = append(v.UndeliveredOps, op)
				}
			}
		}
		reason := ""
		switch f, ok := final[op.Key]; {
		case sl.FlushErr != "":
			reason = "final flush failed: " + sl.FlushErr
		case !ok:
			reason = "key absent from the final session"
		case f == op.Value:
			v.Present++
		default:
			fs, known := sl.Seqs[f]
			switch {
			case !known:
				reason = fmt.Sprintf("final value %q has no known sequence", f)
			case fs > op.Seq, fs == op.Seq && laterInEntry(f, op.Value):
				v.Superseded++
			case fs == op.Seq:
				reason = fmt.Sprintf("final value %q was written before it in the entry at %d", f, fs)
			default:
				reason = fmt.Sprintf("final value %q has the older sequence %d", f, fs)
			}
		}
		if reason == "" {
			continue
		}
		v.LostCount++
		if len(v.Lost) < maxLostListed {
			v.Lost = append(v.Lost, LostOp{Session: sl.Name, Key: op.Key, Value: op.Value, Seq: op.Seq, Reason: reason})
		}
	}
}

// laterInEntry reports whether the op that wrote value f was written
// after the one that wrote value op by the same socket: a socket's writes
// batched into one log entry share its sequence, and the later one wins.
func laterInEntry(f, op string) bool {
	fs, fw, fn, ok1 := parseValue(strconv.AppendQuote(nil, f))
	os, ow, on, ok2 := parseValue(strconv.AppendQuote(nil, op))
	return ok1 && ok2 && fs == os && fw == ow && fn > on
}

// rawString returns the string a JSON string holds, or the raw JSON text
// of anything else.
func rawString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
