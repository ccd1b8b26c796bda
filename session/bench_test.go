package session_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/sessionhub/sessionhub/session"
)

// benchSnapshot is a session whose cookie value is about 600 bytes: a
// user record, a few flags, a short list.
func benchSnapshot() session.Snapshot {
	return session.Snapshot{
		ID:        testID,
		Seq:       1234567,
		Permanent: true,
		Created:   t0.Add(-time.Hour),
		Values: vals(
			"user", `{"id":4217,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","editor"]}`,
			"theme", `"dark"`,
			"lang", `"en-GB"`,
			"cart", `[101,202,303,404,505]`,
			"csrf", `"`+strings.Repeat("k", 32)+`"`,
			"flash", `null`,
		),
	}
}

// barePayload mirrors the codec's payload: the same fields and JSON names,
// so that bare securecookie serializes the same bytes.
type barePayload struct {
	ID        string                     `json:"i"`
	Seq       uint64                     `json:"s,omitempty"`
	Values    map[string]json.RawMessage `json:"v,omitempty"`
	Permanent bool                       `json:"p,omitempty"`
	Created   int64                      `json:"c,omitempty"`
	Issued    int64                      `json:"t"`
}

// BenchmarkCodec is an encode and a decode of a ~600-byte cookie through
// the Codec (HMAC-SHA256, no encryption).
func BenchmarkCodec(b *testing.B) {
	c := newCodec(b, session.CodecOptions{Keys: []session.KeyPair{keyA}})
	snap := benchSnapshot()
	size := len(encode(b, c, "session", snap))
	b.ReportAllocs()
	for b.Loop() {
		v, err := c.Encode("session", snap)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode("session", v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "cookie-bytes")
}

// BenchmarkBareSecurecookie is the same round trip with securecookie
// alone: same key, JSONEncoder, a struct of the same shape. Codec's
// overhead is BenchmarkCodec's time over this one's.
func BenchmarkBareSecurecookie(b *testing.B) {
	sc := securecookie.New(keyA.Hash, nil)
	sc.SetSerializer(securecookie.JSONEncoder{})
	sc.MaxAge(int(session.DefaultLifetime / time.Second))
	sc.MaxLength(session.MaxCookieSize)
	snap := benchSnapshot()
	p := barePayload{ID: snap.ID, Seq: snap.Seq, Values: snap.Values, Permanent: snap.Permanent, Created: snap.Created.Unix(), Issued: time.Now().Unix()}
	v, err := sc.Encode("session", &p)
	if err != nil {
		b.Fatal(err)
	}
	size := len(v)
	b.ReportAllocs()
	for b.Loop() {
		p.Issued = time.Now().Unix()
		v, err := sc.Encode("session", &p)
		if err != nil {
			b.Fatal(err)
		}
		var out barePayload
		if err := sc.Decode("session", v, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "cookie-bytes")
}

// BenchmarkCodecEncrypted is BenchmarkCodec with AES-256 encryption.
func BenchmarkCodecEncrypted(b *testing.B) {
	c := newCodec(b, session.CodecOptions{Keys: []session.KeyPair{keyC}})
	snap := benchSnapshot()
	b.ReportAllocs()
	for b.Loop() {
		v, err := c.Encode("session", snap)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode("session", v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRotated decodes a cookie signed with the last of n keys:
// the cost of key rotation.
func BenchmarkDecodeRotated(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprint(n, "keys"), func(b *testing.B) {
			keys := []session.KeyPair{keyB, {Hash: []byte(strings.Repeat("x", 64))}, keyA}[3-n:]
			c := newCodec(b, session.CodecOptions{Keys: keys})
			v := encode(b, newCodec(b, session.CodecOptions{Keys: []session.KeyPair{keyA}}), "session", benchSnapshot())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode("session", v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFold folds 100 ops into a 10-key snapshot.
func BenchmarkFold(b *testing.B) {
	snap := benchSnapshot()
	ops := make([]session.Op, 100)
	for i := range ops {
		ops[i] = set(uint64(i+1)+snap.Seq, fmt.Sprint("k", i%10), fmt.Sprint(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		snap.Fold(ops)
	}
}

// BenchmarkSize measures the cookie of a session with one write folded
// in, as the hub's cookie budget does on every write; the baseline folds
// the write into a copy and measures that copy's cookie.
func BenchmarkSize(b *testing.B) {
	st, err := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	if err != nil {
		b.Fatal(err)
	}
	snap := benchSnapshot()
	op := session.Op{Type: session.OpSet, Key: "note", Value: json.RawMessage(`"a note of some length"`)}
	b.Run("measure", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Size(snap, op); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fold-then-measure", func(b *testing.B) {
		b.ReportAllocs()
		staged := op
		staged.Seq = snap.Seq + 1
		for b.Loop() {
			if _, err := st.Size(snap.Fold([]session.Op{staged})); err != nil {
				b.Fatal(err)
			}
		}
	})
}
