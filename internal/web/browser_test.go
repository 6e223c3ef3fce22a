package web_test

// Browser tests: the page in headless Chromium (Debian's chromium package),
// driven with chromedp, against the real server started in-process with
// server.Run. One browser is shared by the tests; each test has its own tab
// and its own server. Each test saves screenshots in t.ArtifactDir() (kept
// with `go test -artifacts -outputdir DIR`).
//
// Without Chromium the tests fail in CI (CI set) and are skipped elsewhere.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/server"
)

// ---- the browser ----

var browser struct {
	once    sync.Once
	ctx     context.Context
	cancel  func()
	dataDir string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.dataDir != "" {
		os.RemoveAll(browser.dataDir)
	}
	os.Exit(code)
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// newTab returns a fresh tab of the shared headless browser, closed when the
// test ends.
func newTab(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		msg := "headless Chromium is not installed (looked for /usr/bin/chromium, chromium, google-chrome): " +
			"install it with `apt-get install chromium` (scripts/test.sh does so when run as root)"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "leaderboard-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		browser.dataDir = dir
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1280, 900),
		)
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		browser.ctx = bctx
		browser.cancel = func() { bcancel(); acancel() }
		browser.err = chromedp.Do(bctx) // starts the browser
	})
	if browser.err != nil {
		t.Fatalf("starting %s: %v", path, browser.err)
	}
	tab, cancel := chromedp.NewContext(browser.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil { // opens the tab
		t.Fatalf("new tab: %v", err)
	}
	return tab
}

// ---- the server ----

type testServer struct {
	addr   string
	base   string
	token  string // admin token the test's own requests carry; empty with --auth=off
	cancel context.CancelFunc
	done   chan error
}

func testConfig() server.Config {
	cfg := server.DefaultConfig()
	cfg.DataDir = "" // no persistence: this test is not about it
	cfg.Addr = "127.0.0.1:0"
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.SubmitRate = 0 // the tests submit in bursts
	cfg.ShutdownTimeout = 2 * time.Second
	return cfg
}

func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	// The page only reads; the tests submit from one address, without tokens
	// unless the test gave the server a secret.
	cfg.IPRate, cfg.UpgradeRate = 0, 0
	if cfg.AuthSecret == "" {
		cfg.Auth = "off"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{cancel: cancel, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		s.done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	select {
	case s.addr = <-addrc:
	case err := <-s.done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	}
	s.base = "http://" + s.addr
	if cfg.AuthSecret != "" {
		tok, err := auth.Mint([]byte(cfg.AuthSecret), auth.Admin, "browser-test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s.token = tok
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *testServer) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		t.Errorf("server.Run: %v", err)
	}
}

// ---- the API, over HTTP ----

func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	return callAs(t, "", method, url, body, out)
}

// callAs is call with a bearer token (none when tok is empty).
func callAs(t *testing.T, tok, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return res.StatusCode
}

func createBoard(t *testing.T, s *testServer, id string) {
	t.Helper()
	if code := callAs(t, s.token, "POST", s.base+"/v1/leaderboards", map[string]any{"leaderboard_id": id, "name": "Cup " + id}, nil); code != 201 {
		t.Fatalf("create %s: %d", id, code)
	}
}

type score struct {
	ParticipantID string `json:"participant_id"`
	Score         int64  `json:"score"`
	Timestamp     int64  `json:"timestamp,omitempty"`
}

func submitBatch(t *testing.T, s *testServer, board string, scores []score) {
	t.Helper()
	for len(scores) > 0 {
		n := min(len(scores), 1000)
		if code := callAs(t, s.token, "POST", s.base+"/v1/leaderboards/"+board+"/scores:batch", map[string]any{"scores": scores[:n]}, nil); code != 200 {
			t.Fatalf("batch: %d", code)
		}
		scores = scores[n:]
	}
}

func submit(t *testing.T, s *testServer, board, pid string, sc int64) {
	t.Helper()
	if code := callAs(t, s.token, "POST", s.base+"/v1/leaderboards/"+board+"/scores", score{ParticipantID: pid, Score: sc}, nil); code != 200 {
		t.Fatalf("submit %s %d: %d", pid, sc, code)
	}
}

