// Package server is the sessionhub server that cmd/sessionhub runs: NATS
// (an embedded nats-server with JetStream by default, or an external
// cluster), the hub and its bridge under /hub/, the demo app, /healthz and
// /metrics, on one HTTP listener.
//
// # Running
//
// Server is a Main-style type: New, Start (it returns once the listener
// accepts connections; URL tells where), then Shutdown. Run does all three
// around a context that a signal cancels. Tests start servers on
// 127.0.0.1:0 with their own data directory.
//
// # Configuration
//
// Config holds every setting; ParseConfig reads it from flags and
// environment variables (each flag -x-y is also SESSIONHUB_X_Y; flags win).
// Flags lists them for the help text and the README.
//
// # Keys
//
// Cookies are signed (HMAC-SHA256) and optionally encrypted (AES) with the
// keys of SESSIONHUB_KEYS or -keys-file: comma-separated entries, the
// first signs and all verify. Each entry is a standard-base64 hash key,
// optionally followed by ":" and a base64 block key. ParseKeys reads them,
// FormatKey writes one. With no keys configured, LoadKeys generates one
// into <data>/keys (mode 0600) and warns that production needs its own.
//
// # Shutdown
//
// Shutdown stops accepting connections, closes every socket with 1001 (the
// hub's shutdown is registered with http.Server.RegisterOnShutdown, which
// does not see hijacked connections), waits for requests in flight, drains
// the NATS connection and stops the embedded server.
//
// # Observability
//
// /healthz answers 200 when NATS is connected and JetStream answers, 503
// with a JSON body otherwise. /metrics serves Prometheus metrics from the
// server's own registry: Metrics implements hub.Metrics (sockets, session
// views, ops staged and their acknowledgement latency, errors by code) and
// counts flushes, HTTP requests and refused cookies.
package server
