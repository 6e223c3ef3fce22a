package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbhq/leaderboard/internal/wsframe"
)

// The WebSocket floor (hidden mode "ws-floor-server", started by `bench viewers --floor`): the
// cheapest broadcaster that still speaks enough of the service's API for the unchanged viewers
// tool to run against it. It keeps no ranking (nothing is sorted, no participant is stored): it
// remembers the markers (ids starting with markerPrefix) submitted in the current flush window,
// and every --flush-interval in which some arrived it builds ONE update frame, shaped and sized
// like the service's (the markers at the ranks they entered at, then the entries they push down
// to --top-limit), and writes those same bytes to every subscribed connection: the connections are
// split into GOMAXPROCS groups, one goroutine each, a plain loop of synchronous gws writes (a
// writer that falls behind gives each connection all the frames waiting, back to back, as the
// service's per-connection queues do). Set against it, what the real service costs above is the
// service; what the floor cannot do either is the machine.
//
// Requests it answers (any leaderboard id exists, is active, descending, without max_score):
//
//	POST /v1/leaderboards                      201, the leaderboard object
//	GET  /v1/leaderboards/{id}                 200, the leaderboard object (total_participants: batch items received)
//	GET  /v1/leaderboards/{id}/rankings        200, at most one entry: the best score submitted
//	POST /v1/leaderboards/{id}/scores          200, a submission result; 400 when participant_id or score is missing or bad
//	POST /v1/leaderboards/{id}/scores:batch    200, {"results":[]} (an error object per item it cannot read)
//	GET  /v1/leaderboards/{id}/subscribe       WebSocket: subscribe (kind top, id "v"), unsubscribe, ping
//	GET  /metrics                              Prometheus: process and Go collectors, leaderboard_live_* counters

const wsFloorMode = "ws-floor-server"

// wsFloorEpoch is the epoch of every subscription and snapshot: the floor has one lifetime.
const wsFloorEpoch = "floor"

// wsFloorSubID is the one subscription id the floor serves: its frames are shared byte for byte by
// every connection, so they carry one id, the tool's.
const wsFloorSubID = "v"

// wsFloorOptions configure the floor.
type wsFloorOptions struct {
	FlushInterval time.Duration
	TopLimit      int
	// Placement and TopRate say where the tool aims its markers (--marker-rank, --top-rate): the
	// floor keeps no ranking, so it cannot know where a marker lands; it reports the rank the tool
	// aims at (lowestMarkerRank, the same rule as the tool's), and builds its frames from it.
	Placement string
	TopRate   float64
	Seed      uint64 // random placement: the ranks drawn
}

func wsFloorServerMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(wsFloorMode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	maxLifetime := fs.Duration("max-lifetime", 10*time.Minute, "exit after this long even if nobody kills the server")
	exitOnEOF := fs.Bool("exit-on-stdin-eof", false, "exit when stdin is closed (the parent holds it open while it needs the server)")
	var o wsFloorOptions
	fs.DurationVar(&o.FlushInterval, "flush-interval", 100*time.Millisecond, "coalescing window: at most one update frame per window (the service's default)")
	fs.IntVar(&o.TopLimit, "top-limit", 100, "size of the top window the frames describe (the viewers' --top-limit)")
	fs.StringVar(&o.Placement, "marker-rank", placeBottom, "where the tool aims its markers (its --marker-rank): top, bottom or random")
	fs.Float64Var(&o.TopRate, "top-rate", 100, "the tool's --top-rate, which sets the rank bottom and random markers aim at")
	fs.Uint64Var(&o.Seed, "random-seed", 1, "seed of the ranks drawn for random placement")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	switch {
	case *maxLifetime <= 0:
		fmt.Fprintf(stderr, "bench %s: --max-lifetime must be > 0\n", wsFloorMode)
		return 2
	case o.FlushInterval <= 0:
		fmt.Fprintf(stderr, "bench %s: --flush-interval must be > 0\n", wsFloorMode)
		return 2
	case o.TopLimit < 1 || o.TopLimit > 1000:
		fmt.Fprintf(stderr, "bench %s: --top-limit must be between 1 and 1000\n", wsFloorMode)
		return 2
	case !slices.Contains(placements, o.Placement):
		fmt.Fprintf(stderr, "bench %s: --marker-rank must be top, bottom or random\n", wsFloorMode)
		return 2
	case o.TopRate < 0:
		fmt.Fprintf(stderr, "bench %s: --top-rate must be >= 0\n", wsFloorMode)
		return 2
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", wsFloorMode, err)
		return 1
	}
	fmt.Fprintln(stdout, ln.Addr().String())

	f := newWSFloor(o)
	f.start()
	srv := newWSFloorHTTPServer(f.handler())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	code := waitForExit(wsFloorMode, served, *exitOnEOF, *maxLifetime, stderr)
	_ = srv.Close()
	f.stop()
	return code
}

