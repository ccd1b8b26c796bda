package browsertest_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/sessionhub/sessionhub/internal/browsertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// page is the test page: server-rendered "server", changed to "script" by
// its script; a button that goes through "pending" to "done"; an input and
// a select that log their events; a socket the server closes with 4000.
const page = `<!doctype html>
<html><head><title>browsertest</title></head>
<body style="background: #fff; font: 16px sans-serif">
<h1 style="color: #c33">browsertest</h1>
<span id="rendered">server</span>
<span id="state">idle</span>
<button id="go" style="width: 200px; height: 40px; background: #36c; color: #fff">go</button>
<input id="in" type="text" value="old">
<select id="sel"><option value="a">A</option><option value="b">B</option></select>
<span id="events"></span>
<span id="ws">none</span>
<script>
document.getElementById("rendered").textContent = "script";
const state = document.getElementById("state");
const events = document.getElementById("events");
document.getElementById("go").addEventListener("click", () => {
	state.textContent = "pending";
	setTimeout(() => { state.textContent = "done"; }, 50);
});
for (const id of ["in", "sel"]) {
	for (const type of ["input", "change"]) {
		document.getElementById(id).addEventListener(type, (e) => {
			events.textContent += id + ":" + type + ":" + e.target.value + " ";
		});
	}
}
const ws = new WebSocket("ws://" + location.host + "/ws");
const wsState = document.getElementById("ws");
ws.onopen = () => { wsState.textContent = "open"; };
ws.onclose = (e) => { wsState.textContent = "closed " + e.code; };
</script>
</body></html>`

func newServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "shared", Value: "yes", Path: "/", HttpOnly: true})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("shared")
		v := "none"
		if err == nil {
			v = c.Value
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><p id="cookie">%s</p>`, v)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.Close(4000, "bye")
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowser(t *testing.T) {
	srv := newServer(t)
	b := browsertest.Launch(t)
	tab1 := b.NewTab("tab1")
	tab2 := b.NewTab("tab2")

	doc := tab1.Navigate(srv.URL + "/")
	if doc.Status != http.StatusOK {
		t.Errorf("status %d, want 200", doc.Status)
	}
	if got, ok := tab1.TextIn(doc.HTML, "#rendered"); !ok || got != "server" {
		t.Errorf("TextIn(document, #rendered) = %q, %v; want the server's text", got, ok)
	}
	if got, ok := tab1.AttrIn(doc.HTML, "#in", "value"); !ok || got != "old" {
		t.Errorf("AttrIn(document, #in, value) = %q, %v; want old", got, ok)
	}
	if _, ok := tab1.TextIn(doc.HTML, "#missing"); ok {
		t.Errorf("TextIn found #missing")
	}
	tab1.WaitText("#rendered", "script")

	t.Run("cookies are shared by tabs", func(t *testing.T) {
		tab2 := tab2.For(t)
		doc := tab2.Navigate(srv.URL + "/cookie")
		if got, _ := tab2.TextIn(doc.HTML, "#cookie"); got != "yes" {
			t.Errorf("tab2 sent cookie %q, want the one tab1 got", got)
		}
		cookies := tab2.Cookies(srv.URL)
		if !slices.ContainsFunc(cookies, func(c *network.Cookie) bool { return c.Name == "shared" && c.Value == "yes" && c.HTTPOnly }) {
			t.Errorf("Cookies = %v, want the HttpOnly cookie shared=yes", cookies)
		}
	})

	t.Run("watch sees transient texts", func(t *testing.T) {
		tab1 := tab1.For(t)
		w := tab1.Watch("#state")
		tab1.Click("#go")
		w.Wait("pending", "done")
		if got := w.Texts(); !slices.Equal(got, []string{"idle", "pending", "done"}) {
			t.Errorf("Texts = %q", got)
		}
		// The state already shows "done": a new watch waits for a new one.
		w = tab1.Watch("#state")
		tab1.Click("#go")
		w.Wait("done")
		if got := w.Texts(); !slices.Equal(got, []string{"done", "pending", "done"}) {
			t.Errorf("Texts = %q", got)
		}
	})

	t.Run("typing and selecting fire a user's events", func(t *testing.T) {
		tab1 := tab1.For(t)
		tab1.Type("#in", "new")
		tab1.Select("#sel", "b")
		got := strings.Fields(tab1.Text("#events"))
		for _, want := range []string{"in:input:n", "in:input:new", "sel:input:b", "sel:change:b"} {
			if !slices.Contains(got, want) {
				t.Errorf("events %q lack %q", got, want)
			}
		}
	})

	t.Run("sockets are recorded", func(t *testing.T) {
		tab1 := tab1.For(t)
		tab1.WaitText("#ws", "closed 4000")
		s := tab1.Sockets()
		if len(s) != 1 || !s[0].Opened || !s[0].Closed || s[0].Code != 4000 || s[0].Reason != "bye" || !strings.HasSuffix(s[0].URL, "/ws") {
			t.Errorf("Sockets = %+v, want one opened and closed with 4000 bye", s)
		}
	})

	t.Run("offline URLs fail", func(t *testing.T) {
		tab1 := tab1.For(t)
		host := strings.TrimPrefix(srv.URL, "http://")
		tab1.Offline("http://"+host+"/ping", "ws://"+host+"/ws")
		var res string
		tab1.Eval(`fetch("/ping").then(r => r.text(), e => "failed: " + e.name)`, &res)
		if res != "failed: TypeError" {
			t.Errorf("fetch while offline: %q", res)
		}
		var ws browsertest.Socket
		tab1.Eval(`new Promise((resolve) => {
			const ws = new WebSocket("ws://" + location.host + "/ws");
			ws.onclose = () => resolve(globalThis.__browsertest.sockets.at(-1));
		})`, &ws)
		if ws.Opened || ws.Code != 1006 {
			t.Errorf("socket while offline: %+v, want never opened, closed with 1006", ws)
		}
		tab1.Eval(`fetch("/cookie").then(r => r.ok ? "ok" : "status " + r.status, e => "failed: " + e.name)`, &res)
		if res != "ok" {
			t.Errorf("fetch of another URL while offline: %q", res)
		}

		tab1.Offline()
		tab1.Eval(`fetch("/ping").then(r => r.text(), e => "failed: " + e.name)`, &res)
		if res != "pong" {
			t.Errorf("fetch back online: %q", res)
		}
		tab1.Eval(`new Promise((resolve) => {
			const ws = new WebSocket("ws://" + location.host + "/ws");
			ws.onclose = () => resolve(globalThis.__browsertest.sockets.at(-1));
		})`, &ws)
		if !ws.Opened || ws.Code != 4000 {
			t.Errorf("socket back online: %+v, want opened, closed with 4000", ws)
		}
	})

	t.Run("reload returns the server's document", func(t *testing.T) {
		tab1 := tab1.For(t)
		doc := tab1.Reload()
		if got, _ := tab1.TextIn(doc.HTML, "#rendered"); got != "server" || doc.Status != http.StatusOK {
			t.Errorf("reloaded document: status %d, #rendered %q", doc.Status, got)
		}
	})

	t.Run("a page from no server", func(t *testing.T) {
		tab2 := tab2.For(t)
		doc := tab2.Navigate("about:blank")
		if doc.Status != 0 || doc.HTML != "" || doc.URL != "about:blank" {
			t.Errorf("Navigate(about:blank) = %+v", doc)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		tab1 := tab1.For(t)
		t.Setenv("ARTIFACTS_DIR", t.TempDir())
		shot := tab1.Screenshot()
		st, err := browsertest.NotBlank(shot, 8)
		if err != nil {
			t.Fatal(err)
		}
		path := browsertest.SaveArtifact(t, "page.png", shot)
		if filepath.Dir(path) != os.Getenv("ARTIFACTS_DIR") {
			t.Errorf("artifact saved at %s", path)
		}
		t.Logf("screenshot %dx%d, %d colours", st.Width, st.Height, st.Colours)
	})
}

func TestExecPath(t *testing.T) {
	t.Setenv("CHROMIUM_PATH", filepath.Join(t.TempDir(), "no-chromium"))
	if _, err := browsertest.ExecPath(); err == nil {
		t.Fatal("ExecPath found a CHROMIUM_PATH that does not exist")
	}
}

func TestNotBlank(t *testing.T) {
	encode := func(img image.Image) []byte {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	white := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range white.Pix {
		white.Pix[i] = 0xff
	}
	drawn := image.NewRGBA(image.Rect(0, 0, 40, 30))
	copy(drawn.Pix, white.Pix)
	for x := range 40 {
		drawn.Set(x, x%30, color.RGBA{R: uint8(x * 6), G: 0x40, B: 0x80, A: 0xff})
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"blank", encode(white), true},
		{"drawn", encode(drawn), false},
		{"not a png", []byte("GIF89a"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := browsertest.NotBlank(tc.data, 8)
			if (err != nil) != tc.wantErr {
				t.Errorf("NotBlank = %+v, %v; want error %v", st, err, tc.wantErr)
			}
		})
	}
}

func TestArtifactsDir(t *testing.T) {
	root, err := browsertest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot = %s: %v", root, err)
	}
	abs := t.TempDir()
	for _, tc := range []struct{ env, want string }{
		{"", filepath.Join(root, ".artifacts")},
		{"ci/artifacts", filepath.Join(root, "ci/artifacts")},
		{abs, abs},
	} {
		t.Setenv("ARTIFACTS_DIR", tc.env)
		if got, err := browsertest.ArtifactsDir(); err != nil || got != tc.want {
			t.Errorf("ARTIFACTS_DIR=%q: ArtifactsDir = %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
}
