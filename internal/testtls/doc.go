// Package testtls writes a CA and the certificates it signs (a server
// certificate for 127.0.0.1 and localhost, a client certificate) and
// starts an in-process nats-server requiring TLS with verified client
// certificates and the authorization a test gives it: the tests of
// connecting to a real deployment's NATS (internal/natsconn, the server,
// the loadtest).
package testtls
