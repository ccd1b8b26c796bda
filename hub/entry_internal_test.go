package hub

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// A socket's write is encoded into its log entry, and an entry into its
// change message, in one allocation each: the buffer, sized up front, at
// any sequence and whether the client may read the entry's keys or not.
func TestEntryEncodingAllocatesOnce(t *testing.T) {
	h := internalHubWith(t, func(o *Options) {
		o.ClientKeys = map[string]KeyPolicy{"colour": {Read: true}}
	})
	value := json.RawMessage(`"a fairly long value, longer than the first guesses of append"`)
	ops := []session.Op{{Type: session.OpSet, Key: "colour", Value: value}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := encodeEntry(ops); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("encodeEntry allocates %v times", n)
	}
	hidden := []session.Op{{Type: session.OpSet, Key: "user_id", Value: value}}
	for _, e := range []entry{
		{Seq: 42, Ops: ops, Source: SourceWS},
		{Seq: math.MaxUint64, Ops: ops, Source: SourceWS},
		{Seq: math.MaxUint64, Ops: hidden, Source: SourceHTTP}, // "ops":[]
	} {
		var msg []byte
		if n := testing.AllocsPerRun(100, func() { msg = h.changeMessage(e) }); n != 1 {
			t.Errorf("changeMessage allocates %v times for %s", n, msg)
		}
	}
}
