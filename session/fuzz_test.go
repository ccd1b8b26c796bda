package session_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionhub/sessionhub/session"
)

// fuzzCodec decodes with keyA (which signs) and keyC (encrypting), at the
// fixed time t0. MaxAge is long enough that the committed seed cookies,
// whose inner securecookie timestamp is wall-clock time, never expire.
func fuzzCodec(t testing.TB, keys ...session.KeyPair) *session.Codec {
	if len(keys) == 0 {
		keys = []session.KeyPair{keyA, keyC}
	}
	return newCodec(t, session.CodecOptions{Keys: keys, Now: func() time.Time { return t0 }, MaxAge: 100 * 365 * 24 * time.Hour})
}

// signedBy is the reference: it reports whether value is, byte for byte,
// what securecookie's Encode writes for the cookie name with the hash key
// of one of kps: base64url(date|payload|HMAC-SHA256(name|date|payload)).
func signedBy(name, value string, kps ...session.KeyPair) bool {
	raw, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	parts := bytes.SplitN(raw, []byte("|"), 3)
	if len(parts) != 3 {
		return false
	}
	for _, kp := range kps {
		mac := hmac.New(sha256.New, kp.Hash)
		mac.Write([]byte(name + "|"))
		mac.Write(parts[0])
		mac.Write([]byte("|"))
		mac.Write(parts[1])
		signed := slices.Concat(parts[0], []byte("|"), parts[1], []byte("|"), mac.Sum(nil))
		if base64.URLEncoding.EncodeToString(signed) == value {
			return true
		}
	}
	return false
}

// FuzzDecode: decoding any cookie value never panics and accepts only
// values signed with the codec's keys, byte for byte; what it accepts is a
// well-formed snapshot that survives a round trip. The seed corpus in
// testdata/fuzz/FuzzDecode holds valid cookies (plain and encrypted) and
// truncated, respelled and garbage ones, so the fuzzer mutates real
// cookies.
func FuzzDecode(f *testing.F) {
	c := fuzzCodec(f)
	signer := fuzzCodec(f, keyC)
	for _, snap := range []session.Snapshot{
		{ID: testID},
		{ID: testID, Seq: 42, Permanent: true, Created: t0.Add(-time.Hour), Values: vals("user", `{"name":"ada","roles":["admin"]}`, "n", "1.5")},
	} {
		v := encode(f, c, "session", snap)
		f.Add(v)
		f.Add(v[:len(v)-3])
		f.Add(encode(f, signer, "session", snap))
	}
	f.Add("")
	f.Add("garbage")

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
		if !signedBy("session", value, keyA, keyC) {
			t.Fatalf("accepted a value it did not sign: %q", value)
		}
		if !session.ValidID(snap.ID) || snap.Values == nil {
			t.Fatalf("accepted a malformed snapshot: %+v", snap)
		}
		for k, v := range snap.Values {
			if err := (session.Op{Type: session.OpSet, Key: k, Value: v}).Validate(); err != nil {
				t.Fatalf("accepted an invalid value: %v", err)
			}
		}
		if _, err := c.Decode("other", value); err == nil {
			t.Fatal("value accepted under another cookie name")
		}
		back, err := c.Decode("session", encode(t, c, "session", snap))
		if err != nil || !sameSnapshot(back, snap) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, snap)
		}
	})
}

