package origin

import (
	"net/http/httptest"
	"testing"
)

func TestAllowedAndCrossSite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, origin, fetchSite string
		patterns                []string
		allowed, crossSite      bool
	}{
		{"no origin", "", "", nil, true, false},
		{"no origin, cross-site fetch", "", "cross-site", nil, true, true},
		{"same host", "https://hub.example.com", "same-origin", nil, true, false},
		{"same host, other case", "https://HUB.example.com", "", nil, true, false},
		{"foreign", "https://evil.example.net", "cross-site", nil, false, true},
		{"host pattern", "https://app.example.com", "cross-site", []string{"*.example.com"}, true, false},
		{"scheme pattern matches", "https://app.example.com", "", []string{"https://app.example.com"}, true, false},
		{"scheme pattern, other scheme", "http://app.example.com", "", []string{"https://app.example.com"}, false, true},
		{"bad pattern never matches", "https://app.example.com", "", []string{"["}, false, true},
		{"null origin", "null", "", nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "https://hub.example.com/hub/flush", nil)
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
