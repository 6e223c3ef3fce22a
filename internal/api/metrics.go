package api

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
)

type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	updated   prometheus.Counter
	unchanged prometheus.Counter
	rejected  prometheus.Counter
	queued    prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, svc *board.Service, totals func() (int64, int64)) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leaderboard_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leaderboard_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	subs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leaderboard_submissions_total",
		Help: "Score submissions by outcome: updated (the ranking changed), unchanged (accepted, nothing changed), queued (accepted 202 while the ranking store was unreachable, applied when it returns), rejected (an error).",
	}, []string{"result"})
	m.updated, m.unchanged, m.rejected = subs.WithLabelValues("updated"), subs.WithLabelValues("unchanged"), subs.WithLabelValues("rejected")
	m.queued = subs.WithLabelValues("queued")
	reg.MustRegister(m.requests, m.latency, subs)
	boards := prometheus.NewDesc("leaderboard_leaderboards", "Leaderboards by status.", []string{"status"}, nil)
	reg.MustRegister(collectorFunc{
		descs: []*prometheus.Desc{boards},
		collect: func(ch chan<- prometheus.Metric) {
			for st, n := range svc.Counts() {
				ch <- prometheus.MustNewConstMetric(boards, prometheus.GaugeValue, float64(n), string(st))
			}
		},
	})
	if totals != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "leaderboard_participants",
			Help: "Participants ranked over all live leaderboards.",
		}, func() float64 { _, p := totals(); return float64(p) }))
	}
	return m
}

func (m *metrics) countResult(r *store.Result) {
	if r.Updated {
		m.updated.Inc()
	} else {
		m.unchanged.Inc()
	}
}

type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// instrument wraps a route's handler with its request counter and latency
// histogram. The label lookups happen once per route (and once per status
// code seen), not per request.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	latency := m.latency.WithLabelValues(route)
	var codes sync.Map // status code -> prometheus.Counter; lock-free once seen
	counter := func(code int) prometheus.Counter {
		if c, ok := codes.Load(code); ok {
			return c.(prometheus.Counter)
		}
		c, _ := codes.LoadOrStore(code, m.requests.WithLabelValues(route, strconv.Itoa(code)))
		return c.(prometheus.Counter)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		status := sw.status
		*sw = statusWriter{} // holds nothing of this request while pooled
		statusWriters.Put(sw)
		latency.Observe(time.Since(start).Seconds())
		counter(status).Inc()
	})
}

// statusWriter is the ResponseWriter every API route's handler gets: it
// remembers the status code written, for the metrics, and the claims admit
// verified for a submission (see submitter). It is pooled: handed to the
// handler as an interface it escaped, one allocation per request. No handler
// keeps it past its return (net/http's rule for the writer it wraps too).
type statusWriter struct {
	http.ResponseWriter
	status int
	// claims are what admit verified, on submission routes with
	// authentication on (verified says so).
	claims   auth.Claims
	verified bool
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to a WebSocket library that asserts
// http.Hijacker itself; the request counts as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = http.StatusSwitchingProtocols
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
