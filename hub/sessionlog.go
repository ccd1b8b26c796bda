package hub

import (
	"context"
	"errors"
	"time"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

// stage appends ops to session id's log as one entry and returns its
// sequence once JetStream acknowledged it.
func (h *Hub) stage(ctx context.Context, id, source string, expect *uint64, ops []session.Op) (uint64, error) {
	if h.closing.Load() {
		return 0, wrapErr(ErrUnavailable, ErrClosed)
	}
	v := h.lookup(id)
	start := time.Now()
	within, written := v.admits(ops, start)
	if !within {
		return 0, h.errSessionBudget()
	}
	seq, err := h.appendCompacting(ctx, id, source, expect, ops)
	if err != nil {
		return 0, err
	}
	h.opts.Metrics.Staged(source, time.Since(start))
	h.acked(id, start, seq)
	if !written {
		h.wake(id)
	}
	h.snapshotLater(id)
	return seq, nil
}

// admits reports, in one hold of the view's lock, whether the session
// may append another entry (within): its view on this instance (every
// socket and request of it has one) holds a token of the session's
// write budget; an end op always may; a session without a view here
// (Hub.Write from server code) is not metered. And whether the session's
// log is known to hold an entry at now (written), so that no socket of
// it can be lazy (lazy.go) and an append needs no wake: the view saw an
// entry written less than Retention/2 ago.
func (v *view) admits(ops []session.Op, now time.Time) (within, written bool) {
	if v == nil {
		return true, false
	}
	end := false
	for _, op := range ops {
		end = end || op.Type == session.OpEnd
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	within = end || v.budget.TokensAt(now) >= 1
	return within, v.writtenLocked(now)
}

// writtenLocked reports whether the session's log is known to hold an
// entry at now (admits). Called with v.mu held.
func (v *view) writtenLocked(now time.Time) bool {
	return !v.fresh.IsZero() && now.Sub(v.fresh) < v.h.opts.Retention/2
}

// ackedLocked records an entry of the session this instance appended at
// (or just after) at and JetStream acknowledged at seq: the view's
// freshest write, and one that reads through this instance wait for
// (read your writes). A zero at records only seq. Called with v.mu held.
func (v *view) ackedLocked(at time.Time, seq uint64) {
	if at.After(v.fresh) {
		v.fresh = at
	}
	v.want = max(v.want, seq)
}

// appendCompacting appends ops to session id's log; when the log is full
// it compacts it and appends again. A full log takes no more appends, so
// a snapshot of it cannot race one (only another snapshot, which makes
// room as well). A log that cannot be compacted (it holds an end op, or
// its snapshot would be too large) stays full: too_many_pending.
func (h *Hub) appendCompacting(ctx context.Context, id, source string, expect *uint64, ops []session.Op) (uint64, error) {
	seq, err := h.log.append(ctx, id, source, expect, ops)
	if errors.Is(err, ErrTooManyPending) {
		return h.compactAndAppend(ctx, id, source, expect, ops, err)
	}
	return seq, err
}

// compactAndAppend is appendCompacting after an append that found the
// log full (full, the error it got).
func (h *Hub) compactAndAppend(ctx context.Context, id, source string, expect *uint64, ops []session.Op, full error) (uint64, error) {
	if h.opts.SnapshotEvery <= 0 {
		return 0, full
	}
	if _, err := h.log.snapshot(ctx, id, 1); err != nil && !errors.Is(err, errConflict) {
		return 0, full
	}
	return h.log.append(ctx, id, source, expect, ops)
}

// Write appends ops to session id's log on behalf of server-side code (any
// key may be written) and returns the entry's sequence once JetStream
// acknowledged it. Every socket of the session sees it as a change with
// source "http", and the session's next HTTP request folds it into the
// cookie. The cookie budget is not checked here: HTTP handlers get that
// check when the middleware writes the cookie.
func (h *Hub) Write(ctx context.Context, id string, ops ...session.Op) (uint64, error) {
	if !session.ValidID(id) {
		return 0, Errorf(CodeInvalid, "invalid session id")
	}
	return h.stage(ctx, id, SourceHTTP, nil, ops)
}

// bridgeLog is the hub as the HTTP side sees it (httpbridge.Log, Syncer
// and Ender), kept off the Hub's own method set: embedders mount
// Hub.Middleware and never call these.
type bridgeLog struct{ h *Hub }

var (
	_ httpbridge.Log    = bridgeLog{}
	_ httpbridge.Syncer = bridgeLog{}
	_ httpbridge.Ender  = bridgeLog{}
)

// Pending returns the retained ops of session id above after, in order.
// It is served from the session's view on this instance, fetching from
// JetStream only what the view lacks.
func (b bridgeLog) Pending(ctx context.Context, id string, after uint64) ([]session.Op, error) {
	h := b.h
	if !session.ValidID(id) {
		return nil, nil
	}
	if h.closing.Load() {
		return nil, wrapErr(ErrUnavailable, ErrClosed)
	}
	v := h.acquire(ctx, id, after)
	defer v.release()
	if v.isRevoked(ctx) {
		// Logged out: the end folds into any cookie of the session, however
		// stale, whatever the log still holds.
		return []session.Op{{Type: session.OpEnd, Seq: after + 1}}, nil
	}
	v.mu.Lock()
	v.waitAckedDroppingLock(ctx)
	entries, ok := v.sinceLocked(after)
	ops := flatten(entries)
	v.mu.Unlock()
	if ok {
		return ops, nil
	}
	entries, err := h.log.fetch(ctx, id, after, 0)
	if err != nil {
		return nil, err
	}
	return flatten(entries), nil
}

// Sync makes the view of session id on this instance hold every entry
// JetStream acknowledged before the call, so the next Pending reads them:
// the bridge calls it before folding. With atLeast > 0 (the highest
// sequence the client saw), a view already past it answers at once;
// otherwise one round trip reads what the view lacks.
func (b bridgeLog) Sync(ctx context.Context, id string, atLeast uint64) error {
	if !session.ValidID(id) {
		return nil
	}
	v := b.h.acquire(ctx, id, 0)
	defer v.release()
	if atLeast > 0 {
		v.mu.Lock()
		fresh := v.loaded && !v.stale && v.last >= atLeast
		v.mu.Unlock()
		if fresh {
			return nil
		}
	}
	return v.sync(ctx)
}

// Append appends an HTTP handler's ops as one entry and returns every op
// above after up to the new entry, in order.
func (b bridgeLog) Append(ctx context.Context, id string, after uint64, ops []session.Op) ([]session.Op, error) {
	h := b.h
	if !session.ValidID(id) {
		return nil, Errorf(CodeInvalid, "invalid session id")
	}
	seq, err := h.stage(ctx, id, SourceHTTP, &after, ops)
	if err == nil {
		out := make([]session.Op, len(ops))
		for i, op := range ops {
			op.Seq = seq
			out[i] = op
		}
		return out, nil
	}
	if !errors.Is(err, errConflict) {
		return nil, err
	}
	// Others appended since after: append anyway, then read what lies
	// between, so the caller folds the log in its order.
	if seq, err = h.stage(ctx, id, SourceHTTP, nil, ops); err != nil {
		return nil, err
	}
	entries, err := h.log.fetch(ctx, id, after, seq)
	if err == nil && (len(entries) == 0 || entries[len(entries)-1].Seq < seq) {
		// A snapshot rolled up the new entry before it was read: the
		// snapshot holds it, and the log after it is the rest.
		entries, err = h.log.fetch(ctx, id, after, 0)
	}
	if err != nil {
		return nil, err
	}
	return flatten(entries), nil
}

// End and Rotated close the sockets of a session the handler ended or
// rotated (httpbridge.Ender).
func (b bridgeLog) End(ctx context.Context, id string) error { return b.h.End(ctx, id) }

func (b bridgeLog) Rotated(ctx context.Context, oldID string) error {
	return b.h.Rotated(ctx, oldID)
}

// errSessionBudget is the answer to a write past the session's write
// budget (Options.SessionWriteRate).
func (h *Hub) errSessionBudget() error {
	return Errorf(CodeRateLimited, "the session writes faster than its budget (%g entries per second)", h.opts.SessionWriteRate)
}
