package session

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
)

// CookieCodec turns a snapshot into a signed cookie value and back: the
// cookie format of a Store. Two implement it: *Codec (gorilla/securecookie,
// the default) and *FlaskCodec (Flask's and Quart's own cookie).
//
// Decode verifies and decodes a value; any failure is a *DecodeError and a
// zero snapshot, never a panic. Encode signs a snapshot; a value that would
// not fit MaxCookieSize is an error wrapping ErrTooLarge. EncodedLen is
// the length Encode would return, computed without signing.
type CookieCodec interface {
	Encode(name string, snap Snapshot) (string, error)
	Decode(name, value string) (Snapshot, error)
	EncodedLen(snap Snapshot) (int, error)
}

// KeyPair is one signing key and an optional encryption key.
//
// Hash is the HMAC-SHA256 key: at least 32 bytes, 64 recommended. Block,
// when set, turns on AES encryption (16, 24 or 32 bytes for AES-128,
// AES-192 or AES-256).
type KeyPair struct {
	Hash  []byte
	Block []byte
}

// GenerateKeyPair returns a key pair of a 64-byte hash key and, when
// encrypt is set, a 32-byte AES-256 block key, from crypto/rand.
func GenerateKeyPair(encrypt bool) KeyPair {
	kp := KeyPair{Hash: securecookie.GenerateRandomKey(64)}
	if encrypt {
		kp.Block = securecookie.GenerateRandomKey(32)
	}
	return kp
}

// Validate reports whether the keys have usable lengths: a hash key of at
// least 32 bytes, a block key of 0, 16, 24 or 32. The error wraps
// ErrBadKey.
func (kp KeyPair) Validate() error {
	if len(kp.Hash) < 32 {
		return fmt.Errorf("%w: hash key is %d bytes, want at least 32", ErrBadKey, len(kp.Hash))
	}
	switch len(kp.Block) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: block key is %d bytes, want 16, 24 or 32", ErrBadKey, len(kp.Block))
	}
	return nil
}

