package server

import (
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves the Go profiler (net/http/pprof) on Config.DebugAddr,
// a listener of its own, when set: for profiling the hub under load
// (go tool pprof http://<addr>/debug/pprof/profile). It is never mounted
// on the public address.
func (s *Server) startDebug() error {
	if s.cfg.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.DebugAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.debugAddr = ln.Addr()
	s.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.debug.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("debug listener", "err", err)
		}
	}()
	s.log.Info("profiler listening on http://"+displayAddr(ln.Addr())+"/debug/pprof/", "addr", ln.Addr().String())
	return nil
}

// DebugAddr returns the profiler's listen address; nil without
// Config.DebugAddr.
func (s *Server) DebugAddr() net.Addr { return s.debugAddr }
