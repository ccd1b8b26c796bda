package httpbridge

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/sessionhub/sessionhub/session"
)

// Source values of ops appended by the middleware.
const SourceHTTP = "http"

// Log is the session log the middleware folds from and appends to.
// *hub.Hub implements it. A nil Log makes the middleware a plain signed
// cookie session.
type Log interface {
	// Pending returns the retained ops of session id with a sequence above
	// after, in sequence order.
	Pending(ctx context.Context, id string, after uint64) ([]session.Op, error)
	// Append appends ops to the log of session id, durably, and returns
	// them with their sequence numbers.
	Append(ctx context.Context, id, source string, ops []session.Op) ([]session.Op, error)
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
			s := Load(r, store, &o)
			sw := &saveWriter{ResponseWriter: w, save: func(h http.Header) {
				Commit(r.Context(), store, &o, s, h, func() session.Snapshot {
					fresh, _ := store.Load(r)
					return fresh.Snapshot()
				})
			}}
			next.ServeHTTP(sw, r.WithContext(NewContext(r.Context(), s)))
			sw.commit()
		})
	}
}

// Load loads the session of r and folds the log's pending ops into it.
// It never fails: a refused cookie yields a new session (reported to
// OnLoad and logged), an unreachable log leaves the cookie's snapshot.
func Load(r *http.Request, store *session.Store, o *Options) *session.Session {
	s, err := store.Load(r)
	if err != nil {
		o.Logger.Debug("session cookie refused", "reason", session.ReasonOf(err), "err", err)
	}
	if o.OnLoad != nil {
		o.OnLoad(r, err)
	}
	if o.Log != nil {
		if id := s.ID(); id != "" {
			ops, err := o.Log.Pending(r.Context(), id, s.Seq())
			if err != nil {
				o.Logger.Warn("session log unavailable, using the cookie alone", "err", err)
			} else {
				s.Fold(ops)
			}
		}
	}
	return s
}

// Commit appends the session's recorded changes to the log (when there is
// one and it is reachable), rebases the snapshot on the log so ops written
// concurrently by sockets or other requests are kept, and writes the
// cookie decision into h. base returns the snapshot the session was
// loaded from (the cookie's), needed only when others wrote in between.
func Commit(ctx context.Context, store *session.Store, o *Options, s *session.Session, h http.Header, base func() session.Snapshot) session.Decision {
	if o.Log != nil && !s.Ended() {
		seq := s.Seq()
		if ops := s.TakeOps(); len(ops) > 0 {
			id := s.ID()
			appended, err := o.Log.Append(ctx, id, SourceHTTP, ops)
			switch {
			case err != nil:
				// The changes stay in the cookie: a plain cookie session.
				o.Logger.Warn("session log unavailable, changes kept in the cookie only", "err", err)
			case contiguous(seq, appended):
				s.Fold(appended) // already applied locally; this advances the version
			default:
				// Others wrote in between: rebuild from the cookie and the
				// whole log, in sequence order.
				snap := base()
				if snap.ID != id {
					snap = session.Snapshot{ID: id}
				}
				pending, err := o.Log.Pending(ctx, id, snap.Seq)
				if err != nil {
					o.Logger.Warn("session log unavailable after append", "err", err)
					break
				}
				s.Rebase(snap.Fold(pending))
			}
		}
	}
	d, err := store.Save(h, s)
	if err != nil {
		o.Logger.Error("session cookie not written", "err", err)
	}
	return d
}

func contiguous(base uint64, ops []session.Op) bool {
	for i, op := range ops {
		if op.Seq != base+uint64(i)+1 {
			return false
		}
	}
	return len(ops) > 0
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

func (w *saveWriter) commit() {
	w.once.Do(func() { w.save(w.ResponseWriter.Header()) })
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
