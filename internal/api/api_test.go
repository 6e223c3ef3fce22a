package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// clock is a settable time source shared by the service under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	url   string
	clock *clock
	svc   *board.Service
	api   *api.API
}

func newEnv(t *testing.T, opts board.Options) *env {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	opts.Now = c.Now
	st := memory.New(memory.Options{Epoch: "e1"})
	svc := board.New(st, opts)
	a := api.New(svc, api.Options{Totals: st.Totals})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, clock: c, svc: svc, api: a}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (e *env) do(method, path string, body any, header ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

// expectError checks a response is the contract's error with status and code.
func expectError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", e.Error, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

func (e *env) create(body map[string]any) map[string]any {
	e.t.Helper()
	r := e.do("POST", "/v1/leaderboards", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

func (e *env) submit(board, pid string, score any, extra ...any) response {
	e.t.Helper()
	body := map[string]any{"participant_id": pid, "score": score}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	return e.do("POST", "/v1/leaderboards/"+board+"/scores", body)
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func TestHealthAndReady(t *testing.T) {
	e := newEnv(t, board.Options{})
	if r := e.do("GET", "/healthz", nil); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	e.api.SetDraining()
	r := e.do("GET", "/readyz", nil)
	expectError(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

func TestCreateAndGetLeaderboard(t *testing.T) {
	e := newEnv(t, board.Options{})
	lb := e.create(map[string]any{
		"leaderboard_id": "spring-cup", "name": "Spring Cup", "type": "tournament",
		"sort_order": "asc", "update_policy": "best", "max_score": 5000,
		"ends_at": "2026-12-01T00:00:00Z", "config": map[string]any{"region": "eu"},
	})
	want := map[string]any{
		"leaderboard_id": "spring-cup", "name": "Spring Cup", "type": "tournament", "status": "active",
		"sort_order": "asc", "update_policy": "best", "starts_at": nil, "ends_at": "2026-12-01T00:00:00.000Z",
		"created_at": "2026-11-27T12:00:00.000Z", "max_score": float64(5000),
		"config": map[string]any{"region": "eu"}, "version": float64(0), "epoch": "e1", "total_participants": float64(0),
	}
	for k, v := range want {
		if fmt.Sprint(lb[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, lb[k], v)
		}
	}
	got := e.do("GET", "/v1/leaderboards/spring-cup", nil)
	if got.status != 200 || got.json(t)["name"] != "Spring Cup" {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	// Defaults, and a generated UUID id.
	d := e.create(map[string]any{"name": "Daily"})
	if id, _ := d["leaderboard_id"].(string); len(id) != 36 || d["sort_order"] != "desc" || d["update_policy"] != "set" || d["type"] != "custom" {
		t.Fatalf("defaults: %v", d)
	}
	expectError(t, e.do("POST", "/v1/leaderboards", map[string]any{"leaderboard_id": "spring-cup", "name": "x"}), 409, "already_exists")
	expectError(t, e.do("GET", "/v1/leaderboards/nope", nil), 404, "leaderboard_not_found")
	expectError(t, e.do("GET", "/v1/leaderboards/bad%20id", nil), 400, "invalid_argument")
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, board.Options{})
	for name, body := range map[string]string{
		"empty body":         ``,
		"not json":           `{"name":`,
		"not an object":      `[1,2]`,
		"no name":            `{"leaderboard_id":"a"}`,
		"bad id":             `{"leaderboard_id":"has space","name":"x"}`,
		"long id":            `{"leaderboard_id":"` + strings.Repeat("a", 129) + `","name":"x"}`,
		"bad sort order":     `{"name":"x","sort_order":"up"}`,
		"bad policy":         `{"name":"x","update_policy":"sum"}`,
		"bad type":           `{"name":"x","type":"Tour Nament"}`,
		"bad time":           `{"name":"x","starts_at":"tomorrow"}`,
		"ends in the past":   `{"name":"x","ends_at":"2020-01-01T00:00:00Z"}`,
		"ends before starts": `{"name":"x","starts_at":"2027-01-02T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`,
		"max_score too big":  `{"name":"x","max_score":9007199254740992}`,
		"config not object":  `{"name":"x","config":[1]}`,
		"name wrong type":    `{"name":5}`,
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, e.do("POST", "/v1/leaderboards", body), 400, "invalid_argument")
		})
	}
	if r := e.do("GET", "/v1/leaderboards", nil); len(r.json(t)["leaderboards"].([]any)) != 0 {
		t.Fatalf("a rejected create left a leaderboard: %s", r.body)
	}
}

func TestListLeaderboards(t *testing.T) {
	e := newEnv(t, board.Options{})
	for i := 0; i < 5; i++ {
		e.create(map[string]any{"leaderboard_id": fmt.Sprintf("b%d", i), "name": "n"})
		e.clock.Advance(time.Millisecond)
	}
	e.create(map[string]any{"leaderboard_id": "later", "name": "n", "starts_at": "2026-11-28T00:00:00Z"})
	list := func(q string) []string {
		r := e.do("GET", "/v1/leaderboards"+q, nil)
		if r.status != 200 {
			t.Fatalf("list%s: %d %s", q, r.status, r.body)
		}
		var ids []string
		for _, lb := range r.json(t)["leaderboards"].([]any) {
			ids = append(ids, lb.(map[string]any)["leaderboard_id"].(string))
		}
		return ids
	}
	if got := fmt.Sprint(list("")); got != "[b0 b1 b2 b3 b4 later]" {
		t.Fatalf("list = %s", got)
	}
	if got := fmt.Sprint(list("?status=active&limit=2&offset=1")); got != "[b1 b2]" {
		t.Fatalf("active page = %s", got)
	}
	if got := fmt.Sprint(list("?status=scheduled")); got != "[later]" {
		t.Fatalf("scheduled = %s", got)
	}
	if got := list("?offset=100"); len(got) != 0 {
		t.Fatalf("past the end = %v", got)
	}
	for _, q := range []string{"?status=done", "?limit=0", "?limit=1001", "?limit=x", "?offset=-1"} {
		expectError(t, e.do("GET", "/v1/leaderboards"+q, nil), 400, "invalid_argument")
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "cup", "name": "Cup",
		"starts_at": "2026-11-27T13:00:00Z", "ends_at": "2026-11-27T14:00:00Z"})
	status := func() string { return e.do("GET", "/v1/leaderboards/cup", nil).json(t)["status"].(string) }

	// Scheduled: submissions refused with 409.
	if s := status(); s != "scheduled" {
		t.Fatalf("status %s, want scheduled", s)
	}
	expectError(t, e.submit("cup", "p1", 10), 409, "leaderboard_not_active")

	// At starts_at it is active by itself.
	e.clock.Advance(time.Hour)
	if s := status(); s != "active" {
		t.Fatalf("status %s, want active", s)
	}
	if r := e.submit("cup", "p1", 10); r.status != 200 {
		t.Fatalf("submit while active: %d %s", r.status, r.body)
	}

	// Pause and resume by PATCH.
	r := e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"status": "paused", "name": "Cup 2"})
	if r.status != 200 || r.json(t)["status"] != "paused" || r.json(t)["name"] != "Cup 2" {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	expectError(t, e.submit("cup", "p2", 10), 409, "leaderboard_not_active")
	if r := e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"status": "active"}); r.json(t)["status"] != "active" {
		t.Fatalf("resume: %s", r.body)
	}
	expectError(t, e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"status": "completed"}), 400, "invalid_argument")
	expectError(t, e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"ends_at": "2020-01-01T00:00:00Z"}), 400, "invalid_argument")
	expectError(t, e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"ends_at": nil}), 400, "invalid_argument")
	expectError(t, e.do("PATCH", "/v1/leaderboards/nope", map[string]any{"name": "x"}), 404, "leaderboard_not_found")

	// At ends_at it completes by itself: read-only, 404 leaderboard_ended.
	e.clock.Advance(time.Hour)
	if s := status(); s != "completed" {
		t.Fatalf("status %s, want completed", s)
	}
	expectError(t, e.submit("cup", "p1", 20), 404, "leaderboard_ended")
	expectError(t, e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"status": "active"}), 404, "leaderboard_ended")
	expectError(t, e.do("DELETE", "/v1/leaderboards/cup/participants/p1", nil), 404, "leaderboard_ended")
	// The sweep seals it in the store too; reads keep working.
	e.svc.Sweep(t.Context())
	if r := e.do("GET", "/v1/leaderboards/cup/rankings", nil); r.status != 200 || num(r.json(t)["total_participants"]) != 1 {
		t.Fatalf("rankings after completion: %d %s", r.status, r.body)
	}
}

