package server

import (
	"net/http"
	"testing"
)

func TestDebugAddr(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	plain := startServer(t, nil)
	if plain.DebugAddr() != nil {
		t.Fatalf("debug listener without -debug-addr: %v", plain.DebugAddr())
	}
	if code := get(plain.URL() + "/debug/pprof/cmdline"); code == http.StatusOK {
		t.Fatalf("the profiler is served on the public address")
	}
	s := startServer(t, func(c *Config) { c.DebugAddr = "127.0.0.1:0" })
	if code := get("http://" + s.DebugAddr().String() + "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Fatalf("profiler: status %d", code)
	}
	if code := get(s.URL() + "/debug/pprof/cmdline"); code == http.StatusOK {
		t.Fatalf("the profiler is served on the public address too")
	}
}
