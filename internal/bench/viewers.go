package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The viewers mode: N WebSocket viewers subscribe to one leaderboard while submissions arrive at
// --rate; --top-rate of them per second are markers (see viewer.go) that land in the top N where
// --marker-rank says (see viewers_markers.go), so every top-N viewer gets them. The delay from a
// marker's HTTP acknowledgement to its arrival at each viewer is the figure of merit; frames,
// bytes and the server's CPU and memory (from its /metrics) put it in context.

func viewersFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Leaderboard, "leaderboard", c.Leaderboard, "the leaderboard watched and submitted to")
	fs.IntVar(&c.Viewers, "viewers", c.Viewers, "WebSocket connections, one subscription each")
	fs.StringVar(&c.Mix, "mix", c.Mix, "subscription kinds and their weights, e.g. top=8,participant=1,around=1")
	fs.IntVar(&c.TopLimit, "top-limit", c.TopLimit, "limit of top subscriptions (1..1000)")
	fs.IntVar(&c.Radius, "radius", c.Radius, "radius of around subscriptions (0..50)")
	fs.IntVar(&c.Participants, "participants", c.Participants, "board size: participants p%015d in [0, n) are seeded, watched and submitted for")
	fs.BoolVar(&c.SeedBoard, "seed", c.SeedBoard, "seed the board through scores:batch first when it has fewer than --participants")
	fs.Uint64Var(&c.Seed, "random-seed", c.Seed, "random seed; 0 = from the clock (the report shows the seed used)")
	fs.Float64Var(&c.TopRate, "top-rate", c.TopRate, "markers per second, part of --rate: submissions placed in the top N by --marker-rank,\nso every top viewer gets them (the rest: random participants, random scores)")
	fs.StringVar(&c.MarkerRank, "marker-rank", c.MarkerRank, "where markers land in the top N (N = --top-limit):\n"+
		"top: rank 1, every position shifts, so every update frame carries all N entries (the worst case);\n"+
		"bottom: rank N - ceil(top-rate x 0.3 s) + 1, the lowest from which a marker stays in the window\n"+
		"0.3 s (an arrival pushes out rank N), so frames carry only the ranks from there down;\n"+
		"random: a uniform rank from 1 to that one.\n"+
		"bottom and random first fill the top N with N pad markers, unmeasured, above every score on the board")
	fs.Float64Var(&c.Ramp, "ramp", c.Ramp, "viewer connections opened per second (all processes together); 0 = as fast as possible")
	fs.StringVar(&c.SourceIPs, "source-ips", c.SourceIPs, "local addresses the viewer connections are spread over: a..b ranges and/or commas\n(one address has ~28k ephemeral ports); \"\" = the kernel's choice (needed for a remote --url)")
	fs.IntVar(&c.Procs, "procs", c.Procs, "processes holding the viewers (each holds viewers/procs; mind the open-files limit per process)")
	fs.BoolVar(&c.Idle, "idle", c.Idle, "submit nothing: hold the subscribed viewers for --duration and report the server's memory per connection")
	fs.BoolVar(&c.Floor, "floor", c.Floor, "instead of --url, run against a trivial gws broadcaster started as a child process (no ranking, one\n"+
		"shared frame per flush written to every connection): the machine's floor for delivering these frames")
}

func (c Config) validateViewers() error {
	if !validID(c.Leaderboard) {
		return fmt.Errorf("--leaderboard %q is not a valid id (A-Z a-z 0-9 _ . : -, at most 128)", c.Leaderboard)
	}
	if c.Viewers < 1 {
		return errors.New("--viewers must be >= 1")
	}
	if _, err := parseMix(c.Mix); err != nil {
		return fmt.Errorf("--mix: %v", err)
	}
	if c.TopLimit < 1 || c.TopLimit > 1000 {
		return errors.New("--top-limit must be between 1 and 1000")
	}
	if c.Radius < 0 || c.Radius > 50 {
		return errors.New("--radius must be between 0 and 50")
	}
	if c.Participants < 1 {
		return errors.New("--participants must be >= 1")
	}
	if !c.Idle && c.Rate <= 0 {
		return errors.New("--rate must be > 0 (or use --idle)")
	}
	if c.TopRate < 0 || (!c.Idle && c.TopRate > c.Rate) {
		return errors.New("--top-rate must be between 0 and --rate")
	}
	if !slices.Contains(placements, c.MarkerRank) {
		return fmt.Errorf("--marker-rank must be top, bottom or random, not %q", c.MarkerRank)
	}
	if c.Ramp < 0 {
		return errors.New("--ramp must be >= 0")
	}
	if c.Procs < 1 || c.Procs > c.Viewers {
		return errors.New("--procs must be between 1 and --viewers")
	}
	ips, err := parseSourceIPs(c.SourceIPs)
	if err != nil {
		return fmt.Errorf("--source-ips: %v", err)
	}
	if len(ips) > 0 && ips[0].IsLoopback() && !c.Floor { // the floor listens on 127.0.0.1
		u, _ := url.Parse(c.URL) // valid: checked by Validate
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--source-ips are loopback addresses but --url %s is not: set --source-ips \"\" (or local addresses)", c.URL)
		}
	}
	return nil
}

