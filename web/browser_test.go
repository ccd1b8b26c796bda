package web_test

// The browser tests: the demo page of the real sessionhub binary, driven
// in a real Chromium (internal/browsertest). They prove, as a user would
// see it, what the project is for: a change made over the WebSocket shows
// live in every tab of the session, lands in the signed cookie so that a
// reload (rendered on the server) shows it, survives a restart of the
// server under the page; a login moves every tab to the new session ID, a
// logout closes every tab's socket; and the page cannot write what the
// server did not declare client-writable.
//
// Each test starts its own server (a subprocess, see server_test.go) and
// its own browser. They do not run in parallel: each is a few seconds, and
// a loaded two-core CI machine is more reliable running one browser at a
// time.
//
// The page's DOM contract (web/doc.go): values in #colour-value,
// #theme-value, #language-value, #notifications-value, #name-value;
// controls #colour + #save-colour, #theme, #language + #save-language,
// #notifications, #name + #login, #logout; state in #status, #ack,
// #cookie, #seq; <body data-seq>; window.sessionhub.

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/internal/browsertest"
	"github.com/sessionhub/sessionhub/session"
)

// demo is a running server and a browser that shows its demo page.
type demo struct {
	t   *testing.T
	srv *server
	b   *browsertest.Browser
}

// newDemo starts a server and a browser, in this order, so that the
// browser closes (its cleanup runs first) before the server must stop.
func newDemo(t *testing.T) *demo {
	t.Helper()
	srv := startServer(t)
	return &demo{t: t, srv: srv, b: browsertest.Launch(t)}
}

// open opens a tab (of the browser's one cookie jar) on the demo page and
// waits until its socket is connected.
func (d *demo) open(name string) *browsertest.Tab {
	d.t.Helper()
	tab := d.b.NewTab(name)
	doc := tab.Navigate(d.srv.URL() + "/")
	if doc.Status != http.StatusOK {
		d.t.Fatalf("%s: GET / answered %d", name, doc.Status)
	}
	tab.WaitText("#status", "connected")
	return tab
}

// flushURL and wsURL are the bridge endpoint and the socket (prefix /hub).
func (d *demo) flushURL() string { return d.srv.URL() + "/hub/flush" }
func (d *demo) wsURL() string    { return "ws://" + d.srv.addr + "/hub/ws" }

// saveColour changes the colour through the page as a user does (types it,
// clicks Save), waits for the acknowledgement of that write (#ack goes
// through pending to acknowledged) and for the tab to show the colour.
func saveColour(t *testing.T, tab *browsertest.Tab, colour string) {
	t.Helper()
	ack := tab.Watch("#ack").FailOn("error")
	tab.Type("#colour", colour)
	tab.Click("#save-colour")
	ack.Wait("pending", "acknowledged")
	tab.WaitText("#colour-value", colour)
}

// selectTheme changes the theme through the page's select.
func selectTheme(t *testing.T, tab *browsertest.Tab, theme string) {
	t.Helper()
	ack := tab.Watch("#ack").FailOn("error")
	tab.Select("#theme", theme)
	ack.Wait("pending", "acknowledged")
	tab.WaitText("#theme-value", theme)
}

// cookieSession returns the session held by the browser's session cookie
// for the demo: the cookie that verifies with the test key.
func (d *demo) cookieSession(tab *browsertest.Tab) (session.Snapshot, bool) {
	d.t.Helper()
	for _, c := range tab.Cookies(d.srv.URL() + "/") {
		if snap, err := codec.Decode(c.Name, c.Value); err == nil {
			return snap, true
		}
	}
	return session.Snapshot{}, false
}

// stringValue returns the string value of key in snap ("" when absent).
func stringValue(t *testing.T, snap session.Snapshot, key string) string {
	t.Helper()
	raw, ok := snap.Values[key]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("cookie value %s = %s: %v", key, raw, err)
	}
	return s
}

