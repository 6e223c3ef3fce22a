package bench

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/lxzan/gws"
)

// This file is the viewer side of the viewers mode: a group of WebSocket viewers in one process,
// each with one subscription, that scan the frames they receive for markers and record how long
// after its acknowledgement each marker reached them. The group runs in the bench process itself
// (--procs 1) or in each "bench viewers-child" process (see viewers_child.go).

// Subscription kinds, in the order of kindNames.
const (
	kindTop = iota
	kindParticipant
	kindAround
	numKinds
)

var kindNames = [numKinds]string{"top", "participant", "around"}

// Markers: submissions whose participant id is "mk-<k>". At --marker-rank top the score is
// markerScore0 + k, above any seeded or random score, so each lands at rank 1; at bottom and random
// it is chosen to land elsewhere in the top N (see viewers_markers.go), still at least
// markerScore0 + k. k counts up across runs against the same board (see runViewers), so ids are
// never reused and every top marker beats the ones before it.
const (
	markerScore0 = 1_000_000_000_000
	markerPrefix = "mk-"
)

// ackTable maps a marker's index in this run (k - marker base) to the Unix time in nanoseconds its
// acknowledgement arrived; 0 = not acknowledged (yet). Submission workers write it while viewers
// read it, without locks: chunks are allocated on first use.
type ackTable struct {
	chunks [ackChunks]atomic.Pointer[ackChunk]
}

const (
	ackChunkBits = 12
	ackChunkSize = 1 << ackChunkBits
	ackChunks    = 1 << 12
	// maxMarkers is the table's capacity: 16.7 M markers, 46 hours at 100 markers/s.
	maxMarkers = ackChunkSize * ackChunks
)

type ackChunk [ackChunkSize]atomic.Int64

func (t *ackTable) set(idx, ns int64) {
	if idx < 0 || idx >= maxMarkers {
		return
	}
	p := &t.chunks[idx>>ackChunkBits]
	c := p.Load()
	if c == nil {
		p.CompareAndSwap(nil, new(ackChunk))
		c = p.Load()
	}
	c[idx&(ackChunkSize-1)].Store(ns)
}

func (t *ackTable) get(idx int64) int64 {
	if idx < 0 || idx >= maxMarkers {
		return 0
	}
	c := t.chunks[idx>>ackChunkBits].Load()
	if c == nil {
		return 0
	}
	return c[idx&(ackChunkSize-1)].Load()
}

// groupConfig is what one process's viewers need. It travels as JSON to child processes.
type groupConfig struct {
	WSURL        string        `json:"ws_url"`
	Token        string        `json:"token"`
	Viewers      int           `json:"viewers"` // in this group
	Offset       int           `json:"offset"`  // global index of the group's first viewer
	Mix          string        `json:"mix"`
	TopLimit     int           `json:"top_limit"`
	Radius       int           `json:"radius"`
	Participants int           `json:"participants"`
	Ramp         float64       `json:"ramp"` // this group's connections per second; 0 = unlimited
	SourceIPs    string        `json:"source_ips"`
	Seed         uint64        `json:"seed"`
	Timeout      time.Duration `json:"timeout"`
	MarkerBase   int64         `json:"marker_base"`
}

// readyInfo says how the group's viewers got on while connecting.
type readyInfo struct {
	Connected  int64 `json:"connected"`
	Failed     int64 `json:"failed"`
	Subscribed int64 `json:"subscribed"` // got their first snapshot
}