type mixEntry struct{ kind, weight int }

// parseMix reads "top=8,participant=1,around=1" (a kind alone means weight 1).
func parseMix(s string) ([]mixEntry, error) {
	var out []mixEntry
	total := 0
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, "=")
		kind := -1
		for k, n := range kindNames {
			if strings.TrimSpace(name) == n {
				kind = k
			}
		}
		if kind < 0 {
			return nil, fmt.Errorf("unknown kind %q (top, participant, around)", name)
		}
		if seen[kind] {
			return nil, fmt.Errorf("kind %q given twice", name)
		}
		seen[kind] = true
		weight := 1
		if hasW {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 0 || n > 1_000_000 {
				return nil, fmt.Errorf("weight of %s must be an integer from 0 to 1000000, not %q", name, w)
			}
			weight = n
		}
		total += weight
		if weight > 0 {
			out = append(out, mixEntry{kind: kind, weight: weight})
		}
	}
	if total == 0 {
		return nil, errors.New("no kind with a positive weight")
	}
	return out, nil
}

// mixCycle spreads the kinds over a cycle as evenly as possible (smooth weighted round robin on
// the weights divided by their gcd): viewer i has kind cycle[i % len(cycle)], so any run of
// consecutive viewers has close to the asked proportions.
func mixCycle(mix []mixEntry) []int {
	g := 0
	for _, m := range mix {
		g = gcd(g, m.weight)
	}
	total := 0
	w := make([]int, len(mix))
	for i, m := range mix {
		w[i] = m.weight / g
		total += w[i]
	}
	cur := make([]int, len(mix))
	cycle := make([]int, 0, total)
	for range total {
		best := 0
		for i := range cur {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		cycle = append(cycle, mix[best].kind)
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maxSourceIPs bounds --source-ips ranges.
const maxSourceIPs = 65536

// parseSourceIPs reads "127.0.0.1..127.0.0.16,127.0.1.1": single addresses and inclusive IPv4 ranges.
func parseSourceIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if a, b, ok := strings.Cut(part, ".."); ok {
			lo, hi := net.ParseIP(strings.TrimSpace(a)).To4(), net.ParseIP(strings.TrimSpace(b)).To4()
			if lo == nil || hi == nil {
				return nil, fmt.Errorf("range %q: both ends must be IPv4 addresses", part)
			}
			from, to := binary.BigEndian.Uint32(lo), binary.BigEndian.Uint32(hi)
			if from > to {
				return nil, fmt.Errorf("range %q is empty", part)
			}
			if int(to-from)+1+len(out) > maxSourceIPs {
				return nil, fmt.Errorf("more than %d addresses", maxSourceIPs)
			}
			for x := from; ; x++ {
				ip := make(net.IP, 4)
				binary.BigEndian.PutUint32(ip, x)
				out = append(out, ip)
				if x == to {
					break
				}
			}
			continue
		}
		ip := net.ParseIP(part)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", part)
		}
		if len(out)+1 > maxSourceIPs {
			return nil, fmt.Errorf("more than %d addresses", maxSourceIPs)
		}
		out = append(out, ip)
	}
	loop := 0
	for _, ip := range out {
		if ip.IsLoopback() {
			loop++
		}
	}
	if loop != 0 && loop != len(out) {
		return nil, errors.New("mixes loopback and other addresses")
	}
	return out, nil
}

