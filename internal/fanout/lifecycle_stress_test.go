package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// lifecycleClient is one viewer of the lifecycle stress test, owned by one
// churning goroutine.
type lifecycleClient struct {
	id      string
	board   string
	spec    Spec
	phase   uint32
	history []map[string]any // frames of ended sessions, without `subscribed`
	cur     *phased
	sub     *Subscription
	dropped atomic.Bool // the hub took it off the hot path (slow): it starts over
}

func (c *lifecycleClient) frames() []map[string]any {
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

// TestLifecycleUnderConcurrency: the hub runs (Run, real time, a history of
// a few windows) while writers change several boards and viewers on several
// goroutines subscribe (top of several N, participant, around), resume,
// unsubscribe, resubscribe, fall behind (and are dropped) and move between
// boards; the boards watched only now and then are forgotten (forgetIdle)
// and watched again meanwhile. Once everything stops: every state each
// viewer reconstructed, after every frame, is the board's window at that
// frame's version, with an unbroken chain; every live viewer has the
// board's current window; once the viewers leave and the history passes,
// the hub holds no board and no segment and its goroutine is gone; and a
// forgotten board watched (and resumed) again is followed correctly.
func TestLifecycleUnderConcurrency(t *testing.T) {
	rounds := 3
	if s := os.Getenv("LIFECYCLE_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) { lifecycleStress(t, uint64(round+1)) })
	}
}

func lifecycleStress(t *testing.T, seed uint64) {
	ctx := context.Background()
	baseline := runtime.NumGoroutine()
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	const window, phases = 4 * time.Millisecond, 3
	hub = New(st, Options{Epoch: "ep", Phases: phases, FlushInterval: window, History: 5 * window})
	boards := []string{"b0", "b1", "b2", "b3", "b4"}
	// Every version of every board is recorded: writes and the recording
	// run under one lock, so that no version is missed.
	var mu sync.Mutex
	models := map[string]*modelBoard{}
	for _, b := range boards {
		if err := st.CreateBoard(ctx, b, store.BoardOptions{}); err != nil {
			t.Fatal(err)
		}
		models[b] = &modelBoard{st: st, board: b, at: map[uint64][]store.Entry{}}
		models[b].record(t)
	}
	res := make([]store.Result, 1)
	submit := func(rng *rand.Rand) {
		mu.Lock()
		defer mu.Unlock()
		b := boards[rng.IntN(len(boards))]
		pid := fmt.Sprint("p", rng.IntN(14))
		if rng.IntN(8) == 0 {
			if _, err := st.Remove(ctx, b, pid); err == nil {
				models[b].record(t)
			}
			return
		}
		if err := st.Submit(ctx, b, []store.Submission{{ParticipantID: pid, Score: uint64(rng.IntN(30)), AchievedAt: int64(rng.IntN(3))}}, res); err != nil {
			t.Error(err)
			return
		}
		if res[0].Updated {
			models[b].record(t)
		}
	}
	setup := rand.New(rand.NewPCG(seed, 0))
	for range 60 {
		submit(setup)
	}
	specs := []Spec{{Kind: Top, Limit: 1}, {Kind: Top, Limit: 3}, {Kind: Top, Limit: 10},
		{Kind: Participant, ParticipantID: "p0"}, {Kind: Participant, ParticipantID: "p5"},
		{Kind: Around, ParticipantID: "p1", Radius: 1}, {Kind: Around, ParticipantID: "p6", Radius: 3}}
	// Boards b0 and b1 always have viewers; b2..b4 only now and then, so
	// that they are forgotten and watched again during the run.
	pickBoard := func(rng *rand.Rand) string {
		if rng.IntN(10) < 8 {
			return boards[rng.IntN(2)]
		}
		return boards[2+rng.IntN(3)]
	}

	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { hub.Run(runCtx); close(ran) }()

	const churners, perChurner = 4, 5
	clients := make([][]*lifecycleClient, churners)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range churners {
		rng := rand.New(rand.NewPCG(seed, uint64(w+1)))
		for i := range perChurner {
			c := &lifecycleClient{id: fmt.Sprint("c", w, "-", i), board: pickBoard(rng), spec: specs[rng.IntN(len(specs))], phase: uint32(rng.IntN(phases))}
			clients[w] = append(clients[w], c)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := func(c *lifecycleClient) {
				if c.sub == nil {
					return
				}
				hub.Unsubscribe(c.sub)
				c.history, c.sub, c.cur = c.frames(), nil, nil
			}
			start := func(c *lifecycleClient, resume bool) {
				var since *uint64
				if resume {
					if v := apply(t, c.history, c.id); v.got {
						since = &v.version
					}
				}
				if since == nil {
					// A new viewer: perhaps of another window, on another board.
					c.history = nil
					c.board, c.spec = pickBoard(rng), specs[rng.IntN(len(specs))]
				}
				if rng.IntN(3) == 0 {
					c.phase = uint32(rng.IntN(phases))
				}
				rec := &phased{phase: c.phase}
				if rng.IntN(8) == 0 {
					rec.limit = 2 + rng.IntN(4) // a slow reader
				}
				c.dropped.Store(false)
				sub, err := hub.Subscribe(ctx, c.board, c.id, c.spec, since, "ep", rec, func(*Subscription) { c.dropped.Store(true) })
				if err != nil {
					t.Errorf("%s: subscribe: %v", c.id, err)
					return
				}
				got := rec.all()
				if len(got) < 2 {
					t.Errorf("%s: subscribe answered %v", c.id, got)
					return
				}
				if since != nil && got[1]["type"] == "update" && uint64(num(got[1]["prev_version"])) != *since {
					t.Errorf("%s: resumed from %d, answered with an update from %v", c.id, *since, got[1]["prev_version"])
				}
				c.cur, c.sub = rec, sub
			}
			for !stop.Load() {
				c := clients[w][rng.IntN(perChurner)]
				switch r := rng.IntN(10); {
				case c.sub == nil:
					start(c, rng.IntN(2) == 0)
				case c.dropped.Load():
					end(c)
					c.history = append(c.history, map[string]any{"type": "resync", "id": c.id})
					start(c, false)
				case r < 5:
					end(c)
					start(c, true) // a reconnect that resumes
				case r < 7:
					end(c)
					start(c, false)
				default:
					end(c)
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(int(window))))
				}
			}
			for _, c := range clients[w] {
				if c.dropped.Load() {
					end(c)
				}
			}
		}()
	}
	var forgets atomic.Int64 // times a board was seen forgotten during the run
	for w := range 2 {
		rng := rand.New(rand.NewPCG(seed, uint64(100+w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if w == 0 && hub.boardCount() < len(boards) {
					forgets.Add(1)
				}
				submit(rng)
				if rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(int(window / 2))))
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		stopRun()
		<-ran
		return
	}
	time.Sleep(3 * window) // every phase flushed after the last change
	stopRun()
	<-ran
	hub.Flush(ctx)

	var live []*lifecycleClient
	for _, cs := range clients {
		for _, c := range cs {
			m := models[c.board]
			m.checkEach(t, c.id, c.spec, c.frames(), c.id)
			if c.sub != nil && c.dropped.Load() {
				// Dropped by the flushes after the churning stopped: it
				// would start over; it is a new viewer below.
				hub.Unsubscribe(c.sub)
				c.history, c.sub, c.cur = nil, nil, nil
			}
			if c.sub == nil {
				continue
			}
			live = append(live, c)
			v := apply(t, c.frames(), c.id)
			cur, _ := st.Stats(ctx, c.board)
			m.check(t, c.id+" after the last flush", c.spec, &view{version: cur.Version, offset: v.offset, size: v.size, entries: v.entries, part: v.part, got: true})
		}
	}
	t.Logf("%d viewers live at the end, catch-ups %d, snapshots %d, a board seen forgotten %d times", len(live), hub.Snapshot().CatchUps, hub.Snapshot().Snapshots, forgets.Load())
	if forgets.Load() == 0 {
		t.Fatal("no board was forgotten during the run: the test does not test that")
	}

	// Everyone leaves; a history later the hub holds nothing.
	for _, c := range live {
		hub.Unsubscribe(c.sub)
		c.history, c.sub, c.cur = c.frames(), nil, nil
	}
	if n := hub.Snapshot().SegmentsNow; n != 0 {
		t.Fatalf("%d segments after every viewer left, want 0", n)
	}
	time.Sleep(6 * window)
	hub.Flush(ctx)
	time.Sleep(6 * window)
	hub.Flush(ctx)
	if n := hub.boardCount(); n != 0 {
		t.Fatalf("%d boards held a history after the last viewer left, want 0", n)
	}
	for i := 0; runtime.NumGoroutine() > baseline; i++ {
		if i > 200 {
			t.Fatalf("%d goroutines, %d before the hub ran", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The forgotten boards are watched again: resumes from before get a
	// snapshot (the history went with the board) or a valid catch-up, and
	// every viewer follows the changes from then on.
	rng := rand.New(rand.NewPCG(seed, 999))
	for _, cs := range clients {
		for _, c := range cs {
			var since *uint64
			if v := apply(t, c.history, c.id); v.got {
				since = &v.version
			} else {
				c.history = nil
			}
			rec := &phased{phase: c.phase}
			sub, err := hub.Subscribe(ctx, c.board, c.id, c.spec, since, "ep", rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.cur, c.sub = rec, sub
		}
	}
	for range 40 {
		submit(rng)
		if rng.IntN(4) == 0 {
			hub.flush(ctx, rng.IntN(phases))
		}
	}
	hub.Flush(ctx)
	for _, cs := range clients {
		for _, c := range cs {
			if c.sub == nil {
				continue
			}
			m := models[c.board]
			m.checkEach(t, c.id+" watching again", c.spec, c.frames(), c.id)
			dump := ""
			for _, f := range c.frames() {
				dump += fmt.Sprintf("%v prev %v v %v; ", f["type"], f["prev_version"], f["version"])
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("DUMP %s %s phase %d: %s", c.id, c.board, c.phase, dump)
				}
			})
			v := apply(t, c.frames(), c.id)
			cur, _ := st.Stats(ctx, c.board)
			m.check(t, c.id+" watching again", c.spec, &view{version: cur.Version, offset: v.offset, size: v.size, entries: v.entries, part: v.part, got: true})
			hub.Unsubscribe(c.sub)
		}
	}
}
