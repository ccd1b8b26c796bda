package session_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/sessionhub/sessionhub/session"
)

const testID = "0123456789abcdef0123456789abcdef"

func newCodec(t testing.TB, opts session.CodecOptions) *session.Codec {
	t.Helper()
	c, err := session.NewCodec(opts)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func snapshot(kv ...string) session.Snapshot {
	snap := session.Snapshot{ID: testID, Values: map[string]json.RawMessage{}}
	for i := 0; i+1 < len(kv); i += 2 {
		snap.Values[kv[i]] = json.RawMessage(kv[i+1])
	}
	return snap
}

func encode(t testing.TB, c *session.Codec, name string, snap session.Snapshot) string {
	t.Helper()
	v, err := c.Encode(name, snap)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return v
}

// signRaw signs v as securecookie would for a codec of key kp: a value with
// a valid MAC but a payload this package never writes.
func signRaw(t testing.TB, kp session.KeyPair, name string, v any) string {
	t.Helper()
	sc := securecookie.New(kp.Hash, kp.Block)
	sc.SetSerializer(securecookie.JSONEncoder{})
	out, err := sc.Encode(name, v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecodeReasons: every refused cookie has a reason, and the snapshot is
// zero. Flask/itsdangerous: BadSignature, SignatureExpired.
func TestDecodeReasons(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	type tc struct {
		name   string
		opts   session.CodecOptions // Keys default to keyA, Now to t0
		value  func(t *testing.T) string
		reason session.Reason
	}
	at := func(when time.Time) func() time.Time { return func() time.Time { return when } }
	signer := func(kp session.KeyPair, now time.Time, snap session.Snapshot) func(t *testing.T) string {
		return func(t *testing.T) string {
			c := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{kp}, Now: at(now)})
			return encode(t, c, "session", snap)
		}
	}
	valid := signer(keyA, t0, snapshot("user", `"ada"`))
	tests := []tc{
		{name: "valid", value: valid},
		{name: "empty", value: func(*testing.T) string { return "" }, reason: session.ReasonMissing},
		{name: "garbage", value: func(*testing.T) string { return "!!not a cookie!!" }, reason: session.ReasonTampered},
		{name: "garbage base64", value: func(*testing.T) string { return base64.URLEncoding.EncodeToString([]byte("1|2|3")) }, reason: session.ReasonTampered},
		{name: "truncated", value: func(t *testing.T) string { v := valid(t); return v[:len(v)-8] }, reason: session.ReasonTampered},
		{name: "one byte changed", value: func(t *testing.T) string {
			b := []byte(valid(t))
			b[len(b)/2] ^= 0x01
			return string(b)
		}, reason: session.ReasonTampered},
		{name: "value moved to another cookie name", value: func(t *testing.T) string {
			c := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{keyA}, Now: at(t0)})
			return encode(t, c, "other", snapshot("user", `"ada"`))
		}, reason: session.ReasonTampered},
		{name: "signed with an unknown key", value: signer(keyB, t0, snapshot("user", `"ada"`)), reason: session.ReasonTampered},
		{name: "too long", value: func(*testing.T) string { return strings.Repeat("A", session.MaxCookieSize+4) }, reason: session.ReasonTooLong},
		{name: "expired", value: signer(keyA, t0.Add(-session.DefaultLifetime-time.Second), snapshot()), reason: session.ReasonExpired},
		{name: "just inside the lifetime", value: signer(keyA, t0.Add(-session.DefaultLifetime), snapshot())},
		{name: "custom MaxAge expired", opts: session.CodecOptions{MaxAge: time.Hour}, value: signer(keyA, t0.Add(-time.Hour-time.Second), snapshot()), reason: session.ReasonExpired},
		{name: "future-dated", value: signer(keyA, t0.Add(time.Minute), snapshot()), reason: session.ReasonFuture},
		{name: "future-dated within ClockSkew", opts: session.CodecOptions{ClockSkew: 2 * time.Minute}, value: signer(keyA, t0.Add(time.Minute), snapshot())},
		{name: "absolute timeout", opts: session.CodecOptions{AbsoluteTimeout: 7 * day}, value: signer(keyA, t0, func() session.Snapshot {
			s := snapshot("user", `"ada"`)
			s.Created = t0.Add(-7*day - time.Second)
			return s
		}()), reason: session.ReasonExpired},
		{name: "within the absolute timeout", opts: session.CodecOptions{AbsoluteTimeout: 7 * day}, value: signer(keyA, t0, func() session.Snapshot {
			s := snapshot("user", `"ada"`)
			s.Created = t0.Add(-7 * day)
			return s
		}())},
		{name: "signed, not a payload", value: func(t *testing.T) string { return signRaw(t, keyA, "session", map[string]any{"i": 5}) }, reason: session.ReasonMalformed},
		{name: "signed, not JSON", value: func(t *testing.T) string {
			sc := securecookie.New(keyA.Hash, nil)
			sc.SetSerializer(securecookie.NopEncoder{})
			v, err := sc.Encode("session", []byte("{not json"))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}, reason: session.ReasonMalformed},
		{name: "signed, bad ID", value: func(t *testing.T) string {
			return signRaw(t, keyA, "session", map[string]any{"i": "../../etc", "t": t0.Unix()})
		}, reason: session.ReasonMalformed},
		{name: "signed, no issue time", value: func(t *testing.T) string {
			return signRaw(t, keyA, "session", map[string]any{"i": testID})
		}, reason: session.ReasonMalformed},
		{name: "signed, empty key", value: func(t *testing.T) string {
			return signRaw(t, keyA, "session", map[string]any{"i": testID, "t": t0.Unix(), "v": map[string]any{"": 1}})
		}, reason: session.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			if opts.Keys == nil {
				opts.Keys = []session.KeyPair{keyA}
			}
			if opts.Now == nil {
				opts.Now = at(t0)
			}
			c := newCodec(t, opts)
			v := tt.value(t)
			snap, err := c.Decode("session", v)
			if got := session.ReasonOf(err); got != tt.reason {
				t.Fatalf("reason = %q, want %q (err: %v)", got, tt.reason, err)
			}
			if err == nil {
				if snap.ID != testID {
					t.Errorf("decoded id %q", snap.ID)
				}
				return
			}
			if !errors.Is(err, session.ErrInvalidCookie) {
				t.Errorf("%v does not wrap ErrInvalidCookie", err)
			}
			if snap.ID != "" || snap.Values != nil || snap.Seq != 0 {
				t.Errorf("refused cookie returned a snapshot: %+v", snap)
			}
			// The store gives a new empty session for the same value.
			st := newStore(t, session.Options{Keys: opts.Keys, Now: opts.Now, Lifetime: opts.MaxAge, AbsoluteTimeout: opts.AbsoluteTimeout, ClockSkew: opts.ClockSkew})
			s, err := st.Decode(v)
			if s == nil || s.ID() != "" || s.Len() != 0 || session.ReasonOf(err) != tt.reason {
				t.Errorf("Store.Decode: session %v, err %v", s, err)
			}
		})
	}
}

