package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParseKeys(t *testing.T) {
	t.Parallel()
	h1, h2 := bytes.Repeat([]byte{1}, 64), bytes.Repeat([]byte{2}, 32)
	blk := bytes.Repeat([]byte{3}, 32)
	for _, tc := range []struct {
		name    string
		in      string
		want    []session.KeyPair
		wantErr error  // errors.Is
		errText string // substring
	}{
		{name: "one", in: b64(h1), want: []session.KeyPair{{Hash: h1}}},
		{name: "with block key", in: b64(h1) + ":" + b64(blk), want: []session.KeyPair{{Hash: h1, Block: blk}}},
		{name: "rotation", in: b64(h2) + ", " + b64(h1) + ":" + b64(blk), want: []session.KeyPair{{Hash: h2}, {Hash: h1, Block: blk}}},
		{name: "file lines and comments", in: "# keys\n" + b64(h2) + "\n\n" + b64(h1) + "\n", want: []session.KeyPair{{Hash: h2}, {Hash: h1}}},
		{name: "unpadded", in: base64.RawStdEncoding.EncodeToString(h1[:32]), want: []session.KeyPair{{Hash: h1[:32]}}},
		{name: "empty", in: " , ", wantErr: session.ErrNoKeys},
		{name: "bad base64", in: "not*base64", errText: "not standard base64"},
		{name: "url-safe base64 refused", in: strings.Repeat("-_", 22), errText: "not standard base64"},
		{name: "short hash key", in: b64(h1[:16]), wantErr: session.ErrBadKey},
		{name: "bad block key length", in: b64(h1) + ":" + b64(blk[:20]), wantErr: session.ErrBadKey},
		{name: "empty block key", in: b64(h1) + ":", wantErr: session.ErrBadKey},
		{name: "second entry bad", in: b64(h1) + "," + b64(h1[:8]), errText: "key 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeys(tc.in)
			if tc.wantErr != nil || tc.errText != "" {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want %v %q", err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i].Hash, tc.want[i].Hash) || !bytes.Equal(got[i].Block, tc.want[i].Block) {
					t.Errorf("key %d differs", i)
				}
			}
		})
	}
}

// A cookie signed with the old key still decodes once a new key is put
// first; the new key signs; dropping the old key refuses its cookies.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := session.GenerateKeyPair(false), session.GenerateKeyPair(true)
	store := func(entries ...session.KeyPair) *session.Store {
		var parts []string
		for _, kp := range entries {
			parts = append(parts, FormatKey(kp))
		}
		keys, err := ParseKeys(strings.Join(parts, ","))
		if err != nil {
			t.Fatal(err)
		}
		st, err := session.NewStore(&session.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	s := session.New()
	if err := s.Set("colour", "red"); err != nil {
		t.Fatal(err)
	}
	oldCookie, err := store(oldKey).Encode(s.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	rotated := store(newKey, oldKey)
	got, err := rotated.Decode(oldCookie)
	if err != nil || got.GetString("colour") != "red" {
		t.Fatalf("old cookie after rotation: %v", err)
	}
	newCookie, _ := rotated.Encode(s.Snapshot())
	if _, err := store(newKey).Decode(newCookie); err != nil {
		t.Fatalf("new key does not decode what the rotated store signs: %v", err)
	}
	if _, err := store(newKey).Decode(oldCookie); session.ReasonOf(err) != session.ReasonTampered {
		t.Fatalf("retired key still accepted: %v", err)
	}
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	entry := FormatKey(session.GenerateKeyPair(false))

	t.Run("generated once, then reused", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		c := DefaultConfig()
		c.DataDir = filepath.Join(t.TempDir(), "new")
		keys, src, err := LoadKeys(&c, true, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil || src != KeysFromGenerated || len(keys) != 1 {
			t.Fatalf("%v %v %d", err, src, len(keys))
		}
		if !strings.Contains(logs.String(), "production needs its own keys") {
			t.Errorf("no warning: %q", logs.String())
		}
		fi, err := os.Stat(filepath.Join(c.DataDir, KeysFileName))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("keys file: %v %v", err, fi.Mode())
		}
		again, src, err := LoadKeys(&c, true, discard)
		if err != nil || src != KeysFromData || !bytes.Equal(again[0].Hash, keys[0].Hash) {
			t.Fatalf("reload: %v %v", err, src)
		}
	})
	t.Run("env first", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.DataDir, c.Keys = t.TempDir(), entry
		if _, src, err := LoadKeys(&c, true, discard); err != nil || src != KeysFromEnv {
			t.Fatalf("%v %v", err, src)
		}
		if _, err := os.Stat(filepath.Join(c.DataDir, KeysFileName)); err == nil {
			t.Fatal("a key was generated although SESSIONHUB_KEYS is set")
		}
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.DataDir, c.KeysFile = t.TempDir(), filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(c.KeysFile, []byte(entry+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, src, err := LoadKeys(&c, true, discard); err != nil || src != KeysFromFile {
			t.Fatalf("%v %v", err, src)
		}
		c.KeysFile += "-missing"
		if _, _, err := LoadKeys(&c, true, discard); err == nil {
			t.Fatal("missing keys file accepted")
		}
	})
	t.Run("none and no generation", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.DataDir = t.TempDir()
		if _, _, err := LoadKeys(&c, false, discard); err == nil || !strings.Contains(err.Error(), EnvKeys) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad env", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.DataDir, c.Keys = t.TempDir(), "short"
		if _, _, err := LoadKeys(&c, true, discard); err == nil || !strings.Contains(err.Error(), EnvKeys) {
			t.Fatalf("err = %v", err)
		}
	})
}
