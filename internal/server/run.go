package server

import (
	"context"
	"io"
	"log/slog"

	"github.com/sessionhub/sessionhub/internal/gctune"
)

// NewLogger returns the server's logger: text lines, or JSON lines with
// c.LogJSON, at c.LogLevel and above.
func NewLogger(w io.Writer, c *Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run starts a server for cfg and serves until ctx is done (a signal, in
// the command), then shuts it down within cfg.ShutdownTimeout. It returns
// nil after a graceful shutdown.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	return RunApp(ctx, cfg, nil, logger)
}

// RunApp is Run with app served in place of the demo (see NewApp).
func RunApp(ctx context.Context, cfg Config, app *App, logger *slog.Logger) error {
	// The process's garbage collector: Run is the process's server.
	stopGC := gctune.Keep(uint64(cfg.GCHeadroom))
	defer stopGC()
	s := NewApp(cfg, app, logger)
	if err := s.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx), "timeout", cfg.ShutdownTimeout.String())
	case serveErr = <-s.Err():
		logger.Error("HTTP server stopped", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		logger.Error("shutdown was not graceful", "err", err)
	}
	return serveErr
}