// refFold is the reference fold: a stable sort by Seq, then every op
// above the starting version applied in order.
func refFold(snap session.Snapshot, ops []session.Op) (map[string]json.RawMessage, uint64) {
	sorted := slices.Clone(ops)
	slices.SortStableFunc(sorted, func(a, b session.Op) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	values, seq := maps.Clone(snap.Values), snap.Seq
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	for _, op := range sorted {
		if op.Seq <= snap.Seq {
			continue
		}
		switch op.Type {
		case session.OpSet:
			values[op.Key] = op.Value
		case session.OpDelete:
			delete(values, op.Key)
		case session.OpClear:
			values = map[string]json.RawMessage{}
		}
		seq = op.Seq
	}
	return values, seq
}

// FuzzOps: ops decoded from any JSON never make Validate, Apply or Fold
// panic; Fold matches the reference, is idempotent and leaves its receiver
// alone; a session built from valid ops round-trips through the cookie
// (or is refused for size).
func FuzzOps(f *testing.F) {
	f.Add([]byte(`[{"seq":1,"type":"set","key":"a","value":1},{"seq":3,"type":"delete","key":"a"},{"seq":2,"type":"clear"}]`), uint64(0))
	f.Add([]byte(`[{"seq":5,"type":"set","key":"a","value":{"x":[1,2]}},{"seq":5,"type":"set","key":"b","value":"s"}]`), uint64(4))
	f.Add([]byte(`[{"type":"set","key":"","value":1},{"type":"merge","key":"a"},{"type":"clear","key":"x"}]`), uint64(0))
	f.Add([]byte(`[{"seq":18446744073709551615,"type":"set","key":"k","value":null}]`), uint64(1))
	st := newStore(f, session.Options{})
	f.Fuzz(func(t *testing.T, data []byte, start uint64) {
		var ops []session.Op
		if json.Unmarshal(data, &ops) != nil {
			return
		}
		snap := session.Snapshot{ID: testID, Seq: start, Values: vals("keep", `"me"`)}
		orig := slices.Clone(ops)

		got := snap.Fold(ops)
		wantValues, wantSeq := refFold(snap, ops)
		if !sameValues(got.Values, wantValues) || got.Seq != wantSeq {
			t.Fatalf("Fold = %s at %d, reference %s at %d", got.Values, got.Seq, wantValues, wantSeq)
		}
		inPlace := session.Snapshot{ID: testID, Seq: start, Values: vals("keep", `"me"`)}
		inPlace.FoldInPlace(ops)
		if !sameValues(inPlace.Values, got.Values) || inPlace.Seq != got.Seq {
			t.Fatalf("FoldInPlace = %s at %d, Fold = %s at %d", inPlace.Values, inPlace.Seq, got.Values, got.Seq)
		}
		if again := got.Fold(ops); !sameValues(again.Values, got.Values) || again.Seq != got.Seq {
			t.Fatalf("Fold is not idempotent: %s at %d, then %s at %d", got.Values, got.Seq, again.Values, again.Seq)
		}
		if !sameValues(snap.Values, vals("keep", `"me"`)) || snap.Seq != start || !slices.EqualFunc(ops, orig, sameOp) {
			t.Fatal("Fold changed its receiver or its input")
		}
		s := session.FromSnapshot(session.Snapshot{ID: testID, Seq: start, Values: vals("keep", `"me"`)})
		s.Fold(ops)
		if !sameValues(s.Values(), got.Values) || s.Seq() != got.Seq {
			t.Fatalf("Session.Fold = %s, Snapshot.Fold = %s", s.Values(), got.Values)
		}

		// Valid ops only, applied by the application: the session is
		// always well formed and its cookie round-trips.
		app := session.New()
		var applied []session.Op
		for _, op := range ops {
			verr := op.Validate()
			if derr := op.ValidateDecoded(); (derr == nil) != (verr == nil) {
				// ops were read by json.Unmarshal: their values are JSON.
				t.Fatalf("ValidateDecoded says %v, Validate says %v", derr, verr)
			}
			aerr := app.Apply(op)
			if (verr == nil) != (aerr == nil) {
				t.Fatalf("Validate says %v, Apply says %v", verr, aerr)
			}
			if aerr == nil {
				op.Seq = 0
				applied = append(applied, op)
			}
		}
		if app.ID() == "" {
			return
		}
		// What Fits accepts, Save writes.
		fitsErr := st.Fits(session.Snapshot{}, applied...)
		if fitsErr != nil && !errors.Is(fitsErr, session.ErrTooLarge) {
			t.Fatalf("Fits: %v", fitsErr)
		}
		h := make(map[string][]string)
		_, err := st.Save(h, app)
		switch {
		case err != nil && fitsErr == nil:
			t.Fatalf("Fits accepts, Save refuses: %v", err)
		case errors.Is(err, session.ErrTooLarge):
			return
		case err != nil:
			t.Fatalf("Save: %v", err)
		case app.Empty():
			return
		}
		c := h["Set-Cookie"]
		if len(c) != 1 {
			t.Fatalf("Save of a non-empty session wrote %q", c)
		}
		r := request(nil)
		r.Header.Set("Cookie", c[0][:bytes.IndexByte([]byte(c[0]), ';')])
		back, err := st.Load(r)
		if err != nil || !sameSnapshot(back.Snapshot(), app.Snapshot()) {
			t.Fatalf("cookie round trip: %+v, %v; want %+v", back.Snapshot(), err, app.Snapshot())
		}
	})
}

// TestFuzzDecodeSeeds: the committed seed cookies still decode (or are
// still refused), so the fuzzer starts from real cookies.
func TestFuzzDecodeSeeds(t *testing.T) {
	t.Parallel()
	c := fuzzCodec(t)
	for name, want := range map[string]session.Reason{
		"valid": "", "valid_empty": "", "encrypted": "",
		"truncated": session.ReasonTampered, "truncated_mac": session.ReasonTampered,
		"newline": session.ReasonTampered, "other_key": session.ReasonTampered,
		"other_name": session.ReasonTampered, "garbage": session.ReasonTampered,
		"garbage_b64": session.ReasonTampered, "empty": session.ReasonMissing,
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
			t.Fatalf("%s: not a go test fuzz v1 string file", name)
		}
		v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.Decode("session", v); session.ReasonOf(err) != want {
			t.Errorf("seed %s: %v, want reason %q", name, err, want)
		}
	}
}
