package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/registry"
	"github.com/lbhq/leaderboard/internal/segsnap"
	"github.com/lbhq/leaderboard/internal/store"
)

// The Remote tests run against a real Redis (segment snapshots and the
// registry): LEADERBOARD_TEST_REDIS_ADDR, by default 127.0.0.1:6379, with a
// key prefix per test, deleted afterwards. Unreachable Redis skips them, or
// fails them in CI (CI set and not "0"/"false").
func remoteRedis(t *testing.T) (*goredis.Client, string) {
	t.Helper()
	addr := os.Getenv("LEADERBOARD_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
			t.Fatalf("Redis at %s is unreachable: %v", addr, err)
		}
		t.Skipf("Redis at %s is unreachable: %v", addr, err)
	}
	prefix := fmt.Sprintf("test:remote:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}

// fakeFrames is a frame consumer that only records what is watched: the
// tests hand frames to HandleFrame themselves.
type fakeFrames struct {
	mu      sync.Mutex
	watched map[string]bool
	watches int
}

func (f *fakeFrames) Watch(ctx context.Context, board string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watched == nil {
		f.watched = map[string]bool{}
	}
	f.watched[board] = true
	f.watches++
	return nil
}

func (f *fakeFrames) Unwatch(board string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watched, board)
}

func (f *fakeFrames) Close() {}

func (f *fakeFrames) isWatched(board string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watched[board]
}

// frameLog is a Sink keeping every frame; past limit frames (when > 0) it
// refuses them, like a full send queue.
type frameLog struct {
	mu     sync.Mutex
	frames []Frame
	limit  int
}

func (l *frameLog) Send(f Frame) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 && len(l.frames) >= l.limit {
		return false
	}
	f.Prefix, f.Body = slices.Clone(f.Prefix), slices.Clone(f.Body)
	l.frames = append(l.frames, f)
	return true
}

func (l *frameLog) all() []Frame {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.frames)
}

func (l *frameLog) waitLen(t *testing.T, n int) []Frame {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d frames", n), func() bool { return len(l.all()) >= n })
	return l.all()
}

// waitUntil polls cond; the bound only stops a broken run, nothing is timed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Bodies as a fan-out encodes them.
func snapBody(v uint64) []byte {
	return listSnapshotBody(v, "e1", &listState{entries: []store.Entry{{Rank: 1, ParticipantID: "p1", Score: v, AchievedAt: 1}}})
}

func updBody(prev, v uint64) []byte {
	s := &listState{entries: []store.Entry{{Rank: 1, ParticipantID: "p1", Score: v, AchievedAt: 1}}}
	return listUpdateBody(prev, v, s, s.entries)
}

func upd(board, seg string, prev, v uint64) bus.Frame {
	return bus.Frame{Board: board, Segment: seg, Kind: bus.KindUpdate, Version: v, PrevVersion: prev, Payload: updBody(prev, v)}
}

// step is a frame as the tests expect it: type, versions, and the shared body.
type step struct {
	typ       string
	prev, ver uint64
}

// check compares a subscription's frames with the expected steps: the
// prefix names the subscription, and every snapshot and update body is
// exactly what the fan-out encoded.
func check(t *testing.T, got []Frame, id string, want ...step) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d frames %v, want %d %v", id, len(got), describe(got), len(want), want)
	}
	for i, w := range want {
		f := got[i]
		var body []byte
		switch w.typ {
		case "subscribed":
			if f.Type != "subscribed" || f.Version != w.ver || !bytes.Equal(f.Body, SubscribedFrame(id, "top", w.ver, "e1").Body) {
				t.Fatalf("%s frame %d: %s, want subscribed v%d", id, i, f.AppendJSON(nil), w.ver)
			}
			continue
		case "snapshot":
			body = snapBody(w.ver)
		case "update":
			body = updBody(w.prev, w.ver)
		}
		if f.Type != w.typ || f.Version != w.ver || f.PrevVersion != w.prev ||
			!bytes.Equal(f.Prefix, Prefix(w.typ, id)) || !bytes.Equal(f.Body, body) {
			t.Fatalf("%s frame %d: %s %d->%d %s, want %v", id, i, f.Type, f.PrevVersion, f.Version, f.AppendJSON(nil), w)
		}
	}
}

func describe(fs []Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %d->%d", f.Type, f.PrevVersion, f.Version))
	}
	return out
}

type remoteFixture struct {
	r      *Remote
	fc     *fakeFrames
	snaps  *segsnap.Store
	reg    *registry.Registry
	member *registry.Member
}

