package natsconn_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/internal/natsconn"
	"github.com/sessionhub/sessionhub/internal/testtls"
)

// startTLS starts a nats-server requiring TLS with verified client
// certificates, with auth configuring its authorization.
func startTLS(t *testing.T, certs testtls.Certs, auth func(*server.Options)) *server.Server {
	t.Helper()
	ns, err := testtls.StartNATS(t.TempDir(), certs, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// operator sets o up in operator mode with one account that may use
// JetStream, and writes the credentials file of a user of it.
func operator(t *testing.T, o *server.Options, credsPath string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	must(err)
	if oc, err = jwt.DecodeOperatorClaims(ojwt); err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	account := func(js bool) (nkeys.KeyPair, string) {
		akp, err := nkeys.CreateAccount()
		must(err)
		apub, err := akp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(apub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		must(err)
		must(resolver.Store(apub, ajwt))
		return akp, apub
	}
	_, sys := account(false)
	akp, _ := account(true)
	ukp, err := nkeys.CreateUser()
	must(err)
	upub, err := ukp.PublicKey()
	must(err)
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	must(err)
	seed, err := ukp.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	must(err)
	must(os.WriteFile(credsPath, creds, 0o600))
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.AccountResolver = resolver
	o.SystemAccount = sys
}

// TestConnect connects with each way of authenticating, over TLS with a
// verified client certificate, and checks that JetStream answers; and
// that wrong secrets or missing TLS settings are refused.
func TestConnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs, err := testtls.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	userKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := userKP.PublicKey()
	userSeed, _ := userKP.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, userSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(dir, "user.creds")
	tlsOK := natsconn.Options{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	users := func(o *server.Options) { o.Users = []*server.User{{Username: "app", Password: "s3cret"}} }
	for _, tc := range []struct {
		name    string
		auth    func(*server.Options)
		opts    natsconn.Options
		wantErr string
	}{
		{name: "user and password", auth: users, opts: natsconn.Options{User: "app", Password: "s3cret"}},
		{name: "token", auth: func(o *server.Options) { o.Authorization = "t0ken" }, opts: natsconn.Options{Token: "t0ken"}},
		{name: "nkey seed", auth: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: userPub}} }, opts: natsconn.Options{NKeyFile: seedFile}},
		{name: "credentials file", auth: func(o *server.Options) { operator(t, o, credsFile) }, opts: natsconn.Options{CredsFile: credsFile}},
		{name: "wrong password", auth: users, opts: natsconn.Options{User: "app", Password: "guess"}, wantErr: "authorization"},
		{name: "no client certificate", auth: users, opts: natsconn.Options{User: "app", Password: "s3cret", CAFile: certs.CA}, wantErr: "tls"},
		{name: "unknown CA", auth: users, opts: natsconn.Options{User: "app", Password: "s3cret", CertFile: certs.ClientCert, KeyFile: certs.ClientKey}, wantErr: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startTLS(t, certs, tc.auth)
			o := tc.opts
			if o.CAFile == "" && o.CertFile == "" && tc.name != "unknown CA" {
				o.CAFile, o.CertFile, o.KeyFile = tlsOK.CAFile, tlsOK.CertFile, tlsOK.KeyFile
			}
			if !strings.HasPrefix(ns.ClientURL(), "tls://") {
				t.Fatalf("server URL %s: want tls://", ns.ClientURL())
			}
			nc, err := o.Connect([]string{ns.ClientURL()}, nats.Timeout(5*time.Second))
			if tc.wantErr != "" {
				if err == nil {
					nc.Close()
					t.Fatalf("connected; want an error with %q", tc.wantErr)
				}
				if !strings.Contains(strings.ToLower(err.Error()), tc.wantErr) {
					t.Fatalf("error %v; want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := js.AccountInfo(ctx); err != nil {
				t.Fatalf("JetStream: %v", err)
			}
		})
	}
}

// TestConnectFailsOver: with several URLs, a dead first server is
// skipped.
func TestConnectFailsOver(t *testing.T) {
	t.Parallel()
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	dead, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	deadURL := dead.ClientURL()
	dead.Close()
	var o natsconn.Options
	nc, err := o.Connect([]string{deadURL, ns.ClientURL()}, nats.DontRandomize())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); got != ns.ClientURL() {
		t.Fatalf("connected to %s; want %s", got, ns.ClientURL())
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Parallel()
	var o natsconn.Options
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"-nats-user", "u", "-nats-tls-ca", "ca.pem", "-nats-tls-cert", "c.pem", "-nats-tls-key", "k.pem"}); err != nil {
		t.Fatal(err)
	}
	o.ReadEnv(func(k string) string { return map[string]string{natsconn.EnvPassword: "pw"}[k] })
	want := natsconn.Options{User: "u", Password: "pw", CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"}
	if o != want {
		t.Fatalf("got %+v; want %+v", o, want)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if fs.Lookup("nats-password") != nil || fs.Lookup("nats-token") != nil {
		t.Fatal("secrets must not be flags")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    natsconn.Options
		want string
	}{
		{"two ways", natsconn.Options{CredsFile: "c", Token: "t"}, "use one"},
		{"password alone", natsconn.Options{Password: "p"}, "without -nats-user"},
		{"cert without key", natsconn.Options{CertFile: "c"}, "go together"},
		{"missing seed file", natsconn.Options{NKeyFile: "/nonexistent/seed"}, "-nats-nkey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.NATSOptions()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one with %q", err, tc.want)
			}
		})
	}
}
