package session

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Flask's cookie format is HMAC-SHA1; HMAC does not rely on SHA-1's collision resistance.
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
)

// The keys of a Flask session that the hub reads itself.
const (
	// FlaskHubKey is the key under which a Flask cookie carries the hub's
	// own fields: the session ID, the version (Seq), the creation time and
	// the pin, as {"c":created,"i":id,"k":pinned,"s":seq}. The app may
	// ignore it; it must not write it.
	FlaskHubKey = "_sessionhub"
	// FlaskPermanentKey is the key of Flask's session.permanent flag. It
	// is Snapshot.Permanent, not a value.
	FlaskPermanentKey = "_permanent"
)

// flaskSalt, flaskSep: itsdangerous's salt for Flask's session cookie and
// its separator.
const (
	flaskSalt = "cookie-session"
	flaskSep  = '.'
)

// maxFlaskPayload bounds a compressed payload once inflated. A signed
// cookie comes from the app or the hub, but a stolen key must not be a way
// to make the hub inflate without bound.
const maxFlaskPayload = 1 << 20

// flaskTags are the keys of Flask's TaggedJSONSerializer: a JSON object
// with exactly one key, one of these, is read by Flask as a tagged Python
// value (tuple, bytes, Markup, UUID, datetime, escaped dict).
var flaskTags = []string{" t", " u", " b", " m", " d", " di"}

// FlaskCodecOptions configures a FlaskCodec.
type FlaskCodecOptions struct {
	// Secrets are the app's SECRET_KEY first, which signs, then any older
	// keys (Flask 3's SECRET_KEY_FALLBACKS), which still verify. Required:
	// at least one, none empty.
	Secrets [][]byte
	// MaxAge is the longest a cookie is accepted after it was signed: the
	// app's PERMANENT_SESSION_LIFETIME, which Flask uses as max_age.
	// Default: 31 days.
	MaxAge time.Duration
	// AbsoluteTimeout, when set, refuses a session created longer ago than
	// this (by the hub's creation time). Default: none.
	AbsoluteTimeout time.Duration
	// ClockSkew is how far in the future a signing time may lie. Default: 0.
	ClockSkew time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// FlaskCodec reads and writes the session cookie of Flask's and Quart's
// default SecureCookieSessionInterface, byte-compatible with it: an
// itsdangerous URLSafeTimedSerializer (salt "cookie-session", key
// derivation "hmac", HMAC-SHA1, URL-safe base64 without padding, zlib with
// a leading "." when that is shorter, the signing time) carrying the JSON
// of Flask's TaggedJSONSerializer.
//
// The snapshot's values are the session's top-level keys, each value the
// JSON Flask wrote for it, byte for byte: a tagged value (a tuple, bytes,
// Markup, UUID, datetime) stays in its tagged form, such as
// {" t":[1,2]}, and goes back to the app unchanged. The hub's own fields
// live under FlaskHubKey, the permanent flag under FlaskPermanentKey; a
// cookie without hub fields decodes to a snapshot without an ID. The
// cookie name is not signed (Flask does not sign it). A FlaskCodec is
// safe for concurrent use.
type FlaskCodec struct {
	keys [][]byte // HMAC-SHA1(secret, salt): itsdangerous's "hmac" derivation
	lifetime
}

var (
	_ CookieCodec = (*FlaskCodec)(nil)
	_ CookieCodec = (*Codec)(nil)
)

// NewFlaskCodec returns a Flask cookie codec for the given options.
func NewFlaskCodec(opts FlaskCodecOptions) (*FlaskCodec, error) {
	if len(opts.Secrets) == 0 {
		return nil, ErrNoKeys
	}
	c := &FlaskCodec{lifetime: newLifetime(opts.MaxAge, opts.AbsoluteTimeout, opts.ClockSkew, opts.Now)}
	for i, s := range opts.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("secret %d: %w: empty", i, ErrBadKey)
		}
		mac := hmac.New(sha1.New, s)
		mac.Write([]byte(flaskSalt))
		c.keys = append(c.keys, mac.Sum(nil))
	}
	return c, nil
}

// flaskHub is the value under FlaskHubKey.
type flaskHub struct {
	Created int64  `json:"c,omitempty"`
	ID      string `json:"i"`
	Pinned  bool   `json:"k,omitempty"`
	Seq     uint64 `json:"s,omitempty"`
}