// TestDecodeRefusesOtherSpellings: one signed value has one spelling. Go's
// base64 decoder skips line breaks and ignores the padding bits of the last
// character, so without a check a signed cookie could be respelled and
// still be accepted.
func TestDecodeRefusesOtherSpellings(t *testing.T) {
	t.Parallel()
	c := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{keyA}, Now: func() time.Time { return t0 }})
	// Find values that end in one and in two padding characters.
	byPadding := map[int]string{}
	for i := 0; len(byPadding) < 3 && i < 64; i++ {
		v := encode(t, c, "session", snapshot("k", fmt.Sprintf("%q", strings.Repeat("x", i))))
		byPadding[len(v)-len(strings.TrimRight(v, "="))] = v
	}
	for pad, v := range byPadding {
		if _, err := c.Decode("session", v); err != nil {
			t.Fatalf("the signed value is refused: %v", err)
		}
		respelled := []string{v[:10] + "\n" + v[10:], v[:10] + "\r\n" + v[10:]}
		if pad > 0 {
			// Flip the lowest bit of the last data character: it is
			// padding, so the decoded bytes do not change.
			b := []byte(v)
			i := len(v) - pad - 1
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			b[i] = alphabet[strings.IndexByte(alphabet, b[i])^1]
			respelled = append(respelled, string(b))
		}
		for _, r := range respelled {
			if _, err := c.Decode("session", r); session.ReasonOf(err) != session.ReasonTampered {
				t.Errorf("padding %d: respelled value %q: err %v, want tampered", pad, r, err)
			}
		}
	}
	if len(byPadding) != 3 {
		t.Fatalf("found values for paddings %v only", slices.Collect(maps.Keys(byPadding)))
	}
}

