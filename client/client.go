package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Transport names, as returned by [Watcher.Transport] and accepted by
// [WithTransport].
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
	TransportLongPoll  = "longpoll"
)

// Client talks to one leaderboard service. It is safe for concurrent use.
type Client struct {
	base string // without a trailing slash
	cfg  config
}

// config holds everything an [Option] can set. Watchers take a copy, so an
// option given to WatchTop and its siblings affects that watcher only.
type config struct {
	http  *http.Client
	token string

	backoffBase  time.Duration
	backoffMax   time.Duration
	wsRetry      time.Duration
	pollTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration // each WebSocket write, pongs included
	forceTrans   string
	subscription string
	router       bool
}

func defaultConfig() config {
	return config{
		http:         http.DefaultClient,
		backoffBase:  100 * time.Millisecond,
		backoffMax:   10 * time.Second,
		wsRetry:      30 * time.Second,
		pollTimeout:  25 * time.Second,
		readTimeout:  75 * time.Second,
		writeTimeout: 10 * time.Second,
		subscription: "w",
	}
}

// Option configures a [Client] (given to [New]) or a single [Watcher] (given
// to [Client.WatchTop], [Client.WatchParticipant] or [Client.WatchAround],
// where it overrides the client's setting for that watcher).
type Option func(*config)

// WithHTTPClient sets the HTTP client used for REST calls and for the SSE and
// long-poll transports (default [http.DefaultClient]). For the long-lived live
// requests the watcher ignores the client's Timeout and uses its Transport,
// Jar and CheckRedirect. The WebSocket transport dials by itself; it takes the
// TLS configuration of the client's transport when that is an
// [*http.Transport].
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithToken sends "Authorization: Bearer <token>" on every request: REST
// calls, the WebSocket upgrade, SSE and long polls.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithBackoff sets the reconnection backoff of watchers: after the n-th
// failed attempt in a row a watcher waits a random duration in
// [0, min(max, base*2^n)) ("full jitter"). The count restarts after a
// connection that stayed up at least max (or 1 s, if longer). Defaults: 100 ms
// and 10 s.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) {
		if base > 0 {
			c.backoffBase = base
		}
		if max > 0 {
			c.backoffMax = max
		}
		if c.backoffMax < c.backoffBase {
			c.backoffMax = c.backoffBase
		}
	}
}

// WithWebSocketRetry sets how often a watcher that fell back to SSE or long
// polling tries WebSocket again (default 30 s).
func WithWebSocketRetry(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.wsRetry = d
		}
	}
}

// WithLongPollTimeout sets the timeout_ms of long polls (default 25 s; the
// server accepts 1 ms to 60 s).
func WithLongPollTimeout(d time.Duration) Option {
	return func(c *config) {
		if d >= time.Millisecond {
			c.pollTimeout = min(d, 60*time.Second)
		}
	}
}

// WithReadTimeout sets how long a WebSocket or SSE connection may stay silent
// before the watcher considers it dead and reconnects (default 75 s; the
// server sends a ping or an SSE comment every 25 s). Over WebSocket the
// watcher also sends {"type":"ping"} every third of this duration.
func WithReadTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.readTimeout = d
		}
	}
}

// WithRouter makes watchers ask the service's connection router
// (GET /v1/leaderboards/{id}/connect) which gateway to open their WebSocket
// on, before every connection: a deployment with several gateways sends a
// viewer to one already serving the leaderboard, and a viewer whose gateway
// went away to a live one. If the router cannot answer, or the gateway it
// names cannot be reached, the watcher uses the client's own base URL.
func WithRouter() Option {
	return func(c *config) { c.router = true }
}

// WithTransport forces a watcher to use one transport (TransportWebSocket,
// TransportSSE or TransportLongPoll) and never fall back or climb back. It is
// meant for tests and for networks known to break one of them. An empty
// string restores the automatic choice.
func WithTransport(name string) Option {
	return func(c *config) { c.forceTrans = name }
}

// New returns a client for the service at baseURL (for example
// "http://127.0.0.1:8080"; a path prefix is kept).
func New(baseURL string, opts ...Option) *Client {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), cfg: cfg}
}

// APIError is an error answered by the server: the {"error": {"code",
// "message"}} body of a REST response, an "error" message of the WebSocket
// protocol, or one failed item of a batch.
type APIError struct {
	// Status is the HTTP status (for a WebSocket error message or a batch
	// item, the status the same code has over REST, or 0 when unknown).
	Status int
	// Code is the machine-readable code, e.g. "leaderboard_not_found",
	// "rate_limited". Empty when the server answered without an error body.
	Code string
	// Message is the server's human sentence (or the start of an unexpected
	// body).
	Message string
	// RetryAfter is the Retry-After header of 429 and 503 answers (0 when
	// absent).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("leaderboard: ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteByte(' ')
	}
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		b.WriteString(http.StatusText(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Error codes of the contract that the package itself looks at.
const (
	CodeInvalidArgument     = "invalid_argument"
	CodeUnauthenticated     = "unauthenticated"
	CodePermissionDenied    = "permission_denied"
	CodeLeaderboardNotFound = "leaderboard_not_found"
	CodeParticipantNotFound = "participant_not_found"
	CodeRateLimited         = "rate_limited"
	CodeUnavailable         = "unavailable"
)

// statusOfCode maps a code to its REST status, for errors that arrive without
// one (WebSocket error messages, batch items).
var statusOfCode = map[string]int{
	"invalid_argument":       400,
	"unauthenticated":        401,
	"permission_denied":      403,
	"leaderboard_not_found":  404,
	"participant_not_found":  404,
	"leaderboard_ended":      404,
	"already_exists":         409,
	"leaderboard_not_active": 409,
	"body_too_large":         413,
	"rate_limited":           429,
	"unavailable":            503,
}

type errorBody struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// parseAPIError builds the error of a non-2xx response from its status,
// headers and body.
func parseAPIError(status int, h http.Header, body []byte) *APIError {
	e := &APIError{Status: status, RetryAfter: parseRetryAfter(h.Get("Retry-After"))}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	e.Message = msg
	return e
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil || errors.Is(err, strconv.ErrRange) {
		if s < 0 {
			return 0
		}
		// Saturate: seconds past what a Duration holds (a broken proxy, a
		// hostile server) wrapped around to a negative or short wait.
		if s > int(math.MaxInt64/int64(time.Second)) {
			return math.MaxInt64
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// path joins escaped segments under the base URL: path("v1", "leaderboards", id).
func (c *Client) path(segs ...string) string {
	var b strings.Builder
	b.WriteString(c.base)
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func (c *Client) authorize(h http.Header, cfg *config) {
	if cfg.token != "" {
		h.Set("Authorization", "Bearer "+cfg.token)
	}
}

// do sends one REST request: in (when not nil) as a JSON body, the 2xx answer
// decoded into out (when not nil). Any other status becomes an *APIError.
func (c *Client) do(ctx context.Context, method, u string, in, out any) error {
	return c.doCfg(ctx, &c.cfg, method, u, in, out)
}

// doCfg is do with the HTTP client and token of cfg (a watcher's).
func (c *Client) doCfg(ctx context.Context, cfg *config, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req.Header, cfg)
	resp, err := cfg.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseAPIError(resp.StatusCode, resp.Header, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("leaderboard: decoding %s %s: %w", method, req.URL.Path, err)
	}
	return nil
}
