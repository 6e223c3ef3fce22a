// Package storetest is the conformance suite every store.Store implementation
// must pass. An implementation's test calls Run with a constructor.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
)

// New makes an empty store whose accepted changes go to sink. Each call must
// return a store that shares no leaderboards with earlier ones (or the suite's
// leaderboard ids must not collide: the suite names boards after the test).
type New func(t *testing.T, sink store.EventSink) store.Store

// Run runs the whole suite.
func Run(t *testing.T, newStore New) {
	t.Run("Boards", func(t *testing.T) { testBoards(t, newStore) })
	t.Run("Oracle", func(t *testing.T) { testOracle(t, newStore) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, newStore) })
	t.Run("Validation", func(t *testing.T) { testValidation(t, newStore) })
	t.Run("Seal", func(t *testing.T) { testSeal(t, newStore) })
	t.Run("Pause", func(t *testing.T) { testPause(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore) })
	t.Run("Restore", func(t *testing.T) { testRestore(t, newStore) })
}

// testRestore rebuilds a leaderboard from entries in no particular order, at a
// version, and checks it ranks them like the oracle and continues from there.
func testRestore(t *testing.T, newStore New) {
	ctx := context.Background()
	rec := &Recorder{}
	s := newStore(t, rec)
	for _, order := range []store.SortOrder{store.Descending, store.Ascending} {
		id := boardID(t, fmt.Sprint("restore", order))
		rng := rand.New(rand.NewPCG(uint64(order), 7))
		var es []store.Entry
		for i := 0; i < 500; i++ {
			es = append(es, store.Entry{ParticipantID: fmt.Sprintf("p%03d", i), Score: []uint64{0, 5, store.MaxScore, rng.Uint64N(50)}[rng.IntN(4)], AchievedAt: int64(rng.IntN(20))})
		}
		if err := s.Restore(ctx, id, store.BoardOptions{Order: order}, 777, es); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(ctx, id, store.BoardOptions{Order: order}, 1, nil); !errors.Is(err, store.ErrBoardExists) {
			t.Fatalf("restore over an existing board: %v, want ErrBoardExists", err)
		}
		want := slices.Clone(es)
		slices.SortFunc(want, func(a, b store.Entry) int {
			if a.Score != b.Score {
				if store.Better(order, a.Score, b.Score) {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(a.AchievedAt, b.AchievedAt); c != 0 {
				return c
			}
			return cmp.Compare(a.ParticipantID, b.ParticipantID)
		})
		for i := range want {
			want[i].Rank = int64(i + 1)
		}
		p, err := s.Page(ctx, id, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if p.Version != 777 || p.Total != 500 || fmt.Sprint(p.Entries) != fmt.Sprint(want) {
			t.Fatalf("restored board: version %d total %d\n got %v\nwant %v", p.Version, p.Total, p.Entries, want)
		}
		var res [1]store.Result
		if err := s.Submit(ctx, id, []store.Submission{{ParticipantID: "new", Score: 1, AchievedAt: 1}}, res[:]); err != nil {
			t.Fatal(err)
		}
		if res[0].Version != 778 {
			t.Fatalf("first change after restore got version %d, want 778", res[0].Version)
		}
		if evs := rec.Events(id); len(evs) != 1 || evs[0].Version != 778 {
			t.Fatalf("restore published events: %+v", evs)
		}
	}
	bad := []store.Entry{{ParticipantID: "x", Score: store.MaxScore + 1}}
	if err := s.Restore(ctx, boardID(t, "bad"), store.BoardOptions{}, 1, bad); !errors.Is(err, store.ErrOutOfRange) {
		t.Fatalf("restore of a bad entry: %v, want ErrOutOfRange", err)
	}
}

// Recorder is an EventSink that keeps every event, per leaderboard.
type Recorder struct {
	mu     sync.Mutex
	events map[string][]store.Event
}

// Publish implements store.EventSink.
func (r *Recorder) Publish(e store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string][]store.Event{}
	}
	r.events[e.Leaderboard] = append(r.events[e.Leaderboard], e)
}

// Events returns a copy of one leaderboard's events.
func (r *Recorder) Events(board string) []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events[board])
}