// CodecOptions configures a Codec. The zero value is not usable: Keys
// must hold at least one pair.
type CodecOptions struct {
	// Keys: the first pair encodes, every pair decodes (key rotation).
	Keys []KeyPair
	// MaxAge is the longest a cookie is accepted after it was issued.
	// Default: 31 days.
	MaxAge time.Duration
	// AbsoluteTimeout, when set, refuses a session created longer ago than
	// this, however recently its cookie was refreshed. Default: none.
	AbsoluteTimeout time.Duration
	// ClockSkew is how far in the future an issue time may lie before the
	// cookie is refused as future-dated. Default: 0 (none allowed).
	ClockSkew time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Codec signs (HMAC-SHA256) and optionally encrypts (AES) session
// snapshots as cookie values with gorilla/securecookie, serialized as
// JSON. The cookie name is part of the signature, so a value cannot be
// moved to another cookie. A Codec is safe for concurrent use.
type Codec struct {
	codecs  []securecookie.Codec
	encrypt bool // the first (encoding) key pair has a block key
	lifetime
}

// DefaultLifetime is Flask's PERMANENT_SESSION_LIFETIME default.
const DefaultLifetime = 31 * 24 * time.Hour

// NewCodec returns a codec for the given options.
func NewCodec(opts CodecOptions) (*Codec, error) {
	if len(opts.Keys) == 0 {
		return nil, ErrNoKeys
	}
	c := &Codec{lifetime: newLifetime(opts.MaxAge, opts.AbsoluteTimeout, opts.ClockSkew, opts.Now)}
	c.encrypt = len(opts.Keys[0].Block) > 0
	for i, kp := range opts.Keys {
		if err := kp.Validate(); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		var block []byte
		if len(kp.Block) > 0 {
			block = kp.Block
		}
		sc := securecookie.New(kp.Hash, block)
		// MaxAge on every codec, not only the first: a cookie signed with an
		// old key expires like any other.
		sc.MaxAge(int(c.maxAge / time.Second))
		sc.MaxLength(MaxCookieSize)
		sc.SetSerializer(securecookie.JSONEncoder{})
		c.codecs = append(c.codecs, sc)
	}
	return c, nil
}

// payload is what the cookie value carries, before signing.
type payload struct {
	ID        string                     `json:"i"`
	Seq       uint64                     `json:"s,omitempty"`
	Values    map[string]json.RawMessage `json:"v,omitempty"`
	Permanent bool                       `json:"p,omitempty"`
	Created   int64                      `json:"c,omitempty"`
	Pinned    bool                       `json:"k,omitempty"`
	Issued    int64                      `json:"t"`
}

// Encode returns the signed cookie value of snap for the cookie name.
func (c *Codec) Encode(name string, snap Snapshot) (string, error) {
	p := payload{ID: snap.ID, Seq: snap.Seq, Values: snap.Values, Permanent: snap.Permanent, Pinned: snap.Pinned, Issued: c.now().Unix()}
	if !snap.Created.IsZero() {
		p.Created = snap.Created.Unix()
	}
	v, err := c.codecs[0].Encode(name, &p)
	if err != nil {
		if strings.Contains(err.Error(), "too long") {
			return "", fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return "", fmt.Errorf("session: encoding cookie: %w", err)
	}
	return v, nil
}

// EncodedLen returns the length of the value Encode would return for
// snap, without encrypting or signing: the JSON payload's length run
// through securecookie's framing (optional AES-CTR IV, base64, timestamp,
// HMAC-SHA256, base64). A test holds it to Encode's real output.
func (c *Codec) EncodedLen(snap Snapshot) (int, error) {
	return c.encodedLen(snap, valuesLen(snap.Values)), nil
}

// encodedLen is EncodedLen for snap with values whose JSON object is
// valuesLen bytes long (0: none), whatever snap.Values holds.
func (c *Codec) encodedLen(snap Snapshot, valuesLen int) int {
	ts := c.now().Unix()
	p := payload{ID: snap.ID, Seq: snap.Seq, Permanent: snap.Permanent, Pinned: snap.Pinned, Issued: ts}
	if !snap.Created.IsZero() {
		p.Created = snap.Created.Unix()
	}
	n := payloadLen(&p, valuesLen) + 1 // securecookie's JSONEncoder ends with a newline
	if c.encrypt {
		n += aes.BlockSize // the IV
	}
	inner := intLen(ts) + 1 + base64.URLEncoding.EncodedLen(n) + 1 + sha256.Size
	return base64.URLEncoding.EncodedLen(inner)
}

// Decode verifies and decodes a cookie value. Any failure is a
// *DecodeError with the reason; the snapshot is then zero.
func (c *Codec) Decode(name, value string) (Snapshot, error) {
	if value == "" {
		return Snapshot{}, &DecodeError{Reason: ReasonMissing}
	}
	if len(value) > MaxCookieSize {
		return Snapshot{}, &DecodeError{Reason: ReasonTooLong}
	}
	if !canonical(value) {
		// Not a spelling this codec writes: the MAC covers the decoded
		// bytes only, and Go's base64 decoder skips line breaks and
		// ignores padding bits, so a signed value could be respelled.
		return Snapshot{}, &DecodeError{Reason: ReasonTampered, Err: errors.New("not canonical base64")}
	}
	var p payload
	if err := securecookie.DecodeMulti(name, value, &p, c.codecs...); err != nil {
		return Snapshot{}, &DecodeError{Reason: classify(err), Err: err}
	}
	now := c.now()
	issued := time.Unix(p.Issued, 0)
	if p.Issued <= 0 {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: fmt.Errorf("no issue time")}
	}
	if err := c.checkIssued(issued, now); err != nil {
		return Snapshot{}, err
	}
	if !ValidID(p.ID) {
		return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: fmt.Errorf("bad session id")}
	}
	snap := Snapshot{ID: p.ID, Seq: p.Seq, Values: p.Values, Permanent: p.Permanent, Pinned: p.Pinned}
	if p.Created > 0 {
		snap.Created = time.Unix(p.Created, 0)
		if err := c.checkCreated(snap.Created, now); err != nil {
			return Snapshot{}, err
		}
	}
	// The values need no json.Valid: encoding/json's Decoder scans the
	// whole payload before it unmarshals, so every json.RawMessage it
	// fills is one valid JSON value. The keys it does not check.
	for k := range snap.Values {
		if validKey(k) != nil {
			return Snapshot{}, &DecodeError{Reason: ReasonMalformed, Err: fmt.Errorf("bad key %q", k)}
		}
	}
	if snap.Values == nil {
		snap.Values = map[string]json.RawMessage{}
	}
	return snap, nil
}

// classify maps securecookie's errors to a Reason. securecookie exports
// only ErrMacInvalid, so the others are told apart by their text. With
// several keys the most telling error wins: an error found after the MAC
// matched (expired, future, malformed) beats a MAC mismatch.
func classify(err error) Reason {
	errs, ok := err.(securecookie.MultiError)
	if !ok {
		errs = securecookie.MultiError{err}
	}
	best := ReasonTampered
	for _, e := range errs {
		if e == nil {
			continue
		}
		msg := e.Error()
		switch {
		case strings.Contains(msg, "expired timestamp"):
			return ReasonExpired
		case strings.Contains(msg, "too new"):
			return ReasonFuture
		case strings.Contains(msg, "too long"):
			best = ReasonTooLong
		case strings.HasPrefix(msg, "securecookie: error - caused by:"):
			// Deserialization failed after the MAC matched.
			return ReasonMalformed
		}
	}
	return best
}

// b64 maps the characters of the URL-safe base64 alphabet to their value,
// and every other byte to -1.
var b64 = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// canonical reports whether v is in the one form securecookie writes:
// padded URL-safe base64 (base64.URLEncoding), no other byte, and zero
// padding bits in the last character before the padding.
func canonical(v string) bool {
	n := len(v)
	if n == 0 || n%4 != 0 {
		return false
	}
	pad := 0
	if v[n-1] == '=' {
		pad = 1
		if v[n-2] == '=' {
			pad = 2
		}
	}
	for i := 0; i < n-pad; i++ {
		if b64[v[i]] < 0 {
			return false
		}
	}
	switch pad {
	case 1: // 3 characters carry 2 bytes: the last 2 bits are padding
		return b64[v[n-2]]&0x3 == 0
	case 2: // 2 characters carry 1 byte: the last 4 bits are padding
		return b64[v[n-3]]&0xf == 0
	}
	return true
}
