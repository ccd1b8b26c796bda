package origin

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Allowed reports whether r may act on the session. A request without an
// Origin header (not a browser's cross-origin request) is allowed. An
// Origin equal to the request's own origin (Scheme, and the Host header's
// host and port, default ports filled in) is allowed. Otherwise the Origin
// must match one of patterns (path.Match syntax, case-insensitive): a
// pattern holding "://" is matched against the Origin's scheme://host[:port];
// any other pattern against its host[:port], and then only on the
// request's own scheme (a page served over https allows a host pattern's
// https origin, never its http one). Origins of any other scheme than http
// and https, and "null", are refused.
func Allowed(r *http.Request, patterns []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return false
	}
	own := Scheme(r)
	if scheme == own && sameHostPort(u.Host, r.Host, own) {
		return true
	}
	host := strings.ToLower(u.Host)
	for _, p := range patterns {
		p = strings.ToLower(p)
		target := host
		if strings.Contains(p, "://") {
			target = scheme + "://" + host
		} else if scheme != own {
			continue
		}
		if ok, err := path.Match(p, target); err == nil && ok {
			return true
		}
	}
	return false
}

// CrossSite reports whether a state-changing request must be refused as
// cross-site: its Origin is not allowed, or it carries no Origin and the
// browser marks it Sec-Fetch-Site: cross-site.
func CrossSite(r *http.Request, patterns []string) bool {
	if r.Header.Get("Origin") == "" {
		return r.Header.Get("Sec-Fetch-Site") == "cross-site"
	}
	return !Allowed(r, patterns)
}

// Scheme returns the scheme the client used for r: "https" when the
// connection is TLS, "http" otherwise, unless TrustForwardedProto
// recorded the proxy's X-Forwarded-Proto for it.
func Scheme(r *http.Request) string {
	if s, ok := r.Context().Value(forwardedKey{}).(string); ok {
		return s
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

type forwardedKey struct{}

// TrustForwardedProto returns middleware that takes the request's scheme
// from its X-Forwarded-Proto header ("http" or "https"; the first value
// when a chain of proxies appended several), for a server behind a TLS
// terminating proxy that sets it. Use it only when every request comes
// through such a proxy: a client reaching the server directly could send
// any value. Without it, Scheme is the connection's own (TLS or not).
func TrustForwardedProto(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get("X-Forwarded-Proto")
		if i := strings.IndexByte(v, ','); i >= 0 {
			v = v[:i]
		}
		switch v = strings.ToLower(strings.TrimSpace(v)); v {
		case "http", "https":
			r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, v))
		}
		next.ServeHTTP(w, r)
	})
}

// sameHostPort reports whether two host[:port] strings name the same host
// and port, a missing port being scheme's default.
func sameHostPort(a, b, scheme string) bool {
	ha, pa := splitHostPort(a, scheme)
	hb, pb := splitHostPort(b, scheme)
	return ha != "" && strings.EqualFold(ha, hb) && pa == pb
}

func splitHostPort(hostport, scheme string) (host, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), ""
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return host, port
}