// groupResult is what a group saw. Counters are summed over viewers and groups; Hists (encoded
// HDR histograms of the ack-to-viewer delay in microseconds, one per kind) carry the latencies
// across processes.
type groupResult struct {
	Viewers          int64           `json:"viewers"`
	Connected        int64           `json:"connected"`
	ConnectFailures  int64           `json:"connect_failures"`
	SubscribedByKind [numKinds]int64 `json:"subscribed_by_kind"`
	Subscriptions    int64           `json:"subscriptions"` // "subscribed" confirmations, resubscriptions included
	Snapshots        int64           `json:"snapshots"`
	Updates          int64           `json:"updates"`

	// Frames and Bytes were received inside the measured window; the *All ones over the whole run.
	Frames    int64 `json:"frames"`
	Bytes     int64 `json:"bytes"`
	FramesAll int64 `json:"frames_all"`
	BytesAll  int64 `json:"bytes_all"`

	Resyncs           int64 `json:"resyncs"`
	Errors            int64 `json:"errors"`
	ChainBreaks       int64 `json:"chain_breaks"`
	Disconnects       int64 `json:"disconnects"`
	Reconnects        int64 `json:"reconnects"`
	ReconnectFailures int64 `json:"reconnect_failures"`
	Early             int64 `json:"early"`   // seen before the acknowledgement arrived (recorded as 0)
	Unacked           int64 `json:"unacked"` // seen, never acknowledged (not recorded)

	CPUS         float64          `json:"cpu_s"` // child processes: CPU used over the measured window
	Hists        [numKinds][]byte `json:"hists"`
	ArrivalHist  []byte           `json:"arrival_hist,omitempty"` // every kind, to the arrival in the socket
	ErrorSamples []string         `json:"error_samples,omitempty"`

	hist    [numKinds]*hdrhistogram.Histogram
	arrival *hdrhistogram.Histogram
}

// add folds o into r (histograms included).
func (r *groupResult) add(o *groupResult) {
	r.Viewers += o.Viewers
	r.Connected += o.Connected
	r.ConnectFailures += o.ConnectFailures
	for k := range r.SubscribedByKind {
		r.SubscribedByKind[k] += o.SubscribedByKind[k]
	}
	r.Subscriptions += o.Subscriptions
	r.Snapshots += o.Snapshots
	r.Updates += o.Updates
	r.Frames += o.Frames
	r.Bytes += o.Bytes
	r.FramesAll += o.FramesAll
	r.BytesAll += o.BytesAll
	r.Resyncs += o.Resyncs
	r.Errors += o.Errors
	r.ChainBreaks += o.ChainBreaks
	r.Disconnects += o.Disconnects
	r.Reconnects += o.Reconnects
	r.ReconnectFailures += o.ReconnectFailures
	r.Early += o.Early
	r.Unacked += o.Unacked
	r.CPUS += o.CPUS
	for k := range r.hist {
		if o.hist[k] == nil {
			continue
		}
		if r.hist[k] == nil {
			r.hist[k] = newHist()
		}
		r.hist[k].Merge(o.hist[k])
	}
	if o.arrival != nil {
		if r.arrival == nil {
			r.arrival = newHist()
		}
		r.arrival.Merge(o.arrival)
	}
	for _, s := range o.ErrorSamples {
		if len(r.ErrorSamples) < maxErrorSamples {
			r.ErrorSamples = append(r.ErrorSamples, s)
		}
	}
}

// encodeHists fills Hists from the histograms, for the trip to the parent process.
func (r *groupResult) encodeHists() error {
	for k, h := range r.hist {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		b, err := h.EncodeV2()
		if err != nil {
			return err
		}
		r.Hists[k] = b
	}
	if r.arrival != nil && r.arrival.TotalCount() > 0 {
		b, err := r.arrival.EncodeV2()
		if err != nil {
			return err
		}
		r.ArrivalHist = b
	}
	return nil
}

// decodeHists is the parent's side of encodeHists.
func (r *groupResult) decodeHists() error {
	for k, b := range r.Hists {
		if len(b) == 0 {
			continue
		}
		h, err := hdrhistogram.Decode(b)
		if err != nil {
			return fmt.Errorf("%s histogram: %w", kindNames[k], err)
		}
		r.hist[k] = h
	}
	if len(r.ArrivalHist) > 0 {
		h, err := hdrhistogram.Decode(r.ArrivalHist)
		if err != nil {
			return fmt.Errorf("arrival histogram: %w", err)
		}
		r.arrival = h
	}
	return nil
}

const maxErrorSamples = 8

// histShards: viewers record into one of a few locked histograms per kind (an HDR histogram
// is ~140 KB, too big to give every viewer its own).
const histShards = 16

type shardHist struct {
	mu      sync.Mutex
	h       *hdrhistogram.Histogram
	arrival *hdrhistogram.Histogram // to the arrival in the socket
}

