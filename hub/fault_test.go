package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/hub"
)

// NATS restarts under two hub instances (same store, same port): nothing
// acknowledged before is lost, and after the hubs reconnect a set at A
// reaches B's socket again.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	ns, restartNATS := restartableNATS(t)
	a := newInstance(t, ns, nil)
	b := newInstance(t, ns, nil)
	c, sa, sb := twoTabs(t, a, b)
	before := sa.set("colour", "before")
	sb.expect("change")

	restartNATS()
	// Wait until both hubs' connections are back.
	deadline := time.Now().Add(20 * time.Second)
	for !a.nc.IsConnected() || !b.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("hubs did not reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var after uint64
	for {
		r := sa.reply(sa.send(map[string]any{"type": "set", "key": "note", "value": "after"}))
		if r["type"] == "ack" {
			after = uint64(num(r["seq"]))
			break
		}
		if r["code"] != "unavailable" || time.Now().After(deadline) {
			t.Fatalf("set after restart: %v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		m := sb.expect("change")
		if uint64(num(m["seq"])) == after {
			break
		}
	}
	_, body := c.do(b, "POST", "/hub/flush", nil)
	if values(body)["colour"] != "before" || values(body)["note"] != "after" || uint64(num(body["seq"])) < before {
		t.Fatalf("flush after restart: %v", body)
	}
}

// A client that never answers pings is closed with ClosePingTimeout (4201).
func TestPingTimeout(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	in := newInstance(t, ns, func(o *hub.Options) {
		o.PingInterval, o.PingTimeout = 50*time.Millisecond, 100*time.Millisecond
	})
	c := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + in.srv.URL[len("http"):] + "/hub/ws"
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http(in)})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// Not reading means not answering pings: the pong never comes. Give the
	// hub a few ping intervals, then read what it sent.
	time.Sleep(time.Second)
	for {
		_, _, err := ws.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != hub.ClosePingTimeout {
				t.Fatalf("close: %v (%d)", err, code)
			}
			return
		}
	}
}
