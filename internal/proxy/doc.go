// Package proxy is sessionhub proxy: the hub in front of an existing Flask
// or Quart app that knows nothing of it. The proxy serves the socket, the
// bridge, the browser client and the server API under /hub/ itself, and
// forwards every other request to the app with httputil.ReverseProxy,
// sharing the app's own session cookie (session.FlaskCodec).
//
// # Requests
//
// Before a request is forwarded, the session's pending socket writes are
// folded into the Flask cookie the app receives, whatever cookie the
// browser sent (a stale one too), and the session's ID is sent in the
// Sessionhub-Session header (stripped from what clients send, in any case
// and spelled with "_" for "-", which WSGI servers read as the same
// header). After the response, the app's Set-Cookie for the session is
// diffed against what it was sent: each changed key becomes an op in the
// log (source http), so open sockets see it live, and the browser receives
// one cookie holding both. A deleted cookie (the app cleared its session: a logout) ends the
// session in the hub: its sockets close with 4000 on every instance.
// WebSocket upgrades of the app's own routes are proxied like any request.
//
// # Client keys
//
// The browser may read and write the -client-keys, read the
// -readable-keys, and nothing else. A value it writes must be JSON within
// the cookie budget, pass the key's JSON Schema when -keys-schema gives one
// (github.com/santhosh-tekuri/jsonschema), and hold no object Flask would
// read as a tagged Python value (session.FlaskTagged): such a value is
// refused with forbidden. The Flask cookie's own keys (_sessionhub,
// _permanent) are never client keys, and the server API refuses writes to
// them.
package proxy
