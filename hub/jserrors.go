package hub

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream error codes the log tells apart: nats.go's named codes, and
// those of nats-server's (jetstream_errors_generated.go) that nats.go does
// not name, under nats-server's names.
const (
	// A conditional append (Nats-Expected-Last-Subject-Sequence) whose
	// subject moved on: 10071 on one node, 10164 on a replicated stream
	// when another write to the subject is in flight.
	jsErrWrongLastSeq         = jetstream.JSErrCodeStreamWrongLastSequence
	jsErrWrongLastSeqConstant = jetstream.JSErrCodeStreamWrongLastSequenceConstant
	jsErrMessageTooLarge      = jetstream.JSErrCodeStreamMessageExceedsMaximum
	// JSStreamStoreFailedF: storing failed, the store's error as the
	// description; with DiscardNewPerSubject, the per-subject limit.
	jsErrStoreFailed jetstream.ErrorCode = 10077
	// Placement and availability: JSClusterNoPeersErrF,
	// JSClusterNotAvailErr, JSClusterNotLeaderErr,
	// JSInsufficientResourcesErr, JSStreamOfflineErr.
	jsErrNoPeers               jetstream.ErrorCode = 10005
	jsErrClusterNotAvailable   jetstream.ErrorCode = 10008
	jsErrClusterNotLeader      jetstream.ErrorCode = 10009
	jsErrInsufficientResources jetstream.ErrorCode = 10023
	jsErrStreamOffline         jetstream.ErrorCode = 10118
)

// Descriptions of a JSStreamStoreFailedF error: nats-server's
// ErrMaxMsgsPerSubject and ErrMsgTooLarge, the errors the store returns.
const (
	storeErrMaxMsgsPerSubject = "maximum messages per subject exceeded"
	storeErrMsgTooLarge       = "message too large"
)

// errEntryTooLarge is too_large for an entry JetStream refused as larger
// than the stream's message limit (Options.MaxEntrySize): the write, not
// the cookie, is too large.
var errEntryTooLarge = Errorf(CodeTooLarge, "the write is larger than one log entry may be")

// errConflict: a conditional append found the log moved on.
var errConflict = errors.New("hub: log moved on since the expected sequence")

// classifyPublish maps a failed JetStream publish to the hub's errors, by
// JetStream's error codes.
func classifyPublish(err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsErrWrongLastSeq, jsErrWrongLastSeqConstant:
			return errConflict
		case jsErrMessageTooLarge:
			return wrapErr(errEntryTooLarge, err)
		case jsErrStoreFailed:
			switch api.Description {
			case storeErrMaxMsgsPerSubject:
				return wrapErr(ErrTooManyPending, err)
			case storeErrMsgTooLarge:
				return wrapErr(errEntryTooLarge, err)
			}
		case jsErrNoPeers, jsErrClusterNotAvailable, jsErrClusterNotLeader, jsErrInsufficientResources, jsErrStreamOffline:
			return wrapErr(ErrUnavailable, err)
		}
		return wrapErr(ErrInternal, err)
	}
	// Timeouts, no responders, a closed or draining connection: NATS or
	// JetStream cannot be reached. The append may or may not have landed;
	// it was not acknowledged.
	return wrapErr(ErrUnavailable, err)
}

// clusterNotReady reports whether err is JetStream saying that its
// cluster cannot place or serve a stream yet: no suitable peers, no meta
// leader, not enough resources while peers join, or its API not
// answering yet.
func clusterNotReady(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return errors.Is(err, nats.ErrNoResponders) // JetStream's API not up yet
	}
	switch api.ErrorCode {
	case jsErrNoPeers, jsErrClusterNotAvailable, jsErrClusterNotLeader, jsErrInsufficientResources:
		return true
	}
	return false
}
