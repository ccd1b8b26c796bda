// Package loadtest is sessionhub's load generator and zero-loss checker,
// run as cmd/loadtest. It answers three questions with numbers from one
// run: how fast, how many sockets, and is anything ever lost.
//
// # Topology
//
// By default a run starts its own servers on 127.0.0.1, each a separate
// process: one nats-server with JetStream (built from the nats-server/v2
// module of go.mod; with Config.Durability "strict" it runs with
// sync_interval: always) and Config.Instances hub instances, the
// cmd/sessionhub binary (built with go build) started with -nats pointing
// at that nats-server and one shared SESSIONHUB_KEYS. While the tree has no
// cmd/sessionhub, or with Config.FallbackHub, the instances are this
// package's own serve-hub mode: hub.New behind net/http with the same
// flags. Config.URLs runs against given instances instead.
//
// # Load
//
// Config.Sessions sessions each open Config.Sockets sockets (tabs), spread
// over the instances so that changes cross instances. The first
// Config.Writers sockets of a session send set ops, open loop at
// Config.Rate (each writer with a random phase, so that writers do not send
// in bursts) or closed loop; every op carries a value unique in the run
// ("x-s<session>-w<socket>-n<counter>", a private-use BCP 47 tag, which the
// demo's client-writable "language" key accepts). Every socket receives the
// changes. Sessions POST /hub/flush periodically, with the bridge's seq
// parameter as the browser client sends it. A socket whose connection ends
// reconnects with exponential backoff and jitter, home instance first, then
// resumes from the last sequence it saw.
//
// # Measures
//
// HDR histograms of ack latency, delivery latency to another socket of the
// session on the same instance and across instances, and flush latency;
// changes delivered per second; sockets held and why connections closed;
// flush requests per second in two throughput phases (with and without the
// seq parameter); and server memory per idle socket (VmRSS of the
// instance's process and the Go heap of its /metrics, before and after
// opening Config.IdleSockets sockets, each its own session).
//
// # Baselines
//
// The same run measures this machine's limits, so that the report gives
// ratios that hold on a noisy machine: a coder/websocket echo round trip
// and a bare net/http hello handler (a separate process, serve-baseline),
// and a synchronous JetStream publish round trip and the async publish rate
// against the run's nats-server. With -urls, -nats names the deployment's
// NATS servers for these, reached with the server's -nats-creds,
// -nats-nkey, -nats-user and -nats-tls-* flags and its
// SESSIONHUB_NATS_PASSWORD and SESSIONHUB_NATS_TOKEN.
//
// # CPU per op
//
// Every run reads utime+stime of /proc/PID/stat for each hub instance,
// nats-server and the load generator itself over the measured window
// (the load and its drain, or one shape), and reports CPU time per
// acknowledged op: steadier than wall-clock rates on a shared machine.
//
// # Side by side with Centrifugo
//
// With PeerConfig.Name "centrifugo" (-peer centrifugo) the run is a
// comparison instead of the load above: one hub instance and one
// Centrifugo (v6.9.1, go installed into the user's cache directory the
// first time, or PeerConfig.Bin) configured with both listeners on
// 127.0.0.1, usage statistics off, the memory engine, anonymous connects
// and a namespace where clients subscribe and publish, spoken to in its
// JSON client protocol (connect, subscribe, publish; a frame may hold
// several newline-separated replies; its ping {} is answered with {}). The
// same shapes run against each in turn: one writer writing each op after
// the last one's answer and delivery; N pairs (a session with a writer and
// a reader socket, a channel with a publisher and a subscriber) with at
// most W unanswered writes per writer, W = 1 and 32, on Centrifugo once
// more with each publisher subscribed to its channel too (the same two
// deliveries per write as a hub session's, whose writer's socket gets its
// own change); an open loop at a fixed total rate. Idle connections and
// memory per connection are measured first, on servers that have served no
// load (memory a load left free would take the sockets unseen). The hub
// runs its nats-server in its own process on an in-process connection, as
// one sessionhub instance runs on one machine (PeerConfig.NATS "embedded",
// the default): one process against one, its CPU all of the server's. With
// "external" (-peer-nats external) it connects over TCP to the run's
// nats-server, a process of its own, as N instances share one, and the
// report tells the hub's CPU apart from nats-server's. The run's
// nats-server process serves the JetStream baselines either way.
// Deliveries are counted at the reader on every server: what a writer's
// connection gets besides its answers (a hub socket's own changes, a
// subscribed publisher's publications) is read and counted but not
// decoded, so the load generator, on the same two cores, spends the same
// per write whatever the server sends the writer. The report puts each
// figure side by side with its ratio, and the hub's sessions get the
// zero-loss verdict below (in a side by side, delivery to the reader's
// socket).
//
// Each shape also runs on the bare relay (serve-relay, a separate
// process), the floor of the comparison: coder/websocket and nats.go, as
// the hub, staging every write in a stream configured as the hub's on a
// nats-server run as the hub's (in its process, or the run's) and sending
// its republished copy on, to the other socket as a change and to the
// writer with its ack in one frame. It keeps no session state and has no
// cookie, budget, limit, resume or slow-client guard, so the hub cannot
// spend less per write than it does: its CPU per write against the peer's
// tells what staging costs on these libraries, against the hub's what the
// hub adds. With PeerConfig.Rounds above 1 every shape runs that many
// times on each server in turn, and the report gives each ratio's median
// and spread over the rounds.
//
// On the shapes of one write in flight per writer (sequential, window 1),
// where no server can gather writes into one entry, the relay is the
// floor of each target: a target that the relay's median misses too is
// "out of reach" on this machine, not "not met". The CPU target then falls
// back to the hub's own CPU per write against the peer's, out of reach in
// turn when the relay alone misses that. With the nats-server embedded,
// one process to /proc, the hub's CPU profile over each shape (taken from
// its profiler, -debug-addr, and the relay's likewise) tells the hub
// alone apart (CPUSplit): a sample whose stack runs through the
// nats-server module is the nats-server's, one through other code outside
// the Go runtime the process's own, and the runtime's alone is shared in
// proportion. The profiler's own cost (a signal and a stack walk per 10
// ms of CPU) counts against the hub, alone and with its nats-server, where
// the peer runs unprofiled. A -server-bin without -debug-addr cannot be
// profiled: a run that embeds its nats-server fails on it. At window 32
// and in the open loop the relay (one entry per write) is no floor, and a
// target is met or not.
//
// # Zero-loss verdict
//
// Once the load stops and the sockets caught up, every session is flushed
// and Verify checks that every acknowledged op is in the flushed values, or
// superseded by an op of the same key with a higher sequence (learnt from
// its ack or from a change message). It also counts the acknowledged ops
// that did not reach every socket of their session as a change (live,
// replayed on resume, or folded into a reset or into a snapshot change:
// a socket that joins a log compacted meanwhile gets the entries the
// snapshot replaced as one change, PROTOCOL.md). Ops answered with an error
// or left unanswered by a dropped connection were not acknowledged and do
// not count. Faults: Config.KillInstance SIGKILLs one instance mid-run and
// restarts it; Config.RestartNATS restarts nats-server on its port and
// store.
//
// # NATS cluster
//
// Config.Cluster.Nodes (-nats-cluster 3) starts that many nats-server
// processes clustered over routes, each with its own store, the stream at
// R3, every hub instance given all their URLs. Its faults, each at a point
// of the load: -kill-nats-leader (the stream's leader, found from the
// stream info, SIGKILLed and restarted on its store after -nats-pause),
// -pause-nats (a follower stopped with SIGSTOP, continued with SIGCONT),
// -restart-all (every nats-server SIGKILLed and restarted). For each fault,
// and for -kill-instance and -restart-nats, the report gives the longest
// time without an acknowledged op and the ops answered unavailable, from
// the fault to 10 seconds after it was over (or the next fault).
// -compare-r1 D first runs the same load for D at R1 on a fresh cluster
// without faults and reports the R3 run's ops/s against it; a loss in
// either run counts in the verdict.
//
// # Output
//
// Progress on stderr; Report.WriteText on stdout, ending with the line
// "lost: N"; Report.WriteJSON and Report.WriteHTML (inline SVG plots) to
// files. Main exits 1 when an acknowledged op was lost.
package loadtest
