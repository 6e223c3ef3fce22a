package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// floorChildEnv makes this test binary act as the leaderboard command when floor mode
// re-executes it as "bench floor-server" (and the viewers mode as "bench viewers-child").
const floorChildEnv = "BENCH_TEST_FLOOR_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(floorChildEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testConfig is a short closed-loop run against url; tests adjust what they exercise.
func testConfig(mode, url string) Config {
	cfg := DefaultConfig(mode)
	cfg.URL = url
	cfg.Duration = 300 * time.Millisecond
	cfg.Warmup = 0
	cfg.Connections = 4
	cfg.Participants = 1000
	cfg.Seed = 42
	return cfg
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func TestOpenLoopAchievesTargetRate(t *testing.T) {
	f := newFakeAPI()
	srv := f.start(t)
	cfg := testConfig(ModeSubmit, srv.URL)
	cfg.Rate = 2000
	cfg.Duration = time.Second
	cfg.Connections = 8
	rep := run(t, cfg)
	f.checkNoBadRequests(t)

	f.mu.Lock()
	served := f.submits
	f.mu.Unlock()
	// How many of the slots were sent in time depends on how busy the machine
	// is (the suite runs in parallel); what must hold exactly is the accounting.
	if served == 0 {
		t.Fatal("nothing was sent")
	}
	// Every request sent is recorded (no warmup here), so the counts agree exactly.
	if rep.Requests != int64(served) {
		t.Errorf("report counts %d requests, server got %d", rep.Requests, served)
	}
	if rep.Loop != "open" || rep.TargetRate != 2000 || rep.SendLagMS == nil {
		t.Errorf("loop %q target %g send lag %v, want open loop at 2000 with a send lag", rep.Loop, rep.TargetRate, rep.SendLagMS)
	}
	// The schedule has exactly rate*duration slots: each was either sent or reported missed.
	if got := rep.Requests + rep.MissedSends; got != 2000 {
		t.Errorf("requests %d + missed %d = %d, want the 2000 scheduled", rep.Requests, rep.MissedSends, got)
	}
	if want := float64(rep.Requests) / rep.DurationS; rep.RequestsPerS != want {
		t.Errorf("requests_per_s = %g, want requests/duration = %g", rep.RequestsPerS, want)
	}
}

func TestOpenLoopWarmupBoundary(t *testing.T) {
	// Slots are classified by their intended time: with the server keeping up, warmup and
	// window hold exactly rate*warmup and rate*duration slots.
	f := newFakeAPI()
	srv := f.start(t)
	cfg := testConfig(ModeSubmit, srv.URL)
	cfg.Rate = 1000
	cfg.Warmup = 100 * time.Millisecond
	cfg.Duration = 300 * time.Millisecond
	rep := run(t, cfg)
	f.mu.Lock()
	served := f.submits
	f.mu.Unlock()
	if rep.WarmupRequests != 100 || rep.Requests+rep.MissedSends != 300 {
		t.Errorf("warmup %d, measured %d + missed %d: want 100 and 300", rep.WarmupRequests, rep.Requests, rep.MissedSends)
	}
	if rep.Requests+rep.WarmupRequests != int64(served) {
		t.Errorf("measured %d + warmup %d != %d served", rep.Requests, rep.WarmupRequests, served)
	}
}

func TestClosedLoopCountsStatusesAndErrors(t *testing.T) {
	f := newFakeAPI()
	f.failEvery = 10 // 10% 429, 10% 500
	f.token = "tok"
	srv := f.start(t)
	cfg := testConfig(ModeSubmit, srv.URL)
	cfg.Token = "tok"
	cfg.Leaderboards = 3
	rep := run(t, cfg)
	f.checkNoBadRequests(t)

	f.mu.Lock()
	served, boards, creates := f.submits, len(f.boards), f.creates
	f.mu.Unlock()
	if served == 0 {
		t.Fatal("no submission reached the server")
	}
	if boards != 3 || creates != 3 {
		t.Errorf("server has %d boards after %d creates, want 3 and 3", boards, creates)
	}
	if rep.Requests != int64(served) {
		t.Errorf("report counts %d requests, server got %d", rep.Requests, served)
	}
	want := f.statusMap()
	if !maps.Equal(rep.Status, want) {
		t.Errorf("status = %v, server answered %v", rep.Status, want)
	}
	if rep.Errors["http_429"] != want["429"] || rep.Errors["http_500"] != want["500"] {
		t.Errorf("errors = %v, want http_429 %d and http_500 %d", rep.Errors, want["429"], want["500"])
	}
	if rep.ErrorsTotal != want["429"]+want["500"] || rep.ErrorsTotal == 0 {
		t.Errorf("errors_total = %d, want %d", rep.ErrorsTotal, want["429"]+want["500"])
	}
	// Only the submissions the server took count as scores (a 429 or 500 carried none).
	if rep.Loop != "closed" || rep.Scores != want["200"] || rep.Scores == rep.Requests {
		t.Errorf("loop %q, scores %d for %d requests, %d of them answered 200", rep.Loop, rep.Scores, rep.Requests, want["200"])
	}

	// Second run against the same server: the boards exist (409), which is fine.
	before := served
	rep = run(t, cfg)
	f.mu.Lock()
	served = f.submits - before
	f.mu.Unlock()
	if rep.Requests != int64(served) {
		t.Errorf("second run: report counts %d requests, server got %d", rep.Requests, served)
	}
}

func TestWarmupIsNotRecorded(t *testing.T) {
	f := newFakeAPI()
	srv := f.start(t)
	cfg := testConfig(ModeSubmit, srv.URL)
	cfg.Warmup = 200 * time.Millisecond
	rep := run(t, cfg)

	f.mu.Lock()
	served := f.submits
	f.mu.Unlock()
	if rep.WarmupRequests == 0 || rep.Requests == 0 {
		t.Fatalf("warmup %d, measured %d: want both > 0", rep.WarmupRequests, rep.Requests)
	}
	if rep.Requests+rep.WarmupRequests != int64(served) {
		t.Errorf("measured %d + warmup %d != %d served", rep.Requests, rep.WarmupRequests, served)
	}
	if rep.DurationS != 0.3 {
		t.Errorf("duration_s = %g, want 0.3", rep.DurationS)
	}
}

func TestBatchBodiesAndItemErrors(t *testing.T) {
	f := newFakeAPI()
	f.itemErrorEvery = 7
	srv := f.start(t)
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"submit", "--url", srv.URL, "--batch", "10", "--duration", "300ms", "--warmup", "0",
		"--connections", "2", "--participants", "500", "--json", jsonPath}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	f.checkNoBadRequests(t)

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, raw)
	}
	f.mu.Lock()
	batches, sizes, items, itemErrors := f.batches, maps.Clone(f.batchSizes), f.batchItems, f.itemErrors
	f.mu.Unlock()
	if batches == 0 || len(sizes) != 1 || sizes[10] != batches {
		t.Errorf("server got %d batches with sizes %v, want all of 10 items", batches, sizes)
	}
	if rep.Requests != int64(batches) || rep.Scores != int64(items) || rep.Scores != 10*rep.Requests {
		t.Errorf("report: %d requests, %d scores; server: %d batches, %d items", rep.Requests, rep.Scores, batches, items)
	}
	if rep.ItemErrors != int64(itemErrors) || itemErrors == 0 {
		t.Errorf("item_errors = %d, server answered %d error items", rep.ItemErrors, itemErrors)
	}
	if rep.Batch != 10 || rep.ScoresPerS < 9*rep.RequestsPerS {
		t.Errorf("batch %d, %g scores/s for %g req/s", rep.Batch, rep.ScoresPerS, rep.RequestsPerS)
	}
	for _, want := range []string{"scores:", "item errors", "latency ms:", "client cpu:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestReadSeedsThroughBatchFirst(t *testing.T) {
	f := newFakeAPI()
	f.itemErrorEvery = 1000
	f.wantSeeded = 2 * 2500
	f.seedPerBoard = 2500
	srv := f.start(t)
	cfg := testConfig(ModeRead, srv.URL)
	cfg.Leaderboards = 2
	cfg.SeedParticipants = 2500
	cfg.TopRatio = 0.5
	rep := run(t, cfg)
	f.checkNoBadRequests(t)

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getBeforeAll {
		t.Error("a GET reached the server before seeding finished")
	}
	if f.seeded["bench-0"] != 2500 || f.seeded["bench-1"] != 2500 {
		t.Errorf("seeded %v, want 2500 per board", f.seeded)
	}
	if f.batchSizes[1000] != 4 || f.batchSizes[500] != 2 || len(f.batchSizes) != 2 {
		t.Errorf("seeding batch sizes %v, want 4 of 1000 and 2 of 500", f.batchSizes)
	}
	if rep.SeededParticipants != 5000 || rep.SeedItemErrors != int64(f.itemErrors) {
		t.Errorf("report seeded %d with %d item errors; server: 5000 with %d", rep.SeededParticipants, rep.SeedItemErrors, f.itemErrors)
	}
	if f.badLookups != 0 {
		t.Errorf("%d lookups of participants that were never seeded", f.badLookups)
	}
	if f.tops == 0 || f.lookups == 0 {
		t.Fatalf("tops %d, lookups %d: top ratio 0.5 should give both", f.tops, f.lookups)
	}
	if rep.Requests != int64(f.tops+f.lookups) || rep.Ops["top"].Requests != int64(f.tops) || rep.Ops["lookup"].Requests != int64(f.lookups) {
		t.Errorf("report: %d requests, ops %v; server: %d tops, %d lookups", rep.Requests, rep.Ops, f.tops, f.lookups)
	}
}

