package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sessionhub/sessionhub/session"
)

// KeysFileName is the file in the data directory holding generated keys.
const KeysFileName = "keys"

// ParseKeys parses key entries: separated by commas (or newlines, in a
// file; lines starting with # are comments), the first signs and every one
// verifies. Each entry is a standard-base64 hash key (at least 32 bytes),
// optionally followed by ":" and a standard-base64 AES block key (16, 24
// or 32 bytes).
func ParseKeys(s string) ([]session.KeyPair, error) {
	var keys []session.KeyPair
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			kp, err := parseKeyEntry(entry)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", n, err)
			}
			keys = append(keys, kp)
		}
	}
	if len(keys) == 0 {
		return nil, session.ErrNoKeys
	}
	return keys, nil
}

func parseKeyEntry(entry string) (session.KeyPair, error) {
	hashPart, blockPart, hasBlock := strings.Cut(entry, ":")
	hash, err := decodeKey(hashPart)
	if err != nil {
		return session.KeyPair{}, fmt.Errorf("hash key: %w", err)
	}
	kp := session.KeyPair{Hash: hash}
	if hasBlock {
		if kp.Block, err = decodeKey(blockPart); err != nil {
			return session.KeyPair{}, fmt.Errorf("block key: %w", err)
		}
		if len(kp.Block) == 0 {
			return session.KeyPair{}, fmt.Errorf("%w: empty block key", session.ErrBadKey)
		}
	}
	if err := kp.Validate(); err != nil {
		return session.KeyPair{}, err
	}
	return kp, nil
}

func decodeKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		// Accept the unpadded spelling too.
		if b, err2 := base64.RawStdEncoding.Strict().DecodeString(s); err2 == nil {
			return b, nil
		}
		return nil, fmt.Errorf("not standard base64: %v", err)
	}
	return b, nil
}

// FormatKey returns the entry of kp as ParseKeys reads it.
func FormatKey(kp session.KeyPair) string {
	s := base64.StdEncoding.EncodeToString(kp.Hash)
	if len(kp.Block) > 0 {
		s += ":" + base64.StdEncoding.EncodeToString(kp.Block)
	}
	return s
}

// KeySource tells where the keys came from.
type KeySource string

// The key sources.
const (
	KeysFromEnv       KeySource = "env"       // SESSIONHUB_KEYS
	KeysFromFile      KeySource = "file"      // -keys-file
	KeysFromData      KeySource = "data"      // <data>/keys, generated earlier
	KeysFromGenerated KeySource = "generated" // generated now into <data>/keys
)

// LoadKeys returns the configured keys: SESSIONHUB_KEYS (c.Keys), else
// -keys-file, else <data>/keys. When none exists and generate is set, it
// generates a key, writes it to <data>/keys (mode 0600) and warns that
// production needs its own.
func LoadKeys(c *Config, generate bool, log *slog.Logger) ([]session.KeyPair, KeySource, error) {
	switch {
	case c.Keys != "":
		keys, err := ParseKeys(c.Keys)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return keys, KeysFromEnv, nil
	case c.KeysFile != "":
		b, err := os.ReadFile(c.KeysFile)
		if err != nil {
			return nil, "", fmt.Errorf("-keys-file: %w", err)
		}
		keys, err := ParseKeys(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("-keys-file %s: %w", c.KeysFile, err)
		}
		return keys, KeysFromFile, nil
	}
	file := filepath.Join(c.DataDir, KeysFileName)
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		keys, err := ParseKeys(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", file, err)
		}
		log.Warn("using the generated keys in the data directory; production needs its own keys ("+EnvKeys+" or -keys-file, see sessionhub keygen), shared by every instance", "file", file)
		return keys, KeysFromData, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", err
	case !generate:
		return nil, "", fmt.Errorf("no keys: set %s or -keys-file, or start the server once to generate %s", EnvKeys, file)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, "", err
	}
	kp := session.GenerateKeyPair(false)
	content := "# sessionhub signing keys, generated; see `sessionhub -help`.\n" + FormatKey(kp) + "\n"
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return LoadKeys(c, false, log)
		}
		return nil, "", err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return nil, "", err
	}
	if err := f.Close(); err != nil {
		return nil, "", err
	}
	log.Warn("no keys configured: generated a signing key; production needs its own keys ("+EnvKeys+" or -keys-file, see sessionhub keygen), shared by every instance", "file", file)
	return []session.KeyPair{kp}, KeysFromGenerated, nil
}
