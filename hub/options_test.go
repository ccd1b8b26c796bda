package hub_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// SnapshotEvery left 0 compacts a session's log every 64 entries, or
// every quarter of MaxOpsPerSession when that is smaller, and at least
// every entry (README's -snapshot-every, Options.SnapshotEvery): always
// below MaxOpsPerSession, which is at least 2. A set value
// is kept, a negative one (-1: never compact) too; one at or above
// MaxOpsPerSession is New's error, which names both.
func TestSnapshotEveryDefault(t *testing.T) {
	t.Parallel()
	store, err := session.NewStore(&session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		maxOps, every int // as set; 0 is the default
		want          int
		wantErr       string
	}{
		{maxOps: 0, every: 0, want: 64}, // MaxOpsPerSession's default: 10000
		{maxOps: 10000, every: 0, want: 64},
		{maxOps: 257, every: 0, want: 64},
		{maxOps: 256, every: 0, want: 64},
		{maxOps: 255, every: 0, want: 63},
		{maxOps: 100, every: 0, want: 25},
		{maxOps: 40, every: 0, want: 10},
		{maxOps: 8, every: 0, want: 2},
		{maxOps: 7, every: 0, want: 1},
		{maxOps: 4, every: 0, want: 1},
		{maxOps: 3, every: 0, want: 1},
		{maxOps: 2, every: 0, want: 1},
		{maxOps: 1, every: 0, wantErr: "hub: Options.MaxOpsPerSession 1 must be at least 2 (a snapshot and the write after it)"},
		{maxOps: 0, every: -1, want: -1},
		{maxOps: 3, every: -1, want: -1},
		{maxOps: 0, every: -7, want: -7},
		{maxOps: 100, every: 10, want: 10},
		{maxOps: 100, every: 99, want: 99},
		{maxOps: 0, every: 9999, want: 9999},
		{maxOps: 100, every: 100, wantErr: "hub: Options.SnapshotEvery 100 must be below MaxOpsPerSession 100"},
		{maxOps: 100, every: 101, wantErr: "hub: Options.SnapshotEvery 101 must be below MaxOpsPerSession 100"},
		{maxOps: 0, every: 10000, wantErr: "hub: Options.SnapshotEvery 10000 must be below MaxOpsPerSession 10000"},
	} {
		o, err := hub.ResolvedOptions(&hub.Options{Store: store, Conn: new(nats.Conn), MaxOpsPerSession: tc.maxOps, SnapshotEvery: tc.every})
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("MaxOpsPerSession %d, SnapshotEvery %d: err %v, want %q", tc.maxOps, tc.every, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("MaxOpsPerSession %d, SnapshotEvery %d: %v", tc.maxOps, tc.every, err)
			continue
		}
		if o.SnapshotEvery != tc.want {
			t.Errorf("MaxOpsPerSession %d, SnapshotEvery %d: resolved to %d, want %d", tc.maxOps, tc.every, o.SnapshotEvery, tc.want)
		}
		if o.SnapshotEvery >= o.MaxOpsPerSession {
			t.Errorf("MaxOpsPerSession %d, SnapshotEvery %d: resolved to %d, not below MaxOpsPerSession", tc.maxOps, tc.every, o.SnapshotEvery)
		}
	}
	// New refuses such options before it connects.
	if _, err := hub.New(t.Context(), &hub.Options{Store: store, Conn: new(nats.Conn), MaxOpsPerSession: 5, SnapshotEvery: 5}); err == nil || !strings.Contains(err.Error(), "SnapshotEvery 5 must be below MaxOpsPerSession 5") {
		t.Errorf("New with SnapshotEvery 5 and MaxOpsPerSession 5: %v", err)
	}
}
