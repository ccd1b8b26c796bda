package session_test

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// flaskVector is one cookie made by Flask's or Quart's own session
// interface (testdata/flask/generate.py).
type flaskVector struct {
	Name       string `json:"name"`
	Producer   string `json:"producer"`
	Secret     string `json:"secret"`
	Timestamp  int64  `json:"timestamp"`
	Cookie     string `json:"cookie"`
	Compressed bool   `json:"compressed"`
	Payload    string `json:"payload"` // the TaggedJSONSerializer's JSON text
}

func flaskVectors(t testing.TB) []flaskVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "flask", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []flaskVector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 30 {
		t.Fatalf("%d vectors", len(f.Vectors))
	}
	return f.Vectors
}

func vector(t testing.TB, name string) flaskVector {
	t.Helper()
	for _, v := range flaskVectors(t) {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return flaskVector{}
}

const flaskSecret = "flask-test-secret"

func newFlaskCodec(t testing.TB, at time.Time, secrets ...string) *session.FlaskCodec {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{flaskSecret}
	}
	var s [][]byte
	for _, x := range secrets {
		s = append(s, []byte(x))
	}
	c, err := session.NewFlaskCodec(session.FlaskCodecOptions{Secrets: s, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// flaskJSON returns the JSON text a Flask cookie value carries, inflated.
func flaskJSON(t testing.TB, cookie string) string {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(cookie, "."), ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cookie, ".") {
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return string(raw)
}

// TestFlaskVectors: every cookie Flask 2.2 and Quart 0.18 made decodes to
// the app's values, each byte for byte as the app's serializer wrote it
// (tagged values in their tagged form), and survives a round trip. For
// Flask's, encoding the snapshot again at the same time gives back the
// same JSON text, and the very same cookie when it is not compressed (Go's
// zlib stream differs from Python's).
func TestFlaskVectors(t *testing.T) {
	for _, v := range flaskVectors(t) {
		if v.Name == "other_key" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			at := time.Unix(v.Timestamp, 0)
			c := newFlaskCodec(t, at, v.Secret)
			snap, err := c.Decode("session", v.Cookie)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := map[string]json.RawMessage{}
			if err := json.Unmarshal([]byte(v.Payload), &want); err != nil {
				t.Fatal(err)
			}
			hub, hasHub := want[session.FlaskHubKey]
			perm, hasPerm := want[session.FlaskPermanentKey]
			delete(want, session.FlaskHubKey)
			delete(want, session.FlaskPermanentKey)
			if !maps.EqualFunc(snap.Values, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
				t.Fatalf("values %s, want %s", show(snap.Values), show(want))
			}
			if snap.Permanent != (hasPerm && string(perm) == "true") {
				t.Fatalf("permanent %v", snap.Permanent)
			}
			if hasHub {
				if snap.ID != "0123456789abcdef0123456789abcdef" || snap.Seq != 42 || snap.Created.Unix() != 1748775600 {
					t.Fatalf("hub fields %s: got %+v", hub, snap)
				}
			} else if snap.ID != "" || snap.Seq != 0 {
				t.Fatalf("an app's cookie decoded with hub fields: %+v", snap)
			}
			again, err := c.Encode("session", snap)
			if err != nil {
				t.Fatal(err)
			}
			if v.Producer == "quart" {
				// Quart 0.18 writes the keys in insertion order, Flask and
				// the hub sorted: the values are the same bytes (above), the
				// text is Flask's.
				return
			}
			if got := flaskJSON(t, again); got != v.Payload {
				t.Fatalf("re-encoded JSON\n%s\nwant\n%s", got, v.Payload)
			}
			if !v.Compressed && again != v.Cookie {
				t.Fatalf("re-encoded\n%s\nwant\n%s", again, v.Cookie)
			}
			back, err := c.Decode("session", again)
			if err != nil || !sameSnapshot(back, snap) {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func show(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestFlaskVectorsCover: the vectors hold every tag, compressed and plain
// cookies, from both Flask and Quart, so that TestFlaskVectors proves each.
func TestFlaskVectorsCover(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range flaskVectors(t) {
		seen["producer "+v.Producer] = true
		seen[fmt.Sprint("compressed ", v.Compressed)] = true
		for _, tag := range []string{" t", " u", " b", " m", " d", " di"} {
			if strings.Contains(v.Payload, `{"`+tag+`":`) {
				seen["tag"+tag] = true
			}
		}
	}
	for _, want := range []string{"producer flask", "producer quart", "compressed true", "compressed false",
		"tag t", "tag u", "tag b", "tag m", "tag d", "tag di"} {
		if !seen[want] {
			t.Errorf("no vector with %s", want)
		}
	}
}

// TestFlaskRefused: a wrong key, an expired or future cookie, and any
// change to the payload, the time or the signature is refused with its
// reason and a zero snapshot.
func TestFlaskRefused(t *testing.T) {
	v := vector(t, "user")
	cv := vector(t, "compressed")
	at := time.Unix(v.Timestamp, 0)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	sig := strings.LastIndexByte(v.Cookie, '.')
	ts := strings.LastIndexByte(v.Cookie[:sig], '.')
	for _, tc := range []struct {
		name  string
		value string
		at    time.Time
		want  session.Reason
	}{
		{"empty", "", at, session.ReasonMissing},
		{"other key", vector(t, "other_key").Cookie, at, session.ReasonTampered},
		{"expired", v.Cookie, at.Add(session.DefaultLifetime + time.Second), session.ReasonExpired},
		{"future", v.Cookie, at.Add(-time.Second), session.ReasonFuture},
		{"payload changed", flip(v.Cookie, 2), at, session.ReasonTampered},
		{"compressed payload changed", flip(cv.Cookie, 5), at, session.ReasonTampered},
		{"compression dot dropped", cv.Cookie[1:], at, session.ReasonTampered},
		{"timestamp changed", flip(v.Cookie, ts+2), at, session.ReasonTampered},
		{"signature changed", flip(v.Cookie, sig+3), at, session.ReasonTampered},
		{"signature padded", v.Cookie + "=", at, session.ReasonTampered},
		{"signature cut", v.Cookie[:len(v.Cookie)-1], at, session.ReasonTampered},
		{"no dots", "eyJ1c2VyIjoiYWRhIn0", at, session.ReasonTampered},
		{"too long", strings.Repeat("a", session.MaxCookieSize+1), at, session.ReasonTooLong},
		{"securecookie value", encode(t, newCodec(t, session.CodecOptions{Keys: []session.KeyPair{keyA}}), "session", snapshot()), at, session.ReasonTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := newFlaskCodec(t, tc.at).Decode("session", tc.value)
			if session.ReasonOf(err) != tc.want || !errors.Is(err, session.ErrInvalidCookie) {
				t.Fatalf("err %v, want reason %s", err, tc.want)
			}
			if snap.ID != "" || snap.Values != nil {
				t.Fatalf("refused cookie gave %+v", snap)
			}
		})
	}
	// The lifetime's edges are inclusive, as itsdangerous's max_age is.
	if _, err := newFlaskCodec(t, at.Add(session.DefaultLifetime)).Decode("session", v.Cookie); err != nil {
		t.Fatalf("at the lifetime: %v", err)
	}
	c, err := session.NewFlaskCodec(session.FlaskCodecOptions{Secrets: [][]byte{[]byte(flaskSecret)}, ClockSkew: time.Second, Now: func() time.Time { return at.Add(-time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode("session", v.Cookie); err != nil {
		t.Fatalf("within the clock skew: %v", err)
	}
}

// signFlask signs a payload as itsdangerous does ("." and zlib when
// compressed), so that tests can make cookies with a valid signature and
// content Flask never writes.
func signFlask(secret string, payload []byte, compressed bool, ts int64) string {
	dk := hmac.New(sha1.New, []byte(secret))
	dk.Write([]byte("cookie-session"))
	body := base64.RawURLEncoding.EncodeToString(payload)
	if compressed {
		body = "." + body
	}
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], uint64(ts))
	body += "." + base64.RawURLEncoding.EncodeToString(bytes.TrimLeft(tb[:], "\x00"))
	mac := hmac.New(sha1.New, dk.Sum(nil))
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TestFlaskSignedContent: what the signature covers is checked too. A
// signed payload that is not a JSON object, or has an empty key, is
// malformed; hub fields that do not parse leave the app's values and no ID.
func TestFlaskSignedContent(t *testing.T) {
	at := t0
	c := newFlaskCodec(t, at)
	for _, tc := range []struct {
		payload string
		want    session.Reason
	}{
		{`[1]`, session.ReasonMalformed},
		{`null`, session.ReasonMalformed},
		{`{"a":`, session.ReasonMalformed},
		{`{"":1}`, session.ReasonMalformed},
		{`{"a":NaN}`, session.ReasonMalformed},
	} {
		if _, err := c.Decode("session", signFlask(flaskSecret, []byte(tc.payload), false, at.Unix())); session.ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.payload, err, tc.want)
		}
	}
	for _, hub := range []string{`"x"`, `{"i":"not-an-id","s":3}`, `{"i":7}`} {
		snap, err := c.Decode("session", signFlask(flaskSecret, []byte(`{"_sessionhub":`+hub+`,"user":"ada"}`), false, at.Unix()))
		if err != nil || snap.ID != "" || snap.Seq != 0 || string(snap.Values["user"]) != `"ada"` || len(snap.Values) != 1 {
			t.Errorf("hub fields %s: %+v, %v", hub, snap, err)
		}
	}
	// A zlib bomb inflating past the bound is malformed, not a megabyte
	// allocation per request.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write([]byte(`{"a":"`))
	_, _ = zw.Write(bytes.Repeat([]byte("a"), 2<<20))
	_, _ = zw.Write([]byte(`"}`))
	_ = zw.Close()
	if _, err := c.Decode("session", signFlask(flaskSecret, z.Bytes(), true, at.Unix())); session.ReasonOf(err) != session.ReasonMalformed {
		t.Fatalf("zlib bomb: %v", err)
	}
}

// TestFlaskHubFields: the hub's fields travel under _sessionhub and the
// permanent flag as Flask's _permanent; values under those keys are the
// snapshot's, never the values'.
func TestFlaskHubFields(t *testing.T) {
	c := newFlaskCodec(t, t0)
	snap := session.Snapshot{ID: testID, Seq: 7, Created: t0.Add(-time.Hour), Pinned: true, Permanent: true,
		Values: vals("user", `"ada"`, session.FlaskHubKey, `"forged"`, session.FlaskPermanentKey, `false`)}
	v, err := c.Encode("session", snap)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"_permanent":true,"_sessionhub":{"c":%d,"i":"%s","k":true,"s":7},"user":"ada"}`, t0.Add(-time.Hour).Unix(), testID)
	if got := flaskJSON(t, v); got != want {
		t.Fatalf("JSON %s\nwant %s", got, want)
	}
	back, err := c.Decode("session", v)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != testID || back.Seq != 7 || !back.Pinned || !back.Permanent || !back.Created.Equal(t0.Add(-time.Hour)) ||
		len(back.Values) != 1 || string(back.Values["user"]) != `"ada"` {
		t.Fatalf("decoded %+v", back)
	}
	// The absolute timeout is measured from the hub's creation time.
	abs, err := session.NewFlaskCodec(session.FlaskCodecOptions{Secrets: [][]byte{[]byte(flaskSecret)}, AbsoluteTimeout: 30 * time.Minute, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := abs.Decode("session", v); session.ReasonOf(err) != session.ReasonExpired {
		t.Fatalf("absolute timeout: %v", err)
	}
}

// TestFlaskRotation: the first secret signs, every secret verifies, and a
// cookie signed with a secret that was dropped is refused.
func TestFlaskRotation(t *testing.T) {
	old := vector(t, "user") // signed with flaskSecret
	at := time.Unix(old.Timestamp, 0)
	rotated := newFlaskCodec(t, at, "new-secret", flaskSecret)
	snap, err := rotated.Decode("session", old.Cookie)
	if err != nil {
		t.Fatalf("old cookie after rotation: %v", err)
	}
	v, err := rotated.Encode("session", snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newFlaskCodec(t, at, "new-secret").Decode("session", v); err != nil {
		t.Fatalf("re-signed cookie under the new secret alone: %v", err)
	}
	if _, err := newFlaskCodec(t, at).Decode("session", v); session.ReasonOf(err) != session.ReasonTampered {
		t.Fatalf("re-signed cookie under the old secret alone: %v", err)
	}
	if _, err := newFlaskCodec(t, at, "new-secret").Decode("session", old.Cookie); session.ReasonOf(err) != session.ReasonTampered {
		t.Fatalf("old cookie once its secret is dropped: %v", err)
	}
	if _, err := session.NewFlaskCodec(session.FlaskCodecOptions{}); !errors.Is(err, session.ErrNoKeys) {
		t.Fatalf("no secrets: %v", err)
	}
	if _, err := session.NewFlaskCodec(session.FlaskCodecOptions{Secrets: [][]byte{[]byte("x"), nil}}); !errors.Is(err, session.ErrBadKey) {
		t.Fatalf("empty secret: %v", err)
	}
}

// TestFlaskEncode: keys are written as Python's json.dumps writes them
// (sorted, ASCII-only escapes), compression is chosen as itsdangerous
// chooses it, and a cookie past the budget is ErrTooLarge.
func TestFlaskEncode(t *testing.T) {
	c := newFlaskCodec(t, t0)
	v, err := c.Encode("session", session.Snapshot{Values: vals("é", `1`, "b", `2`, "😀", `3`, "\x01\"\\/", `4`, "<&>", `5`)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := flaskJSON(t, v), `{"\u0001\"\\/":4,"<&>":5,"b":2,"\u00e9":1,"\ud83d\ude00":3}`; got != want {
		t.Fatalf("JSON %s\nwant %s", got, want)
	}
	if strings.HasPrefix(v, ".") {
		t.Fatal("short payload compressed")
	}
	long, err := c.Encode("session", session.Snapshot{Values: vals("k", `"`+strings.Repeat("ab", 200)+`"`)})
	if err != nil || !strings.HasPrefix(long, ".") {
		t.Fatalf("repetitive payload not compressed: %q, %v", long, err)
	}
	for _, snap := range []session.Snapshot{
		{Values: vals("k", `"x"`)},
		{ID: testID, Seq: 1 << 60, Values: vals("k", `"`+strings.Repeat("ab", 200)+`"`)},
	} {
		v, err := c.Encode("session", snap)
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.EncodedLen(snap)
		if err != nil || n != len(v) {
			t.Fatalf("EncodedLen %d, %v; Encode wrote %d", n, err, len(v))
		}
	}
	var random []byte
	for h := sha1.Sum(nil); len(random) < 8000; h = sha1.Sum(h[:]) {
		random = hex.AppendEncode(random, h[:])
	}
	if _, err := c.Encode("session", session.Snapshot{Values: vals("k", `"`+string(random)+`"`)}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("past the budget: %v", err)
	}
}

// TestFlaskStore: a store with FlaskSecrets reads the app's cookie, adopts
// it (an ID, the values kept) and writes Flask's cookie with Flask's
// attributes; Keys and FlaskSecrets together are refused.
func TestFlaskStore(t *testing.T) {
	v := vector(t, "permanent")
	at := time.Unix(v.Timestamp, 0)
	st, err := session.NewStore(&session.Options{FlaskSecrets: [][]byte{[]byte(flaskSecret)}, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Codec().(*session.FlaskCodec); !ok {
		t.Fatalf("codec %T", st.Codec())
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: v.Cookie})
	s, err := st.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if !session.ValidID(s.ID()) || !s.Permanent() || s.GetString("user") != "ada" {
		t.Fatalf("adopted session: id %q permanent %v user %q", s.ID(), s.Permanent(), s.GetString("user"))
	}
	// Adopting is a change: a response that touches nothing else still
	// carries the new ID, or every request would adopt the cookie anew.
	if d, err := st.Save(http.Header{}, s); err != nil || d != session.Written {
		t.Fatalf("Save of an adopted session that nothing else changed: %v, %v; want it written", d, err)
	}
	if err := s.Set("colour", "red"); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if d, err := st.Save(h, s); err != nil || d != session.Written {
		t.Fatalf("Save: %v, %v", d, err)
	}
	resp := http.Response{Header: h}
	ck := resp.Cookies()[0]
	if ck.MaxAge != int(session.DefaultLifetime/time.Second) || !ck.HttpOnly {
		t.Fatalf("cookie %s", ck)
	}
	back, err := st.Decode(ck.Value)
	if err != nil || back.ID() != s.ID() || back.GetString("colour") != "red" || back.GetString("user") != "ada" {
		t.Fatalf("written cookie: %v, %v", back.Values(), err)
	}
	if _, err := session.NewStore(&session.Options{Keys: []session.KeyPair{keyA}, FlaskSecrets: [][]byte{[]byte("x")}}); err == nil {
		t.Fatal("Keys and FlaskSecrets together accepted")
	}
	// A Flask cookie with no values is a new session without an ID, as
	// Flask's empty session.
	s, err = st.Decode(vector(t, "empty").Cookie)
	if err != nil || s.ID() != "" || !s.Empty() {
		t.Fatalf("empty cookie: %q %v", s.ID(), err)
	}
}

// TestFlaskTagged: values holding an object Flask would read as a tagged
// Python value are told apart, at any depth.
func TestFlaskTagged(t *testing.T) {
	for raw, want := range map[string]bool{
		`"red"`:                      false,
		`{"colour":"red"}`:           false,
		`{" m":"<script>"}`:          true,
		`{" t":[1]}`:                 true,
		`{" b":"AA=="}`:              true,
		`{" u":"x"}`:                 true,
		`{" d":"x"}`:                 true,
		`{" di":{}}`:                 true,
		`[1,{"a":[{" m":"x"}]}]`:     true,
		`{" m":"x","other":1}`:       false,
		`{"m":"x"}`:                  false,
		`{" x":1}`:                   false,
		`{" m":"a"," m":"b"}`:        true,
		`not json`:                   false,
		`{"a":{"b":{"c":{" d":1}}}}`: true,
	} {
		if got := session.FlaskTagged(json.RawMessage(raw)); got != want {
			t.Errorf("FlaskTagged(%s) = %v, want %v", raw, got, want)
		}
	}
}

// python is Debian's python3 with Flask, or "" when absent outside CI.
func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import flask, quart").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-flask and python3-quart are required in CI: %v", err)
		}
		t.Skip("python3-flask or python3-quart is not installed (./test.sh installs them): skipping the check against Flask's own serializer")
	}
	return py
}

// TestFlaskEncodeVerifiesInFlask: cookies this codec writes, from every
// vector's values and with the hub's fields, verify in Flask's and Quart's
// own serializers and load to the session the JSON text means to them,
// tagged types included.
func TestFlaskEncodeVerifiesInFlask(t *testing.T) {
	py := python(t)
	now := time.Now()
	c := newFlaskCodec(t, now)
	type check struct {
		Cookie  string `json:"cookie"`
		Payload string `json:"payload"`
	}
	var checks []check
	for _, v := range flaskVectors(t) {
		if v.Name == "other_key" {
			continue
		}
		snap, err := newFlaskCodec(t, time.Unix(v.Timestamp, 0)).Decode("session", v.Cookie)
		if err != nil {
			t.Fatal(err)
		}
		if snap.ID == "" {
			snap.ID, snap.Seq, snap.Created = testID, 9, t0
		}
		cookie, err := c.Encode("session", snap)
		if err != nil {
			t.Fatal(err)
		}
		checks = append(checks, check{cookie, flaskJSON(t, cookie)})
	}
	in, _ := json.Marshal(checks)
	cmd := exec.Command(py, "-c", `
import json, sys, flask, quart
checks = json.load(sys.stdin)
for name, app in (("flask", flask.Flask("t")), ("quart", quart.Quart("t"))):
    app.secret_key = "`+flaskSecret+`"
    si = app.session_interface
    s = si.get_signing_serializer(app)
    ctx = app.app_context() if name == "flask" else None
    if ctx: ctx.push()
    for c in checks:
        if name == "quart" and '" di"' in c["payload"]:
            continue  # Quart 0.18's TagDict.to_python cannot load its own " di"
        data = s.loads(c["cookie"], max_age=3600)
        want = si.serializer.loads(c["payload"])
        if data != want or [type(data[k]) for k in sorted(data)] != [type(want[k]) for k in sorted(want)]:
            sys.exit("%s: %r != %r" % (name, data, want))
    if ctx: ctx.pop()
print("ok", len(checks))
`)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("Flask's serializer: %v\n%s", err, out)
	}
}

// flaskSignedBy is the reference check: value ends in the itsdangerous
// signature, unpadded base64 of HMAC-SHA1 under HMAC-SHA1(secret,
// "cookie-session"), of everything before its last dot, for one of the
// secrets.
func flaskSignedBy(value string, secrets ...string) bool {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return false
	}
	for _, s := range secrets {
		dk := hmac.New(sha1.New, []byte(s))
		dk.Write([]byte("cookie-session"))
		mac := hmac.New(sha1.New, dk.Sum(nil))
		mac.Write([]byte(value[:i]))
		if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) == value[i+1:] {
			return true
		}
	}
	return false
}

// FuzzDecodeFlask: decoding any value never panics and accepts only
// values signed with one of the secrets (checked against the reference);
// what it accepts is a snapshot of valid values that survives a round
// trip. The seeds are every committed vector, cut and respelled, and the
// corpus in testdata/fuzz/FuzzDecodeFlask.
func FuzzDecodeFlask(f *testing.F) {
	at := time.Unix(vector(f, "user").Timestamp, 0)
	c := newFlaskCodec(f, at, flaskSecret, "another-secret")
	for _, v := range flaskVectors(f) {
		f.Add(v.Cookie)
		f.Add(v.Cookie[:len(v.Cookie)-2])
		f.Add(strings.Replace(v.Cookie, ".", "..", 1))
	}
	f.Add("")
	f.Add(".")
	f.Add("..")
	f.Add(signFlask(flaskSecret, []byte(`{"_sessionhub":{"i":"0123456789abcdef0123456789abcdef","s":3},"a":[1,{" t":[2]}]}`), false, at.Unix()))
	f.Fuzz(func(t *testing.T, value string) {
		snap, err := c.Decode("session", value)
		if err != nil {
			var de *session.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, session.ErrInvalidCookie) || de.Reason == "" {
				t.Fatalf("refusal is not a *DecodeError with a reason: %#v", err)
			}
			if snap.ID != "" || snap.Values != nil {
				t.Fatalf("refused value returned a snapshot: %+v", snap)
			}
			return
		}
		if !flaskSignedBy(value, flaskSecret, "another-secret") {
			t.Fatalf("accepted a value it did not sign: %q", value)
		}
		if snap.Values == nil || (snap.ID != "" && !session.ValidID(snap.ID)) {
			t.Fatalf("accepted a malformed snapshot: %+v", snap)
		}
		for k, v := range snap.Values {
			if k == session.FlaskHubKey || k == session.FlaskPermanentKey {
				t.Fatalf("reserved key %q among the values", k)
			}
			if err := (session.Op{Type: session.OpSet, Key: k, Value: v}).Validate(); err != nil {
				t.Fatalf("accepted an invalid value: %v", err)
			}
		}
		again, err := c.Encode("session", snap)
		if errors.Is(err, session.ErrTooLarge) {
			return // a payload Flask wrote uncompressed may not fit once the hub adds its fields
		}
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := c.Decode("session", again)
		if err != nil || !sameSnapshot(back, snap) || back.Pinned != snap.Pinned {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, snap)
		}
	})
}
