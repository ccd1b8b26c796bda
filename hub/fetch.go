package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// fetch returns the retained entries of session id with a sequence above
// after (and at most upTo, when upTo > 0), in order, with one batched
// direct get per 256 entries.
func (l *jsLog) fetch(ctx context.Context, id string, after, upTo uint64) ([]entry, error) {
	if !l.nc.IsConnected() {
		return nil, wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	inbox, msgs, done := l.replies.wait()
	defer done()

	type getReq struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
		UpToSeq uint64 `json:"up_to_seq,omitempty"`
	}
	var out []entry
	subject := l.opsSubject(id)
	next := after + 1
	for {
		req, _ := json.Marshal(getReq{Seq: next, NextFor: subject, Batch: fetchBatch, UpToSeq: upTo})
		if err := l.nc.PublishRequest(l.directGet, inbox, req); err != nil {
			return nil, wrapErr(ErrUnavailable, err)
		}
		more, past := false, false
	batch:
		for {
			var m *nats.Msg
			select {
			case m = <-msgs:
			case <-ctx.Done():
				return nil, wrapErr(ErrUnavailable, ctx.Err())
			}
			switch m.Header.Get(hdrStatus) {
			case "":
			case "404": // nothing (more) to read
				break batch
			case "204": // end of batch
				np, _ := strconv.ParseUint(m.Header.Get(hdrNatsPending), 10, 64)
				more = np > 0
				break batch
			default:
				return nil, wrapErr(ErrUnavailable, fmt.Errorf("direct get: status %s %s", m.Header.Get(hdrStatus), m.Header.Get("Description")))
			}
			seq, err := strconv.ParseUint(m.Header.Get(hdrNatsSeq), 10, 64)
			if err != nil {
				return nil, wrapErr(ErrInternal, fmt.Errorf("direct get: bad sequence header: %w", err))
			}
			e, err := entryOf(m, seq)
			if err != nil {
				return nil, wrapErr(ErrInternal, err)
			}
			if upTo > 0 && seq > upTo {
				past = true // the server's up_to_seq does not bound a next_by_subj batch
				continue
			}
			out = append(out, e)
			next = seq + 1
		}
		if !more || past || (upTo > 0 && next > upTo) {
			return out, nil
		}
	}
}

// empty reports whether session id's log holds no entry: one direct get
// of the subject's last message, not a read of the log.
func (l *jsLog) empty(ctx context.Context, id string) (bool, error) {
	last, err := l.lastSeq(ctx, id)
	return last == 0, err
}

// lastSeq returns the sequence of the last entry session id's log holds
// (0: none), as JetStream has it now: one direct get of the subject's
// last message. A replica that serves the get may lag its leader: an
// append conditional on the answer then finds the log moved on.
func (l *jsLog) lastSeq(ctx context.Context, id string) (uint64, error) {
	if !l.nc.IsConnected() {
		return 0, wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": l.opsSubject(id)})
	m, err := l.nc.RequestWithContext(ctx, l.directGet, req)
	if err != nil {
		return 0, wrapErr(ErrUnavailable, err)
	}
	switch m.Header.Get(hdrStatus) {
	case "":
		seq, err := strconv.ParseUint(m.Header.Get(hdrNatsSeq), 10, 64)
		if err != nil || seq == 0 {
			return 0, wrapErr(ErrInternal, fmt.Errorf("direct get: bad sequence header %q", m.Header.Get(hdrNatsSeq)))
		}
		return seq, nil
	case "404":
		return 0, nil
	}
	return 0, wrapErr(ErrUnavailable, fmt.Errorf("direct get: status %s %s", m.Header.Get(hdrStatus), m.Header.Get("Description")))
}

// fetchBatch is how many entries one direct get returns at most.
const fetchBatch = 256

// replies routes the replies of direct gets to the fetches waiting for
// them: one wildcard inbox subscription per hub, one token per fetch, so a
// fetch costs no subscription of its own (nats.go's request muxing, for a
// request with many replies).
type replies struct {
	mu      sync.Mutex
	prefix  string // "<inbox>."
	n       uint64
	waiting map[string]chan *nats.Msg
	sub     *nats.Subscription
}

func (r *replies) start(nc *nats.Conn) error {
	r.prefix = nc.NewInbox() + "."
	r.waiting = map[string]chan *nats.Msg{}
	sub, err := nc.Subscribe(r.prefix+"*", r.route)
	if err != nil {
		return err
	}
	r.sub = sub
	return nil
}

func (r *replies) stop() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
}

// wait registers a fetch: it returns the reply subject to use, the channel
// its replies arrive on, and the function that unregisters it.
func (r *replies) wait() (string, <-chan *nats.Msg, func()) {
	ch := make(chan *nats.Msg, fetchBatch+1) // one batch and its end marker
	r.mu.Lock()
	r.n++
	token := strconv.FormatUint(r.n, 36)
	r.waiting[token] = ch
	r.mu.Unlock()
	return r.prefix + token, ch, func() {
		r.mu.Lock()
		delete(r.waiting, token)
		r.mu.Unlock()
	}
}

func (r *replies) route(m *nats.Msg) {
	token := strings.TrimPrefix(m.Subject, r.prefix)
	r.mu.Lock()
	ch := r.waiting[token]
	r.mu.Unlock()
	if ch == nil {
		return // a fetch that gave up
	}
	select {
	case ch <- m:
	default: // more than a batch: impossible while a fetch waits for each end marker
	}
}