func TestPatchActivatesScheduledNow(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "early", "name": "x", "starts_at": "2026-11-28T00:00:00Z"})
	r := e.do("PATCH", "/v1/leaderboards/early", map[string]any{"status": "active"})
	if m := r.json(t); m["status"] != "active" || m["starts_at"] != "2026-11-27T12:00:00.000Z" {
		t.Fatalf("activate early: %s", r.body)
	}
}

func TestFinalize(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "f", "name": "x"})
	e.submit("f", "p1", 5)
	r := e.do("POST", "/v1/leaderboards/f/finalize", nil)
	if r.status != 200 || r.json(t)["status"] != "completed" || num(r.json(t)["version"]) != 1 {
		t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	expectError(t, e.submit("f", "p1", 6), 404, "leaderboard_ended")
	// Idempotent.
	if r := e.do("POST", "/v1/leaderboards/f/finalize", nil); r.status != 200 || r.json(t)["status"] != "completed" {
		t.Fatalf("second finalize: %d %s", r.status, r.body)
	}
	expectError(t, e.do("POST", "/v1/leaderboards/nope/finalize", nil), 404, "leaderboard_not_found")
}

func TestSubmitScore(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "s", "name": "x"})
	r := e.submit("s", "alice", 100, "timestamp", 1000)
	want := `{"leaderboard_id":"s","participant_id":"alice","score":100,"previous_score":null,"rank":1,"previous_rank":null,"updated":true,"version":1,"achieved_at":1000}`
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("first submit: %d %s", r.status, r.body)
	}
	// Absent timestamp: server time.
	r = e.submit("s", "bob", 200)
	if m := r.json(t); num(m["achieved_at"]) != e.clock.Now().UnixMilli() || num(m["rank"]) != 1 || num(m["version"]) != 2 {
		t.Fatalf("bob: %s", r.body)
	}
	// Repeat: not updated, same version, achieved_at kept.
	r = e.submit("s", "alice", 100, "timestamp", 5000)
	want = `{"leaderboard_id":"s","participant_id":"alice","score":100,"previous_score":100,"rank":2,"previous_rank":2,"updated":false,"version":2,"achieved_at":1000}`
	if string(r.body) != want {
		t.Fatalf("repeat: %s", r.body)
	}
	// Change moves alice to the top.
	r = e.submit("s", "alice", 300, "timestamp", 6000)
	want = `{"leaderboard_id":"s","participant_id":"alice","score":300,"previous_score":100,"rank":1,"previous_rank":2,"updated":true,"version":3,"achieved_at":6000}`
	if string(r.body) != want {
		t.Fatalf("change: %s", r.body)
	}
	// Unknown fields are ignored; the largest score is exact.
	r = e.do("POST", "/v1/leaderboards/s/scores", `{"participant_id":"max","score":9007199254740991,"extra":{"x":[1]}}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"score":9007199254740991`)) {
		t.Fatalf("max score: %d %s", r.status, r.body)
	}
	// Timestamp up to 60 s ahead is fine.
	if r := e.submit("s", "soon", 1, "timestamp", e.clock.Now().Add(59*time.Second).UnixMilli()); r.status != 200 {
		t.Fatalf("timestamp 59 s ahead: %d %s", r.status, r.body)
	}
}