// wsURL turns the service's base URL into the subscribe endpoint of one leaderboard.
func wsURL(base, id string) string {
	u := base
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u + "/v1/leaderboards/" + id + "/subscribe"
}

// viewerSet is the viewers of a run: one group in this process, or groups in child processes.
type viewerSet interface {
	// waitReady waits until every viewer is subscribed or gave up.
	waitReady(ctx context.Context) (readyInfo, error)
	// setWindow tells the viewers the measured window (frames inside it are counted, markers
	// acknowledged inside it are measured).
	setWindow(start, end time.Time)
	// ack makes a marker's acknowledgement time known to the viewers.
	ack(idx, ns int64)
	// finish stops the viewers and returns what they saw.
	finish() (*groupResult, error)
	// close releases everything (children included); safe after finish and on failure.
	close()
}

// localSet runs the viewers in this process; they read the submitters' ack table directly.
type localSet struct {
	g       *viewerGroup
	timeout time.Duration
	logw    io.Writer
}

func (s *localSet) waitReady(ctx context.Context) (readyInfo, error) {
	return s.g.waitReady(ctx.Done(), s.timeout, s.logw, "")
}
func (s *localSet) setWindow(start, end time.Time) { s.g.setWindow(start, end) }
func (s *localSet) ack(int64, int64)               {} // shared table
func (s *localSet) finish() (*groupResult, error)  { return s.g.finish(), nil }
func (s *localSet) close()                         { s.g.stop() }

// readyTimeout is how long connecting may take: the ramp plus a margin.
func readyTimeout(cfg Config, viewers int, ramp float64) time.Duration {
	d := 2*cfg.Timeout + 30*time.Second
	if ramp > 0 {
		d += time.Duration(float64(viewers) / ramp * float64(time.Second))
	}
	return d
}

// groupConfigs splits the viewers over cfg.Procs groups.
func groupConfigs(cfg Config, base string, markerBase int64) []groupConfig {
	out := make([]groupConfig, cfg.Procs)
	offset := 0
	for i := range out {
		n := cfg.Viewers / cfg.Procs
		if i < cfg.Viewers%cfg.Procs {
			n++
		}
		out[i] = groupConfig{
			WSURL:        wsURL(base, cfg.Leaderboard),
			Token:        cfg.Token,
			Viewers:      n,
			Offset:       offset,
			Mix:          cfg.Mix,
			TopLimit:     cfg.TopLimit,
			Radius:       cfg.Radius,
			Participants: cfg.Participants,
			Ramp:         cfg.Ramp / float64(cfg.Procs),
			SourceIPs:    cfg.SourceIPs,
			Seed:         cfg.Seed,
			Timeout:      cfg.Timeout,
			MarkerBase:   markerBase,
		}
		offset += n
	}
	return out
}

// boardState is what the run needs to know about the leaderboard before it starts.
type boardState struct {
	Status       string  `json:"status"`
	SortOrder    string  `json:"sort_order"`
	MaxScore     *uint64 `json:"max_score"`
	Participants int64   `json:"total_participants"`
	TopScore     uint64  // 0 when empty
}

func readBoardState(ctx context.Context, client *fasthttp.HostClient, base string, cfg Config) (boardState, error) {
	var st boardState
	uri := base + "/v1/leaderboards/" + cfg.Leaderboard
	code, body, err := setupRequest(ctx, client, "GET", uri, cfg.Token, nil)
	if err == nil && code != fasthttp.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", uri, code, snippet(body))
	}
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	if err != nil {
		return st, err
	}
	var page struct {
		Entries []struct {
			Score uint64 `json:"score"`
		} `json:"entries"`
	}
	uri += "/rankings?limit=1"
	code, body, err = setupRequest(ctx, client, "GET", uri, cfg.Token, nil)
	if err == nil && code != fasthttp.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", uri, code, snippet(body))
	}
	if err == nil {
		err = json.Unmarshal(body, &page)
	}
	if err != nil {
		return st, err
	}
	if len(page.Entries) > 0 {
		st.TopScore = page.Entries[0].Score
	}
	return st, nil
}

// metricsSample is one scrape of the server's /metrics: the families the report uses, each summed
// over its labels.
type metricsSample struct {
	at time.Time
	ok bool
	v  map[string]float64
}

