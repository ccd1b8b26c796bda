package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionhub/sessionhub/internal/natsconn"
)

// Baselines are this machine's limits, measured in the same run: what
// the hub is compared to.
type Baselines struct {
	// WSEcho is the round trip of a coder/websocket echo (a message the
	// size of a set op) to a separate process.
	WSEcho Latency `json:"ws_echo"`
	// JSPublish is the round trip of a synchronous JetStream publish (an
	// entry the size of a hub log entry) to the run's nats-server.
	JSPublish Latency `json:"jetstream_publish"`
	// JSAsyncPerSec is the acknowledged async JetStream publishes per
	// second from one connection (4096 in flight).
	JSAsyncPerSec float64 `json:"jetstream_async_publish_per_sec"`
	JSAsyncCount  int64   `json:"jetstream_async_publish_count"`
	// Hello is a bare net/http handler writing "hello", in a separate
	// process, with the flush phase's concurrency.
	Hello Throughput `json:"hello"`
}

// Throughput is a closed-loop HTTP phase: Concurrency clients with
// keep-alive, each sending its next request once the last one is answered.
type Throughput struct {
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	PerSec      float64 `json:"per_sec"`
	Latency     Latency `json:"latency"`
}

const (
	baselineRounds = 3000
	baselineWarmup = 300
)

func measureBaselines(ctx context.Context, cfg *Config, natsURL string, conn *natsconn.Options, pr *progress) (*Baselines, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "loadtest-baseline-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv := &proc{name: "baseline server", argv: []string{self, serveBaselineCmd, "-addr", "127.0.0.1:0"}, logPath: filepath.Join(dir, "baseline.log")}
	if err := srv.start(); err != nil {
		return nil, err
	}
	defer srv.stop()
	addr, err := srv.waitListening(30 * time.Second)
	if err != nil {
		return nil, err
	}
	b := &Baselines{}

	pr.logf("baseline: WebSocket echo round trip (%d)", baselineRounds)
	if b.WSEcho, err = wsEcho(ctx, "ws://"+addr+"/echo"); err != nil {
		return nil, fmt.Errorf("ws echo: %w", err)
	}
	pr.logf("baseline: JetStream publish round trip (%d) and async publish rate", baselineRounds)
	if err := jsBaselines(ctx, natsURL, conn, cfg.PhaseDuration, b); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	pr.logf("baseline: net/http hello, %d clients for %v", cfg.Concurrency, cfg.PhaseDuration)
	hc := newHTTPClient(cfg.Concurrency)
	b.Hello = httpThroughput(ctx, hc, cfg.Concurrency, cfg.PhaseDuration, func(int, int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/hello", nil)
	})
	hc.CloseIdleConnections()
	return b, nil
}

// a message the size of the load's set ops and of a hub log entry.
var (
	echoMsg  = []byte(`{"id":12345,"type":"set","key":"language","value":"x-s12-w0-n12345"}`)
	entryMsg = []byte(`[{"type":"set","key":"language","value":"x-s12-w0-n12345"}]`)
)

func wsEcho(ctx context.Context, url string) (Latency, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return Latency{}, err
	}
	defer ws.CloseNow()
	h := newHist()
	for i := range baselineWarmup + baselineRounds {
		start := time.Now()
		if err := ws.Write(ctx, websocket.MessageText, echoMsg); err != nil {
			return Latency{}, err
		}
		if _, _, err := ws.Read(ctx); err != nil {
			return Latency{}, err
		}
		if i >= baselineWarmup {
			h.record(time.Since(start))
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")
	return h.summary(), nil
}

func jsBaselines(ctx context.Context, urls string, conn *natsconn.Options, dur time.Duration, b *Baselines) error {
	nc, err := conn.Connect(splitList(urls), nats.Name("loadtest baseline"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	const stream = "LOADTEST_BASELINE"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"loadtest.baseline.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, stream)
	}()
	h := newHist()
	for i := range baselineWarmup + baselineRounds {
		subj := fmt.Sprintf("loadtest.baseline.s%d", i%100)
		start := time.Now()
		if _, err := js.Publish(ctx, subj, entryMsg); err != nil {
			return err
		}
		if i >= baselineWarmup {
			h.record(time.Since(start))
		}
	}
	b.JSPublish = h.summary()

	if dur <= 0 {
		return nil
	}
	var acked atomic.Int64
	var failed error
	start := time.Now()
	deadline := start.Add(dur)
	var futures []jetstream.PubAckFuture
	for i := 0; time.Now().Before(deadline); i++ {
		f, err := js.PublishAsync(fmt.Sprintf("loadtest.baseline.s%d", i%100), entryMsg, jetstream.WithStallWait(10*time.Second))
		if err != nil {
			failed = err
			break
		}
		futures = append(futures, f)
		if len(futures) >= 4096 {
			acked.Add(waitAcks(futures[:2048]))
			futures = append(futures[:0], futures[2048:]...)
		}
	}
	acked.Add(waitAcks(futures))
	el := time.Since(start)
	if failed != nil && acked.Load() == 0 {
		return failed
	}
	b.JSAsyncCount = acked.Load()
	b.JSAsyncPerSec = float64(acked.Load()) / el.Seconds()
	return nil
}

func waitAcks(fs []jetstream.PubAckFuture) int64 {
	var n int64
	for _, f := range fs {
		select {
		case <-f.Ok():
			n++
		case <-f.Err():
		case <-time.After(10 * time.Second):
			return n
		}
	}
	return n
}

// httpThroughput runs concurrency closed-loop clients for dur; request
// builds the i-th request of a worker.
func httpThroughput(ctx context.Context, hc *http.Client, concurrency int, dur time.Duration, request func(worker, i int) (*http.Request, error)) Throughput {
	h := newHist()
	var reqs, errs atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				req, err := request(w, i)
				if err != nil {
					errs.Add(1)
					return
				}
				t := time.Now()
				resp, err := hc.Do(req.WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
					continue
				}
				h.record(time.Since(t))
				reqs.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	return Throughput{Concurrency: concurrency, Seconds: el, Requests: reqs.Load(), Errors: errs.Load(),
		PerSec: float64(reqs.Load()) / el, Latency: h.summary()}
}
