package natsserver_test

import (
	"fmt"
	"log"
	"os"

	"github.com/sessionhub/sessionhub/hub/natsserver"
)

// An in-process server in strict durability, and a client connection.
func Example() {
	dir, _ := os.MkdirTemp("", "natsserver-example")
	defer os.RemoveAll(dir)
	d, _ := natsserver.ParseDurability("strict")
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, DontListen: true, Durability: d})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	nc, err := srv.Connect("example")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	fmt.Println(nc.IsConnected(), srv.JetStreamEnabled())
	// Output: true true
}
