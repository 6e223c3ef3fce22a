// Package bustest is the conformance suite every bus implementation passes:
// per-leaderboard order across many leaderboards and partitions, consumer
// groups that split partitions and hand them over (gracefully, or after a
// member failed) without losing an event, and frame consumers that get the
// frames of the leaderboards they watch and only those.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/store"
)

// Env is one fresh bus (its own topics, groups and offsets).
type Env struct {
	Partitions       int
	Producer         bus.EventProducer
	NewConsumer      func(group string) bus.EventConsumer
	FrameProducer    bus.FrameProducer
	NewFrameConsumer func(fn func(bus.Frame)) (bus.FrameConsumer, error)
}

// Harness makes a fresh Env for a test; it registers its cleanup with t.
type Harness func(t *testing.T) *Env

// Wait is how long a condition may take to become true before the test
// fails. Nothing is measured against it: it only bounds a broken run.
var Wait = 90 * time.Second

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("OrderPerLeaderboard", func(t *testing.T) { testOrder(t, h(t)) })
	t.Run("GroupSplitAndHandover", func(t *testing.T) { testHandover(t, h(t), false) })
	t.Run("GroupHandoverAfterFailure", func(t *testing.T) { testHandover(t, h(t), true) })
	t.Run("FramesOfWatchedLeaderboards", func(t *testing.T) { testFrames(t, h(t)) })
	t.Run("FramesStartAtWatch", func(t *testing.T) { testFrameStart(t, h(t)) })
}

// WaitFor polls cond until it holds, failing the test after Wait.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ev is a test event.
func Ev(board string, version uint64) bus.Event {
	return bus.Event{Epoch: "e1", Event: store.Event{
		Leaderboard: board, Version: version, ParticipantID: fmt.Sprintf("p%d", version%7),
		HadOld: version%2 == 0, OldScore: version * 3, OldRank: int64(version % 11), NewScore: version * 5,
		NewRank: int64(version%13) + 1, AchievedAt: 1732600000000 + int64(version),
	}}
}

// delivery is one event as a member got it.
type delivery struct {
	member string
	ev     bus.Event
}

// Log records what every member of a group was handed, in the order handed.
type Log struct {
	mu    sync.Mutex
	all   []delivery
	owned map[string]map[int32]bool // member -> partitions
	bad   []string
}

func newLog() *Log { return &Log{owned: map[string]map[int32]bool{}} }

func (l *Log) failf(format string, args ...any) {
	l.bad = append(l.bad, fmt.Sprintf(format, args...))
}

// Member runs one consumer of a group, recording into the log. failAfter > 0
// makes its handler fail once it has handled that many events: it records
// the batch (as a fan-out that applied it) and then returns an error, like a
// process dying before its offsets were committed.
type Member struct {
	Name   string
	cancel context.CancelFunc
	done   chan error
}

var errInjected = errors.New("injected handler failure")

func (l *Log) start(env *Env, group, name string, failAfter int) *Member {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{Name: name, cancel: cancel, done: make(chan error, 1)}
	handled := 0
	l.mu.Lock()
	l.owned[name] = map[int32]bool{}
	l.mu.Unlock()
	h := bus.HandlerFuncs{
		OnAssigned: func(_ context.Context, ps []int32) {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, p := range ps {
				for other, o := range l.owned {
					if o[p] {
						l.failf("%s assigned partition %d still owned by %s", name, p, other)
					}
				}
				l.owned[name][p] = true
			}
		},
		OnRevoked: func(_ context.Context, ps []int32) {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, p := range ps {
				if !l.owned[name][p] {
					l.failf("%s revoked partition %d it did not own", name, p)
				}
				delete(l.owned[name], p)
			}
		},
		OnEvents: func(_ context.Context, p int32, evs []bus.Event) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			if !l.owned[name][p] {
				l.failf("%s handed events of partition %d it does not own", name, p)
			}
			for _, e := range evs {
				if got := bus.PartitionFor(e.Leaderboard, env.Partitions); got != p {
					l.failf("%s: event of %s in partition %d, not %d", name, e.Leaderboard, p, got)
				}
				l.all = append(l.all, delivery{name, e})
			}
			handled += len(evs)
			if failAfter > 0 && handled >= failAfter {
				return errInjected
			}
			return nil
		},
	}
	c := env.NewConsumer(group)
	go func() { m.done <- c.Run(ctx, h) }()
	return m
}

