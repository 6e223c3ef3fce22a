package api_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

var testSecret = []byte("test-secret-test-secret-test-secret!")

// guarded is an API with access options, driven in-process: each request's
// RemoteAddr (the client IP the limits key on) is set by the test.
type guarded struct {
	t     *testing.T
	api   *api.API
	clock *clock
}

func newGuarded(t *testing.T, o api.AccessOptions, page http.Handler) *guarded {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	o.Now = c.Now
	svc := board.New(memory.New(memory.Options{Epoch: "e1"}), board.Options{Now: c.Now})
	return &guarded{t: t, api: api.New(svc, api.Options{Access: o, Page: page}), clock: c}
}

func (g *guarded) do(ip, method, path, body string, header ...string) *httptest.ResponseRecorder {
	g.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = ip + ":40000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	g.api.ServeHTTP(w, r)
	return w
}

func recorded(w *httptest.ResponseRecorder) response {
	return response{w.Code, w.Header(), w.Body.Bytes()}
}

func mint(t *testing.T, role auth.Role, sub string) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, role, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestEveryRouteHasAnAccessLevel pins the access level of every route: a new
// route shows up here and needs a decision.
func TestEveryRouteHasAnAccessLevel(t *testing.T) {
	a := api.New(board.New(memory.New(memory.Options{}), board.Options{}), api.Options{})
	want := map[string]string{
		"GET /healthz":                                        "ops",
		"GET /readyz":                                         "ops",
		"GET /metrics":                                        "read",
		"POST /v1/leaderboards":                               "admin",
		"GET /v1/leaderboards":                                "read",
		"GET /v1/leaderboards/{id}":                           "read",
		"PATCH /v1/leaderboards/{id}":                         "admin",
		"POST /v1/leaderboards/{id}/finalize":                 "admin",
		"DELETE /v1/leaderboards/{id}/participants/{pid}":     "admin",
		"POST /v1/leaderboards/{id}/scores":                   "submit",
		"POST /v1/leaderboards/{id}/scores:batch":             "submit",
		"GET /v1/leaderboards/{id}/rankings":                  "read",
		"GET /v1/leaderboards/{id}/participants/{pid}":        "read",
		"GET /v1/leaderboards/{id}/subscribe":                 "upgrade",
		"GET /v1/leaderboards/{id}/stream":                    "upgrade",
		"GET /v1/leaderboards/{id}/updates":                   "longpoll",
		"GET /v1/leaderboards/{id}/connect":                   "read",
		"GET /v1/leaderboards/{id}/final-rankings":            "read",
		"GET /v1/leaderboards/{id}/participants/{pid}/events": "read",
		"GET /v1/participants/{pid}/results":                  "read",
		"PUT /v1/participants/{pid}":                          "self-or-admin",
		"GET /v1/participants/{pid}":                          "read",
	}
	got := a.Access()
	if len(got) != len(want) {
		t.Errorf("%d routes, %d pinned here", len(got), len(want))
	}
	for _, r := range got {
		if want[r.Pattern] != r.Access {
			t.Errorf("%s: access %q, want %q", r.Pattern, r.Access, want[r.Pattern])
		}
	}
}

// TestIPLimit: a flood from one IP gets 429 with Retry-After while another IP
// is served; the bucket refills with time; a verified server or admin token is
// not limited per IP; unknown routes count too.
func TestIPLimit(t *testing.T) {
	v, _ := auth.NewVerifier(testSecret, nil, 0)
	g := newGuarded(t, api.AccessOptions{Verifier: v, IPRate: 2, IPBurst: 3}, nil)
	for i := 0; i < 3; i++ {
		if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", ""); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := g.do("10.0.0.1", "GET", "/v1/leaderboards", "")
	expectError(t, recorded(w), 429, "rate_limited")
	if w.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/no/such/route", "")), 429, "rate_limited")
	if w := g.do("10.0.0.2", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("another IP: %d %s", w.Code, w.Body)
	}
	g.clock.Advance(500 * time.Millisecond) // one token back at 2/s
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("after the refill: %d", w.Code)
	}
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards", "")), 429, "rate_limited")
	// A game server's token: the first request (verifying it) is counted, the
	// following ones are not.
	srv := "Bearer " + mint(t, auth.Server, "gs-1")
	g.do("10.0.0.3", "POST", "/v1/leaderboards/x/scores", `{}`, "Authorization", srv)
	for i := 0; i < 20; i++ {
		w := g.do("10.0.0.3", "POST", "/v1/leaderboards/x/scores", `{"participant_id":"p","score":1}`, "Authorization", srv)
		expectError(t, recorded(w), 404, "leaderboard_not_found")
	}
	// A participant's token is limited like anyone.
	p := "Bearer " + mint(t, auth.Participant, "p")
	limited := false
	for i := 0; i < 10 && !limited; i++ {
		limited = g.do("10.0.0.4", "GET", "/v1/leaderboards", "", "Authorization", p).Code == 429
	}
	if !limited {
		t.Fatal("a participant token escaped the per-IP limit")
	}
	// Health probes are never limited.
	for i := 0; i < 10; i++ {
		if w := g.do("10.0.0.1", "GET", "/healthz", ""); w.Code != 200 {
			t.Fatalf("healthz limited: %d", w.Code)
		}
	}
}