// rendered returns the text of sel in the page as the server rendered it.
func rendered(t *testing.T, tab *browsertest.Tab, doc browsertest.Document, sel string) string {
	t.Helper()
	s, ok := tab.TextIn(doc.HTML, sel)
	if !ok {
		t.Fatalf("the page the server sent has no %s:\n%s", sel, doc.HTML)
	}
	return s
}

var digits = regexp.MustCompile(`\d+`)

// seqOf returns the number in s (the text of #seq, or body[data-seq]).
func seqOf(t *testing.T, what, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(digits.FindString(s), 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: no sequence number in it", what, s)
	}
	return n
}

// TestColourLiveAndAfterReload: a colour saved in tab 1 shows live in tab
// 2, reaches the cookie by the client's automatic flush, and a reload's
// server-rendered page shows it.
func TestColourLiveAndAfterReload(t *testing.T) {
	d := newDemo(t)
	tab1 := d.open("tab1")
	tab2 := d.open("tab2") // the same session: it has tab 1's cookie

	const colour = "rebeccapurple"
	saveColour(t, tab1, colour)
	tab2.WaitText("#colour-value", colour) // live, over tab 2's own socket

	// The client flushes the acknowledged change into the cookie by itself.
	tab1.WaitText("#cookie", "in cookie")
	snap, ok := d.cookieSession(tab1)
	if !ok {
		t.Fatal("no session cookie after the flush")
	}
	if got := stringValue(t, snap, "colour"); got != colour {
		t.Errorf("the cookie holds colour %q after #cookie showed \"in cookie\", want %q", got, colour)
	}
	seq := seqOf(t, "#seq", tab1.Text("#seq"))

	doc := tab1.Reload()
	if doc.Status != http.StatusOK {
		t.Fatalf("reload: GET / answered %d", doc.Status)
	}
	if got := rendered(t, tab1, doc, "#colour-value"); got != colour {
		t.Errorf("after reload the server rendered colour %q, want %q", got, colour)
	}
	if attr, _ := tab1.AttrIn(doc.HTML, "body", "data-seq"); seqOf(t, "body[data-seq]", attr) < seq {
		t.Errorf("after reload the server rendered version %s, want at least %d (the change's)", attr, seq)
	}
	tab1.WaitText("#status", "connected")
	tab1.WaitText("#colour-value", colour)
	tab2.WaitText("#colour-value", colour)
}

// TestReloadRightAfterAck: a reload right after the acknowledgement, before
// any flush (the tab cannot reach the bridge endpoint at all), still shows
// the change: the middleware folds the staged ops into the page and the
// cookie on GET /.
func TestReloadRightAfterAck(t *testing.T) {
	d := newDemo(t)
	tab := d.open("tab")
	tab.Offline(d.flushURL())
	var res string
	tab.Eval(`fetch("/hub/flush", {method: "POST"}).then(r => "status " + r.status, e => "failed")`, &res)
	if res != "failed" {
		t.Fatalf("POST /hub/flush while offline: %s, want a network error", res)
	}

	const colour = "#ff8800"
	saveColour(t, tab, colour)
	if got := tab.Text("#cookie"); got != "not in cookie" {
		t.Errorf("#cookie = %q with no flush possible, want \"not in cookie\"", got)
	}
	snap, ok := d.cookieSession(tab)
	if !ok {
		t.Fatal("no session cookie: the socket's handshake should have set one")
	}
	if got := stringValue(t, snap, "colour"); got == colour {
		t.Fatalf("the cookie holds the colour before any flush or reload")
	}

	doc := tab.Reload()
	if got := rendered(t, tab, doc, "#colour-value"); got != colour {
		t.Errorf("reload right after the ack: the server rendered colour %q, want %q", got, colour)
	}
	if snap, ok := d.cookieSession(tab); !ok || stringValue(t, snap, "colour") != colour {
		t.Errorf("after the reload the cookie holds %v, want colour %q (set on GET /)", snap.Values, colour)
	}
	tab.WaitText("#status", "connected")
	tab.WaitText("#colour-value", colour)
}

