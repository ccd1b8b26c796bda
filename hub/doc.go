// Package hub is the realtime core of sessionhub: session writes made over
// a WebSocket are staged durably in NATS JetStream, broadcast over NATS to
// every socket of the session on every hub instance, and folded into the
// signed cookie on the client's next HTTP round trip.
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
// recent tail of the log. Views deliver changes to their sockets in order,
// detect a missed entry by the previous-sequence header and read it from
// JetStream, and serve folds (HTTP requests, handshakes) without a NATS
// round trip. An instance's own acknowledged writes are always visible to
// its next read (read your writes); the bridge (POST /flush) reads
// JetStream once so that it sees every acknowledged write, wherever made.
//
// # The socket
//
// Hub.ServeHTTP serves the WebSocket at <Prefix>/ws and the bridge at
// <Prefix>/flush (default prefix "/hub"). The wire protocol (messages,
// error codes, close codes, limits) is docs/PROTOCOL.md. The browser may
// write only keys declared client-writable in Options.Keys, each checked by
// its validator, and reads only keys declared client-readable; Go code
// writes any key.
//
// # Go API
//
// Handle registers handlers of client events; their Socket writes the
// session through the log. Write stages server-side changes outside a
// socket. End and Rotated close every socket of a session on every
// instance (logout, login). The Hub is an httpbridge.Log: give it to
// httpbridge.Middleware so HTTP handlers see socket writes and their
// writes reach open sockets.
//
// # Shutdown
//
// http.Server.Shutdown does not see hijacked connections: register
// Hub.Shutdown with RegisterOnShutdown so sockets close with 1001 Going
// Away (clients reconnect and resume). Close stops everything and is safe
// to call twice.
package hub
