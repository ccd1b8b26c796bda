// Package natsconn is how sessionhub's processes (the server and the
// loadtest) connect to an external NATS deployment: several server URLs,
// a credentials file, an NKey seed, a user and password or a token, and
// TLS with a CA file and a client certificate. The server and the
// loadtest register the same flags with AddFlags and read the same
// secrets from the environment with ReadEnv.
//
// # Secrets
//
// Passwords and tokens never come from a flag, so that they never show in
// a process list: SESSIONHUB_NATS_PASSWORD and SESSIONHUB_NATS_TOKEN hold
// them. Files (credentials, NKey seed, TLS key) are named by flags and
// read when connecting.
//
// # Combinations
//
// At most one of a credentials file, an NKey seed, a user (with its
// password) and a token authenticates the connection; TLS goes with any
// of them. A client certificate needs its key and the other way round.
// Validate reports a bad combination before any connection is tried.
package natsconn