var wantedMetrics = []string{
	"leaderboard_live_websocket_connections",
	"leaderboard_live_frames_total",
	"leaderboard_live_frame_bytes_total",
	"leaderboard_live_resyncs_total",
	"leaderboard_live_websocket_writes_total",
	"leaderboard_live_websocket_frames_written_total",
	"leaderboard_live_updates_merged_total",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"go_memstats_heap_inuse_bytes",
	"go_memstats_stack_inuse_bytes",
}

func scrapeMetrics(client *fasthttp.HostClient, base, token string, timeout time.Duration) metricsSample {
	s := metricsSample{v: map[string]float64{}}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + "/metrics")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	err := client.DoTimeout(req, resp, timeout)
	s.at = time.Now()
	if err != nil || resp.StatusCode() != fasthttp.StatusOK {
		return s
	}
	s.ok = parseMetrics(resp.Body(), s.v)
	return s
}

// parseMetrics reads the Prometheus text format into v (wanted families only, summed over labels);
// false when none of them is there.
func parseMetrics(body []byte, v map[string]float64) bool {
	found := false
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		name, rest := string(line[:end]), line[end:]
		want := false
		for _, w := range wantedMetrics {
			if w == name {
				want = true
				break
			}
		}
		if !want {
			continue
		}
		if rest[0] == '{' {
			i := bytes.LastIndexByte(rest, '}')
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		}
		fields := strings.Fields(string(rest))
		if len(fields) == 0 {
			continue
		}
		x, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		v[name] += x
		found = true
	}
	return found
}

func (m metricsSample) delta(o metricsSample, name string) float64 { return o.v[name] - m.v[name] }

// wsFloorArgs are the flags of the floor child: the window the viewers watch and where the markers
// go (the floor keeps no ranking, so it is told the rank the tool aims at), and a lifetime that
// outlasts the run should the parent die without closing its stdin.
func wsFloorArgs(cfg Config) []string {
	life := cfg.Warmup + cfg.Duration + readyTimeout(cfg, cfg.Viewers, cfg.Ramp) + 10*time.Minute
	return []string{
		"--top-limit", strconv.Itoa(cfg.TopLimit),
		"--marker-rank", cfg.MarkerRank,
		"--top-rate", strconv.FormatFloat(cfg.TopRate, 'g', -1, 64),
		"--random-seed", strconv.FormatUint(cfg.Seed, 10),
		"--max-lifetime", life.String(),
	}
}

// markerSink is where marker acknowledgements go: the run's own table (to count them) and the
// viewers (for children, through their stdin). ranks keeps the rank each marker's response gave.
type markerSink struct {
	acks  *ackTable
	ranks *ackTable
	set   viewerSet
}

func (s *markerSink) ack(idx, ns int64) {
	s.acks.set(idx, ns)
	s.set.ack(idx, ns)
}

// Submission kinds of the viewers workload, in the order of its ops.
const (
	opSubmit = 0
	opMarker = 1
)

var rankKey = []byte(`"rank":`)

// viewersWorkload submits single scores; request c (in build order) is a marker when it crosses
// a multiple of rate/top-rate, so markers leave evenly at top-rate per second, with the score
// plan gives them. *built counts the requests built, from which the number of markers follows.
func viewersWorkload(base string, cfg Config, plan *markerPlan, sink *markerSink, built *atomic.Int64) workload {
	uri := []byte(base + "/v1/leaderboards/" + cfg.Leaderboard + "/scores")
	ratio := cfg.TopRate / cfg.Rate
	return workload{
		method: "POST",
		ops:    []string{"submit", "marker"},
		build: func(w *worker, req *fasthttp.Request) (int, int) {
			req.SetRequestURIBytes(uri)
			c := built.Add(1) - 1
			if m := markerIndex(c, ratio); markerIndex(c+1, ratio) > m {
				w.marker = m
				k := plan.base + m
				b := append(w.body[:0], `{"participant_id":"`+markerPrefix...)
				b = strconv.AppendInt(b, k, 10)
				b = append(b, `","score":`...)
				b = strconv.AppendInt(b, plan.score(w.rng, k), 10)
				w.body = append(b, '}')
				req.SetBodyRaw(w.body)
				return opMarker, 1
			}
			w.marker = -1
			w.body = appendScoreItem(w, w.body[:0], cfg.Participants)
			req.SetBodyRaw(w.body)
			return opSubmit, 1
		},
		after: func(w *worker, op int, resp *fasthttp.Response, err error) {
			if op != opMarker || err != nil {
				return
			}
			if code := resp.StatusCode(); code < 200 || code > 299 {
				return
			}
			sink.ack(w.marker, time.Now().UnixNano())
			if rank, ok := uintAfter(resp.Body(), rankKey); ok {
				sink.ranks.set(w.marker, int64(rank))
			}
		},
	}
}

