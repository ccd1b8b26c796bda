package loadtest_test

import (
	"encoding/json"
	"fmt"

	"github.com/sessionhub/sessionhub/loadtest"
)

// Verify accounts for every acknowledged op: present in the flushed
// session, or superseded by a later op of the same key.
func ExampleVerify() {
	v := loadtest.Verify([]loadtest.SessionLog{{
		Name: "s0",
		Acked: []loadtest.AckedOp{
			{Key: "language", Value: "x-s0-w0-n0", Seq: 10},
			{Key: "language", Value: "x-s0-w1-n0", Seq: 12},
			{Key: "colour", Value: "x-s0-w0-n1", Seq: 14},
		},
		Seqs: map[string]uint64{"x-s0-w0-n0": 10, "x-s0-w1-n0": 12, "x-s0-w0-n1": 14},
		// The final flush lost the colour.
		Final: map[string]json.RawMessage{"language": json.RawMessage(`"x-s0-w1-n0"`)},
	}})
	fmt.Printf("present %d, superseded %d, lost %d\n", v.Present, v.Superseded, v.LostCount)
	for _, op := range v.Lost {
		fmt.Printf("lost %s %s=%s seq %d: %s\n", op.Session, op.Key, op.Value, op.Seq, op.Reason)
	}
	// Output:
	// present 1, superseded 1, lost 1
	// lost s0 colour=x-s0-w0-n1 seq 14: key absent from the final session
}
