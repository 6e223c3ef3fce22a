package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/server"
)

// startLeaderboardServer runs the real service in this process on a free port, with live updates
// flushed every 20 ms, and returns its base URL.
func startLeaderboardServer(t *testing.T) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = "" // no persistence: this test is not about it
	cfg.Addr = "127.0.0.1:0"
	cfg.SubmitRate = 0
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", t.TempDir(), 0, 0 // one address, many viewers; no tokens
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- server.Run(ctx, cfg, logger, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		})
		return "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server did not start within 10 s")
	}
	return ""
}

func viewersConfig(url string) Config {
	cfg := DefaultConfig(ModeViewers)
	cfg.URL = url
	cfg.Viewers = 20
	cfg.Participants = 2000
	cfg.Rate = 200
	cfg.TopRate = 50
	cfg.Duration = time.Second
	cfg.Warmup = 200 * time.Millisecond
	cfg.Connections = 4
	cfg.Seed = 42
	return cfg
}

// runViewersJSON runs `bench viewers` with args and returns its JSON report, decoded and as
// printed; a non-zero exit or a report that does not decode fails the test.
func runViewersJSON(t *testing.T, args ...string) (Report, []byte) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(stderr.String()) // the tool's progress lines say where a failed run went wrong
		}
	})
	if code := Main(append(append([]string{"viewers"}, args...), "--json", "-"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	return rep, stdout.Bytes()
}

// checkDelivery asserts what every healthy run must show; it never looks at how long things took.
func checkDelivery(t *testing.T, rep Report, viewers int) {
	t.Helper()
	v := rep.Viewers
	if v == nil {
		t.Fatal("no viewers section in the report")
	}
	if v.Connected != int64(viewers) || v.Subscribed != int64(viewers) || v.ConnectFailures != 0 {
		t.Errorf("connected %d, subscribed %d, failures %d: want all %d (samples %q)",
			v.Connected, v.Subscribed, v.ConnectFailures, viewers, v.ErrorSamples)
	}
	if v.ChainBreaks != 0 || v.Errors != 0 || v.Disconnects != 0 || v.ErrorsTotal != 0 || rep.ErrorsTotal != 0 {
		t.Errorf("chain breaks %d, error messages %d, disconnects %d, submit errors %v (samples %q)",
			v.ChainBreaks, v.Errors, v.Disconnects, rep.Errors, v.ErrorSamples)
	}
	if rep.Requests == 0 || v.Markers == 0 {
		t.Fatalf("%d submissions, %d markers in the window", rep.Requests, v.Markers)
	}
	top := v.Kinds["top"]
	if top.Observations == 0 || v.Observations < top.Observations || v.LatencyMS.Max <= 0 {
		t.Fatalf("top observations %d, all %d, latency %+v: the delivery histogram is empty", top.Observations, v.Observations, v.LatencyMS)
	}
	// Every marker lands in the top 100 and stays there for at least 0.3 s (see markerDwell; at
	// rank 1 and 50 markers/s, 2 s): each top viewer sees each one once (the ratio cannot exceed 1:
	// a viewer records a marker the first time only).
	if top.Observations > top.Viewers*v.Markers || v.TopSeenRatio < 0.95 {
		t.Errorf("top viewers made %d observations of %d markers (%d viewers), ratio %g",
			top.Observations, v.Markers, top.Viewers, v.TopSeenRatio)
	}
	if mr := v.MarkerRanks; mr.Count != v.Markers || mr.Min < 1 || mr.Max > int64(v.TopLimit) || mr.OutsideWindow != 0 {
		t.Errorf("%d markers landed at ranks %+v: want all %d inside the top %d", mr.Count, mr, v.Markers, v.TopLimit)
	}
	if v.UnackedObservations != 0 {
		t.Errorf("%d markers seen that were never acknowledged", v.UnackedObservations)
	}
	// Each observation also has the kernel's arrival time, which is never after the moment the
	// viewer parsed the frame: the arrival quantiles cannot exceed the delivery ones.
	if a := v.ArrivalLatencyMS; a == nil || v.ArrivalObservations != v.Observations {
		t.Errorf("%d arrival observations (%+v) for %d deliveries", v.ArrivalObservations, a, v.Observations)
	} else if a.P50 > v.LatencyMS.P50 || a.P99 > v.LatencyMS.P99 || a.Max > v.LatencyMS.Max {
		t.Errorf("arrival %+v later than delivery %+v", *a, v.LatencyMS)
	}
	if v.Frames == 0 || v.Bytes == 0 {
		t.Errorf("frames %d, bytes %d", v.Frames, v.Bytes)
	}
	if !v.Server.MetricsOK || v.Server.Frames == 0 || v.Server.Connections != int64(viewers) ||
		v.Server.FramesPerWrite < 0.9 { // two counters read one after the other: a delta may be a frame short
		t.Errorf("server figures: %+v", v.Server)
	}
}

func TestViewersMixAgainstServer(t *testing.T) {
	url := startLeaderboardServer(t)
	rep, raw := runViewersJSON(t, "--url", url, "--viewers", "50", "--mix", "top=3,participant=1,around=1",
		"--participants", "2000", "--rate", "200", "--top-rate", "50", "--duration", "2s", "--warmup", "300ms",
		"--connections", "4", "--ramp", "1000", "--random-seed", "7")
	checkDelivery(t, rep, 50)
	v := rep.Viewers
	want := map[string]int64{"top": 30, "participant": 10, "around": 10}
	for k, n := range want {
		if v.SubscribedByKind[k] != n || v.Kinds[k].Viewers != n {
			t.Errorf("%s: %d subscribed (kinds %+v), want %d", k, v.SubscribedByKind[k], v.Kinds[k], n)
		}
	}
	// Bottom placement (the default): pads mk-0..mk-99 first, then the measured markers.
	if rep.SeededParticipants != 2000 || v.BoardParticipants != 2000 || v.MarkerBase != 100 || v.Pads != 100 {
		t.Errorf("seeded %d, board %d, marker base %d, pads %d", rep.SeededParticipants, v.BoardParticipants, v.MarkerBase, v.Pads)
	}
	if v.MarkerRank != "bottom" || v.MarkerLowestRank != 86 || v.MarkerRanks.P50 != 86 {
		t.Errorf("marker rank %q aimed at %d, landed at %+v: want bottom, 86 (100 - 50/s x 0.3 s + 1)",
			v.MarkerRank, v.MarkerLowestRank, v.MarkerRanks)
	}
	if rep.Ops["marker"].Requests == 0 || rep.Ops["submit"].Requests == 0 {
		t.Errorf("ops %+v: want both markers and random submissions", rep.Ops)
	}
	// The raw JSON has the documented keys.
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	vm, _ := m["viewers"].(map[string]any)
	for _, k := range []string{"connected", "latency_ms", "frames_per_s", "mb_per_s", "bytes_per_frame", "chain_breaks", "resyncs",
		"errors", "server", "kinds", "top_seen_ratio", "marker_rank", "marker_lowest_rank", "pads", "marker_ranks"} {
		if _, ok := vm[k]; !ok {
			t.Errorf("JSON viewers section lacks %q", k)
		}
	}

	// A second run against the same board: no seeding, its pads and markers take ids above the
	// first run's and go above its pads.
	cfg := viewersConfig(url)
	cfg.Duration = 500 * time.Millisecond
	rep2, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.SeededParticipants != 0 || rep2.Viewers.MarkerBase < v.MarkerBase+v.MarkersAcked+100 {
		t.Errorf("second run: seeded %d, marker base %d, want 0 and at least %d",
			rep2.SeededParticipants, rep2.Viewers.MarkerBase, v.MarkerBase+v.MarkersAcked+100)
	}
	checkDelivery(t, rep2, 20)
	// A third, at rank 1: its markers still go above everything.
	cfg.MarkerRank = "top"
	rep3, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep3.Viewers.MarkerBase < rep2.Viewers.MarkerBase+rep2.Viewers.MarkersAcked || rep3.Viewers.MarkerRanks.P50 != 1 {
		t.Errorf("third run: marker base %d after %d, ranks %+v",
			rep3.Viewers.MarkerBase, rep2.Viewers.MarkerBase+rep2.Viewers.MarkersAcked, rep3.Viewers.MarkerRanks)
	}
	checkDelivery(t, rep3, 20)

	var text bytes.Buffer
	if err := rep2.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"viewers:", "delivery ms:", "ack ms:", "placement:   bottom: aimed at rank 86 of the top 100 (after 100 pads)",
		"frames:", "bytes each", "chain breaks", "server cpu:", "client cpu:"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}
}

