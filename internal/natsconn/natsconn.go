package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// Environment variables of the secrets; there are no flags for them.
const (
	EnvPassword = "SESSIONHUB_NATS_PASSWORD"
	EnvToken    = "SESSIONHUB_NATS_TOKEN"
)

// Options are the authentication and TLS settings of a NATS connection.
// The zero value connects without authentication and, unless a URL says
// tls://, without TLS.
type Options struct {
	// CredsFile is a user credentials file (JWT and NKey seed, as nsc
	// writes them). Default: none.
	CredsFile string
	// NKeyFile is a file holding a user NKey seed (SU...). Default: none.
	NKeyFile string
	// User and Password authenticate with a user name; Password comes
	// from EnvPassword. Default: none.
	User     string
	Password string
	// Token authenticates with a token, from EnvToken. Default: none.
	Token string
	// CAFile is a PEM file of the CAs that verify the servers'
	// certificates; setting it requires TLS. Default: the system's CAs,
	// and TLS only for tls:// URLs.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for servers that verify clients. Default: none.
	CertFile string
	KeyFile  string
}

// AddFlags registers the flags of o on fs, prefixed "nats-": -nats-creds,
// -nats-nkey, -nats-user, -nats-tls-ca, -nats-tls-cert and -nats-tls-key,
// with o's values as defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CredsFile, "nats-creds", o.CredsFile, "NATS user credentials `file` (JWT and NKey seed)")
	fs.StringVar(&o.NKeyFile, "nats-nkey", o.NKeyFile, "`file` of a NATS user NKey seed")
	fs.StringVar(&o.User, "nats-user", o.User, "NATS user `name`; the password comes from "+EnvPassword)
	fs.StringVar(&o.CAFile, "nats-tls-ca", o.CAFile, "PEM `file` of the CAs that verify the NATS servers (requires TLS)")
	fs.StringVar(&o.CertFile, "nats-tls-cert", o.CertFile, "PEM `file` of the client certificate for NATS (with -nats-tls-key)")
	fs.StringVar(&o.KeyFile, "nats-tls-key", o.KeyFile, "PEM `file` of the client certificate's key (with -nats-tls-cert)")
}

// ReadEnv sets the secrets (Password, Token) from getenv, when set.
func (o *Options) ReadEnv(getenv func(string) string) {
	if v := getenv(EnvPassword); v != "" {
		o.Password = v
	}
	if v := getenv(EnvToken); v != "" {
		o.Token = v
	}
}

// Validate reports bad combinations: more than one way to authenticate,
// a password without a user, a certificate without its key.
func (o *Options) Validate() error {
	var errs []error
	var auth []string
	if o.CredsFile != "" {
		auth = append(auth, "-nats-creds")
	}
	if o.NKeyFile != "" {
		auth = append(auth, "-nats-nkey")
	}
	if o.User != "" {
		auth = append(auth, "-nats-user")
	}
	if o.Token != "" {
		auth = append(auth, EnvToken)
	}
	if len(auth) > 1 {
		errs = append(errs, fmt.Errorf("NATS authentication: %s are set: use one", strings.Join(auth, " and ")))
	}
	if o.Password != "" && o.User == "" {
		errs = append(errs, fmt.Errorf("%s is set without -nats-user", EnvPassword))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("-nats-tls-cert and -nats-tls-key go together"))
	}
	return errors.Join(errs...)
}

// NATSOptions returns the nats.go options of o. It reads the NKey seed
// file, so that a missing or bad one is reported here.
func (o *Options) NATSOptions() ([]nats.Option, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("-nats-nkey %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	return opts, nil
}

// Connect connects to the servers at urls (any of them; the connection
// fails over between them) with o's options followed by extra.
func (o *Options) Connect(urls []string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := o.NATSOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", strings.Join(urls, ","), err)
	}
	return nc, nil
}
