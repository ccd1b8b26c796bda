package origin_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/sessionhub/sessionhub/internal/origin"
)

func ExampleCrossSite() {
	patterns := []string{"app.example.com"}
	for _, o := range []string{"", "https://hub.example.com", "https://app.example.com", "https://evil.example.net"} {
		r := httptest.NewRequest("POST", "https://hub.example.com/hub/flush", nil)
		if o != "" {
			r.Header.Set("Origin", o)
		}
		fmt.Printf("%q cross-site: %v\n", o, origin.CrossSite(r, patterns))
	}
	// Output:
	// "" cross-site: false
	// "https://hub.example.com" cross-site: false
	// "https://app.example.com" cross-site: false
	// "https://evil.example.net" cross-site: true
}