// Stop ends the member's Run and returns its result.
func (m *Member) Stop(t testing.TB) error {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		return err
	case <-time.After(Wait):
		t.Fatalf("%s: Run did not return", m.Name)
		return nil
	}
}

func (l *Log) ownedBy(name string) []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.owned[name]))
}

func (l *Log) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *Log) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.bad {
		t.Error(s)
	}
}

// produceAll writes versions from..to of every board, each board's events in
// order from one goroutine of four, in batches of 1 to 8.
func produceAll(t *testing.T, p bus.EventProducer, boards []string, from, to uint64) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), from))
			mine := []string{}
			for i, b := range boards {
				if i%4 == w {
					mine = append(mine, b)
				}
			}
			next := map[string]uint64{}
			for _, b := range mine {
				next[b] = from
			}
			for len(mine) > 0 {
				var batch []bus.Event
				for range 1 + rng.IntN(8) {
					if len(mine) == 0 {
						break
					}
					i := rng.IntN(len(mine))
					b := mine[i]
					batch = append(batch, Ev(b, next[b]))
					if next[b]++; next[b] > to {
						mine = slices.Delete(mine, i, i+1)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), Wait)
				err := p.ProduceSync(ctx, batch...)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ProduceSync: %v", err)
	}
}

func boardNames(prefix string, n int) []string {
	bs := make([]string, n)
	for i := range bs {
		bs[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return bs
}

func allPartitions(n int) []int32 {
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

func testOrder(t *testing.T, env *Env) {
	l := newLog()
	m := l.start(env, "order", "a", 0)
	WaitFor(t, "the only member to own every partition", func() bool {
		return slices.Equal(l.ownedBy("a"), allPartitions(env.Partitions))
	})
	boards := boardNames("order", 60)
	const n = 40
	produceAll(t, env.Producer, boards, 1, n)
	WaitFor(t, "every event", func() bool { return l.count() >= len(boards)*n })
	if err := m.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	l.check(t)
	last := map[string]uint64{}
	parts := map[int32]bool{}
	for _, d := range l.all {
		if d.ev.Version != last[d.ev.Leaderboard]+1 {
			t.Fatalf("%s: version %d after %d", d.ev.Leaderboard, d.ev.Version, last[d.ev.Leaderboard])
		}
		if want := Ev(d.ev.Leaderboard, d.ev.Version); d.ev != want {
			t.Fatalf("event changed on the way: %+v, want %+v", d.ev, want)
		}
		last[d.ev.Leaderboard] = d.ev.Version
		parts[bus.PartitionFor(d.ev.Leaderboard, env.Partitions)] = true
	}
	for _, b := range boards {
		if last[b] != n {
			t.Errorf("%s: last version %d, want %d", b, last[b], n)
		}
	}
	if env.Partitions > 1 && len(parts) < 2 {
		t.Errorf("the leaderboards used %d partition(s) of %d", len(parts), env.Partitions)
	}
	if len(l.all) != len(boards)*n {
		t.Errorf("%d events delivered, want %d (no duplicates without a failure)", len(l.all), len(boards)*n)
	}
}

// testHandover: two members split the partitions; one leaves (gracefully, or
// by failing after it handled a batch it could not commit); the other takes
// its partitions over from the committed offsets. Every event is delivered;
// replayed ones are exactly those Dedup calls duplicates.
func testHandover(t *testing.T, env *Env, fail bool) {
	l := newLog()
	group := "handover"
	a := l.start(env, group, "a", 0)
	WaitFor(t, "a to own every partition", func() bool {
		return slices.Equal(l.ownedBy("a"), allPartitions(env.Partitions))
	})
	b := l.start(env, group, "b", 0)
	WaitFor(t, "a and b to split the partitions", func() bool {
		pa, pb := l.ownedBy("a"), l.ownedBy("b")
		return len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == env.Partitions
	})
	boards := boardNames("handover", 40)
	const n1, n2 = 30, 60
	produceAll(t, env.Producer, boards, 1, n1)
	WaitFor(t, "the first events", func() bool { return l.count() >= len(boards)*n1 })
	l.mu.Lock()
	for _, d := range l.all {
		p := bus.PartitionFor(d.ev.Leaderboard, env.Partitions)
		if !l.owned[d.member][p] {
			t.Errorf("%s got %s (partition %d) it does not own", d.member, d.ev.Leaderboard, p)
		}
	}
	l.mu.Unlock()

	var c *Member
	if fail {
		// A third member that fails on its first batch: it joins, takes some
		// partitions, handles events it never commits, and dies.
		c = l.start(env, group, "c", 1)
		WaitFor(t, "c to get partitions", func() bool { return len(l.ownedBy("c")) > 0 })
	}
	if err := a.Stop(t); err != nil {
		t.Fatalf("a: Run: %v", err)
	}
	produceAll(t, env.Producer, boards, n1+1, n2)
	if fail {
		select {
		case err := <-c.done:
			if !errors.Is(err, errInjected) {
				t.Fatalf("c: Run returned %v, want the handler's error", err)
			}
		case <-time.After(Wait):
			t.Fatal("c did not fail")
		}
	}
	WaitFor(t, "b to own every partition", func() bool {
		return slices.Equal(l.ownedBy("b"), allPartitions(env.Partitions))
	})
	WaitFor(t, "every event", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		seen := map[bus.Event]bool{}
		for _, d := range l.all {
			seen[d.ev] = true
		}
		return len(seen) == len(boards)*n2
	})
	if err := b.Stop(t); err != nil {
		t.Fatalf("b: Run: %v", err)
	}
	l.check(t)

	// What the fan-out tier saw, in order, through one Dedup: no gaps, every
	// version, and every replay a duplicate at or below the last version seen.
	d := bus.NewDedup()
	last := map[string]uint64{}
	dups := 0
	for _, x := range l.all {
		switch v := d.Check(&x.ev); v {
		case bus.Duplicate:
			dups++
			if x.ev.Version > last[x.ev.Leaderboard] {
				t.Fatalf("duplicate above the last version seen")
			}
		case bus.First, bus.Next:
			if x.ev.Version != last[x.ev.Leaderboard]+1 {
				t.Fatalf("%s: version %d after %d (%s)", x.ev.Leaderboard, x.ev.Version, last[x.ev.Leaderboard], v)
			}
			last[x.ev.Leaderboard] = x.ev.Version
		default:
			t.Fatalf("%s: %s at version %d after %d", x.ev.Leaderboard, v, x.ev.Version, last[x.ev.Leaderboard])
		}
	}
	for _, bd := range boards {
		if last[bd] != n2 {
			t.Errorf("%s: last version %d, want %d", bd, last[bd], n2)
		}
	}
	if fail && dups == 0 {
		t.Errorf("the failed member's uncommitted batch was not delivered again")
	}
	t.Logf("%d events delivered for %d, %d duplicates dropped", len(l.all), len(boards)*n2, dups)
}

// frameLog collects one frame consumer's frames.
type frameLog struct {
	mu     sync.Mutex
	frames []bus.Frame
}

func (f *frameLog) add(fr bus.Frame) {
	f.mu.Lock()
	fr.Payload = slices.Clone(fr.Payload)
	f.frames = append(f.frames, fr)
	f.mu.Unlock()
}

func (f *frameLog) of(board string) []bus.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bus.Frame
	for _, fr := range f.frames {
		if fr.Board == board {
			out = append(out, fr)
		}
	}
	return out
}

func (f *frameLog) boards() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for _, fr := range f.frames {
		m[fr.Board]++
	}
	return m
}

