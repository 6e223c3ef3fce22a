package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

type evSinkI func(store.Event)

func (s evSinkI) Publish(e store.Event) { s(e) }

// seededHub is a hub over an in-memory store that holds board "b" with n
// participants p0..p<n-1> (participant i scores i). source, if not nil,
// wraps the store for the hub's reads.
func seededHub(n, phases int, source func(*memory.Store) fanout.Source) (*fanout.Hub, *memory.Store) {
	ctx := context.Background()
	var hub *fanout.Hub
	mem := memory.New(memory.Options{Epoch: "ep", Sink: evSinkI(func(e store.Event) { hub.Publish(e) })})
	var src fanout.Source = mem
	if source != nil {
		src = source(mem)
	}
	hub = fanout.New(src, fanout.Options{Epoch: "ep", Phases: phases, History: time.Hour})
	mem.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	for i := range n {
		mem.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprint("p", i), Score: uint64(i)}}, res)
	}
	return hub, mem
}

// ownedConn is a connection of g to board "b" whose queue the test owns:
// nothing is handed to a writer, the test takes the frames.
func ownedConn(g *Gateway, shard int) *wsConn {
	c := &wsConn{g: g, board: "b", subs: map[string]*wsSub{}, shard: shard}
	c.queue = c.first[:0]
	c.scheduled = true
	return c
}

// hookedStore runs a hook inside some reads: things that happen while a
// flush or a subscription is reading (outside the hub's locks).
type hookedStore struct {
	*memory.Store
	rng   *rand.Rand
	hook  func()
	depth int
	names map[string]string // display names filled on the way out, as board.Reader does
}

func (s *hookedStore) fill(es []store.Entry) {
	for i := range es {
		es[i].DisplayName = s.names[es[i].ParticipantID]
	}
}

func (s *hookedStore) maybe() {
	if s.hook != nil && s.depth < 1 && s.rng.IntN(3) == 0 {
		s.depth++
		s.hook()
		s.depth--
	}
}

func (s *hookedStore) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	s.maybe()
	p, err := s.Store.Page(ctx, board, offset, limit)
	s.fill(p.Entries)
	return p, err
}

func (s *hookedStore) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	s.maybe()
	p, err := s.Store.Around(ctx, board, participant, limit)
	s.fill(p.Entries)
	return p, err
}

func (s *hookedStore) Participant(ctx context.Context, board, participant string, n int) (store.ParticipantView, error) {
	s.maybe()
	v, err := s.Store.Participant(ctx, board, participant, n)
	v.Entry.DisplayName = s.names[v.Entry.ParticipantID]
	return v, err
}

// iwin is a client's copy of one subscription (docs/LIVE.md rules).
type iwin struct {
	version      int64
	offset, size int64
	entries      map[int64]string
	part         string
	got          bool
}

func ientry(m map[string]any) string {
	if n, ok := m["display_name"]; ok {
		return fmt.Sprintf("%s:%v:%v", m["participant_id"], m["score"], n)
	}
	return fmt.Sprintf("%s:%v", m["participant_id"], m["score"])
}

func inum(v any) int64 { f, _ := v.(float64); return int64(f) }

// ireplay applies frames (parsed) for id; it reports a broken chain or an
// update after a resync that no snapshot followed.
func ireplay(frames []map[string]any, id string) (*iwin, error) {
	w := &iwin{}
	for _, m := range frames {
		if m["id"] != id {
			continue
		}
		switch m["type"] {
		case "snapshot":
			w.got, w.version, w.entries, w.part = true, inum(m["version"]), map[int64]string{}, ""
			if !w.apply(m, "entries") {
				continue
			}
		case "update":
			if !w.got || inum(m["prev_version"]) != w.version {
				return w, fmt.Errorf("%s: update %v->%v after version %d (got=%v)", id, m["prev_version"], m["version"], w.version, w.got)
			}
			w.version = inum(m["version"])
			if !w.apply(m, "changes") {
				continue
			}
			for r := range w.entries {
				if r <= w.offset || r > w.offset+w.size {
					delete(w.entries, r)
				}
			}
		case "resync":
			w.got = false
		}
	}
	return w, nil
}

