package natsserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Durability is how JetStream persists an append before acknowledging it.
type Durability string

const (
	// DurabilityDefault: JetStream acknowledges an append once written to
	// the OS, fsyncing every two minutes (nats-server's default
	// sync_interval). A power loss can lose acknowledged appends.
	DurabilityDefault Durability = "default"
	// DurabilityStrict: sync_interval always, fsync before every
	// acknowledgement. Slower; survives power loss.
	DurabilityStrict Durability = "strict"
)

// ParseDurability parses "default" or "strict".
func ParseDurability(s string) (Durability, error) {
	switch Durability(s) {
	case DurabilityDefault, "":
		return DurabilityDefault, nil
	case DurabilityStrict:
		return DurabilityStrict, nil
	}
	return "", fmt.Errorf("durability %q: want default or strict", s)
}

// Options configures an embedded server.
type Options struct {
	// StoreDir is the JetStream store directory. Required.
	StoreDir string
	// Host and Port for client connections. Default: 127.0.0.1 and a
	// random port; Port -1 (DontListen) serves in-process connections only.
	Host string
	Port int
	// DontListen serves in-process connections only.
	DontListen bool
	// Durability. Default: DurabilityDefault.
	Durability Durability
	// ServerName. Default: "sessionhub".
	ServerName string
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
}

// Start starts a nats-server with JetStream and waits until it is ready.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.ServerName == "" {
		o.ServerName = "sessionhub"
	}
	opts := &server.Options{
		ServerName: o.ServerName,
		Host:       o.Host,
		Port:       o.Port,
		DontListen: o.DontListen,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if o.Durability == DurabilityStrict {
		opts.SyncAlways = true
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsserver: not ready within 10s")
	}
	return &Server{s}, nil
}

// Connect returns a client connection: in-process when the server does
// not listen, else over TCP. It reconnects forever.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
	if s.Server.ClientURL() == "" || s.Server.Addr() == nil {
		return nats.Connect("", append(opts, s.InProcess()...)...)
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// InProcess returns the options of a client connection in s's process
// (nats.InProcessServer), with no write timeout: nats.go bounds each
// write of its flusher by setting the connection's write deadline before
// it and clearing it after (nats.FlusherTimeout, a minute by default),
// which on the in-process connection, a net.Pipe, starts and stops a
// runtime timer per write: an allocation, and a timer whose start wakes
// a sleeping thread of the runtime, on every publish. The pipe's other
// end is the server's read loop in the same process, which never stops
// reading while the server runs and ends the pipe when it shuts down: a
// deadline there bounds nothing a TCP connection's does (a peer gone
// without a word), so the in-process connection goes without.
func (s *Server) InProcess() []nats.Option {
	return []nats.Option{nats.InProcessServer(s.Server), nats.FlusherTimeout(0)}
}

// Close shuts the server down and waits for it.
func (s *Server) Close() {
	s.Shutdown()
	s.WaitForShutdown()
}
