package httpbridge_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/session"
)

// A Flask-style "save settings for the current session" endpoint, the Go
// version of
//
//	@app.post("/settings")
//	def save_settings():
//	    data = request.get_json(silent=True)
//	    if not isinstance(data, dict):
//	        return {"error": "expected a JSON object"}, 400
//	    session["settings"] = data
//	    return {"saved": sorted(data)}
//
// With a Log in Options (a *hub.Hub), the same handler's write would also
// reach the session's open sockets.
func Example() {
	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /settings", func(w http.ResponseWriter, r *http.Request) {
		var settings map[string]json.RawMessage
		err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2048)).Decode(&settings)
		if err != nil || settings == nil { // not JSON, not an object, or null
			http.Error(w, "expected a JSON object", http.StatusBadRequest)
			return
		}
		s := httpbridge.FromContext(r.Context())
		if err := s.Set("settings", settings); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"saved": slices.Sorted(maps.Keys(settings))})
	})
	mux.HandleFunc("GET /settings", func(w http.ResponseWriter, r *http.Request) {
		raw, ok := httpbridge.FromContext(r.Context()).Value("settings")
		if !ok {
			raw = json.RawMessage(`{}`)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "%s\n", raw)
	})
	srv := httptest.NewServer(httpbridge.Middleware(store, nil)(mux))
	defer srv.Close()

	var cookie *http.Cookie
	do := func(method, body string) {
		req, _ := http.NewRequest(method, srv.URL+"/settings", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, c := range resp.Cookies() {
			cookie = c
		}
		fmt.Printf("%s %d %s", method, resp.StatusCode, b)
	}
	do(http.MethodPost, `{"theme":"dark","lang":"en"}`)
	do(http.MethodPost, `["not","an","object"]`)
	do(http.MethodPost, `{"theme":`)
	do(http.MethodGet, "")
	// Output:
	// POST 200 {"saved":["lang","theme"]}
	// POST 400 expected a JSON object
	// POST 400 expected a JSON object
	// GET 200 {"lang":"en","theme":"dark"}
}
