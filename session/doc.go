// Package session is sessionhub's session: a signed cookie, by the rules
// of Flask's SecureCookieSessionInterface, that is also a snapshot of a
// log of changes. It has no network and no HTTP server: the hub package
// keeps the log, the httpbridge package runs it on HTTP requests.
//
// # Model
//
// A [Session] has a random ID ([NewID]: 128 bits from crypto/rand, 32 hex
// characters), JSON values under string keys, a permanent flag, a creation
// time and a version, Seq: the sequence number of the last log op folded
// into it. Every change is an [Op]: set a key to a JSON value, delete a
// key, or clear all keys. [Op.Validate] tells a well-formed op.
//
// Ops are appended to the session's log, which numbers them. The cookie
// carries a [Snapshot]: the values with every op up to Seq folded in. What
// a reader sees is the snapshot with the log's later ops folded in, in
// sequence order ([Session.Fold], [Snapshot.Fold]). Ops at or below Seq
// are skipped, so folding the same ops again, from a stale cookie or a
// retried request, changes nothing; ops that share a sequence number are
// one log entry, folded whole.
//
// The changes a handler makes with [Session.Set], [Session.Delete],
// [Session.Clear] and [Session.Apply] are recorded ([Session.TakeOps]) so
// that the middleware can append them to the log.
//
// # Cookies
//
// [Store.Load] reads the session from a request and [Store.Save] writes
// the response's Set-Cookie before the header is sent. A missing cookie
// gives a new empty session; a refused one (forged, signed with an unknown
// key, moved from another cookie name, expired, future-dated, malformed,
// too long) gives a new empty session and a [*DecodeError] whose [Reason]
// is meant for logs and metrics, never for the client. Decoding never
// panics, whatever the input.
//
// Save follows Flask's save_session:
//
//   - Vary: Cookie is added whenever the session was accessed (read or
//     written, even when it is empty) and whenever a cookie is set or
//     deleted. A response that never touched the session gets none.
//   - An empty session that was modified deletes the cookie: the same
//     name, Domain, Path and attributes, an empty value, Max-Age=0 and
//     Expires in 1970. An empty session that was not modified sets
//     nothing.
//   - Otherwise the cookie is set when the session was modified
//     ([Session.MarkModified] forces it), when log ops were folded in, or
//     when it is permanent and refreshed on every request. Only a
//     permanent session's cookie carries Expires and Max-Age (the
//     lifetime); any other is a browser-session cookie.
//
// Empty has one sessionhub twist. A plain session that is emptied loses
// its cookie, as in Flask. A session bound to a log (Seq > 0, or pinned by
// [Session.EnsureID] in this request) keeps its cookie when emptied: the
// ID is what ties the browser's open sockets and later requests to one log,
// so the cookie is written with no values rather than deleted.
// [Session.End] (logout) deletes the cookie in every case, and drops the
// ID; a write after End starts a new session with a new ID.
// [Session.Rotate] (login) gives the session a new ID and keeps its values.
//
// # Keys and rotation
//
// Cookies are signed with HMAC-SHA256 by gorilla/securecookie, over the
// cookie name, the time and the payload, so a value cannot be moved to
// another cookie. A [KeyPair] with a Block key also encrypts the payload
// with AES (CTR mode, a random IV per cookie). [GenerateKeyPair] makes
// keys from crypto/rand.
//
// Options.Keys (or CodecOptions.Keys) is a list: the first pair signs,
// every pair verifies. To rotate, put the new pair first and keep the old
// one second for at least the lifetime; a cookie signed with the old key
// is re-signed with the new one the next time it is written. Remove the
// old pair and its cookies are refused as tampered. The lifetime (MaxAge)
// applies to every key: rotation never extends a cookie's life.
//
// Each cookie carries the time it was issued; one older than the lifetime
// is refused as expired, one from the future beyond ClockSkew as future.
// AbsoluteTimeout, when set, ends a session that long after it was
// created however often its cookie was refreshed. One signed value has one
// spelling: a cookie that decodes to signed bytes but is not written the
// way the codec writes it (line breaks, non-zero base64 padding bits) is
// refused as tampered.
//
// # Flask's cookie
//
// A store with Options.FlaskSecrets (or a [FlaskCodec]) reads and writes
// the cookie of Flask's and Quart's default SecureCookieSessionInterface
// instead, so that a Flask or Quart app and the hub share one cookie: an
// itsdangerous URLSafeTimedSerializer (salt "cookie-session", key
// derivation "hmac", HMAC-SHA1, unpadded URL-safe base64, zlib and a
// leading "." when that is shorter, the signing time; max age = Lifetime,
// PERMANENT_SESSION_LIFETIME) carrying Flask's TaggedJSONSerializer. The
// first secret signs, all verify (SECRET_KEY, then SECRET_KEY_FALLBACKS).
//
// The app's values pass through byte for byte: each top-level key's value
// is kept as the JSON Flask wrote, so a tuple, bytes, Markup, UUID or
// datetime stays in its tagged form (for example {" t":[1,2]}) and reaches
// the app unchanged. The keys are written sorted with ASCII-only escapes,
// as Flask writes them. The hub's own fields (ID, Seq, creation time, pin)
// live under one reserved key, [FlaskHubKey] ("_sessionhub"); Flask's
// session.permanent, "_permanent", is Snapshot.Permanent. A cookie the app
// wrote before the hub saw it is adopted by [Store.Decode]: a new ID, the
// values kept. Values with a tagged object are read by Flask as Python
// objects, so writes from browsers must be refused when [FlaskTagged]
// reports one. JSON that Python accepts and JSON does not (NaN, Infinity)
// is refused as malformed.
//
// # Size budget
//
// Browsers keep cookies of up to 4096 bytes, counting the name, the value
// and the attributes ([MaxCookieSize]); past that they drop the cookie
// silently. Flask only warns. sessionhub refuses: [Store.Save] returns an
// error wrapping [ErrTooLarge] and sets no cookie (the browser keeps the
// previous one), and [Store.Fits] tells before a change is accepted
// whether the session's cookie would still fit with some ops folded in.
// Fits counts the widest sequence number a log could give the ops, so
// whatever it accepts, Save can write. The value is base64 of base64 (and
// of an IV and ciphertext with encryption): a session holds about half of
// the budget in JSON.
//
// # Flask settings
//
// [Options] mirrors Flask's configuration. Defaults are Flask's except
// SameSite (Lax, where Flask sets none) and the Secure attribute forced by
// SameSite=None and by Partitioned, which browsers require.
//
//	Flask setting                 Options field          Default
//	SESSION_COOKIE_NAME           Name                   "session"
//	SESSION_COOKIE_DOMAIN         Domain                 "" (host-only cookie)
//	SESSION_COOKIE_PATH           Path                   "/"
//	SESSION_COOKIE_SECURE         Secure                 false (true with SameSite=None or Partitioned)
//	SESSION_COOKIE_HTTPONLY       NoHTTPOnly (inverted)  false: cookies are HttpOnly
//	SESSION_COOKIE_SAMESITE       SameSite               http.SameSiteLaxMode
//	SESSION_COOKIE_PARTITIONED    Partitioned            false
//	PERMANENT_SESSION_LIFETIME    Lifetime               31 days ([DefaultLifetime])
//	SESSION_REFRESH_EACH_REQUEST  NoRefresh (inverted)   false: permanent cookies are refreshed
//	(secret_key, SECRET_KEY_FALLBACKS)  Keys             required: first signs, all verify
//	session.permanent             [Session.SetPermanent] false
//	session.modified = True       [Session.MarkModified]
//
// Beyond Flask: AbsoluteTimeout (default none), ClockSkew (default 0) and
// Now, the clock (default time.Now).
package session