// viewerGroup is the viewers of one process.
type viewerGroup struct {
	cfg     groupConfig
	acks    *ackTable
	ips     []net.IP
	viewers []*viewer

	// The measured window in Unix nanoseconds; 0 = not set yet. Frames count as measured when they
	// arrive inside it, marker observations when the marker's acknowledgement is inside it.
	windowStart atomic.Int64
	windowEnd   atomic.Int64

	stopping atomic.Bool
	stopCh   chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup // viewer goroutines
	ready    sync.WaitGroup // one Done per viewer: first snapshot, or given up

	nConnected  atomic.Int64
	nFailed     atomic.Int64
	nSubscribed atomic.Int64

	hist [numKinds][histShards]shardHist

	samplesMu sync.Mutex
	samples   []string
}

// maxParallelDials bounds handshakes in flight when --ramp is 0.
const maxParallelDials = 256

func newViewerGroup(cfg groupConfig, acks *ackTable) (*viewerGroup, error) {
	mix, err := parseMix(cfg.Mix)
	if err != nil {
		return nil, err
	}
	ips, err := parseSourceIPs(cfg.SourceIPs)
	if err != nil {
		return nil, err
	}
	cycle := mixCycle(mix)
	g := &viewerGroup{cfg: cfg, acks: acks, ips: ips, stopCh: make(chan struct{})}
	g.viewers = make([]*viewer, cfg.Viewers)
	for i := range g.viewers {
		idx := cfg.Offset + i
		v := &viewer{g: g, idx: idx, kind: cycle[idx%len(cycle)]}
		if len(ips) > 0 {
			v.ip = ips[idx%len(ips)]
		}
		// The watched participant depends only on the seed and the global index, so a run is the
		// same whatever the number of processes.
		rng := rand.New(rand.NewPCG(cfg.Seed, 2<<32|uint64(idx)))
		v.sub = subscribeMessage(v.kind, cfg.TopLimit, cfg.Radius, rng.IntN(max(cfg.Participants, 1)))
		g.viewers[i] = v
	}
	return g, nil
}

// subscribeMessage is the subscription of a viewer, without its closing brace (a resume appends
// since_version and epoch).
func subscribeMessage(kind, limit, radius, participant int) []byte {
	b := []byte(`{"type":"subscribe","id":"v","kind":"`)
	b = append(b, kindNames[kind]...)
	b = append(b, '"')
	switch kind {
	case kindTop:
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(limit), 10)
	case kindParticipant, kindAround:
		b = append(b, `,"participant_id":"`...)
		b = appendPID(b, participant)
		b = append(b, '"')
		if kind == kindAround {
			b = append(b, `,"radius":`...)
			b = strconv.AppendInt(b, int64(radius), 10)
		}
	}
	return b
}

// start launches every viewer; connections open at cfg.Ramp per second.
func (g *viewerGroup) start() {
	n := len(g.viewers)
	g.ready.Add(n)
	g.wg.Add(n)
	var sem chan struct{}
	if g.cfg.Ramp <= 0 {
		sem = make(chan struct{}, maxParallelDials)
	}
	t0 := time.Now()
	for i, v := range g.viewers {
		at := t0
		if g.cfg.Ramp > 0 {
			at = t0.Add(time.Duration(float64(i) / g.cfg.Ramp * float64(time.Second)))
		}
		go v.run(at, sem)
	}
}

// readyState reads the connection counters.
func (g *viewerGroup) readyState() readyInfo {
	return readyInfo{Connected: g.nConnected.Load(), Failed: g.nFailed.Load(), Subscribed: g.nSubscribed.Load()}
}

// waitReady waits until every viewer has its first snapshot or gave up, until timeout, or until
// done is closed, logging progress every few seconds.
func (g *viewerGroup) waitReady(done <-chan struct{}, timeout time.Duration, logw io.Writer, label string) (readyInfo, error) {
	all := make(chan struct{})
	go func() { g.ready.Wait(); close(all) }()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-all:
			return g.readyState(), nil
		case <-done:
			return g.readyState(), errInterrupted
		case <-deadline.C:
			ri := g.readyState()
			fmt.Fprintf(logw, "bench: %swarning: %d of %d viewers subscribed after %s, going on without the rest\n",
				label, ri.Subscribed, len(g.viewers), timeout)
			return ri, nil
		case <-tick.C:
			ri := g.readyState()
			fmt.Fprintf(logw, "bench: %s%d/%d viewers connected, %d subscribed, %d failed\n",
				label, ri.Connected, len(g.viewers), ri.Subscribed, ri.Failed)
		}
	}
}

