package hub

import (
	"net"
	"syscall"
)

// rawConn returns c's file descriptor for sendRoom, nil when c has none
// (a connection of a custom listener, a pipe in a test).
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// sendCost bounds what a write of n bytes takes of the room sendRoom
// measures: twice n (TLS adds a few bytes per record) and a buffer's
// overhead (struct sk_buff and its shared info, for a write that cannot
// join the last one's).
func sendCost(n int) int { return 2*n + 2<<10 }

// controlCost is sendCost of a control frame (a payload of at most 125
// bytes), and controlReserve the room writeSoon leaves for the control
// frames that may be on their way to the kernel while it measures: the
// read loop's pong, the pinger's ping and a close's echo, one of each at
// most.
const (
	controlCost    = 2*(2+4+125) + 2<<10
	controlReserve = 3 * controlCost
)
