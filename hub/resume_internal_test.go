package hub

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessionhub/sessionhub/session"
)

// A socket that joins a stale view gets a welcome folded from JetStream,
// newer than the view. A resume from before those entries replays them
// all: the view will never send them to that socket live.
func TestResumeOnAStaleViewReplaysUpToTheWelcome(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) { o.SnapshotEvery = -1 })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := session.NewID()
	set := func(v string) []session.Op {
		return []session.Op{{Type: session.OpSet, Key: "k", Value: []byte(`"` + v + `"`)}}
	}
	a, err := h.Write(ctx, id, set("a")...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (bridgeLog{h}).Pending(ctx, id, 0); err != nil { // the view, at a
		t.Fatal(err)
	}
	v := h.lookup(id)
	v.mu.Lock()
	_ = v.sub.Unsubscribe() // the view misses what follows, and knows it
	v.stale = true
	v.mu.Unlock()
	b, _ := h.log.append(ctx, id, SourceWS, nil, set("b"))
	c, _ := h.log.append(ctx, id, SourceWS, nil, set("c"))

	// A socket with the cookie at a: its welcome folds b and c from JetStream.
	snap := session.Snapshot{ID: id, Seq: a, Values: map[string]json.RawMessage{"k": []byte(`"a"`)}}
	cookie, err := h.opts.Store.Encode(snap)
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string][]string{"Cookie": {h.opts.Store.Name() + "=" + cookie}}
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/hub/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var welcome struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || json.Unmarshal(msg, &welcome) != nil || welcome.Type != "welcome" || welcome.Seq != c {
		t.Fatalf("welcome %s (%v), want seq %d", msg, err, c)
	}
	// The client last saw a (its tab before the reconnect): resume from it.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"type":"resume","after":`+jsonNum(a)+`}`)); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
		}
		_ = json.Unmarshal(msg, &m)
		if m.Type == "change" {
			got = append(got, m.Seq)
		}
		if m.Type == "resumed" || m.Type == "reset" {
			if m.Type == "reset" {
				return // the whole state: nothing to replay
			}
			break
		}
	}
	if len(got) != 2 || got[0] != b || got[1] != c {
		t.Fatalf("resume after %d replayed %v, want [%d %d]", a, got, b, c)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }
