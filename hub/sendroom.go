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
func sendCost(n int) int { return 2*n + sendOverhead }

// sendOverhead is sendCost's bound of a buffer's overhead per write.
const sendOverhead = 2 << 10

// framesCost bounds what msgs messages of size bytes in all take of the
// room, written as that many frames at most.
func framesCost(msgs, size int) int { return 2*size + msgs*sendOverhead }

// controlCost is sendCost of a control frame (a payload of at most 125
// bytes), and controlReserve the room writeSoon leaves for the control
// frames that may be on their way to the kernel while it measures: the
// read loop's pong, the pinger's ping and a close's echo, one of each at
// most.
const (
	controlCost    = 2*(2+4+125) + sendOverhead
	controlReserve = 3 * controlCost
)

// pongFits reports whether the pong of a client's ping may be written: the
// kernel's send buffer of the connection has half of it free, or cannot
// tell. A client that sends pings and reads nothing could otherwise fill
// the buffer with pongs, written on the read loop past what the
// dispatcher measured (conn.writeSoon), which writes only what fits in
// the half they leave free. Only the latest of pings not yet answered
// needs a pong (RFC 6455, 5.5.3): a client that reads gets them all.
func (c *conn) pongFits() bool {
	if c.rawc == nil {
		return true
	}
	room, size, ok := sendRoom(c.rawc)
	return !ok || room >= size/2
}
