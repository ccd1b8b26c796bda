// Package origin decides whether a request comes from an allowed origin,
// so the socket and the bridge agree.
//
// # Rules
//
// A request without an Origin header is not a browser's cross-origin
// request. An Origin equal to the request's own origin is allowed:
// the same scheme, host and port (default ports filled in: http://h is
// http://h:80). Any other must match one of the configured patterns
// (path.Match syntax, case-insensitive): a pattern holding "://" is
// matched against the Origin's scheme://host[:port], any other against its
// host[:port] on the request's own scheme only. Only http and https
// origins are ever allowed. CrossSite adds Fetch Metadata: a
// state-changing request without an Origin but marked Sec-Fetch-Site:
// cross-site is refused.
//
// # The request's scheme
//
// The request's own scheme is "https" when it came over TLS and "http"
// otherwise. Behind a TLS-terminating proxy the server sees plain HTTP:
// wrap the handler in TrustForwardedProto so that the proxy's
// X-Forwarded-Proto decides, and only when every request comes through
// that proxy. The Host header is taken as it arrives; a proxy must pass it
// on unchanged.
package origin