// newWSFloorHTTPServer has the floor server's timeouts (see floor.go); upgraded connections clear
// them.
func newWSFloorHTTPServer(h http.Handler) *http.Server {
	srv := newFloorServer(0)
	srv.Handler = h
	return srv
}

// wsFloor is the floor's state.
type wsFloor struct {
	opts     wsFloorOptions
	lowest   int // markers aim at 1 (top), lowest (bottom), 1..lowest (random)
	created  string
	upgrader *gws.Upgrader

	// mu orders subscriptions against new versions: a subscriber gets its snapshot at the current
	// version and is registered for the versions after it, both under mu, so its chain is whole.
	mu      sync.Mutex
	version atomic.Uint64 // of the last update frame built; snapshots carry it

	wmu    sync.Mutex
	window []floorMarker // this flush window's markers, in arrival order
	spare  []floorMarker // the previous window's array, reused for the next (under wmu)
	rng    *rand.Rand

	bestMu    sync.Mutex
	best      atomic.Uint64 // the best score submitted plus 1 (0: none yet): the rankings' one entry
	bestID    string        // under bestMu, with bestAt
	bestAt    int64
	batchSeen atomic.Int64 // items received through scores:batch: total_participants

	groups []*floorGroup
	next   atomic.Uint64 // round robin over the groups

	connsMu sync.Mutex
	conns   map[*floorConn]struct{} // open WebSocket connections (for the gauge and stop)

	frames     atomic.Uint64 // update frames written
	frameBytes atomic.Uint64
	writes     atomic.Uint64 // write calls carrying them
	registry   *prometheus.Registry

	stopOnce sync.Once
	stopCh   chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup
}

// floorMarker is one marker of the current window.
type floorMarker struct {
	id    string
	score uint64
	rank  int   // the rank it entered at
	at    int64 // achieved_at, Unix ms
}

// floorFrame is one update, written as is to every subscriber.
type floorFrame struct {
	version uint64
	header  []byte // its WebSocket frame header
	data    []byte
}

// floorGroup is the connections one writer goroutine serves.
type floorGroup struct {
	mu    sync.Mutex
	conns []*floorConn
	ch    chan *floorFrame
}

// floorConn is one WebSocket connection.
type floorConn struct {
	ws         *gws.Conn
	since      atomic.Uint64 // updates up to this version are not written (its snapshot has them)
	dead       atomic.Bool
	registered bool // in a group; read and written under wsFloor.mu
}

// floorQueue is how many frames a writer may fall behind before the flush loop waits for it.
const floorQueue = 64

