package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sessionhub/sessionhub/session"
)

// Headers of sessionhub's log messages, and of JetStream's republished and
// direct-get messages.
const (
	hdrSource       = "Sessionhub-Source"
	hdrNatsSeq      = "Nats-Sequence"
	hdrNatsLastSeq  = "Nats-Last-Sequence"
	hdrNatsPending  = "Nats-Num-Pending"
	hdrNatsExpected = "Nats-Expected-Last-Subject-Sequence"
	hdrStatus       = "Status"
)

// JetStream error codes the log tells apart.
const (
	jsErrWrongLastSeq = 10071
	jsErrStoreFailed  = 10077 // "maximum messages per subject exceeded" with DiscardNewPerSubject
)

var errConflict = errors.New("hub: log moved on since the expected sequence")

// Change is one log entry of a session: the ops one writer appended
// together, with their sequence number.
type Change struct {
	Seq    uint64
	Ops    []session.Op // each with Seq set
	Source string       // "ws" or "http"
}

// jsLog is the session log on JetStream: one stream, one subject per
// session (<prefix>.ops.<id>), republished after storage to
// <prefix>.live.<id> with the sequence and the subject's previous
// sequence, so that plain NATS subscribers learn of every change and can
// tell when they missed one.
type jsLog struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	stream    string
	directGet string // the stream's direct get API subject
	prefix    string
	timeout   time.Duration

	replies replies

	firstMu  sync.Mutex
	firstSeq uint64
	firstAt  time.Time
}

func (l *jsLog) opsSubject(id string) string  { return l.prefix + ".ops." + id }
func (l *jsLog) liveSubject(id string) string { return l.prefix + ".live." + id }
func (l *jsLog) ctlSubject(id string) string  { return l.prefix + ".ctl." + id }

// ensure creates the stream or updates it to the hub's configuration.
func (l *jsLog) ensure(ctx context.Context, o *Options) error {
	cfg := jetstream.StreamConfig{
		Name:                 l.stream,
		Description:          "sessionhub session logs",
		Subjects:             []string{l.prefix + ".ops.*"},
		Retention:            jetstream.LimitsPolicy,
		MaxAge:               o.Retention,
		MaxMsgsPerSubject:    int64(o.MaxOpsPerSession),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           int32(o.MaxEntrySize),
		Storage:              jetstream.FileStorage,
		Replicas:             o.Replicas,
		AllowDirect:          true,
		RePublish: &jetstream.RePublish{
			Source:      l.prefix + ".ops.*",
			Destination: l.prefix + ".live.{{wildcard(1)}}",
		},
	}
	if o.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	_, err := l.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("hub: stream %s: %w", l.stream, err)
	}
	return nil
}

// encodeEntry returns the payload of a log entry.
func encodeEntry(ops []session.Op) ([]byte, error) {
	w := make([]WireOp, len(ops))
	for i, op := range ops {
		if err := op.Validate(); err != nil {
			return nil, Errorf(CodeInvalid, "%v", err)
		}
		w[i] = WireOp{Type: op.Type, Key: op.Key, Value: op.Value}
	}
	return json.Marshal(w)
}

// decodeEntry parses a log entry's payload; every op gets seq.
func decodeEntry(data []byte, seq uint64) ([]session.Op, error) {
	var w []WireOp
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("hub: log entry %d: %w", seq, err)
	}
	ops := make([]session.Op, 0, len(w))
	for _, o := range w {
		op := session.Op{Seq: seq, Type: o.Type, Key: o.Key, Value: o.Value}
		if err := op.Validate(); err != nil {
			return nil, fmt.Errorf("hub: log entry %d: %w", seq, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// append writes ops as one entry of session id's log and returns its
// sequence once JetStream acknowledged it. With expect set, the append
// succeeds only when the subject's last sequence is *expect (errConflict
// otherwise).
func (l *jsLog) append(ctx context.Context, id, source string, expect *uint64, ops []session.Op) (uint64, error) {
	data, err := encodeEntry(ops)
	if err != nil {
		return 0, err
	}
	if !l.nc.IsConnected() {
		return 0, wrapErr(ErrUnavailable, nats.ErrDisconnected)
	}
	m := nats.NewMsg(l.opsSubject(id))
	m.Data = data
	m.Header.Set(hdrSource, source)
	if expect != nil {
		m.Header.Set(hdrNatsExpected, strconv.FormatUint(*expect, 10))
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	ack, err := l.js.PublishMsg(ctx, m, jetstream.WithRetryAttempts(0))
	if err != nil {
		return 0, classifyPublish(err)
	}
	return ack.Sequence, nil
}

func classifyPublish(err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == jsErrWrongLastSeq:
			return errConflict
		case strings.Contains(api.Description, "maximum messages per subject"),
			api.ErrorCode == jsErrStoreFailed && strings.Contains(api.Description, "per subject"):
			return wrapErr(ErrTooManyPending, err)
		case strings.Contains(api.Description, "message size exceeds"):
			return wrapErr(ErrTooLarge, err)
		case strings.Contains(api.Description, "insufficient resources"), strings.Contains(api.Description, "no suitable peers"):
			return wrapErr(ErrUnavailable, err)
		}
		return wrapErr(ErrInternal, err)
	}
	// Timeouts, no responders, a closed or draining connection: NATS or
	// JetStream cannot be reached. The append may or may not have landed;
	// it was not acknowledged.
	return wrapErr(ErrUnavailable, err)
}

// fetch returns the retained entries of session id with a sequence above
// after (and at most upTo, when upTo > 0), in order, with one batched
// direct get per 256 entries.
func (l *jsLog) fetch(ctx context.Context, id string, after, upTo uint64) ([]Change, error) {
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
	var out []Change
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
			ops, err := decodeEntry(m.Data, seq)
			if err != nil {
				return nil, wrapErr(ErrInternal, err)
			}
			if upTo > 0 && seq > upTo {
				past = true // the server's up_to_seq does not bound a next_by_subj batch
				continue
			}
			out = append(out, Change{Seq: seq, Ops: ops, Source: m.Header.Get(hdrSource)})
			next = seq + 1
		}
		if !more || past || (upTo > 0 && next > upTo) {
			return out, nil
		}
	}
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

// complete reports whether the log still holds every entry after seq: no
// entry above it has aged out of the retention window. Age-based removal
// takes the oldest entries first, so it holds when the stream's first
// sequence is at most after+1. The first sequence is cached for a second.
func (l *jsLog) complete(ctx context.Context, after uint64) (bool, error) {
	l.firstMu.Lock()
	defer l.firstMu.Unlock()
	if after+1 >= l.firstSeq && time.Since(l.firstAt) < time.Second {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	st, err := l.js.Stream(ctx, l.stream)
	if err != nil {
		return false, wrapErr(ErrUnavailable, err)
	}
	info := st.CachedInfo()
	l.firstSeq, l.firstAt = info.State.FirstSeq, time.Now()
	return after+1 >= l.firstSeq, nil
}