// seed gives n participants p1..pn scores with ties (equal scores broken by
// timestamp, then id).
func seed(t *testing.T, s *testServer, board string, n int) {
	t.Helper()
	var scores []score
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for i := 1; i <= n; i++ {
		scores = append(scores, score{ParticipantID: "p" + strconv.Itoa(i), Score: int64(1000 + (i*37)%n*10), Timestamp: ts + int64(i%7)})
	}
	submitBatch(t, s, board, scores)
}

type entry struct {
	Rank          int64  `json:"rank"`
	ParticipantID string `json:"participant_id"`
	Score         int64  `json:"score"`
}

type page struct {
	Version uint64  `json:"version"`
	Epoch   string  `json:"epoch"`
	Entries []entry `json:"entries"`
}

func rankings(t *testing.T, s *testServer, board string, limit int) page {
	t.Helper()
	var p page
	if code := callAs(t, s.token, "GET", fmt.Sprintf("%s/v1/leaderboards/%s/rankings?limit=%d", s.base, board, limit), nil, &p); code != 200 {
		t.Fatalf("rankings: %d", code)
	}
	return p
}

// ---- the page ----

// row is one row of a table on the page, as a person reads it.
type row struct {
	Rank  string `json:"rank"`
	PID   string `json:"pid"`
	Score string `json:"score"`
	Move  string `json:"move"`
}

const rowsJS = `[...document.querySelectorAll(%q)].map(tr => ({
	rank: tr.cells[0].textContent, move: tr.cells[1].textContent,
	pid: tr.cells[2].textContent, score: tr.cells[3].textContent}))`

func readRows(ctx context.Context, sel string) ([]row, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[[]row](fmt.Sprintf(rowsJS, sel)))
}

func connState(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("conn").dataset.state`))
	return s
}

// sameRows reports whether the rows show exactly the entries, in order.
func sameRows(rows []row, want []entry) (bool, string) {
	if len(rows) != len(want) {
		return false, fmt.Sprintf("%d rows shown, %d expected", len(rows), len(want))
	}
	for i, e := range want {
		r := rows[i]
		if r.Rank != strconv.FormatInt(e.Rank, 10) || r.PID != e.ParticipantID || strings.ReplaceAll(r.Score, ",", "") != strconv.FormatInt(e.Score, 10) {
			return false, fmt.Sprintf("row %d shows #%s %s %s, expected #%d %s %d", i, r.Rank, r.PID, r.Score, e.Rank, e.ParticipantID, e.Score)
		}
	}
	return true, ""
}

// waitFor polls check until it holds or timeout passes; on timeout it saves a
// screenshot and fails with check's last detail.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	detail := ""
	for {
		ok, d := check()
		if ok {
			return time.Since(start)
		}
		detail = d
		if time.Since(start) > timeout {
			screenshot(t, ctx, "failure")
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`({conn: document.getElementById("conn").dataset.state, page: window.leaderboardPage && window.leaderboardPage()})`))
			b, _ := json.Marshal(state)
			if len(b) > 2000 {
				b = b[:2000]
			}
			t.Fatalf("%s: not within %v: %s\npage state: %s", what, timeout, detail, b)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// waitTop waits until the top table shows exactly GET .../rankings.
func waitTop(t *testing.T, ctx context.Context, s *testServer, board string, limit int, timeout time.Duration) page {
	t.Helper()
	var want page
	waitFor(t, ctx, timeout, "the table shows the API's top "+strconv.Itoa(limit), func() (bool, string) {
		want = rankings(t, s, board, limit)
		rows, err := readRows(ctx, "#top-body tr")
		if err != nil {
			return false, err.Error()
		}
		return sameRows(rows, want.Entries)
	})
	return want
}

func waitState(t *testing.T, ctx context.Context, state string, timeout time.Duration) {
	t.Helper()
	waitFor(t, ctx, timeout, "connection indicator "+state, func() (bool, string) {
		s := connState(ctx)
		return s == state, "indicator: " + s
	})
}

func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// screenshot saves the viewport as a PNG in the test's artifact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", file)
}

func withTimeout(t *testing.T, ctx context.Context, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// ---- the tests ----

// TestBrowserTopMatchesAPI: the page shows the same top 100 as
// GET .../rankings, live over WebSocket, and fits a phone-width screen.
func TestBrowserTopMatchesAPI(t *testing.T) {
	tab := newTab(t)
	s := startServer(t, testConfig())
	createBoard(t, s, "cup")
	createBoard(t, s, "other")
	seed(t, s, "cup", 150)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=cup")
	waitState(t, ctx, "websocket", 5*time.Second)
	waitTop(t, ctx, s, "cup", 100, 5*time.Second)

	// The list of leaderboards and the board's head.
	waitFor(t, ctx, 5*time.Second, "list and heading", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("board-name").textContent,
			[...document.querySelectorAll("#board-list a")].map(a => a.dataset.board).sort().join(","),
			document.getElementById("board-status") ? document.getElementById("board-status").textContent : ""]`))
		return len(v) == 3 && v[0] == "Cup cup" && v[1] == "cup,other" && v[2] == "active", fmt.Sprint(v)
	})
	screenshot(t, ctx, "desktop")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 5*time.Second, "no horizontal scrolling at 390 px", func() (bool, string) {
		w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		return w <= 390, fmt.Sprintf("page is %d px wide", w)
	})
	waitTop(t, ctx, s, "cup", 100, 5*time.Second)
	screenshot(t, ctx, "phone")
}

