package hub

import (
	"encoding/json"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// A socket's write is encoded into its log entry, and an entry into its
// change message, in one allocation each: the buffer, sized up front.
func TestEntryEncodingAllocatesOnce(t *testing.T) {
	h := internalHub(t)
	ops := []session.Op{{Type: session.OpSet, Key: "colour", Value: json.RawMessage(`"a fairly long value, longer than the first guesses of append"`)}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := encodeEntry(ops); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("encodeEntry allocates %v times", n)
	}
	e := entry{Seq: 42, Ops: ops, Source: SourceWS}
	if n := testing.AllocsPerRun(100, func() { h.changeMessage(e) }); n != 1 {
		t.Errorf("changeMessage allocates %v times", n)
	}
}
