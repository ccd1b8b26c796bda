package testtls_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sessionhub/sessionhub/internal/testtls"
)

// A nats-server that requires TLS, client certificates and a password.
func Example() {
	dir, _ := os.MkdirTemp("", "testtls-example")
	defer os.RemoveAll(dir)
	certs, err := testtls.WriteCerts(dir)
	if err != nil {
		log.Fatal(err)
	}
	ns, err := testtls.StartNATS(dir, certs, func(o *server.Options) {
		o.Users = []*server.User{{Username: "app", Password: "s3cret"}}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	fmt.Println(strings.HasPrefix(ns.ClientURL(), "tls://127.0.0.1:"))
	// Output: true
}
