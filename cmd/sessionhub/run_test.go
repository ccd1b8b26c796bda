package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/internal/gctune"
	"github.com/sessionhub/sessionhub/internal/server"
	"github.com/sessionhub/sessionhub/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestKeygenAndInspect(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"keygen"}, env(nil), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	plain := strings.TrimSpace(out.String())
	out.Reset()
	if err := run(context.Background(), []string{"keygen", "-encrypt"}, env(nil), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	encrypted := strings.TrimSpace(out.String())
	if strings.Contains(plain, ":") || !strings.Contains(encrypted, ":") {
		t.Fatalf("keygen: %q, keygen -encrypt: %q", plain, encrypted)
	}
	for _, entry := range []string{plain, encrypted} {
		keys, err := server.ParseKeys(entry)
		if err != nil || len(keys[0].Hash) != 64 {
			t.Fatalf("keygen printed %q: %v", entry, err)
		}
	}

	// A cookie signed with the encrypted key, inspected with a rotated key
	// list (a new key first).
	keys, _ := server.ParseKeys(encrypted)
	store, err := session.NewStore(&session.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s := session.New()
	_ = s.Set("colour", "teal")
	_ = s.Set("notifications", true)
	s.SetPermanent(true)
	cookie, err := store.Encode(s.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SESSIONHUB_KEYS": plain + "," + encrypted, "SESSIONHUB_DATA": t.TempDir()}
	for _, arg := range []string{cookie, "session=" + cookie, "session=" + cookie + "; Path=/"} {
		out.Reset()
		if err := run(context.Background(), []string{"inspect", arg}, env(vars), &out, &errOut); err != nil {
			t.Fatalf("inspect %q: %v (%s)", arg, err, errOut.String())
		}
		var got Inspection
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("inspect printed %q: %v", out.String(), err)
		}
		if got.ID != s.ID() || !got.Permanent || string(got.Values["colour"]) != `"teal"` || string(got.Values["notifications"]) != "true" {
			t.Fatalf("inspect: %+v", got)
		}
	}

	// Refused: tampered, signed by another key, under another cookie name.
	for name, tc := range map[string]struct {
		args   []string
		vars   map[string]string
		reason session.Reason
	}{
		"tampered":   {[]string{"inspect", cookie[:len(cookie)-8] + "AAAAAAA="}, vars, session.ReasonTampered},
		"other key":  {[]string{"inspect", cookie}, map[string]string{"SESSIONHUB_KEYS": plain}, session.ReasonTampered},
		"other name": {[]string{"inspect", "-cookie-name", "sid", cookie}, vars, session.ReasonTampered},
	} {
		errOut.Reset()
		err := run(context.Background(), tc.args, env(tc.vars), &out, &errOut)
		var ex exitError
		if !errors.As(err, &ex) || session.ReasonOf(err) != tc.reason {
			t.Errorf("%s: err = %v, want an exit error of reason %s", name, err, tc.reason)
		}
		if !strings.Contains(errOut.String(), "cookie rejected: "+string(tc.reason)) {
			t.Errorf("%s: stderr %q", name, errOut.String())
		}
	}

	// No keys anywhere: inspect does not generate one.
	if err := run(context.Background(), []string{"inspect", "-data", t.TempDir(), cookie}, env(nil), &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), "no keys") {
		t.Fatalf("inspect without keys: %v", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want error
		text string
	}{
		{[]string{"-help"}, flag.ErrHelp, "SESSIONHUB_ADDR"},
		{[]string{"-no-such-flag"}, errUsage, "not defined"},
		{[]string{"-replicas", "9"}, errUsage, "-replicas 9"},
		{[]string{"stray"}, errUsage, "unexpected argument"},
		{[]string{"keygen", "extra"}, errUsage, "Usage: sessionhub keygen"},
		{[]string{"keygen", "-help"}, flag.ErrHelp, "Use -encrypt\nwhen values are private"},
		{[]string{"inspect"}, errUsage, "Usage: sessionhub inspect"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, env(nil), &out, &errOut)
		if !errors.Is(err, tc.want) || !strings.Contains(errOut.String(), tc.text) {
			t.Errorf("%q: err = %v, stderr %q; want %v and %q", tc.args, err, errOut.String(), tc.want, tc.text)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listening = regexp.MustCompile(regexp.QuoteMeta(server.ListeningMessage) + `(http://[^\s"]+)`)

// SIGTERM: sockets are closed with 1001 and run returns nil, in time.
// Not parallel: it signals the test process (run catches the signal).
func TestRunGracefulShutdown(t *testing.T) {
	gcBefore := gogc()
	var logs syncBuffer
	done := make(chan error, 1)
	args := []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-shutdown-timeout", "10s"}
	go func() { done <- run(context.Background(), args, env(nil), &logs, &logs) }()

	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line within 30s:\n%s", logs.String())
		}
	}
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("listening line shows port 0: %s", base)
	}
	if !strings.Contains(logs.String(), "production needs its own keys") {
		t.Errorf("no warning about the generated key:\n%s", logs.String())
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/hub/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"welcome"`) {
		t.Fatalf("welcome: %s %v", msg, err)
	}
	// This process's heap is far below -gc-headroom's 64 MiB: the
	// server raised GOGC (gctune.Keep sets it as it starts).
	if got := gogc(); got <= gcBefore {
		t.Errorf("GOGC %d while serving, want it above %d", got, gcBefore)
	}

	start := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Fatalf("socket closed with %v (%v), want 1001", code, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if got := gogc(); got != gcBefore {
		t.Errorf("GOGC %d once stopped, want %d back", got, gcBefore)
	}
	if !strings.Contains(logs.String(), "sessionhub stopped") {
		t.Errorf("no stop line:\n%s", logs.String())
	}
}

// gogc is the process's GOGC.
func gogc() int {
	p, _ := gctune.GOGC()
	return int(p)
}
