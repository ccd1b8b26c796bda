package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// flushResult is the bridge's answer.
type flushResult struct {
	Seq    uint64                     `json:"seq"`
	Values map[string]json.RawMessage `json:"values"`
}

// highestSeq returns the highest sequence any socket of s has seen: what
// the browser client sends as the bridge's seq parameter.
func (s *lsession) highestSeq() uint64 {
	seq := s.maxSeq.Load()
	for _, k := range s.sockets {
		seq = max(seq, k.lastSeq.Load())
	}
	return seq
}

// flushURL is the bridge's URL on instance inst; with seq > 0 it carries
// the seq parameter, so that an instance whose view holds it answers
// without a NATS round trip.
func (l *load) flushURL(inst int, seq uint64) string {
	u := l.urls[inst] + "/hub/flush"
	if seq > 0 {
		u += "?seq=" + strconv.FormatUint(seq, 10)
	}
	return u
}

// flush POSTs /hub/flush for s on instance inst with the session's
// cookies (and seq, when not 0), and keeps the refreshed cookie.
func (l *load) flush(ctx context.Context, s *lsession, inst int, seq uint64) (flushResult, error) {
	var fr flushResult
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.flushURL(inst, seq), nil)
	if err != nil {
		return fr, err
	}
	req.Header.Set("Cookie", s.cookieHeader())
	resp, err := l.httpc.Do(req)
	if err != nil {
		return fr, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fr, fmt.Errorf("flush: status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&fr); err != nil {
		return fr, fmt.Errorf("flush: %w", err)
	}
	s.setCookies(resp)
	return fr, nil
}

// flushLoop flushes s every Config.FlushEvery until the writing stops.
func (l *load) flushLoop(s *lsession) {
	every := l.cfg.FlushEvery
	if !sleepCtx(l.writing, rand.N(every)) {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		_, err := l.flush(l.writing, s, int(s.sockets[0].inst.Load()), s.highestSeq())
		switch {
		case err == nil:
			l.flushLat.record(time.Since(start))
			l.c.flushes.Add(1)
		case l.writing.Err() == nil:
			l.c.flushErrors.Add(1)
		}
		select {
		case <-t.C:
		case <-l.writing.Done():
			return
		}
	}
}