// TestRateLimitedAnswerAlwaysCarriesRetryAfter: a 429 refused a fraction of a
// nanosecond before the next token (0.9999999999 tokens at 0.3/s) still says
// Retry-After, at least 1, and coming back after it succeeds.
func TestRateLimitedAnswerAlwaysCarriesRetryAfter(t *testing.T) {
	g := newGuarded(t, api.AccessOptions{IPRate: 0.3, IPBurst: 1}, nil)
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("first request: %d", w.Code)
	}
	g.clock.Advance(3333333333 * time.Nanosecond) // time.Duration(1e9 / 0.3)
	w := g.do("10.0.0.1", "GET", "/v1/leaderboards", "")
	expectError(t, recorded(w), 429, "rate_limited")
	secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("429 with Retry-After %q", w.Header().Get("Retry-After"))
	}
	g.clock.Advance(time.Duration(secs) * time.Second)
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("after waiting Retry-After %d: %d", secs, w.Code)
	}
}

// TestUpgradeLimit: WebSocket and SSE openings have their own, lower, per-IP
// limit; other reads from the same IP go on.
func TestUpgradeLimit(t *testing.T) {
	g := newGuarded(t, api.AccessOptions{UpgradeRate: 1, UpgradeBurst: 2}, nil)
	for i := 0; i < 2; i++ {
		// No live handler in this API: 503 unavailable, but past the limits.
		expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards/b/stream", "")), 503, "unavailable")
	}
	w := g.do("10.0.0.1", "GET", "/v1/leaderboards/b/subscribe", "")
	expectError(t, recorded(w), 429, "rate_limited")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards/b/updates", "")), 503, "unavailable") // long polls are not upgrades
	expectError(t, recorded(g.do("10.0.0.2", "GET", "/v1/leaderboards/b/subscribe", "")), 503, "unavailable")
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("a read after the upgrade limit: %d", w.Code)
	}
}

// TestMaxInflight: past --max-inflight concurrent requests the next one gets
// 503 unavailable with Retry-After; probes still answer; once a request ends
// the next is served.
func TestMaxInflight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(200)
	})
	g := newGuarded(t, api.AccessOptions{MaxInflight: 1}, page)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.do("10.0.0.1", "GET", "/", "") }()
	<-entered
	w := g.do("10.0.0.2", "GET", "/v1/leaderboards", "")
	expectError(t, recorded(w), 503, "unavailable")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if w := g.do("10.0.0.2", "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz under the cap: %d", w.Code)
	}
	close(release)
	wg.Wait()
	if w := g.do("10.0.0.2", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("after the slow request ended: %d", w.Code)
	}
}

// TestCORS: preflights are answered for listed origins (403 otherwise);
// responses to listed origins carry Access-Control-Allow-Origin; without
// --cors-origins there are no CORS headers at all.
func TestCORS(t *testing.T) {
	g := newGuarded(t, api.AccessOptions{CORSOrigins: []string{"https://game.example", "http://localhost:3000"}}, nil)
	pre := func(origin, method string) *httptest.ResponseRecorder {
		return g.do("10.0.0.1", "OPTIONS", "/v1/leaderboards/b/scores", "", "Origin", origin,
			"Access-Control-Request-Method", method, "Access-Control-Request-Headers", "authorization, content-type")
	}
	w := pre("https://game.example", "POST")
	h := w.Header()
	if w.Code != 204 || h.Get("Access-Control-Allow-Origin") != "https://game.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Max-Age") == "" ||
		!strings.Contains(h.Get("Vary"), "Origin") {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
	expectError(t, recorded(pre("https://evil.example", "POST")), 403, "permission_denied")
	w = g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Origin", "http://localhost:3000")
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("simple request: %d %v", w.Code, w.Header())
	}
	w = g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Origin", "https://evil.example")
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin: %d %v", w.Code, w.Header())
	}

	star := newGuarded(t, api.AccessOptions{CORSOrigins: []string{"*"}}, nil)
	w = star.do("10.0.0.1", "OPTIONS", "/v1/leaderboards", "", "Origin", "https://any.example", "Access-Control-Request-Method", "POST")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("* preflight: %d %v", w.Code, w.Header())
	}

	none := newGuarded(t, api.AccessOptions{}, nil)
	w = none.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Origin", "https://game.example")
	for k := range w.Header() {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("CORS header %s without --cors-origins", k)
		}
	}
	expectError(t, recorded(none.do("10.0.0.1", "OPTIONS", "/v1/leaderboards", "", "Origin", "https://game.example", "Access-Control-Request-Method", "POST")), 405, "method_not_allowed")
}