// Encode returns the signed Flask cookie value of snap; the name is not
// used. Values under FlaskHubKey and FlaskPermanentKey are replaced by the
// snapshot's own fields.
func (c *FlaskCodec) Encode(_ string, snap Snapshot) (string, error) {
	signed, err := c.body(snap, c.now().Unix())
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha1.New, c.keys[0])
	mac.Write(signed)
	v := string(base64.RawURLEncoding.AppendEncode(append(signed, flaskSep), mac.Sum(nil)))
	if len(v) > MaxCookieSize {
		return "", fmt.Errorf("%w: %d bytes", ErrTooLarge, len(v))
	}
	return v, nil
}

// flaskSigLen is the length of the signature's text: 20 bytes of
// HMAC-SHA1 in unpadded base64.
var flaskSigLen = base64.RawURLEncoding.EncodedLen(sha1.Size)

// EncodedLen returns the length of the value Encode would return for
// snap, without signing it.
func (c *FlaskCodec) EncodedLen(snap Snapshot) (int, error) {
	signed, err := c.body(snap, c.now().Unix())
	if err != nil {
		return 0, err
	}
	return len(signed) + 1 + flaskSigLen, nil
}

// body returns what the signature covers: the payload (base64 of the JSON,
// or "." and base64 of its zlib stream when that is shorter, as
// itsdangerous decides), a dot and the signing time.
func (c *FlaskCodec) body(snap Snapshot, ts int64) ([]byte, error) {
	j, err := c.payload(snap)
	if err != nil {
		return nil, err
	}
	var out []byte
	if z := deflate(j); len(z) < len(j)-1 {
		out = append(out, flaskSep)
		out = base64.RawURLEncoding.AppendEncode(out, z)
	} else {
		out = base64.RawURLEncoding.AppendEncode(out, j)
	}
	out = append(out, flaskSep)
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], uint64(ts))
	return base64.RawURLEncoding.AppendEncode(out, bytes.TrimLeft(tb[:], "\x00")), nil
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression) // a valid level: no error
	_, _ = zw.Write(b)                                       // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	return buf.Bytes()
}

// payload returns the session's JSON as Flask writes it: keys sorted,
// compact, non-ASCII escaped; the values as they are.
func (c *FlaskCodec) payload(snap Snapshot) ([]byte, error) {
	vals := make(map[string]json.RawMessage, len(snap.Values)+2)
	for k, v := range snap.Values {
		if k == FlaskHubKey || k == FlaskPermanentKey {
			continue
		}
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: key %q", ErrInvalidValue, k)
		}
		vals[k] = v
	}
	if snap.Permanent {
		vals[FlaskPermanentKey] = json.RawMessage("true")
	}
	if snap.ID != "" {
		h := flaskHub{ID: snap.ID, Seq: snap.Seq, Pinned: snap.Pinned}
		if !snap.Created.IsZero() {
			h.Created = snap.Created.Unix()
		}
		raw, err := json.Marshal(h)
		if err != nil {
			return nil, fmt.Errorf("session: encoding cookie: %w", err)
		}
		vals[FlaskHubKey] = raw
	}
	keys := slices.Sorted(maps.Keys(vals))
	buf := make([]byte, 0, 64)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendPythonString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, vals[k]...)
	}
	return append(buf, '}'), nil
}

// appendPythonString appends s as Python's json.dumps writes a string with
// ensure_ascii: \" \\ \n \r \t \b \f, every other byte outside ' '..'~' as
// \uXXXX, characters past the BMP as a surrogate pair. Invalid UTF-8 is
// written as U+FFFD.
func appendPythonString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			if r >= ' ' && r <= '~' {
				b = append(b, byte(r))
				continue
			}
			units := []rune{r}
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				units = []rune{r1, r2}
			}
			for _, u := range units {
				b = append(b, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
			}
		}
	}
	return append(b, '"')
}