// markerIndex is the number of markers among the first c requests.
func markerIndex(c int64, ratio float64) int64 { return int64(float64(c) * ratio) }

// viewersReadyHook, when set (by tests), sees the viewers once they are all subscribed.
var viewersReadyHook func(viewerSet)

// viewerDrain is how long the viewers keep reading after the last submission, so the last flush
// windows reach them.
const viewerDrain = time.Second

func runViewers(ctx context.Context, cfg Config, logw io.Writer) (Report, error) {
	if cfg.Floor {
		child, err := startFloorServer(ctx, logw, wsFloorMode, wsFloorArgs(cfg)...)
		if err != nil {
			return Report{}, err
		}
		defer child.stop()
		cfg.URL, cfg.Token = "http://"+child.addr, ""
		fmt.Fprintf(logw, "bench: the floor: %s (bench %s, pid %d), not the service\n", cfg.URL, wsFloorMode, child.pid)
	}
	rep := Report{
		Mode:        cfg.Mode,
		URL:         cfg.URL,
		Loop:        "open",
		TargetRate:  cfg.Rate,
		Connections: cfg.Connections,
		WarmupS:     cfg.Warmup.Seconds(),
		Seed:        cfg.Seed,
	}
	if cfg.Idle {
		rep.Loop, rep.TargetRate, rep.WarmupS = "idle", 0, 0
	}
	ips, _ := parseSourceIPs(cfg.SourceIPs)
	vr := &ViewersReport{
		Leaderboard:  cfg.Leaderboard,
		Idle:         cfg.Idle,
		Procs:        cfg.Procs,
		Mix:          cfg.Mix,
		TopLimit:     cfg.TopLimit,
		Radius:       cfg.Radius,
		Participants: cfg.Participants,
		Ramp:         cfg.Ramp,
		SourceIPs:    len(ips),
		Viewers:      cfg.Viewers,
		Floor:        cfg.Floor,
	}
	if !cfg.Idle {
		vr.TopRate = cfg.TopRate
	}
	rep.Viewers = vr

	base := strings.TrimRight(cfg.URL, "/")
	client, err := newClient(base, cfg)
	if err != nil {
		return Report{}, err
	}
	mcfg := cfg
	mcfg.Connections = 2
	metricsClient, _ := newClient(base, mcfg)
	scrape := func() metricsSample { return scrapeMetrics(metricsClient, base, cfg.Token, cfg.Timeout) }

	// Setup: the board exists, is seeded, and (bottom, random) its top N holds pads.
	ids := []string{cfg.Leaderboard}
	if cfg.Create {
		if err := createBoards(ctx, client, base, cfg.Token, ids, logw); err != nil {
			return Report{}, err
		}
	}
	st, err := readBoardState(ctx, client, base, cfg)
	if err != nil {
		return Report{}, fmt.Errorf("leaderboard %s: %w", cfg.Leaderboard, err)
	}
	if cfg.SeedBoard && st.Participants < int64(cfg.Participants) {
		seedCfg := cfg
		seedCfg.SeedParticipants = cfg.Participants
		seedStart := time.Now()
		seeded, itemErrs, err := seedBoards(ctx, client, base, seedCfg, ids, logw)
		if err != nil {
			return Report{}, err
		}
		rep.SeededParticipants, rep.SeedItemErrors = seeded, itemErrs
		rep.SeedDurationS = round3(time.Since(seedStart).Seconds())
		if st, err = readBoardState(ctx, client, base, cfg); err != nil {
			return Report{}, fmt.Errorf("leaderboard %s: %w", cfg.Leaderboard, err)
		}
	}
	vr.BoardParticipants = st.Participants
	// Every marker's score is at least markerScore0 plus its id, so the ids above the top score's
	// are free: this run's markers (and pads) start there.
	var firstID int64
	if st.TopScore >= markerScore0 {
		firstID = int64(st.TopScore-markerScore0) + 1
	}
	plan := newMarkerPlan(cfg, firstID)
	vr.MarkerBase = plan.base
	vr.MarkerRank = cfg.MarkerRank
	if !cfg.Idle && cfg.TopRate > 0 {
		vr.MarkerLowestRank = plan.lowest
		vr.Pads = len(plan.pads)
	}
	if !cfg.Idle {
		if st.Status != "active" {
			return Report{}, fmt.Errorf("leaderboard %s is %s: submissions need it active", cfg.Leaderboard, st.Status)
		}
		if cfg.TopRate > 0 {
			if st.SortOrder != "" && st.SortOrder != "desc" {
				return Report{}, fmt.Errorf("leaderboard %s sorts %s: markers need a descending board", cfg.Leaderboard, st.SortOrder)
			}
			if st.MaxScore != nil && *st.MaxScore < plan.maxScore {
				return Report{}, fmt.Errorf("leaderboard %s has max_score %d: markers need scores up to %d", cfg.Leaderboard, *st.MaxScore, plan.maxScore)
			}
		}
		// Before the viewers connect: pads are in their snapshots, not deliveries.
		if err := submitPads(ctx, client, base, cfg, plan, logw); err != nil {
			return Report{}, err
		}
	}

	// Viewers: connect and subscribe them all before any load.
	memBefore := scrape()
	acks := new(ackTable)
	gcfgs := groupConfigs(cfg, base, plan.base)
	var set viewerSet
	if cfg.Procs == 1 {
		g, err := newViewerGroup(gcfgs[0], acks)
		if err != nil {
			return Report{}, err
		}
		g.start()
		set = &localSet{g: g, timeout: readyTimeout(cfg, cfg.Viewers, cfg.Ramp), logw: logw}
	} else {
		cs, err := startViewerChildren(ctx, cfg, gcfgs, logw)
		if err != nil {
			return Report{}, err
		}
		set = cs
	}
	defer set.close()
	fmt.Fprintf(logw, "bench: connecting %d viewers to %s (%s) in %d process(es), ramp %g/s\n",
		cfg.Viewers, gcfgs[0].WSURL, cfg.Mix, cfg.Procs, cfg.Ramp)
	connectStart := time.Now()
	ri, err := set.waitReady(ctx)
	if err != nil {
		if errors.Is(err, errInterrupted) || ctx.Err() != nil {
			return Report{}, errors.New("interrupted while connecting the viewers")
		}
		return Report{}, err
	}
	vr.ConnectS = round3(time.Since(connectStart).Seconds())
	fmt.Fprintf(logw, "bench: %d viewers connected (%d failed), %d subscribed in %.3f s\n",
		ri.Connected, ri.Failed, ri.Subscribed, vr.ConnectS)
	memConnected := scrape()
	if viewersReadyHook != nil {
		viewersReadyHook(set)
	}

	var (
		m0, m1 metricsSample
		wall   time.Duration
		memEnd = memConnected
	)
	if cfg.Idle {
		fmt.Fprintf(logw, "bench: holding the viewers idle for %s\n", cfg.Duration)
		start := time.Now()
		end := start.Add(cfg.Duration)
		set.setWindow(start, end)
		rep.StartedAt = start.UTC().Format(time.RFC3339Nano)
		cpu0 := takeCPUSample(0)
		m0 = scrape()
		t := time.NewTimer(cfg.Duration)
		select {
		case <-t.C:
		case <-ctx.Done():
			rep.Interrupted = true
		}
		t.Stop()
		m1 = scrape()
		memEnd = m1
		stop := time.Now()
		if rep.Interrupted {
			set.setWindow(start, stop)
		}
		cpu1 := takeCPUSample(0)
		wall = stop.Sub(start)
		rep.DurationS = round3(wall.Seconds())
		if w := cpu1.wall.Sub(cpu0.wall).Seconds(); w > 0 {
			rep.ClientCPUS = round3((cpu1.self - cpu0.self).Seconds())
			rep.ClientCPUCores = round3(rep.ClientCPUS / w)
		}
	} else {
		var built atomic.Int64
		ranks := new(ackTable)
		sink := &markerSink{acks: acks, ranks: ranks, set: set}
		wl := viewersWorkload(base, cfg, plan, sink, &built)
		var windowStart time.Time
		sampled := make(chan [2]metricsSample, 1)
		onStart := func(start, window, end time.Time) {
			windowStart = window
			set.setWindow(window, end)
			// Server counters are read when the measured window opens and closes.
			go func() {
				var s [2]metricsSample
				for i, at := range []time.Time{window, end} {
					t := time.NewTimer(time.Until(at))
					select {
					case <-t.C:
					case <-ctx.Done():
					}
					t.Stop()
					s[i] = scrape()
				}
				sampled <- s
			}()
		}
		fmt.Fprintf(logw, "bench: viewers against %s: %g submissions/s (%g markers/s) over %d connections, warmup %s, duration %s\n",
			base, cfg.Rate, cfg.TopRate, cfg.Connections, cfg.Warmup, cfg.Duration)
		drive(ctx, cfg, client, wl, 0, &rep, onStart)
		if rep.Interrupted {
			set.setWindow(windowStart, time.Now())
		}
		s := <-sampled
		m0, m1 = s[0], s[1]
		wall = m1.at.Sub(m0.at)
		// Also after an interruption: the first Ctrl-C drains and reports, a second one kills.
		time.Sleep(viewerDrain)
		// Markers acknowledged inside the measured window, and the ranks they landed at.
		ws := windowStart.UnixNano()
		n := markerIndex(built.Load(), cfg.TopRate/cfg.Rate)
		var landed []int64
		for i := int64(0); i < n && i < maxMarkers; i++ {
			if ack := acks.get(i); ack != 0 {
				vr.MarkersAcked++
				if ack >= ws {
					vr.Markers++
					if r := ranks.get(i); r > 0 {
						landed = append(landed, r)
					}
				}
			}
		}
		vr.MarkerRanks = rankStats(landed, cfg.TopLimit)
		if rep.DurationS > 0 {
			vr.MarkersPerS = round3(float64(vr.Markers) / rep.DurationS)
		}
	}

	res, err := set.finish()
	if err != nil {
		return Report{}, err
	}
	fillViewersReport(&rep, vr, res, cfg)
	if cfg.Procs > 1 {
		// The tool's CPU is this process's plus the children's over the same window.
		rep.ClientCPUS = round3(rep.ClientCPUS + res.CPUS)
		if rep.DurationS > 0 {
			rep.ClientCPUCores = round3(rep.ClientCPUS / rep.DurationS)
		}
	}
	fillServerReport(&rep, vr, memBefore, memEnd, m0, m1, wall, ri.Subscribed)
	return rep, nil
}

