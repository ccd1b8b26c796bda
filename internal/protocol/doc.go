// Package protocol is sessionhub's wire protocol, shared by the hub and the
// HTTP bridge and kept out of their public API: the error codes and the
// HTTP status each one answers with, the WebSocket close codes and the rule
// a client follows after each, the client messages and their decoder, and
// the server messages. docs/PROTOCOL.md is the contract this package
// implements.
//
// # Codes
//
// Codes is the one table of error codes: each Code's HTTP status
// (HTTPStatus) and its default client-visible message. The hub answers a
// socket's request with {"type":"error","code":...}; the bridge and the
// handshake answer {"error":{"code":...}} with the code's status.
//
// # Close codes
//
// Close codes are chosen by range, so that a client decides what to do
// from the number alone (Reconnect), including for codes it does not know:
//
//	1000, 1008           stop: do not reconnect
//	other 1000–2999      reconnect and resume (RFC 6455 and proxies: 1001, 1006, 1009, 1011, ...)
//	4000–4099            stop: the session is gone (4000 session ended)
//	4100–4199            reconnect without resuming: the session changed (4100 session rotated)
//	4200–4999 and others reconnect and resume (4200 too slow, 4201 ping timeout)
package protocol
