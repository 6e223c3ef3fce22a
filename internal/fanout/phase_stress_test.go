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

// hookSource runs a hook inside reads (the interleavings of a flush or a
// subscription whose read is in flight) and fails some reads.
type hookSource struct {
	*memory.Store
	rng   *rand.Rand
	fail  float64
	hook  func()
	depth int
}

func (s *hookSource) around(read func() error) error {
	if s.hook != nil && s.depth < 2 && s.rng.IntN(3) == 0 {
		s.depth++
		s.hook()
		s.depth--
	}
	if s.fail > 0 && s.rng.Float64() < s.fail {
		return fmt.Errorf("connection refused")
	}
	return read()
}

func (s *hookSource) Page(ctx context.Context, board string, offset, limit int) (p store.Page, err error) {
	err = s.around(func() error { p, err = s.Store.Page(ctx, board, offset, limit); return err })
	return
}

func (s *hookSource) Around(ctx context.Context, board, participant string, limit int) (p store.Page, err error) {
	err = s.around(func() error { p, err = s.Store.Around(ctx, board, participant, limit); return err })
	return
}

func (s *hookSource) Participant(ctx context.Context, board, participant string, n int) (v store.ParticipantView, err error) {
	err = s.around(func() error { v, err = s.Store.Participant(ctx, board, participant, n); return err })
	return
}

// tickRecorder notes the tick at which each frame arrived.
type tickRecorder struct {
	phased
	tick *int
}

func (r *tickRecorder) Send(f Frame) bool {
	if !r.phased.Send(f) {
		return false
	}
	r.mu.Lock()
	r.frames[len(r.frames)-1]["_tick"] = *r.tick
	r.mu.Unlock()
	return true
}

type stressClient struct {
	id      string
	spec    Spec
	phase   uint32
	history []map[string]any // frames of ended sessions, without `subscribed`
	cur     *tickRecorder
	sub     *Subscription
	busy    bool // its Subscribe is reading: the hook leaves it alone
	dropped bool // the hub dropped it as slow: it starts over (resync)
}

// TestPhasesUnderInterleavings: viewers of every kind come, go and resume
// (in their own phase or another) while the board changes, ticks run the
// phases in turn, some reads fail, and more of all that happens while
// reads are in flight. Every chain stays unbroken, a resume is never sent
// a state older than its since_version, no subscription gets two updates
// within one window, and at the end every viewer has the store's window.
func TestPhasesUnderInterleavings(t *testing.T) {
	seeds := uint64(30)
	if s := os.Getenv("STRESS_SEEDS"); s != "" {
		fmt.Sscan(s, &seeds)
	}
	first := uint64(1)
	if s := os.Getenv("STRESS_FIRST"); s != "" {
		fmt.Sscan(s, &first)
	}
	for seed := first; seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { stress(t, seed) })
	}
}

