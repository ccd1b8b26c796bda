package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// doWith sends a request with extra header lines (written as given, not
// canonicalized) and returns the decoded JSON answer.
func (b *browser) doWith(method, path string, hdr map[string]string) map[string]any {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base.String()+path, nil)
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		b.t.Fatalf("%s %s: %d, not JSON: %v", method, path, resp.StatusCode, err)
	}
	return m
}

// apiPost calls the proxy's server API and returns the status and the
// error code of the answer ("" when it is not an error).
func apiPost(t *testing.T, base, token, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m.Error.Code
}

// TestFlaskAppForgedSessionHeader: the app learns the hub session's ID
// from the Sessionhub-Session request header, which clients cannot send
// (docs/FLASK.md): whatever spelling a client forges it in (any case, or
// with "_" for "-", which WSGI servers such as Werkzeug's read as the same
// header), the real Flask app sees the ID of the client's own session, or
// none for a client without one, never the forged one.
func TestFlaskAppForgedSessionHeader(t *testing.T) {
	needFlask(t)
	t.Parallel()
	app := startApp(t, "flaskapp.py", secret)
	px := startProxy(t, app, "")

	victim := newBrowser(t, px.URL())
	victim.do("POST", "/login?user=ada")
	victimID, _ := victim.do("GET", "/session")["hub_session"].(string)
	if victimID == "" {
		t.Fatal("the victim's request reached the app without its session ID")
	}

	mallory := newBrowser(t, px.URL())
	spellings := []string{"Sessionhub-Session", "sessionhub-session", "SESSIONHUB-SESSION", "Sessionhub_Session", "sessionhub_session", "SESSIONHUB_SESSION"}
	for _, name := range spellings {
		got := mallory.doWith("GET", "/session", map[string]string{name: victimID})
		if got["hub_session"] != nil {
			t.Errorf("a client without a session forged %s: the app saw Sessionhub-Session %q, want none", name, got["hub_session"])
		}
	}
	mallory.do("POST", "/login?user=mallory")
	ownID, _ := mallory.do("GET", "/session")["hub_session"].(string)
	if ownID == "" || ownID == victimID {
		t.Fatalf("mallory's own session ID %q (the victim's %q)", ownID, victimID)
	}
	for _, name := range spellings {
		got := mallory.doWith("GET", "/session", map[string]string{name: victimID})
		if got["hub_session"] != ownID {
			t.Errorf("a client with a session forged %s: the app saw Sessionhub-Session %q, want its own %q", name, got["hub_session"], ownID)
		}
	}
}

// TestFlaskAppReservedKeys: the Flask cookie's keys of its own,
// _sessionhub (the hub's ID, version and creation time) and _permanent,
// cannot be written over a socket (forbidden: no client key may be
// reserved) nor through the server API (400 invalid, docs/PROTOCOL.md),
// and the refused writes change nothing the app or the cookie holds.
func TestFlaskAppReservedKeys(t *testing.T) {
	needFlask(t)
	t.Parallel()
	const token = "reserved-keys-token"
	app := startApp(t, "flaskapp.py", secret)
	px := startProxy(t, app, token)
	b := newBrowser(t, px.URL())
	b.do("POST", "/login?user=ada")
	before := b.do("GET", "/session")
	id, _ := before["hub_session"].(string)
	hubBefore := flaskLoads(t, secret, b.cookie())[session.FlaskHubKey]
	s := b.dial()
	s.expect("welcome")

	forged := map[string]any{"i": strings.Repeat("ab", 16), "s": 1 << 40}
	for _, key := range []string{session.FlaskHubKey, session.FlaskPermanentKey} {
		if r := s.set(key, forged); r["type"] != "error" || r["code"] != "forbidden" {
			t.Errorf("socket set %s: %v, want forbidden", key, r)
		}
	}
	base := "/hub/api/sessions/" + id + "/ops"
	for _, body := range []string{
		`{"ops":[{"type":"set","key":"_sessionhub","value":{"i":"` + strings.Repeat("ab", 16) + `","s":1099511627776}}]}`,
		`{"ops":[{"type":"delete","key":"_sessionhub"}]}`,
		`{"ops":[{"type":"set","key":"_permanent","value":false}]}`,
		`{"ops":[{"type":"delete","key":"_permanent"}]}`,
		`{"ops":[{"type":"set","key":"colour","value":"red"},{"type":"set","key":"_sessionhub","value":1}]}`,
	} {
		if status, code := apiPost(t, px.URL(), token, base, body); status != http.StatusBadRequest || code != "invalid" {
			t.Errorf("server API %s: %d %s, want 400 invalid", body, status, code)
		}
	}
	// The API takes every other key, so the refusals above were the keys'.
	if status, code := apiPost(t, px.URL(), token, base, `{"ops":[{"type":"set","key":"theme","value":"dark"}]}`); status != http.StatusOK {
		t.Fatalf("server API set theme: %d %s", status, code)
	}
	after := b.do("GET", "/session")
	got, _ := after["session"].(map[string]any)
	if after["hub_session"] != id || got["user"] != "ada" || got["theme"] != "dark" || got["colour"] != nil {
		t.Fatalf("after the refused writes the app saw %v (hub session %v, want %s)", after, after["hub_session"], id)
	}
	cookie := flaskLoads(t, secret, b.cookie())
	hubAfter, _ := cookie[session.FlaskHubKey].(map[string]any)
	hubWas, _ := hubBefore.(map[string]any)
	if hubAfter["i"] != hubWas["i"] || hubAfter["i"] != id {
		t.Fatalf("the cookie's %s went from %v to %v", session.FlaskHubKey, hubBefore, hubAfter)
	}
}
