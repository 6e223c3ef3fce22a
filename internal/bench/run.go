package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Run executes the run described by cfg (start from DefaultConfig) and returns what was measured.
// It stops by itself after Warmup+Duration, or earlier when ctx is cancelled; the report then
// covers what was measured and has Interrupted set. An error means the run could not take place
// (invalid config, setup failed, floor server did not start).
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	var logw io.Writer = io.Discard
	if cfg.Log != nil {
		// The floor child's stderr is copied into the log from another goroutine.
		logw = &lockedWriter{w: cfg.Log}
	}

	if cfg.Mode == ModeViewers {
		return runViewers(ctx, cfg, logw)
	}

	rep := Report{
		Mode:        cfg.Mode,
		URL:         cfg.URL,
		Loop:        "closed",
		TargetRate:  cfg.Rate,
		Connections: cfg.Connections,
		WarmupS:     cfg.Warmup.Seconds(),
		Seed:        cfg.Seed,
	}
	if cfg.Rate > 0 {
		rep.Loop = "open"
	}

	base := strings.TrimRight(cfg.URL, "/")
	serverPID := 0
	if cfg.Mode == ModeFloor {
		child, err := startFloorServer(ctx, logw, "floor-server", "--body-bytes", strconv.Itoa(cfg.BodyBytes))
		if err != nil {
			return Report{}, err
		}
		defer child.stop()
		base = "http://" + child.addr
		serverPID = child.pid
		rep.URL = base
		rep.Method = cfg.Method
	}
	client, err := newClient(base, cfg)
	if err != nil {
		return Report{}, err
	}

	ids := boardIDs(cfg.Prefix, cfg.Leaderboards)
	var wl workload
	switch cfg.Mode {
	case ModeSubmit:
		rep.Leaderboards, rep.Participants, rep.Batch = cfg.Leaderboards, cfg.Participants, cfg.Batch
		if cfg.Create {
			if err := createBoards(ctx, client, base, cfg.Token, ids, logw); err != nil {
				return Report{}, err
			}
		}
		wl = submitWorkload(base, ids, cfg.Participants, cfg.Batch)
	case ModeRead:
		rep.Leaderboards, rep.TopRatio = cfg.Leaderboards, cfg.TopRatio
		if cfg.Create {
			if err := createBoards(ctx, client, base, cfg.Token, ids, logw); err != nil {
				return Report{}, err
			}
		}
		seedStart := time.Now()
		seeded, itemErrs, err := seedBoards(ctx, client, base, cfg, ids, logw)
		if err != nil {
			return Report{}, err
		}
		rep.SeededParticipants, rep.SeedItemErrors = seeded, itemErrs
		rep.SeedDurationS = round3(time.Since(seedStart).Seconds())
		// Lookups are uniform over the participants the boards hold (p0..p<n-1>, as seeded by this
		// run or an earlier one), not only over those this run seeded: a run that seeds 1 on a board
		// of 1M must not ask for the same cached participant every time.
		lookupN := cfg.SeedParticipants
		if n := boardParticipants(ctx, client, base, cfg.Token, ids); n > lookupN {
			lookupN = n
		}
		rep.LookupParticipants = lookupN
		wl = readWorkload(base, ids, lookupN, cfg.TopRatio)
	case ModeFloor:
		wl = floorWorkload(base, cfg.Method)
	}

	loop := "closed loop"
	if cfg.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g req/s", cfg.Rate)
	}
	fmt.Fprintf(logw, "bench: %s against %s: %s, %d connections, warmup %s, duration %s\n",
		cfg.Mode, base, loop, cfg.Connections, cfg.Warmup, cfg.Duration)
	drive(ctx, cfg, client, wl, serverPID, &rep, nil)
	return rep, nil
}

func newClient(base string, cfg Config) (*fasthttp.HostClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return &fasthttp.HostClient{
		Addr:     addr,
		IsTLS:    u.Scheme == "https",
		Name:     "leaderboard-bench",
		MaxConns: cfg.Connections,
		// Workers = MaxConns and each has one request in flight, so nobody should wait for a
		// connection; if it ever happens, wait (bounded) rather than fail with ErrNoFreeConns.
		MaxConnWaitTimeout: cfg.Timeout,
		// No retries: a retried request would reach the server twice but be counted once.
		MaxIdemponentCallAttempts: 1,
	}, nil
}

