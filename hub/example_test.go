package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/httpbridge"
	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/hub/natsserver"
	"github.com/sessionhub/sessionhub/session"
)

// Mount the socket, the bridge and the middleware on one mux, and register
// an event handler that writes the session.
func Example() {
	dir, _ := os.MkdirTemp("", "sessionhub-example")
	defer os.RemoveAll(dir)
	ns, err := natsserver.Start(natsserver.Options{StoreDir: dir, DontListen: true})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	nc, err := ns.Connect("example")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	if err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(context.Background(), &hub.Options{
		Store: store,
		Conn:  nc,
		ClientKeys: map[string]hub.KeyPolicy{
			"colour": {Read: true, Write: true, Validate: func(v json.RawMessage) error {
				var s string
				if json.Unmarshal(v, &s) != nil || s == "" {
					return errors.New("want a colour name")
				}
				return nil
			}},
			"visits": {Read: true}, // written by Go code only
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()

	// {"id":1,"type":"event","name":"visit"} increments a key the browser
	// cannot write itself.
	h.Handle("visit", func(ctx context.Context, ev *hub.Event) (any, error) {
		var n int
		if _, err := ev.Socket.Get("visits", &n); err != nil {
			return nil, err
		}
		if _, err := ev.Socket.Set(ctx, "visits", n+1); err != nil {
			return nil, err
		}
		return map[string]int{"visits": n + 1}, nil
	})

	mux := http.NewServeMux()
	mux.Handle("/hub/", h) // GET /hub/ws and POST /hub/flush
	mux.Handle("/", h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpbridge.FromContext(r.Context())
		fmt.Fprintf(w, "colour=%s\n", s.GetString("colour"))
	})))
	// Logout: End deletes the cookie; the middleware ends the session in
	// the hub, and every socket of it, on every instance, closes with 4000.
	mux.Handle("POST /logout", h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpbridge.FromContext(r.Context()).End()
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})))

	srv := &http.Server{Addr: "127.0.0.1:0", Handler: mux}
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx) // sockets get 1001 Going Away
	})
	fmt.Println("mounted")
	// Output: mounted
}

// A browser's round trip, in Go: a socket set, acknowledged, then the
// bridge folds it into the cookie.
func ExampleHub_ServeHTTP() {
	dir, _ := os.MkdirTemp("", "sessionhub-example")
	defer os.RemoveAll(dir)
	ns, _ := natsserver.Start(natsserver.Options{StoreDir: dir, DontListen: true})
	defer ns.Close()
	nc, _ := ns.Connect("example")
	defer nc.Close()
	store, _ := session.NewStore(&session.Options{Keys: []session.KeyPair{session.GenerateKeyPair(false)}})
	h, _ := hub.New(context.Background(), &hub.Options{Store: store, Conn: nc, ClientKeys: map[string]hub.KeyPolicy{
		"colour": {Read: true, Write: true, Validate: func(json.RawMessage) error { return nil }},
	}})
	defer h.Close()
	srv := newLocalServer(h)
	defer srv.Close()

	ctx := context.Background()
	ws, resp, err := websocket.Dial(ctx, "ws://"+srv.Addr+"/hub/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.CloseNow()
	cookie := resp.Cookies()[0] // the new session's cookie, set on the 101
	_, welcome, _ := ws.Read(ctx)
	fmt.Println(string(welcome)[:30])
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"type":"set","key":"colour","value":"blue"}`))
	for {
		_, msg, _ := ws.Read(ctx)
		if strings.Contains(string(msg), `"ack"`) {
			fmt.Println("acknowledged")
			break
		}
	}
	req, _ := http.NewRequest("POST", "http://"+srv.Addr+"/hub/flush", nil)
	req.AddCookie(cookie)
	fres, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer fres.Body.Close()
	var body httpbridge.FlushResponse
	_ = json.NewDecoder(fres.Body).Decode(&body)
	fmt.Println(string(body.Values["colour"]), len(fres.Cookies()) == 1)
	// Output:
	// {"type":"welcome","seq":0,"val
	// acknowledged
	// "blue" true
}
