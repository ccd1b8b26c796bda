package hub

import (
	"testing"

	"github.com/coder/websocket"
)

// TestReconnect holds the close-code ranges of docs/PROTOCOL.md.
func TestReconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code              websocket.StatusCode
		reconnect, resume bool
	}{
		{CloseNormal, false, false},
		{CloseGoingAway, true, true},
		{ClosePolicy, false, false},
		{CloseTooBig, true, true},
		{CloseInternal, true, true},
		{CloseSessionEnded, false, false},
		{CloseSessionRotated, true, false},
		{CloseTooSlow, true, true},
		{ClosePingTimeout, true, true},
		{websocket.StatusAbnormalClosure, true, true}, // 1006: dropped without a close frame
		{websocket.StatusServiceRestart, true, true},  // 1012, not ours: reconnect and resume
		{4050, false, false},                          // unknown, in the stop range
		{4099, false, false},
		{4150, true, false}, // unknown, in the reconnect-without-resume range
		{4199, true, false},
		{4250, true, true},
		{4999, true, true},
	}
	for _, tt := range tests {
		if rc, rs := Reconnect(tt.code); rc != tt.reconnect || rs != tt.resume {
			t.Errorf("Reconnect(%d) = %v, %v; want %v, %v", tt.code, rc, rs, tt.reconnect, tt.resume)
		}
	}
}
