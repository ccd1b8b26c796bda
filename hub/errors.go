package hub

import (
	"errors"
	"fmt"

	"github.com/sessionhub/sessionhub/internal/protocol"
)

// Code is a wire error code: the "code" of an error message, and the
// reason an operation of the Go API failed. The set is closed;
// docs/PROTOCOL.md lists it with the HTTP status of each.
type Code = protocol.Code

// The error codes.
const (
	CodeInvalid        = protocol.CodeInvalid        // bad JSON, unknown type, missing or bad field
	CodeForbidden      = protocol.CodeForbidden      // the key is not client-writable, or its validator refused the value
	CodeTooLarge       = protocol.CodeTooLarge       // the session cookie would no longer fit
	CodeTooManyPending = protocol.CodeTooManyPending // the session's log is full
	CodeRateLimited    = protocol.CodeRateLimited    // the client sends faster than its rate limit
	CodeUnavailable    = protocol.CodeUnavailable    // NATS or JetStream is unreachable: nothing was staged
	CodeNotFound       = protocol.CodeNotFound       // no handler for the event
	CodeInternal       = protocol.CodeInternal       // anything else; details are logged, never sent
)

// Sentinel errors of the hub. Each maps to one Code (see CodeOf).
var (
	ErrInvalid        = sentinel(CodeInvalid)
	ErrForbidden      = sentinel(CodeForbidden)
	ErrTooLarge       = sentinel(CodeTooLarge)
	ErrTooManyPending = sentinel(CodeTooManyPending)
	ErrRateLimited    = sentinel(CodeRateLimited)
	ErrUnavailable    = sentinel(CodeUnavailable)
	ErrNotFound       = sentinel(CodeNotFound)
	ErrInternal       = sentinel(CodeInternal)

	// ErrClosed is returned by operations on a closed Hub.
	ErrClosed = errors.New("hub: closed")
)

func sentinel(code Code) *Error {
	return &Error{Code: code, Message: protocol.Info(code).Message}
}

// Error is an error with a wire code. Its Message is shown to the client,
// so it never carries internal details; Err, the cause, is only logged.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("hub: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("hub: %s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same code, so that
// errors.Is(err, hub.ErrForbidden) holds for every forbidden error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an error of code with a client-visible message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func wrapErr(base *Error, cause error) *Error {
	return &Error{Code: base.Code, Message: base.Message, Err: cause}
}

// CodeOf returns the wire code of err: the code of an *Error in its
// chain, CodeInternal for anything else.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// publicError returns the code and the client-visible message of err.
// Internal errors get a generic message; their details are for the log.
func publicError(err error) (Code, string) {
	var e *Error
	if errors.As(err, &e) && e.Code != CodeInternal {
		return e.Code, e.Message
	}
	var d *protocol.DecodeError
	if errors.As(err, &d) {
		return CodeInvalid, d.Message
	}
	return CodeInternal, ErrInternal.Message
}