var errInterrupted = fmt.Errorf("interrupted")

func (g *viewerGroup) setWindow(start, end time.Time) {
	g.windowStart.Store(start.UnixNano())
	g.windowEnd.Store(end.UnixNano())
}

func (g *viewerGroup) measuring(now int64) bool {
	s := g.windowStart.Load()
	return s != 0 && now >= s && now < g.windowEnd.Load()
}

// sample keeps a few examples of what went wrong: at most two per kind (the text before the
// first colon) and maxErrorSamples in all.
func (g *viewerGroup) sample(s string) {
	g.samplesMu.Lock()
	defer g.samplesMu.Unlock()
	if len(g.samples) >= maxErrorSamples {
		return
	}
	kind, _, _ := strings.Cut(s, ":")
	same := 0
	for _, x := range g.samples {
		if x == s {
			return
		}
		if k, _, _ := strings.Cut(x, ":"); k == kind {
			same++
		}
	}
	if same < 2 {
		g.samples = append(g.samples, s)
	}
}

// sleep waits d, or less when the group stops; it reports whether the group is still running.
func (g *viewerGroup) sleep(d time.Duration) bool {
	if d <= 0 {
		return !g.stopping.Load()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.stopCh:
		return false
	}
}

// stop closes every connection and waits for the viewers to end.
func (g *viewerGroup) stop() {
	g.stopOnce.Do(func() {
		g.stopping.Store(true)
		close(g.stopCh)
		for _, v := range g.viewers {
			v.mu.Lock()
			c := v.conn
			v.mu.Unlock()
			if c != nil {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_ = c.WriteClose(1000, nil)
			}
		}
		g.wg.Wait()
	})
}

// finish stops the viewers and returns what they saw. Markers still waiting for their
// acknowledgement are settled now: acknowledged ones are recorded, the others counted as
// unacknowledged.
func (g *viewerGroup) finish() *groupResult {
	g.stop()
	r := &groupResult{Viewers: int64(len(g.viewers))}
	for _, v := range g.viewers {
		v.settle(true)
		s := &v.st
		if s.connected {
			r.Connected++
		} else {
			r.ConnectFailures++
		}
		if v.gotSnapshot {
			r.SubscribedByKind[v.kind]++
		}
		r.Subscriptions += s.subscriptions
		r.Snapshots += s.snapshots
		r.Updates += s.updates
		r.Frames += s.frames
		r.Bytes += s.bytes
		r.FramesAll += s.framesAll
		r.BytesAll += s.bytesAll
		r.Resyncs += s.resyncs
		r.Errors += s.errors
		r.ChainBreaks += s.chainBreaks
		r.Disconnects += s.disconnects
		r.Reconnects += s.reconnects
		r.ReconnectFailures += s.reconnectFailures
		r.Early += s.early
		r.Unacked += s.unacked
	}
	for k := range g.hist {
		for i := range g.hist[k] {
			sh := &g.hist[k][i]
			if sh.h == nil {
				continue
			}
			if r.hist[k] == nil {
				r.hist[k] = newHist()
			}
			r.hist[k].Merge(sh.h)
			if sh.arrival != nil {
				if r.arrival == nil {
					r.arrival = newHist()
				}
				r.arrival.Merge(sh.arrival)
			}
		}
	}
	g.samplesMu.Lock()
	r.ErrorSamples = append([]string(nil), g.samples...)
	g.samplesMu.Unlock()
	return r
}