// fillViewersReport turns the merged group results into the report.
func fillViewersReport(rep *Report, vr *ViewersReport, res *groupResult, cfg Config) {
	vr.Connected = res.Connected
	vr.ConnectFailures = res.ConnectFailures
	vr.SubscribedByKind = map[string]int64{}
	for k, n := range res.SubscribedByKind {
		vr.Subscribed += n
		if n > 0 {
			vr.SubscribedByKind[kindNames[k]] = n
		}
	}
	vr.Subscriptions = res.Subscriptions
	vr.Frames, vr.Bytes = res.Frames, res.Bytes
	if res.Frames > 0 {
		vr.BytesPerFrame = math.Round(float64(res.Bytes) / float64(res.Frames))
	}
	if rep.DurationS > 0 {
		vr.FramesPerS = round3(float64(res.Frames) / rep.DurationS)
		vr.MBPerS = round3(float64(res.Bytes) / 1e6 / rep.DurationS)
	}
	vr.Resyncs = res.Resyncs
	vr.Errors = res.Errors
	vr.ChainBreaks = res.ChainBreaks
	vr.Disconnects = res.Disconnects
	vr.Reconnects = res.Reconnects
	vr.ReconnectFailures = res.ReconnectFailures
	vr.ErrorsTotal = res.ConnectFailures + res.Errors + res.Disconnects
	vr.EarlyObservations = res.Early
	vr.UnackedObservations = res.Unacked
	vr.ErrorSamples = res.ErrorSamples
	sort.Strings(vr.ErrorSamples)

	total := newHist()
	vr.Kinds = map[string]KindReport{}
	for k, h := range res.hist {
		kr := KindReport{Viewers: res.SubscribedByKind[k]}
		if h != nil {
			total.Merge(h)
			kr.Observations = h.TotalCount()
			kr.LatencyMS = latencyOf(h)
		}
		if kr.Viewers > 0 || kr.Observations > 0 {
			if k == kindTop && !cfg.Idle && kr.Viewers > 0 && vr.Markers > 0 {
				kr.SeenRatio = round3(float64(kr.Observations) / float64(kr.Viewers*vr.Markers))
			}
			vr.Kinds[kindNames[k]] = kr
		}
	}
	vr.Observations = total.TotalCount()
	vr.LatencyMS = latencyOf(total)
	if res.arrival != nil && res.arrival.TotalCount() > 0 {
		vr.ArrivalObservations = res.arrival.TotalCount()
		l := latencyOf(res.arrival)
		vr.ArrivalLatencyMS = &l
	}
	if kr, ok := vr.Kinds["top"]; ok {
		vr.TopSeenRatio = kr.SeenRatio
	}
}