func newRemoteFixture(t *testing.T, opts RemoteOptions) *remoteFixture {
	rdb, prefix := remoteRedis(t)
	f := &remoteFixture{fc: &fakeFrames{}, snaps: segsnap.New(rdb, prefix)}
	f.reg = registry.New(rdb, registry.Options{Prefix: prefix})
	m, err := f.reg.NewMember(registry.Gateway{ID: "gw1", URL: "ws://gw1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.member = m
	opts.Snapshots, opts.Member, opts.Epoch = f.snaps, m, "e1"
	opts.Exists = func(ctx context.Context, board string) error {
		if board == "missing" {
			return store.ErrBoardNotFound
		}
		return nil
	}
	f.r = NewRemote(opts)
	f.r.SetFrames(f.fc)
	return f
}

func (f *remoteFixture) segments(t *testing.T, board string) []string {
	t.Helper()
	s, err := f.reg.Segments(context.Background(), board)
	if err != nil {
		t.Fatal(err)
	}
	return s.Keys
}

var top10 = Spec{Kind: Top, Limit: 10}

func TestRemoteSnapshotUpdatesAndRegistry(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Subscribe(ctx, "missing", "a", top10, nil, "", &frameLog{}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown board: %v", err)
	}
	s1, s2 := &frameLog{}, &frameLog{}
	sub1, err := f.r.Subscribe(ctx, "b1", "a", top10, nil, "", s1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := f.r.Subscribe(ctx, "b1", "x", top10, nil, "", s2, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, s1.all(), "a", step{"subscribed", 0, 5}, step{"snapshot", 0, 5})
	check(t, s2.all(), "x", step{"subscribed", 0, 5}, step{"snapshot", 0, 5})
	if !f.fc.isWatched("b1") {
		t.Fatal("b1 not watched")
	}
	if got := f.segments(t, "b1"); !slices.Equal(got, []string{"t:10"}) {
		t.Fatalf("registry: %v", got)
	}
	if got := f.r.Segments(); !slices.Equal(got["b1"], []string{"t:10"}) {
		t.Fatalf("Segments: %v", got)
	}

	f.r.HandleFrame(upd("b1", "t:10", 5, 7))
	f.r.HandleFrame(upd("b1", "t:10", 6, 7)) // stale
	f.r.HandleFrame(upd("b1", "t:10", 7, 9))
	f.r.HandleFrame(upd("b1", "t:10", 7, 9))  // duplicate
	f.r.HandleFrame(upd("b1", "t:99", 9, 10)) // a segment nobody here watches
	f.r.HandleFrame(upd("other", "t:10", 9, 10))
	want := []step{{"subscribed", 0, 5}, {"snapshot", 0, 5}, {"update", 5, 7}, {"update", 7, 9}}
	check(t, s1.all(), "a", want...)
	check(t, s2.all(), "x", want...)
	for i, fr := range s1.all()[1:] { // byte-identical after each subscription's prefix
		if !bytes.Equal(fr.Body, s2.all()[i+1].Body) {
			t.Fatalf("frame %d differs after the prefix", i+1)
		}
	}

	f.r.Unsubscribe(sub1)
	if got := f.segments(t, "b1"); !slices.Equal(got, []string{"t:10"}) {
		t.Fatalf("registry after one unsubscribe: %v", got)
	}
	f.r.HandleFrame(upd("b1", "t:10", 9, 11))
	if len(s1.all()) != 4 || len(s2.all()) != 5 {
		t.Fatalf("after unsubscribing a: %d and %d frames", len(s1.all()), len(s2.all()))
	}
	f.r.Unsubscribe(sub2)
	f.r.Unsubscribe(sub2) // twice is harmless
	if got := f.segments(t, "b1"); len(got) != 0 {
		t.Fatalf("registry after the last unsubscribe: %v", got)
	}
	if f.fc.isWatched("b1") {
		t.Fatal("b1 still watched after the last unsubscribe")
	}
	if got := f.r.Segments(); len(got) != 0 {
		t.Fatalf("Segments after the last unsubscribe: %v", got)
	}
}

func TestRemoteGapSendsSnapshot(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	s1, s2 := &frameLog{}, &frameLog{}
	for id, s := range map[string]*frameLog{"a": s1, "x": s2} {
		if _, err := f.r.Subscribe(ctx, "b1", id, top10, nil, "", s, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.r.HandleFrame(upd("b1", "t:10", 5, 7))
	// Frames 7->10 and 10->12 are lost; the fan-out stored 12 before producing 10->12.
	if err := f.snaps.Put(ctx, "b1", "t:10", 12, snapBody(12)); err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 12, 13)) // the gap shows
	f.r.HandleFrame(upd("b1", "t:10", 13, 14)) // buffered while the snapshot is read
	want := []step{{"subscribed", 0, 5}, {"snapshot", 0, 5}, {"update", 5, 7}, {"snapshot", 0, 12}, {"update", 12, 13}, {"update", 13, 14}}
	check(t, s1.waitLen(t, len(want)), "a", want...)
	check(t, s2.waitLen(t, len(want)), "x", want...)

	// A snapshot frame newer than the chain (a new fan-out owner) restarts it.
	f.r.HandleFrame(bus.Frame{Board: "b1", Segment: "t:10", Kind: bus.KindSnapshot, Version: 20, Payload: snapBody(20)})
	f.r.HandleFrame(bus.Frame{Board: "b1", Segment: "t:10", Kind: bus.KindSnapshot, Version: 18, Payload: snapBody(18)}) // older: ignored
	f.r.HandleFrame(upd("b1", "t:10", 20, 21))
	want = append(want, step{"snapshot", 0, 20}, step{"update", 20, 21})
	check(t, s1.all(), "a", want...)
	check(t, s2.all(), "x", want...)
}

func TestRemoteResume(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	f := newRemoteFixture(t, RemoteOptions{Now: func() time.Time { return time.Unix(0, now.Load()) }, History: time.Minute})
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	first := &frameLog{}
	if _, err := f.r.Subscribe(ctx, "b1", "first", top10, nil, "", first, nil); err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 5, 7))
	f.r.HandleFrame(upd("b1", "t:10", 7, 9))
	if err := f.snaps.Put(ctx, "b1", "t:10", 9, snapBody(9)); err != nil {
		t.Fatal(err)
	}

	resume := func(since uint64, epoch string) []Frame {
		t.Helper()
		s := &frameLog{}
		sub, err := f.r.Subscribe(ctx, "b1", "r", top10, &since, epoch, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer f.r.Unsubscribe(sub)
		return s.all()
	}
	// Inside the retained frames: the chained updates only.
	check(t, resume(7, "e1"), "r", step{"subscribed", 0, 9}, step{"update", 7, 9})
	check(t, resume(5, "e1"), "r", step{"subscribed", 0, 9}, step{"update", 5, 7}, step{"update", 7, 9})
	check(t, resume(9, "e1"), "r", step{"subscribed", 0, 9})
	// Outside them, or another epoch: a snapshot (here the one known, and
	// the updates from it).
	check(t, resume(3, "e1"), "r", step{"subscribed", 0, 9}, step{"snapshot", 0, 5}, step{"update", 5, 7}, step{"update", 7, 9})
	check(t, resume(7, "e0"), "r", step{"subscribed", 0, 9}, step{"snapshot", 0, 5}, step{"update", 5, 7}, step{"update", 7, 9})

	// Past the history window the frames are forgotten: a resume gets the
	// latest snapshot, read from segsnap.
	now.Add(int64(2 * time.Minute))
	check(t, resume(7, "e1"), "r", step{"subscribed", 0, 9}, step{"snapshot", 0, 9})
	f.r.HandleFrame(upd("b1", "t:10", 9, 10))
	check(t, resume(9, "e1"), "r", step{"subscribed", 0, 10}, step{"update", 9, 10})
	check(t, first.all(), "first", step{"subscribed", 0, 5}, step{"snapshot", 0, 5}, step{"update", 5, 7}, step{"update", 7, 9}, step{"update", 9, 10})
}

func TestRemoteNewSubscriberWaitsForFramesToReachSnapshot(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{MaxCatchUp: 1})
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Subscribe(ctx, "b1", "a", top10, nil, "", &frameLog{}, nil); err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 5, 6))
	f.r.HandleFrame(upd("b1", "t:10", 6, 7)) // two updates from the snapshot known: more than MaxCatchUp
	// The fan-out is ahead: it stored 8, and the update to 8 is on its way.
	if err := f.snaps.Put(ctx, "b1", "t:10", 8, snapBody(8)); err != nil {
		t.Fatal(err)
	}
	s := &frameLog{}
	done := make(chan error, 1)
	go func() {
		_, err := f.r.Subscribe(ctx, "b1", "late", top10, nil, "", s, nil)
		done <- err
	}()
	// Until the update to 8 arrives, the late subscriber gets nothing.
	f.r.HandleFrame(upd("b1", "t:10", 7, 8))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 8, 9))
	check(t, s.all(), "late", step{"subscribed", 0, 8}, step{"snapshot", 0, 8}, step{"update", 8, 9})
}

