package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessionhub/sessionhub/internal/proxy"
	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// errUsage reports bad command-line usage (exit status 2); the message
// was printed already.
var errUsage = errors.New("usage")

// exitError makes the command exit with status 1 without printing more:
// what went wrong was printed already.
type exitError struct{ err error }

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// run runs the command line args: the server by default, or a
// subcommand. getenv reads the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return keygen(args[1:], stdout, stderr)
		case "inspect":
			return inspect(args[1:], getenv, stdout, stderr)
		case "proxy":
			return runProxy(ctx, args[1:], getenv, stderr)
		case "help":
			server.PrintUsage(stdout, "sessionhub")
			return nil
		}
	}
	cfg, rest, err := server.ParseConfig("sessionhub", args, getenv, stderr)
	if err != nil {
		return usageErr(err)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "sessionhub: unexpected argument %q (see sessionhub -help)\n", rest[0])
		return errUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.Run(ctx, cfg, server.NewLogger(stderr, &cfg))
}

// runProxy runs sessionhub proxy: the hub in front of a Flask or Quart app.
func runProxy(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := proxy.ParseConfig("sessionhub proxy", args, getenv, stderr)
	if err != nil {
		return usageErr(err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return proxy.Run(ctx, cfg, server.NewLogger(stderr, &cfg.Server))
}

// usageErr turns a flag or configuration error, which was printed
// already, into the command's error: -help is not one.
func usageErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return flag.ErrHelp
	}
	return errUsage
}

// keygen prints a new key entry for SESSIONHUB_KEYS: a 64-byte hash key,
// and with -encrypt a 32-byte AES-256 block key.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sessionhub keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	encrypt := fs.Bool("encrypt", false, "add an AES-256 block key: cookies are encrypted as well as signed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sessionhub keygen [-encrypt]\n\nPrints a new key entry for %s (put it first to rotate; keep the old\nentries after it until their cookies have expired).\n\nWithout -encrypt, cookies are signed only: anyone holding one can read\nits session ID and every value, though not change them. Use -encrypt\nwhen values are private.\n\n", server.EnvKeys)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	_, err := fmt.Fprintln(stdout, server.FormatKey(session.GenerateKeyPair(*encrypt)))
	return err
}

// Inspection is what inspect prints for a valid cookie.
type Inspection struct {
	ID        string                     `json:"id"`
	Seq       uint64                     `json:"seq"`
	Permanent bool                       `json:"permanent"`
	Created   *time.Time                 `json:"created,omitempty"`
	Values    map[string]json.RawMessage `json:"values"`
}

// inspect verifies a cookie with the configured keys (the server's flags
// and environment) and prints its contents as JSON, or why it is refused
// (exit status 1).
func inspect(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := server.ParseConfig("sessionhub inspect", args, getenv, stderr)
	if err != nil {
		return usageErr(err)
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "Usage: sessionhub inspect [flags] COOKIE   (the cookie's value, or name=value; see sessionhub -help for the flags)")
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, _, err := server.LoadKeys(&cfg, false, log)
	if err != nil {
		return err
	}
	store, err := session.NewStore(cfg.SessionOptions(keys))
	if err != nil {
		return err
	}
	value := strings.TrimSpace(rest[0])
	value = strings.TrimPrefix(value, "Cookie: ")
	value = strings.TrimPrefix(value, cfg.CookieName+"=")
	value, _, _ = strings.Cut(value, ";")
	s, err := store.Decode(value)
	if err != nil {
		reason := session.ReasonOf(err)
		if reason == "" {
			reason = "invalid"
		}
		fmt.Fprintf(stderr, "cookie rejected: %s (%v)\n", reason, err)
		return exitError{err}
	}
	snap := s.Snapshot()
	out := Inspection{ID: snap.ID, Seq: snap.Seq, Permanent: snap.Permanent, Values: snap.Values}
	if !snap.Created.IsZero() {
		t := snap.Created.UTC()
		out.Created = &t
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
