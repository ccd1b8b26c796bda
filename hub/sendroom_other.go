//go:build !linux

package hub

import "syscall"

// sendRoom does not tell (only Linux does, sendroom_linux.go): the
// socket's writer goroutine writes every frame.
func sendRoom(syscall.RawConn) (room, size int, ok bool) { return 0, 0, false }
