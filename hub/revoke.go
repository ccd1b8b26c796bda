package hub

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// revocations is the record of ended sessions: a JetStream key-value
// bucket, one key per session ID, each kept for the cookie lifetime (the
// bucket's TTL), so a logout holds for as long as any cookie of the session
// can still verify, whatever the log holds. Every instance shares it and
// subscribes to its republish subject, <Subject>.revoked.<id>, so views
// learn of a logout made anywhere. JetStream republishes a record only
// once stored: a put that failed (JetStream down, no quorum) reaches no
// instance, where a subscription to the bucket's own $KV subject would
// get the publish whether stored or not.
type revocations struct {
	kv      jetstream.KeyValue
	subject string // <Subject>.revoked.
	sub     *nats.Subscription
	timeout time.Duration
}

// revocationTTL is how long a revocation is kept: the longest a cookie of
// the session may still verify (its lifetime and the accepted clock skew),
// and a minute for clocks between instances.
func revocationTTL(o *Options) time.Duration {
	so := o.Store.Options()
	return so.Lifetime + so.ClockSkew + time.Minute
}

// open creates or updates the bucket and subscribes to its changes;
// onRevoked receives the ID of every session revoked from then on.
func (r *revocations) open(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, o *Options, onRevoked func(id string)) error {
	cfg := jetstream.KeyValueConfig{
		Bucket:      o.RevocationBucket,
		Description: "sessionhub ended sessions, kept for the cookie lifetime",
		History:     1,
		TTL:         revocationTTL(o),
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		RePublish: &jetstream.RePublish{
			Source:      "$KV." + o.RevocationBucket + ".*",
			Destination: o.Subject + ".revoked.{{wildcard(1)}}",
			HeadersOnly: true, // the key is the news
		},
	}
	if o.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	var kv jetstream.KeyValue
	if err := untilPlaced(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	}); err != nil {
		return err
	}
	r.kv, r.timeout = kv, o.WriteTimeout
	r.subject = o.Subject + ".revoked."
	var err error
	r.sub, err = nc.Subscribe(r.subject+"*", func(m *nats.Msg) {
		if m.Header.Get("KV-Operation") != "" { // a delete or purge, never made by the hub
			return
		}
		onRevoked(strings.TrimPrefix(m.Subject, r.subject))
	})
	return err
}

func (r *revocations) close() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
}

// revoke records that session id ended. It returns once JetStream
// acknowledged the record.
func (r *revocations) revoke(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.kv.Put(ctx, id, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return wrapErr(ErrUnavailable, err)
	}
	return nil
}

// revoked reports whether session id ended.
func (r *revocations) revoked(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.kv.Get(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, wrapErr(ErrUnavailable, err)
}
