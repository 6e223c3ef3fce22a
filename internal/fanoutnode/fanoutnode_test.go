package fanoutnode_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/fanoutnode"
	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/registry"
	"github.com/lbhq/leaderboard/internal/relay"
	"github.com/lbhq/leaderboard/internal/segsnap"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// wait bounds every "eventually" below; nothing asserts on elapsed time.
const wait = 30 * time.Second

// env is one test's Redis-backed pieces, all under one unique key prefix.
type env struct {
	t      testing.TB
	st     *redisstore.Store
	reg    *registry.Registry
	snaps  *segsnap.Store
	prefix string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c, err := redisstore.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	prefix := redistest.Prefix(t, "lbfanoutnode")
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		t: t, st: st, prefix: prefix,
		reg:   registry.New(c, registry.Options{Prefix: prefix}),
		snaps: segsnap.New(c, prefix),
	}
}

func (e *env) createBoard(board string, seed int) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.st.CreateBoard(ctx, board, store.BoardOptions{}); err != nil {
		e.t.Fatal(err)
	}
	for i := range seed {
		e.submit(board, fmt.Sprintf("p%03d", i), uint64(rand.IntN(1000)))
	}
}

var clock atomic.Int64

func (e *env) submit(board, pid string, score uint64) uint64 {
	subs := []store.Submission{{ParticipantID: pid, Score: score, AchievedAt: 1_700_000_000_000 + clock.Add(1)}}
	res := make([]store.Result, 1)
	if err := e.st.Submit(context.Background(), board, subs, res); err != nil {
		e.t.Error(err)
	}
	return res[0].Version
}

// submitRandom runs workers goroutines of n random submissions to boards.
func (e *env) submitRandom(boards []string, workers, n int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range n {
				b := boards[(w+i)%len(boards)]
				e.submit(b, fmt.Sprintf("p%03d", rand.IntN(60)), uint64(rand.IntN(1000)))
				// Spread them over many flush windows (pacing only; nothing
				// depends on how long it takes).
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			}
		})
	}
	wg.Wait()
}

// final submits a score above every other to each board, so the top window
// changes once more, and returns the versions to wait for.
func (e *env) final(boards []string) map[string]uint64 {
	out := map[string]uint64{}
	for _, b := range boards {
		out[b] = e.submit(b, "final", 1_000_000+uint64(clock.Add(1))) // a new best score each time: a new version
	}
	return out
}

