package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionhub/sessionhub/hub"
	"github.com/sessionhub/sessionhub/session"
)

// latencyBuckets span 0.25 ms to about 4 s: JetStream acks and flushes.
var latencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, latencyBucketCount)

// latencyBucketCount is how many bounds latencyBuckets has.
const latencyBucketCount = 15

// Metrics implements hub.Metrics with Prometheus, on its own registry,
// and counts the server's HTTP requests (the bridge's flushes are handler="flush") and refused cookies.
type Metrics struct {
	reg *prometheus.Registry

	socketsOpen    prometheus.Gauge
	socketsClosed  *prometheus.CounterVec
	viewsOpen      prometheus.Gauge
	sessionsViewed prometheus.Counter
	hot            *hotMetrics // the series every write adds to
	errors         *prometheus.CounterVec
	httpRequests   *prometheus.CounterVec
	httpLatency    *prometheus.HistogramVec
	cookiesRefused *prometheus.CounterVec
}

var _ hub.Metrics = (*Metrics)(nil)

// NewMetrics returns the metrics on a new registry, with the Go and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		socketsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessionhub_sockets_open", Help: "WebSockets open on this instance.",
		}),
		socketsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionhub_sockets_closed_total", Help: "WebSockets closed, by close code.",
		}, []string{"code"}),
		viewsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessionhub_session_views_open", Help: "Sessions this instance holds a view of (a log tail and a NATS subscription).",
		}),
		sessionsViewed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessionhub_sessions_viewed_total", Help: "Session views opened: sessions served by this instance.",
		}),
		hot: newHotMetrics(),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionhub_errors_total", Help: "Errors answered to socket requests, by wire code.",
		}, []string{"code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionhub_http_requests_total", Help: "HTTP requests, by route, method and status.",
		}, []string{"handler", "method", "code"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sessionhub_http_request_duration_seconds", Help: "Time to serve an HTTP request, by route (socket upgrades excluded).",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler"}),
		cookiesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionhub_cookies_refused_total", Help: "Session cookies refused, by reason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.socketsOpen, m.socketsClosed, m.viewsOpen, m.sessionsViewed,
		m.hot, m.errors,
		m.httpRequests, m.httpLatency, m.cookiesRefused,
	)
	// Known label values start at zero, so every family is exposed from the
	// start and rates need no special case for a missing series.
	for _, c := range []hub.Code{hub.CodeInvalid, hub.CodeForbidden, hub.CodeTooLarge, hub.CodeTooManyPending,
		hub.CodeRateLimited, hub.CodeUnavailable, hub.CodeNotFound, hub.CodeInternal} {
		m.errors.WithLabelValues(string(c))
	}
	for _, code := range []int{1000, 1001, 1008, 1009, 1011, 4000, 4100, 4200, 4201} {
		m.socketsClosed.WithLabelValues(strconv.Itoa(code))
	}
	for _, r := range []session.Reason{session.ReasonTampered, session.ReasonExpired, session.ReasonFuture, session.ReasonMalformed, session.ReasonTooLong} {
		m.cookiesRefused.WithLabelValues(string(r))
	}
	return m
}

// Registry returns the registry holding every metric.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SocketOpened implements hub.Metrics.
func (m *Metrics) SocketOpened() { m.socketsOpen.Inc() }

// SocketClosed implements hub.Metrics.
func (m *Metrics) SocketClosed(code int) {
	m.socketsOpen.Dec()
	m.socketsClosed.WithLabelValues(strconv.Itoa(code)).Inc()
}

// ViewOpened implements hub.Metrics.
func (m *Metrics) ViewOpened() {
	m.viewsOpen.Inc()
	m.sessionsViewed.Inc()
}

// ViewClosed implements hub.Metrics.
func (m *Metrics) ViewClosed() { m.viewsOpen.Dec() }

// Staged implements hub.Metrics.
func (m *Metrics) Staged(source string, d time.Duration) {
	i := 0
	if source != hub.SourceWS {
		i = 1 // hub.SourceHTTP
	}
	m.hot.staged(i, d)
}

// Error implements hub.Metrics.
func (m *Metrics) Error(code hub.Code) { m.errors.WithLabelValues(string(code)).Inc() }

// Delivered implements hub.Metrics.
func (m *Metrics) Delivered(n int) { m.hot.deliver(n) }

// CookieRefused implements hub.Metrics: it counts refused cookies by
// reason.
func (m *Metrics) CookieRefused(reason session.Reason) {
	if reason != "" && reason != session.ReasonMissing {
		m.cookiesRefused.WithLabelValues(string(reason)).Inc()
	}
}

// Instrument counts the requests of next under the route name handler
// and, unless it serves sockets, observes how long they take.
func (m *Metrics) Instrument(handler string, next http.Handler) http.Handler {
	timed := handler != "ws"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		m.httpRequests.WithLabelValues(handler, method(r.Method), strconv.Itoa(status)).Inc()
		if timed {
			d := time.Since(start).Seconds()
			m.httpLatency.WithLabelValues(handler).Observe(d)
		}
	})
}

// method bounds the method label's values.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}

// statusRecorder remembers the status written; Unwrap keeps hijacking
// (WebSocket upgrades) and http.ResponseController working.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

var _ http.ResponseWriter = (*statusRecorder)(nil)

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped ResponseWriter.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
