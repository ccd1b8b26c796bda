package httpbridge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/sessionhub/sessionhub/internal/origin"
	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// Syncer is implemented by a Log that can bring its local view up to date
// with everything acknowledged. The bridge calls it so that a flush right
// after an ack always carries that ack's op. With atLeast > 0 (the highest
// sequence the client has seen, the bridge's "seq" query parameter), a
// view that already holds it answers without a round trip; with 0 the
// Log reads everything acknowledged (one round trip).
type Syncer interface {
	Sync(ctx context.Context, id string, atLeast uint64) error
}

// FlushOptions configures the bridge endpoint.
type FlushOptions struct {
	// Log is the session log. Required for the endpoint to fold anything;
	// nil makes it report the cookie alone.
	Log Log
	// Readable reports whether the client may read key; only those keys
	// are in the response. Default: none.
	Readable func(key string) bool
	// AllowedOrigins: origin patterns allowed besides the request's own
	// origin (see hub.Options.AllowedOrigins). Default: none.
	AllowedOrigins []string
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// OnLoad, as Options.OnLoad. Default: nil.
	OnLoad func(r *http.Request, err error)
}

// FlushResponse is the bridge's JSON response.
type FlushResponse struct {
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

// Flush returns the bridge endpoint (POST): it folds every pending op of
// the session into the cookie and answers 200 with {"seq","values"} (the
// client-readable values) and the refreshed Set-Cookie. A cross-site
// request gets 403, any method but POST 405, a session that no longer
// fits its cookie 413, as JSON errors (docs/PROTOCOL.md).
func Flush(store *session.Store, opts *FlushOptions) http.Handler {
	var o FlushOptions
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Readable == nil {
		o.Readable = func(string) bool { return false }
	}
	mo := Options{Log: o.Log, Logger: o.Logger, OnLoad: o.OnLoad}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			protocol.WriteCode(w, protocol.CodeMethodNotAllowed, "use POST")
			return
		}
		if origin.CrossSite(r, o.AllowedOrigins) {
			protocol.WriteCode(w, protocol.CodeForbidden, "cross-site request")
			return
		}
		atLeast, _ := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
		s, err := load(r, store, &mo, &atLeast)
		if err != nil {
			// The log could not be read: a 200 would tell the client its
			// cookie holds every acknowledged write when it may not. The
			// cookie is left as it was; the client flushes again later.
			protocol.WriteCode(w, protocol.CodeUnavailable, "session log unavailable, try again later")
			return
		}
		if s.ID() != "" {
			// The bridge always re-issues the cookie, and keeps the ID even
			// while the session is empty: sockets may be using it.
			s.EnsureID()
			s.MarkModified()
		}
		if _, err := commit(r.Context(), store, &mo, s, w.Header()); err != nil {
			// The cookie cannot carry the session: say so rather than report
			// a version the client does not have.
			code, msg := protocol.CodeInternal, "the session cookie could not be written"
			if errors.Is(err, session.ErrTooLarge) {
				code, msg = protocol.CodeTooLarge, "the session no longer fits its cookie"
			}
			protocol.WriteCode(w, code, msg)
			return
		}
		snap := s.Snapshot()
		resp := FlushResponse{Seq: snap.Seq, Values: map[string]json.RawMessage{}}
		for k, v := range snap.Values {
			if o.Readable(k) {
				resp.Values[k] = v
			}
		}
		protocol.WriteJSON(w, http.StatusOK, resp)
	})
}