// TestBrowserSubmissionWithinOneSecond: a score submitted through the HTTP
// API is on the page within 1 s, with the move shown.
func TestBrowserSubmissionWithinOneSecond(t *testing.T) {
	tab := newTab(t)
	s := startServer(t, testConfig())
	createBoard(t, s, "fast")
	seed(t, s, "fast", 30)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=fast")
	waitState(t, ctx, "websocket", 5*time.Second)
	before := waitTop(t, ctx, s, "fast", 100, 5*time.Second)

	// A participant from rank 15 jumps to the top: the row shows ▲ +14.
	climber := before.Entries[14]
	top := before.Entries[0].Score
	start := time.Now()
	submit(t, s, "fast", climber.ParticipantID, top+500)
	waitFor(t, ctx, time.Second-time.Since(start), "the submission on the page", func() (bool, string) {
		rows, err := readRows(ctx, "#top-body tr")
		if err != nil || len(rows) == 0 {
			return false, fmt.Sprint(err)
		}
		r := rows[0]
		return r.PID == climber.ParticipantID && strings.ReplaceAll(r.Score, ",", "") == strconv.FormatInt(top+500, 10),
			fmt.Sprintf("first row: %+v", r)
	})
	t.Logf("shown %v after the submission was sent", time.Since(start))
	rows, _ := readRows(ctx, "#top-body tr")
	if !strings.Contains(rows[0].Move, "▲") || !strings.Contains(rows[0].Move, "+14") {
		t.Errorf("the climber's move badge is %q, want ▲ +14", rows[0].Move)
	}
	if !strings.Contains(rows[1].Move, "▼") || !strings.Contains(rows[1].Move, "1") {
		t.Errorf("the former leader's move badge is %q, want ▼ −1", rows[1].Move)
	}
	screenshot(t, ctx, "after-submission")

	// A newcomer, a few more times: each within 1 s.
	for i := range 3 {
		pid := fmt.Sprintf("new%d", i)
		sc := top + 1000*int64(i+1)
		start := time.Now()
		submit(t, s, "fast", pid, sc)
		d := waitFor(t, ctx, time.Second-time.Since(start), "newcomer "+pid, func() (bool, string) {
			rows, err := readRows(ctx, "#top-body tr")
			if err != nil || len(rows) == 0 {
				return false, fmt.Sprint(err)
			}
			return rows[0].PID == pid, fmt.Sprintf("first row: %+v", rows[0])
		})
		t.Logf("%s shown %v after its submission returned", pid, d)
	}
	waitTop(t, ctx, s, "fast", 100, 2*time.Second)
}

