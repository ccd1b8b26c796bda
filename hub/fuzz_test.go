package hub

import "testing"

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
