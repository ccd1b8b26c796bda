// Command sessionhub serves cookie sessions that WebSockets can write: the
// hub, its bridge and a demo app, with an embedded NATS server by default.
//
//	go run ./cmd/sessionhub          # http://127.0.0.1:8080
//	sessionhub -help                 # flags and their environment variables
//	sessionhub keygen [-encrypt]     # a key entry for SESSIONHUB_KEYS
//	sessionhub inspect COOKIE        # verify a cookie and print its contents
//	sessionhub proxy -upstream URL   # the hub in front of a Flask or Quart app
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		var ex exitError
		if !errors.As(err, &ex) {
			fmt.Fprintln(os.Stderr, "sessionhub:", err)
		}
		os.Exit(1)
	}
}
