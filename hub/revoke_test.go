package hub_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// TestRevocationBucketTTL: a logout is kept in the revocation bucket
// (<Stream>_REVOKED) for the cookie lifetime plus the clock skew plus a
// minute (docs/PROTOCOL.md, SECURITY.md), as JetStream holds the bucket,
// and the record of a logged-out session has no shorter TTL of its own.
func TestRevocationBucketTTL(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const lifetime, skew = 2 * time.Hour, 30 * time.Second
	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}, Lifetime: lifetime, ClockSkew: skew})
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, ns, func(o *hub.Options) { o.Store = store })
	id := "0123456789abcdef0123456789abcdef"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.hub.End(ctx, id); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(in.nc)
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "SESSIONHUB_REVOKED"
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const want = lifetime + skew + time.Minute
	if st.TTL() != want {
		t.Fatalf("revocation bucket TTL %v, want %v", st.TTL(), want)
	}
	if _, err := kv.Get(ctx, id); err != nil {
		t.Fatalf("the ended session's record: %v", err)
	}
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().Config.MaxAge; got != want {
		t.Fatalf("the bucket's stream keeps records %v, want %v", got, want)
	}
	rec, err := stream.GetLastMsgForSubject(ctx, "$KV."+bucket+"."+id)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := rec.Header.Get(jetstream.MsgTTLHeader); ttl != "" {
		t.Fatalf("the revocation record has a TTL of its own: %s", ttl)
	}
}

// TestEndNotRecorded: when JetStream cannot record a logout (nats-server
// disabled it, as it does when its store fails), hub.End returns
// unavailable and the logout did not happen (SECURITY.md): no socket of
// the session is closed, on any instance, and its next request there
// still has its values. Once NATS is back (restarted on its store), the
// retried logout closes the sockets with 4000.
func TestEndNotRecorded(t *testing.T) {
	t.Parallel()
	ns, restartNATS := restartableNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c := newClient(t)
	s := c.dial(b)
	s.expect("welcome")
	s.set("colour", "red")
	id := sessionID(t, b.store, c.cookie(b))

	if err := ns.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.hub.End(ctx, id); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("End without JetStream: %v, want unavailable", err)
	}
	// The socket on the other instance is open: its request is answered.
	if r := s.reply(s.send(map[string]any{"type": "set", "key": "colour", "value": "blue"})); r["type"] != "error" || r["code"] != "unavailable" {
		t.Fatalf("a socket write without JetStream: %v, want error unavailable", r)
	}
	if st, body := c.do(b, "GET", "/app/get", nil); st != http.StatusOK || values(body)["colour"] != "red" {
		t.Fatalf("after the unrecorded logout the session's request got %d %v, want colour red", st, body)
	}

	restartNATS()
	// Retried with backoff until the hub's connection and JetStream are back.
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := a.hub.End(ctx, id)
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("End with NATS back: %v", err)
		}
		time.Sleep(wait)
	}
	if m := s.expect("closed"); m["code"] != float64(hub.CloseSessionEnded) {
		t.Fatalf("after the logout: %v, want close 4000", m)
	}
}