func stress(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	src := &hookSource{Store: st, rng: rng, fail: 0.1}
	hub = New(src, Options{Epoch: "ep", Phases: 4, History: time.Hour})
	st.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	submit := func() {
		pid := fmt.Sprint("p", rng.IntN(25))
		if rng.IntN(10) == 0 {
			st.Remove(ctx, "b", pid)
			return
		}
		st.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: uint64(rng.IntN(40)), AchievedAt: int64(rng.IntN(3))}}, res)
	}
	for range 20 {
		submit()
	}
	specs := []Spec{{Kind: Top, Limit: 3}, {Kind: Top, Limit: 8}, {Kind: Participant, ParticipantID: "p3"},
		{Kind: Participant, ParticipantID: "p7"}, {Kind: Around, ParticipantID: "p3", Radius: 1}, {Kind: Around, ParticipantID: "p11", Radius: 2}}
	tick := 0
	var clients []*stressClient
	for i := range 16 {
		clients = append(clients, &stressClient{id: fmt.Sprint("c", i), spec: specs[i%len(specs)], phase: uint32(rng.IntN(4))})
	}
	view := func(c *stressClient) *view {
		frames := slices.Clone(c.history)
		if c.cur != nil {
			for _, f := range c.cur.all() {
				if f["type"] != "subscribed" {
					frames = append(frames, f)
				}
			}
		}
		if os.Getenv("STRESS_DUMP") == c.id {
			for _, f := range frames {
				t.Logf("%s %v prev %v v %v tick %v", f["type"], f["id"], f["prev_version"], f["version"], f["_tick"])
			}
		}
		return apply(t, frames, c.id)
	}
	end := func(c *stressClient) {
		if c.sub == nil {
			return
		}
		hub.Unsubscribe(c.sub)
		for _, f := range c.cur.all() {
			if f["type"] != "subscribed" {
				c.history = append(c.history, f)
			}
		}
		c.sub, c.cur = nil, nil
	}
	start := func(c *stressClient, resume bool) {
		var since *uint64
		if resume && len(c.history) > 0 {
			if v := view(c); v.got { // after a resync there is nothing to resume from
				since = &v.version
			} else {
				resume = false
			}
		}
		if rng.IntN(3) == 0 {
			c.phase = uint32(rng.IntN(4)) // a new connection: another phase
		}
		rec := &tickRecorder{phased: phased{phase: c.phase}, tick: &tick}
		if rng.IntN(6) == 0 {
			rec.limit = 2 + rng.IntN(3) // a slow reader
		}
		c.busy, c.dropped = true, false
		sub, err := hub.Subscribe(ctx, "b", c.id, c.spec, since, "ep", rec, func(*Subscription) { c.dropped = true })
		c.busy = false
		if err != nil {
			return // a failed read: the client tries again later
		}
		c.cur, c.sub = rec, sub
		first := rec.all()[1]
		if since != nil && uint64(num(first["version"])) < *since {
			t.Fatalf("%s (%v): resumed from %d, sent a %s at older version %v", c.id, c.spec, *since, first["type"], first["version"])
		}
		if !resume {
			c.history = nil // a fresh start: the view restarts from this snapshot
		}
	}
	act := func() {
		c := clients[rng.IntN(len(clients))]
		if c.busy {
			return
		}
		switch r := rng.IntN(10); {
		case r < 4:
			submit()
		case c.sub == nil:
			start(c, rng.IntN(2) == 0)
		case c.dropped:
			end(c)
			c.history = append(c.history, map[string]any{"type": "resync", "id": c.id})
			start(c, false)
		case r < 7:
			end(c)
			start(c, true) // a reconnect that resumes
		default:
			end(c)
		}
	}
	src.hook = act
	for step := 0; step < 400; step++ {
		if rng.IntN(3) == 0 {
			hub.flush(ctx, tick%4)
			tick++
			continue
		}
		act()
	}
	src.hook, src.fail = nil, 0
	for _, c := range clients {
		if c.dropped {
			end(c)
		}
	}
	for range 4 { // a window without failures, then everything once more
		hub.flush(ctx, tick%4)
		tick++
	}
	hub.Flush(ctx)
	for _, c := range clients {
		if c.sub == nil || c.dropped {
			continue
		}
		// At most one update per window: updates of one session (after its
		// first frame) are at least a window of ticks apart.
		last := -1
		for i, f := range c.cur.all() {
			if i < 2 || f["type"] != "update" {
				continue
			}
			tk := f["_tick"].(int)
			if last >= 0 && tk-last < 4 && tk < tick {
				t.Fatalf("%s: updates at ticks %d and %d", c.id, last, tk)
			}
			last = tk
		}
		v := view(c)
		wantList, wantPart := expected(t, st, "b", c.spec)
		if c.spec.Kind == Participant {
			if (v.part == nil) != (wantPart == nil) || (v.part != nil && *v.part != *wantPart) {
				t.Fatalf("%s (%v): participant %v, store %v", c.id, c.spec, v.part, wantPart)
			}
			continue
		}
		if got := v.list(); !slices.Equal(got, wantList) && !(len(got) == 0 && len(wantList) == 0) {
			t.Fatalf("%s (%v): window\n got %v\nwant %v", c.id, c.spec, got, wantList)
		}
	}
}
