package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// HeaderSession is the request header that tells the upstream the hub
// session's ID (for the server API). It is stripped from what clients
// send, in every spelling an upstream may read as it (see
// dropSessionHeaders).
const HeaderSession = "Sessionhub-Session"

// dropSessionHeaders deletes every header of h that an upstream may read
// as HeaderSession: any case, and "_" for "-", since WSGI and CGI servers
// (Werkzeug's, wsgiref) map both to the same HTTP_SESSIONHUB_SESSION.
func dropSessionHeaders(h http.Header) {
	for k := range h {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), HeaderSession) {
			delete(h, k)
		}
	}
}

// App returns the server.App of the proxy for cfg: the client keys, Flask's
// cookie, and the reverse proxy to the upstream behind the hub's
// middleware.
func App(cfg *Config, logger *slog.Logger) (*server.App, error) {
	if logger == nil {
		logger = slog.Default()
	}
	keys, err := cfg.keyPolicies()
	if err != nil {
		return nil, err
	}
	return &server.App{
		Keys:         keys,
		FlaskSecrets: cfg.FlaskSecrets,
		CheckOp:      checkOp,
		Handler: func(store *session.Store, h *hub.Hub) (http.Handler, error) {
			return Handler(cfg.Upstream, store, h, logger), nil
		},
	}, nil
}

// checkOp refuses server API writes to the keys the Flask cookie reserves.
func checkOp(op session.Op) error {
	if reserved(op.Key) {
		return fmt.Errorf("key %q is reserved", op.Key)
	}
	return nil
}

// reserved reports whether key is one the Flask cookie keeps for itself
// (session.FlaskHubKey, session.FlaskPermanentKey): never a client key,
// never written through the server API.
func reserved(key string) bool {
	return key == session.FlaskHubKey || key == session.FlaskPermanentKey
}

// Handler returns the reverse proxy to upstream behind h's middleware:
//
//   - before a request is forwarded, the session (the browser's cookie
//     with every op staged over sockets folded in, stale cookies too) is
//     encoded into the Flask cookie the upstream receives, and its ID sent
//     in the Sessionhub-Session header;
//   - after the response, the app's Set-Cookie for the session is read and
//     removed, what the app changed becomes ops in the log (source http,
//     so open sockets see it), and the middleware sends the browser one
//     cookie holding both; a deleted cookie (logout) ends the session in
//     the hub (sockets closed with 4000 on every instance).
//
// Other headers and cookies pass through untouched, WebSocket upgrades of
// the app's own routes included.
func Handler(upstream *url.URL, store *session.Store, h *hub.Hub, logger *slog.Logger) http.Handler {
	p := &proxy{store: store, log: logger}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = pr.In.Host // the app builds its URLs for the browser's host
			pr.SetXForwarded()
		},
		ModifyResponse: p.response,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				logger.Warn("upstream unreachable", "url", upstream.Redacted(), "err", err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return h.Middleware(http.HandlerFunc(p.serve))
}

type proxy struct {
	store *session.Store
	log   *slog.Logger
	rp    *httputil.ReverseProxy
}

// sentKey carries the values the upstream was sent, for the diff.
type sentKey struct{}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	s := httpbridge.FromContext(r.Context())
	out := r.Clone(r.Context())
	dropSessionHeaders(out.Header)
	snap := s.Snapshot()
	cookies := out.Cookies()
	out.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != p.store.Name() {
			out.AddCookie(c)
		}
	}
	if !s.Empty() && !s.Ended() {
		v, err := p.store.Encode(snap)
		if err != nil {
			p.log.Error("session cookie for the upstream not encoded", "err", err)
		} else {
			out.AddCookie(&http.Cookie{Name: p.store.Name(), Value: v})
		}
	}
	if snap.ID != "" && !s.Ended() {
		out.Header.Set(HeaderSession, snap.ID)
	}
	if s.Ended() {
		snap.Values = nil
	}
	p.rp.ServeHTTP(w, out.WithContext(context.WithValue(out.Context(), sentKey{}, snap.Values)))
}

// response takes the app's session cookie out of resp and turns it into
// the session's changes, which the middleware logs and writes back.
func (p *proxy) response(resp *http.Response) error {
	s := httpbridge.FromContext(resp.Request.Context())
	sent, _ := resp.Request.Context().Value(sentKey{}).(map[string]json.RawMessage)
	var app *http.Cookie
	kept := resp.Header.Values("Set-Cookie")[:0:0]
	for _, line := range resp.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == p.store.Name() {
			app = c
			continue
		}
		kept = append(kept, line)
	}
	if app == nil {
		return nil
	}
	resp.Header.Del("Set-Cookie")
	for _, line := range kept {
		resp.Header.Add("Set-Cookie", line)
	}
	if app.Value == "" || app.MaxAge < 0 {
		// Flask deleted its cookie: the session was emptied (a logout).
		if !s.Empty() {
			s.End()
		}
		return nil
	}
	snap, err := p.store.Codec().Decode(p.store.Name(), app.Value)
	if err != nil {
		p.log.Error("the app's session cookie does not verify with the proxy's secrets; it is dropped", "reason", session.ReasonOf(err), "err", err)
		return nil
	}
	if s.Ended() {
		// The session ended in the log while the app ran: the app's values
		// start a new one.
		s.Rotate()
	}
	for _, k := range slices.Sorted(maps.Keys(snap.Values)) {
		if v, ok := sent[k]; !ok || !bytes.Equal(v, snap.Values[k]) {
			if err := s.SetRaw(k, snap.Values[k]); err != nil {
				p.log.Error("the app's session value not kept", "key", k, "err", err)
			}
		}
	}
	for k := range sent {
		if _, ok := snap.Values[k]; !ok {
			s.Delete(k)
		}
	}
	s.SetPermanent(snap.Permanent)
	return nil
}

// validator returns the Validate function of a client-writable key: the
// value must not hold a Flask tag (it would reach the app as a Python
// object, Markup included), and must pass the key's schema when one is
// given.
func validator(key string, schema func(any) error) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		if session.FlaskTagged(raw) {
			return fmt.Errorf("value of %q holds an object with a single key Flask reads as a tag", key)
		}
		if schema == nil {
			return nil
		}
		v, err := decodeJSON(raw)
		if err != nil {
			return fmt.Errorf("value of %q is not JSON", key)
		}
		if err := schema(v); err != nil {
			return fmt.Errorf("value of %q does not match its schema: %s", key, strings.TrimSpace(firstLine(err.Error())))
		}
		return nil
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
