package loadtest

import (
	"bytes"
	"testing"

	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

// The fallback hub reads SESSIONHUB_KEYS with the server's own parser: an
// entry with an AES block key encrypts its cookies too, as it does on
// cmd/sessionhub, and a bad entry is refused rather than half-read.
func TestLoadKeysSharesTheServersParser(t *testing.T) {
	signing, old := session.GenerateKeyPair(true), session.GenerateKeyPair(false)
	t.Setenv(server.EnvKeys, server.FormatKey(signing)+","+server.FormatKey(old))
	keys, err := loadKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[0].Hash, signing.Hash) || !bytes.Equal(keys[0].Block, signing.Block) ||
		!bytes.Equal(keys[1].Hash, old.Hash) || len(keys[1].Block) != 0 {
		t.Fatalf("loadKeys = %d pairs, want the signing pair with its block key, then the old pair", len(keys))
	}
	t.Setenv(server.EnvKeys, "c2hvcnQ=")
	if _, err := loadKeys(); err == nil {
		t.Fatal("a 5-byte hash key was accepted")
	}
}