func TestRemoteNewSegment(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()

	// The fan-out stores the first snapshot a little later.
	s1 := &frameLog{}
	done := make(chan error, 1)
	go func() {
		_, err := f.r.Subscribe(ctx, "b1", "a", top10, nil, "", s1, nil)
		done <- err
	}()
	waitUntil(t, "the registration", func() bool { return len(f.segments(t, "b1")) == 1 })
	if err := f.snaps.Put(ctx, "b1", "t:10", 3, snapBody(3)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check(t, s1.all(), "a", step{"subscribed", 0, 3}, step{"snapshot", 0, 3})

	// Or its snapshot frame arrives first.
	p := Spec{Kind: Participant, ParticipantID: "p1"}
	s2 := &frameLog{}
	go func() {
		_, err := f.r.Subscribe(ctx, "b1", "a", p, nil, "", s2, nil)
		done <- err
	}()
	var err error
	waitUntil(t, "the subscription", func() bool {
		f.r.HandleFrame(bus.Frame{Board: "b1", Segment: "p:p1", Kind: bus.KindSnapshot, Version: 4, Payload: snapBody(4)})
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.all(); len(got) != 2 || got[1].Type != "snapshot" || got[1].Version != 4 || !bytes.Equal(got[1].Body, snapBody(4)) {
		t.Fatalf("participant segment: %v", describe(got))
	}
}

func TestRemoteSnapshotUnavailable(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{SnapshotWait: 50 * time.Millisecond})
	_, err := f.r.Subscribe(context.Background(), "b1", "a", top10, nil, "", &frameLog{}, nil)
	if !errors.Is(err, ErrSnapshotUnavailable) {
		t.Fatalf("got %v", err)
	}
	if got := f.segments(t, "b1"); len(got) != 0 {
		t.Fatalf("registry after a failed subscribe: %v", got)
	}
	if f.fc.isWatched("b1") {
		t.Fatal("still watched after a failed subscribe")
	}
}

func TestRemoteStatusReachesEachConnectionOnce(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()
	for _, key := range []string{"t:10", "p:p1"} {
		if err := f.snaps.Put(ctx, "b1", key, 5, snapBody(5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.snaps.Put(ctx, "b2", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	conn1, conn2, other := &frameLog{}, &frameLog{}, &frameLog{}
	for _, s := range []struct {
		sink  *frameLog
		board string
		id    string
		spec  Spec
	}{
		{conn1, "b1", "a", top10}, {conn1, "b1", "b", Spec{Kind: Participant, ParticipantID: "p1"}},
		{conn2, "b1", "a", top10}, {other, "b2", "a", top10},
	} {
		if _, err := f.r.Subscribe(ctx, s.board, s.id, s.spec, nil, "", s.sink, nil); err != nil {
			t.Fatal(err)
		}
	}
	status := StatusFrame("paused", 9).Body
	f.r.HandleFrame(bus.Frame{Board: "b1", Kind: bus.KindStatus, Version: 9, Payload: status})
	for name, s := range map[string]*frameLog{"conn1": conn1, "conn2": conn2} {
		var got [][]byte
		for _, fr := range s.all() {
			if fr.Type == "status" {
				got = append(got, fr.AppendJSON(nil))
			}
		}
		if len(got) != 1 || !bytes.Equal(got[0], status) {
			t.Fatalf("%s: status frames %q", name, got)
		}
	}
	for _, fr := range other.all() {
		if fr.Type == "status" {
			t.Fatal("another board's viewer got the status")
		}
	}
}

func TestRemoteSlowSinkIsDropped(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dropped []*Subscription
	onDrop := func(s *Subscription) {
		mu.Lock()
		dropped = append(dropped, s)
		mu.Unlock()
	}
	slow, fast := &frameLog{limit: 3}, &frameLog{}
	subSlow, err := f.r.Subscribe(ctx, "b1", "a", top10, nil, "", slow, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	subFast, err := f.r.Subscribe(ctx, "b1", "x", top10, nil, "", fast, onDrop)
	if err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 5, 6))
	f.r.HandleFrame(upd("b1", "t:10", 6, 7)) // slow is full
	f.r.HandleFrame(upd("b1", "t:10", 7, 8))
	mu.Lock()
	got := slices.Clone(dropped)
	mu.Unlock()
	if len(got) != 1 || got[0] != subSlow || !subSlow.Dropped() || subFast.Dropped() {
		t.Fatalf("dropped %v (slow %v)", got, subSlow.Dropped())
	}
	check(t, slow.all(), "a", step{"subscribed", 0, 5}, step{"snapshot", 0, 5}, step{"update", 5, 6})
	check(t, fast.all(), "x", step{"subscribed", 0, 5}, step{"snapshot", 0, 5}, step{"update", 5, 6}, step{"update", 6, 7}, step{"update", 7, 8})
	f.r.Unsubscribe(subSlow) // after a drop: harmless

	// A sink full from the start: the subscription comes back dropped.
	full := &frameLog{limit: 1}
	sub, err := f.r.Subscribe(ctx, "b1", "y", top10, nil, "", full, onDrop)
	if err != nil || !sub.Dropped() {
		t.Fatalf("full sink: %v, dropped %v", err, sub != nil && sub.Dropped())
	}
	mu.Lock()
	n := len(dropped)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("onDrop calls: %d", n)
	}

	// The drops released their registrations: the last unsubscribe clears it.
	f.r.Unsubscribe(subFast)
	waitUntil(t, "the registry to empty", func() bool { return len(f.segments(t, "b1")) == 0 })
	waitUntil(t, "the board to be unwatched", func() bool { return !f.fc.isWatched("b1") })
}

// Two gateways fed the same frames through the in-process bus give their
// viewers the same bytes after the prefix, gaps and stale frames included.
func TestRemoteTwoGatewaysSameFrames(t *testing.T) {
	rdb, prefix := remoteRedis(t)
	ctx := context.Background()
	snaps := segsnap.New(rdb, prefix)
	reg := registry.New(rdb, registry.Options{Prefix: prefix})
	l := bus.NewLocal(bus.LocalOptions{})
	var remotes []*Remote
	for _, id := range []string{"gw1", "gw2"} {
		m, err := reg.NewMember(registry.Gateway{ID: id, URL: "ws://" + id}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := NewRemote(RemoteOptions{Snapshots: snaps, Member: m, Epoch: "e1"})
		fc := l.NewFrameConsumer(r.HandleFrame)
		t.Cleanup(fc.Close)
		r.SetFrames(fc)
		remotes = append(remotes, r)
	}
	if err := snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	sinks := []*frameLog{{}, {}, {}}
	for i, s := range sinks {
		if _, err := remotes[min(i, 1)].Subscribe(ctx, "b1", fmt.Sprintf("v%d", i), top10, nil, "", s, nil); err != nil {
			t.Fatal(err)
		}
	}
	segs, err := reg.Segments(ctx, "b1")
	if err != nil || segs.Gateways["t:10"] != 2 {
		t.Fatalf("registry: %+v, %v", segs, err)
	}
	pub := func(fr bus.Frame) {
		l.PublishFrame(fr)
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pub(upd("b1", "t:10", 5, 6))
	pub(upd("b1", "t:10", 4, 5)) // stale
	pub(upd("b1", "t:10", 6, 8))
	if err := snaps.Put(ctx, "b1", "t:10", 11, snapBody(11)); err != nil {
		t.Fatal(err)
	}
	pub(upd("b1", "t:10", 11, 12)) // 8 -> 11 lost
	pub(upd("b1", "t:10", 12, 13))
	pub(bus.Frame{Board: "b1", Kind: bus.KindStatus, Version: 13, Payload: StatusFrame("paused", 13).Body})
	want := []step{{"subscribed", 0, 5}, {"snapshot", 0, 5}, {"update", 5, 6}, {"update", 6, 8}, {"snapshot", 0, 11}, {"update", 11, 12}, {"update", 12, 13}}
	for i, s := range sinks {
		// The status is the board's, not the segment's: it may overtake
		// the segment's frames buffered while its snapshot is read.
		got := s.waitLen(t, len(want)+1)
		var data, status []Frame
		for _, fr := range got {
			if fr.Type == "status" {
				status = append(status, fr)
			} else {
				data = append(data, fr)
			}
		}
		check(t, data, fmt.Sprintf("v%d", i), want...)
		if len(status) != 1 || !bytes.Equal(status[0].Body, StatusFrame("paused", 13).Body) {
			t.Fatalf("v%d: status frames %v", i, describe(status))
		}
	}
}