func newWSFloor(o wsFloorOptions) *wsFloor {
	f := &wsFloor{
		opts:     o,
		lowest:   1,
		created:  time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		rng:      rand.New(rand.NewPCG(o.Seed, 3<<32)),
		conns:    map[*floorConn]struct{}{},
		stopCh:   make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if o.Placement != placeTop {
		f.lowest = lowestMarkerRank(o.TopLimit, o.TopRate)
	}
	f.groups = make([]*floorGroup, runtime.GOMAXPROCS(0))
	for i := range f.groups {
		f.groups[i] = &floorGroup{ch: make(chan *floorFrame, floorQueue)}
	}
	// The same options as the service's gateway (internal/gateway): small read buffers, no UTF-8
	// check, no permessage-deflate (gws's default).
	f.upgrader = gws.NewUpgrader(&floorEvents{f}, &gws.ServerOption{
		ReadMaxPayloadSize: 4096,
		ReadBufferSize:     1024,
		CheckUtf8Enabled:   false,
		HandshakeTimeout:   5 * time.Second,
		Recovery:           gws.Recovery,
		Logger:             discardLogger{},
	})
	f.registry = prometheus.NewRegistry()
	f.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leaderboard_live_websocket_connections", Help: "Open WebSocket connections."},
			func() float64 { f.connsMu.Lock(); defer f.connsMu.Unlock(); return float64(len(f.conns)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_live_frames_total", Help: "Update frames written to connections."},
			func() float64 { return float64(f.frames.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_live_frame_bytes_total", Help: "Bytes of update frames written to connections."},
			func() float64 { return float64(f.frameBytes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_live_resyncs_total", Help: "Always 0: the floor never drops a subscriber's frames."},
			func() float64 { return 0 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_live_websocket_writes_total", Help: "Write calls that carried update frames."},
			func() float64 { return float64(f.writes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_live_websocket_frames_written_total", Help: "Update frames those writes carried."},
			func() float64 { return float64(f.frames.Load()) }),
	)
	return f
}

// start runs the flush loop and the writers.
func (f *wsFloor) start() {
	for _, g := range f.groups {
		f.wg.Go(func() { f.write(g) })
	}
	go func() {
		defer close(f.loopDone)
		t := time.NewTicker(f.opts.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if fr := f.flush(time.Now()); fr != nil {
					for _, g := range f.groups {
						g.ch <- fr
					}
				}
			case <-f.stopCh:
				return
			}
		}
	}()
}

// stop ends the loops and closes every connection.
func (f *wsFloor) stop() {
	f.stopOnce.Do(func() {
		close(f.stopCh)
		<-f.loopDone
		for _, g := range f.groups {
			close(g.ch)
		}
		f.wg.Wait()
		f.connsMu.Lock()
		for c := range f.conns {
			_ = c.ws.NetConn().Close()
		}
		f.connsMu.Unlock()
	})
}

func (f *wsFloor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/leaderboards", f.create)
	mux.HandleFunc("GET /v1/leaderboards/{id}", f.getBoard)
	mux.HandleFunc("GET /v1/leaderboards/{id}/rankings", f.rankings)
	mux.HandleFunc("POST /v1/leaderboards/{id}/scores", f.submit)
	mux.HandleFunc("POST /v1/leaderboards/{id}/scores:batch", f.batch)
	mux.HandleFunc("GET /v1/leaderboards/{id}/subscribe", f.subscribe)
	mux.Handle("GET /metrics", promhttp.HandlerFor(f.registry, promhttp.HandlerOpts{}))
	return mux
}

// Body limits: the service's.
const (
	floorMaxBody      = 64 << 10
	floorMaxBatchBody = 1 << 20
)

var floorBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readBody reads the request body into a pooled buffer; false when it is too large (the answer
// is written).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf *[]byte) bool {
	b := (*buf)[:0]
	rd := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, 512)
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*buf = b
			floorError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "the body is too large or could not be read")
			return false
		}
	}
	*buf = b
	return true
}

func floorJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func floorError(w http.ResponseWriter, code int, errCode, msg string) {
	b := appendFloorError(nil, errCode, msg)
	floorJSON(w, code, b)
}

func appendFloorError(b []byte, code, msg string) []byte {
	b = append(b, `{"error":{"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = strconv.AppendQuote(b, msg) // ASCII messages: Go's quoting is JSON's
	return append(b, "}}"...)
}

// boardID returns the path's leaderboard id, or answers 400.
func boardID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		floorError(w, http.StatusBadRequest, "invalid_argument", "leaderboard id must be 1 to 128 characters of A-Z a-z 0-9 _ . : -")
		return "", false
	}
	return id, true
}

// appendBoard writes the leaderboard object readBoardState reads: active, descending, no max_score.
func (f *wsFloor) appendBoard(b []byte, id string) []byte {
	b = append(b, `{"leaderboard_id":"`...)
	b = append(b, id...)
	b = append(b, `","name":"`...)
	b = append(b, id...)
	b = append(b, `","type":"custom","status":"active","sort_order":"desc","update_policy":"set","starts_at":null,"ends_at":null,"created_at":"`...)
	b = append(b, f.created...)
	b = append(b, `","max_score":null,"config":{},"version":`...)
	b = strconv.AppendUint(b, f.version.Load(), 10)
	b = append(b, `,"epoch":"`+wsFloorEpoch+`","total_participants":`...)
	b = strconv.AppendInt(b, f.batchSeen.Load(), 10)
	return append(b, '}')
}

func (f *wsFloor) create(w http.ResponseWriter, r *http.Request) {
	buf := floorBufs.Get().(*[]byte)
	defer floorBufs.Put(buf)
	if !readBody(w, r, floorMaxBody, buf) {
		return
	}
	var in struct {
		ID string `json:"leaderboard_id"`
	}
	if err := json.Unmarshal(*buf, &in); err != nil || !validID(in.ID) {
		floorError(w, http.StatusBadRequest, "invalid_argument", "leaderboard_id must be 1 to 128 characters of A-Z a-z 0-9 _ . : -")
		return
	}
	floorJSON(w, http.StatusCreated, f.appendBoard(nil, in.ID))
}

func (f *wsFloor) getBoard(w http.ResponseWriter, r *http.Request) {
	if id, ok := boardID(w, r); ok {
		floorJSON(w, http.StatusOK, f.appendBoard(nil, id))
	}
}

// rankings answers any page with at most one entry, the best score submitted: all the tool asks
// is rankings?limit=1, to start its marker ids above the board's best score.
func (f *wsFloor) rankings(w http.ResponseWriter, r *http.Request) {
	id, ok := boardID(w, r)
	if !ok {
		return
	}
	b := append([]byte(nil), `{"leaderboard_id":"`...)
	b = append(b, id...)
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, f.version.Load(), 10)
	b = append(b, `,"epoch":"`+wsFloorEpoch+`","total_participants":`...)
	b = strconv.AppendInt(b, f.batchSeen.Load(), 10)
	b = append(b, `,"entries":[`...)
	f.bestMu.Lock()
	if best := f.best.Load(); best > 0 {
		b = appendFloorEntry(b, 1, f.bestID, best-1, f.bestAt)
	}
	f.bestMu.Unlock()
	b = append(b, "]}"...)
	floorJSON(w, http.StatusOK, b)
}

// noteBest keeps the best score submitted and who submitted it.
func (f *wsFloor) noteBest(pid []byte, score uint64, at int64) {
	if score+1 <= f.best.Load() { // scores fit 63 bits: no overflow
		return
	}
	f.bestMu.Lock()
	if score+1 > f.best.Load() {
		f.bestID = string(pid)
		f.bestAt = at
		f.best.Store(score + 1)
	}
	f.bestMu.Unlock()
}

var (
	pidField   = []byte(`"participant_id"`)
	scoreField = []byte(`"score"`)
)

// fieldValue returns what follows the first `"name"` and its colon, spaces skipped.
func fieldValue(b, name []byte) ([]byte, bool) {
	i := bytes.Index(b, name)
	if i < 0 {
		return nil, false
	}
	b = skipSpace(b[i+len(name):])
	if len(b) == 0 || b[0] != ':' {
		return nil, false
	}
	return skipSpace(b[1:]), true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// parseSubmission pulls participant_id and score out of a submission without decoding the JSON:
// the id must be a valid one, the score a plain non-negative integer literal that fits 63 bits.
func parseSubmission(body []byte) (pid []byte, score uint64, ok bool) {
	v, ok := fieldValue(body, pidField)
	if !ok || len(v) < 2 || v[0] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(v[1:], '"')
	if end < 1 || end > 128 {
		return nil, 0, false
	}
	pid = v[1 : 1+end]
	for _, c := range pid {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return nil, 0, false
		}
	}
	if v, ok = fieldValue(body, scoreField); !ok {
		return nil, 0, false
	}
	score, n := parseDigits(v)
	if n == 0 || (n > 1 && v[0] == '0') || score > math.MaxInt64 {
		return nil, 0, false
	}
	if n < len(v) {
		switch c := v[n]; {
		case c >= '0' && c <= '9', c == '.', c == 'e', c == 'E': // too long, or not an integer
			return nil, 0, false
		}
	}
	return pid, score, true
}

// markerRank is the rank a marker enters at: where the tool aims it. random draws like the tool.
// Called with wmu held.
func (f *wsFloor) markerRank() int {
	if f.opts.Placement == placeRandom {
		return 1 + f.rng.IntN(f.lowest)
	}
	return f.lowest
}

// submit answers a single submission with a result shaped like the service's. The floor keeps no
// ranking: a marker's rank is the one the tool aims at (and that its frame shows); any other
// submission is reported just below the top window, where the tool's random scores stay (its pads
// and markers hold the top N). version is the version of the next update frame.
func (f *wsFloor) submit(w http.ResponseWriter, r *http.Request) {
	id, ok := boardID(w, r)
	if !ok {
		return
	}
	buf := floorBufs.Get().(*[]byte)
	defer floorBufs.Put(buf)
	if !readBody(w, r, floorMaxBody, buf) {
		return
	}
	pid, score, ok := parseSubmission(*buf)
	if !ok {
		floorError(w, http.StatusBadRequest, "invalid_argument", "the body needs a participant_id (1 to 128 characters of A-Z a-z 0-9 _ . : -) and a score (a non-negative integer)")
		return
	}
	now := time.Now().UnixMilli()
	rank := f.opts.TopLimit + 1
	if bytes.HasPrefix(pid, []byte(markerPrefix)) {
		f.wmu.Lock()
		rank = f.markerRank()
		f.window = append(f.window, floorMarker{id: string(pid), score: score, rank: rank, at: now})
		f.wmu.Unlock()
	}
	f.noteBest(pid, score, now)

	// The result goes after the request body in the same buffer.
	body := *buf
	start := len(body)
	b := append(body, `{"leaderboard_id":"`...)
	b = append(b, id...)
	b = append(b, `","participant_id":"`...)
	b = append(b, pid...)
	b = append(b, `","score":`...)
	b = strconv.AppendUint(b, score, 10)
	b = append(b, `,"previous_score":null,"rank":`...)
	b = strconv.AppendInt(b, int64(rank), 10)
	b = append(b, `,"previous_rank":null,"updated":true,"version":`...)
	b = strconv.AppendUint(b, f.version.Load()+1, 10)
	b = append(b, `,"achieved_at":`...)
	b = strconv.AppendInt(b, now, 10)
	b = append(b, '}')
	*buf = b
	floorJSON(w, http.StatusOK, b[start:])
}

// batch counts the items (total_participants says how many arrived) and answers {"results":[]}:
// the tool only counts "error" keys in it, so the floor lists only the items it cannot read.
// Batch items (the seeding and the pads, before the viewers connect) are not in any frame.
func (f *wsFloor) batch(w http.ResponseWriter, r *http.Request) {
	if _, ok := boardID(w, r); !ok {
		return
	}
	buf := floorBufs.Get().(*[]byte)
	defer floorBufs.Put(buf)
	if !readBody(w, r, floorMaxBatchBody, buf) {
		return
	}
	now := time.Now().UnixMilli()
	out := []byte(`{"results":[`)
	items, bad := 0, 0
	for rest := *buf; ; items++ {
		i := bytes.Index(rest, pidField)
		if i < 0 {
			break
		}
		rest = rest[i:]
		pid, score, ok := parseSubmission(rest)
		rest = rest[len(pidField):]
		if !ok {
			if bad++; bad > 1 {
				out = append(out, ',')
			}
			out = appendFloorError(out, "invalid_argument", "participant_id or score is missing or bad")
			continue
		}
		f.noteBest(pid, score, now)
	}
	if items == 0 {
		floorError(w, http.StatusBadRequest, "invalid_argument", `the body needs {"scores":[...]} with 1 to 1000 items`)
		return
	}
	f.batchSeen.Add(int64(items - bad))
	floorJSON(w, http.StatusOK, append(out, "]}"...))
}

// subscribe upgrades to a WebSocket, as the gateway does.
func (f *wsFloor) subscribe(w http.ResponseWriter, r *http.Request) {
	if _, ok := boardID(w, r); !ok {
		return
	}
	ws, err := f.upgrader.Upgrade(w, r)
	if err != nil {
		return // gws has answered the failed handshake
	}
	c := &floorConn{ws: ws}
	ws.Session().Store("c", c)
	_ = ws.SetDeadline(time.Time{}) // the HTTP server's deadlines do not apply to a live connection
	f.connsMu.Lock()
	f.conns[c] = struct{}{}
	f.connsMu.Unlock()
	go ws.ReadLoop()
}

// flush takes the window's markers and, when there are any, builds the next update frame. Windows
// with other submissions only make no frame: the service sends a top-N subscriber nothing when its
// window does not change, and the tool's random scores stay below its pads and markers.
func (f *wsFloor) flush(now time.Time) *floorFrame {
	// The two window arrays swap under wmu: flush may run on the loop and on a
	// test at once, and neither may hand out an array the other is reading.
	f.wmu.Lock()
	ms := f.window
	f.window, f.spare = f.spare[:0], nil
	f.wmu.Unlock()
	var fr *floorFrame
	if len(ms) > 0 {
		f.mu.Lock()
		v := f.version.Load() + 1
		fr = &floorFrame{version: v, data: f.appendUpdate(nil, v-1, v, ms, now.UnixMilli())}
		fr.header = wsframe.AppendTextHeader(nil, len(fr.data))
		f.version.Store(v)
		f.mu.Unlock()
	}
	f.wmu.Lock()
	f.spare = ms[:0]
	f.wmu.Unlock()
	return fr
}

// appendUpdate writes the update frame of a window's markers exactly as the service writes a top-N
// update (internal/fanout listUpdateBody, internal/wire Entry): the changes are every rank from the
// highest one a marker entered at down to --top-limit, in rank order. Each marker entered at its
// rank and pushed everything below it down one, later markers included; the ranks no marker of the
// window holds carry filler entries, as the service carries the entries pushed down (earlier
// markers and pads, mk-<id> with 13-digit scores), ids and scores of the same lengths, so the frame
// has the service's size.
func (f *wsFloor) appendUpdate(b []byte, prev, version uint64, ms []floorMarker, nowMS int64) []byte {
	n := f.opts.TopLimit
	pos := make([]int, len(ms))
	first := n
	for j, m := range ms {
		for i := range j {
			if pos[i] >= m.rank {
				pos[i]++
			}
		}
		pos[j] = m.rank
		first = min(first, m.rank)
	}
	at := make([]int, n-first+1) // marker index + 1 at each rank from first; 0 = filler
	low := uint64(math.MaxUint64)
	for j, p := range pos {
		if p <= n {
			at[p-first] = j + 1
			low = min(low, ms[j].score)
		}
	}

	b = append(b, `{"type":"update","id":"`+wsFloorSubID+`","prev_version":`...)
	b = strconv.AppendUint(b, prev, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"offset":0,"size":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"changes":[`...)
	var fill [8]byte
	for i, j := range at {
		if i > 0 {
			b = append(b, ',')
		}
		rank := first + i
		if j > 0 {
			m := &ms[j-1]
			b = appendFloorEntry(b, rank, m.id, m.score, m.at)
			continue
		}
		// A filler: "fl-" and the rank in four digits (the length of the tool's marker ids),
		// a score below the window's markers (only its length matters).
		id := append(fill[:0], "fl-"...)
		id = append(id, byte('0'+rank/1000%10), byte('0'+rank/100%10), byte('0'+rank/10%10), byte('0'+rank%10))
		score := uint64(markerScore0)
		if low != math.MaxUint64 && low > uint64(rank) {
			score = low - uint64(rank)
		}
		b = appendFloorEntry(b, rank, id, score, nowMS)
	}
	return append(b, "]}"...)
}

// appendFloorEntry writes one ranking entry as internal/wire.Entry does.
func appendFloorEntry[ID string | []byte](b []byte, rank int, id ID, score uint64, at int64) []byte {
	b = append(b, `{"rank":`...)
	b = strconv.AppendInt(b, int64(rank), 10)
	b = append(b, `,"participant_id":"`...)
	b = append(b, id...)
	b = append(b, `","score":`...)
	b = strconv.AppendUint(b, score, 10)
	b = append(b, `,"achieved_at":`...)
	b = strconv.AppendInt(b, at, 10)
	return append(b, '}')
}

// write is a writer goroutine: the frames waiting for it, to each of its group's connections in
// turn, one synchronous write per connection. A connection whose write fails is closed and
// forgotten. When it is behind (more than one frame waiting) a connection gets them all in one
// vectored write (package wsframe), as the service's writers give a connection its queue: one
// system call and one wakeup of its reader for them all, which is most of what a frame costs on
// loopback.
func (f *wsFloor) write(g *floorGroup) {
	var (
		batch []*floorFrame
		bufs  [][]byte
		join  []byte
	)
	for fr := range g.ch {
		batch = append(batch[:0], fr)
	more:
		for len(batch) < floorQueue {
			select {
			case fr, ok := <-g.ch:
				if !ok {
					break more
				}
				batch = append(batch, fr)
			default:
				break more
			}
		}
		g.mu.Lock()
		list := g.conns
		g.mu.Unlock()
		var written, size, writes uint64
		dead := false
		for i, c := range list {
			if i%64 == 63 { // the counters stay current while a long pass runs (they are read by /metrics)
				f.frames.Add(written)
				f.frameBytes.Add(size)
				f.writes.Add(writes)
				written, size, writes = 0, 0, 0
			}
			if c.dead.Load() {
				dead = true
				continue
			}
			since := c.since.Load()
			bufs = bufs[:0]
			n, nb := uint64(0), uint64(0)
			for _, fr := range batch {
				if since >= fr.version {
					continue // subscribed after this version: its snapshot has it
				}
				bufs = append(bufs, fr.header, fr.data)
				n++
				nb += uint64(len(fr.data))
			}
			if n == 0 {
				continue
			}
			if err := wsframe.Write(c.ws.NetConn(), bufs, &join); err != nil {
				c.dead.Store(true)
				_ = c.ws.NetConn().Close()
				dead = true
				continue
			}
			written += n
			size += nb
			writes++
		}
		f.frames.Add(written)
		f.frameBytes.Add(size)
		f.writes.Add(writes)
		if dead {
			g.mu.Lock()
			g.conns = slices.DeleteFunc(g.conns, func(c *floorConn) bool { return c.dead.Load() })
			g.mu.Unlock()
		}
	}
}

// floorEvents is the floor's gws.Event.
type floorEvents struct{ f *wsFloor }

func floorConnOf(socket *gws.Conn) *floorConn {
	v, _ := socket.Session().Load("c")
	c, _ := v.(*floorConn)
	return c
}

func (e *floorEvents) OnOpen(*gws.Conn) {}

func (e *floorEvents) OnClose(socket *gws.Conn, _ error) {
	c := floorConnOf(socket)
	if c == nil {
		return
	}
	c.dead.Store(true) // its writer drops it at the next frame
	e.f.connsMu.Lock()
	delete(e.f.conns, c)
	e.f.connsMu.Unlock()
}

func (e *floorEvents) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (e *floorEvents) OnPong(*gws.Conn, []byte) {}

var floorPong = []byte(`{"type":"pong"}`)

// clientMsg is what the floor reads of a client message (they are rare: decoding is fine).
type clientMsg struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

func (e *floorEvents) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	f := e.f
	c := floorConnOf(socket)
	if c == nil {
		return
	}
	var m clientMsg
	if err := json.Unmarshal(message.Bytes(), &m); err != nil {
		_ = socket.WriteMessage(gws.OpcodeText, floorErrorFrame("", "the message is not a valid JSON object"))
		return
	}
	switch m.Type {
	case "ping":
		_ = socket.WriteMessage(gws.OpcodeText, floorPong)
	case "unsubscribe":
		c.since.Store(math.MaxUint64) // registered or not, it gets no more updates
	case "subscribe":
		if m.ID != wsFloorSubID || m.Kind != "top" {
			_ = socket.WriteMessage(gws.OpcodeText, floorErrorFrame(m.ID, `the floor serves top subscriptions with id "v" only`))
			return
		}
		f.subscribed(c)
	default:
		_ = socket.WriteMessage(gws.OpcodeText, floorErrorFrame(m.ID, `type must be "subscribe", "unsubscribe" or "ping"`))
	}
}

// subscribed answers a subscription (a resume too: the floor has no backlog, so it always sends a
// snapshot) and registers the connection for the updates after the snapshot's version. Under mu,
// no version is built meanwhile: the snapshot is written before any later update.
func (f *wsFloor) subscribed(c *floorConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.version.Load()
	if err := c.ws.WriteMessage(gws.OpcodeText, floorSubscribedFrame(v)); err != nil {
		return
	}
	if err := c.ws.WriteMessage(gws.OpcodeText, floorSnapshotFrame(v)); err != nil {
		return
	}
	c.since.Store(v)
	if !c.registered {
		c.registered = true
		g := f.groups[f.next.Add(1)%uint64(len(f.groups))]
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
	}
}

// floorSubscribedFrame is the confirmation of a subscription, as internal/fanout SubscribedFrame.
func floorSubscribedFrame(version uint64) []byte {
	b := []byte(`{"type":"subscribed","id":"` + wsFloorSubID + `","kind":"top","version":`)
	b = strconv.AppendUint(b, version, 10)
	return append(b, `,"epoch":"`+wsFloorEpoch+`"}`...)
}

// floorSnapshotFrame is an empty top-N snapshot (the floor has no ranking to show), shaped as the
// service's (internal/fanout listSnapshotBody).
func floorSnapshotFrame(version uint64) []byte {
	b := []byte(`{"type":"snapshot","id":"` + wsFloorSubID + `","version":`)
	b = strconv.AppendUint(b, version, 10)
	return append(b, `,"epoch":"`+wsFloorEpoch+`","offset":0,"size":0,"entries":[]}`...)
}

func floorErrorFrame(id, msg string) []byte {
	b := []byte(`{"type":"error"`)
	if id != "" && validID(id) {
		b = append(b, `,"id":"`...)
		b = append(b, id...)
		b = append(b, '"')
	}
	b = append(b, `,"code":"invalid_argument","message":`...)
	b = strconv.AppendQuote(b, msg)
	return append(b, '}')
}