// viewer is one WebSocket connection with one subscription (id "v"). Its state belongs to its own
// goroutine, which runs readLoop (viewer_read.go) and so handles every frame.
type viewer struct {
	g    *viewerGroup
	idx  int // global index over all processes
	kind int
	sub  []byte // subscribe message without the closing brace
	ip   net.IP // local address, nil = the kernel's choice

	mu   sync.Mutex // guards conn, which finish closes from another goroutine
	conn *gws.Conn

	readyOnce   sync.Once
	gotSnapshot bool

	// Chain state: version of the last snapshot or update applied; synced is false while waiting for
	// the snapshot that follows a resubscription or a resync.
	version uint64
	synced  bool
	epoch   string

	seen    []uint64     // bit set of marker indexes seen
	pending []pendingObs // markers seen before their acknowledgement was known here
	lat     []int64      // delays of the current frame, recorded under one lock
	arrLat  []int64      // the same to the frame's arrival in the socket (arrived)
	// arrived is the kernel's receive timestamp of the last read (Unix ns; 0 = none): when the
	// frames it returned reached this viewer's socket, before this process got round to them.
	arrived int64
	msg     []byte // subscribe message buffer

	st viewerStats
}

type pendingObs struct{ idx, seen, arrived int64 }

type viewerStats struct {
	connected                                  bool
	subscriptions, snapshots, updates          int64
	frames, bytes, framesAll, bytesAll         int64
	resyncs, errors, chainBreaks               int64
	disconnects, reconnects, reconnectFailures int64
	early, unacked                             int64
}

func (v *viewer) markReady() { v.readyOnce.Do(v.g.ready.Done) }

// run connects (at its ramp slot), subscribes and reads until the group stops; a connection that
// closes is opened again and the subscription resumed from the last version applied.
func (v *viewer) run(at time.Time, sem chan struct{}) {
	g := v.g
	defer g.wg.Done()
	defer v.markReady()
	if !g.sleep(time.Until(at)) {
		return
	}
	if sem != nil {
		select {
		case sem <- struct{}{}:
		case <-g.stopCh:
			return
		}
	}
	conn, err := v.dial()
	if sem != nil {
		<-sem
	}
	if err != nil {
		g.nFailed.Add(1)
		g.sample("connect: " + err.Error())
		return
	}
	v.st.connected = true
	g.nConnected.Add(1)
	backoff := 100 * time.Millisecond
	for {
		if !v.attach(conn) {
			return
		}
		if err := conn.WriteMessage(gws.OpcodeText, v.subscribe(true)); err != nil {
			g.sample("subscribe: " + err.Error())
		}
		if err := v.readLoop(conn); err != nil && !g.stopping.Load() {
			g.sample("connection closed: " + err.Error())
		}
		_ = conn.NetConn().Close()
		v.settle(false)
		if g.stopping.Load() {
			return
		}
		v.st.disconnects++
		// One that lost its connection before its first snapshot no longer holds up the start.
		v.markReady()
		for {
			if !g.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			if conn, err = v.dial(); err == nil {
				v.st.reconnects++
				backoff = 100 * time.Millisecond
				break
			}
			v.st.reconnectFailures++
			g.sample("reconnect: " + err.Error())
		}
	}
}

// attach publishes conn for finish; false (and conn closed) when the group is stopping.
func (v *viewer) attach(conn *gws.Conn) bool {
	v.mu.Lock()
	v.conn = conn
	stopping := v.g.stopping.Load()
	v.mu.Unlock()
	if stopping {
		_ = conn.WriteClose(1000, nil)
		return false
	}
	return true
}

// subscribe builds the subscribe message; with resume and a chain to resume, it asks for
// everything since the last version applied.
func (v *viewer) subscribe(resume bool) []byte {
	b := append(v.msg[:0], v.sub...)
	if resume && v.synced && v.epoch != "" {
		b = append(b, `,"since_version":`...)
		b = strconv.AppendUint(b, v.version, 10)
		b = append(b, `,"epoch":"`...)
		b = append(b, v.epoch...)
		b = append(b, '"')
	}
	v.msg = append(b, '}')
	return v.msg
}

type discardLogger struct{}

func (discardLogger) Error(...any) {}