// gateway registers a gateway whose viewers watch segs of boards.
func (e *env) gateway(id string, boards []string, segs ...string) *registry.Member {
	e.t.Helper()
	ctx := context.Background()
	m, err := e.reg.NewMember(registry.Gateway{ID: id, URL: "ws://" + id}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range boards {
		for _, s := range segs {
			if err := m.Add(ctx, b, s); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	if err := m.Heartbeat(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = m.Leave(context.Background()) })
	return m
}

// localBus starts an in-process bus, a view of the frames of board, and the
// relay from the store's outboxes into the bus; all stop when the test ends.
func (e *env) localBus(board string) (*bus.Local, *view) {
	e.t.Helper()
	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	e.t.Cleanup(local.Close)
	v := newView(e.t)
	fc := local.NewFrameConsumer(v.add)
	e.t.Cleanup(fc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	if err := fc.Watch(ctx, board); err != nil {
		e.t.Fatal(err)
	}
	e.relay(ctx, local.Producer())
	return local, v
}

func (e *env) relay(ctx context.Context, prod bus.EventProducer) {
	r := relay.New(e.st, prod, relay.Options{Client: e.st.Client(), CursorKey: e.prefix + "relay", Interval: 5 * time.Millisecond})
	go r.Run(ctx)
}

func (e *env) node(events bus.EventConsumer, frames bus.FrameProducer, partitions int) *fanoutnode.Node {
	return e.nodeQueue(events, frames, partitions, 0)
}

func (e *env) nodeQueue(events bus.EventConsumer, frames bus.FrameProducer, partitions, queue int) *fanoutnode.Node {
	e.t.Helper()
	n, err := fanoutnode.New(fanoutnode.Options{
		Source: e.st, Events: events, Frames: frames, Registry: e.reg, Snapshots: e.snaps,
		Partitions: partitions, Epoch: e.st.Epoch(), FlushInterval: 20 * time.Millisecond,
		RegistryPoll: 50 * time.Millisecond, Queue: queue,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// start runs n until the returned stop is called (stop waits for Run).
func start(t *testing.T, n *fanoutnode.Node) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- a gateway's view: frames applied to local windows ----

type jEntry struct {
	Rank          int64  `json:"rank"`
	ParticipantID string `json:"participant_id"`
	Score         uint64 `json:"score"`
	AchievedAt    int64  `json:"achieved_at"`
}

type jMsg struct {
	Type        string   `json:"type"`
	ID          string   `json:"id"`
	Version     uint64   `json:"version"`
	PrevVersion uint64   `json:"prev_version"`
	Epoch       string   `json:"epoch"`
	Offset      int64    `json:"offset"`
	Size        int64    `json:"size"`
	Entries     []jEntry `json:"entries"`
	Changes     []jEntry `json:"changes"`
}

type window struct {
	version        uint64
	offset, size   int64
	entries        map[int64]jEntry
	snaps, updates int
}

// view applies every frame it gets, per (board, segment), the way a
// gateway's viewer would (docs/LIVE.md, "Keeping a local copy"), and records
// every broken chain.
type view struct {
	t  testing.TB
	mu sync.Mutex
	w  map[string]*window // board|segment
	// frames in arrival order
	frames []bus.Frame
	errs   []string
}

func newView(t testing.TB) *view { return &view{t: t, w: map[string]*window{}} }

func decode(f bus.Frame) (jMsg, error) {
	typ := "update"
	if f.Kind == bus.KindSnapshot {
		typ = "snapshot"
	}
	// What a gateway writes: its own prefix, then the payload as produced.
	raw := append(fanout.Prefix(typ, "v1"), f.Payload...)
	var m jMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("%s: %w", raw, err)
	}
	if m.Type != typ || m.ID != "v1" {
		return m, fmt.Errorf("prefix+payload is %s", raw)
	}
	return m, nil
}

func (v *view) add(f bus.Frame) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.frames = append(v.frames, f)
	if f.Kind != bus.KindSnapshot && f.Kind != bus.KindUpdate {
		return
	}
	m, err := decode(f)
	if err != nil {
		v.errs = append(v.errs, err.Error())
		return
	}
	if m.Version != f.Version {
		v.errs = append(v.errs, fmt.Sprintf("%s %s: envelope version %d, payload %d", f.Board, f.Segment, f.Version, m.Version))
	}
	k := f.Board + "|" + f.Segment
	w := v.w[k]
	if f.Kind == bus.KindSnapshot {
		if w != nil && m.Version < w.version {
			v.errs = append(v.errs, fmt.Sprintf("%s: snapshot v%d after v%d", k, m.Version, w.version))
		}
		if w == nil {
			w = &window{}
			v.w[k] = w
		}
		w.version, w.offset, w.size, w.entries = m.Version, m.Offset, m.Size, map[int64]jEntry{}
		for _, e := range m.Entries {
			w.entries[e.Rank] = e
		}
		w.snaps++
		return
	}
	if m.PrevVersion != f.PrevVersion {
		v.errs = append(v.errs, fmt.Sprintf("%s: envelope prev %d, payload %d", k, f.PrevVersion, m.PrevVersion))
	}
	if w == nil || w.version != m.PrevVersion {
		have := uint64(0)
		if w != nil {
			have = w.version
		}
		v.errs = append(v.errs, fmt.Sprintf("%s: update %d->%d applied to v%d", k, m.PrevVersion, m.Version, have))
		return
	}
	for _, e := range m.Changes {
		w.entries[e.Rank] = e
	}
	w.offset, w.size, w.version = m.Offset, m.Size, m.Version
	for r := range w.entries {
		if r <= w.offset || r > w.offset+w.size {
			delete(w.entries, r)
		}
	}
	w.updates++
}

func (v *view) window(board, seg string) (window, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	w, ok := v.w[board+"|"+seg]
	if !ok {
		return window{}, false
	}
	c := *w
	c.entries = maps(w.entries)
	return c, true
}

func maps(m map[int64]jEntry) map[int64]jEntry {
	c := make(map[int64]jEntry, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (v *view) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.frames)
}

func (v *view) since(i int) []bus.Frame {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.frames[i:])
}

func (v *view) check() {
	v.t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		v.t.Error(e)
	}
}

// waitVersion waits until the window reached version at least want.
func (v *view) waitVersion(board, seg string, want uint64) window {
	v.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		w, ok := v.window(board, seg)
		if ok && w.version >= want {
			return w
		}
		if time.Now().After(deadline) {
			v.check()
			v.t.Fatalf("timed out waiting for %s %s at v%d (at v%d, %d snapshots, %d updates)", board, seg, want, w.version, w.snaps, w.updates)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sameAsStore: the window equals the store's first ranks at its version.
func (e *env) sameAsStore(w window, board string, limit int) {
	e.t.Helper()
	p, err := e.st.Page(context.Background(), board, 0, limit)
	if err != nil {
		e.t.Fatal(err)
	}
	if p.Version != w.version {
		e.t.Fatalf("%s: window at v%d, store at v%d (submissions should have stopped)", board, w.version, p.Version)
	}
	if w.offset != 0 || w.size != int64(len(p.Entries)) {
		e.t.Fatalf("%s: window offset %d size %d, store has %d entries", board, w.offset, w.size, len(p.Entries))
	}
	for _, se := range p.Entries {
		got := w.entries[se.Rank]
		want := jEntry{Rank: se.Rank, ParticipantID: se.ParticipantID, Score: se.Score, AchievedAt: se.AchievedAt}
		if got != want {
			e.t.Fatalf("%s rank %d: window %+v, store %+v", board, se.Rank, got, want)
		}
	}
}

// snapshotStored: segsnap holds a snapshot of the segment at least as new as
// the window, and it decodes to the same state when it is at the same version.
func (e *env) snapshotStored(board, seg string, w window) {
	e.t.Helper()
	v, body, err := e.snaps.Get(context.Background(), board, seg)
	if err != nil {
		e.t.Fatalf("segsnap %s %s: %v", board, seg, err)
	}
	if v < w.version {
		e.t.Fatalf("segsnap %s %s at v%d, behind the frames (v%d)", board, seg, v, w.version)
	}
	m, err := decode(bus.Frame{Kind: bus.KindSnapshot, Payload: body})
	if err != nil {
		e.t.Fatal(err)
	}
	if m.Version != v {
		e.t.Fatalf("segsnap %s %s: stored as v%d, body says v%d", board, seg, v, m.Version)
	}
	if v == w.version {
		for _, se := range m.Entries {
			if w.entries[se.Rank] != se {
				e.t.Fatalf("segsnap %s %s rank %d: %+v, frames %+v", board, seg, se.Rank, se, w.entries[se.Rank])
			}
		}
	}
}

// ---- tests ----

// One node on the in-process bus: the snapshot frame arrives and is stored;
// under concurrent submissions the updates chain from it without a break,
// and applying them gives exactly the store's top 10.
func TestSnapshotThenUnbrokenChain(t *testing.T) {
	e := newEnv(t)
	board := "alpha"
	e.createBoard(board, 30)
	e.gateway("gw1", []string{board}, "t:10")

	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	defer local.Close()
	v := newView(t)
	// The snapshot-before-update rule, as a gateway relies on it: when an
	// update arrives, segsnap already holds the segment at its version or later.
	var behind atomic.Int64
	fc := local.NewFrameConsumer(func(f bus.Frame) {
		if f.Kind == bus.KindUpdate {
			if sv, _, err := e.snaps.Get(context.Background(), f.Board, f.Segment); err != nil || sv < f.Version {
				behind.Add(1)
			}
		}
		v.add(f)
	})
	defer fc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := fc.Watch(ctx, board); err != nil {
		t.Fatal(err)
	}
	e.relay(ctx, local.Producer())
	n := e.node(local.NewConsumer(bus.FanoutGroup), local.FrameProducer(), 4)
	start(t, n)

	w := v.waitVersion(board, "t:10", 1)
	if w.snaps != 1 || w.updates != 0 {
		t.Fatalf("first frames: %d snapshots, %d updates", w.snaps, w.updates)
	}
	e.snapshotStored(board, "t:10", w)

	e.submitRandom([]string{board}, 4, 100)
	last := e.final([]string{board})[board]
	w = v.waitVersion(board, "t:10", last)
	v.check()
	if w.snaps != 1 {
		t.Fatalf("%d snapshots: the segment was remade", w.snaps)
	}
	if w.updates < 2 {
		t.Fatalf("only %d updates", w.updates)
	}
	e.sameAsStore(w, board, 10)
	e.snapshotStored(board, "t:10", w)
	t.Logf("%d updates up to v%d; node %+v", w.updates, w.version, n.Stats())
	if b := behind.Load(); b > 0 {
		t.Fatalf("%d update frames arrived before segsnap held their version", b)
	}
	if s := n.Stats(); s.Overflows != 0 || s.Resubscribe != 0 || s.Errors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A segment unregistered everywhere stops producing frames and its stored
// snapshot is deleted; the others go on.
func TestSegmentRemoved(t *testing.T) {
	e := newEnv(t)
	board := "beta"
	e.createBoard(board, 20)
	m := e.gateway("gw1", []string{board}, "t:10", "t:3")

	local, v := e.localBus(board)
	n := e.node(local.NewConsumer(bus.FanoutGroup), local.FrameProducer(), 4)
	start(t, n)
	ctx := context.Background()

	v.waitVersion(board, "t:3", 1)
	v.waitVersion(board, "t:10", 1)
	if _, _, err := e.snaps.Get(ctx, board, "t:3"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, board, "t:3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the t:3 snapshot deleted", func() bool {
		_, _, err := e.snaps.Get(ctx, board, "t:3")
		return errors.Is(err, segsnap.ErrNotFound)
	})
	if err := local.Flush(ctx); err != nil { // frames produced before the delete are delivered
		t.Fatal(err)
	}
	mark := v.count()

	e.submitRandom([]string{board}, 2, 50)
	last := e.final([]string{board})[board]
	w := v.waitVersion(board, "t:10", last)
	v.check()
	e.sameAsStore(w, board, 10)
	for _, f := range v.since(mark) {
		if f.Segment == "t:3" {
			t.Fatalf("a t:3 frame after the segment was removed: %+v", f)
		}
	}
	if _, _, err := e.snaps.Get(ctx, board, "t:3"); !errors.Is(err, segsnap.ErrNotFound) {
		t.Fatalf("t:3 snapshot stored again: %v", err)
	}
	if s := n.Stats(); s.Segments != 1 {
		t.Fatalf("%d segments, want 1", s.Segments)
	}
}

// A queue too small for one flush's frames never blocks the hub: a refused
// frame remakes its segment, whose frames restart with a snapshot, and every
// window still ends equal to the store with no broken chain.
func TestQueueOverflowRemakes(t *testing.T) {
	e := newEnv(t)
	board := "delta"
	e.createBoard(board, 30)
	segs := []string{"t:3", "t:5", "t:10", "t:20"}
	e.gateway("gw1", []string{board}, segs...)

	local, v := e.localBus(board)
	n := e.nodeQueue(local.NewConsumer(bus.FanoutGroup), local.FrameProducer(), 4, 1)
	start(t, n)
	for _, s := range segs {
		v.waitVersion(board, s, 1)
	}
	e.submitRandom([]string{board}, 2, 80)
	last := e.final([]string{board})[board]
	for _, s := range segs {
		w := v.waitVersion(board, s, last)
		limit, _ := strconv.Atoi(s[2:])
		e.sameAsStore(w, board, limit)
	}
	v.check()
	t.Logf("node %+v", n.Stats()) // Overflows and Resubscribe are usually > 0 here
}

// origin records which node produced each frame, per board, in the order
// the frames enter the bus.
type origin struct {
	mu  sync.Mutex
	log map[string][]string // board -> node per frame
}

type taggedProducer struct {
	bus.FrameProducer
	name string
	o    *origin
}

func (p taggedProducer) PublishFrame(f bus.Frame) {
	p.o.mu.Lock()
	defer p.o.mu.Unlock()
	p.o.log[f.Board] = append(p.o.log[f.Board], p.name)
	p.FrameProducer.PublishFrame(f)
}

func (o *origin) snapshot() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := map[string][]string{}
	for b, l := range o.log {
		c[b] = slices.Clone(l)
	}
	return c
}

// Two nodes in one consumer group split the boards: each board's frames
// come from the node owning its partition. When one stops, the other takes
// its boards over, and every segment's frames go on as an unbroken chain or
// restart with a snapshot; the windows end equal to the store.
func TestTwoNodesSplitAndTakeOver(t *testing.T) {
	e := newEnv(t)
	const parts = 4
	var boards []string
	var even, odd int
	for i := 0; len(boards) < 4; i++ {
		b := fmt.Sprintf("board%d", i)
		p := bus.PartitionFor(b, parts)
		if p%2 == 0 && even < 2 {
			even++
		} else if p%2 == 1 && odd < 2 {
			odd++
		} else {
			continue
		}
		boards = append(boards, b)
		e.createBoard(b, 20)
	}
	e.gateway("gw1", boards, "t:10")

	local := bus.NewLocal(bus.LocalOptions{Partitions: parts})
	defer local.Close()
	v := newView(t)
	fc := local.NewFrameConsumer(v.add)
	defer fc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, b := range boards {
		if err := fc.Watch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	e.relay(ctx, local.Producer())
	o := &origin{log: map[string][]string{}}
	a := e.node(local.NewConsumer(bus.FanoutGroup), taggedProducer{local.FrameProducer(), "a", o}, parts)
	stopA := start(t, a)
	eventually(t, "a owning every board", func() bool {
		return !slices.ContainsFunc(boards, func(b string) bool { return !a.Owns(b) })
	})
	b := e.node(local.NewConsumer(bus.FanoutGroup), taggedProducer{local.FrameProducer(), "b", o}, parts)
	start(t, b)
	owner := map[string]string{}
	eventually(t, "the boards split between a and b", func() bool {
		na, nb := 0, 0
		for _, bd := range boards {
			switch oa, ob := a.Owns(bd), b.Owns(bd); {
			case oa && !ob:
				na++
				owner[bd] = "a"
			case ob && !oa:
				nb++
				owner[bd] = "b"
			default:
				return false
			}
		}
		return na > 0 && nb > 0
	})
	for _, bd := range boards {
		v.waitVersion(bd, "t:10", 1)
	}
	mark := o.snapshot()

	e.submitRandom(boards, 4, 60)
	// Every board has produced since the split, from its owner only.
	firstFinal := e.final(boards)
	for _, bd := range boards {
		v.waitVersion(bd, "t:10", firstFinal[bd])
	}
	split := o.snapshot()
	for _, bd := range boards {
		got := split[bd][len(mark[bd]):]
		if len(got) == 0 {
			t.Fatalf("%s: no frames after the split", bd)
		}
		for _, nd := range got {
			if nd != owner[bd] {
				t.Fatalf("%s: a frame from %s, owner %s", bd, nd, owner[bd])
			}
		}
	}

	stopA()
	eventually(t, "b owning every board", func() bool {
		return !slices.ContainsFunc(boards, func(bd string) bool { return !b.Owns(bd) })
	})
	e.submitRandom(boards, 4, 60)
	last := e.final(boards)
	for _, bd := range boards {
		w := v.waitVersion(bd, "t:10", last[bd])
		e.sameAsStore(w, bd, 10)
		e.snapshotStored(bd, "t:10", w)
	}
	v.check()
	after := o.snapshot()
	for _, bd := range boards {
		for _, nd := range after[bd][len(split[bd]):] {
			if nd != "b" {
				t.Fatalf("%s: a frame from %s after it stopped", bd, nd)
			}
		}
		if owner[bd] == "a" {
			if w, _ := v.window(bd, "t:10"); w.snaps < 2 {
				t.Fatalf("%s: taken over without a new snapshot (%d)", bd, w.snaps)
			}
		}
	}
}

// The happy path over Kafka (kfake on loopback): events from the relay, the
// node in its consumer group, frames to a gateway's frame consumer.
func TestKafkaHappyPath(t *testing.T) {
	e := newEnv(t)
	const parts = 4
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, bus.EventsTopic, bus.FramesTopic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cfg := bus.KafkaConfig{Brokers: kc.ListenAddrs(), Opts: []kgo.Opt{
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.DialTimeout(time.Second),
	}}
	board := "gamma"
	e.createBoard(board, 30)
	e.gateway("gw1", []string{board}, "t:10")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prod, err := bus.NewKafkaProducer(cfg, bus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	fp, err := bus.NewKafkaFrameProducer(cfg, bus.FrameProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	v := newView(t)
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	fc, err := bus.NewKafkaFrameConsumer(wctx, cfg, v.add, bus.FrameConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := fc.Watch(wctx, board); err != nil {
		t.Fatal(err)
	}
	e.relay(ctx, prod)
	cons := bus.NewKafkaConsumer(cfg, bus.ConsumerOptions{
		CommitInterval: 200 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
	})
	n := e.node(cons, fp, parts)
	start(t, n)

	w := v.waitVersion(board, "t:10", 1)
	e.snapshotStored(board, "t:10", w)
	e.submitRandom([]string{board}, 2, 60)
	last := e.final([]string{board})[board]
	w = v.waitVersion(board, "t:10", last)
	v.check()
	if w.snaps != 1 || w.updates == 0 {
		t.Fatalf("%d snapshots, %d updates", w.snaps, w.updates)
	}
	e.sameAsStore(w, board, 10)
	e.snapshotStored(board, "t:10", w)
}
