package session

import (
	"fmt"
	"time"
)

// lifetime holds the time rules every cookie codec applies: a cookie
// issued longer ago than maxAge is expired, one issued more than skew in
// the future is refused, and a session created longer ago than absolute
// (when set) is over however often its cookie was re-issued.
type lifetime struct {
	maxAge   time.Duration
	absolute time.Duration
	skew     time.Duration
	now      func() time.Time
}

func newLifetime(maxAge, absolute, skew time.Duration, now func() time.Time) lifetime {
	if maxAge <= 0 {
		maxAge = DefaultLifetime
	}
	if now == nil {
		now = time.Now
	}
	return lifetime{maxAge: maxAge, absolute: absolute, skew: skew, now: now}
}

// checkIssued refuses a cookie issued at issued as future or expired.
func (l lifetime) checkIssued(issued, now time.Time) error {
	switch {
	case issued.After(now.Add(l.skew)):
		return &DecodeError{Reason: ReasonFuture, Err: fmt.Errorf("issued %s, now %s", issued.UTC(), now.UTC())}
	case now.Sub(issued) > l.maxAge:
		return &DecodeError{Reason: ReasonExpired, Err: fmt.Errorf("issued %s", issued.UTC())}
	}
	return nil
}

// checkCreated refuses a session created at created past the absolute
// timeout.
func (l lifetime) checkCreated(created, now time.Time) error {
	if l.absolute > 0 && now.Sub(created) > l.absolute {
		return &DecodeError{Reason: ReasonExpired, Err: fmt.Errorf("absolute timeout: created %s", created.UTC())}
	}
	return nil
}