func (v *viewer) dial() (*gws.Conn, error) {
	g := v.g
	opt := &gws.ClientOption{
		Addr:             g.cfg.WSURL,
		HandshakeTimeout: g.cfg.Timeout,
		Logger:           discardLogger{},
		NewDialer: func() (gws.Dialer, error) {
			d := &net.Dialer{Timeout: g.cfg.Timeout}
			if v.ip != nil {
				d.LocalAddr = &net.TCPAddr{IP: v.ip}
			}
			return d, nil
		},
	}
	if g.cfg.Token != "" {
		opt.RequestHeader = http.Header{"Authorization": {"Bearer " + g.cfg.Token}}
	}
	conn, resp, err := gws.NewClient(v, opt)
	if err != nil {
		if resp != nil {
			if resp.Body != nil {
				_ = resp.Body.Close()
			}
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	return conn, nil
}

// gws.Event

func (v *viewer) OnOpen(*gws.Conn) {}

func (v *viewer) OnClose(_ *gws.Conn, err error) {
	if err != nil && !v.g.stopping.Load() {
		v.g.sample("connection closed: " + err.Error())
	}
}

func (v *viewer) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (v *viewer) OnPong(*gws.Conn, []byte) {}

// OnMessage is not called (readLoop reads the frames, not gws's ReadLoop); it completes gws.Event.
func (v *viewer) OnMessage(socket *gws.Conn, m *gws.Message) {
	v.onFrame(socket, m.Bytes(), time.Now().UnixNano())
	_ = m.Close()
}

var (
	typeKey        = []byte(`{"type":"`)
	versionKey     = []byte(`"version":`)
	prevVersionKey = []byte(`"prev_version":`)
	epochKey       = []byte(`"epoch":"`)
	idKey          = []byte(`"participant_id":"`)
	markerID       = []byte(markerPrefix)
)

// onFrame handles one server message without decoding it: the type, the versions and the marker
// ids are found by scanning the bytes (frames are written by the server in a fixed field order).
func (v *viewer) onFrame(socket *gws.Conn, b []byte, now int64) {
	g := v.g
	if len(v.pending) > 0 {
		v.settle(false)
	}
	v.st.framesAll++
	v.st.bytesAll += int64(len(b))
	if g.measuring(now) {
		v.st.frames++
		v.st.bytes += int64(len(b))
	}
	switch string(frameType(b)) {
	case "update":
		v.st.updates++
		if !v.synced {
			return // waiting for the snapshot after a resubscription or a resync
		}
		prev, ok1 := uintAfter(b, prevVersionKey)
		ver, ok2 := uintAfter(b, versionKey)
		if !ok1 || !ok2 || prev != v.version {
			// A broken chain: per docs/LIVE.md, subscribe again from scratch and wait for the snapshot.
			v.st.chainBreaks++
			v.synced = false
			g.sample(fmt.Sprintf("chain break: prev_version %d after version %d", prev, v.version))
			_ = socket.WriteMessage(gws.OpcodeText, v.subscribe(false))
			return
		}
		v.version = ver
		v.scanMarkers(b, now, true)
	case "snapshot":
		v.st.snapshots++
		v.version, v.synced = uintAfter(b, versionKey)
		// Markers already in a snapshot are not deliveries: mark them seen, record nothing.
		v.scanMarkers(b, now, false)
		if !v.gotSnapshot {
			v.gotSnapshot = true
			g.nSubscribed.Add(1)
			v.markReady()
		}
	case "subscribed":
		v.st.subscriptions++
		if e, ok := stringAfter(b, epochKey); ok && string(e) != v.epoch {
			v.epoch = string(e)
		}
	case "resync":
		v.st.resyncs++
		v.synced = false // the server subscribes again and sends a snapshot
	case "error":
		v.st.errors++
		g.sample("error message: " + snippet(b))
		if !v.gotSnapshot {
			v.markReady() // the subscription does not exist
		}
	}
}

// frameType returns the value of the leading "type" field.
func frameType(b []byte) []byte {
	if !bytes.HasPrefix(b, typeKey) {
		return nil
	}
	b = b[len(typeKey):]
	if i := bytes.IndexByte(b, '"'); i >= 0 {
		return b[:i]
	}
	return nil
}

// uintAfter parses the unsigned integer following the first occurrence of key.
func uintAfter(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	n, d := parseDigits(b[i+len(key):])
	return n, d > 0
}

// stringAfter returns the string following the first occurrence of key (which ends with a quote).
func stringAfter(b, key []byte) ([]byte, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil, false
	}
	return b[:j], true
}

// parseDigits parses leading decimal digits (at most 19, so no overflow) and returns the value
// and how many digits it read.
func parseDigits(b []byte) (uint64, int) {
	var n uint64
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i
}

// scanMarkers finds the markers in a frame; with live, each one seen for the first time is a
// delivery whose delay is recorded.
func (v *viewer) scanMarkers(b []byte, now int64, live bool) {
	base := v.g.cfg.MarkerBase
	for {
		// Search for the id's prefix and check the key before it: the prefix's first byte is
		// rare in a frame (no field name holds an "m" but display_name), the key's is a quote,
		// the most common byte, and searching for the key cost the tool a quarter of its time.
		i := bytes.Index(b, markerID)
		if i < 0 {
			break
		}
		isID := i >= len(idKey) && bytes.Equal(b[i-len(idKey):i], idKey)
		b = b[i+len(markerID):]
		if !isID {
			continue
		}
		k, n := parseDigits(b)
		if n == 0 || n >= len(b) || b[n] != '"' {
			continue // not one of ours
		}
		b = b[n:]
		idx := int64(k) - base
		if idx < 0 || idx >= maxMarkers || v.testAndSetSeen(idx) {
			continue // a marker of an earlier run, or seen before
		}
		if live {
			v.observe(idx, now)
		}
	}
	v.flushLat()
}

func (v *viewer) testAndSetSeen(idx int64) bool {
	w := int(idx >> 6)
	if w >= len(v.seen) {
		v.seen = append(v.seen, make([]uint64, max(w+1-len(v.seen), len(v.seen)))...)
	}
	bit := uint64(1) << (idx & 63)
	if v.seen[w]&bit != 0 {
		return true
	}
	v.seen[w] |= bit
	return false
}

// observe records the delivery of marker idx at now, or keeps it until its acknowledgement is
// known here (in a child process acknowledgements arrive through stdin, a little later).
func (v *viewer) observe(idx, now int64) {
	ack := v.g.acks.get(idx)
	if ack == 0 {
		v.pending = append(v.pending, pendingObs{idx: idx, seen: now, arrived: v.arrived})
		return
	}
	v.record(ack, now, v.arrived)
}

// record keeps one delivery: acknowledged at ack, parsed by the viewer at seen, arrived in its
// socket at arrived (0 = unknown).
func (v *viewer) record(ack, seen, arrived int64) {
	if ws := v.g.windowStart.Load(); ws == 0 || ack < ws {
		return // acknowledged during warmup
	}
	d := seen - ack
	if d < 0 {
		// The frame beat the HTTP response to the client: the delay is 0 as far as anyone can tell.
		v.st.early++
		d = 0
	}
	v.lat = append(v.lat, d/int64(time.Microsecond))
	if arrived != 0 {
		v.arrLat = append(v.arrLat, max(arrived-ack, 0)/int64(time.Microsecond))
	}
}

// settle records pending deliveries whose acknowledgement is now known; final counts the rest as
// never acknowledged.
func (v *viewer) settle(final bool) {
	keep := v.pending[:0]
	for _, p := range v.pending {
		if ack := v.g.acks.get(p.idx); ack != 0 {
			v.record(ack, p.seen, p.arrived)
		} else if final {
			v.st.unacked++
		} else {
			keep = append(keep, p)
		}
	}
	v.pending = keep
	v.flushLat()
}

func (v *viewer) flushLat() {
	if len(v.lat) == 0 {
		return
	}
	sh := &v.g.hist[v.kind][v.idx%histShards]
	sh.mu.Lock()
	if sh.h == nil {
		sh.h = newHist()
	}
	for _, us := range v.lat {
		_ = sh.h.RecordValue(min(max(us, histMinUS), histMaxUS))
	}
	if len(v.arrLat) > 0 {
		if sh.arrival == nil {
			sh.arrival = newHist()
		}
		for _, us := range v.arrLat {
			_ = sh.arrival.RecordValue(min(max(us, histMinUS), histMaxUS))
		}
	}
	sh.mu.Unlock()
	v.lat, v.arrLat = v.lat[:0], v.arrLat[:0]
}
