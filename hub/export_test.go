package hub

// SetLiveBuffer sets how many live changes may wait for each dispatcher
// of the hub o configures: 1 makes nats.go drop them as a slow consumer
// as soon as a dispatcher is busy.
func SetLiveBuffer(o *Options, n int) { o.liveBuffer = n }

// StallView holds the view of session id on h (it must exist), so that
// the dispatcher of its shard waits on it, until release is called.
func StallView(h *Hub, id string) (release func()) {
	h.mu.Lock()
	v := h.views[id]
	h.mu.Unlock()
	v.mu.Lock()
	return v.mu.Unlock
}

// DirectGetSubject is the subject h sends its direct gets of the log to.
func DirectGetSubject(h *Hub) string { return h.log.directGet }
