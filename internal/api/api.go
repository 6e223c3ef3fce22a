// Package api is the HTTP API of API.md: routing, request decoding, response
// encoding, errors, body limits, conditional reads and per-route metrics, over
// the board service.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/wire"
)

// Options configure the API.
type Options struct {
	// MaxBodyBytes bounds every request body but batches (default 64 KiB).
	MaxBodyBytes int64
	// MaxBatchBodyBytes bounds batch submissions (default 1 MiB): 1000 items
	// with long ids and timestamps do not fit in 64 KiB.
	MaxBatchBodyBytes int64
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Totals reports leaderboards and participants held, for /metrics; optional.
	Totals func() (boards, participants int64)
	// Live serves the live-update routes (WebSocket, SSE, long poll); without
	// it they answer 503.
	Live Live
	// Collectors are extra metrics for /metrics (fan-out, gateway).
	Collectors []prometheus.Collector
	// Page, when set, serves the web page: "GET /" (exactly) and
	// "GET /assets/...". These are not API routes: they stay out of Routes()
	// (and docs/openapi.yaml); every other unknown path is still the JSON 404.
	Page http.Handler
	// Connect, when set, answers GET /v1/leaderboards/{id}/connect: the id
	// and base WebSocket URL of the gateway a new viewer should use.
	Connect func(ctx context.Context, board string) (gatewayID, url string, err error)
	// StaleReads keeps the last body of every ranking and participant read,
	// to answer the same read, marked stale (X-Leaderboard-Stale: true),
	// while the ranking store is unreachable (a remote store: Redis). Top-N
	// reads always are, from their cache.
	StaleReads bool
	// Ready, when set, is asked by /readyz whether every backend is reachable.
	Ready func(ctx context.Context) error
	// Access is authentication, per-IP limits, the concurrency cap and CORS
	// (see access.go); the zero value is open.
	Access AccessOptions
}

// Live is what the live-update routes need from the gateway.
type Live interface {
	ServeWebSocket(w http.ResponseWriter, r *http.Request, board string) error
	ServeSSE(w http.ResponseWriter, r *http.Request, board string) error
	ServeLongPoll(w http.ResponseWriter, r *http.Request, board string) error
}

// API serves the HTTP API. Create it with New.
type API struct {
	svc      *board.Service
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	registry *prometheus.Registry
	metrics  *metrics
	draining atomic.Bool
	routes   []string
	top      topCache
	stale    staleCache
	guard    *guard
	access   []RouteAccess
}