// TestViewersMarkerRank runs each placement against its own board: markers land where asked,
// every top viewer still sees every one, and frames at the bottom are a fraction of those at rank 1
// (which carry the whole window).
func TestViewersMarkerRank(t *testing.T) {
	url := startLeaderboardServer(t)
	reps := map[string]Report{}
	for _, place := range []string{"top", "bottom", "random"} {
		cfg := viewersConfig(url)
		cfg.Leaderboard = "rank-" + place
		cfg.MarkerRank = place
		cfg.Duration = 1500 * time.Millisecond
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", place, err)
		}
		checkDelivery(t, rep, 20)
		reps[place] = rep
		v := rep.Viewers
		t.Logf("%s: aimed at %d, landed %+v, %d frames, %.0f bytes per frame, delivery p50 %.3f ms",
			place, v.MarkerLowestRank, v.MarkerRanks, v.Frames, v.BytesPerFrame, v.LatencyMS.P50)
		if v.MarkerRank != place || v.BytesPerFrame <= 0 {
			t.Errorf("%s: report says marker rank %q, %g bytes per frame", place, v.MarkerRank, v.BytesPerFrame)
		}
	}
	// 50 markers/s x 0.3 s: bottom markers enter at rank 100 - 15 + 1 and stay for 15 arrivals.
	top, bottom, random := reps["top"].Viewers, reps["bottom"].Viewers, reps["random"].Viewers
	if top.Pads != 0 || top.MarkerLowestRank != 1 || top.MarkerRanks.P50 != 1 {
		t.Errorf("top: %d pads, aimed at %d, landed at %+v", top.Pads, top.MarkerLowestRank, top.MarkerRanks)
	}
	if bottom.Pads != 100 || bottom.MarkerLowestRank != 86 || bottom.MarkerRanks.P50 != 86 || bottom.MarkerRanks.Min < 86 {
		t.Errorf("bottom: %d pads, aimed at %d, landed at %+v", bottom.Pads, bottom.MarkerLowestRank, bottom.MarkerRanks)
	}
	if random.Pads != 100 || random.MarkerLowestRank != 86 || random.MarkerRanks.Max > 90 || random.MarkerRanks.Max-random.MarkerRanks.Min < 20 {
		t.Errorf("random: %d pads, aimed at 1..%d, landed at %+v", random.Pads, random.MarkerLowestRank, random.MarkerRanks)
	}
	// A frame at rank 1 carries all 100 entries, at the bottom the 15 that shift (~100 bytes each).
	if bottom.BytesPerFrame*3 > top.BytesPerFrame {
		t.Errorf("bytes per frame: bottom %.0f, top %.0f: want bottom frames under a third of top ones",
			bottom.BytesPerFrame, top.BytesPerFrame)
	}
}