func TestSubmitErrors(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "s", "name": "x", "max_score": 1000})
	future := e.clock.Now().Add(61 * time.Second).UnixMilli()
	for name, body := range map[string]string{
		"empty":              ``,
		"malformed":          `{"participant_id":`,
		"array":              `[]`,
		"no participant":     `{"score":1}`,
		"participant number": `{"participant_id":5,"score":1}`,
		"bad participant":    `{"participant_id":"a b","score":1}`,
		"long participant":   `{"participant_id":"` + strings.Repeat("p", 129) + `","score":1}`,
		"no score":           `{"participant_id":"p"}`,
		"null score":         `{"participant_id":"p","score":null}`,
		"negative":           `{"participant_id":"p","score":-1}`,
		"fraction":           `{"participant_id":"p","score":1.5}`,
		"exponent":           `{"participant_id":"p","score":1e3}`,
		"string score":       `{"participant_id":"p","score":"10"}`,
		"too large":          `{"participant_id":"p","score":9007199254740992}`,
		"above max_score":    `{"participant_id":"p","score":1001}`,
		"future timestamp":   fmt.Sprintf(`{"participant_id":"p","score":1,"timestamp":%d}`, future),
		"negative timestamp": `{"participant_id":"p","score":1,"timestamp":-5}`,
		"string timestamp":   `{"participant_id":"p","score":1,"timestamp":"now"}`,
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, e.do("POST", "/v1/leaderboards/s/scores", body), 400, "invalid_argument")
		})
	}
	expectError(t, e.submit("missing", "p", 1), 404, "leaderboard_not_found")
	expectError(t, e.submit("bad%20id", "p", 1), 400, "invalid_argument")
	// Over 64 KiB: 413, with or without a declared length.
	big := `{"participant_id":"p","score":1,"pad":"` + strings.Repeat("x", 64<<10) + `"}`
	expectError(t, e.do("POST", "/v1/leaderboards/s/scores", big), 413, "body_too_large")
	req, _ := http.NewRequest("POST", e.url+"/v1/leaderboards/s/scores", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1 // chunked: the limit applies while reading
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	expectError(t, response{res.StatusCode, res.Header, b}, 413, "body_too_large")
	// Nothing of all that reached the board.
	if v := num(e.do("GET", "/v1/leaderboards/s", nil).json(t)["version"]); v != 0 {
		t.Fatalf("rejected submissions changed the version to %d", v)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, board.Options{SubmitRate: 1, SubmitBurst: 2})
	e.create(map[string]any{"leaderboard_id": "r", "name": "x"})
	e.create(map[string]any{"leaderboard_id": "r2", "name": "x"})
	for i := 0; i < 2; i++ {
		if r := e.submit("r", "p", 10+i); r.status != 200 {
			t.Fatalf("burst %d: %d", i, r.status)
		}
	}
	r := e.submit("r", "p", 20)
	expectError(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	// Other participants and other leaderboards are not affected.
	if r := e.submit("r", "q", 1); r.status != 200 {
		t.Fatalf("other participant: %d", r.status)
	}
	if r := e.submit("r2", "p", 1); r.status != 200 {
		t.Fatalf("other leaderboard: %d", r.status)
	}
	e.clock.Advance(time.Second)
	if r := e.submit("r", "p", 30); r.status != 200 {
		t.Fatalf("after refill: %d", r.status)
	}
	// Batch items are limited one by one.
	r = e.do("POST", "/v1/leaderboards/r/scores:batch", map[string]any{"scores": []any{
		map[string]any{"participant_id": "p", "score": 40},
		map[string]any{"participant_id": "z", "score": 40},
	}})
	res := r.json(t)["results"].([]any)
	if e0 := res[0].(map[string]any)["error"]; e0 == nil || e0.(map[string]any)["code"] != "rate_limited" {
		t.Fatalf("batch item over the limit: %v", res[0])
	}
	if res[1].(map[string]any)["updated"] != true {
		t.Fatalf("batch item within the limit: %v", res[1])
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "b", "name": "x", "update_policy": "best"})
	r := e.do("POST", "/v1/leaderboards/b/scores:batch", `{"scores":[
		{"participant_id":"a","score":10,"timestamp":1},
		{"participant_id":"bad id","score":1},
		{"participant_id":"b","score":20,"timestamp":2},
		"not an object",
		{"participant_id":"a","score":5,"timestamp":3},
		{"participant_id":"c","score":-1}
	]}`)
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	want := `{"results":[` +
		`{"leaderboard_id":"b","participant_id":"a","score":10,"previous_score":null,"rank":1,"previous_rank":null,"updated":true,"version":1,"achieved_at":1},` +
		`{"error":{"code":"invalid_argument","message":"participant_id must be 1 to 128 characters of A-Z a-z 0-9 _ . : -"}},` +
		`{"leaderboard_id":"b","participant_id":"b","score":20,"previous_score":null,"rank":1,"previous_rank":null,"updated":true,"version":2,"achieved_at":2},` +
		`{"error":{"code":"invalid_argument","message":"a score must be a JSON object with participant_id and score"}},` +
		`{"leaderboard_id":"b","participant_id":"a","score":10,"previous_score":10,"rank":2,"previous_rank":2,"updated":false,"version":2,"achieved_at":1},` +
		`{"error":{"code":"invalid_argument","message":"score must be an integer between 0 and 9007199254740991"}}]}`
	if string(r.body) != want {
		t.Fatalf("batch results:\n got %s\nwant %s", r.body, want)
	}
	items := make([]any, 1001)
	for i := range items {
		items[i] = map[string]any{"participant_id": fmt.Sprint("p", i), "score": i}
	}
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", map[string]any{"scores": items}), 400, "invalid_argument")
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", `{"scores":[]}`), 400, "invalid_argument")
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", `{}`), 400, "invalid_argument")
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", `{"scores":{}}`), 400, "invalid_argument")
	expectError(t, e.do("POST", "/v1/leaderboards/missing/scores:batch", `{"scores":[{"participant_id":"a","score":1}]}`), 404, "leaderboard_not_found")
	// 1000 items with long ids fit the batch limit (1 MiB), not the 64 KiB one.
	items = items[:1000]
	for i := range items {
		items[i] = map[string]any{"participant_id": fmt.Sprintf("%0100d", i), "score": i, "timestamp": 1732600000000}
	}
	if r := e.do("POST", "/v1/leaderboards/b/scores:batch", map[string]any{"scores": items}); r.status != 200 {
		t.Fatalf("1000 long items: %d %.200s", r.status, r.body)
	}
	big := `{"scores":[{"participant_id":"a","score":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}]}`
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", big), 413, "body_too_large")
	e.do("POST", "/v1/leaderboards/b/finalize", nil)
	expectError(t, e.do("POST", "/v1/leaderboards/b/scores:batch", `{"scores":[{"participant_id":"a","score":1}]}`), 404, "leaderboard_ended")
}

