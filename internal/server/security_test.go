package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestSlowBodiesCutOff: clients trickling a request body are cut off
// within the read timeout, while other clients keep being served and an
// upgraded socket outlives it.
func TestSlowBodiesCutOff(t *testing.T) {
	t.Parallel()
	const readTimeout = 500 * time.Millisecond
	const clients = 20
	s := startServer(t, func(c *Config) { c.ReadTimeout = readTimeout })
	b := newBrowser(t, s.URL())
	ws := b.dial()
	ws.expect("welcome")

	start := time.Now()
	var wg sync.WaitGroup
	cutOff := make(chan time.Duration, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /api/settings HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", s.Addr())
			// One byte every 50ms, for at most 10s; a read in between
			// tells whether the server has closed the connection.
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
			for i := 0; i < 200; i++ {
				if _, err := c.Write([]byte("{")); err != nil {
					cutOff <- time.Since(start)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Error("a slow body was still accepted after 10s")
		}()
	}
	// Meanwhile another client is served, and the socket writes.
	other := newBrowser(t, s.URL())
	if st, body := other.doJSON("POST", "/api/settings", `{"theme":"dark"}`); st != http.StatusOK || values(body)["theme"] != "dark" {
		t.Fatalf("settings while slow bodies trickle: %d %v", st, body)
	}
	wg.Wait()
	close(cutOff)
	n := 0
	for d := range cutOff {
		n++
		if d > readTimeout+3*time.Second {
			t.Errorf("a slow body was cut off after %v (read timeout %v)", d, readTimeout)
		}
	}
	if n != clients {
		t.Fatalf("%d of %d slow bodies cut off", n, clients)
	}
	// The socket, open longer than the read timeout by now, still works.
	if time.Since(start) < readTimeout {
		t.Fatal("the test ran shorter than the read timeout")
	}
	if r := ws.request(map[string]any{"type": "set", "key": "colour", "value": "red"}); r["type"] != "ack" {
		t.Fatalf("socket after the read timeout: %v", r)
	}
}

// TestSlowHeadersCutOff: a client trickling a request's header is cut
// off within the header's bound, on the main listener and on the metrics
// one, while another client is served.
func TestSlowHeadersCutOff(t *testing.T) {
	t.Parallel()
	const readTimeout = 500 * time.Millisecond
	s := startServer(t, func(c *Config) { c.ReadTimeout = readTimeout; c.MetricsAddr = "127.0.0.1:0" })
	start := time.Now()
	var wg sync.WaitGroup
	for _, base := range []string{s.URL(), s.MetricsURL()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := strings.TrimPrefix(base, "http://")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\nX-Slow: ", addr)
			// One byte every 50ms, for at most 10s; a read in between
			// tells whether the server has closed the connection.
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
			for i := 0; i < 200; i++ {
				if _, err := c.Write([]byte("a")); err != nil {
					if d := time.Since(start); d < readTimeout || d > readTimeout+3*time.Second {
						t.Errorf("%s: a slow header was cut off after %v (bound %v)", base, d, readTimeout)
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("%s: a slow header was still read after 10s", base)
		}()
	}
	// Meanwhile another client is served.
	other := newBrowser(t, s.URL())
	if st, body := other.doJSON("POST", "/api/settings", `{"theme":"dark"}`); st != http.StatusOK || values(body)["theme"] != "dark" {
		t.Fatalf("settings while a slow header trickles: %d %v", st, body)
	}
	wg.Wait()
}

// TestReadTimeouts: every listener bounds reading one request by the
// read timeout and its header by at most MaxReadHeaderTimeout.
func TestReadTimeouts(t *testing.T) {
	t.Parallel()
	for _, rt := range []time.Duration{500 * time.Millisecond, DefaultReadTimeout, time.Hour} {
		s := &Server{cfg: Config{ReadTimeout: rt}, log: testLogger(t)}
		srv := s.httpServer(http.NotFoundHandler())
		if srv.ReadTimeout != rt || srv.ReadHeaderTimeout != min(rt, MaxReadHeaderTimeout) {
			t.Errorf("-read-timeout %v: ReadTimeout %v, ReadHeaderTimeout %v; want %v and %v",
				rt, srv.ReadTimeout, srv.ReadHeaderTimeout, rt, min(rt, MaxReadHeaderTimeout))
		}
	}
}

// TestMetricsAddrAndToken: /metrics moves to its own listener with
// -metrics-addr, and needs the bearer token with -metrics-token.
func TestMetricsAddrAndToken(t *testing.T) {
	t.Parallel()
	get := func(url, auth string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(data), "sessionhub_sockets_open") {
			t.Fatalf("%s: 200 without the metrics: %q", url, data)
		}
		return resp.StatusCode
	}
	t.Run("separate address", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
		if s.MetricsURL() == "" || s.MetricsURL() == s.URL() {
			t.Fatalf("metrics URL %q, main URL %q", s.MetricsURL(), s.URL())
		}
		if st := get(s.URL()+"/metrics", ""); st == http.StatusOK {
			t.Errorf("main listener still serves /metrics: %d", st)
		}
		if st := get(s.MetricsURL()+"/metrics", ""); st != http.StatusOK {
			t.Errorf("metrics listener: %d", st)
		}
		if st := get(s.MetricsURL()+"/healthz", ""); st != http.StatusNotFound {
			t.Errorf("metrics listener serves more than /metrics: %d", st)
		}
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, func(c *Config) { c.MetricsToken = "s3cret" })
		for auth, want := range map[string]int{
			"":              http.StatusUnauthorized,
			"Bearer wrong":  http.StatusUnauthorized,
			"Bearer s3cre":  http.StatusUnauthorized, // a prefix
			"Bearer s3cret": http.StatusOK,
			"s3cret":        http.StatusUnauthorized,
		} {
			if st := get(s.URL()+"/metrics", auth); st != want {
				t.Errorf("Authorization %q: %d, want %d", auth, st, want)
			}
		}
	})
}
