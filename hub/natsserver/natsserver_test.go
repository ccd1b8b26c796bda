package natsserver_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub/natsserver"
)

// A client's in-process connection writes without a deadline (no timer
// per publish), one over TCP with nats.go's; both carry messages.
func TestConnectFlusherTimeout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dontListen bool
		want       time.Duration
	}{
		{"in-process", true, 0},
		{"tcp", false, nats.DefaultFlusherTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), DontListen: tc.dontListen})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			nc, err := s.Connect("test")
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if d := nc.Opts.FlusherTimeout; d != tc.want {
				t.Errorf("flusher timeout %v, want %v", d, tc.want)
			}
			sub, err := nc.SubscribeSync("t")
			if err != nil {
				t.Fatal(err)
			}
			for range 100 {
				if err := nc.Publish("t", []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 100 {
				if _, err := sub.NextMsg(5 * time.Second); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
		})
	}
}

// Closing the server ends an in-process connection, whose writes have no
// deadline: the client sees the pipe close, and a flush fails rather
// than waits.
func TestInProcessConnectionEndsWithTheServer(t *testing.T) {
	s, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), DontListen: true})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := s.Connect("test")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	defer nc.Close()
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("still connected 10 s after the server's shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := nc.FlushTimeout(time.Second); err == nil {
		t.Fatal("a flush to a server shut down succeeded")
	}
}