// TestAuthReads: with --auth-reads reads and live routes need a valid token
// of any role (the live routes also take it as access_token, which browsers
// can send); probes stay open.
func TestAuthReads(t *testing.T) {
	v, _ := auth.NewVerifier(testSecret, nil, 0)
	g := newGuarded(t, api.AccessOptions{Verifier: v, Reads: true}, nil)
	w := g.do("10.0.0.1", "GET", "/v1/leaderboards", "")
	expectError(t, recorded(w), 401, "unauthenticated")
	if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: %v", w.Header())
	}
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Authorization", "Bearer x.y.z")), 401, "unauthenticated")
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Authorization", "Basic dXNlcjpwYXNz")), 401, "unauthenticated")
	tok := mint(t, auth.Participant, "p1")
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Authorization", "Bearer "+tok); w.Code != 200 {
		t.Fatalf("read with a participant token: %d %s", w.Code, w.Body)
	}
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Authorization", "bearer "+tok); w.Code != 200 {
		t.Fatalf("the scheme is case-insensitive: %d %s", w.Code, w.Body)
	}
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards/b/stream", "")), 401, "unauthenticated")
	// Past authentication: no live handler in this API.
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards/b/stream?access_token="+tok, "")), 503, "unavailable")
	// access_token is for the live routes only.
	expectError(t, recorded(g.do("10.0.0.1", "GET", "/v1/leaderboards?access_token="+tok, "")), 401, "unauthenticated")
	if w := g.do("10.0.0.1", "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz with --auth-reads: %d", w.Code)
	}

	open := newGuarded(t, api.AccessOptions{Verifier: v}, nil)
	if w := open.do("10.0.0.1", "GET", "/v1/leaderboards", "", "Authorization", "Bearer not-a-token"); w.Code != 200 {
		t.Fatalf("public reads ignore the token: %d", w.Code)
	}
}

// TestParticipantBatchIsAllOrNothing: one item for another participant makes
// the whole batch 403, and nothing of it is applied.
func TestParticipantBatchIsAllOrNothing(t *testing.T) {
	v, _ := auth.NewVerifier(testSecret, nil, 0)
	g := newGuarded(t, api.AccessOptions{Verifier: v}, nil)
	admin := "Bearer " + mint(t, auth.Admin, "")
	if w := g.do("10.0.0.1", "POST", "/v1/leaderboards", `{"leaderboard_id":"b","name":"b"}`, "Authorization", admin); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	p1 := "Bearer " + mint(t, auth.Participant, "p1")
	w := g.do("10.0.0.1", "POST", "/v1/leaderboards/b/scores:batch",
		`{"scores":[{"participant_id":"p1","score":5},{"participant_id":"p2","score":7}]}`, "Authorization", p1)
	expectError(t, recorded(w), 403, "permission_denied")
	if w := g.do("10.0.0.1", "GET", "/v1/leaderboards/b", ""); !strings.Contains(w.Body.String(), `"version":0`) {
		t.Fatalf("a refused batch changed the board: %s", w.Body)
	}
	w = g.do("10.0.0.1", "POST", "/v1/leaderboards/b/scores:batch",
		`{"scores":[{"participant_id":"p1","score":5},{"participant_id":"p1","score":"x"}]}`, "Authorization", p1)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"version":1`) || !strings.Contains(w.Body.String(), "invalid_argument") {
		t.Fatalf("own batch with a bad item: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(g.do("10.0.0.1", "GET", "/v1/leaderboards/b", "").Body.String(), `"total_participants":1`) {
		t.Fatal("own batch not applied")
	}
}