func TestJSONReportOnStdout(t *testing.T) {
	f := newFakeAPI()
	srv := f.start(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"submit", "--url", srv.URL, "--rate", "500", "--duration", "200ms", "--warmup", "50ms",
		"--connections", "2", "--json", "-"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("stdout is not only JSON: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"mode", "target_rate", "duration_s", "requests", "requests_per_s", "scores_per_s",
		"errors", "status", "latency_ms", "client_cpu_cores", "client_cpu_s", "missed_sends", "seed"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
	if m["mode"] != "submit" || m["target_rate"] != 500.0 || m["duration_s"] != 0.2 {
		t.Errorf("mode %v, target_rate %v, duration_s %v", m["mode"], m["target_rate"], m["duration_s"])
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("latency_ms.%s = %v, want a positive number", k, lat[k])
		}
	}
	if st, _ := m["status"].(map[string]any); st["200"] != m["requests"] {
		t.Errorf("status %v for %v requests", m["status"], m["requests"])
	}
}

func TestInterruptReportsWhatWasMeasured(t *testing.T) {
	for _, rate := range []float64{0, 1000} {
		t.Run(fmt.Sprintf("rate=%g", rate), func(t *testing.T) {
			f := newFakeAPI()
			srv := f.start(t)
			cfg := testConfig(ModeSubmit, srv.URL)
			cfg.Rate = rate
			cfg.Duration = time.Minute
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			served := f.submits
			f.mu.Unlock()
			if !rep.Interrupted || rep.DurationS <= 0 || rep.DurationS > 5 {
				t.Errorf("interrupted %v after %g s, want true after about 0.3 s", rep.Interrupted, rep.DurationS)
			}
			if rep.Requests == 0 || rep.Requests != int64(served) {
				t.Errorf("report counts %d requests, server got %d", rep.Requests, served)
			}
		})
	}
}

func TestTransportErrorsAreCounted(t *testing.T) {
	f := newFakeAPI()
	srv := f.start(t)
	url := srv.URL
	srv.Close() // nothing listens there any more
	cfg := testConfig(ModeSubmit, url)
	cfg.Create = false
	cfg.Duration = 100 * time.Millisecond
	rep := run(t, cfg)
	if rep.Requests == 0 || rep.Errors["connect"] != rep.Requests || rep.ErrorsTotal != rep.Requests {
		t.Errorf("%d requests, errors %v (total %d): want every request a connect error", rep.Requests, rep.Errors, rep.ErrorsTotal)
	}
	if len(rep.Status) != 0 {
		t.Errorf("status %v without any response", rep.Status)
	}

	// Setup failures are run failures.
	cfg.Create = true
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Error("creating leaderboards on a dead server should fail the run")
	}
}