// TestKeyRotation: the first key signs, every key verifies, and a key
// removed from the list no longer verifies.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	clk := newClock()
	mk := func(keys ...session.KeyPair) *session.Store {
		return newStore(t, session.Options{Keys: keys, Now: clk.Now})
	}
	old, rotated, retired := mk(keyA), mk(keyB, keyA), mk(keyB)

	oldCookie := issue(t, old, false, "user", "ada")
	s, err := rotated.Decode(oldCookie.Value)
	if err != nil || s.GetString("user") != "ada" {
		t.Fatalf("rotated store refuses a cookie of the old key: %v", err)
	}
	// Written again, it is signed with the new key.
	s.MarkModified()
	newCookie := save(t, rotated, s).cookie
	if _, err := retired.Decode(newCookie.Value); err != nil {
		t.Errorf("cookie written after rotation is not signed with the new key: %v", err)
	}
	if _, err := old.Decode(newCookie.Value); session.ReasonOf(err) != session.ReasonTampered {
		t.Errorf("old-key-only store: err %v, want tampered", err)
	}
	if _, err := retired.Decode(oldCookie.Value); session.ReasonOf(err) != session.ReasonTampered {
		t.Errorf("cookie of a removed key: err %v, want tampered", err)
	}
}

// TestMaxAgeEveryKey: a cookie signed with an old key expires like any
// other; rotation does not extend its life.
func TestMaxAgeEveryKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		age    time.Duration
		reason session.Reason
	}{
		{"within the lifetime", time.Hour - time.Second, ""},
		{"at the lifetime", time.Hour, ""},
		{"past the lifetime", time.Hour + time.Second, session.ReasonExpired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			old := newStore(t, session.Options{Keys: []session.KeyPair{keyA}, Now: clk.Now, Lifetime: time.Hour})
			rotated := newStore(t, session.Options{Keys: []session.KeyPair{keyB, keyA}, Now: clk.Now, Lifetime: time.Hour})
			c := issue(t, old, false, "user", "ada")
			clk.Add(tt.age)
			_, err := rotated.Decode(c.Value)
			if got := session.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %q, want %q (%v)", got, tt.reason, err)
			}
		})
	}
}

// TestEncryption: with a block key the payload is unreadable without it,
// and the round trip works.
func TestEncryption(t *testing.T) {
	t.Parallel()
	now := func() time.Time { return t0 }
	const secret = "s3cr3t-marker"
	snap := snapshot("token", `"`+secret+`"`)
	plain := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{{Hash: keyC.Hash}}, Now: now})
	enc := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{keyC}, Now: now})
	otherBlock := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{{Hash: keyC.Hash, Block: bytes.Repeat([]byte("D"), 32)}}, Now: now})

	if !strings.Contains(innerPayload(t, encode(t, plain, "session", snap)), secret) {
		t.Fatal("the unencrypted payload does not hold the value: the check below proves nothing")
	}
	v := encode(t, enc, "session", snap)
	if strings.Contains(innerPayload(t, v), secret) {
		t.Error("encrypted cookie shows the value")
	}
	got, err := enc.Decode("session", v)
	if err != nil || string(got.Values["token"]) != `"`+secret+`"` {
		t.Fatalf("round trip: %v, %v", got.Values, err)
	}
	for name, c := range map[string]*session.Codec{"no block key": plain, "other block key": otherBlock} {
		if _, err := c.Decode("session", v); err == nil {
			t.Errorf("%s: encrypted cookie decoded", name)
		}
	}
	for _, n := range []int{15, 17, 33} {
		_, err := session.NewCodec(session.CodecOptions{Keys: []session.KeyPair{{Hash: keyA.Hash, Block: make([]byte, n)}}})
		if !errors.Is(err, session.ErrBadKey) {
			t.Errorf("%d-byte block key: err %v, want ErrBadKey", n, err)
		}
	}
	kp := session.GenerateKeyPair(true)
	if len(kp.Hash) != 64 || len(kp.Block) != 32 {
		t.Errorf("GenerateKeyPair(true): %d-byte hash, %d-byte block", len(kp.Hash), len(kp.Block))
	}
	if kp := session.GenerateKeyPair(false); kp.Block != nil {
		t.Error("GenerateKeyPair(false) made a block key")
	}
}

