package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// BenchmarkRollupInterleaved measures what nats-server spends on a
// snapshot's rollup (Nats-Rollup: sub) in the hub's stream, against a
// plain append in the same run, when the session's last 64 entries are
// interleaved with those of other sessions written meanwhile: the file
// store drops the rolled-up entries by reading every message between the
// session's first and last in each block, its own and the other sessions'
// alike, so a rollup costs in proportion to the sessions written
// alongside, not to the entries it drops. Compare rollup's and append's
// µs/op per size in one run:
//
//	go test -run NONE -bench RollupInterleaved -benchtime 50x ./hub
func BenchmarkRollupInterleaved(b *testing.B) {
	const perSession = 64 // DefaultSnapshotEvery
	for _, sessions := range []int{10, 100, 1000} {
		h := internalHubWith(b, func(o *Options) { o.SnapshotEvery = -1 }) // the benchmark rolls up
		js, err := h.opts.Conn.JetStream(nats.PublishAsyncMaxPending(4096))
		if err != nil {
			b.Fatal(err)
		}
		payload := make([]byte, 150) // about one set's entry
		subject := func(i int) string { return h.log.opsSubject(fmt.Sprintf("s%05d", i%sessions)) }
		// fill writes perSession entries of every session, interleaved,
		// as sessions written at once land in the stream.
		fill := func(b *testing.B) {
			for range perSession {
				for i := range sessions {
					if _, err := js.PublishAsync(subject(i), payload); err != nil {
						b.Fatal(err)
					}
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("appends unacknowledged")
			}
		}
		publish := func(b *testing.B, i int, rollup bool) {
			m := nats.NewMsg(subject(i))
			m.Data = payload
			if rollup {
				m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
			}
			if _, err := js.PublishMsg(m); err != nil {
				b.Fatal(err)
			}
		}
		for _, kind := range []string{"append", "rollup"} {
			b.Run(fmt.Sprintf("sessions=%d/%s", sessions, kind), func(b *testing.B) {
				fill(b)
				i := 0
				for b.Loop() {
					if i > 0 && i%sessions == 0 {
						// Every session was rolled up once: its entries
						// are written again first.
						b.StopTimer()
						fill(b)
						b.StartTimer()
					}
					publish(b, i, kind == "rollup")
					i++
				}
			})
		}
	}
}
