package natsconn_test

import (
	"flag"
	"fmt"
	"os"

	"github.com/sessionhub/sessionhub/internal/natsconn"
)

// The flags of a process that connects to NATS, and the secrets from the
// environment.
func Example() {
	var o natsconn.Options
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	o.AddFlags(fs)
	_ = fs.Parse([]string{"-nats-user", "app", "-nats-tls-ca", "/etc/nats/ca.pem"})
	o.ReadEnv(os.Getenv) // SESSIONHUB_NATS_PASSWORD
	fmt.Println(o.User, o.CAFile, o.Validate())
	// Output: app /etc/nats/ca.pem <nil>
}
