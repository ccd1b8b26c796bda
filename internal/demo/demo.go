package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/origin"
	"github.com/sessionhub/sessionhub/internal/protocol"
	"github.com/sessionhub/sessionhub/session"
	"github.com/sessionhub/sessionhub/web"
)

// Options configures the demo app.
type Options struct {
	// Store is the session cookie store. Required.
	Store *session.Store
	// Hub is the session log and the sockets' hub (mounted by the caller at
	// /hub/). Required.
	Hub *hub.Hub
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// Assets are the page's files (web.FS layout). Default: web.FS().
	Assets fs.FS
}

// maxBody bounds the JSON bodies the API reads.
const maxBody = 16 << 10

// App is the demo: the preferences page and its API. It is an
// http.Handler serving GET /, GET /api/session, POST /api/settings,
// POST /login, POST /logout and the static files under /static/.
type App struct {
	opts Options
	page *template.Template
	mux  *http.ServeMux
}

// New returns the demo app.
func New(opts *Options) (*App, error) {
	if opts == nil || opts.Store == nil || opts.Hub == nil {
		return nil, errors.New("demo: Options.Store and Options.Hub are required")
	}
	o := *opts
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Assets == nil {
		o.Assets = web.FS()
	}
	page, err := template.ParseFS(o.Assets, web.Template)
	if err != nil {
		return nil, fmt.Errorf("demo: page template: %w", err)
	}
	a := &App{opts: o, page: page, mux: http.NewServeMux()}

	sessions := o.Hub.Middleware
	a.mux.Handle("GET /{$}", sessions(http.HandlerFunc(a.index)))
	a.mux.Handle("GET /api/session", sessions(http.HandlerFunc(a.getSession)))
	a.mux.Handle("POST /api/settings", sessions(a.sameOrigin(a.postSettings)))
	a.mux.Handle("POST /login", sessions(a.sameOrigin(a.login)))
	a.mux.Handle("POST /logout", sessions(a.sameOrigin(a.logout)))
	a.mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(o.Assets)))
	a.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return a, nil
}

// ServeHTTP routes the demo's requests.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

var _ http.Handler = (*App)(nil)

// View is the client-readable session as the API returns it.
type View struct {
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

func (a *App) view(s *session.Session) View {
	return View{Seq: s.Seq(), Values: a.opts.Hub.ReadableValues(s.Values())}
}

// pageData is what index.html renders.
type pageData struct {
	Seq                                          uint64
	Colour, Theme, Language, Notifications, Name string
	Themes, Colours                              []string
}

// index renders the page from the session: a reload shows what the cookie
// (with the log folded in) holds.
func (a *App) index(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	if s.ID() == "" {
		// Give the page and its socket one session from the start.
		s.EnsureID()
	}
	s.SetPermanent(true) // preferences outlive the browser session (a no-op once set)
	d := pageData{
		Seq:           s.Seq(),
		Colour:        display(s, KeyColour),
		Theme:         display(s, KeyTheme),
		Language:      display(s, KeyLanguage),
		Notifications: display(s, KeyNotifications),
		Name:          display(s, KeyName),
		Themes:        themes,
		Colours:       cssColours,
	}
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, d); err != nil {
		a.opts.Logger.Error("demo: rendering the page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// display returns a value as the page shows it: a string as is, anything
// else as JSON, "" when absent.
func display(s *session.Session, key string) string {
	raw, ok := s.Value(key)
	if !ok {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	return string(raw)
}

func (a *App) getSession(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	s.MarkAccessed()
	protocol.WriteJSON(w, http.StatusOK, a.view(s))
}

// postSettings writes a JSON object of settings through the log: open
// sockets see the change live. null deletes a key. Every key and value is
// checked before anything is written.
func (a *App) postSettings(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	var in map[string]json.RawMessage
	if err := decodeJSON(w, r, &in); err != nil {
		protocol.WriteError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	policies := a.opts.Hub.Options().ClientKeys
	for _, k := range slices.Sorted(maps.Keys(in)) {
		p, ok := policies[k]
		if !ok || !p.Write {
			protocol.WriteError(w, http.StatusBadRequest, "unknown_key", fmt.Sprintf("unknown setting %q", truncate(k, 64)))
			return
		}
		if isNull(in[k]) {
			continue
		}
		if err := p.Validate(in[k]); err != nil {
			protocol.WriteError(w, http.StatusBadRequest, "invalid_value", fmt.Sprintf("invalid value for %q: %v", k, err))
			return
		}
	}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if isNull(in[k]) {
			s.Delete(k)
		} else if err := s.SetRaw(k, in[k]); err != nil {
			protocol.WriteError(w, http.StatusBadRequest, "invalid_value", fmt.Sprintf("invalid value for %q", k))
			return
		}
	}
	s.SetPermanent(true)
	a.commitJSON(w, s)
}

// login rotates the session ID (against session fixation) and stores the
// name. The middleware closes the old ID's sockets with 4100 once the
// response, with the new cookie, is on its way: they reconnect with it.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	name, err := readName(w, r)
	if err != nil {
		protocol.WriteError(w, http.StatusBadRequest, "invalid_value", err.Error())
		return
	}
	s.Rotate()
	if err := s.Set(KeyName, name); err != nil {
		protocol.WriteError(w, http.StatusBadRequest, "invalid_value", "invalid name")
		return
	}
	s.SetPermanent(true)
	if wantsJSON(r) {
		a.commitJSON(w, s)
	} else {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// logout ends the session: the cookie is deleted, and the middleware ends
// the session in the hub: every socket of it, on every instance, is closed
// with 4000.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	s.End()
	if wantsJSON(r) {
		protocol.WriteJSON(w, http.StatusOK, map[string]bool{"ended": true})
	} else {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

// commitJSON answers 200 with the session's view. Writing the header
// commits the session first (the middleware appends its changes to the
// log and sets the cookie), so the body carries the sequence of the
// append.
func (a *App) commitJSON(w http.ResponseWriter, s *session.Session) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(a.view(s))
}

// sameOrigin refuses cross-site state-changing requests with 403.
func (a *App) sameOrigin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin.CrossSite(r, a.opts.Hub.Options().AllowedOrigins) {
			protocol.WriteError(w, http.StatusForbidden, "forbidden", "cross-site request")
			return
		}
		next(w, r)
	})
}

func readName(w http.ResponseWriter, r *http.Request) (string, error) {
	var name string
	if isJSON(r) {
		var in struct {
			Name string `json:"name"`
		}
		if err := decodeJSON(w, r, &in); err != nil {
			return "", err
		}
		name = in.Name
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			return "", errors.New("unreadable form")
		}
		name = r.PostFormValue("name")
	}
	name = strings.TrimSpace(name)
	return name, ValidName(name)
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// wantsJSON tells an API call (fetch with JSON) from a plain form post,
// which gets a redirect to the page.
func wantsJSON(r *http.Request) bool {
	return isJSON(r) || strings.Contains(r.Header.Get("Accept"), "application/json")
}

func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(dst); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body larger than %d bytes", maxBody)
		}
		return errors.New("want a JSON object")
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	if dst, ok := dst.(*map[string]json.RawMessage); ok && *dst == nil {
		return errors.New("want a JSON object") // the body was null
	}
	return nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// staticFiles serves the page's script, style sheet and the client
// library; the template itself is not served.
func staticFiles(assets fs.FS) http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path
		switch path.Ext(name) {
		case ".js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		case ".css":
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
		case ".ts":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
