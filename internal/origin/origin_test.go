package origin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAllowedAndCrossSite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, target, origin, fetchSite string
		patterns                        []string
		allowed, crossSite              bool
	}{
		{"no origin", "", "", "", nil, true, false},
		{"no origin, cross-site fetch", "", "", "cross-site", nil, true, true},
		{"same origin", "", "https://hub.example.com", "same-origin", nil, true, false},
		{"same origin, other case", "", "https://HUB.example.com", "", nil, true, false},
		{"same origin, default port spelled", "", "https://hub.example.com:443", "", nil, true, false},
		{"same host, other scheme", "", "http://hub.example.com", "", nil, false, true},
		{"same host, ftp", "", "ftp://hub.example.com", "", nil, false, true},
		{"same host, other port", "", "https://hub.example.com:8443", "", nil, false, true},
		{"plain http page", "http://hub.example.com:8080/hub/flush", "http://hub.example.com:8080", "", nil, true, false},
		{"plain http, https origin", "http://hub.example.com:8080/hub/flush", "https://hub.example.com:8080", "", nil, false, true},
		{"plain http, other port", "http://hub.example.com:8080/hub/flush", "http://hub.example.com:8081", "", nil, false, true},
		{"ipv6 host", "http://[::1]:8080/hub/flush", "http://[::1]:8080", "", nil, true, false},
		{"foreign", "", "https://evil.example.net", "cross-site", nil, false, true},
		{"host pattern", "", "https://app.example.com", "cross-site", []string{"*.example.com"}, true, false},
		{"host pattern, other scheme", "", "http://app.example.com", "cross-site", []string{"*.example.com"}, false, true},
		{"host pattern, ftp", "", "ftp://app.example.com", "cross-site", []string{"*.example.com"}, false, true},
		{"host pattern, port must match", "", "https://app.example.com:8443", "", []string{"app.example.com"}, false, true},
		{"host pattern with port", "", "https://app.example.com:8443", "", []string{"app.example.com:8443"}, true, false},
		{"scheme pattern matches", "", "https://app.example.com", "", []string{"https://app.example.com"}, true, false},
		{"scheme pattern, other scheme", "", "http://app.example.com", "", []string{"https://app.example.com"}, false, true},
		{"scheme pattern allows another scheme", "http://hub.example.com/hub/flush", "https://app.example.com", "", []string{"https://app.example.com"}, true, false},
		{"scheme pattern cannot allow ftp", "", "ftp://app.example.com", "", []string{"ftp://app.example.com"}, false, true},
		{"bad pattern never matches", "", "https://app.example.com", "", []string{"["}, false, true},
		{"null origin", "", "null", "", nil, false, true},
		{"origin with a path", "", "https://hub.example.com/x", "", nil, false, true},
		{"origin with user info", "", "https://u@hub.example.com", "", nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := tt.target
			if target == "" {
				target = "https://hub.example.com/hub/flush"
			}
			r := httptest.NewRequest("POST", target, nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetchSite)
			}
			if got := Allowed(r, tt.patterns); got != tt.allowed {
				t.Errorf("Allowed = %v, want %v", got, tt.allowed)
			}
			if got := CrossSite(r, tt.patterns); got != tt.crossSite {
				t.Errorf("CrossSite = %v, want %v", got, tt.crossSite)
			}
		})
	}
}

func TestTrustForwardedProto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, proto, origin string
		trust               bool
		scheme              string
		allowed             bool
	}{
		{"untrusted header is ignored", "https", "https://hub.example.com", false, "http", false},
		{"trusted https", "https", "https://hub.example.com", true, "https", true},
		{"trusted https refuses http", "https", "http://hub.example.com", true, "https", false},
		{"first of a chain", "https, http", "https://hub.example.com", true, "https", true},
		{"garbage keeps the connection's", "gopher", "http://hub.example.com", true, "http", true},
		{"absent keeps the connection's", "", "http://hub.example.com", true, "http", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "http://hub.example.com/hub/flush", nil)
			r.Header.Set("Origin", tt.origin)
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			var scheme string
			var allowed bool
			var h http.Handler = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				scheme, allowed = Scheme(r), Allowed(r, nil)
			})
			if tt.trust {
				h = TrustForwardedProto(h)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if scheme != tt.scheme || allowed != tt.allowed {
				t.Errorf("Scheme = %q, Allowed = %v; want %q, %v", scheme, allowed, tt.scheme, tt.allowed)
			}
		})
	}
}
