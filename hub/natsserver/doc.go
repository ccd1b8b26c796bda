// Package natsserver runs an embedded nats-server with JetStream for a
// hub: what an application embedding sessionhub on one machine needs
// (cmd/sessionhub's default engine, and the engine of tests). Past one
// machine, connect the hub to a NATS cluster instead (docs/DEPLOY.md).
//
// # Durability
//
// DurabilityDefault keeps nats-server's default: an append is acknowledged
// once written to the operating system and fsynced every two minutes, so
// a power loss can lose acknowledged appends. DurabilityStrict sets
// sync_interval to always: every append is fsynced before it is
// acknowledged. The loadtest measures the difference (BENCHMARKS.md).
//
// # Connections
//
// Start listens on 127.0.0.1 and a random port unless told otherwise;
// with DontListen the server takes in-process connections only, and
// Connect uses them. Server.InProcess gives the options of such a
// connection to a nats.Connect with options of its own; it writes
// without nats.go's write deadline, which the in-process pipe pays for
// with a timer per publish.
package natsserver
