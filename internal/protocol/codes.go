package protocol

import "net/http"

// Code is a wire error code. The set is closed: Codes lists it.
type Code string

// The error codes.
const (
	CodeInvalid          Code = "invalid"            // bad JSON, unknown type, missing or bad field
	CodeForbidden        Code = "forbidden"          // the key is not client-writable, or its validator refused the value; a cross-site request
	CodeTooLarge         Code = "too_large"          // the session cookie would no longer fit
	CodeTooManyPending   Code = "too_many_pending"   // the session's log is full
	CodeRateLimited      Code = "rate_limited"       // the client sends faster than its rate limit
	CodeUnavailable      Code = "unavailable"        // NATS or JetStream is unreachable: nothing was staged; or the server is shutting down
	CodeNotFound         Code = "not_found"          // no handler for the event; no such endpoint
	CodeMethodNotAllowed Code = "method_not_allowed" // an HTTP endpoint called with the wrong method
	CodeUpgradeRequired  Code = "upgrade_required"   // the socket endpoint called without a WebSocket handshake
	CodeUnauthorized     Code = "unauthorized"       // the server API called without a bearer token
	CodeUnsupportedMedia Code = "unsupported_media"  // the server API called with a body that is not JSON
	CodeInternal         Code = "internal"           // anything else; details are logged, never sent
)

// CodeInfo is one row of the code table.
type CodeInfo struct {
	Code Code
	// Status is the HTTP status an HTTP endpoint answers the code with.
	Status int
	// Message is the client-visible message when no more specific one is
	// given.
	Message string
}

// Codes is the table of every error code, in the order docs/PROTOCOL.md
// lists them.
var Codes = []CodeInfo{
	{CodeInvalid, http.StatusBadRequest, "invalid message"},
	{CodeForbidden, http.StatusForbidden, "key is not writable by the client"},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, "the session cookie would exceed its size budget"},
	{CodeTooManyPending, http.StatusTooManyRequests, "too many changes pending for this session"},
	{CodeRateLimited, http.StatusTooManyRequests, "rate limit exceeded"},
	{CodeUnavailable, http.StatusServiceUnavailable, "session log unavailable, try again later"},
	{CodeNotFound, http.StatusNotFound, "not found"},
	{CodeMethodNotAllowed, http.StatusMethodNotAllowed, "method not allowed"},
	{CodeUpgradeRequired, http.StatusUpgradeRequired, "WebSocket upgrade required"},
	{CodeUnauthorized, http.StatusUnauthorized, "send Authorization: Bearer <token>"},
	{CodeUnsupportedMedia, http.StatusUnsupportedMediaType, "send Content-Type: application/json"},
	{CodeInternal, http.StatusInternalServerError, "internal error"},
}

var byCode = func() map[Code]CodeInfo {
	m := make(map[Code]CodeInfo, len(Codes))
	for _, c := range Codes {
		m[c.Code] = c
	}
	return m
}()

// Info returns the table's row of code; an unknown code gets internal's
// row.
func Info(code Code) CodeInfo {
	if c, ok := byCode[code]; ok {
		return c
	}
	return byCode[CodeInternal]
}

// HTTPStatus returns the HTTP status of code.
func HTTPStatus(code Code) int { return Info(code).Status }
