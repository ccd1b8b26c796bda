package hub

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Resyncs: a live change that a view missed is read from JetStream without
// waiting for the session's next entry, whose predecessor header would
// reveal the gap (and start the view's own repair, view.go). Two things
// make a view miss changes without a later entry to tell:
//
//   - nats.go drops a message as a slow consumer when its shard's
//     dispatcher channel is full; the connection's async error handler
//     names the subscription, hence the view;
//   - while the connection is down, republished entries are not
//     delivered; after a reconnect every view with sockets catches up.
//
// A scheduled view is synced (everything above its last sequence read
// from JetStream and delivered to its sockets), then synced once more
// after resyncConfirm (a replica answering direct gets may lag the
// leader by a moment), and stays scheduled until its subscription has
// delivered a message after its last drop: until then nats.go would not
// call back for a further drop, so the resyncer watches the
// subscription's counters itself.
const (
	resyncInterval = 50 * time.Millisecond
	resyncConfirm  = 250 * time.Millisecond
)

type resyncer struct {
	mu   sync.Mutex
	due  map[*view]*resyncState
	wake chan struct{}
}

type resyncState struct {
	gen       int       // bumped by every schedule
	synced    bool      // a sync succeeded after the last known miss
	dropped   int       // the subscription's drops when it last synced
	delivered int64     // and its deliveries
	confirmAt time.Time // when to sync once more; zero when done
}

func (r *resyncer) init() {
	r.due = map[*view]*resyncState{}
	r.wake = make(chan struct{}, 1)
}

// schedule makes v catch up from JetStream soon.
func (r *resyncer) schedule(v *view) {
	r.mu.Lock()
	if st := r.due[v]; st != nil {
		st.gen++
		st.synced = false
	} else {
		r.due[v] = &resyncState{}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// watchConn installs the hub's async error handler on its connection, in
// front of the one already there, and returns the channel of its
// reconnections.
func (h *Hub) watchConn() chan nats.Status {
	prev := h.opts.Conn.ErrorHandler()
	h.opts.Conn.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		h.onAsyncError(sub, err)
		if prev != nil {
			prev(nc, sub, err)
		}
	})
	return h.opts.Conn.StatusChanged(nats.CONNECTED)
}

// onAsyncError schedules the resync of the view whose live subscription
// nats.go reports as a slow consumer. It runs on nats.go's callback
// goroutine and does not take a view's lock.
func (h *Hub) onAsyncError(sub *nats.Subscription, err error) {
	if sub == nil || !errors.Is(err, nats.ErrSlowConsumer) || isClosed(h.closed) {
		return
	}
	id, ok := strings.CutPrefix(sub.Subject, h.opts.Subject+".live.")
	if !ok {
		return
	}
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	if v == nil {
		return // no view, no sockets: the next view loads from JetStream
	}
	h.opts.Logger.Warn("live changes dropped (slow consumer); the session's view reads them from JetStream", "session", id)
	h.resync.schedule(v)
}

// reconnected marks every view stale and schedules the resync of every
// view with sockets. Lazy sockets (lazy.go) may have missed the wake of
// their session's first write while NATS was away: they join a view,
// which reads the log from JetStream.
func (h *Hub) reconnected() {
	h.checkReconnect()
	h.mu.Lock()
	lazy := slices.Collect(maps.Keys(h.lazy))
	h.mu.Unlock()
	for _, id := range lazy {
		h.wakeLazy(id)
	}
	h.mu.Lock()
	var views []*view
	for _, v := range h.views {
		v.mu.Lock()
		if len(v.conns) > 0 {
			views = append(views, v)
		}
		v.mu.Unlock()
	}
	h.mu.Unlock()
	if len(views) > 0 {
		h.opts.Logger.Info("NATS reconnected; the views with sockets catch up from JetStream", "views", len(views))
	}
	for _, v := range views {
		h.resync.schedule(v)
	}
}

// resyncLoop runs the resyncs until the hub closes.
func (h *Hub) resyncLoop(status chan nats.Status) {
	defer h.workers.Done()
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	for {
		select {
		case <-h.closed:
			return
		case _, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			h.reconnected()
		case <-h.resync.wake:
		case <-t.C:
		}
		h.runResyncs()
	}
}

func (h *Hub) runResyncs() {
	h.resync.mu.Lock()
	if len(h.resync.due) == 0 {
		h.resync.mu.Unlock()
		return
	}
	due := make(map[*view]resyncState, len(h.resync.due))
	for v, st := range h.resync.due {
		due[v] = *st
	}
	h.resync.mu.Unlock()
	for v, st := range due {
		gen := st.gen
		done := h.resyncView(v, &st)
		h.resync.mu.Lock()
		if cur := h.resync.due[v]; cur != nil {
			switch {
			case cur.gen != gen: // a new miss meanwhile: sync again
				cur.synced = false
			case done:
				delete(h.resync.due, v)
			default:
				*cur = st
			}
		}
		h.resync.mu.Unlock()
	}
}

// resyncView syncs v when it may have missed changes, and reports
// whether it is whole and will be told of any further drop.
func (h *Hub) resyncView(v *view, st *resyncState) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return true
	}
	if !v.loaded {
		return false // its load reads JetStream; look again later
	}
	dropped, delivered := subCounts(v.sub)
	now := time.Now()
	sync := !st.synced || dropped != st.dropped || (!st.confirmAt.IsZero() && now.After(st.confirmAt))
	if sync {
		ctx, cancel := context.WithTimeout(h.bg, h.opts.WriteTimeout) // ends with the hub, which waits for the resyncer
		err := v.fetchDroppingLock(ctx)
		cancel()
		if v.closed {
			return true
		}
		if err != nil {
			h.opts.Logger.Debug("session view: resync failed, retrying", "session", v.id, "err", err)
			st.synced = false
			return false
		}
		if st.synced && dropped == st.dropped {
			st.confirmAt = time.Time{} // the confirming pass
		} else {
			st.confirmAt = now.Add(resyncConfirm)
		}
		st.synced, st.dropped, st.delivered = true, dropped, delivered
		return false
	}
	// Whole; done once the subscription delivered a message after its
	// last drop (nats.go then reports the next drop again).
	return st.confirmAt.IsZero() && (dropped == 0 || delivered > st.delivered)
}

// subCounts returns a subscription's dropped and delivered messages.
func subCounts(sub *nats.Subscription) (int, int64) {
	if sub == nil {
		return 0, 0
	}
	d, _ := sub.Dropped()
	n, _ := sub.Delivered()
	return max(d, 0), max(n, 0)
}