func TestMarkerPlan(t *testing.T) {
	for _, c := range []struct {
		limit int
		rate  float64
		want  int
	}{{100, 100, 71}, {100, 50, 86}, {100, 1, 100}, {100, 3.4, 99}, {10, 1000, 1}, {1, 5, 1}} {
		if got := lowestMarkerRank(c.limit, c.rate); got != c.want {
			t.Errorf("lowestMarkerRank(%d, %g) = %d, want %d", c.limit, c.rate, got, c.want)
		}
	}

	cfg := DefaultConfig(ModeViewers)
	cfg.TopLimit, cfg.TopRate, cfg.Warmup, cfg.Duration = 10, 10, 0, 10*time.Second // lowest rank 8, 101 markers
	p := newMarkerPlan(cfg, 5)
	if p.first != 5 || p.base != 15 || len(p.pads) != 10 || p.lowest != 8 {
		t.Fatalf("plan %+v", p)
	}
	// Pads are above markerScore0 + every id of the run, best first, a run's worth of markers apart.
	if p.pads[9] <= markerScore0+15+101 || p.pads[0]-p.pads[1] <= 101 || !slices.IsSortedFunc(p.pads, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("pads %v", p.pads)
	}
	// Bottom: each marker one above the previous, at rank 8, below the pad at rank 7.
	for i := range 101 {
		s := p.score(nil, p.base+int64(i))
		if s != p.pads[7]+1+int64(i) || p.window[7] != s || p.window[6] != p.pads[6] || uint64(s) > p.maxScore {
			t.Fatalf("marker %d: score %d, window %v", i, s, p.window)
		}
	}

	// Random: markers at ranks 1..8 of the client's copy, which stays sorted; rank 1 goes above all.
	cfg.MarkerRank = "random"
	p = newMarkerPlan(cfg, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 101 {
		s := p.score(rng, p.base+int64(i))
		r := slices.Index(p.window, s) + 1
		if r < 1 || r > 8 || uint64(s) > p.maxScore || !slices.IsSortedFunc(p.window, func(a, b int64) int { return int(b - a) }) {
			t.Fatalf("marker %d: score %d at rank %d, window %v", i, s, r, p.window)
		}
	}

	cfg.MarkerRank = "top"
	p = newMarkerPlan(cfg, 7)
	if p.base != 7 || p.pads != nil || p.score(nil, 9) != markerScore0+9 {
		t.Errorf("top plan %+v", p)
	}

	rs := rankStats([]int64{3, 1, 120, 2, 2}, 100)
	if rs != (RankStats{Count: 5, Min: 1, P50: 2, Max: 120, OutsideWindow: 1}) {
		t.Errorf("rankStats: %+v", rs)
	}
}

func TestViewersIdleMemoryPerConnection(t *testing.T) {
	url := startLeaderboardServer(t)
	cfg := viewersConfig(url)
	cfg.Idle = true
	cfg.Duration = 300 * time.Millisecond
	cfg.Mix = "top=1,around=1"
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Viewers
	if v.Subscribed != 20 || rep.Requests != 0 || v.Markers != 0 {
		t.Errorf("subscribed %d, submissions %d, markers %d: want 20, 0, 0", v.Subscribed, rep.Requests, v.Markers)
	}
	sv := v.Server
	if !sv.MetricsOK || sv.MemoryPerConnectionBytes == nil || sv.HeapPerConnectionBytes == nil ||
		sv.StackPerConnectionBytes == nil || sv.RSSBeforeBytes <= 0 || sv.Connections != 20 {
		t.Errorf("server memory figures missing: %+v", sv)
	}
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "bytes per connection") {
		t.Errorf("text report lacks the memory per connection:\n%s", text.String())
	}
}

