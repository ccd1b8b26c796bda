// Package httpbridge is the HTTP side of sessionhub: a middleware that
// gives every request its session, and the bridge endpoint that flushes a
// session's log into its cookie.
//
// # Middleware
//
// [Middleware] is a func(http.Handler) http.Handler. For each request it
// loads the session from the cookie with a [session.Store], folds in the
// ops the log holds after the cookie's version, and puts the session in
// the request context, where handlers find it with [FromContext]:
//
//	mux.HandleFunc("POST /theme", func(w http.ResponseWriter, r *http.Request) {
//		s := httpbridge.FromContext(r.Context())
//		_ = s.Set("theme", r.FormValue("theme"))
//	})
//	http.ListenAndServe(addr, h.Middleware(mux)) // h a *hub.Hub
//
// With a hub, mount Hub.Middleware, which is this middleware bound to the
// hub's store and log. Without one, Middleware(store, nil) is a plain
// signed cookie session with Flask's rules.
//
// A refused cookie (forged, expired, signed with a removed key) gives the
// handler a new empty session: the request does not fail. Options.OnLoad
// sees the [*session.DecodeError] to count it.
//
// # Saving before the header
//
// A cookie can only travel in the response header. The middleware wraps
// the ResponseWriter and saves the session the moment the header is about
// to be written: at the handler's first Write, at its WriteHeader (a final
// status, or 101 Switching Protocols; not 1xx informational responses), at
// a Flush, or when the handler returns without writing. The wrapped writer
// has Unwrap, so http.ResponseController and WebSocket upgrades reach the
// connection.
//
// A change made after the header was sent cannot reach the cookie. With a
// Log it is still appended to the log (the next request folds it) and a
// warning is logged; without one, or when the log cannot be reached, it is
// lost, with a warning and without a panic. Change the session before
// writing the body.
//
// # The log
//
// With Options.Log set (the hub's, through Hub.Middleware, or anything
// that implements [Log]), the middleware:
//
//   - folds the log's ops after the cookie's version at the start of the
//     request, so a handler sees what sockets wrote;
//   - appends the handler's changes ([session.Session.TakeOps]) to the log
//     as one entry, before the header is written, so open sockets see
//     them;
//   - folds what others appended between the load and the append, then
//     its own entry again, so the cookie is the log in sequence order: a
//     socket or a parallel request writing other keys keeps them (the
//     lost update of plain cookie sessions does not happen), and for a key
//     both wrote, the later entry in the log wins;
//   - writes the cookie by the store's rules, at the log's version.
//
// When the log cannot be reached, the request goes on as a plain signed
// cookie session: the cookie's values are used as they are and the
// handler's changes are kept in the cookie only. A session ended by the
// handler ([session.Session.End], logout) appends nothing and loses its
// cookie; a write after End starts a new session with its own log.
//
// When the Log is also an [Ender] (the hub's is), the IDs a handler gave
// up ([session.Session.TakeRetired]) are handed to it once the handler
// returned and the response was flushed: an ended ID's sockets are closed
// for good and the end is recorded in the log, a rotated ID's sockets
// reconnect with the new cookie.
//
// # Bridge endpoint
//
// [Flush] is the endpoint (POST) a page calls after WebSocket writes to
// bring its cookie up to date: it folds every pending op, re-issues the
// cookie and answers 200 with the version and the client-readable values
// ([FlushResponse]). Any other method gets 405, a cross-site request 403,
// a session that no longer fits its cookie 413, a log it cannot read 503
// (unlike the middleware, it does not fall back on the cookie alone: its
// answer claims every acknowledged write), as JSON errors
// {"error":{"code","message"}} (docs/PROTOCOL.md). With a Log that is a
// [Syncer], the bridge first brings the log's view up to every
// acknowledged write: a view that already holds the client's ?seq= answers
// without a round trip.
package httpbridge
