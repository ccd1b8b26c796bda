package origin

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Allowed reports whether r may act on the session: a request without an
// Origin header (not a browser cross-origin request) is allowed; an Origin
// whose host equals the request's Host is allowed; otherwise the Origin's
// host (or scheme://host, for patterns holding "://") must match one of
// patterns (path.Match syntax, case-insensitive).
func Allowed(r *http.Request, patterns []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
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
