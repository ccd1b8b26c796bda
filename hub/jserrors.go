package hub

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream error codes the log tells apart.
const (
	jsErrWrongLastSeq = 10071
	jsErrStoreFailed  = 10077 // "maximum messages per subject exceeded" with DiscardNewPerSubject
)

// errConflict: a conditional append found the log moved on.
var errConflict = errors.New("hub: log moved on since the expected sequence")

// classifyPublish maps a failed JetStream publish to the hub's errors.
func classifyPublish(err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == jsErrWrongLastSeq:
			return errConflict
		case strings.Contains(api.Description, "maximum messages per subject"),
			api.ErrorCode == jsErrStoreFailed && strings.Contains(api.Description, "per subject"):
			return wrapErr(ErrTooManyPending, err)
		case strings.Contains(api.Description, "message size exceeds"):
			return wrapErr(ErrTooLarge, err)
		case strings.Contains(api.Description, "insufficient resources"), strings.Contains(api.Description, "no suitable peers"):
			return wrapErr(ErrUnavailable, err)
		}
		return wrapErr(ErrInternal, err)
	}
	// Timeouts, no responders, a closed or draining connection: NATS or
	// JetStream cannot be reached. The append may or may not have landed;
	// it was not acknowledged.
	return wrapErr(ErrUnavailable, err)
}
