// Package hub is the realtime core of sessionhub: session writes made over
// a WebSocket are staged durably in NATS JetStream, broadcast over NATS to
// every socket of the session on every hub instance, and folded into the
// signed cookie on the client's next HTTP round trip.
//
// # Embedding
//
// One Hub is the whole wiring of an app (README.md shows a complete
// program; hub/natsserver starts the embedded NATS it needs on one
// machine):
//
//	h, err := hub.New(ctx, &hub.Options{Store: store, Conn: nc, ClientKeys: keys})
//	mux.Handle("/hub/", h)             // the socket at /hub/ws, the bridge at /hub/flush
//	mux.Handle("/", h.Middleware(app)) // every route gets its session
//	srv.RegisterOnShutdown(func() { _ = h.Shutdown(ctx) })
//
// Handlers read and write the session with httpbridge.FromContext. A
// handler's writes go through the log, so open sockets see them live and
// concurrent requests and sockets never overwrite each other's keys. A
// handler that calls session.Session.End (logout) or Rotate (login) needs
// nothing more: Middleware ends the session in the hub (every socket of it
// closed with CloseSessionEnded, on every instance) or moves the old ID's
// sockets to the new cookie (CloseSessionRotated).
//
// # The log
//
// Each session has a log: the subject <Subject>.ops.<id> of one JetStream
// stream (default "SESSIONHUB", subjects "sessionhub.ops.*"). An entry is
// the ops one writer appended together (a socket's set or delete, an HTTP
// request's changes); its stream sequence orders it. A write is
// acknowledged only after JetStream acknowledged the append. Entries stay
// for Options.Retention (default 24h) after they are written, flushed or
// not, so a stale cookie still finds them; a session holds at most
// Options.MaxOpsPerSession entries in that window (too_many_pending past
// it, never a silent discard).
//
// # Fan-out
//
// The stream republishes every stored entry to <Subject>.live.<id> with
// its sequence and the subject's previous sequence. Each instance keeps a
// view of every session it serves: a subscription to that subject and the
// recent tail of the log. Views deliver changes to their sockets in order
// and serve folds (HTTP requests, handshakes) without a NATS round trip. A
// view that sees a gap (an entry whose predecessor it lacks) goes stale,
// so reads go to JetStream, and repairs itself from JetStream on its own
// goroutine without waiting for a later write. Misses no later entry
// would reveal are caught too: a live change nats.go drops as a slow
// consumer (its async error names the subscription, hence the view), and
// whatever was republished while the connection was down (after a
// reconnect every view with sockets reads JetStream). An instance's own
// acknowledged writes are always visible to its next read (read your
// writes). The bridge (POST <Prefix>/flush) brings the view up to every
// acknowledged write, wherever made: without a round trip when the
// client's ?seq= is already in the view, with one JetStream read
// otherwise.
//
// # The socket
//
// Hub.ServeHTTP serves the WebSocket at <Prefix>/ws and the bridge at
// <Prefix>/flush (default prefix "/hub"). The wire protocol (messages,
// error codes and their HTTP statuses, close codes by range, limits) is
// docs/PROTOCOL.md. The browser may write only keys declared
// client-writable in Options.ClientKeys, each checked by its validator,
// and reads only keys declared client-readable; Go code writes any key.
//
// # Go API
//
// Handle registers handlers of client events; their Socket writes the
// session through the log and pushes events to the browser. Write stages
// server-side changes outside a request or a socket (a worker, an admin
// action); End ends a session from there. Errors carry a Code (CodeOf),
// the same codes the browser sees.
//
// # Shutdown
//
// http.Server.Shutdown does not see hijacked connections: register
// Hub.Shutdown with RegisterOnShutdown so sockets close with 1001 Going
// Away (clients reconnect and resume). Close stops everything and is safe
// to call twice.
package hub