// New returns the API over svc.
func New(svc *board.Service, opts Options) *API {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.MaxBatchBodyBytes <= 0 {
		opts.MaxBatchBodyBytes = 1 << 20
	}
	a := &API{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), registry: prometheus.NewRegistry()}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a.guard = newGuard(opts.Access)
	a.metrics = newMetrics(a.registry, svc, opts.Totals)
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.registry.MustRegister(opts.Collectors...)
	a.register()
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.guard.corsEnabled() && a.cors(w, r) {
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Sweep drops idle per-IP rate-limit buckets and expired cached tokens; the
// server calls it every --sweep-interval.
func (a *API) Sweep(now time.Time) { a.guard.sweep(now) }

// SetDraining makes /readyz answer 503 so that load balancers stop sending new
// work while the server shuts down.
func (a *API) SetDraining() { a.draining.Store(true) }

// Routes returns every "METHOD /path" the API serves, for the spec check.
func (a *API) Routes() []string { return append([]string(nil), a.routes...) }

// route is one entry of the route table: who may call it (see access.go) and
// its handler.
type route struct {
	method, path string
	access       access
	h            func(http.ResponseWriter, *http.Request) error
}

func (a *API) register() {
	metricsHandler := promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{})
	// Adding a route is one line here: its method, path, access level and handler.
	routes := []route{
		{"GET", "/healthz", accessOps, a.healthz},
		{"GET", "/readyz", accessOps, a.readyz},
		{"GET", "/metrics", accessRead, func(w http.ResponseWriter, r *http.Request) error { metricsHandler.ServeHTTP(w, r); return nil }},
		{"POST", "/v1/leaderboards", accessAdmin, a.createLeaderboard},
		{"GET", "/v1/leaderboards", accessRead, a.listLeaderboards},
		{"GET", "/v1/leaderboards/{id}", accessRead, a.getLeaderboard},
		{"PATCH", "/v1/leaderboards/{id}", accessAdmin, a.patchLeaderboard},
		{"POST", "/v1/leaderboards/{id}/finalize", accessAdmin, a.finalize},
		{"DELETE", "/v1/leaderboards/{id}/participants/{pid}", accessAdmin, a.removeParticipant},
		{"POST", "/v1/leaderboards/{id}/scores", accessSubmit, a.submit},
		{"POST", "/v1/leaderboards/{id}/scores:batch", accessSubmit, a.submitBatch},
		{"GET", "/v1/leaderboards/{id}/rankings", accessRead, a.rankings},
		{"GET", "/v1/leaderboards/{id}/participants/{pid}", accessRead, a.participant},
		{"GET", "/v1/leaderboards/{id}/subscribe", accessUpgrade, a.live(Live.ServeWebSocket)},
		{"GET", "/v1/leaderboards/{id}/stream", accessUpgrade, a.live(Live.ServeSSE)},
		{"GET", "/v1/leaderboards/{id}/updates", accessLongPoll, a.live(Live.ServeLongPoll)},
		{"GET", "/v1/leaderboards/{id}/connect", accessRead, a.connect},
		{"GET", "/v1/leaderboards/{id}/final-rankings", accessRead, a.finalRankings},
		{"GET", "/v1/leaderboards/{id}/participants/{pid}/events", accessRead, a.participantEvents},
		{"GET", "/v1/participants/{pid}/results", accessRead, a.participantResults},
		{"PUT", "/v1/participants/{pid}", accessSelfOrAdmin, a.putProfile},
		{"GET", "/v1/participants/{pid}", accessRead, a.getProfile},
	}
	methods := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		pattern := rt.method + " " + rt.path
		a.mux.Handle(pattern, a.metrics.instrument(rt.path, a.handle(rt.access, rt.h)))
		a.routes = append(a.routes, pattern)
		a.access = append(a.access, RouteAccess{Pattern: pattern, Access: rt.access.String()})
		if methods[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	// Known paths with another method get a JSON 405; unknown paths a JSON 404,
	// so that every error a client sees has the contract's shape.
	for _, p := range paths {
		allow := strings.Join(methods[p], ", ")
		if strings.Contains(allow, "GET") {
			allow += ", HEAD"
		}
		a.mux.Handle(p, a.handle(accessOpen, func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+allow)
			return nil
		}))
	}
	a.mux.Handle("/", a.handle(accessOpen, func(w http.ResponseWriter, r *http.Request) error {
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
		return nil
	}))
	if a.opts.Page != nil {
		// GET patterns also match HEAD; other methods fall to the JSON 404.
		page := a.handle(accessOpen, func(w http.ResponseWriter, r *http.Request) error { a.opts.Page.ServeHTTP(w, r); return nil })
		a.mux.Handle("GET /{$}", a.metrics.instrument("/", page))
		a.mux.Handle("GET /assets/", a.metrics.instrument("/assets/", page))
	}
}