// lockedWriter serializes writes to the progress log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runner holds what every worker of one run shares (read-only during the run).
type runner struct {
	cfg    Config
	client *fasthttp.HostClient
	wl     workload
	start  time.Time       // load starts (warmup included)
	window time.Time       // measured window starts (start + warmup)
	end    time.Time       // load stops being scheduled (window + duration)
	done   <-chan struct{} // closed at end or on interruption (closed loop stops on it)
	// interrupted is the caller's ctx.Done(): the open loop stops early only on it, so that its
	// schedule is not cut short by a timer that fired late.
	interrupted <-chan struct{}
}

// worker is one connection's goroutine and its private statistics: no lock on the hot path,
// everything is merged after the run.
type worker struct {
	id   int
	rng  *rand.Rand
	body []byte // request body buffer, reused
	uri  []byte // request URI buffer, reused

	hist    []*hdrhistogram.Histogram // latency per op, microseconds
	lag     *hdrhistogram.Histogram   // open loop: actual send time - intended send time
	opCount []int64

	// marker is the viewers mode's marker number of the request being built (-1: not a marker).
	marker int64

	status     [600]int64
	errs       [numErrKinds]int64
	requests   int64
	items      int64
	itemErrors int64
	warmup     int64
	missed     int64
}

// Transport error kinds (HTTP status errors are counted by status instead).
const (
	errTimeout = iota
	errConnect
	errClosed
	errNoFreeConns
	errOther
	numErrKinds
)

var errKindNames = [numErrKinds]string{"timeout", "connect", "closed", "no_free_conns", "other"}

func classifyErr(err error) int {
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return errNoFreeConns
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, syscall.ECONNREFUSED):
		return errConnect
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return errClosed
	}
	return errOther
}

// lagSigFigs: the send lag is a diagnostic, 2 significant digits keep its histogram small.
const lagSigFigs = 2

func newWorker(id int, seed uint64, ops int, open bool) *worker {
	w := &worker{
		id:      id,
		rng:     rand.New(rand.NewPCG(seed, uint64(id))),
		hist:    make([]*hdrhistogram.Histogram, ops),
		opCount: make([]int64, ops),
	}
	for i := range w.hist {
		w.hist[i] = newHist()
	}
	if open {
		w.lag = hdrhistogram.New(histMinUS, histMaxUS, lagSigFigs)
	}
	return w
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, histMinUS)
	us = min(us, histMaxUS)
	_ = h.RecordValue(us) // in range by construction
}

// drive runs the load phase and fills the measured fields of rep. onStart, when not nil, is told
// the schedule (load start, measured window start, end) before the first request leaves.
func drive(ctx context.Context, cfg Config, client *fasthttp.HostClient, wl workload, serverPID int, rep *Report,
	onStart func(start, window, end time.Time)) {
	start := time.Now()
	r := &runner{
		cfg:    cfg,
		client: client,
		wl:     wl,
		start:  start,
		window: start.Add(cfg.Warmup),
		end:    start.Add(cfg.Warmup + cfg.Duration),
	}
	rep.StartedAt = start.UTC().Format(time.RFC3339Nano)
	if onStart != nil {
		onStart(r.start, r.window, r.end)
	}

	runCtx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()
	r.done = runCtx.Done()
	r.interrupted = ctx.Done()
	stoppedAt := make(chan time.Time, 1)
	context.AfterFunc(runCtx, func() { stoppedAt <- time.Now() })

	// CPU is sampled when the measured window opens, so warmup (and connection setup) is excluded.
	cpuStart := make(chan cpuSample, 1)
	go func() {
		t := time.NewTimer(cfg.Warmup)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.done:
		}
		cpuStart <- takeCPUSample(serverPID)
	}()

	workers := make([]*worker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := newWorker(i, cfg.Seed, len(wl.ops), cfg.Rate > 0)
		workers[i] = w
		wg.Go(func() { r.work(w) })
	}
	wg.Wait()
	cpu0, cpu1 := <-cpuStart, takeCPUSample(serverPID)

	// The window ends at its planned end, or when the caller cancelled ctx before that.
	stop := r.end
	if ctx.Err() != nil {
		if t := <-stoppedAt; t.Before(r.end) {
			stop = t
			rep.Interrupted = true
		}
	}
	window := max(stop.Sub(r.window), 0)
	rep.DurationS = round3(window.Seconds())
	merge(workers, wl, rep, window)

	if wall := cpu1.wall.Sub(cpu0.wall).Seconds(); wall > 0 {
		self := (cpu1.self - cpu0.self).Seconds()
		rep.ClientCPUS = round3(self)
		rep.ClientCPUCores = round3(self / wall)
		if cpu0.serverOK && cpu1.serverOK {
			rep.ServerCPUCores = round3((cpu1.server - cpu0.server).Seconds() / wall)
		}
	}
}

