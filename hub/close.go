package hub

import (
	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/internal/protocol"
)

// Close codes the hub sends. Codes below 4000 are RFC 6455's; 4000–4999
// are sessionhub's own, chosen by range so that a client knows what to do
// from the number alone (see Reconnect):
//
//	4000–4099  stop: the session is gone
//	4100–4199  reconnect without resuming: the session changed
//	4200–4999  reconnect and resume
const (
	CloseNormal         = protocol.CloseNormal         // 1000: the client closed; do not reconnect
	CloseGoingAway      = protocol.CloseGoingAway      // 1001: server shutdown; reconnect and resume
	ClosePolicy         = protocol.ClosePolicy         // 1008: protocol misuse (binary frame); do not reconnect
	CloseTooBig         = protocol.CloseTooBig         // 1009: a frame over the read limit; reconnect, do not resend it
	CloseInternal       = protocol.CloseInternal       // 1011: server error; reconnect with backoff
	CloseSessionEnded   = protocol.CloseSessionEnded   // 4000: logout: the session is gone; do not reconnect
	CloseSessionRotated = protocol.CloseSessionRotated // 4100: the session got a new ID (login); reconnect without resuming
	CloseTooSlow        = protocol.CloseTooSlow        // 4200: the client did not read fast enough; reconnect and resume
	ClosePingTimeout    = protocol.ClosePingTimeout    // 4201: no pong in time; reconnect and resume
)

// Reconnect reports whether a client should reconnect after code, and
// whether it should resume from its last seq: 1000, 1008 and 4000–4099
// stop; 4100–4199 reconnect without resuming; every other code (1001,
// 1006, 1009, 1011, 4200–4999, and codes a proxy or a future server may
// send) reconnects and resumes. web/sessionhub.js follows the same rule.
func Reconnect(code websocket.StatusCode) (reconnect, resume bool) {
	return protocol.Reconnect(code)
}
