package hub_test

import (
	"net"
	"net/http"
)

type localServer struct {
	Addr string
	srv  *http.Server
}

func newLocalServer(h http.Handler) *localServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return &localServer{Addr: ln.Addr().String(), srv: srv}
}

func (s *localServer) Close() { _ = s.srv.Close() }
