package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestOriginSchemeAndProxy: the page's own origin is its scheme, host and
// port; behind a trusted proxy the scheme is X-Forwarded-Proto's.
func TestOriginSchemeAndProxy(t *testing.T) {
	t.Parallel()
	for _, trust := range []bool{false, true} {
		s := startServer(t, func(c *Config) { c.TrustProxy = trust })
		host := strings.TrimPrefix(s.URL(), "http://")
		post := func(origin, proto string) int {
			t.Helper()
			req, _ := http.NewRequest("POST", s.URL()+"/hub/flush", nil)
			req.Header.Set("Origin", origin)
			if proto != "" {
				req.Header.Set("X-Forwarded-Proto", proto)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		type check struct {
			origin, proto string
			want          int
		}
		tests := []check{
			{"http://" + host, "", http.StatusOK},
			{"https://" + host, "", http.StatusForbidden},
			{"ftp://" + host, "", http.StatusForbidden},
			{"http://" + host + "0", "", http.StatusForbidden}, // another port
		}
		if trust {
			tests = append(tests, check{"https://" + host, "https", http.StatusOK}, check{"http://" + host, "https", http.StatusForbidden})
		} else {
			tests = append(tests, check{"https://" + host, "https", http.StatusForbidden})
		}
		for _, tt := range tests {
			if got := post(tt.origin, tt.proto); got != tt.want {
				t.Errorf("trust-proxy=%v, Origin %s, X-Forwarded-Proto %q: %d, want %d", trust, tt.origin, tt.proto, got, tt.want)
			}
		}
	}
}
