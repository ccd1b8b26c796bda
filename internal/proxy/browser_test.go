package proxy

import (
	"net/http"
	"testing"

	"github.com/sessionhub/sessionhub/internal/browsertest"
)

// TestFlaskPageInChromium: the real Flask app's page, which adds nothing
// but the script tag of /hub/sessionhub.js, served through the proxy to a
// real Chromium. A colour saved with the page's control goes over the
// hub's socket; after a reload Flask renders it from its own session, and
// the browser's cookie holds it, verified by Flask's own serializer.
func TestFlaskPageInChromium(t *testing.T) {
	needFlask(t)
	t.Parallel()
	app := startApp(t, "flaskapp.py", secret)
	px := startProxy(t, app, "")
	// Launched after the proxy started, so closed before it stops.
	tab := browsertest.Launch(t).NewTab("flask")

	doc := tab.Navigate(px.URL() + "/page")
	if doc.Status != http.StatusOK {
		t.Fatalf("GET /page answered %d", doc.Status)
	}
	if got, _ := tab.TextIn(doc.HTML, "#colour"); got != "none" {
		t.Fatalf("a new session's page shows colour %q, want none", got)
	}

	const colour = "rebeccapurple"
	state := tab.Watch("#state").FailOn("error")
	tab.Type("#pick", colour)
	tab.Click("#save")
	state.Wait("pending", "acknowledged")

	doc = tab.Reload()
	if doc.Status != http.StatusOK {
		t.Fatalf("reload: GET /page answered %d", doc.Status)
	}
	if got, ok := tab.TextIn(doc.HTML, "#colour"); got != colour {
		t.Fatalf("after the reload Flask rendered colour %q (found: %v), want %q:\n%s", got, ok, colour, doc.HTML)
	}
	var cookie string
	for _, c := range tab.Cookies(px.URL() + "/page") {
		if c.Name == "session" {
			cookie = c.Value
		}
	}
	if got := flaskLoads(t, secret, cookie); got["colour"] != colour {
		t.Errorf("after the reload the browser's cookie holds %v for Flask, want colour %q", got, colour)
	}

	png := tab.Screenshot()
	browsertest.SaveArtifact(t, "reloaded.png", png)
	if st, err := browsertest.NotBlank(png, 3); err != nil {
		t.Errorf("screenshot of the reloaded page (%+v): %v", st, err)
	}
}
