package hub

import (
	"fmt"
	"testing"
)

// FuzzDecodeEntry: log entries read back from JetStream never panic the
// hub; whatever decodes is a list of valid ops.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`[{"type":"set","key":"a","value":1},{"type":"delete","key":"b"},{"type":"clear"}]`), uint64(7))
	f.Add([]byte(`[{"type":"set","key":"a"}]`), uint64(1))
	f.Add([]byte(`{}`), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		ops, err := decodeEntry(b, seq)
		if err != nil {
			return
		}
		for _, op := range ops {
			if op.Seq != seq || op.Validate() != nil {
				t.Fatalf("decoded invalid op %+v", op)
			}
		}
	})
}

// FuzzPubAck: JetStream's acknowledgement of an asynchronous append is
// read as encoding/json reads it (jsonPubAck), whether or not it has the
// usual shape that fastPubAck reads by hand.
func FuzzPubAck(f *testing.F) {
	for _, s := range []string{
		`{"stream":"SESSIONHUB","seq":42}`,
		`{"stream":"SESSIONHUB","seq":0}`,
		`{"stream":"SESSIONHUB","seq":18446744073709551615}`,
		`{"stream":"SESSIONHUB","seq":18446744073709551616}`,
		`{"stream":"SESSIONHUB","seq":042}`,
		`{"stream":"SESSIONHUB","seq":-1}`,
		`{"stream":"","seq":5}`,
		`{"stream":"S\"H","seq":5}`,
		`{"stream":"S\\H","seq":5}`,
		`{"stream":"S","seq":5,"duplicate":true}`,
		`{"stream":"S","domain":"hub","seq":5}`,
		`{ "stream":"S","seq":5}`,
		`{"error":{"code":503,"err_code":10077,"description":"maximum messages per subject exceeded"},"stream":"S","seq":0}`,
		`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 4"}}`,
		`{"stream":"S","seq":5}}`,
		`{"stream":"S","seq":}`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := parsePubAck(b)
		want, wantErr := jsonPubAck(b)
		if seq != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("parsePubAck(%q) = %d, %v; encoding/json reads %d, %v", b, seq, err, want, wantErr)
		}
		if fast, ok := fastPubAck(b); ok && (wantErr != nil || fast != want) {
			t.Fatalf("fastPubAck(%q) = %d; encoding/json reads %d, %v", b, fast, want, wantErr)
		}
	})
}
