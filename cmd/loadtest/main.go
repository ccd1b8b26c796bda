// Command loadtest runs sessionhub's load test: it starts nats-server and
// hub instances on 127.0.0.1 (or uses -urls), runs sessions of several
// sockets against them with faults, checks that no acknowledged op was
// lost, and reports latency and throughput next to this machine's
// baselines. See the loadtest package and BENCHMARKS.md.
//
//	go run ./cmd/loadtest -duration 10s
package main

import (
	"os"

	"github.com/sessionhub/sessionhub/loadtest"
)

func main() {
	os.Exit(loadtest.Main(os.Args[1:], os.Stdout, os.Stderr))
}