// TestServerRestart: the server restarts under an open page. The tabs see
// the socket go, reconnect to the new process and catch up; nothing written
// before the restart is lost, although it was only in the session's log
// (the tabs cannot flush), and writes after it reach every tab.
func TestServerRestart(t *testing.T) {
	d := newDemo(t)
	tab1 := d.open("tab1")
	tab2 := d.open("tab2")
	for _, tab := range []*browsertest.Tab{tab1, tab2} {
		tab.Offline(d.flushURL()) // what is written now lives in the log only
	}

	const colourA, colourB, theme = "darkorange", "seagreen", "dark"
	selectTheme(t, tab1, theme)
	saveColour(t, tab1, colourA)
	tab2.WaitText("#theme-value", theme)
	tab2.WaitText("#colour-value", colourA)
	if snap, _ := d.cookieSession(tab1); stringValue(t, snap, "theme") == theme || stringValue(t, snap, "colour") == colourA {
		t.Fatalf("the cookie holds %v: the changes should be in the log only", snap.Values)
	}

	status1, status2 := tab1.Watch("#status"), tab2.Watch("#status")
	d.srv.stop()
	status1.Wait("reconnecting")
	status2.Wait("reconnecting")
	for _, tab := range []*browsertest.Tab{tab1, tab2} {
		s := tab.Sockets()
		if len(s) == 0 || !s[0].Closed || s[0].Code != 1001 {
			t.Errorf("%s: sockets %+v: want the first closed with 1001 (going away) by the server's shutdown", tab.Name(), s)
		}
	}

	// Tab 2 stays cut off while tab 1 reconnects and writes: it must catch
	// up (resume) when it is back.
	tab2.Offline(d.flushURL(), d.wsURL())
	d.srv.start() // the same address and data directory
	tab1.WaitText("#status", "connected")
	tab1.WaitText("#theme-value", theme)
	tab1.WaitText("#colour-value", colourA)
	saveColour(t, tab1, colourB)
	if got := tab2.Text("#status"); got == "connected" {
		t.Errorf("tab2 is %s while its socket's URL is offline", got)
	}
	tab2.Offline()
	tab2.WaitText("#status", "connected")
	tab2.WaitText("#colour-value", colourB)
	tab2.WaitText("#theme-value", theme)
	tab2.WaitText("#seq", tab1.Text("#seq")) // the same version as tab 1

	tab1.Offline()
	doc := tab1.Reload()
	if got := rendered(t, tab1, doc, "#colour-value"); got != colourB {
		t.Errorf("after the restart and a reload the server rendered colour %q, want %q", got, colourB)
	}
	if got := rendered(t, tab1, doc, "#theme-value"); got != theme {
		t.Errorf("after the restart and a reload the server rendered theme %q, want %q (written before the restart)", got, theme)
	}
	tab1.WaitText("#status", "connected")
}

// TestLogoutEndsOtherTabs: logging out in one tab closes the socket of
// every other tab of the session with 4000, and the session is gone.
func TestLogoutEndsOtherTabs(t *testing.T) {
	d := newDemo(t)
	tab1 := d.open("tab1")
	tab2 := d.open("tab2")
	const colour = "teal"
	saveColour(t, tab1, colour)
	tab2.WaitText("#colour-value", colour)
	before, ok := d.cookieSession(tab1)
	if !ok {
		t.Fatal("no session cookie")
	}

	tab1.Click("#logout")
	tab2.WaitText("#status", "ended")
	s := tab2.Sockets()
	if len(s) == 0 || !s[len(s)-1].Closed || s[len(s)-1].Code != 4000 {
		t.Errorf("tab2 sockets %+v: want the last closed with 4000 (session ended)", s)
	}
	if i := slices.IndexFunc(s, func(s browsertest.Socket) bool { return !s.Closed }); i >= 0 {
		t.Errorf("tab2 has an open socket after the session ended: %+v", s[i])
	}
	if after, ok := d.cookieSession(tab1); ok && (after.ID == before.ID || stringValue(t, after, "colour") == colour) {
		t.Errorf("after logout the cookie holds session %s with %v, want no session or a new empty one", after.ID, after.Values)
	}

	doc := tab2.Reload()
	if got := rendered(t, tab2, doc, "#colour-value"); got == colour {
		t.Errorf("after logout a reload still shows colour %q", got)
	}
}