func TestViewersInChildProcesses(t *testing.T) {
	if _, err := os.Executable(); err != nil {
		t.Skipf("no executable to re-exec: %v", err)
	}
	t.Setenv(floorChildEnv, "1") // the children are this test binary, see TestMain
	url := startLeaderboardServer(t)
	cfg := viewersConfig(url)
	cfg.Procs = 2
	cfg.Viewers = 21
	cfg.Mix = "top=2,participant=1"
	var logbuf bytes.Buffer
	cfg.Log = &logbuf
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, logbuf.String())
	}
	checkDelivery(t, rep, 21)
	if rep.Viewers.Procs != 2 || rep.Viewers.SubscribedByKind["top"] != 14 || rep.Viewers.SubscribedByKind["participant"] != 7 {
		t.Errorf("procs %d, kinds %v", rep.Viewers.Procs, rep.Viewers.SubscribedByKind)
	}
	if t.Failed() {
		t.Log(logbuf.String())
	}
}

func TestViewersResumeAfterDisconnect(t *testing.T) {
	url := startLeaderboardServer(t)
	cfg := viewersConfig(url)
	cfg.Viewers = 10
	cfg.Duration = 1500 * time.Millisecond
	dropped := make(chan int, 1)
	viewersReadyHook = func(s viewerSet) {
		g := s.(*localSet).g
		go func() {
			time.Sleep(cfg.Warmup + 300*time.Millisecond)
			n := 0
			for _, v := range g.viewers[:3] {
				v.mu.Lock()
				if v.conn != nil {
					_ = v.conn.NetConn().Close() // as if the network dropped it
					n++
				}
				v.mu.Unlock()
			}
			dropped <- n
		}()
	}
	t.Cleanup(func() { viewersReadyHook = nil })
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Viewers
	if n := <-dropped; n != 3 {
		t.Fatalf("dropped %d connections, want 3", n)
	}
	if v.Disconnects != 3 || v.Reconnects != 3 {
		t.Errorf("disconnects %d, reconnects %d: want 3 and 3 (samples %q)", v.Disconnects, v.Reconnects, v.ErrorSamples)
	}
	// Resumed with since_version: the chain continues, nothing is missed.
	if v.ChainBreaks != 0 || v.Errors != 0 || v.Resyncs != 0 {
		t.Errorf("chain breaks %d, errors %d, resyncs %d after resuming", v.ChainBreaks, v.Errors, v.Resyncs)
	}
	if v.TopSeenRatio < 0.95 || v.Subscriptions < 13 {
		t.Errorf("top seen ratio %g, %d subscriptions (want 10 + 3 resumes)", v.TopSeenRatio, v.Subscriptions)
	}
}

