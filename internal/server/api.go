package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
)

// EnvAPIToken holds the bearer token of the server API. There is no flag
// for it, so that it never shows in a process list; without it the API is
// off.
const EnvAPIToken = "SESSIONHUB_API_TOKEN"

// APIOptions configures the server API.
type APIOptions struct {
	// Hub stages the writes. Required.
	Hub *hub.Hub
	// Token is the bearer token callers must send. Empty turns the API
	// off: every path answers 404.
	Token string
	// CheckOp, when set, refuses an op with an error (answered 400), such
	// as a write to a key the cookie format reserves. Default: none.
	CheckOp func(session.Op) error
	// MaxBody bounds a request body in bytes (413 past it). Default: the
	// hub's MaxEntrySize.
	MaxBody int64
	// Logger receives internal errors. Default: slog.Default().
	Logger *slog.Logger
}

// APIOpsRequest is the body of POST /hub/api/sessions/{id}/ops.
type APIOpsRequest struct {
	Ops []session.Op `json:"ops"`
}

// APIOpsResponse answers it: the log sequence of the entry.
type APIOpsResponse struct {
	Seq uint64 `json:"seq"`
}

// APIPushRequest is the body of POST /hub/api/sessions/{id}/push.
type APIPushRequest struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// API returns the server API, for code that runs outside an HTTP response
// (a Quart websocket handler, a worker), at /hub/api/sessions/{id}/ops,
// /end and /push. Callers authenticate with "Authorization: Bearer
// <token>", compared in constant time: no token is 401, a wrong one 403.
// Errors are JSON {"error":{"code","message"}} with 400 (invalid), 404,
// 405, 413 (too_large), 415, 429 (too_many_pending, rate_limited), 503
// (unavailable, with Retry-After) or 500; docs/PROTOCOL.md has the
// contract.
func API(opts APIOptions) http.Handler {
	o := opts
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBody <= 0 {
		o.MaxBody = int64(o.Hub.Options().MaxEntrySize)
	}
	mux := http.NewServeMux()
	if o.Token == "" {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			protocol.WriteCode(w, protocol.CodeNotFound, "the server API is off: set "+EnvAPIToken)
		})
		return mux
	}
	a := &api{o: o, token: sha256.Sum256([]byte(o.Token))}
	mux.HandleFunc("/hub/api/sessions/{id}/ops", a.auth(a.ops))
	mux.HandleFunc("/hub/api/sessions/{id}/end", a.auth(a.end))
	mux.HandleFunc("/hub/api/sessions/{id}/push", a.auth(a.push))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		protocol.WriteCode(w, protocol.CodeNotFound, "no such API endpoint")
	})
	return mux
}

type api struct {
	o     APIOptions
	token [sha256.Size]byte
}

// auth checks the method, the bearer token and the session ID before h.
func (a *api) auth(h func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		present, ok := bearer(r, a.token)
		if !present {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessionhub"`)
			protocol.WriteCode(w, protocol.CodeUnauthorized, "send Authorization: Bearer <token>")
			return
		}
		if !ok {
			protocol.WriteCode(w, protocol.CodeForbidden, "wrong token")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			protocol.WriteCode(w, protocol.CodeMethodNotAllowed, "use POST")
			return
		}
		id := r.PathValue("id")
		if !session.ValidID(id) {
			protocol.WriteCode(w, protocol.CodeInvalid, "invalid session id")
			return
		}
		h(w, r, id)
	}
}

// decode reads a JSON body into v; false when it answered an error.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		protocol.WriteCode(w, protocol.CodeUnsupportedMedia, "send Content-Type: application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.o.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		protocol.WriteCode(w, protocol.CodeTooLarge, fmt.Sprintf("the body exceeds %d bytes", a.o.MaxBody))
		return false
	case err != nil:
		protocol.WriteCode(w, protocol.CodeInvalid, "unreadable body")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		protocol.WriteCode(w, protocol.CodeInvalid, "the body is not the expected JSON object")
		return false
	}
	return true
}

func (a *api) ops(w http.ResponseWriter, r *http.Request, id string) {
	var req APIOpsRequest
	if !a.decode(w, r, &req) {
		return
	}
	if len(req.Ops) == 0 {
		protocol.WriteCode(w, protocol.CodeInvalid, "no ops")
		return
	}
	for i, op := range req.Ops {
		err := op.Validate()
		if err == nil && (op.Type == session.OpEnd || op.Seq != 0) {
			err = errors.New("ops are set, delete or clear, without seq (end a session with /end)")
		}
		if err == nil && a.o.CheckOp != nil {
			err = a.o.CheckOp(op)
		}
		if err != nil {
			protocol.WriteCode(w, protocol.CodeInvalid, fmt.Sprintf("op %d: %v", i, err))
			return
		}
		if op.Type == session.OpSet {
			// One spelling in the log, as SetOp gives the Go API.
			if req.Ops[i], err = session.SetOp(op.Key, op.Value); err != nil {
				protocol.WriteCode(w, protocol.CodeInvalid, fmt.Sprintf("op %d: %v", i, err))
				return
			}
		}
	}
	seq, err := a.o.Hub.Write(r.Context(), id, req.Ops...)
	if err != nil {
		a.fail(w, err)
		return
	}
	protocol.WriteJSON(w, http.StatusOK, APIOpsResponse{Seq: seq})
}

func (a *api) end(w http.ResponseWriter, r *http.Request, id string) {
	if err := a.o.Hub.End(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	protocol.WriteJSON(w, http.StatusOK, struct{}{})
}

func (a *api) push(w http.ResponseWriter, r *http.Request, id string) {
	var req APIPushRequest
	if !a.decode(w, r, &req) {
		return
	}
	if req.Data == nil {
		req.Data = json.RawMessage("null")
	}
	if err := a.o.Hub.PushSession(r.Context(), id, req.Name, req.Data); err != nil {
		a.fail(w, err)
		return
	}
	protocol.WriteJSON(w, http.StatusOK, struct{}{})
}

// fail answers a hub error with its code at the code's status (the one
// table in internal/protocol); internal errors are logged and answered
// with a generic message.
func (a *api) fail(w http.ResponseWriter, err error) {
	code := hub.CodeOf(err)
	var he *hub.Error
	if code == hub.CodeInternal || !errors.As(err, &he) {
		a.o.Logger.Error("server API", "err", err)
		protocol.WriteCode(w, protocol.CodeInternal, "")
		return
	}
	if code == hub.CodeUnavailable {
		w.Header().Set("Retry-After", "1")
		a.o.Logger.Warn("server API", "err", err)
	}
	protocol.WriteCode(w, code, he.Message)
}

// bearer reports whether r carries a bearer token, and whether it is the
// one whose SHA-256 is want. Hashing both sides first makes the
// comparison constant-time in the length too.
func bearer(r *http.Request, want [sha256.Size]byte) (present, ok bool) {
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || got == "" {
		return false, false
	}
	sum := sha256.Sum256([]byte(got))
	return true, subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}
