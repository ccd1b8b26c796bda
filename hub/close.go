package hub

import "github.com/coder/websocket"

// Close codes the hub sends. Codes below 4000 are RFC 6455's; 4000–4999
// are sessionhub's own. Reconnect tells the client what to do next.
const (
	CloseNormal                              = websocket.StatusNormalClosure   // 1000: the client closed; do not reconnect
	CloseGoingAway                           = websocket.StatusGoingAway       // 1001: server shutdown; reconnect and resume
	ClosePolicy                              = websocket.StatusPolicyViolation // 1008: protocol misuse (binary frame); do not reconnect
	CloseTooBig                              = websocket.StatusMessageTooBig   // 1009: a frame over the read limit; reconnect, do not resend it
	CloseInternal                            = websocket.StatusInternalError   // 1011: server error; reconnect with backoff
	CloseSessionEnded   websocket.StatusCode = 4000                            // logout: the session is gone; do not resume
	CloseSessionRotated websocket.StatusCode = 4001                            // the session got a new ID (login); reconnect without resume
	CloseTooSlow        websocket.StatusCode = 4002                            // the send buffer overflowed; reconnect and resume
	ClosePingTimeout    websocket.StatusCode = 4003                            // no pong in time; reconnect and resume
)

// Reconnect reports whether a client should reconnect after code, and
// whether it should resume from its last seq. 1000, 1008 and 4000 stop;
// 4001 reconnects without resuming; every other code (1001, 1006, 1009,
// 1011, 4002, 4003, and codes a proxy or a future server may send)
// reconnects and resumes. web/sessionhub.js's closePolicy is the same
// table.
func Reconnect(code websocket.StatusCode) (reconnect, resume bool) {
	switch code {
	case CloseNormal, ClosePolicy, CloseSessionEnded:
		return false, false
	case CloseSessionRotated:
		return true, false
	}
	return true, true
}