// TestBrowserBurstEndsOnLatestState: updates arriving faster than rows can
// animate; the page ends showing exactly the latest state.
func TestBrowserBurstEndsOnLatestState(t *testing.T) {
	tab := newTab(t)
	s := startServer(t, testConfig())
	createBoard(t, s, "burst")
	seed(t, s, "burst", 200)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=burst&follow=p7")
	waitState(t, ctx, "websocket", 5*time.Second)
	waitTop(t, ctx, s, "burst", 100, 5*time.Second)

	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(time.Second)
	batches := 0
	for time.Now().Before(deadline) {
		var scores []score
		for range 20 {
			scores = append(scores, score{ParticipantID: "p" + strconv.Itoa(1+rng.IntN(200)), Score: int64(rng.IntN(5000))})
		}
		submitBatch(t, s, "burst", scores)
		batches++
		time.Sleep(15 * time.Millisecond)
	}
	t.Logf("%d batches of 20 in 1 s", batches)
	screenshot(t, ctx, "during-burst")
	waitTop(t, ctx, s, "burst", 100, 3*time.Second)
	var p struct {
		Rank  int64 `json:"rank"`
		Score int64 `json:"score"`
	}
	call(t, "GET", s.base+"/v1/leaderboards/burst/participants/p7", nil, &p)
	waitFor(t, ctx, 3*time.Second, "the follow panel at the latest state", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("follow-view").dataset.rank || "", document.getElementById("follow-view").dataset.score || ""]`))
		return len(v) == 2 && v[0] == strconv.FormatInt(p.Rank, 10) && v[1] == strconv.FormatInt(p.Score, 10), fmt.Sprintf("panel %v, API rank %d score %d", v, p.Rank, p.Score)
	})
}

// TestBrowserWithAuthReads: on a server whose reads need a token, the page
// given one in its address's fragment shows the board and its live updates,
// over WebSocket and, with WebSocket off, over SSE; the token leaves the
// address bar; without a token the page shows no rows.
func TestBrowserWithAuthReads(t *testing.T) {
	tab := newTab(t)
	for _, ws := range []bool{true, false} {
		cfg := testConfig()
		cfg.AuthSecret, cfg.AuthReads, cfg.WebSocket = "browser-test-secret-of-at-least-32-bytes", true, ws
		// Two tabs' navigations leave Chromium's speculative connections open
		// without a request, and net/http's Shutdown counts such a connection
		// as active for its first 5 s: give the stop longer than that.
		cfg.ShutdownTimeout = 10 * time.Second
		s := startServer(t, cfg)
		createBoard(t, s, "locked")
		seed(t, s, "locked", 30)
		if code := call(t, "GET", s.base+"/v1/leaderboards/locked/rankings", nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("a read without a token answers %d with --auth-reads, want 401", code)
		}
		viewer, err := auth.Mint([]byte(cfg.AuthSecret), auth.Participant, "viewer-1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		state := map[bool]string{true: "websocket", false: "sse"}[ws]
		ctx := withTimeout(t, tab, 30*time.Second)
		open(t, ctx, s.base+"/?board=locked#token="+viewer)
		waitState(t, ctx, state, 5*time.Second)
		waitTop(t, ctx, s, "locked", 100, 5*time.Second)
		if hash, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`)); hash != "" {
			t.Errorf("the token is still in the address: %q", hash)
		}
		submit(t, s, "locked", "late-riser", 1_000_000)
		waitTop(t, ctx, s, "locked", 100, 3*time.Second)

		// Another tab's session has no token: the page cannot read the board.
		other := newTab(t)
		octx := withTimeout(t, other, 30*time.Second)
		open(t, octx, s.base+"/?board=locked")
		waitFor(t, octx, 5*time.Second, "the page asks for a token", func() (bool, string) {
			msg, _ := chromedp.Run(octx, chromedp.Evaluate[string](`document.getElementById("board-missing").hidden ? "" : document.getElementById("board-missing").textContent`))
			return strings.Contains(msg, "#token="), "notice: " + msg
		})
		if rows, err := readRows(octx, "#top-body tr"); err != nil || len(rows) != 0 {
			t.Errorf("without a token the page shows %d rows (%v)", len(rows), err)
		}
		open(t, ctx, "about:blank")
		open(t, octx, "about:blank")
		waitStreamsClosed(t, ctx, s)
		s.stop(t)
	}
}

