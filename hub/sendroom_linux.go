package hub

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The answer of SO_MEMINFO: an array of counters of the socket's memory,
// of which sendRoom reads two (linux/sock_diag.h).
const (
	skMeminfoSndbuf     = 3 // sk_sndbuf: the send buffer's size
	skMeminfoWmemQueued = 5 // sk_wmem_queued: what it holds, buffers' overhead included
	skMeminfoVars       = 9
)

// sendRoom returns how much the kernel takes on rc's socket without a
// write waiting for the client, in the units of sendCost, and the send
// buffer's size: a TCP write waits once the memory its send buffer holds
// (sk_wmem_queued: bytes unsent or not yet acknowledged by the client,
// with their buffers' overhead) reaches the buffer's size (sk_sndbuf). ok
// is false when the kernel does not tell. One getsockopt system call,
// which never blocks.
func sendRoom(rc syscall.RawConn) (room, size int, ok bool) {
	var info [skMeminfoVars]uint32
	n := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&n)), 0)
	})
	if err != nil || errno != 0 || n < 4*(skMeminfoWmemQueued+1) {
		return 0, 0, false
	}
	size = int(info[skMeminfoSndbuf])
	return size - int(info[skMeminfoWmemQueued]), size, true
}
