package hub

import (
	"net/http"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

// Middleware gives every request through next its session
// (httpbridge.FromContext), with every change staged over sockets folded
// in; before the response header is written, it appends the handler's
// changes to the log (open sockets see them live) and writes the cookie.
// A handler that ends the session (session.Session.End, logout) or rotates
// it (session.Session.Rotate, login) needs nothing more: the middleware
// ends it in the hub (every socket closed with CloseSessionEnded, the end
// recorded in the log) or closes the old ID's sockets with
// CloseSessionRotated.
func (h *Hub) Middleware(next http.Handler) http.Handler { return h.mw(next) }

func (h *Hub) newMiddleware() func(http.Handler) http.Handler {
	return httpbridge.Middleware(h.opts.Store, &httpbridge.Options{
		Log:    bridgeLog{h},
		Logger: h.opts.Logger,
		OnLoad: h.cookieLoaded,
	})
}

// newFlush returns the bridge endpoint served at <Prefix>/flush.
func (h *Hub) newFlush() http.Handler {
	return httpbridge.Flush(h.opts.Store, &httpbridge.FlushOptions{
		Log:            bridgeLog{h},
		Readable:       h.readable,
		AllowedOrigins: h.opts.AllowedOrigins,
		Logger:         h.opts.Logger,
		OnLoad:         h.cookieLoaded,
	})
}

func (h *Hub) cookieLoaded(_ *http.Request, err error) {
	if err != nil {
		h.opts.Metrics.CookieRefused(session.ReasonOf(err))
	}
}