func TestRankingsReads(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "r", "name": "x"})
	// p00..p19 with scores 190..0 step 10 except a tie: p05 and p06 both 140, p06 first in time.
	for i := 0; i < 20; i++ {
		score, ts := 190-10*i, 1000+i
		if i == 6 {
			score, ts = 140, 500
		}
		e.submit("r", fmt.Sprintf("p%02d", i), score, "timestamp", ts)
	}
	page := func(q string) (map[string]any, []string) {
		r := e.do("GET", "/v1/leaderboards/r/rankings"+q, nil)
		if r.status != 200 {
			t.Fatalf("rankings%s: %d %s", q, r.status, r.body)
		}
		m := r.json(t)
		var ids []string
		for _, en := range m["entries"].([]any) {
			en := en.(map[string]any)
			ids = append(ids, fmt.Sprintf("%d:%s", num(en["rank"]), en["participant_id"]))
		}
		return m, ids
	}
	m, ids := page("?limit=4")
	if fmt.Sprint(ids) != "[1:p00 2:p01 3:p02 4:p03]" || num(m["total_participants"]) != 20 || num(m["version"]) != 20 || m["epoch"] != "e1" {
		t.Fatalf("top 4: %v %v", ids, m)
	}
	if _, ids := page("?limit=3&offset=4"); fmt.Sprint(ids) != "[5:p04 6:p06 7:p05]" {
		t.Fatalf("tie order: %v", ids)
	}
	if _, ids := page("?offset=18"); fmt.Sprint(ids) != "[19:p18 20:p19]" {
		t.Fatalf("last page: %v", ids)
	}
	if _, ids := page("?offset=20"); len(ids) != 0 {
		t.Fatalf("past the end: %v", ids)
	}
	if m, _ := page(""); len(m["entries"].([]any)) != 20 {
		t.Fatal("default limit should cover 20 entries")
	}
	if _, ids := page("?around=p10&limit=5"); fmt.Sprint(ids) != "[9:p08 10:p09 11:p10 12:p11 13:p12]" {
		t.Fatalf("around: %v", ids)
	}
	if _, ids := page("?around=p01&limit=11"); fmt.Sprint(ids) != "[1:p00 2:p01 3:p02 4:p03 5:p04 6:p06 7:p05]" {
		t.Fatalf("around clipped at the top: %v", ids)
	}
	if _, ids := page("?around=p19&limit=4"); fmt.Sprint(ids) != "[19:p18 20:p19]" {
		t.Fatalf("around clipped at the bottom: %v", ids)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=abc", "?offset=-1", "?around=p1&offset=2", "?around=bad%20id"} {
		expectError(t, e.do("GET", "/v1/leaderboards/r/rankings"+q, nil), 400, "invalid_argument")
	}
	expectError(t, e.do("GET", "/v1/leaderboards/r/rankings?around=nobody", nil), 404, "participant_not_found")
	expectError(t, e.do("GET", "/v1/leaderboards/none/rankings", nil), 404, "leaderboard_not_found")
}