// Decode verifies and decodes a Flask cookie value; the name is not used.
// Any failure is a *DecodeError with the reason; the snapshot is then zero.
// A cookie without the hub's fields (one the app wrote before the hub
// saw it) decodes to a snapshot with no ID, Seq 0.
func (c *FlaskCodec) Decode(_ string, value string) (Snapshot, error) {
	if value == "" {
		return Snapshot{}, &DecodeError{Reason: ReasonMissing}
	}
	if len(value) > MaxCookieSize {
		return Snapshot{}, &DecodeError{Reason: ReasonTooLong}
	}
	last := strings.LastIndexByte(value, flaskSep)
	if last < 0 {
		return Snapshot{}, &DecodeError{Reason: ReasonTampered, Err: errors.New("no signature")}
	}
	signed, sig := value[:last], value[last+1:]
	if !c.verify(signed, sig) {
		return Snapshot{}, &DecodeError{Reason: ReasonTampered, Err: errors.New("signature does not match")}
	}
	mid := strings.LastIndexByte(signed, flaskSep)
	if mid < 0 {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: errors.New("no timestamp")}
	}
	data, tsText := signed[:mid], signed[mid+1:]
	tsb, err := base64.RawURLEncoding.DecodeString(tsText)
	if err != nil || len(tsb) == 0 || len(tsb) > 8 {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: errors.New("malformed timestamp")}
	}
	var tb [8]byte
	copy(tb[8-len(tsb):], tsb)
	ts := binary.BigEndian.Uint64(tb[:])
	if ts > 1<<62 {
		return Snapshot{}, &DecodeError{Reason: ReasonFuture, Err: fmt.Errorf("timestamp %d", ts)}
	}
	now := c.now()
	issued := time.Unix(int64(ts), 0)
	if err := c.checkIssued(issued, now); err != nil {
		return Snapshot{}, err
	}
	j, err := flaskPayload(data)
	if err != nil {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: err}
	}
	vals := map[string]json.RawMessage{}
	if err := json.Unmarshal(j, &vals); err != nil {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: fmt.Errorf("payload: %w", err)}
	}
	if vals == nil { // the payload was JSON null
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: errors.New("payload is not an object")}
	}
	var snap Snapshot
	if raw, ok := vals[FlaskPermanentKey]; ok {
		snap.Permanent = string(raw) == "true"
		delete(vals, FlaskPermanentKey)
	}
	if raw, ok := vals[FlaskHubKey]; ok {
		delete(vals, FlaskHubKey)
		var h flaskHub
		// Fields that do not parse, or an ID the hub never made, leave the
		// snapshot without an ID: the app's values are kept, the session
		// starts a new log.
		if json.Unmarshal(raw, &h) == nil && ValidID(h.ID) {
			snap.ID, snap.Seq, snap.Pinned = h.ID, h.Seq, h.Pinned
			if h.Created > 0 {
				snap.Created = time.Unix(h.Created, 0)
				if err := c.checkCreated(snap.Created, now); err != nil {
					return Snapshot{}, err
				}
			}
		}
	}
	for k := range vals {
		if validKey(k) != nil {
			return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: fmt.Errorf("bad key %q", k)}
		}
	}
	snap.Values = vals
	return snap, nil
}

// verify reports whether sig is the signature of signed under one of the
// keys, spelled as itsdangerous spells it (unpadded URL-safe base64),
// compared in constant time.
func (c *FlaskCodec) verify(signed, sig string) bool {
	if len(sig) != flaskSigLen {
		return false
	}
	ok := 0
	want := make([]byte, 0, flaskSigLen)
	for _, k := range c.keys {
		mac := hmac.New(sha1.New, k)
		mac.Write([]byte(signed))
		want = base64.RawURLEncoding.AppendEncode(want[:0], mac.Sum(nil))
		ok |= subtle.ConstantTimeCompare(want, []byte(sig))
	}
	return ok == 1
}

// flaskPayload returns the JSON text of a payload segment: base64, or "."
// and base64 of a zlib stream.
func flaskPayload(data string) ([]byte, error) {
	compressed := strings.HasPrefix(data, ".")
	if compressed {
		data = data[1:]
	}
	raw, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if !compressed {
		return raw, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	j, err := io.ReadAll(io.LimitReader(zr, maxFlaskPayload+1))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if len(j) > maxFlaskPayload {
		return nil, fmt.Errorf("payload: inflates past %d bytes", maxFlaskPayload)
	}
	return j, nil
}

// FlaskTagged reports whether the JSON value holds, at any depth, an
// object that Flask's TaggedJSONSerializer would read as a tagged Python
// value: exactly one key, and that key one of " t", " u", " b", " m",
// " d", " di". A browser's write holding one would reach a Flask app as
// bytes, a tuple or, worse, Markup that templates do not escape: values
// from browsers must be refused when it reports true. Invalid JSON reports
// false.
func FlaskTagged(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	return tagged(v)
}

func tagged(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			for k := range v {
				if slices.Contains(flaskTags, k) {
					return true
				}
			}
		}
		for _, e := range v {
			if tagged(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if tagged(e) {
				return true
			}
		}
	}
	return false
}
