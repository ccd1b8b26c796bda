package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	maxEntry  int // MaxEntrySize

	replies replies   // routes direct-get replies to fetches (fetch.go)
	acks    asyncAcks // the pipeline's appends and their acknowledgements (publish.go)

	firstMu  sync.Mutex
	firstSeq uint64
	firstAt  time.Time
}

func newLog(nc *nats.Conn, js jetstream.JetStream, o *Options) *jsLog {
	return &jsLog{
		nc:        nc,
		js:        js,
		stream:    o.Stream,
		directGet: "$JS.API.DIRECT.GET." + o.Stream,
		prefix:    o.Subject,
		timeout:   o.WriteTimeout,
		maxEntry:  o.MaxEntrySize,
	}
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
		AllowRollup:          true, // snapshots (snapshot.go)
		RePublish: &jetstream.RePublish{
			Source:      l.prefix + ".ops.*",
			Destination: l.prefix + ".live.{{wildcard(1)}}",
		},
	}
	if o.MemoryStorage {
		cfg.Storage = jetstream.MemoryStorage
	}
	if err := untilPlaced(ctx, func(ctx context.Context) error {
		_, err := l.js.CreateOrUpdateStream(ctx, cfg)
		return err
	}); err != nil {
		return fmt.Errorf("hub: stream %s: %w", l.stream, err)
	}
	return l.waitReadable(ctx, o.Logger)
}

// untilPlaced runs create, a stream or bucket creation, until it
// succeeds: a NATS cluster that just started may not place replicas yet
// (no meta leader, peers still joining), and a request to its meta leader
// can go unanswered. Each try is bounded by ensureAttempt; ctx bounds
// them all.
func untilPlaced(ctx context.Context, create func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, ensureAttempt)
		err := create(actx)
		cancel()
		if err == nil {
			return nil
		}
		// An attempt that timed out while ctx lives: JetStream's meta
		// leader is not answering yet.
		timedOut := errors.Is(err, context.DeadlineExceeded)
		if !timedOut && !clusterNotReady(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the NATS cluster did not place it in time: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the NATS cluster did not place it in time: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// waitReadable waits until the stream answers direct gets: on a NATS
// cluster, a stream just created is not served by every node at once
// (the direct get answers 503 meanwhile), and a hub that took sockets
// then would answer their first writes unavailable.
//
// The wait is bounded by readableWait even when ctx has no deadline: a
// deployment whose direct gets never answer (a permission missing) gets
// a hub that starts, degraded and logged, as before this wait, not one
// that never starts.
func (l *jsLog) waitReadable(ctx context.Context, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, readableWait)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		_, err := l.lastSeq(ctx, "0") // a session no one has: 404 once served
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			logger.Warn("the session log does not answer direct gets yet; reads retry", "stream", l.stream, "err", err)
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// readableWait bounds waitReadable.
const readableWait = 10 * time.Second

// ensureAttempt bounds one try at creating or updating the stream.
const ensureAttempt = 2 * time.Second

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
	if source != SourceWS { // a socket's entry has none (sourceOf)
		m.Header.Set(hdrSource, source)
	}
	if expect != nil {
		m.Header.Set(hdrNatsExpected, strconv.FormatUint(*expect, 10))
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.request(ctx, m)
}

// request appends m and returns its sequence once JetStream acknowledged
// it, or the hub's error for its refusal (classifyPublish): what the
// jetstream package's PublishMsg does without retries, its
// acknowledgement read as the pipeline's are (parsePubAck), not by
// reflection.
func (l *jsLog) request(ctx context.Context, m *nats.Msg) (uint64, error) {
	resp, err := l.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			err = jetstream.ErrNoStreamResponse // no stream takes the subject
		}
		return 0, classifyPublish(err)
	}
	seq, err := parsePubAck(resp.Data)
	if err != nil {
		return 0, classifyPublish(err)
	}
	return seq, nil
}

// complete reports whether the log still holds every entry after seq: no
// entry above it has aged out of the retention window. Age-based removal
// takes the oldest entries first, so it holds when the stream's first
// sequence is at most after+1. (Entries a snapshot rolled up are not
// missing: the snapshot that replaced them follows them in the log, and a
// fetch returns it.) The first sequence is cached for a second.
func (l *jsLog) complete(ctx context.Context, after uint64) (bool, error) {
	l.firstMu.Lock()
	first, at := l.firstSeq, l.firstAt
	l.firstMu.Unlock()
	switch {
	case after+1 < first:
		return false, nil // the first sequence only grows: incomplete for good
	case time.Since(at) < time.Second:
		return true, nil
	}
	// The round trip runs without the lock: resumes elsewhere in the hub
	// do not queue behind it.
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	st, err := l.js.Stream(ctx, l.stream)
	if err != nil {
		return false, wrapErr(ErrUnavailable, err)
	}
	first = st.CachedInfo().State.FirstSeq
	l.firstMu.Lock()
	if first >= l.firstSeq {
		l.firstSeq, l.firstAt = first, time.Now()
	}
	l.firstMu.Unlock()
	return after+1 >= first, nil
}