// TestBrowserFallsBackToSSE: with WebSocket disabled on the server the page
// says SSE in its connection indicator and still updates.
func TestBrowserFallsBackToSSE(t *testing.T) {
	tab := newTab(t)
	cfg := testConfig()
	cfg.WebSocket = false
	s := startServer(t, cfg)
	createBoard(t, s, "nows")
	seed(t, s, "nows", 50)
	if code := call(t, "GET", s.base+"/v1/leaderboards/nows/subscribe", nil, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("the WebSocket route answers %d with --websocket=false, want 503", code)
	}
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=nows&follow=p3")
	waitState(t, ctx, "sse", 5*time.Second)
	label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#conn .label").textContent`))
	if !strings.Contains(label, "SSE") {
		t.Errorf("indicator label %q does not say SSE", label)
	}
	waitTop(t, ctx, s, "nows", 100, 5*time.Second)
	start := time.Now()
	submit(t, s, "nows", "sse-rocket", 1_000_000)
	submit(t, s, "nows", "p3", 999_999)
	waitTop(t, ctx, s, "nows", 100, 2*time.Second)
	t.Logf("updated over SSE in %v", time.Since(start))
	waitFor(t, ctx, 2*time.Second, "follow panel over SSE", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("follow-view").dataset.rank || ""`))
		return v == "2", "rank " + v
	})
	if st := connState(ctx); st != "sse" {
		t.Errorf("indicator %q after updates, want sse", st)
	}
	screenshot(t, ctx, "sse")
	// Leaving the page closes its streams (the gateway's Shutdown ends
	// WebSockets only, so http.Server.Shutdown would wait for open streams).
	open(t, ctx, "about:blank")
	waitStreamsClosed(t, ctx, s)
}

// waitStreamsClosed waits until the server holds no SSE stream (the gateway's
// Shutdown ends WebSockets only, so http.Server.Shutdown would wait for open
// streams).
func waitStreamsClosed(t *testing.T, ctx context.Context, s *testServer) {
	t.Helper()
	waitFor(t, ctx, 3*time.Second, "the page's SSE streams closed", func() (bool, string) {
		req, _ := http.NewRequest("GET", s.base+"/metrics", nil)
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "leaderboard_live_sse_streams ") {
				return l == "leaderboard_live_sse_streams 0", l
			}
		}
		return false, "no leaderboard_live_sse_streams in /metrics"
	})
}

// TestBrowserReconnectsAfterRestart: the server stops and starts again on the
// same address, with a new epoch and other data: the page reconnects, takes
// the fresh snapshot and shows the current data.
func TestBrowserReconnectsAfterRestart(t *testing.T) {
	tab := newTab(t)
	s1 := startServer(t, testConfig())
	createBoard(t, s1, "phoenix")
	submitBatch(t, s1, "phoenix", []score{{"old1", 500, 0}, {"old2", 400, 0}, {"old3", 300, 0}, {"old4", 200, 0}, {"old5", 100, 0}})
	for i := range 20 { // move the old version well past the new one's
		submit(t, s1, "phoenix", "old5", int64(101+i))
	}
	ctx := withTimeout(t, tab, 40*time.Second)
	open(t, ctx, s1.base+"/?board=phoenix&follow=old2")
	waitState(t, ctx, "websocket", 5*time.Second)
	old := waitTop(t, ctx, s1, "phoenix", 100, 5*time.Second)

	s1.stop(t)
	waitState(t, ctx, "reconnecting", 5*time.Second)
	screenshot(t, ctx, "reconnecting")

	cfg := testConfig()
	cfg.Addr = s1.addr
	s2 := startServer(t, cfg)
	createBoard(t, s2, "phoenix")
	submitBatch(t, s2, "phoenix", []score{{"new1", 900, 0}, {"old2", 50, 0}, {"new3", 700, 0}})
	cur := waitTop(t, ctx, s2, "phoenix", 100, 15*time.Second)
	if cur.Epoch == old.Epoch {
		t.Fatal("the restarted server kept its epoch")
	}
	waitState(t, ctx, "websocket", 5*time.Second)
	waitFor(t, ctx, 5*time.Second, "the page's copy is of the new epoch", func() (bool, string) {
		e, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`window.leaderboardPage().top.epoch`))
		return e == cur.Epoch, "page epoch " + e + ", server " + cur.Epoch
	})
	waitFor(t, ctx, 5*time.Second, "the follow panel after the restart", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("follow-view").dataset.rank || "", document.getElementById("follow-view").dataset.score || ""]`))
		return len(v) == 2 && v[0] == "3" && v[1] == "50", fmt.Sprint(v)
	})
	// And it is live again.
	submit(t, s2, "phoenix", "new4", 800)
	waitTop(t, ctx, s2, "phoenix", 100, 2*time.Second)
	screenshot(t, ctx, "after-restart")
}