// innerPayload returns the signed (possibly encrypted) part of a cookie
// value, base64-decoded.
func innerPayload(t *testing.T, v string) string {
	t.Helper()
	b, err := base64.URLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.SplitN(b, []byte("|"), 3)
	if len(parts) != 3 {
		t.Fatalf("cookie is not date|value|mac: %q", b)
	}
	inner, err := base64.URLEncoding.DecodeString(string(parts[1]))
	if err != nil {
		t.Fatal(err)
	}
	return string(inner)
}

// TestCodecRoundTrip: the JSON payload keeps every field and value.
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	c := newCodec(t, session.CodecOptions{Keys: []session.KeyPair{keyA}, Now: func() time.Time { return t0 }})
	tests := []session.Snapshot{
		{ID: testID},
		{ID: testID, Seq: 1<<64 - 1, Permanent: true, Created: t0.Add(-time.Hour)},
		snapshot(
			"str", `"héllo \"wörld\" <script>"`,
			"big", `12345678901234567890123`,
			"float", `1.5e-7`,
			"null", `null`,
			"bool", `false`,
			"nested", `{"a":[1,{"b":null}],"c":"d"}`,
			"key with spaces/ünïcode", `[]`,
		),
	}
	for i, snap := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			got, err := c.Decode("session", encode(t, c, "session", snap))
			if err != nil {
				t.Fatal(err)
			}
			want := snap
			if want.Values == nil {
				want.Values = map[string]json.RawMessage{}
			}
			if !sameSnapshot(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if _, err := session.NewCodec(session.CodecOptions{}); !errors.Is(err, session.ErrNoKeys) {
		t.Errorf("NewCodec without keys: %v", err)
	}
}

// sameSnapshot compares two snapshots, values as JSON (the codec's JSON
// encoder escapes <, > and & in strings: same value, other bytes).
func sameSnapshot(a, b session.Snapshot) bool {
	return a.ID == b.ID && a.Seq == b.Seq && a.Permanent == b.Permanent && a.Created.Equal(b.Created) &&
		maps.EqualFunc(a.Values, b.Values, sameJSON)
}

func sameJSON(x, y json.RawMessage) bool {
	if bytes.Equal(x, y) {
		return true
	}
	var vx, vy any
	dx, dy := json.NewDecoder(bytes.NewReader(x)), json.NewDecoder(bytes.NewReader(y))
	dx.UseNumber()
	dy.UseNumber()
	return dx.Decode(&vx) == nil && dy.Decode(&vy) == nil && reflect.DeepEqual(vx, vy)
}