// merge folds the per-worker statistics into rep.
func merge(workers []*worker, wl workload, rep *Report, window time.Duration) {
	total := newHist()
	ops := make([]*hdrhistogram.Histogram, len(wl.ops))
	opCount := make([]int64, len(wl.ops))
	for i := range ops {
		ops[i] = newHist()
	}
	var lag *hdrhistogram.Histogram
	var status [600]int64
	var errs [numErrKinds]int64
	for _, w := range workers {
		for i, h := range w.hist {
			ops[i].Merge(h)
			total.Merge(h)
			opCount[i] += w.opCount[i]
		}
		if w.lag != nil {
			if lag == nil {
				lag = hdrhistogram.New(histMinUS, histMaxUS, lagSigFigs)
			}
			lag.Merge(w.lag)
		}
		for code, n := range w.status {
			status[code] += n
		}
		for k, n := range w.errs {
			errs[k] += n
		}
		rep.Requests += w.requests
		rep.Scores += w.items
		rep.ItemErrors += w.itemErrors
		rep.WarmupRequests += w.warmup
		rep.MissedSends += w.missed
	}

	rep.Status = map[string]int64{}
	rep.Errors = map[string]int64{}
	for code, n := range status {
		if n == 0 {
			continue
		}
		rep.Status[strconv.Itoa(code)] = n
		if code < 200 || code > 299 {
			rep.Errors["http_"+strconv.Itoa(code)] = n
			rep.ErrorsTotal += n
		}
	}
	for k, n := range errs {
		if n > 0 {
			rep.Errors[errKindNames[k]] = n
			rep.ErrorsTotal += n
		}
	}

	rep.LatencyMS = latencyOf(total)
	if lag != nil {
		l := latencyOf(lag)
		rep.SendLagMS = &l
	}
	if len(wl.ops) > 1 {
		rep.Ops = map[string]OpReport{}
		for i, name := range wl.ops {
			rep.Ops[name] = OpReport{Requests: opCount[i], LatencyMS: latencyOf(ops[i])}
		}
	}
	if secs := window.Seconds(); secs > 0 {
		rep.RequestsPerS = round3(float64(rep.Requests) / secs)
		rep.ScoresPerS = round3(float64(rep.Scores) / secs)
	}
	if rep.Mode != ModeSubmit {
		// Only submissions carry scores (floor POST bodies are look-alikes, not scores).
		rep.Scores, rep.ScoresPerS = 0, 0
	}
}

func (r *runner) work(w *worker) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	// Method and headers are the same for every request of a worker: set them once.
	req.Header.SetMethod(r.wl.method)
	if r.wl.method == "POST" {
		req.Header.SetContentType("application/json")
	}
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	if r.cfg.Rate > 0 {
		r.openLoop(w, req, resp)
	} else {
		r.closedLoop(w, req, resp)
	}
}

func (r *runner) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *runner) wasInterrupted() bool {
	select {
	case <-r.interrupted:
		return true
	default:
		return false
	}
}

// closedLoop sends back-to-back; latency is measured from the actual send.
func (r *runner) closedLoop(w *worker, req *fasthttp.Request, resp *fasthttp.Response) {
	for !r.stopped() {
		op, items := r.wl.build(w, req)
		sent := time.Now()
		if !sent.Before(r.end) {
			return
		}
		r.send(w, req, resp, sent, !sent.Before(r.window), op, items)
	}
}

// sendGrace: a slot due just before the end of the window may leave a little after it because
// Go timers wake up late (see timerSlack); that is not the run falling behind, so it is still sent.
const sendGrace = 10 * time.Millisecond

// timerSlack is how late a Go timer routinely fires: the netpoller sleeps in whole milliseconds,
// so a worker sleeping until its slot wakes up to ~1 ms after it. Charging that to the server would
// add ~0.5 ms to every open-loop latency (measured on the 2-core dev box, floor at 5000 req/s:
// p50 0.64 ms instead of 0.17 ms).
// Waking precisely (nanosleep) costs a thread hand-off per request, which this tool cannot afford
// on a machine it shares with the server. So when a worker was idle at its slot, up to timerSlack
// of its wake-up lateness is not counted; lateness beyond it (a starved client) and all waiting
// behind a slow response (coordinated omission) still are. SendLagMS reports the raw lateness.
const timerSlack = time.Millisecond