func frame(board string, v uint64) bus.Frame {
	return bus.Frame{Board: board, Segment: fmt.Sprintf("top:%d", 10*(v%3+1)), Kind: uint8(v % 4), Version: v, PrevVersion: v - 1,
		Payload: fmt.Appendf(nil, `,"prev_version":%d,"version":%d,"changes":[]}`, v-1, v)}
}

func watch(t *testing.T, fc bus.FrameConsumer, boards ...string) {
	t.Helper()
	for _, b := range boards {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		err := fc.Watch(ctx, b)
		cancel()
		if err != nil {
			t.Fatalf("Watch(%s): %v", b, err)
		}
	}
}

func flush(t *testing.T, p bus.FrameProducer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func testFrames(t *testing.T, env *Env) {
	boards := boardNames("frames", 12)
	var g1, g2 frameLog
	fc1, err := env.NewFrameConsumer(g1.add)
	if err != nil {
		t.Fatal(err)
	}
	defer fc1.Close()
	fc2, err := env.NewFrameConsumer(g2.add)
	if err != nil {
		t.Fatal(err)
	}
	defer fc2.Close()
	w1, w2 := boards[0:4], boards[3:7] // boards[3] is watched by both; 7.. by nobody
	watch(t, fc1, w1...)
	watch(t, fc1, w1[0]) // twice is once
	watch(t, fc2, w2...)

	const n = 25
	for v := uint64(1); v <= n; v++ {
		for _, b := range boards {
			env.FrameProducer.PublishFrame(frame(b, v))
		}
	}
	flush(t, env.FrameProducer)
	WaitFor(t, "every watched leaderboard's frames", func() bool {
		for _, b := range w1 {
			if len(g1.of(b)) < n {
				return false
			}
		}
		for _, b := range w2 {
			if len(g2.of(b)) < n {
				return false
			}
		}
		return true
	})
	check := func(name string, g *frameLog, watched []string) {
		for b, k := range g.boards() {
			if !slices.Contains(watched, b) {
				t.Errorf("%s got %d frames of %s, which it does not watch", name, k, b)
			}
		}
		for _, b := range watched {
			fs := g.of(b)
			if len(fs) != n {
				t.Errorf("%s: %d frames of %s, want %d", name, len(fs), b, n)
			}
			for i, f := range fs {
				want := frame(b, uint64(i+1))
				if f.Board != want.Board || f.Segment != want.Segment || f.Kind != want.Kind || f.Version != want.Version ||
					f.PrevVersion != want.PrevVersion || string(f.Payload) != string(want.Payload) {
					t.Fatalf("%s: frame %d of %s is %+v, want %+v", name, i, b, f, want)
				}
			}
		}
	}
	check("gateway 1", &g1, w1)
	check("gateway 2", &g2, w2)

	// After Unwatch, later frames of that board do not come.
	fc1.Unwatch(w1[1])
	env.FrameProducer.PublishFrame(frame(w1[1], n+1))
	for _, b := range w1 {
		if b != w1[1] {
			env.FrameProducer.PublishFrame(frame(b, n+1))
		}
	}
	flush(t, env.FrameProducer)
	WaitFor(t, "the frames after Unwatch", func() bool {
		for _, b := range w1 {
			if b != w1[1] && len(g1.of(b)) < n+1 {
				return false
			}
		}
		return true
	})
	if k := len(g1.of(w1[1])); k != n {
		t.Errorf("gateway 1 got %d frames of %s after unwatching it, want %d", k-n, w1[1], 0)
	}
}

// testFrameStart: a gateway gets the frames published after Watch, not the
// ones before (those come from the ranking store as a snapshot).
func testFrameStart(t *testing.T, env *Env) {
	b := "late-joiner"
	for v := uint64(1); v <= 5; v++ {
		env.FrameProducer.PublishFrame(frame(b, v))
	}
	flush(t, env.FrameProducer)
	var g frameLog
	fc, err := env.NewFrameConsumer(g.add)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	watch(t, fc, b)
	for v := uint64(6); v <= 8; v++ {
		env.FrameProducer.PublishFrame(frame(b, v))
	}
	flush(t, env.FrameProducer)
	WaitFor(t, "the frames after Watch", func() bool { return len(g.of(b)) >= 3 })
	fs := g.of(b)
	if len(fs) != 3 || fs[0].Version != 6 || fs[2].Version != 8 {
		vs := []uint64{}
		for _, f := range fs {
			vs = append(vs, f.Version)
		}
		t.Fatalf("got versions %v, want [6 7 8]", vs)
	}
}
