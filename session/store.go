package session

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"
)

// MaxCookieSize is the budget of one Set-Cookie: name, value and
// attributes together. Browsers guarantee 4096 bytes; Flask warns past
// 4093, sessionhub refuses.
const MaxCookieSize = 4096

// Options configures a Store. The Flask setting each field mirrors is in
// brackets; the package documentation has the full table.
type Options struct {
	// Name of the cookie [SESSION_COOKIE_NAME]. Default: "session".
	Name string
	// Domain attribute [SESSION_COOKIE_DOMAIN]. Default: none (host-only).
	Domain string
	// Path attribute [SESSION_COOKIE_PATH]. Default: "/".
	Path string
	// Secure attribute [SESSION_COOKIE_SECURE]. Default: false; forced on
	// by SameSite=None and by Partitioned.
	Secure bool
	// NoHTTPOnly drops the HttpOnly attribute [SESSION_COOKIE_HTTPONLY,
	// inverted]. Default: false, so cookies are HttpOnly.
	NoHTTPOnly bool
	// SameSite attribute [SESSION_COOKIE_SAMESITE]. Default (zero):
	// http.SameSiteLaxMode. http.SameSiteNoneMode forces Secure.
	SameSite http.SameSite
	// Partitioned attribute (CHIPS) [SESSION_COOKIE_PARTITIONED]. Forces
	// Secure. Default: false.
	Partitioned bool
	// Lifetime of a permanent session's cookie, and the longest any cookie
	// is accepted after it was issued [PERMANENT_SESSION_LIFETIME].
	// Default: 31 days.
	Lifetime time.Duration
	// NoRefresh stops re-issuing a permanent session's cookie on every
	// request [SESSION_REFRESH_EACH_REQUEST, inverted]. Default: false, so
	// the cookie is refreshed.
	NoRefresh bool
	// AbsoluteTimeout ends a session this long after it was created,
	// however active. Default: none.
	AbsoluteTimeout time.Duration
	// ClockSkew is how far in the future a cookie's issue time may be.
	// Default: 0.
	ClockSkew time.Duration
	// Keys: the first pair signs, all pairs verify (rotation). Required
	// unless FlaskSecrets is set.
	Keys []KeyPair
	// FlaskSecrets, when set, switches the cookie to Flask's own format
	// (see FlaskCodec), so that a Flask or Quart app and the hub share one
	// cookie: the app's SECRET_KEY first (it signs), older keys after (they
	// verify) [secret_key, SECRET_KEY_FALLBACKS]. Keys must then be empty.
	// Default: none, the securecookie format of Keys.
	FlaskSecrets [][]byte
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Store loads sessions from requests and writes them back as cookies, by
// the rules of Flask's SecureCookieSessionInterface. A Store is safe for
// concurrent use.
type Store struct {
	opts  Options
	codec CookieCodec
	// baseLen is the length of the Set-Cookie with an empty value, for a
	// session that is not permanent [0] and one that is [1]: Expires has
	// a fixed width (http.TimeFormat), and Max-Age depends on Lifetime
	// only.
	baseLen [2]int
}

// NewStore returns a store with the defaults filled in.
func NewStore(opts *Options) (*Store, error) {
	if opts == nil {
		return nil, ErrNoKeys
	}
	o := *opts
	if o.Name == "" {
		o.Name = "session"
	}
	if !validCookieName(o.Name) {
		return nil, fmt.Errorf("session: invalid cookie name %q", o.Name)
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.SameSite == 0 || o.SameSite == http.SameSiteDefaultMode {
		o.SameSite = http.SameSiteLaxMode
	}
	if o.SameSite == http.SameSiteNoneMode || o.Partitioned {
		o.Secure = true
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var codec CookieCodec
	var err error
	if len(o.FlaskSecrets) > 0 {
		if len(o.Keys) > 0 {
			return nil, errors.New("session: Keys and FlaskSecrets are two cookie formats: set one")
		}
		codec, err = NewFlaskCodec(FlaskCodecOptions{Secrets: o.FlaskSecrets, MaxAge: o.Lifetime, AbsoluteTimeout: o.AbsoluteTimeout, ClockSkew: o.ClockSkew, Now: o.Now})
	} else {
		codec, err = NewCodec(CodecOptions{Keys: o.Keys, MaxAge: o.Lifetime, AbsoluteTimeout: o.AbsoluteTimeout, ClockSkew: o.ClockSkew, Now: o.Now})
	}
	if err != nil {
		return nil, err
	}
	st := &Store{opts: o, codec: codec}
	st.baseLen = [2]int{st.measureBaseCookie(false), st.measureBaseCookie(true)}
	return st, nil
}

func validCookieName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || stringsContainsByte("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return name != ""
}

func stringsContainsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// Options returns the store's options with defaults filled in (keys and
// secrets omitted).
func (st *Store) Options() Options {
	o := st.opts
	o.Keys = nil
	o.FlaskSecrets = nil
	return o
}

// Name returns the cookie name.
func (st *Store) Name() string { return st.opts.Name }

// Codec returns the store's codec: a *Codec, or a *FlaskCodec when
// Options.FlaskSecrets is set.
func (st *Store) Codec() CookieCodec { return st.codec }

// Load returns the session of the request. It never returns nil: a
// missing or refused cookie yields a new empty session, and for a refused
// one a *DecodeError telling why (log it, count it; do not fail the
// request). A missing cookie is not an error.
func (st *Store) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(st.opts.Name)
	if err != nil || c.Value == "" { // absent, or emptied by a deletion
		return New(), nil
	}
	return st.Decode(c.Value)
}

// Decode returns the session a cookie value holds, or a new empty session
// and a *DecodeError. A Flask cookie that holds values but not the hub's
// fields (the app wrote it before the hub saw it) is adopted: the session
// gets a new ID and creation time, keeps the values, and is written back
// on the response even when nothing else changes.
func (st *Store) Decode(value string) (*Session, error) {
	snap, err := st.codec.Decode(st.opts.Name, value)
	if err != nil {
		return New(), err
	}
	s := FromSnapshot(snap)
	if snap.ID == "" && len(snap.Values) > 0 {
		// Pinned and modified: the next response carries the new ID, so
		// the next request (and its sockets) find the same session.
		s.EnsureID()
	}
	return s, nil
}

// Encode returns the signed cookie value for snap.
func (st *Store) Encode(snap Snapshot) (string, error) {
	return st.codec.Encode(st.opts.Name, snap)
}

// Cookie returns the Set-Cookie cookie carrying snap, with every attribute
// of the store. It fails with ErrTooLarge when it would not fit
// MaxCookieSize.
func (st *Store) Cookie(snap Snapshot) (*http.Cookie, error) {
	v, err := st.Encode(snap)
	if err != nil {
		return nil, err
	}
	c := st.baseCookie()
	c.Value = v
	if snap.Permanent {
		exp := st.opts.Now().Add(st.opts.Lifetime)
		c.Expires = exp.UTC()
		c.MaxAge = int(st.opts.Lifetime / time.Second)
	}
	if n := len(c.String()); n > MaxCookieSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	return c, nil
}

// DeletionCookie returns the cookie that deletes the session cookie: the
// same name, Domain, Path and attributes, Max-Age 0 and Expires in 1970.
func (st *Store) DeletionCookie() *http.Cookie {
	c := st.baseCookie()
	c.MaxAge = -1 // net/http writes "Max-Age=0"
	c.Expires = time.Unix(0, 0).UTC()
	return c
}

func (st *Store) baseCookie() *http.Cookie {
	return &http.Cookie{
		Name:        st.opts.Name,
		Domain:      st.opts.Domain,
		Path:        st.opts.Path,
		Secure:      st.opts.Secure,
		HttpOnly:    !st.opts.NoHTTPOnly,
		SameSite:    st.opts.SameSite,
		Partitioned: st.opts.Partitioned,
	}
}

// Fits reports, before a change is accepted, whether the session's cookie
// would still fit MaxCookieSize with ops folded in (ops with Seq 0 are
// applied after the snapshot, as one log entry). It returns nil or an
// error wrapping ErrTooLarge.
//
// The measure is on the safe side: the cookie of a session whose ops went
// to a log carries the sequence number the log gave the last one, which
// Fits cannot know (log sequence numbers are shared by every session), so
// it counts the widest one. What Fits accepts, Save can write.
func (st *Store) Fits(snap Snapshot, ops ...Op) error {
	n, err := st.Size(snap, ops...)
	if err != nil {
		return err
	}
	if n > MaxCookieSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	return nil
}

// Size returns the length of the Set-Cookie the session would have with
// ops folded in, measured as Fits does (without signing).
func (st *Store) Size(snap Snapshot, ops ...Op) (int, error) {
	staged := ops
	if slices.ContainsFunc(ops, func(op Op) bool { return op.Seq == 0 }) {
		staged = make([]Op, len(ops))
		for i, op := range ops {
			if op.Seq == 0 {
				op.Seq = math.MaxUint64
			}
			staged[i] = op
		}
	}
	if _, ok := st.codec.(*Codec); ok {
		// Measured without folding: no copy of the values.
		if !slices.IsSortedFunc(staged, cmpSeq) {
			staged = slices.SortedStableFunc(slices.Values(staged), cmpSeq)
		}
		z := st.NewSizer(snap)
		for _, op := range staged {
			z.Fold(op, -1)
		}
		return z.Size()
	}
	snap = measured(snap)
	if len(staged) > 0 {
		snap = snap.Fold(staged)
	}
	return st.cookieLen(snap)
}

// sizeOf returns the length of the Set-Cookie of snap with values whose
// encoded map is valuesLen bytes long (0: none) at sequence seq, for a
// Store whose codec is Codec.
func (st *Store) sizeOf(snap Snapshot, valuesLen int, seq uint64) int {
	snap = measured(snap)
	snap.Seq, snap.Values = seq, nil
	return st.baseCookieLen(snap) + st.codec.(*Codec).encodedLen(snap, valuesLen)
}

// measured returns snap as Save will write it, for a measure: a new
// session gets the length of the ID Save will give it, and a creation
// time.
func measured(snap Snapshot) Snapshot {
	if snap.ID == "" {
		snap.ID = newIDShape
		if snap.Created.IsZero() {
			snap.Created = now()
		}
	}
	return snap
}

// newIDShape has the length and alphabet of a NewID, for measures.
var newIDShape = NewID()

// cookieLen returns the length of the Set-Cookie value Cookie would build
// for snap, without signing it.
func (st *Store) cookieLen(snap Snapshot) (int, error) {
	vlen, err := st.codec.EncodedLen(snap)
	if err != nil {
		return 0, err
	}
	return st.baseCookieLen(snap) + vlen, nil
}

// baseCookieLen returns the length of the Set-Cookie Cookie would build
// for snap with an empty value.
func (st *Store) baseCookieLen(snap Snapshot) int {
	if snap.Permanent {
		return st.baseLen[1]
	}
	return st.baseLen[0]
}

// measureBaseCookie builds the Set-Cookie of an empty value and returns
// its length.
func (st *Store) measureBaseCookie(permanent bool) int {
	c := st.baseCookie()
	if permanent {
		c.Expires = st.opts.Now().Add(st.opts.Lifetime).UTC()
		c.MaxAge = int(st.opts.Lifetime / time.Second)
	}
	return len(c.String())
}

// Decision is what Save does to the response.
type Decision int

// The decisions of Save.
const (
	Untouched Decision = iota // no Set-Cookie
	Written                   // the cookie was set
	Deleted                   // the cookie was deleted
)

// String returns a lower-case name for d.
func (d Decision) String() string {
	switch d {
	case Written:
		return "written"
	case Deleted:
		return "deleted"
	}
	return "untouched"
}

// Save applies Flask's save_session rules to the response headers h:
//
//   - Vary: Cookie whenever the session was accessed (or its cookie is set
//     or deleted);
//   - an empty session that was modified (emptied, or ended) deletes the
//     cookie with the same Domain, Path and attributes; an empty
//     unmodified one sets nothing;
//   - otherwise the cookie is set when the session was modified, when log
//     ops were folded in, or when it is permanent and refreshed on each
//     request; Expires/Max-Age only on permanent sessions.
//
// It must run before the response header is written. When the cookie
// would exceed MaxCookieSize, nothing is set and the error wraps
// ErrTooLarge.
func (st *Store) Save(h http.Header, s *Session) (Decision, error) {
	s.mu.Lock()
	empty := s.emptyLocked()
	modified, advanced, accessed := s.modified, s.advanced, s.accessed
	// A copy: the cookie is encoded after the lock is released, while
	// others may write to the session.
	snap := Snapshot{ID: s.id, Seq: s.seq, Values: maps.Clone(s.values), Permanent: s.permanent, Created: s.created, Pinned: s.pinned}
	s.mu.Unlock()

	// Vary first: a response that read an empty session depends on the
	// cookie as much as one that read a full one (Flask adds it before its
	// empty check too).
	if accessed {
		addVary(h)
	}
	if empty {
		if modified {
			addVary(h)
			h.Add("Set-Cookie", st.DeletionCookie().String())
			return Deleted, nil
		}
		return Untouched, nil
	}
	if !(modified || advanced || (snap.Permanent && !st.opts.NoRefresh)) {
		return Untouched, nil
	}
	if snap.ID == "" {
		return Untouched, errors.New("session: non-empty session without an ID")
	}
	c, err := st.Cookie(snap)
	if err != nil {
		return Untouched, err
	}
	h.Add("Set-Cookie", c.String())
	addVary(h)
	return Written, nil
}

func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		if v == "Cookie" {
			return
		}
	}
	h.Add("Vary", "Cookie")
}