// TestBrowserFollowPanel: the follow panel shows the followed participant's
// rank, score and neighbours (2 each side), and follows them as they move;
// tapping a row follows another participant.
func TestBrowserFollowPanel(t *testing.T) {
	tab := newTab(t)
	s := startServer(t, testConfig())
	createBoard(t, s, "follow")
	seed(t, s, "follow", 40)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=follow&follow=p10")
	waitState(t, ctx, "websocket", 5*time.Second)

	type view struct {
		Rank      int64   `json:"rank"`
		Score     int64   `json:"score"`
		Neighbors []entry `json:"neighbors"`
	}
	check := func(pid string) {
		t.Helper()
		waitFor(t, ctx, 3*time.Second, "follow panel of "+pid, func() (bool, string) {
			var v view
			call(t, "GET", s.base+"/v1/leaderboards/follow/participants/"+pid+"?neighbors=2", nil, &v)
			shown, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("follow-view").dataset.rank || "",
				document.getElementById("follow-view").dataset.score || "",
				(document.getElementById("follow-rank") || {}).textContent || "",
				((document.getElementById("follow-score") || {}).textContent || "").replaceAll(",", "")]`))
			want := []string{strconv.FormatInt(v.Rank, 10), strconv.FormatInt(v.Score, 10), "#" + strconv.FormatInt(v.Rank, 10), strconv.FormatInt(v.Score, 10)}
			if fmt.Sprint(shown) != fmt.Sprint(want) {
				return false, fmt.Sprintf("panel shows %q, API says %q", shown, want)
			}
			all := append([]entry{}, v.Neighbors...)
			all = append(all, entry{Rank: v.Rank, ParticipantID: pid, Score: v.Score})
			for i := range all {
				for j := i + 1; j < len(all); j++ {
					if all[j].Rank < all[i].Rank {
						all[i], all[j] = all[j], all[i]
					}
				}
			}
			rows, err := readRows(ctx, "#follow-body tr")
			if err != nil {
				return false, err.Error()
			}
			return sameRows(rows, all)
		})
	}
	check("p10")
	screenshot(t, ctx, "follow")

	// p10 climbs to the top: the panel follows.
	submit(t, s, "follow", "p10", 100_000)
	check("p10")
	// Someone passes p10: its rank falls.
	submit(t, s, "follow", "p20", 200_000)
	check("p10")
	screenshot(t, ctx, "follow-moved")

	// Tapping a row of the table follows that participant. A row being
	// re-rendered by an update at that instant can swallow the click (a busy
	// CI machine showed it once), so a tap that changed nothing is repeated.
	for attempt := 0; attempt < 3; attempt++ {
		if err := chromedp.Do(ctx, chromedp.Click(`#top-body tr[data-pid="p30"]`)); err != nil {
			t.Fatal(err)
		}
		followed := false
		for i := 0; i < 20 && !followed; i++ {
			u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
			followed = strings.Contains(u, "follow=p30")
			if !followed {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if followed {
			break
		}
	}
	check("p30")
	u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
	if !strings.Contains(u, "follow=p30") {
		t.Errorf("the URL %q does not name the followed participant", u)
	}
	// One that never submitted: the panel says so, then shows them once ranked.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(`#follow-input`, "late-comer"),
		chromedp.Click(`#follow-form button[type="submit"]`),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 3*time.Second, "an unranked participant", func() (bool, string) {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("follow-view").dataset.state`))
		return st == "unranked", "state " + st
	})
	submit(t, s, "follow", "late-comer", 1234)
	check("late-comer")
}

// TestBrowserPolling: forced to the last fallback (?transport=polling), the
// page polls GET .../rankings with If-None-Match and still updates.
func TestBrowserPolling(t *testing.T) {
	tab := newTab(t)
	s := startServer(t, testConfig())
	createBoard(t, s, "poll")
	seed(t, s, "poll", 30)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/?board=poll&follow=p5&transport=polling")
	waitState(t, ctx, "polling", 5*time.Second)
	waitTop(t, ctx, s, "poll", 100, 5*time.Second)
	submit(t, s, "poll", "p5", 50_000)
	waitTop(t, ctx, s, "poll", 100, 3*time.Second)
	waitFor(t, ctx, 3*time.Second, "follow panel by polling", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("follow-view").dataset.rank || ""`))
		return v == "1", "rank " + v
	})
	screenshot(t, ctx, "polling")
}

