package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sessionhub/sessionhub/internal/natsconn"
	"github.com/sessionhub/sessionhub/internal/testtls"
)

// The loadtest reaches a real deployment's NATS as the server does: TLS
// with a client certificate, the token from the environment, several
// URLs.
func TestBaselinesOverTLSAndAuth(t *testing.T) {
	certs, err := testtls.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := testtls.StartNATS(t.TempDir(), certs, func(o *server.Options) { o.Authorization = "l0ad" })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	for _, token := range []string{"l0ad", "wrong"} {
		// With the right token, a dead server first; with the wrong one,
		// only the live server, whose refusal is then the error.
		urls := "nats://127.0.0.1:1," + ns.ClientURL()
		if token == "wrong" {
			urls = ns.ClientURL()
		}
		args := []string{"-urls", "http://127.0.0.1:1", "-nats", urls,
			"-nats-tls-ca", certs.CA, "-nats-tls-cert", certs.ClientCert, "-nats-tls-key", certs.ClientKey}
		t.Setenv(natsconn.EnvToken, token)
		cfg := DefaultConfig()
		if err := parseFlags(&cfg, args, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if cfg.NATSConn.Token != token || cfg.NATSConn.CAFile != certs.CA {
			t.Fatalf("NATS options %+v", cfg.NATSConn)
		}
		var b Baselines
		err := jsBaselines(context.Background(), cfg.NATSURL, &cfg.NATSConn, 0, &b)
		switch {
		case token == "l0ad" && err != nil:
			t.Fatalf("baselines: %v", err)
		case token == "l0ad" && b.JSPublish.Count == 0:
			t.Fatal("no JetStream publish measured")
		case token == "wrong" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization")):
			t.Fatalf("wrong token: %v", err)
		}
	}
}

func TestNATSConnNeedsExternalServers(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	err := parseFlags(&cfg, []string{"-nats-user", "u"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "need -urls and -nats") {
		t.Fatalf("error %v", err)
	}
}
