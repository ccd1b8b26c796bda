package hub_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
)

// docFrom returns the text of the doc at path from its line heading on.
func docFrom(t *testing.T, path, heading string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no %q section", path, heading)
	}
	return s[i+1:]
}

// readmeProgram returns the Go program of README.md's "Embedding the hub
// in a Go app": the first ```go block after that heading.
func readmeProgram(t *testing.T) string {
	t.Helper()
	s := docFrom(t, "../README.md", "## Embedding the hub in a Go app")
	start := strings.Index(s, "\n```go\n")
	if start < 0 {
		t.Fatal("README.md's embedding section has no ```go block")
	}
	s = s[start+len("\n```go\n"):]
	end := strings.Index(s, "\n```\n")
	if end < 0 {
		t.Fatal("README.md's embedding example is not closed")
	}
	return s[:end+1]
}

// README's embedding example, copied into a module of its own (as a user's
// app: only public packages, a replace to this checkout), builds, and
// works against real requests: a page without a session, a socket write
// that the next request sees, a login that moves the socket to the new
// session (4100), a logout that closes it (4000), and SIGTERM.
func TestReadmeEmbeddingExample(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", readmeProgram(t))
	// The app's requirements are this module's, as `go mod tidy` would
	// list them: its module graph is then this module's, which this
	// checkout's build has in the module cache. (With sessionhub's alone,
	// Go would read the go.mod of every version its dependencies name,
	// which a fresh cache lacks.)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	_, reqs, ok := strings.Cut(string(mod), "\n")
	if !ok {
		t.Fatal("go.mod has one line")
	}
	write("go.mod", "module example.com/app\n"+reqs+"\nrequire github.com/sessionhub/sessionhub v0.0.0\n\nreplace github.com/sessionhub/sessionhub => "+root+"\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))
	bin := filepath.Join(dir, "app")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	// Offline: every module comes from this checkout's module cache; an
	// internal package imported by the example fails the build here.
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building README's example as its own module: %v\n%s", err, out)
	}

	key := make([]byte, 64)
	_, _ = rand.Read(key)
	app := exec.Command(bin)
	app.Env = append(os.Environ(), "SESSION_KEY="+hex.EncodeToString(key), "DATA_DIR="+filepath.Join(dir, "data"), "ADDR=127.0.0.1:0")
	stdout, err := app.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	app.Stderr = tWriter{t}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = app.Process.Kill()
		<-exited
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "listening on http://") {
		t.Fatalf("the example printed %q, want its listening address", lines.Text())
	}
	base := strings.TrimPrefix(lines.Text(), "listening on ")
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		exited <- app.Wait()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var cookie *http.Cookie
	request := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			if c.Name == "session" {
				cookie = c
				if c.MaxAge < 0 {
					cookie = nil
				}
			}
		}
		return resp.StatusCode, string(body)
	}
	dial := func() *websocket.Conn {
		t.Helper()
		h := http.Header{}
		if cookie != nil {
			h.Set("Cookie", cookie.String())
		}
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/hub/ws", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "session" {
				cookie = c
			}
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws
	}
	read := func(ws *websocket.Conn, want string) {
		t.Helper()
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if strings.Contains(string(msg), want) {
				return
			}
		}
	}
	closedWith := func(ws *websocket.Conn) websocket.StatusCode {
		t.Helper()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return websocket.CloseStatus(err)
			}
		}
	}

	if code, body := request("GET", "/", nil); code != http.StatusOK || body != "user= theme=\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	ws := dial()
	read(ws, `"type":"welcome"`)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"type":"set","key":"theme","value":"dark"}`)); err != nil {
		t.Fatal(err)
	}
	read(ws, `"type":"ack"`)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":2,"type":"set","key":"user","value":"mallory"}`)); err != nil {
		t.Fatal(err)
	}
	read(ws, `"code":"forbidden"`)
	if code, body := request("GET", "/", nil); code != http.StatusOK || body != "user= theme=dark\n" {
		t.Fatalf("GET / after the socket's write = %d %q, want theme=dark", code, body)
	}
	if code, _ := request("POST", "/login", url.Values{"user": {"ada"}}); code != http.StatusSeeOther {
		t.Fatalf("POST /login = %d", code)
	}
	if code := closedWith(ws); code != hub.CloseSessionRotated {
		t.Fatalf("the socket of the old ID closed with %d, want %d", code, hub.CloseSessionRotated)
	}
	if code, body := request("GET", "/", nil); body != "user=ada theme=dark\n" {
		t.Fatalf("GET / after login = %d %q", code, body)
	}
	ws = dial()
	read(ws, `"type":"welcome"`)
	if code, _ := request("POST", "/logout", nil); code != http.StatusSeeOther || cookie != nil {
		t.Fatalf("POST /logout = %d, cookie %v: want 303 and the cookie deleted", code, cookie)
	}
	if code := closedWith(ws); code != hub.CloseSessionEnded {
		t.Fatalf("the socket closed with %d after logout, want %d", code, hub.CloseSessionEnded)
	}

	if err := app.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("the example exited with %v after SIGTERM, want 0", err)
		}
	case <-ctx.Done():
		t.Fatal("the example did not exit within 30s of SIGTERM")
	}
}