func boardID(t *testing.T, suffix string) string {
	return fmt.Sprintf("st-%s-%s-%d", suffix, t.Name()[len(t.Name())-min(len(t.Name()), 20):], rand.Uint32())
}

func testBoards(t *testing.T, newStore New) {
	ctx := context.Background()
	s := newStore(t, nil)
	if s.Epoch() == "" {
		t.Fatal("empty epoch")
	}
	id := boardID(t, "boards")
	if err := s.CreateBoard(ctx, id, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBoard(ctx, id, store.BoardOptions{}); !errors.Is(err, store.ErrBoardExists) {
		t.Fatalf("second create: %v, want ErrBoardExists", err)
	}
	st, err := s.Stats(ctx, id)
	if err != nil || st.Version != 0 || st.Total != 0 {
		t.Fatalf("fresh stats = %+v, %v", st, err)
	}
	missing := id + "-missing"
	results := make([]store.Result, 1)
	for name, err := range map[string]error{
		"Submit": s.Submit(ctx, missing, []store.Submission{{ParticipantID: "a", Score: 1, AchievedAt: 1}}, results),
		"Remove": func() error { _, err := s.Remove(ctx, missing, "a"); return err }(),
		"Seal":   func() error { _, err := s.Seal(ctx, missing); return err }(),
		"Page":   func() error { _, err := s.Page(ctx, missing, 0, 10); return err }(),
		"Around": func() error { _, err := s.Around(ctx, missing, "a", 3); return err }(),
		"Participant": func() error {
			_, err := s.Participant(ctx, missing, "a", 1)
			return err
		}(),
		"Stats": func() error { _, err := s.Stats(ctx, missing); return err }(),
		"Drop":  s.DropBoard(ctx, missing),
	} {
		if !errors.Is(err, store.ErrBoardNotFound) {
			t.Errorf("%s on a missing board: %v, want ErrBoardNotFound", name, err)
		}
	}
	if _, err := s.Around(ctx, id, "nobody", 3); !errors.Is(err, store.ErrParticipantNotFound) {
		t.Errorf("Around(nobody): %v", err)
	}
	if _, err := s.Participant(ctx, id, "nobody", 3); !errors.Is(err, store.ErrParticipantNotFound) {
		t.Errorf("Participant(nobody): %v", err)
	}
	if _, err := s.Remove(ctx, id, "nobody"); !errors.Is(err, store.ErrParticipantNotFound) {
		t.Errorf("Remove(nobody): %v", err)
	}
	if err := s.DropBoard(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stats(ctx, id); !errors.Is(err, store.ErrBoardNotFound) {
		t.Fatalf("stats after drop: %v", err)
	}
}

// model is the sorted-slice oracle of one leaderboard.
type model struct {
	opts    store.BoardOptions
	entries []store.Entry
	version uint64
}

func (m *model) sort() {
	slices.SortFunc(m.entries, func(a, b store.Entry) int {
		if a.Score != b.Score {
			if store.Better(m.opts.Order, a.Score, b.Score) {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.AchievedAt, b.AchievedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ParticipantID, b.ParticipantID)
	})
	for i := range m.entries {
		m.entries[i].Rank = int64(i + 1)
	}
}

func (m *model) index(pid string) int {
	return slices.IndexFunc(m.entries, func(e store.Entry) bool { return e.ParticipantID == pid })
}

func (m *model) submit(sub store.Submission) store.Result {
	i := m.index(sub.ParticipantID)
	if i >= 0 {
		old := m.entries[i]
		if sub.Score == old.Score || (m.opts.Policy == store.PolicyBest && !store.Better(m.opts.Order, sub.Score, old.Score)) {
			return store.Result{Score: old.Score, AchievedAt: old.AchievedAt, Rank: old.Rank, HadPrevious: true,
				PreviousScore: old.Score, PreviousRank: old.Rank, Version: m.version}
		}
		m.entries[i].Score, m.entries[i].AchievedAt = sub.Score, sub.AchievedAt
		m.version++
		m.sort()
		return store.Result{Updated: true, Score: sub.Score, AchievedAt: sub.AchievedAt,
			Rank: m.entries[m.index(sub.ParticipantID)].Rank, HadPrevious: true,
			PreviousScore: old.Score, PreviousRank: old.Rank, Version: m.version}
	}
	m.entries = append(m.entries, store.Entry{ParticipantID: sub.ParticipantID, Score: sub.Score, AchievedAt: sub.AchievedAt})
	m.version++
	m.sort()
	return store.Result{Updated: true, Score: sub.Score, AchievedAt: sub.AchievedAt,
		Rank: m.entries[m.index(sub.ParticipantID)].Rank, Version: m.version}
}

func (m *model) remove(pid string) (store.Result, bool) {
	i := m.index(pid)
	if i < 0 {
		return store.Result{}, false
	}
	old := m.entries[i]
	m.entries = slices.Delete(m.entries, i, i+1)
	m.version++
	m.sort()
	return store.Result{Updated: true, HadPrevious: true, PreviousScore: old.Score, PreviousRank: old.Rank, Version: m.version}, true
}

// window returns the model's entries at 1-based ranks lo..hi clipped to the board.
func (m *model) window(lo, hi int64) []store.Entry {
	lo, hi = max(lo, 1), min(hi, int64(len(m.entries)))
	if lo > hi {
		return []store.Entry{}
	}
	return m.entries[lo-1 : hi]
}

func equalEntries(a, b []store.Entry) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

// testOracle drives random submissions and removals (ties, equal timestamps,
// scores at both ends of the range) and compares every read with the model.
func testOracle(t *testing.T, newStore New) {
	ctx := context.Background()
	for _, opts := range []store.BoardOptions{
		{Order: store.Descending, Policy: store.PolicySet},
		{Order: store.Descending, Policy: store.PolicyBest},
		{Order: store.Ascending, Policy: store.PolicySet},
		{Order: store.Ascending, Policy: store.PolicyBest},
	} {
		t.Run(fmt.Sprintf("order=%d,policy=%d", opts.Order, opts.Policy), func(t *testing.T) {
			rec := &Recorder{}
			s := newStore(t, rec)
			id := boardID(t, "oracle")
			if err := s.CreateBoard(ctx, id, opts); err != nil {
				t.Fatal(err)
			}
			m := &model{opts: opts}
			rng := rand.New(rand.NewPCG(uint64(opts.Order)*2+uint64(opts.Policy), 42))
			scores := []uint64{0, 1, 5, 1000, store.MaxScore - 1, store.MaxScore}
			result := make([]store.Result, 1)
			for step := 0; step < 600; step++ {
				pid := fmt.Sprintf("p%02d", rng.IntN(40))
				if rng.IntN(8) == 0 {
					got, err := s.Remove(ctx, id, pid)
					want, ok := m.remove(pid)
					if !ok {
						if !errors.Is(err, store.ErrParticipantNotFound) {
							t.Fatalf("step %d: Remove(%s) = %v, want ErrParticipantNotFound", step, pid, err)
						}
					} else if err != nil || got != want {
						t.Fatalf("step %d: Remove(%s) = %+v, %v; want %+v", step, pid, got, err, want)
					}
				} else {
					score := scores[rng.IntN(len(scores))]
					if rng.IntN(2) == 0 {
						score = rng.Uint64N(store.MaxScore + 1)
					}
					sub := store.Submission{ParticipantID: pid, Score: score, AchievedAt: int64(rng.IntN(3))}
					if err := s.Submit(ctx, id, []store.Submission{sub}, result); err != nil {
						t.Fatal(err)
					}
					if want := m.submit(sub); result[0] != want {
						t.Fatalf("step %d: Submit(%+v) = %+v, want %+v", step, sub, result[0], want)
					}
				}
				compare(t, ctx, s, id, m, rng, step)
			}
			// Replaying the events in version order rebuilds the same ranking.
			events := rec.Events(id)
			replay := &model{opts: opts}
			for i, e := range events {
				if e.Version != uint64(i+1) {
					t.Fatalf("event %d has version %d", i, e.Version)
				}
				if e.Removed {
					replay.remove(e.ParticipantID)
				} else {
					replay.submit(store.Submission{ParticipantID: e.ParticipantID, Score: e.NewScore, AchievedAt: e.AchievedAt})
				}
			}
			if !equalEntries(replay.entries, m.entries) || replay.version != m.version {
				t.Fatalf("replaying %d events gives version %d %v, want %d %v", len(events), replay.version, replay.entries, m.version, m.entries)
			}
		})
	}
}

func compare(t *testing.T, ctx context.Context, s store.Store, id string, m *model, rng *rand.Rand, step int) {
	t.Helper()
	n := int64(len(m.entries))
	all, err := s.Page(ctx, id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if all.Version != m.version || all.Total != n || !equalEntries(all.Entries, m.entries) {
		t.Fatalf("step %d: page = v%d n%d %v, want v%d n%d %v", step, all.Version, all.Total, all.Entries, m.version, n, m.entries)
	}
	offset, limit := rng.IntN(int(n)+2), rng.IntN(10)+1
	page, err := s.Page(ctx, id, offset, limit)
	if err != nil {
		t.Fatal(err)
	}
	if want := m.window(int64(offset)+1, int64(offset+limit)); !equalEntries(page.Entries, want) {
		t.Fatalf("step %d: Page(%d,%d) = %v, want %v", step, offset, limit, page.Entries, want)
	}
	if n == 0 {
		return
	}
	e := m.entries[rng.IntN(int(n))]
	limit = rng.IntN(12) + 1
	around, err := s.Around(ctx, id, e.ParticipantID, limit)
	if err != nil {
		t.Fatal(err)
	}
	lo := e.Rank - int64(limit-1)/2
	if want := m.window(lo, lo+int64(limit)-1); !equalEntries(around.Entries, want) {
		t.Fatalf("step %d: Around(%s,%d) = %v, want %v", step, e.ParticipantID, limit, around.Entries, want)
	}
	nb := rng.IntN(4)
	view, err := s.Participant(ctx, id, e.ParticipantID, nb)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Entry
	want = append(want, m.window(e.Rank-int64(nb), e.Rank-1)...)
	want = append(want, m.window(e.Rank+1, e.Rank+int64(nb))...)
	if view.Entry != e || !equalEntries(view.Neighbors, want) || view.Version != m.version || view.Total != n {
		t.Fatalf("step %d: Participant(%s,%d) = %+v, want %+v with %v", step, e.ParticipantID, nb, view, e, want)
	}
}

func testIdempotent(t *testing.T, newStore New) {
	ctx := context.Background()
	s := newStore(t, nil)
	for _, policy := range []store.Policy{store.PolicySet, store.PolicyBest} {
		id := boardID(t, fmt.Sprint("idem", policy))
		if err := s.CreateBoard(ctx, id, store.BoardOptions{Policy: policy}); err != nil {
			t.Fatal(err)
		}
		res := make([]store.Result, 1)
		sub := []store.Submission{{ParticipantID: "alice", Score: 100, AchievedAt: 1000}}
		if err := s.Submit(ctx, id, sub, res); err != nil || !res[0].Updated || res[0].Version != 1 {
			t.Fatalf("first submit: %+v %v", res[0], err)
		}
		// The same score again, later: nothing changes, achieved_at is kept.
		sub[0].AchievedAt = 2000
		if err := s.Submit(ctx, id, sub, res); err != nil {
			t.Fatal(err)
		}
		want := store.Result{Score: 100, AchievedAt: 1000, Rank: 1, HadPrevious: true, PreviousScore: 100, PreviousRank: 1, Version: 1}
		if res[0] != want {
			t.Fatalf("repeat: %+v, want %+v", res[0], want)
		}
		// A worse score: a no-op under best, a change under set.
		sub[0].Score = 50
		if err := s.Submit(ctx, id, sub, res); err != nil {
			t.Fatal(err)
		}
		if policy == store.PolicyBest && (res[0].Updated || res[0].Version != 1 || res[0].Score != 100) {
			t.Fatalf("worse score under best: %+v", res[0])
		}
		if policy == store.PolicySet && (!res[0].Updated || res[0].Version != 2 || res[0].Score != 50 || res[0].AchievedAt != 2000) {
			t.Fatalf("worse score under set: %+v", res[0])
		}
	}
}

func testValidation(t *testing.T, newStore New) {
	ctx := context.Background()
	s := newStore(t, nil)
	id := boardID(t, "valid")
	if err := s.CreateBoard(ctx, id, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	res := make([]store.Result, 1)
	for _, sub := range []store.Submission{
		{ParticipantID: "a", Score: store.MaxScore + 1, AchievedAt: 1},
		{ParticipantID: "a", Score: 1, AchievedAt: -1},
		{ParticipantID: "a", Score: 1, AchievedAt: store.MaxAchievedAt + 1},
		{ParticipantID: "", Score: 1, AchievedAt: 1},
	} {
		if err := s.Submit(ctx, id, []store.Submission{sub}, res); !errors.Is(err, store.ErrOutOfRange) {
			t.Errorf("Submit(%+v) = %v, want ErrOutOfRange", sub, err)
		}
	}
	if st, _ := s.Stats(ctx, id); st.Version != 0 || st.Total != 0 {
		t.Fatalf("rejected submissions changed the board: %+v", st)
	}
	// The extremes themselves are accepted and exact.
	ok := []store.Submission{
		{ParticipantID: "max", Score: store.MaxScore, AchievedAt: store.MaxAchievedAt},
		{ParticipantID: "max-1", Score: store.MaxScore - 1, AchievedAt: 0},
		{ParticipantID: "zero", Score: 0, AchievedAt: 0},
	}
	if err := s.Submit(ctx, id, ok, make([]store.Result, len(ok))); err != nil {
		t.Fatal(err)
	}
	page, _ := s.Page(ctx, id, 0, 10)
	want := []store.Entry{
		{Rank: 1, ParticipantID: "max", Score: store.MaxScore, AchievedAt: store.MaxAchievedAt},
		{Rank: 2, ParticipantID: "max-1", Score: store.MaxScore - 1, AchievedAt: 0},
		{Rank: 3, ParticipantID: "zero", Score: 0, AchievedAt: 0},
	}
	if !slices.Equal(page.Entries, want) {
		t.Fatalf("extremes: %v, want %v", page.Entries, want)
	}
}

func testSeal(t *testing.T, newStore New) {
	ctx := context.Background()
	s := newStore(t, nil)
	id := boardID(t, "seal")
	if err := s.CreateBoard(ctx, id, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	res := make([]store.Result, 2)
	subs := []store.Submission{{ParticipantID: "a", Score: 1, AchievedAt: 1}, {ParticipantID: "b", Score: 2, AchievedAt: 1}}
	if err := s.Submit(ctx, id, subs, res); err != nil {
		t.Fatal(err)
	}
	st, err := s.Seal(ctx, id)
	if err != nil || st.Version != 2 || st.Total != 2 {
		t.Fatalf("Seal = %+v, %v", st, err)
	}
	if err := s.Submit(ctx, id, subs[:1], res[:1]); !errors.Is(err, store.ErrBoardSealed) {
		t.Fatalf("Submit after seal: %v", err)
	}
	if _, err := s.Remove(ctx, id, "a"); !errors.Is(err, store.ErrBoardSealed) {
		t.Fatalf("Remove after seal: %v", err)
	}
	if page, err := s.Page(ctx, id, 0, 10); err != nil || page.Version != 2 || len(page.Entries) != 2 {
		t.Fatalf("reads after seal: %+v %v", page, err)
	}
}

// testPause: a store that implements store.Pauser refuses a paused board's
// submissions whole, applying none of them (a batch racing a PATCH stops at
// the pause), and takes them again once the pause is lifted.
func testPause(t *testing.T, newStore New) {
	ctx := context.Background()
	s := newStore(t, nil)
	pz, ok := s.(store.Pauser)
	if !ok {
		t.Skip("the store does not implement store.Pauser")
	}
	id := boardID(t, "pause")
	if err := pz.SetPaused(ctx, id, true); !errors.Is(err, store.ErrBoardNotFound) {
		t.Fatalf("SetPaused on a missing board: %v, want ErrBoardNotFound", err)
	}
	if err := s.CreateBoard(ctx, id, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pz.SetPaused(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	subs := []store.Submission{{ParticipantID: "x", Score: 1, AchievedAt: 1}, {ParticipantID: "y", Score: 2, AchievedAt: 1}}
	res := make([]store.Result, 2)
	if err := s.Submit(ctx, id, subs, res); !errors.Is(err, store.ErrBoardPaused) {
		t.Fatalf("Submit to a paused board: %v, want ErrBoardPaused", err)
	}
	if st, err := s.Stats(ctx, id); err != nil || st.Version != 0 || st.Total != 0 {
		t.Fatalf("after a refused submission: %+v %v, want version 0 and nobody", st, err)
	}
	if err := pz.SetPaused(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(ctx, id, subs, res); err != nil || res[1].Version != 2 {
		t.Fatalf("Submit after the pause was lifted: %+v %v", res, err)
	}
}

// testConcurrent runs parallel submitters (single and batch) and removers on
// shared leaderboards. Every accepted change must carry a distinct version,
// versions must be exactly 1..V, and replaying the accepted submissions in
// version order must give the final ranking.
func testConcurrent(t *testing.T, newStore New) {
	ctx := context.Background()
	rec := &Recorder{}
	s := newStore(t, rec)
	boards := []string{boardID(t, "conc0"), boardID(t, "conc1")}
	for i, id := range boards {
		if err := s.CreateBoard(ctx, id, store.BoardOptions{Policy: store.Policy(i % 2)}); err != nil {
			t.Fatal(err)
		}
	}
	type accepted struct {
		sub     store.Submission
		removed bool
		version uint64
	}
	var mu sync.Mutex
	log := map[string][]accepted{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := 0; i < 300; i++ {
				id := boards[rng.IntN(len(boards))]
				n := 1 + rng.IntN(3)*rng.IntN(40) // mostly single, sometimes batches
				subs := make([]store.Submission, n)
				for j := range subs {
					subs[j] = store.Submission{ParticipantID: fmt.Sprintf("p%d", rng.IntN(50)), Score: uint64(rng.IntN(20)), AchievedAt: int64(rng.IntN(5))}
				}
				if rng.IntN(20) == 0 {
					pid := subs[0].ParticipantID
					res, err := s.Remove(ctx, id, pid)
					if err == nil {
						mu.Lock()
						log[id] = append(log[id], accepted{sub: store.Submission{ParticipantID: pid}, removed: true, version: res.Version})
						mu.Unlock()
					} else if !errors.Is(err, store.ErrParticipantNotFound) {
						t.Error(err)
						return
					}
					continue
				}
				res := make([]store.Result, n)
				if err := s.Submit(ctx, id, subs, res); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j := range res {
					if res[j].Updated {
						log[id] = append(log[id], accepted{sub: subs[j], version: res[j].Version})
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	for i, id := range boards {
		acc := log[id]
		slices.SortFunc(acc, func(a, b accepted) int { return cmp.Compare(a.version, b.version) })
		m := &model{opts: store.BoardOptions{Policy: store.Policy(i % 2)}}
		for k, a := range acc {
			if a.version != uint64(k+1) {
				t.Fatalf("%s: accepted change %d has version %d (gap or repeat)", id, k, a.version)
			}
			if a.removed {
				m.remove(a.sub.ParticipantID)
			} else if r := m.submit(a.sub); !r.Updated {
				t.Fatalf("%s: replaying version %d changes nothing", id, a.version)
			}
		}
		page, err := s.Page(ctx, id, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if page.Version != uint64(len(acc)) || !equalEntries(page.Entries, m.entries) {
			t.Fatalf("%s: final state v%d %v, replay gives v%d %v", id, page.Version, page.Entries, len(acc), m.entries)
		}
		events := rec.Events(id)
		if len(events) != len(acc) {
			t.Fatalf("%s: %d events for %d accepted changes", id, len(events), len(acc))
		}
		for k, e := range events {
			if e.Version != uint64(k+1) || e.ParticipantID != acc[k].sub.ParticipantID || e.Removed != acc[k].removed {
				t.Fatalf("%s: event %d = %+v, accepted %+v", id, k, e, acc[k])
			}
		}
	}
}