// TestSizeBudget: name, value and attributes together must fit
// MaxCookieSize. Fits refuses before a change is accepted; Save refuses and
// sets no cookie.
func TestSizeBudget(t *testing.T) {
	t.Parallel()
	st := newStore(t, session.Options{})
	setOp := func(n int) session.Op {
		op, err := session.SetOp("blob", json.RawMessage(`"`+strings.Repeat("x", n)+`"`))
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	base := session.Snapshot{ID: testID, Values: map[string]json.RawMessage{}, Created: t0}
	// The largest blob that fits.
	lo, hi := 0, session.MaxCookieSize
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if st.Fits(base, setOp(mid)) == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	fit := base.Fold([]session.Op{withSeq(setOp(lo), math.MaxUint64)})
	c, err := st.Cookie(fit)
	if err != nil {
		t.Fatalf("Cookie of the largest fitting snapshot: %v", err)
	}
	// Base64 twice: the size grows in steps of 4 characters per 9 bytes
	// of payload, so the largest that fits is within one step of the budget.
	if n := len(c.String()); n > session.MaxCookieSize || n < session.MaxCookieSize-8 {
		t.Errorf("largest accepted cookie is %d bytes, want just under %d", n, session.MaxCookieSize)
	}
	tooBig := base.Fold([]session.Op{withSeq(setOp(lo+9), math.MaxUint64)})
	if err := st.Fits(base, setOp(lo+9)); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Fits over budget: %v, want ErrTooLarge", err)
	}
	if _, err := st.Cookie(tooBig); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Cookie over budget: %v, want ErrTooLarge", err)
	}

	// Attributes count: the same snapshot does not fit with a Domain.
	withDomain := newStore(t, session.Options{Domain: "sub.example.com"})
	if err := withDomain.Fits(base, setOp(lo)); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Fits ignores the Domain attribute: %v", err)
	}
	// So does the cookie name.
	longName := newStore(t, session.Options{Name: "session_with_a_much_longer_name"})
	if err := longName.Fits(base, setOp(lo)); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Fits ignores the cookie name: %v", err)
	}
	// And the permanent cookie's Expires and Max-Age.
	perm := base
	perm.Permanent = true
	if err := st.Fits(perm, setOp(lo)); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Fits ignores Expires and Max-Age: %v", err)
	}
	// Fits folds ops after the snapshot: a delete makes room.
	if err := st.Fits(base.Fold([]session.Op{withSeq(setOp(lo+9), 7)}), session.Op{Type: session.OpDelete, Key: "blob"}); err != nil {
		t.Errorf("Fits after deleting the blob: %v", err)
	}

	// What Fits accepts, Save writes, for a new session (Fits measures the
	// ID and creation time it gets on its first write) and whatever
	// sequence number a log gives the op; what it refuses is at most a few
	// bytes from the budget.
	noID := session.Snapshot{}
	accepted := 0
	for n := lo - 60; n <= lo+24; n++ {
		fitsErr := st.Fits(noID, setOp(n))
		s := session.New()
		mustSet(t, s, "blob", strings.Repeat("x", n))
		h := http.Header{}
		d, saveErr := st.Save(h, s)
		logged := session.FromSnapshot(s.Snapshot())
		logged.Fold([]session.Op{withSeq(setOp(n), math.MaxUint64)})
		_, logErr := st.Save(http.Header{}, logged)
		switch {
		case fitsErr == nil && (saveErr != nil || logErr != nil):
			t.Fatalf("%d-byte blob: Fits accepts, Save refuses: %v / %v", n, saveErr, logErr)
		case fitsErr != nil && !errors.Is(fitsErr, session.ErrTooLarge):
			t.Fatalf("Fits: %v, want ErrTooLarge", fitsErr)
		case fitsErr != nil && n < lo-40:
			t.Fatalf("%d-byte blob refused, %d bytes below the limit of a known session", n, lo-n)
		}
		if saveErr != nil {
			// Save refuses, sets no cookie, and leaves the old one in place.
			if !errors.Is(saveErr, session.ErrTooLarge) || d != session.Untouched || len(h.Values("Set-Cookie")) != 0 {
				t.Fatalf("Save over budget: %v, %v, Set-Cookie %q", d, saveErr, h.Values("Set-Cookie"))
			}
			continue
		}
		if fitsErr == nil {
			accepted++
		}
		if d != session.Written || len(h.Get("Set-Cookie")) > session.MaxCookieSize {
			t.Fatalf("Save under budget: %v, %d bytes", d, len(h.Get("Set-Cookie")))
		}
	}
	if accepted == 0 || accepted == 85 {
		t.Errorf("%d of 85 sizes around the budget accepted: the boundary was not crossed", accepted)
	}

	// Far over the budget, the codec itself refuses.
	huge := snapshot("blob", `"`+strings.Repeat("x", 2*session.MaxCookieSize)+`"`)
	if _, err := st.Encode(huge); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("Encode far over budget: %v", err)
	}
}

func withSeq(op session.Op, seq uint64) session.Op {
	op.Seq = seq
	return op
}
