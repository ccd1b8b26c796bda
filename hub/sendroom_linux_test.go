package hub

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestSendRoom: the kernel's send buffer of a fresh connection has room
// for a frame, and not for more than the buffer, and a ping is answered;
// once a client that does not read let it fill, a write waits, it has no
// room for one and no pong is written; once the client read it all, it
// has room again.
func TestSendRoom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if err := server.(*net.TCPConn).SetWriteBuffer(DefaultSocketKernelBuffer); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	rc := rawConn(server)
	if rc == nil {
		t.Fatal("a TCP connection without its file descriptor")
	}
	room := func() int {
		t.Helper()
		n, size, ok := sendRoom(rc)
		if !ok || size < n {
			t.Fatal("the kernel does not tell the send buffer's room")
		}
		return n
	}
	if n := room(); n < sendCost(1<<10) || n >= sendCost(1<<20) {
		t.Fatalf("a fresh connection with a 64 KiB send buffer: room %d; want some for 1 KiB, none for 1 MiB", n)
	}
	c := &conn{rawc: rc}
	if !c.pongFits() {
		t.Fatal("a fresh connection: no pong answered")
	}

	// Fill it: the client reads nothing, and a write finally waits.
	chunk := make([]byte, 4<<10)
	written := 0
	for {
		_ = server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := server.Write(chunk)
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if written > 64<<20 {
			t.Fatal("64 MiB written to a client that does not read")
		}
	}
	if n := room(); n >= sendCost(100) {
		t.Fatalf("after %d bytes to a client that does not read, a write waited; sendRoom still reports room %d", written, n)
	}
	if c.pongFits() {
		t.Fatal("a full send buffer: a pong still answered")
	}

	// The client reads it all: room again.
	got, err := io.ReadFull(client, make([]byte, written))
	if err != nil {
		t.Fatalf("the client read %d of %d bytes: %v", got, written, err)
	}
	for deadline := time.Now().Add(10 * time.Second); room() < sendCost(1<<10); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no room 10s after the client read everything")
		}
	}
}

// TestRawConnWithoutDescriptor: a connection without a file descriptor
// (a pipe) has none for sendRoom: its frames go to the writer goroutine.
func TestRawConnWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rawConn(a) != nil {
		t.Fatal("a pipe's raw conn")
	}
}
