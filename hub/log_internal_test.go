package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/session"
)

// classifyPublish tells JetStream's errors apart by their codes.
func TestClassifyPublish(t *testing.T) {
	t.Parallel()
	api := func(code jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: desc})
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{api(10071, "wrong last sequence: 7"), errConflict},
		{api(10164, "wrong last sequence"), errConflict},
		{api(10077, "maximum messages per subject exceeded"), ErrTooManyPending},
		{api(10077, "message too large"), ErrTooLarge},
		{api(10054, "message size exceeds maximum allowed"), ErrTooLarge},
		{api(10023, "insufficient resources"), ErrUnavailable},
		{api(10005, "no suitable peers for placement"), ErrUnavailable},
		{api(10008, "JetStream system temporarily unavailable"), ErrUnavailable},
		{api(10077, "i/o error"), ErrInternal},
		{api(10999, "wrong last sequence"), ErrInternal}, // a description alone decides nothing
		{context.DeadlineExceeded, ErrUnavailable},
	} {
		if got := classifyPublish(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A synchronous append (a bridge write, a staged socket write, a
// snapshot) reads JetStream's acknowledgement as the pipeline does
// (parsePubAck), not by reflection: the round trip, nats.go's reader and
// the republished entry's dispatch included, allocates 47 times (53
// under the race detector), and at most appendAllocs. Through the
// jetstream package's PublishMsg, whose encoding/json read of the
// acknowledgement allocates on its own, it took 61 (67).
func TestSyncAppendAllocations(t *testing.T) {
	const appendAllocs = 58
	h := internalHub(t)
	ctx := context.Background()
	id := session.NewID()
	set := []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`1`)}}
	if _, err := h.log.append(ctx, id, SourceHTTP, nil, set); err != nil {
		t.Fatal(err)
	}
	// The least of three runs: AllocsPerRun counts the whole process's,
	// and another test's goroutines winding down may allocate meanwhile.
	var err error
	allocs := math.Inf(1)
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(200, func() {
			if err == nil {
				_, err = h.log.append(ctx, id, SourceHTTP, nil, set)
			}
		}))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.1f allocations per append", allocs)
	if allocs > appendAllocs {
		t.Errorf("%.1f allocations per synchronous append, want at most %d", allocs, appendAllocs)
	}
}