// handle runs a route's handler after its access checks and limits, and
// writes the error it returns.
func (a *API) handle(acc access, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, counted := a.admit(w, r, acc)
		if counted {
			defer a.guard.release()
		}
		if !ok {
			return
		}
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

// RouteAccess names the access level of one route, for tests and docs.
type RouteAccess struct {
	Pattern string // "METHOD /path"
	Access  string // ops, open, read, upgrade, longpoll, submit, admin, self-or-admin
}

// Access returns every route with its access level.
func (a *API) Access() []RouteAccess { return append([]RouteAccess(nil), a.access...) }

// statusOf maps the contract's error codes to HTTP statuses.
var statusOf = map[string]int{
	board.CodeInvalidArgument:      http.StatusBadRequest,
	board.CodeLeaderboardNotFound:  http.StatusNotFound,
	board.CodeParticipantNotFound:  http.StatusNotFound,
	board.CodeLeaderboardEnded:     http.StatusNotFound,
	board.CodeAlreadyExists:        http.StatusConflict,
	board.CodeLeaderboardNotActive: http.StatusConflict,
	board.CodeRateLimited:          http.StatusTooManyRequests,
	board.CodeUnavailable:          http.StatusServiceUnavailable,
	codeBodyTooLarge:               http.StatusRequestEntityTooLarge,
	codePermissionDenied:           http.StatusForbidden,
	codeUnauthenticated:            http.StatusUnauthorized,
}

const codeBodyTooLarge = "body_too_large"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 { // do not keep the odd huge buffer alive
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// writeJSONBytes writes a prepared JSON body.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	writeJSONLength(w, status, body, contentLength(len(body)))
}

// writeJSONLength writes a prepared JSON body whose Content-Length header
// value is already made (a cached body keeps its own).
func writeJSONLength(w http.ResponseWriter, status int, body []byte, length []string) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = length
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// contentLengths holds the Content-Length header values of the small bodies
// (submission results, participant views, around windows, errors), made once:
// building one per response cost two allocations (the string, the slice).
// Header values are only read, never written, by net/http (it copies the
// handler's header when the response starts), so they can be shared, as
// jsonContentType is.
var contentLengths = func() []string {
	s := make([]string, 2048)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// contentLength returns the Content-Length header value for n bytes.
func contentLength(n int) []string {
	if n < len(contentLengths) {
		return contentLengths[n : n+1 : n+1] // capacity 1: an append copies instead of writing the next one
	}
	return []string{strconv.Itoa(n)}
}

var jsonContentType = []string{"application/json"}

func writeError(w http.ResponseWriter, status int, code, message string) {
	b := getBuf()
	*b = wire.Error((*b)[:0], code, message)
	writeJSONBytes(w, status, *b)
	putBuf(b)
}

// fail writes err as the contract's error body.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *board.Error
	if !errors.As(err, &e) {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &board.Error{Code: board.CodeUnavailable, Message: "internal error", RetryAfter: time.Second}
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	if status >= 500 {
		a.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", e.Message)
	}
	writeError(w, status, e.Code, e.Message)
}

// retryAfterSeconds rounds up: Retry-After carries whole seconds, and telling a
// client to come back before a token exists only earns it another 429.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// readBody reads the request body up to limit bytes into a pooled buffer,
// which the caller returns with putBuf when done with the bytes. It reads
// r.Body itself rather than through http.MaxBytesReader, whose reader was an
// allocation per request: past the limit, the one thing that reader did
// besides refusing was to tell net/http's own writer, which it could not
// reach through the metrics' writer anyway (see below).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*[]byte, error) {
	if r.ContentLength > limit {
		return nil, &board.Error{Code: codeBodyTooLarge, Message: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	b := getBuf()
	buf, err := readLimited((*b)[:0], r.Body, limit)
	*b = buf
	if err != nil {
		putBuf(b)
		if err == errBodyTooLarge {
			// net/http closes the connection after the answer only when
			// MaxBytesReader tells its own writer, and here it is wrapped
			// (metrics): net/http would first read up to 256 KiB more of the
			// body, holding the 413 back from a client that waits for it.
			w.Header().Set("Connection", "close")
			return nil, &board.Error{Code: codeBodyTooLarge, Message: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
		}
		return nil, board.Invalid("the request body could not be read: " + err.Error())
	}
	return b, nil
}

var errBodyTooLarge = errors.New("request body too large")

// readLimited appends body to dst until EOF, or fails with errBodyTooLarge
// once it holds more than limit bytes (it reads at most limit+1).
func readLimited(dst []byte, body io.Reader, limit int64) ([]byte, error) {
	if body == nil {
		return dst, nil
	}
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, 512)
		}
		room := dst[len(dst):cap(dst)]
		if left := limit + 1 - int64(len(dst)); int64(len(room)) > left {
			room = room[:left]
		}
		n, err := body.Read(room)
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, errBodyTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// live adapts a gateway method to a route: the leaderboard id is validated
// here, everything else is the gateway's.
func (a *API) live(serve func(Live, http.ResponseWriter, *http.Request, string) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id", "leaderboard id")
		if err != nil {
			return err
		}
		if a.opts.Live == nil {
			return &board.Error{Code: board.CodeUnavailable, Message: "live updates are not enabled on this server", RetryAfter: time.Minute}
		}
		return serve(a.opts.Live, w, r, id)
	}
}
