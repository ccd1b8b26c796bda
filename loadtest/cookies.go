package loadtest

import (
	"net/http"
	"strings"
)

// cookieHeader returns the Cookie header the browser would send.
func (s *lsession) cookieHeader() string {
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	parts := make([]string, 0, len(s.cookies))
	for k, v := range s.cookies {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

// setCookies stores the cookies a response sets, like a browser's jar
// (cookies are not separated by port, so every instance gets them).
func (s *lsession) setCookies(resp *http.Response) {
	if resp == nil {
		return
	}
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(s.cookies, c.Name)
			continue
		}
		s.cookies[c.Name] = c.Value
	}
}