// apply takes a snapshot's or update's participant, or its list under key
// (entries or changes); it reports whether the message held a list.
func (w *iwin) apply(m map[string]any, key string) bool {
	if p, ok := m["participant"]; ok {
		w.part = ""
		if p != nil {
			w.part = ientry(p.(map[string]any))
		}
		return false
	}
	w.offset, w.size = inum(m["offset"]), inum(m["size"])
	for _, e := range m[key].([]any) {
		w.entries[inum(e.(map[string]any)["rank"])] = ientry(e.(map[string]any))
	}
	return true
}

func (w *iwin) list() []string {
	var out []string
	for r := w.offset + 1; r <= w.offset+w.size; r++ {
		out = append(out, w.entries[r])
	}
	return out
}

func (w *iwin) equal(o *iwin) bool {
	return w.got == o.got && w.version == o.version && w.part == o.part && w.offset == o.offset &&
		slices.Equal(w.list(), o.list())
}

func parseFrames(t *testing.T, fs []fanout.Frame) []map[string]any {
	out := make([]map[string]any, 0, len(fs))
	for _, f := range fs {
		var m map[string]any
		if err := json.Unmarshal(f.AppendJSON(nil), &m); err != nil {
			t.Fatalf("frame is not JSON: %v: %s", err, f.AppendJSON(nil))
		}
		out = append(out, m)
	}
	return out
}

// TestConflateUnderInterleavings drives the real wsConn (its queue, its
// subscribe/unsubscribe/resync paths and conflate) against a real hub, with
// the test as the queue's owner: frames are "written" a few at a time,
// clients subscribe again with and without since_version, the queue fills
// up (resync), flushes run phase by phase while other things happen inside
// their reads. Each conflate must leave every id's client in the state the
// frames it replaced would have left it (same version, same window), with
// unbroken chains; at the end every client has the store's window.
func TestConflateUnderInterleavings(t *testing.T) {
	runSeeds(t, func(t *testing.T, seed uint64) { conflateStress(t, seed, false) })
}

// TestConflateUnderInterleavingsWithRenames: the same, on a board whose
// participants have profiles and rename themselves now and then (a PUT
// /v1/participants/{pid}: no store event, no new version). A merged update
// must leave the client where the updates it replaced would have.
func TestConflateUnderInterleavingsWithRenames(t *testing.T) {
	runSeeds(t, func(t *testing.T, seed uint64) { conflateStress(t, seed, true) })
}

// runSeeds runs f for seeds 1..40 (CONFLATE_SEEDS sets the last one).
func runSeeds(t *testing.T, f func(t *testing.T, seed uint64)) {
	seeds := uint64(40)
	if s := os.Getenv("CONFLATE_SEEDS"); s != "" {
		fmt.Sscan(s, &seeds)
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { f(t, seed) })
	}
}

func conflateStress(t *testing.T, seed uint64, renames bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 11))
	var src *hookedStore
	hub, mem := seededHub(0, 1+rng.IntN(4), func(m *memory.Store) fanout.Source {
		src = &hookedStore{Store: m, rng: rng, names: map[string]string{}}
		return src
	})
	res := make([]store.Result, 1)
	submit := func() {
		pid := fmt.Sprint("p", rng.IntN(20))
		if renames && rng.IntN(6) == 0 {
			src.names[pid] = fmt.Sprint("n", rng.IntN(1000))
			return
		}
		if rng.IntN(8) == 0 {
			mem.Remove(ctx, "b", pid)
			return
		}
		mem.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: uint64(rng.IntN(30)), AchievedAt: int64(rng.IntN(3))}}, res)
	}
	for range 15 {
		submit()
	}
	const sendQueue = 24
	g := New(hub, Options{SendQueue: sendQueue, MaxSubscriptions: 8})
	c := ownedConn(g, 1+rng.IntN(8))
	b := &batch{counts: &writeCounts{}}

	specs := []fanout.Spec{{Kind: fanout.Top, Limit: 3}, {Kind: fanout.Top, Limit: 6},
		{Kind: fanout.Participant, ParticipantID: "p3"}, {Kind: fanout.Around, ParticipantID: "p5", Radius: 1}}
	ids := []string{"a", "b", "c", "d"}
	specOf := map[string]fanout.Spec{}
	var delivered []map[string]any
	queue := func() []fanout.Frame {
		c.qmu.Lock()
		defer c.qmu.Unlock()
		return slices.Clone(c.queue)
	}
	views := func(extra []fanout.Frame) map[string]*iwin {
		all := append(slices.Clone(delivered), parseFrames(t, extra)...)
		out := map[string]*iwin{}
		for _, id := range ids {
			w, err := ireplay(all, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = w
		}
		return out
	}
	nested := false
	act := func() {
		r := rng.IntN(20)
		if nested && r >= 13 {
			r = rng.IntN(13) // inside a read: submissions and the writer only
		}
		switch {
		case r < 7:
			submit()
		case r < 10: // the writer: conflate, as writeQueued does first
			before := queue()
			c.conflate(b)
			after := queue()
			if len(after) < len(before) {
				vb, va := views(before), views(after)
				for _, id := range ids {
					if !vb[id].equal(va[id]) {
						t.Fatalf("seed %d: %s after merging differs:\n before %+v %v\n after  %+v %v\nqueue before %v\nqueue after %v",
							seed, id, *vb[id], vb[id].list(), *va[id], va[id].list(), parseFrames(t, before), parseFrames(t, after))
					}
				}
			}
		case r < 12: // the writer writes a few frames
			c.qmu.Lock()
			k := min(len(c.queue), 1+rng.IntN(3))
			w := slices.Clone(c.queue[:k])
			c.queue = c.queue[k:]
			c.qmu.Unlock()
			delivered = append(delivered, parseFrames(t, w)...)
			if len(queue()) == 0 {
				c.mu.Lock()
				resume := c.waiting
				c.waiting = false
				c.mu.Unlock()
				if resume && !nested {
					c.resubscribe()
				} else if resume {
					c.mu.Lock()
					c.waiting = true
					c.mu.Unlock()
				}
			}
		case r < 16:
			hub.Flush(ctx) // a tick of every phase
		case r < 17:
			id := ids[rng.IntN(len(ids))]
			c.unsubscribe(id)
		default: // (re)subscribe, resuming half the time
			if len(queue()) >= sendQueue {
				return
			}
			id := ids[rng.IntN(len(ids))]
			spec, ok := specOf[id]
			if !ok || rng.IntN(4) == 0 {
				spec = specs[rng.IntN(len(specs))]
			}
			var since *uint64
			if rng.IntN(2) == 0 && spec == specOf[id] {
				if w := views(queue())[id]; w.got {
					v := uint64(w.version)
					since = &v
				}
			}
			specOf[id] = spec
			c.subscribe(id, spec, since, "ep")
		}
	}
	src.hook = func() { nested = true; act(); nested = false }
	for step := 0; step < 500; step++ {
		act()
	}
	src.hook = nil
	// Drain, let everything settle, drain again.
	for round := 0; round < 4; round++ {
		c.conflate(b)
		c.qmu.Lock()
		w := slices.Clone(c.queue)
		c.queue = c.queue[:0]
		c.qmu.Unlock()
		delivered = append(delivered, parseFrames(t, w)...)
		c.mu.Lock()
		resume := c.waiting
		c.waiting = false
		c.mu.Unlock()
		if resume {
			c.resubscribe()
		}
		hub.Flush(ctx)
	}
	c.qmu.Lock()
	delivered = append(delivered, parseFrames(t, c.queue)...)
	c.qmu.Unlock()
	final := views(nil)
	if testing.Verbose() {
		t.Logf("seed %d: %d frames delivered, %d updates merged away, %d resyncs", seed, len(delivered), b.counts.merged.Load(), g.stats.resyncs.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.subs {
		if s.sub == nil || !s.ready {
			continue
		}
		w := final[id]
		switch s.spec.Kind {
		case fanout.Top:
			p, _ := mem.Page(ctx, "b", 0, s.spec.Limit)
			var want []string
			for _, e := range p.Entries {
				want = append(want, fmt.Sprintf("%s:%d", e.ParticipantID, e.Score))
			}
			got := w.list()
			for i, e := range got { // names are not versioned: the merge check above covers them
				if parts := strings.SplitN(e, ":", 3); len(parts) == 3 {
					got[i] = parts[0] + ":" + parts[1]
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d: %s (%v) ends at %v, store %v", seed, id, s.spec, got, want)
			}
		}
	}
}

// TestConflateConcurrent: the queue's owner conflates and writes while the
// hub flushes (frames arrive between conflate's scan and its replacement),
// submissions run, and a "reader" resubscribes and unsubscribes. Chains stay
// unbroken and every client ends at the store's window. Run with -race.
func TestConflateConcurrent(t *testing.T) {
	ctx := context.Background()
	hub, mem := seededHub(20, 4, nil)
	res := make([]store.Result, 1)
	g := New(hub, Options{SendQueue: 64, MaxSubscriptions: 8})
	c := ownedConn(g, 1)
	specs := map[string]fanout.Spec{"a": {Kind: fanout.Top, Limit: 5}, "b": {Kind: fanout.Top, Limit: 12},
		"c": {Kind: fanout.Participant, ParticipantID: "p3"}, "d": {Kind: fanout.Around, ParticipantID: "p5", Radius: 2}}
	for id, s := range specs {
		c.subscribe(id, s, nil, "")
	}
	stop := make(chan struct{})
	done := make(chan struct{}, 3)
	go func() { // submissions
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				done <- struct{}{}
				return
			default:
			}
			pid := fmt.Sprint("p", rng.IntN(25))
			if rng.IntN(10) == 0 {
				mem.Remove(ctx, "b", pid)
			} else {
				mem.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: uint64(rng.IntN(100))}}, res)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	go func() { // the hub's ticks
		for tick := 0; ; tick++ {
			select {
			case <-stop:
				done <- struct{}{}
				return
			default:
			}
			hub.Flush(ctx)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	go func() { // the reader: subscribes again, with and without since_version
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				done <- struct{}{}
				return
			default:
			}
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			ids := []string{"a", "b", "c", "d"}
			id := ids[rng.IntN(4)]
			if rng.IntN(5) == 0 {
				c.unsubscribe(id)
				c.subscribe(id, specs[id], nil, "")
			}
		}
	}()
	b := &batch{counts: &writeCounts{}}
	var delivered []map[string]any
	rng := rand.New(rand.NewPCG(5, 6))
	deadline := time.Now().Add(3 * time.Second)
	write := func(all bool) {
		c.conflate(b)
		c.qmu.Lock()
		k := len(c.queue)
		if !all {
			k = min(k, 1+rng.IntN(4))
		}
		w := slices.Clone(c.queue[:k])
		c.queue = c.queue[k:]
		empty := len(c.queue) == 0
		c.qmu.Unlock()
		delivered = append(delivered, parseFrames(t, w)...)
		if empty {
			c.mu.Lock()
			resume := c.waiting
			c.waiting = false
			c.mu.Unlock()
			if resume {
				c.resubscribe()
			}
		}
	}
	for time.Now().Before(deadline) {
		write(false)
		if rng.IntN(4) == 0 {
			time.Sleep(time.Millisecond) // fall behind
		}
	}
	close(stop)
	for range 3 {
		<-done
	}
	for range 3 {
		write(true)
		hub.Flush(ctx)
	}
	write(true)
	for id, s := range specs {
		w, err := ireplay(delivered, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Kind == fanout.Top {
			p, _ := mem.Page(ctx, "b", 0, s.Limit)
			var want []string
			for _, e := range p.Entries {
				want = append(want, fmt.Sprintf("%s:%d", e.ParticipantID, e.Score))
			}
			if !slices.Equal(w.list(), want) {
				t.Fatalf("%s ends at %v, store %v", id, w.list(), want)
			}
		}
	}
	t.Logf("%d frames delivered, %d updates merged away, %d resyncs", len(delivered), b.counts.merged.Load(), g.stats.resyncs.Load())
}