// TestLoginRotatesSession: logging in in one tab gives the session a new
// ID; the other tab's socket is closed with 4100 and reconnects with the
// new cookie, to the same (renamed) session, values kept.
func TestLoginRotatesSession(t *testing.T) {
	d := newDemo(t)
	tab1 := d.open("tab1")
	tab2 := d.open("tab2")
	const colour, name = "goldenrod", "Ada"
	saveColour(t, tab1, colour)
	tab2.WaitText("#colour-value", colour)
	before, ok := d.cookieSession(tab1)
	if !ok {
		t.Fatal("no session cookie")
	}

	tab1.Type("#name", name)
	tab1.Click("#login")
	tab1.WaitText("#name-value", name)
	tab2.WaitText("#name-value", name) // over its new socket
	tab2.WaitText("#status", "connected")
	s := tab2.Sockets()
	if !slices.ContainsFunc(s, func(s browsertest.Socket) bool { return s.Closed && s.Code == 4100 }) {
		t.Errorf("tab2 sockets %+v: want one closed with 4100 (session rotated)", s)
	}
	after, ok := d.cookieSession(tab1)
	switch {
	case !ok:
		t.Error("no session cookie after login")
	case after.ID == before.ID:
		t.Error("login kept the session ID")
	case stringValue(t, after, "name") != name || stringValue(t, after, "colour") != colour:
		t.Errorf("after login the cookie holds %v, want name %q and colour %q", after.Values, name, colour)
	}

	// Both tabs are on the new session: a write in one shows in the other.
	saveColour(t, tab2, "plum")
	tab1.WaitText("#colour-value", "plum")
	doc := tab1.Reload()
	if got := rendered(t, tab1, doc, "#name-value"); got != name {
		t.Errorf("after login and a reload the server rendered name %q, want %q", got, name)
	}
}

