package session

import (
	"errors"
	"fmt"
)

// Sentinel errors of the session package. Test for them with errors.Is.
var (
	// ErrTooLarge reports that the session cookie (name, value and
	// attributes) would not fit in MaxCookieSize bytes.
	ErrTooLarge = errors.New("session: cookie would exceed the size budget")
	// ErrInvalidValue reports a value that is not valid JSON.
	ErrInvalidValue = errors.New("session: value is not valid JSON")
	// ErrInvalidKey reports an empty key or one longer than MaxKeyLength.
	ErrInvalidKey = errors.New("session: invalid key")
	// ErrInvalidOp reports an op of an unknown type or without a key.
	ErrInvalidOp = errors.New("session: invalid op")
	// ErrNoKeys reports a codec built without any key pair.
	ErrNoKeys = errors.New("session: no keys")
	// ErrBadKey reports a hash key shorter than 32 bytes or a block key
	// that is not 16, 24 or 32 bytes long.
	ErrBadKey = errors.New("session: bad key")
	// ErrInvalidCookie is wrapped by every *DecodeError.
	ErrInvalidCookie = errors.New("session: invalid cookie")
)

// Reason tells why a cookie was not accepted. It is meant to be logged and
// counted (a metric label); it never reaches the client.
type Reason string

// The reasons a cookie is refused. A refused cookie always yields a new,
// empty session: never a panic, never a server error.
const (
	ReasonMissing   Reason = "missing"   // no cookie of that name
	ReasonTampered  Reason = "tampered"  // MAC invalid: forged, other key, other cookie name
	ReasonExpired   Reason = "expired"   // older than the lifetime or the absolute timeout
	ReasonFuture    Reason = "future"    // issued in the future (clock skew beyond the allowance)
	ReasonMalformed Reason = "malformed" // signed but the payload cannot be decoded
	ReasonTooLong   Reason = "too_long"  // longer than any cookie this codec writes
)

// DecodeError is returned by Codec.Decode and Store.Load when a cookie is
// refused. It wraps ErrInvalidCookie.
type DecodeError struct {
	Reason Reason
	Err    error // the underlying cause, if any
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("session: cookie refused: %s", e.Reason)
	}
	return fmt.Sprintf("session: cookie refused: %s: %v", e.Reason, e.Err)
}

// Unwrap returns ErrInvalidCookie and the cause.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidCookie}
	}
	return []error{ErrInvalidCookie, e.Err}
}

// ReasonOf returns the Reason carried by err, or "" when err is not a
// *DecodeError.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}
