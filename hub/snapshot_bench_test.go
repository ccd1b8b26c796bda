package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// BenchmarkFoldLongLog measures what a cold instance reads from JetStream
// to fold a cookie of a session written 2,000 times: the session's first
// cookie (seq 0) against its latest one, with snapshots (the default) and
// without. With snapshots the first cookie's read is one snapshot and a
// short tail, so "first" costs about what "fresh" does; without them it
// reads the whole log. Compare the pairs' ns/op and entries/op in one run:
//
//	go test -run NONE -bench FoldLongLog -benchtime 200x ./hub
func BenchmarkFoldLongLog(b *testing.B) {
	for _, every := range []int{0, -1} {
		name := "snapshots"
		if every < 0 {
			name = "no-snapshots"
		}
		b.Run(name, func(b *testing.B) {
			h := internalHubWith(b, func(o *Options) { o.SnapshotEvery = every })
			ctx := context.Background()
			id := session.NewID()
			var last uint64
			for i := range 2000 {
				op, _ := session.SetOp(fmt.Sprintf("k%d", i%20), []byte(fmt.Sprintf("%d", i)))
				seq, err := h.Write(ctx, id, op)
				if err != nil {
					b.Fatal(err)
				}
				last = seq
			}
			time.Sleep(100 * time.Millisecond) // let the last compaction land
			for _, from := range []struct {
				name  string
				after uint64
			}{{"first", 0}, {"fresh", last - 1}} {
				b.Run(from.name, func(b *testing.B) {
					b.ReportAllocs()
					n := 0
					for b.Loop() {
						entries, err := h.log.fetch(ctx, id, from.after, 0)
						if err != nil {
							b.Fatal(err)
						}
						n += len(entries)
					}
					b.ReportMetric(float64(n)/float64(b.N), "entries/op")
				})
			}
		})
	}
}
