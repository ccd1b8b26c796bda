package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// subcommands are the hidden server modes of cmd/loadtest, started as
// separate processes by a run.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	serveHubCmd:      serveHub,
	serveBaselineCmd: serveBaseline,
	serveRelayCmd:    serveRelay,
}

// Main is cmd/loadtest: it parses args, runs, writes the text report to
// stdout (and the JSON and HTML files asked for) and returns the exit
// code: 0, 1 when an acknowledged op was lost, 2 when the run failed.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if serve, ok := subcommands[args[0]]; ok {
			if err := serve(args[1:], stdout, stderr); err != nil {
				fmt.Fprintf(stderr, "loadtest %s: %v\n", args[0], err)
				return 2
			}
			return 0
		}
	}
	cfg := DefaultConfig()
	if err := parseFlags(&cfg, args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	rep, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := errors.Join(write(cfg.JSONPath, rep.WriteJSON), write(cfg.HTMLPath, rep.WriteHTML)); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	if !rep.Verdict.OK() {
		return 1
	}
	return 0
}
