package server_test

import (
	"bytes"
	"fmt"

	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// Key entries as SESSIONHUB_KEYS holds them: the first signs, the others
// still verify.
func ExampleParseKeys() {
	current := session.KeyPair{Hash: bytes.Repeat([]byte{1}, 64), Block: bytes.Repeat([]byte{2}, 32)}
	previous := session.KeyPair{Hash: bytes.Repeat([]byte{3}, 32)}
	env := server.FormatKey(current) + "," + server.FormatKey(previous)

	keys, err := server.ParseKeys(env)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, k := range keys {
		fmt.Printf("key %d: %d-byte hash key, %d-byte block key\n", i, len(k.Hash), len(k.Block))
	}
	_, err = server.ParseKeys("c2hvcnQ=") // "short"
	fmt.Println(err)
	// Output:
	// key 0: 64-byte hash key, 32-byte block key
	// key 1: 32-byte hash key, 0-byte block key
	// key 1: session: bad key: hash key is 5 bytes, want at least 32
}

// Flags and environment variables: flags win.
func ExampleParseConfig() {
	env := map[string]string{"SESSIONHUB_ADDR": "127.0.0.1:9000", "SESSIONHUB_COOKIE_SECURE": "true"}
	cfg, _, err := server.ParseConfig("sessionhub", []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Addr, cfg.CookieSecure, cfg.DataDir)
	// Output: 127.0.0.1:0 true sessionhub-data
}
