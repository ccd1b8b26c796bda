package hub

import (
	"context"
	"strconv"
	"testing"

	"github.com/sessionhub/sessionhub/session"
)

// The smallest log a session may have, two entries, takes write after
// write: each one that finds it full compacts it into a snapshot first,
// and lands after it. A log of one entry would take one write and refuse
// every later one (the snapshot fills it), so New refuses it.
func TestSmallestLogTakesEveryWrite(t *testing.T) {
	t.Parallel()
	h := internalHubWith(t, func(o *Options) { o.MaxOpsPerSession = 2 })
	id := session.NewID()
	for i := range 10 {
		if _, err := h.Write(context.Background(), id, session.Op{Type: session.OpSet, Key: "k", Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("MaxOpsPerSession 2: write %d: %v", i, err)
		}
	}
	got, err := bridgeLog{h}.Pending(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := (session.Snapshot{}).Fold(got); string(s.Values["k"]) != "9" {
		t.Fatalf("the log folds to %s, want k=9", s.Values)
	}
	if _, err := New(context.Background(), &Options{Store: h.opts.Store, Conn: h.opts.Conn, MaxOpsPerSession: 1}); err == nil {
		t.Fatal("New took MaxOpsPerSession 1")
	}
}
