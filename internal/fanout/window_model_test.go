package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// modelBoard keeps the whole ranking at every version, so that every state a
// client reconstructs can be compared with the board at that version.
type modelBoard struct {
	st    *memory.Store
	board string
	at    map[uint64][]store.Entry
}

func (m *modelBoard) record(t *testing.T) {
	t.Helper()
	p, err := m.st.Page(context.Background(), m.board, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	m.at[p.Version] = p.Entries
}

// window is what the spec's window holds at version v.
func (m *modelBoard) window(t *testing.T, spec Spec, v uint64) (list []store.Entry, part *store.Entry, offset int64) {
	t.Helper()
	all, ok := m.at[v]
	if !ok {
		t.Fatalf("no record of version %d", v)
	}
	switch spec.Kind {
	case Top:
		return all[:min(spec.Limit, len(all))], nil, 0
	case Participant:
		for i := range all {
			if all[i].ParticipantID == spec.ParticipantID {
				e := all[i]
				return nil, &e, 0
			}
		}
		return nil, nil, 0
	}
	for i := range all {
		if all[i].ParticipantID == spec.ParticipantID {
			lo, hi := max(0, i-spec.Radius), min(len(all), i+spec.Radius+1)
			return all[lo:hi], nil, int64(lo)
		}
	}
	return nil, nil, 0
}

// check compares a client's view with the board at the view's version.
func (m *modelBoard) check(t *testing.T, what string, spec Spec, v *view) {
	t.Helper()
	list, part, offset := m.window(t, spec, v.version)
	if spec.Kind == Participant {
		if (v.part == nil) != (part == nil) || (v.part != nil && *v.part != *part) {
			t.Fatalf("%s (%v) at version %d: participant %v, board %v", what, spec, v.version, v.part, part)
		}
		return
	}
	got := v.list()
	if len(got) == 0 && len(list) == 0 {
		return
	}
	if !slices.Equal(got, list) || v.offset != offset {
		t.Fatalf("%s (%v) at version %d: window offset %d %v\nboard offset %d %v", what, spec, v.version, v.offset, got, offset, list)
	}
}

// checkEach applies frames one by one and checks every state reached.
func (m *modelBoard) checkEach(t *testing.T, what string, spec Spec, frames []map[string]any, id string) *view {
	t.Helper()
	for i := range frames {
		if frames[i]["type"] != "snapshot" && frames[i]["type"] != "update" {
			continue
		}
		v := apply(t, frames[:i+1], id)
		if v.got {
			m.check(t, fmt.Sprintf("%s frame %d", what, i), spec, v)
		}
	}
	return apply(t, frames, id)
}

// TestEveryFrameMatchesTheBoardAtItsVersion: on boards of both sort orders
// and both update policies, with ties, arrivals, removals (of the watched
// participants too) and a board that grows and shrinks, viewers of windows at
// the top, in the middle and at the bottom come, go, resume (from their own
// version, from a version ahead, from another epoch) in every phase, and
// some fall behind and get their updates merged. Every state each viewer
// reconstructs, after every frame, is exactly the board's window at that
// frame's version.
func TestEveryFrameMatchesTheBoardAtItsVersion(t *testing.T) {
	seeds := uint64(40)
	if s := os.Getenv("MODEL_SEEDS"); s != "" {
		fmt.Sscan(s, &seeds)
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		opts := store.BoardOptions{}
		if seed%2 == 0 {
			opts.Order = store.Ascending
		}
		if seed%4 >= 2 {
			opts.Policy = store.PolicyBest
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { windowModel(t, seed, opts) })
	}
}

type modelClient struct {
	id      string
	spec    Spec
	phase   uint32
	history []map[string]any
	cur     *phased
	sub     *Subscription
	applied int // frames of cur already merged away or applied by conflate
}

func windowModel(t *testing.T, seed uint64, opts store.BoardOptions) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 11))
	now := time.Unix(1000, 0)
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	hub = New(st, Options{Epoch: "ep", Phases: 3, History: time.Hour, Now: func() time.Time { return now }})
	if err := st.CreateBoard(ctx, "b", opts); err != nil {
		t.Fatal(err)
	}
	m := &modelBoard{st: st, board: "b", at: map[uint64][]store.Entry{}}
	m.record(t)
	res := make([]store.Result, 1)
	npart := 6 + rng.IntN(14)
	submit := func() {
		pid := fmt.Sprint("p", rng.IntN(npart))
		if rng.IntN(8) == 0 {
			if _, err := st.Remove(ctx, "b", pid); err == nil {
				m.record(t)
			}
			return
		}
		score := uint64(rng.IntN(12))
		if rng.IntN(6) == 0 {
			score = uint64(rng.IntN(1000))
		}
		if err := st.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: score, AchievedAt: int64(rng.IntN(3))}}, res); err != nil {
			t.Fatal(err)
		}
		if res[0].Updated {
			m.record(t)
		}
	}
	for range rng.IntN(npart) {
		submit()
	}
	specs := []Spec{
		{Kind: Top, Limit: 1}, {Kind: Top, Limit: 3}, {Kind: Top, Limit: 10},
		{Kind: Participant, ParticipantID: "p0"}, {Kind: Participant, ParticipantID: "p5"},
		{Kind: Around, ParticipantID: "p0", Radius: 0}, {Kind: Around, ParticipantID: "p1", Radius: 1},
		{Kind: Around, ParticipantID: "p2", Radius: 3}, {Kind: Around, ParticipantID: "p5", Radius: 20},
	}
	var clients []*modelClient
	for i := range 14 {
		clients = append(clients, &modelClient{id: fmt.Sprint("c", i), spec: specs[rng.IntN(len(specs))], phase: uint32(rng.IntN(3))})
	}
	frames := func(c *modelClient) []map[string]any {
		out := slices.Clone(c.history)
		if c.cur != nil {
			for _, f := range c.cur.all() {
				if f["type"] != "subscribed" {
					out = append(out, f)
				}
			}
		}
		return out
	}
	end := func(c *modelClient) {
		if c.sub == nil {
			return
		}
		hub.Unsubscribe(c.sub)
		c.history = frames(c)
		c.sub, c.cur = nil, nil
	}
	start := func(c *modelClient) {
		var since *uint64
		epoch := "ep"
		resume := false
		if len(c.history) > 0 && rng.IntN(3) > 0 {
			v := apply(t, c.history, c.id)
			if v.got {
				s := v.version
				switch rng.IntN(6) {
				case 0:
					s += uint64(1 + rng.IntN(3)) // ahead of anything: a snapshot
				case 1:
					epoch = "other" // another life: a snapshot
				case 2:
					s = 0
				default:
					resume = true
				}
				since = &s
			}
		}
		if rng.IntN(3) == 0 {
			c.phase = uint32(rng.IntN(3))
		}
		rec := &phased{phase: c.phase}
		var unchanged bool
		sub, err := hub.Subscribe(ctx, "b", c.id, c.spec, since, epoch, unchangedSink{rec, &unchanged}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := rec.all()
		if unchanged {
			// The catch-up says the window is as it was at since.
			l0, p0, o0 := m.window(t, c.spec, *since)
			l1, p1, o1 := m.window(t, c.spec, uint64(num(got[1]["version"])))
			if !slices.Equal(l0, l1) || o0 != o1 || (p0 == nil) != (p1 == nil) || (p0 != nil && *p0 != *p1) {
				t.Fatalf("%s (%v): catch-up from %d to %v marked unchanged, but the window went from %v %v to %v %v",
					c.id, c.spec, *since, got[1]["version"], l0, p0, l1, p1)
			}
		}
		if len(got) != 2 || got[0]["type"] != "subscribed" {
			t.Fatalf("%s: subscribe answered %v", c.id, got)
		}
		if got[1]["type"] == "update" {
			if since == nil || uint64(num(got[1]["prev_version"])) != *since || epoch != "ep" {
				t.Fatalf("%s (%v): since %v epoch %s answered %v", c.id, c.spec, since, epoch, got[1])
			}
			if _, ok := m.at[*since]; !ok {
				t.Fatalf("%s: catch-up from version %d, which the board never had", c.id, *since)
			}
		}
		if got[1]["type"] == "snapshot" || !resume {
			c.history = nil
			if got[1]["type"] == "update" {
				// A catch-up from a version the client did not hold (0, or
				// one ahead that the board has reached meanwhile): check it
				// from a copy of the window at that version.
				list, part, offset := m.window(t, c.spec, *since)
				c.history = []map[string]any{fakeSnapshot(c.id, *since, list, part, offset, c.spec)}
			}
		}
		c.cur, c.sub, c.applied = rec, sub, 0
	}
	merge := func(c *modelClient) {
		// A client that fell behind: its last two or more updates merged.
		fs := c.cur.all()
		var ups []int
		for i := max(c.applied, 2); i < len(fs); i++ {
			if fs[i]["type"] == "update" {
				ups = append(ups, i)
			}
		}
		if len(ups) < 2 {
			return
		}
		from, to := uint64(num(fs[ups[0]]["prev_version"])), uint64(num(fs[ups[len(ups)-1]]["version"]))
		mf, ok := hub.Conflate(c.sub, from, to)
		if !ok {
			return
		}
		var rec recorder
		rec.Send(mf)
		merged := rec.all()[0]
		c.cur.mu.Lock()
		kept := slices.Clone(c.cur.frames[:ups[0]])
		c.cur.frames = append(append(kept, merged), c.cur.frames[ups[len(ups)-1]+1:]...)
		c.cur.mu.Unlock()
		c.applied = len(kept) + 1
	}
	// current checks that a viewer's window is the board's at version now
	// (its own version may be older: a window that did not change keeps it).
	current := func(c *modelClient, now uint64) {
		t.Helper()
		v := apply(t, frames(c), c.id)
		if !v.got {
			return
		}
		m.check(t, c.id+" after its phase's flush", c.spec, &view{version: now, offset: v.offset, size: v.size, entries: v.entries, part: v.part, got: true})
	}
	tick := 0
	for step := 0; step < 500; step++ {
		switch r := rng.IntN(20); {
		case r < 8:
			submit()
		case r < 12:
			now = now.Add(100 * time.Millisecond / 3)
			hub.flush(ctx, tick%3)
			// Every viewer of the phase just flushed has the board's window now.
			cur, _ := st.Stats(ctx, "b")
			for _, c := range clients {
				if c.sub != nil && c.sub.seg.phase == tick%3 {
					current(c, cur.Version)
				}
			}
			tick++
		default:
			c := clients[rng.IntN(len(clients))]
			switch {
			case c.sub == nil:
				start(c)
			case r < 14:
				merge(c)
			case r < 17:
				end(c)
				start(c)
			default:
				end(c)
			}
		}
	}
	hub.Flush(ctx)
	cur, _ := st.Stats(ctx, "b")
	for _, c := range clients {
		m.checkEach(t, c.id, c.spec, frames(c), c.id)
		if c.sub != nil {
			current(c, cur.Version)
		}
	}
}

// fakeSnapshot is a snapshot frame of the window at version v.
func fakeSnapshot(id string, v uint64, list []store.Entry, part *store.Entry, offset int64, spec Spec) map[string]any {
	f := map[string]any{"type": "snapshot", "id": id, "version": float64(v)}
	if spec.Kind == Participant {
		if part == nil {
			f["participant"] = nil
		} else {
			f["participant"] = entryMap(*part)
		}
		return f
	}
	es := []any{}
	for _, e := range list {
		es = append(es, entryMap(e))
	}
	f["entries"], f["offset"], f["size"] = es, float64(offset), float64(len(list))
	return f
}

func entryMap(e store.Entry) map[string]any {
	return map[string]any{"rank": float64(e.Rank), "participant_id": e.ParticipantID, "score": float64(e.Score), "achieved_at": float64(e.AchievedAt)}
}

// unchangedSink notes whether a frame was marked Unchanged.
type unchangedSink struct {
	*phased
	unchanged *bool
}

func (s unchangedSink) Send(f Frame) bool {
	*s.unchanged = *s.unchanged || f.Unchanged
	return s.phased.Send(f)
}
