package protocol

import "github.com/coder/websocket"

// Close codes the hub sends. Codes below 4000 are RFC 6455's; 4000–4999
// are sessionhub's own, chosen by range (see Reconnect).
const (
	CloseNormal    = websocket.StatusNormalClosure   // 1000: the client closed; do not reconnect
	CloseGoingAway = websocket.StatusGoingAway       // 1001: server shutdown; reconnect and resume
	ClosePolicy    = websocket.StatusPolicyViolation // 1008: protocol misuse (binary frame); do not reconnect
	CloseTooBig    = websocket.StatusMessageTooBig   // 1009: a frame over the read limit; reconnect, do not resend it
	CloseInternal  = websocket.StatusInternalError   // 1011: server error; reconnect with backoff

	CloseSessionEnded   websocket.StatusCode = 4000 // logout: the session is gone; do not reconnect
	CloseSessionRotated websocket.StatusCode = 4100 // the session got a new ID (login); reconnect without resuming
	CloseTooSlow        websocket.StatusCode = 4200 // the client did not read fast enough; reconnect and resume
	ClosePingTimeout    websocket.StatusCode = 4201 // no pong in time; reconnect and resume
)

// The ranges of sessionhub's own close codes.
const (
	closeStopFirst, closeStopLast   = 4000, 4099 // stop: do not reconnect
	closeFreshFirst, closeFreshLast = 4100, 4199 // reconnect without resuming
	// 4200–4999: reconnect and resume, as every code outside the ranges above.
)

// Reconnect reports whether a client should reconnect after code, and
// whether it should resume from its last seq, by range: 1000 and 1008
// stop; 4000–4099 stop; 4100–4199 reconnect without resuming; every other
// code (1001, 1006, 1009, 1011, 4200–4999, and codes a proxy or a future
// server may send) reconnects and resumes. web/sessionhub.js's closePolicy
// follows the same rule.
func Reconnect(code websocket.StatusCode) (reconnect, resume bool) {
	switch {
	case code == CloseNormal, code == ClosePolicy:
		return false, false
	case code >= closeStopFirst && code <= closeStopLast:
		return false, false
	case code >= closeFreshFirst && code <= closeFreshLast:
		return true, false
	}
	return true, true
}