// TestClientCannotWriteServerKeys: through window.sessionhub, the page can
// write only the keys the server declares client-writable, and only values
// their validators accept; the rest is refused with forbidden and never
// reaches the session.
func TestClientCannotWriteServerKeys(t *testing.T) {
	d := newDemo(t)
	tab := d.open("tab")
	for _, tc := range []struct{ key, value string }{
		{"name", "Mallory"},      // readable, set by POST /login only
		{"user_id", "admin"},     // not declared at all
		{"colour", "notacolour"}, // writable, refused by its validator
		{"theme", "neon"},
	} {
		var code string
		tab.Eval(`window.sessionhub.set(`+jsonString(tc.key)+`, `+jsonString(tc.value)+`).then(() => "acknowledged", (e) => e.code)`, &code)
		if code != "forbidden" {
			t.Errorf("set(%q, %q): %s, want forbidden", tc.key, tc.value, code)
		}
	}
	var code string
	tab.Eval(`window.sessionhub.set("colour", "olive").then(() => "acknowledged", (e) => e.code)`, &code)
	if code != "acknowledged" {
		t.Fatalf("set(colour, olive): %s, want acknowledged", code)
	}
	tab.WaitText("#colour-value", "olive")

	doc := tab.Reload()
	for sel, want := range map[string]string{"#name-value": "", "#colour-value": "olive", "#theme-value": ""} {
		if got := rendered(t, tab, doc, sel); got != want {
			t.Errorf("after the refused writes the server rendered %s %q, want %q", sel, got, want)
		}
	}
	snap, ok := d.cookieSession(tab)
	if !ok || stringValue(t, snap, "colour") != "olive" {
		t.Errorf("the cookie holds %v, want colour olive", snap.Values)
	}
	for _, key := range []string{"name", "user_id", "theme"} {
		if raw, ok := snap.Values[key]; ok {
			t.Errorf("the cookie holds %s = %s, written by the page", key, raw)
		}
	}
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestScreenshot saves a screenshot of the demo page as a test artifact
// ($ARTIFACTS_DIR, or .artifacts/ at the module root) and checks that it
// shows something.
func TestScreenshot(t *testing.T) {
	d := newDemo(t)
	tab := d.open("tab")
	saveColour(t, tab, "royalblue")
	tab.WaitText("#cookie", "in cookie")

	shot := tab.Screenshot()
	browsertest.SaveArtifact(t, "demo.png", shot)
	st, err := browsertest.NotBlank(shot, 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %dx%d, %d colours, the commonest on %.0f%% of it", st.Width, st.Height, st.Colours, 100*st.Dominant)
}

// The browser client decides what to do after a close by the same ranges
// as the hub (hub.Reconnect): every code of RFC 6455's and sessionhub's
// ranges, known or not, gets the same answer in the page as in Go.
func TestClosePolicyFollowsTheHub(t *testing.T) {
	d := newDemo(t)
	tab := d.open("tab")
	var codes []int
	for c := 1000; c <= 1015; c++ {
		codes = append(codes, c)
	}
	for c := 3000; c <= 4999; c += 7 {
		codes = append(codes, c)
	}
	codes = append(codes, 4000, 4099, 4100, 4199, 4200, 4201, 4999)
	list, _ := json.Marshal(codes)
	var got []struct{ Reconnect, Resume bool }
	tab.Eval(`import('/static/sessionhub.js').then(m => `+string(list)+`.map(c => m.closePolicy(c)))`, &got)
	if len(got) != len(codes) {
		t.Fatalf("closePolicy answered %d codes, want %d", len(got), len(codes))
	}
	for i, c := range codes {
		rc, rs := hub.Reconnect(websocket.StatusCode(c))
		if got[i].Reconnect != rc || got[i].Resume != rs {
			t.Errorf("close code %d: the client says reconnect %v, resume %v; the hub says %v, %v", c, got[i].Reconnect, got[i].Resume, rc, rs)
		}
	}
}

// TestClientReadsSeveralMessagesPerFrame: the browser client asks for the
// sessionhub.v2 subprotocol, in which the hub packs the acks and changes
// waiting for a socket into one frame; 40 sets sent without waiting are
// all acknowledged, in order (the ones taken in while others were in
// flight share an entry, and its sequence), and the last one is what the
// page shows.
func TestClientReadsSeveralMessagesPerFrame(t *testing.T) {
	d := newDemo(t)
	tab := d.open("tab")
	var got struct {
		Protocol string   `json:"protocol"`
		Seqs     []uint64 `json:"seqs"`
	}
	tab.Eval(`(async () => {
		const colours = ["red", "green", "blue", "teal", "olive", "navy", "maroon", "purple"];
		const acks = await Promise.all([...Array(40).keys()].map(i => window.sessionhub.set("colour", colours[i % 8])));
		return {protocol: window.sessionhub._ws.protocol, seqs: acks.map(a => a.seq)};
	})()`, &got)
	if got.Protocol != "sessionhub.v2" {
		t.Fatalf("negotiated subprotocol %q, want sessionhub.v2", got.Protocol)
	}
	if len(got.Seqs) != 40 {
		t.Fatalf("%d acks, want 40", len(got.Seqs))
	}
	for i := 1; i < len(got.Seqs); i++ {
		if got.Seqs[i] < got.Seqs[i-1] || got.Seqs[i] == 0 {
			t.Fatalf("ack %d has seq %d after %d: out of order", i, got.Seqs[i], got.Seqs[i-1])
		}
	}
	tab.WaitText("#colour-value", "purple")
}