func TestViewersInterrupt(t *testing.T) {
	url := startLeaderboardServer(t)
	cfg := viewersConfig(url)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || time.Since(start) > 20*time.Second || rep.Viewers.Connected != 20 {
		t.Errorf("interrupted %v after %s, %d connected", rep.Interrupted, time.Since(start), rep.Viewers.Connected)
	}
}

func TestViewersBadFlags(t *testing.T) {
	bad := [][]string{
		{"viewers", "--viewers", "0"},
		{"viewers", "--mix", "top=1,bottom=2"},
		{"viewers", "--mix", "top=0"},
		{"viewers", "--mix", "top=x"},
		{"viewers", "--top-limit", "1001"},
		{"viewers", "--marker-rank", "middle"},
		{"viewers", "--marker-rank", ""},
		{"viewers", "--radius", "51"},
		{"viewers", "--rate", "0"},
		{"viewers", "--rate", "10", "--top-rate", "20"},
		{"viewers", "--procs", "0"},
		{"viewers", "--viewers", "2", "--procs", "3"},
		{"viewers", "--source-ips", "127.0.0.9..127.0.0.1"},
		{"viewers", "--source-ips", "nope"},
		{"viewers", "--url", "http://10.1.2.3:8080"}, // loopback source addresses cannot reach it
		{"viewers", "--leaderboard", "a/b"},
		{"viewers", "--leaderboards", "2"}, // submit/read only
		{"viewers", "--seed", "42"},        // --seed is the seeding switch here
	}
	for _, args := range bad {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != 2 {
			t.Errorf("Main(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	// Accepted: idle needs no rate; a remote URL with the kernel's choice of source address.
	for _, args := range [][]string{
		{"--marker-rank", "top"},
		{"--marker-rank", "bottom"},
		{"--idle", "--rate", "0"},
		{"--url", "http://10.1.2.3:8080", "--source-ips", ""},
		{"--seed=false", "--random-seed", "9"},
	} {
		var stderr bytes.Buffer
		if _, code, ok := parseArgs(ModeViewers, args, &stderr); !ok {
			t.Errorf("parseArgs(%q) failed with %d: %s", args, code, stderr.String())
		}
	}
	t.Setenv("LEADERBOARD_BENCH_VIEWERS", "123")
	t.Setenv("LEADERBOARD_BENCH_TOP_RATE", "7")
	t.Setenv("LEADERBOARD_BENCH_MARKER_RANK", "random")
	var stderr bytes.Buffer
	o, _, ok := parseArgs(ModeViewers, nil, &stderr)
	if !ok || o.cfg.Viewers != 123 || o.cfg.TopRate != 7 || o.cfg.MarkerRank != "random" || !o.cfg.SeedBoard || o.cfg.Participants != 100_000 {
		t.Errorf("environment: %+v (%s)", o.cfg, stderr.String())
	}
}

func TestMixCycleAndSourceIPs(t *testing.T) {
	mix, err := parseMix("top=8, participant=1,around=1")
	if err != nil {
		t.Fatal(err)
	}
	cycle := mixCycle(mix)
	var counts [numKinds]int
	for _, k := range cycle {
		counts[k]++
	}
	if len(cycle) != 10 || counts != [numKinds]int{8, 1, 1} {
		t.Errorf("cycle %v", cycle)
	}
	if mix, _ := parseMix("top=4,around=2"); !slices.Equal(mixCycle(mix), []int{kindTop, kindAround, kindTop}) {
		t.Errorf("top=4,around=2 gives cycle %v, want [top around top]", mixCycle(mix))
	}

	ips, err := parseSourceIPs("127.0.0.1..127.0.0.16")
	if err != nil || len(ips) != 16 || !ips[15].Equal(net.ParseIP("127.0.0.16")) {
		t.Errorf("range: %v %v", ips, err)
	}
	ips, err = parseSourceIPs("127.0.0.255..127.0.1.1, 127.0.2.2")
	if err != nil || len(ips) != 4 || !ips[1].Equal(net.ParseIP("127.0.1.0")) {
		t.Errorf("range over a byte boundary: %v %v", ips, err)
	}
	if _, err := parseSourceIPs("127.0.0.1,10.0.0.1"); err == nil {
		t.Error("mixing loopback and other addresses was accepted")
	}
	if ips, err := parseSourceIPs(""); err != nil || ips != nil {
		t.Errorf("empty: %v %v", ips, err)
	}
}

func TestFrameScanning(t *testing.T) {
	g := &viewerGroup{cfg: groupConfig{MarkerBase: 10}, acks: new(ackTable)}
	g.setWindow(time.Unix(0, 1000), time.Unix(0, 1<<62))
	g.acks.set(0, 5000) // mk-10
	g.acks.set(2, 500)  // mk-12, acknowledged before the window: not measured
	g.acks.set(3, 5000) // mk-13, named only in a display name below: not seen
	v := &viewer{g: g, kind: kindTop}
	g.ready.Add(1) // the snapshot marks the viewer ready
	snap := []byte(`{"type":"snapshot","id":"v","version":7,"offset":0,"size":2,"entries":[` +
		`{"rank":1,"participant_id":"mk-9","score":1000000000009,"achieved_at":1},` +
		`{"rank":2,"participant_id":"p000000000000001","score":5,"achieved_at":1}]}`)
	v.onFrame(nil, snap, 2000)
	if v.version != 7 || !v.synced || !v.gotSnapshot {
		t.Fatalf("after snapshot: version %d synced %v", v.version, v.synced)
	}
	upd := []byte(`{"type":"update","id":"v","prev_version":7,"version":9,"offset":0,"size":3,"changes":[` +
		`{"rank":1,"participant_id":"mk-12","score":1000000000012,"achieved_at":1},` +
		`{"rank":2,"participant_id":"mk-11","score":1000000000011,"achieved_at":1},` +
		`{"rank":3,"participant_id":"mk-10","score":1000000000010,"achieved_at":1},` +
		`{"rank":4,"participant_id":"mk-1x","score":1,"achieved_at":1,"display_name":"mk-13"}]}`)
	v.onFrame(nil, upd, 3_000_000)
	if v.version != 9 || v.st.chainBreaks != 0 {
		t.Fatalf("version %d, chain breaks %d", v.version, v.st.chainBreaks)
	}
	// mk-10 recorded (3 ms - 5 µs), mk-12 ignored (warmup), mk-11 pending (no ack yet).
	if len(v.pending) != 1 || v.pending[0].idx != 1 {
		t.Errorf("pending %v, want mk-11", v.pending)
	}
	h := g.hist[kindTop][0].h
	if h == nil || h.TotalCount() != 1 || h.Max() < 2990 || h.Max() > 3000 {
		t.Fatalf("histogram after the update: %v", h)
	}
	g.acks.set(1, 4_000_000) // mk-11 acknowledged after it was seen: early, recorded as 0
	v.settle(true)
	if h.TotalCount() != 2 || v.st.early != 1 || len(v.pending) != 0 {
		t.Errorf("after settling: %d recorded, %d early, pending %v", h.TotalCount(), v.st.early, v.pending)
	}
	// Seen again in a later update: not a new observation.
	upd2 := bytes.Replace(upd, []byte(`"prev_version":7,"version":9`), []byte(`"prev_version":9,"version":10`), 1)
	v.onFrame(nil, upd2, 4_000_000)
	if h.TotalCount() != 2 {
		t.Errorf("a marker seen twice was recorded twice")
	}
	if _, ok := uintAfter([]byte(`{"prev_version":5}`), versionKey); ok {
		t.Error(`"version": matched inside "prev_version":`)
	}
}

func TestParseMetrics(t *testing.T) {
	body := []byte(`# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
leaderboard_live_frames_total{kind="a"} 3
leaderboard_live_frames_total{kind="b } x"} 4
go_memstats_heap_inuse_bytes 1.5e+06
unrelated_total 9
`)
	v := map[string]float64{}
	if !parseMetrics(body, v) {
		t.Fatal("nothing found")
	}
	if v["process_cpu_seconds_total"] != 12.5 || v["leaderboard_live_frames_total"] != 7 ||
		v["go_memstats_heap_inuse_bytes"] != 1.5e6 || len(v) != 3 {
		t.Errorf("parsed %v", v)
	}
}