// TestBrowserDemo: with --demo the page opens on the demo tournament, whose
// top keeps moving.
func TestBrowserDemo(t *testing.T) {
	tab := newTab(t)
	cfg := testConfig()
	cfg.Demo, cfg.DemoRate, cfg.DemoParticipants = true, 100, 500
	cfg.SubmitRate = 10
	s := startServer(t, cfg)
	ctx := withTimeout(t, tab, 30*time.Second)
	open(t, ctx, s.base+"/")
	waitState(t, ctx, "websocket", 5*time.Second)
	var first string
	waitFor(t, ctx, 5*time.Second, "the demo tournament", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("board-name").textContent,
			String(document.querySelectorAll("#top-body tr").length), document.getElementById("top").dataset.version]`))
		if len(v) == 3 {
			first = v[2]
		}
		return len(v) == 3 && v[0] == "Demo Cup" && v[1] == "100", fmt.Sprint(v)
	})
	waitFor(t, ctx, 5*time.Second, "moves in the demo", func() (bool, string) {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("top").dataset.version,
			String(document.querySelectorAll("#top-body .badge").length)]`))
		return len(v) == 2 && v[0] != first && v[1] != "0", fmt.Sprint(v)
	})
	screenshot(t, ctx, "demo")
}

// TestBrowserUsesTheRouter: opened with ?router=1 on one server, the page
// opens its WebSocket on the gateway the connection router names (another
// server over the same Redis, already serving the leaderboard).
func TestBrowserUsesTheRouter(t *testing.T) {
	tab := newTab(t)
	url, prefix := redistest.URL(t), redistest.Prefix(t, "lbweb")
	cfg := testConfig()
	cfg.RedisURL, cfg.RedisPrefix, cfg.RegistryTTL = url, prefix, 10*time.Second // heartbeats every 3.3 s: a loaded CI machine never lets an entry expire
	cfg.DataDir = t.TempDir()                                                    // one history for both: the page on B must know the board
	a, b := startServer(t, cfg), startServer(t, cfg)
	createBoard(t, a, "routed")
	seed(t, a, "routed", 20)
	res, err := http.Get(a.base + "/v1/leaderboards/routed/stream?kind=top&limit=10") // A serves the board
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	want := "ws://" + a.addr + "/v1/leaderboards/routed/subscribe"
	ctx := withTimeout(t, tab, 40*time.Second)
	waitFor(t, ctx, 15*time.Second, "the router to prefer A", func() (bool, string) {
		for range 20 {
			var out struct{ URL string }
			if call(t, "GET", b.base+"/v1/leaderboards/routed/connect", nil, &out) != 200 || out.URL != want {
				return false, out.URL
			}
		}
		return true, ""
	})
	open(t, ctx, b.base+"/?board=routed&router=1")
	waitState(t, ctx, "websocket", 5*time.Second)
	waitTop(t, ctx, a, "routed", 20, 5*time.Second)
	if got := wsCount(t, a); got != "1" {
		var now struct{ URL string }
		call(t, "GET", b.base+"/v1/leaderboards/routed/connect", nil, &now)
		t.Fatalf("WebSockets on the routed gateway A: %s, want 1 (on B: %s; the router now answers %s)", got, wsCount(t, b), now.URL)
	}
}

func wsCount(t *testing.T, s *testServer) string {
	t.Helper()
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "leaderboard_live_websocket_connections "); ok {
			return v
		}
	}
	return "?"
}
