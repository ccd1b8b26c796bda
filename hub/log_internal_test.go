package hub

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
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