func TestETag(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "t", "name": "x"})
	e.submit("t", "a", 1)
	r := e.do("GET", "/v1/leaderboards/t/rankings", nil)
	tag := r.header.Get("ETag")
	if tag != `"e1.1"` {
		t.Fatalf("ETag %q", tag)
	}
	if r := e.do("GET", "/v1/leaderboards/t/rankings", nil, "If-None-Match", tag); r.status != 304 || len(r.body) != 0 {
		t.Fatalf("matching If-None-Match: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/leaderboards/t/rankings", nil, "If-None-Match", `"x.1", `+tag); r.status != 304 {
		t.Fatalf("tag in a list: %d", r.status)
	}
	if r := e.do("GET", "/v1/leaderboards/t/participants/a", nil, "If-None-Match", tag); r.status != 304 {
		t.Fatalf("participant If-None-Match: %d", r.status)
	}
	e.submit("t", "a", 2)
	if r := e.do("GET", "/v1/leaderboards/t/rankings", nil, "If-None-Match", tag); r.status != 200 || r.header.Get("ETag") != `"e1.2"` {
		t.Fatalf("after a change: %d %s", r.status, r.header.Get("ETag"))
	}
}

func TestParticipantAndRemoval(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "p", "name": "x"})
	for i := 0; i < 6; i++ {
		e.submit("p", fmt.Sprintf("u%d", i), 100-i, "timestamp", 7)
	}
	r := e.do("GET", "/v1/leaderboards/p/participants/u2?neighbors=1", nil)
	want := `{"leaderboard_id":"p","participant_id":"u2","rank":3,"score":98,"achieved_at":7,"version":6,"epoch":"e1","total_participants":6,` +
		`"neighbors":[{"rank":2,"participant_id":"u1","score":99,"achieved_at":7},{"rank":4,"participant_id":"u3","score":97,"achieved_at":7}]}`
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("participant: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/leaderboards/p/participants/u0", nil); len(r.json(t)["neighbors"].([]any)) != 2 {
		t.Fatalf("default neighbors at the top: %s", r.body)
	}
	if r := e.do("GET", "/v1/leaderboards/p/participants/u0?neighbors=0", nil); len(r.json(t)["neighbors"].([]any)) != 0 {
		t.Fatalf("no neighbors: %s", r.body)
	}
	expectError(t, e.do("GET", "/v1/leaderboards/p/participants/u0?neighbors=101", nil), 400, "invalid_argument")
	expectError(t, e.do("GET", "/v1/leaderboards/p/participants/zz", nil), 404, "participant_not_found")
	expectError(t, e.do("GET", "/v1/leaderboards/none/participants/u0", nil), 404, "leaderboard_not_found")

	if r := e.do("DELETE", "/v1/leaderboards/p/participants/u0", nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	m := e.do("GET", "/v1/leaderboards/p", nil).json(t)
	if num(m["version"]) != 7 || num(m["total_participants"]) != 5 {
		t.Fatalf("after delete: %v", m)
	}
	if r := e.do("GET", "/v1/leaderboards/p/participants/u1", nil); num(r.json(t)["rank"]) != 1 {
		t.Fatalf("u1 should move up: %s", r.body)
	}
	expectError(t, e.do("DELETE", "/v1/leaderboards/p/participants/u0", nil), 404, "participant_not_found")
	expectError(t, e.do("DELETE", "/v1/leaderboards/none/participants/u0", nil), 404, "leaderboard_not_found")
	expectError(t, e.do("DELETE", "/v1/leaderboards/p/participants/a%20b", nil), 400, "invalid_argument")
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	e := newEnv(t, board.Options{})
	expectError(t, e.do("GET", "/v2/nothing", nil), 404, "not_found")
	r := e.do("PUT", "/v1/leaderboards", nil)
	expectError(t, r, 405, "method_not_allowed")
	if r.header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	expectError(t, e.do("DELETE", "/v1/leaderboards/x/scores", nil), 405, "method_not_allowed")
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "m", "name": "x"})
	e.submit("m", "a", 1)
	e.submit("m", "a", 1)
	e.submit("m", "a", -1)
	e.do("GET", "/v1/leaderboards/m/rankings", nil)
	r := e.do("GET", "/metrics", nil)
	for _, want := range []string{
		`leaderboard_http_requests_total{code="200",route="/v1/leaderboards/{id}/scores"} 2`,
		`leaderboard_http_requests_total{code="400",route="/v1/leaderboards/{id}/scores"} 1`,
		`leaderboard_http_request_duration_seconds_count{route="/v1/leaderboards/{id}/rankings"} 1`,
		`leaderboard_submissions_total{result="updated"} 1`,
		`leaderboard_submissions_total{result="unchanged"} 1`,
		`leaderboard_submissions_total{result="rejected"} 1`,
		`leaderboard_leaderboards{status="active"} 1`,
		`leaderboard_participants 1`,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestTopCacheNeverStale: the cached top-N body always equals a fresh read of
// the same ranks (limit above the cache bound takes the uncached path).
func TestTopCacheNeverStale(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "tc", "name": "x"})
	for i := 0; i < 60; i++ {
		e.submit("tc", fmt.Sprint("p", i%13), (i*7919)%101, "timestamp", i)
		cached := e.do("GET", "/v1/leaderboards/tc/rankings?limit=5", nil)
		again := e.do("GET", "/v1/leaderboards/tc/rankings?limit=5", nil)
		fresh := e.do("GET", "/v1/leaderboards/tc/rankings?limit=101", nil)
		var c, f struct {
			Version int64            `json:"version"`
			Entries []map[string]any `json:"entries"`
		}
		json.Unmarshal(cached.body, &c)
		json.Unmarshal(fresh.body, &f)
		if !bytes.Equal(cached.body, again.body) || cached.header.Get("ETag") != fresh.header.Get("ETag") {
			t.Fatalf("step %d: two reads at one version differ", i)
		}
		if c.Version != f.Version || fmt.Sprint(c.Entries) != fmt.Sprint(f.Entries[:min(5, len(f.Entries))]) {
			t.Fatalf("step %d: cached %v v%d, fresh %v v%d", i, c.Entries, c.Version, f.Entries, f.Version)
		}
	}
}