func TestFloor(t *testing.T) {
	if _, err := os.Executable(); err != nil {
		t.Skipf("no executable to re-exec: %v", err)
	}
	t.Setenv(floorChildEnv, "1")
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			cfg := DefaultConfig(ModeFloor)
			cfg.Method = method
			cfg.Duration = 300 * time.Millisecond
			cfg.Warmup = 50 * time.Millisecond
			cfg.Connections = 2
			var log bytes.Buffer
			cfg.Log = &log
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, log.String())
			}
			if rep.Requests == 0 || rep.Status["200"] != rep.Requests || rep.ErrorsTotal != 0 {
				t.Errorf("%d requests, status %v, errors %v", rep.Requests, rep.Status, rep.Errors)
			}
			if rep.Method != method || !strings.HasPrefix(rep.URL, "http://127.0.0.1:") {
				t.Errorf("method %q url %q", rep.Method, rep.URL)
			}
		})
	}
}

func TestFloorServerMode(t *testing.T) {
	// The hidden mode on its own: bad flags are usage errors; a short lifetime ends it.
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"floor-server", "--nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("floor-server --nope: exit %d, want 2", code)
	}
	stdout.Reset()
	code := Main([]string{"floor-server", "--addr", "127.0.0.1:0", "--max-lifetime", "50ms"}, &stdout, &stderr)
	if code != 0 || !strings.HasPrefix(stdout.String(), "127.0.0.1:") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestUsageAndBadFlags(t *testing.T) {
	bad := [][]string{
		nil,
		{"bogus"},
		{"submit", "--nope"},
		{"submit", "--rate", "fast"},
		{"submit", "--rate", "-1"},
		{"submit", "--connections", "0"},
		{"submit", "--duration", "0s"},
		{"submit", "--batch", "1001"},
		{"submit", "--participants", "0"},
		{"submit", "--url", "ftp://example.com"},
		{"submit", "--prefix", "bad/prefix"},
		{"submit", "extra-argument"},
		{"read", "--top-ratio", "1.5"},
		{"read", "--seed-participants", "0", "--top-ratio", "0.5"},
		{"read", "--batch", "10"}, // submit-only flag
		{"floor", "--method", "PUT"},
		{"floor", "--url", "http://127.0.0.1:1"}, // floor starts its own server
	}
	for _, args := range bad {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != 2 {
			t.Errorf("Main(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if stderr.Len() == 0 {
			t.Errorf("Main(%q) printed nothing on stderr", args)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"submit", "read", "floor", "--rate", "-seed-participants", "-top-ratio", "-method", "LEADERBOARD_BENCH_"} {
		if !strings.Contains(stdout.String(), strings.TrimLeft(want, "-")) {
			t.Errorf("usage lacks %q", want)
		}
	}
	stderr.Reset()
	if code := Main([]string{"read", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "top-ratio") {
		t.Errorf("read -h: exit %d, stderr %q", code, stderr.String())
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("LEADERBOARD_BENCH_RATE", "1234")
	t.Setenv("LEADERBOARD_BENCH_TOP_RATIO", "0.25")
	t.Setenv("LEADERBOARD_BENCH_CONNECTIONS", "7")
	t.Setenv("LEADERBOARD_BENCH_CREATE", "false")
	var stderr bytes.Buffer
	o, code, ok := parseArgs(ModeRead, []string{"--connections", "3"}, &stderr)
	if !ok {
		t.Fatalf("parseArgs failed with %d: %s", code, stderr.String())
	}
	c := o.cfg
	if c.Rate != 1234 || c.TopRatio != 0.25 || c.Create {
		t.Errorf("rate %g, top ratio %g, create %v: environment not applied", c.Rate, c.TopRatio, c.Create)
	}
	if c.Connections != 3 {
		t.Errorf("connections = %d, the command line must win over the environment", c.Connections)
	}

	t.Setenv("LEADERBOARD_BENCH_DURATION", "soon")
	if code := Main([]string{"read"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("bad LEADERBOARD_BENCH_DURATION: exit %d, want 2", code)
	}
}

func TestAppendPID(t *testing.T) {
	for _, n := range []int{0, 7, 42, 123456, 999_999_999_999_999} {
		if got, want := string(appendPID(nil, n)), fmt.Sprintf("p%015d", n); got != want {
			t.Errorf("appendPID(%d) = %q, want %q", n, got, want)
		}
	}
}