// fillServerReport computes the server's side from its /metrics: frames and CPU over the measured
// window (m0 to m1), memory per connection from before the viewers connected to memEnd.
func fillServerReport(rep *Report, vr *ViewersReport, memBefore, memEnd, m0, m1 metricsSample, wall time.Duration, conns int64) {
	sv := &vr.Server
	sv.MetricsOK = memBefore.ok && memEnd.ok && m0.ok && m1.ok
	if m1.ok {
		sv.Connections = int64(m1.v["leaderboard_live_websocket_connections"])
	}
	if m0.ok && m1.ok && wall > 0 {
		secs := wall.Seconds()
		sv.Frames = int64(m0.delta(m1, "leaderboard_live_frames_total"))
		sv.Bytes = int64(m0.delta(m1, "leaderboard_live_frame_bytes_total"))
		sv.FramesPerS = round3(float64(sv.Frames) / secs)
		sv.MBPerS = round3(float64(sv.Bytes) / 1e6 / secs)
		sv.Resyncs = int64(m0.delta(m1, "leaderboard_live_resyncs_total"))
		cpu := m0.delta(m1, "process_cpu_seconds_total")
		sv.CPUCores = round3(cpu / secs)
		rep.ServerCPUCores = sv.CPUCores
		sv.Merged = int64(m0.delta(m1, "leaderboard_live_updates_merged_total"))
		// frames_total counts updates handed to the connections' queues; a node that falls behind
		// writes fewer than that. The writes' own count (every frame type, when the server reports
		// it) bounds what was sent.
		// Queued minus merged is about nothing when almost every update was merged, and can
		// come out below nothing (the counters are read one after the other): the written
		// count is then the one to go by.
		sent := sv.Frames - sv.Merged
		if w := int64(m0.delta(m1, "leaderboard_live_websocket_frames_written_total")); w > 0 && (w < sent || sent <= 0) {
			sent = w
		}
		if sent > 0 {
			sv.CPUUSPerFrame = round3(cpu * 1e6 / float64(sent))
		}
		if w := m0.delta(m1, "leaderboard_live_websocket_writes_total"); w > 0 {
			sv.FramesPerWrite = round3(m0.delta(m1, "leaderboard_live_websocket_frames_written_total") / w)
		}
	}
	if memBefore.ok && memEnd.ok {
		sv.RSSBeforeBytes = int64(memBefore.v["process_resident_memory_bytes"])
		sv.RSSAfterBytes = int64(memEnd.v["process_resident_memory_bytes"])
		if conns > 0 {
			per := func(name string) *float64 {
				x := math.Round(memBefore.delta(memEnd, name) / float64(conns))
				return &x
			}
			sv.MemoryPerConnectionBytes = per("process_resident_memory_bytes")
			sv.HeapPerConnectionBytes = per("go_memstats_heap_inuse_bytes")
			sv.StackPerConnectionBytes = per("go_memstats_stack_inuse_bytes")
		}
	}
}
