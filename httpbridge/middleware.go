package httpbridge

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// Log is the session log the middleware folds from and appends to.
// *hub.Hub implements it. A nil Log makes the middleware a plain signed
// cookie session.
type Log interface {
	// Pending returns the retained ops of session id with a sequence above
	// after, in sequence order.
	Pending(ctx context.Context, id string, after uint64) ([]session.Op, error)
	// Append appends an HTTP handler's ops to the log of session id as one
	// entry, durably, and returns every op of the log after the sequence
	// after up to and including the new entry, in sequence order: the ops
	// others appended in between, then ops with their sequence number.
	Append(ctx context.Context, id string, after uint64, ops []session.Op) ([]session.Op, error)
}

// Ender is implemented by a Log that also has sockets to close. After a
// response whose handler ended the session (session.Session.End) the
// middleware calls End with the ended ID; after one that rotated it
// (session.Session.Rotate), Rotated with the old ID. Both run once the
// handler returned and its response was flushed to the client, so that
// sockets closed by a rotation reconnect with the new cookie.
type Ender interface {
	End(ctx context.Context, id string) error
	Rotated(ctx context.Context, oldID string) error
}

// Options configures the middleware. A nil *Options uses the defaults.
type Options struct {
	// Log, when set, is folded at the start of every request and receives
	// the handler's writes. Default: nil (plain cookie session).
	Log Log
	// Logger receives refused cookies (at debug level) and log failures.
	// Default: slog.Default().
	Logger *slog.Logger
	// OnLoad, when set, is called once per request with the outcome of
	// loading the cookie: nil, or a *session.DecodeError (count it by
	// session.ReasonOf). Default: nil.
	OnLoad func(r *http.Request, err error)
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

type ctxKey struct{}

// FromContext returns the session the middleware put in ctx, or nil.
func FromContext(ctx context.Context) *session.Session {
	s, _ := ctx.Value(ctxKey{}).(*session.Session)
	return s
}

// NewContext returns ctx carrying s.
func NewContext(ctx context.Context, s *session.Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// Middleware returns HTTP middleware that loads the session from the
// request's cookie, folds the ops staged in the log since the cookie's
// version, puts the session in the request context (FromContext), and,
// before the response header is written, appends the handler's changes to
// the log and saves the cookie by the store's rules.
func Middleware(store *session.Store, opts *Options) func(http.Handler) http.Handler {
	o := opts.withDefaults()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := load(r, store, &o, nil) // without the log: a plain cookie session
			sw := &saveWriter{ResponseWriter: w, save: func(h http.Header) {
				_, _ = commit(r.Context(), store, &o, s, h) // a failure is logged; the response goes on
			}}
			next.ServeHTTP(sw, r.WithContext(NewContext(r.Context(), s)))
			if !sw.commit() {
				late(r.Context(), &o, s)
			}
			retire(w, r, &o, s)
		})
	}
}

// load loads the session of r and folds the log's pending ops into it.
// It never fails: a refused cookie yields a new session (reported to
// OnLoad and logged), an unreachable log leaves the cookie's snapshot
// (and is returned, for the bridge: the middleware goes on without it).
// With sync set and a Log that is a Syncer, it first brings the log's view
// up to everything acknowledged (at least *sync, when not 0), as the
// bridge needs.
func load(r *http.Request, store *session.Store, o *Options, sync *uint64) (*session.Session, error) {
	s, err := store.Load(r)
	if err != nil {
		o.Logger.Debug("session cookie refused", "reason", session.ReasonOf(err), "err", err)
	}
	if o.OnLoad != nil {
		o.OnLoad(r, err)
	}
	id := s.ID()
	if o.Log == nil || id == "" {
		return s, nil
	}
	if sy, ok := o.Log.(Syncer); ok && sync != nil {
		if err := sy.Sync(r.Context(), id, *sync); err != nil {
			o.Logger.Warn("session log unavailable, using the cookie alone", "err", err)
			return s, err
		}
	}
	ops, err := o.Log.Pending(r.Context(), id, s.Seq())
	if err != nil {
		o.Logger.Warn("session log unavailable, using the cookie alone", "err", err)
		return s, err
	}
	s.Fold(ops)
	return s, nil
}

// commit appends the session's recorded changes to the log as one entry
// (when there is a log and it is reachable), folds the ops others appended
// since the handler's view (sockets, parallel requests: nobody's keys are
// overwritten), and writes the cookie decision into h.
//
// Folding the handler's own ops a second time, after the others', gives
// the state of the log order: set, delete and clear re-applied on top of
// their own effect change nothing.
func commit(ctx context.Context, store *session.Store, o *Options, s *session.Session, h http.Header) (session.Decision, error) {
	if o.Log != nil && !s.Ended() {
		if ops := s.TakeOps(); len(ops) > 0 {
			logged, err := o.Log.Append(ctx, s.ID(), s.Seq(), ops)
			if err != nil {
				// The changes stay in the cookie: a plain cookie session.
				o.Logger.Warn("session log unavailable, changes kept in the cookie only", "err", err)
			} else {
				s.Fold(logged)
			}
		}
	}
	d, err := store.Save(h, s)
	if err != nil {
		o.Logger.Error("session cookie not written", "err", err)
	}
	return d, err
}

// retireTimeout bounds the calls that end or rotate retired IDs.
const retireTimeout = 5 * time.Second

// retire ends or rotates, in the Log, the IDs the handler gave up, once
// the response (and its cookie) is on its way: a socket of the old ID
// closed by a rotation reconnects with the new cookie, not the old one.
func retire(w http.ResponseWriter, r *http.Request, o *Options, s *session.Session) {
	retired := s.TakeRetired()
	en, ok := o.Log.(Ender)
	if !ok || len(retired) == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush() // fails harmlessly on a hijacked connection
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), retireTimeout)
	defer cancel()
	for _, r := range retired {
		var err error
		if r.Ended {
			err = en.End(ctx, r.ID)
		} else {
			err = en.Rotated(ctx, r.ID)
		}
		if err != nil {
			o.Logger.Warn("session log unavailable: sockets of a retired session ID not closed", "ended", r.Ended, "err", err)
		}
	}
}

// saveWriter runs save once, just before the header is written.
type saveWriter struct {
	http.ResponseWriter
	once sync.Once
	save func(http.Header)
}

var (
	_ http.ResponseWriter = (*saveWriter)(nil)
	_ http.Flusher        = (*saveWriter)(nil)
)

// commit saves the session unless that was done already; it reports
// whether this call did it.
func (w *saveWriter) commit() bool {
	did := false
	w.once.Do(func() {
		did = true
		w.save(w.ResponseWriter.Header())
	})
	return did
}

func (w *saveWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *saveWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// Flush commits the session, then flushes.
func (w *saveWriter) Flush() {
	w.commit()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped ResponseWriter (for http.ResponseController
// and WebSocket hijacking).
func (w *saveWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// late appends changes a handler made after its response header was
// written: the cookie can no longer carry them, the log still can, and the
// next request folds them.
func late(ctx context.Context, o *Options, s *session.Session) {
	ops := s.TakeOps()
	if len(ops) == 0 {
		return
	}
	if o.Log == nil || s.Ended() {
		o.Logger.Warn("session changed after the response header was written; the change is lost", "ops", len(ops))
		return
	}
	if _, err := o.Log.Append(ctx, s.ID(), s.Seq(), ops); err != nil {
		o.Logger.Warn("session changed after the response header was written and the log is unavailable; the change is lost", "err", err)
	}
}