// openLoop follows a fixed schedule: the run has one slot every 1/rate seconds and worker i owns
// slots i, i+C, i+2C, ... (C = connections), so together the workers send at the target rate.
// Latency is measured from the slot's intended time, so a slow response that delays the next sends
// is charged to those sends too (coordinated-omission correction, as wrk2 does).
func (r *runner) openLoop(w *worker, req *fasthttp.Request, resp *fasthttp.Response) {
	interval := float64(time.Second) / r.cfg.Rate
	step := r.cfg.Connections
	slotTime := func(slot int) time.Time { return r.start.Add(time.Duration(float64(slot) * interval)) }

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for slot := w.id; ; slot += step {
		intended := slotTime(slot)
		if !intended.Before(r.end) {
			return
		}
		op, items := r.wl.build(w, req)
		// Only an interruption stops the schedule early: every slot of the window is either sent
		// or counted as missed.
		wait := time.Until(intended)
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-r.interrupted:
				return
			case <-timer.C:
			}
		} else if r.wasInterrupted() {
			return
		}
		sent := time.Now()
		if !sent.Before(r.end.Add(sendGrace)) {
			// Still behind schedule when the window closed: the rest of this worker's slots
			// were due but never sent. Report them rather than hide them.
			w.missed += missedSlots(slot, step, r.end.Sub(r.start), interval, slotTime, r.end)
			return
		}
		lag := sent.Sub(intended)
		ref := intended
		if wait > 0 {
			ref = intended.Add(min(lag, timerSlack)) // idle worker: timer lateness is ours, not the server's
		}
		measured := !intended.Before(r.window)
		if measured {
			record(w.lag, lag)
		}
		r.send(w, req, resp, ref, measured, op, items)
	}
}

// missedSlots counts the slots slot, slot+step, slot+2*step, ... due before end, without
// visiting each of them: at a high --rate a worker that falls behind has billions left.
func missedSlots(slot, step int, window time.Duration, interval float64, slotTime func(int) time.Time, end time.Time) int64 {
	if !slotTime(slot).Before(end) {
		return 0
	}
	// n: the number of slots of the whole run due before end (slots 0..n-1), about window/interval;
	// slotTime rounds, so settle the estimate against it.
	n := int(math.Ceil(float64(window) / interval))
	for n > 0 && !slotTime(n-1).Before(end) {
		n--
	}
	for slotTime(n).Before(end) {
		n++
	}
	if n <= slot {
		return 0
	}
	return int64((n - slot + step - 1) / step)
}

var errorKey = []byte(`"error"`)

// send performs one request and, when it belongs to the measured window, records it with its
// latency counted from ref.
func (r *runner) send(w *worker, req *fasthttp.Request, resp *fasthttp.Response, ref time.Time, measured bool, op, items int) {
	err := r.client.DoTimeout(req, resp, r.cfg.Timeout)
	elapsed := time.Since(ref)
	if r.wl.after != nil {
		r.wl.after(w, op, resp, err)
	}
	if !measured {
		w.warmup++
		return
	}
	w.requests++
	w.opCount[op]++
	if err != nil {
		kind := classifyErr(err)
		w.errs[kind]++
		// A timeout is a (very) slow response: keep it in the latency tail. Other transport errors
		// are usually instant (refused, reset) and would flatter the latency.
		if kind == errTimeout {
			record(w.hist[op], elapsed)
		}
		return
	}
	record(w.hist[op], elapsed)
	code := resp.StatusCode()
	if code < 100 || code >= len(w.status) {
		w.errs[errOther]++
		return
	}
	w.status[code]++
	if code >= 200 && code <= 299 {
		// Only a request the server took carries its scores: a 503 (the audit
		// log's queue full) or a 429 delivered none of them.
		w.items += int64(items)
	}
	if r.wl.countItemErrors && code >= 200 && code <= 299 {
		// Per-item failures in a batch are {"error": {...}}; no other field of a result is named
		// "error", so counting the key is exact and much cheaper than decoding the body.
		w.itemErrors += int64(bytes.Count(resp.Body(), errorKey))
	}
}

// cpuSample is a point in time with the CPU consumed so far by this process and by the floor server.
type cpuSample struct {
	wall     time.Time
	self     time.Duration
	server   time.Duration
	serverOK bool
}

func takeCPUSample(serverPID int) cpuSample {
	s := cpuSample{wall: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if serverPID > 0 {
		s.server, s.serverOK = processCPU(serverPID)
	}
	return s
}

// processCPU reads utime+stime of another process from /proc (Linux); ok is false elsewhere.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may contain spaces; the fields after it start at state (field 3).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	// Clock ticks are USER_HZ, 100 on every Linux configuration that matters here.
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
