// Package origin decides whether a request comes from an allowed origin,
// with the rules of github.com/coder/websocket's
// AcceptOptions.OriginPatterns, so the socket and the bridge agree.
//
// # Rules
//
// A request without an Origin header is not a browser's cross-origin
// request. An Origin whose host is the request's own host is allowed.
// Any other must match one of the configured host patterns (path.Match
// syntax; a pattern holding "://" is matched against scheme://host).
// CrossSite adds Fetch Metadata: a state-changing request without an
// Origin but marked Sec-Fetch-Site: cross-site is refused.
package origin
