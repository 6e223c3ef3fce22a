package redis_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/store"
	lbredis "github.com/lbhq/leaderboard/internal/store/redis"
	"github.com/lbhq/leaderboard/internal/store/storetest"
)

// The tests run against LEADERBOARD_TEST_REDIS_URL, by default the machine's
// Redis at 127.0.0.1:6379 (scripts/test.sh starts it), each store under a
// key prefix of its own whose keys are deleted afterwards. Without a Redis
// they skip, or fail when CI is set.

func testURL() string {
	if u := os.Getenv("LEADERBOARD_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// unavailable skips the test, or fails it in CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// connect returns a client for the test Redis, closed at the end of the test.
func connect(t testing.TB) goredis.UniversalClient {
	t.Helper()
	c, err := lbredis.NewClient(testURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		unavailable(t, "no Redis at %s (start one, or set LEADERBOARD_TEST_REDIS_URL): %v", testURL(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newPrefix returns a key prefix no other test uses, whose keys are deleted
// when the test ends.
func newPrefix(t testing.TB, c goredis.UniversalClient) string {
	prefix := fmt.Sprintf("lbtest-%016x:", rand.Uint64())
	t.Cleanup(func() {
		if err := deleteKeys(c, prefix); err != nil {
			t.Errorf("deleting test keys: %v", err)
		}
	})
	return prefix
}

// deleteKeys deletes every key under prefix, on every master of a cluster.
func deleteKeys(c goredis.UniversalClient, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := func(ctx context.Context, n *goredis.Client) error {
		iter := n.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := n.Unlink(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	switch c := c.(type) {
	case *goredis.ClusterClient:
		return c.ForEachMaster(ctx, del)
	case *goredis.Client:
		return del(ctx, c)
	}
	return fmt.Errorf("unexpected client %T", c)
}

func newStore(t testing.TB, c goredis.UniversalClient, prefix string, sink store.EventSink, maxlen int64) *lbredis.Store {
	t.Helper()
	s, err := lbredis.New(context.Background(), lbredis.Options{Client: c, Prefix: prefix, Sink: sink, OutboxMaxLen: maxlen})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func factory(c goredis.UniversalClient) storetest.New {
	return func(t *testing.T, sink store.EventSink) store.Store {
		return newStore(t, c, newPrefix(t, c), sink, 0)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, factory(connect(t)))
}

func TestExactOrder(t *testing.T)       { testExactOrder(t, connect(t)) }
func TestTwoProcesses(t *testing.T)     { testTwoProcesses(t, connect(t), connect(t)) }
func TestOutboxTrimmed(t *testing.T)    { testOutboxTrimmed(t, connect(t)) }
func TestEpochShared(t *testing.T)      { testEpochShared(t, connect(t)) }
func TestRestoreDuplicate(t *testing.T) { testRestoreDuplicate(t, connect(t)) }
func TestEmptyBoardID(t *testing.T)     { testEmptyBoardID(t, connect(t)) }
func TestPaused(t *testing.T)           { testPaused(t, connect(t)) }

// testPaused: a pause set through one process's store refuses the
// submissions another process's store sends, applying none of them, until it
// is lifted.
func testPaused(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	prefix := newPrefix(t, c)
	a, b := newStore(t, c, prefix, nil, 0), newStore(t, c, prefix, nil, 0)
	if err := a.CreateBoard(ctx, "p", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPaused(ctx, "p", true); err != nil {
		t.Fatal(err)
	}
	subs := []store.Submission{{ParticipantID: "x", Score: 1, AchievedAt: 1}, {ParticipantID: "y", Score: 2, AchievedAt: 1}}
	if err := b.Submit(ctx, "p", subs, make([]store.Result, 2)); !errors.Is(err, store.ErrBoardPaused) {
		t.Fatalf("submit to a paused board: %v, want ErrBoardPaused", err)
	}
	if st, err := b.Stats(ctx, "p"); err != nil || st.Version != 0 || st.Total != 0 {
		t.Fatalf("after a refused submission: %+v %v, want version 0, nobody", st, err)
	}
	if err := a.SetPaused(ctx, "p", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(ctx, "p", subs, make([]store.Result, 2)); err != nil {
		t.Fatalf("submit after the pause was lifted: %v", err)
	}
	if err := a.SetPaused(ctx, "nope", true); !errors.Is(err, store.ErrBoardNotFound) {
		t.Fatalf("pausing an unknown board: %v, want ErrBoardNotFound", err)
	}
}

// sortEntries sorts by the total order of API.md and numbers the ranks.
func sortEntries(order store.SortOrder, es []store.Entry) {
	slices.SortFunc(es, func(a, b store.Entry) int {
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
	for i := range es {
		es[i].Rank = int64(i + 1)
	}
}

// testExactOrder ranks scores that a double cannot tell apart once anything
// else is added to them (next to 2^53-1, next to 2^52), equal scores with
// equal and unequal timestamps (0 and the largest), and ids that are prefixes
// of one another, on both orders; every read and every result must be exact.
func testExactOrder(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	rec := &storetest.Recorder{}
	s := newStore(t, c, newPrefix(t, c), rec, 0)
	scores := []uint64{store.MaxScore, store.MaxScore - 1, store.MaxScore - 2, 1<<53 - 3, 1<<52 + 1, 1 << 52, 1<<52 - 1, 1, 0}
	ats := []int64{0, 0, 1, store.MaxAchievedAt - 1, store.MaxAchievedAt}
	ids := []string{"a", "a0", "a:b", "a-", "B", "b", "ab", "{x}", "zz"}
	for _, order := range []store.SortOrder{store.Descending, store.Ascending} {
		id := fmt.Sprintf("exact-%d", order)
		if err := s.CreateBoard(ctx, id, store.BoardOptions{Order: order}); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(order), 3))
		var want []store.Entry
		var subs []store.Submission
		for _, sc := range scores {
			for _, pid := range ids {
				at := ats[rng.IntN(len(ats))]
				p := fmt.Sprintf("%s%d", pid, len(subs)%7)
				if slices.ContainsFunc(want, func(e store.Entry) bool { return e.ParticipantID == p }) {
					continue
				}
				subs = append(subs, store.Submission{ParticipantID: p, Score: sc, AchievedAt: at})
				want = append(want, store.Entry{ParticipantID: p, Score: sc, AchievedAt: at})
			}
		}
		rng.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
		res := make([]store.Result, len(subs))
		if err := s.Submit(ctx, id, subs, res); err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if !r.Updated || r.Score != subs[i].Score || r.AchievedAt != subs[i].AchievedAt || r.Version != uint64(i+1) {
				t.Fatalf("order %d: result %d = %+v for %+v", order, i, r, subs[i])
			}
		}
		sortEntries(order, want)
		page, err := s.Page(ctx, id, 0, len(want)+5)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(page.Entries, want) {
			t.Fatalf("order %d:\n got %v\nwant %v", order, page.Entries, want)
		}
		for _, e := range want {
			v, err := s.Participant(ctx, id, e.ParticipantID, 1)
			if err != nil || v.Entry != e {
				t.Fatalf("order %d: Participant(%s) = %+v, %v; want %+v", order, e.ParticipantID, v.Entry, err, e)
			}
		}
		for i, e := range rec.Events(id) {
			if e.Version != uint64(i+1) || e.NewScore != subs[i].Score || e.AchievedAt != subs[i].AchievedAt || e.NewRank != res[i].Rank {
				t.Fatalf("order %d: event %d = %+v for %+v", order, i, e, subs[i])
			}
		}
		// A move by one unit at the top of the range is a real change.
		top := want[0]
		next := top.Score - 1 // MaxScore-1 on a descending board
		if order == store.Ascending {
			next = top.Score + 1 // 1 on an ascending one
		}
		r := make([]store.Result, 1)
		if err := s.Submit(ctx, id, []store.Submission{{ParticipantID: top.ParticipantID, Score: next, AchievedAt: top.AchievedAt}}, r); err != nil {
			t.Fatal(err)
		}
		if !r[0].Updated || r[0].Score != next || r[0].PreviousScore != top.Score {
			t.Fatalf("order %d: one-unit move of %+v to %d: %+v", order, top, next, r[0])
		}
	}
}

type accepted struct {
	pid     string
	removed bool
	version uint64
}

// testTwoProcesses runs two stores over two connections (two API processes)
// writing the same leaderboard at once: versions must be gap-free across both,
// each store's sink must get the events in order without a gap, and the
// outbox must hold them all.
func testTwoProcesses(t *testing.T, c1, c2 goredis.UniversalClient) {
	ctx := context.Background()
	prefix := newPrefix(t, c1)
	recs := []*storetest.Recorder{{}, {}}
	stores := []*lbredis.Store{newStore(t, c1, prefix, recs[0], 0), newStore(t, c2, prefix, recs[1], 0)}
	if stores[0].Epoch() != stores[1].Epoch() {
		t.Fatalf("epochs differ: %s %s", stores[0].Epoch(), stores[1].Epoch())
	}
	const board = "shared"
	if err := stores[0].CreateBoard(ctx, board, store.BoardOptions{Policy: store.PolicyBest}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acc [2][]accepted
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			si := w % 2
			s := stores[si]
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for i := 0; i < 120; i++ {
				if rng.IntN(15) == 0 {
					pid := fmt.Sprintf("p%d", rng.IntN(60))
					res, err := s.Remove(ctx, board, pid)
					if err == nil {
						mu.Lock()
						acc[si] = append(acc[si], accepted{pid: pid, removed: true, version: res.Version})
						mu.Unlock()
					} else if !errors.Is(err, store.ErrParticipantNotFound) {
						t.Error(err)
						return
					}
					continue
				}
				subs := make([]store.Submission, 1+rng.IntN(2)*rng.IntN(70))
				for j := range subs {
					subs[j] = store.Submission{ParticipantID: fmt.Sprintf("p%d", rng.IntN(60)), Score: rng.Uint64N(store.MaxScore + 1), AchievedAt: int64(rng.IntN(4))}
				}
				res := make([]store.Result, len(subs))
				if err := s.Submit(ctx, board, subs, res); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, r := range res {
					if r.Updated {
						acc[si] = append(acc[si], accepted{pid: subs[j].ParticipantID, version: r.Version})
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := append(slices.Clone(acc[0]), acc[1]...)
	slices.SortFunc(all, func(a, b accepted) int { return cmp.Compare(a.version, b.version) })
	for i, a := range all {
		if a.version != uint64(i+1) {
			t.Fatalf("accepted change %d has version %d (gap or repeat across the two stores)", i, a.version)
		}
	}
	if len(acc[0]) == 0 || len(acc[1]) == 0 {
		t.Fatalf("a store made no change: %d, %d", len(acc[0]), len(acc[1]))
	}
	st, err := stores[1].Stats(ctx, board)
	if err != nil || st.Version != uint64(len(all)) {
		t.Fatalf("stats %+v %v, want version %d", st, err, len(all))
	}
	outbox, err := stores[0].ReadOutbox(ctx, board, "", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(outbox) != len(all) {
		t.Fatalf("outbox holds %d events for %d changes", len(outbox), len(all))
	}
	for i, e := range outbox {
		if e.Version != all[i].version || e.ParticipantID != all[i].pid || e.Removed != all[i].removed {
			t.Fatalf("outbox event %d = %+v, accepted %+v", i, e, all[i])
		}
	}
	// Reading on from the middle gives the rest.
	if rest, err := stores[1].ReadOutbox(ctx, board, outbox[9].ID, 5); err != nil || len(rest) != 5 || rest[0].Version != 11 {
		t.Fatalf("ReadOutbox after %s: %+v %v", outbox[9].ID, rest, err)
	}
	for si, s := range stores {
		if err := s.CatchUp(ctx, board); err != nil {
			t.Fatal(err)
		}
		evs := recs[si].Events(board)
		if len(evs) == 0 {
			t.Fatalf("store %d published nothing", si)
		}
		first := evs[0].Version
		if si == 0 && first != 1 {
			t.Fatalf("the creating store's first event is version %d", first)
		}
		for i, e := range evs {
			want := outbox[int(first)-1+i]
			if e != want.Event {
				t.Fatalf("store %d: event %d = %+v, outbox has %+v", si, i, e, want.Event)
			}
		}
		if last := evs[len(evs)-1].Version; last != uint64(len(all)) {
			t.Fatalf("store %d: last event %d, want %d", si, last, len(all))
		}
		for _, a := range acc[si] {
			if a.version < first {
				t.Fatalf("store %d: its own change %d was not published (first published %d)", si, a.version, first)
			}
		}
		if g := s.OutboxGaps(); g != 0 {
			t.Fatalf("store %d: %d events missed", si, g)
		}
	}
	// Replaying the events gives the final ranking.
	model := map[string]store.Event{}
	for _, e := range recs[0].Events(board) {
		if e.Removed {
			delete(model, e.ParticipantID)
		} else {
			model[e.ParticipantID] = e
		}
	}
	var want []store.Entry
	for pid, e := range model {
		want = append(want, store.Entry{ParticipantID: pid, Score: e.NewScore, AchievedAt: e.AchievedAt})
	}
	sortEntries(store.Descending, want)
	page, err := stores[1].Page(ctx, board, 0, 1000)
	if err != nil || page.Version != uint64(len(all)) || !slices.Equal(page.Entries, want) {
		t.Fatalf("final page v%d %v (%v), replay gives %v", page.Version, page.Entries, err, want)
	}
	boards, err := stores[1].ListBoards(ctx)
	if err != nil || !slices.Equal(boards, []string{board}) {
		t.Fatalf("ListBoards = %v, %v", boards, err)
	}
}

// testOutboxTrimmed: a store that last published long ago, when the outbox
// was trimmed since, skips the trimmed events, counts them, and still
// publishes its own change.
func testOutboxTrimmed(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	prefix := newPrefix(t, c)
	rec := &storetest.Recorder{}
	busy := newStore(t, c, prefix, nil, 10)
	idle := newStore(t, c, prefix, rec, 10)
	const board = "trim"
	if err := busy.CreateBoard(ctx, board, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	res := make([]store.Result, 1)
	if err := idle.Submit(ctx, board, []store.Submission{{ParticipantID: "idle", Score: 1, AchievedAt: 1}}, res); err != nil {
		t.Fatal(err)
	}
	subs := make([]store.Submission, 1000)
	for i := range subs {
		subs[i] = store.Submission{ParticipantID: fmt.Sprint("p", i), Score: uint64(i + 10), AchievedAt: 1}
	}
	if err := busy.Submit(ctx, board, subs, make([]store.Result, len(subs))); err != nil {
		t.Fatal(err)
	}
	if err := idle.Submit(ctx, board, []store.Submission{{ParticipantID: "idle", Score: 2, AchievedAt: 2}}, res); err != nil {
		t.Fatal(err)
	}
	evs := rec.Events(board)
	if evs[0].Version != 1 || evs[len(evs)-1].Version != 1002 || evs[len(evs)-1].ParticipantID != "idle" {
		t.Fatalf("events %d..%d", evs[0].Version, evs[len(evs)-1].Version)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Version <= evs[i-1].Version {
			t.Fatalf("events out of order at %d", i)
		}
	}
	if missed := idle.OutboxGaps(); missed == 0 || missed != 1002-uint64(len(evs)) {
		t.Fatalf("OutboxGaps = %d with %d events published of 1002", missed, len(evs))
	}
}

func testEpochShared(t *testing.T, c goredis.UniversalClient) {
	prefix := newPrefix(t, c)
	a, b := newStore(t, c, prefix, nil, 0), newStore(t, c, prefix, nil, 0)
	if a.Epoch() == "" || a.Epoch() != b.Epoch() {
		t.Fatalf("epochs %q %q", a.Epoch(), b.Epoch())
	}
	other := newStore(t, c, newPrefix(t, c), nil, 0)
	if other.Epoch() == a.Epoch() {
		t.Fatal("two prefixes share an epoch")
	}
	s, err := lbredis.New(context.Background(), lbredis.Options{Client: c, Prefix: prefix, Epoch: "fixed"})
	if err != nil || s.Epoch() != "fixed" {
		t.Fatalf("Options.Epoch: %v %v", s, err)
	}
	if _, err := lbredis.New(context.Background(), lbredis.Options{Client: c, Prefix: "a{b}"}); err == nil {
		t.Fatal("a prefix with braces was accepted")
	}
}

func testRestoreDuplicate(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	s := newStore(t, c, newPrefix(t, c), nil, 0)
	dup := []store.Entry{{ParticipantID: "a", Score: 1, AchievedAt: 1}, {ParticipantID: "a", Score: 2, AchievedAt: 1}}
	if err := s.Restore(ctx, "dup", store.BoardOptions{}, 5, dup); !errors.Is(err, store.ErrOutOfRange) {
		t.Fatalf("restore with a duplicate id: %v", err)
	}
	if _, err := s.Stats(ctx, "dup"); !errors.Is(err, store.ErrBoardNotFound) {
		t.Fatalf("a failed restore left a board: %v", err)
	}
	// Dropped and made again: the versions start over, events follow the new board.
	if err := s.Restore(ctx, "dup", store.BoardOptions{}, 5, dup[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.DropBoard(ctx, "dup"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBoard(ctx, "dup", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(ctx, "dup"); err != nil || st != (store.Stats{}) {
		t.Fatalf("recreated board: %+v %v", st, err)
	}
}

// testEmptyBoardID: "" is no leaderboard (its keys would not share a slot).
func testEmptyBoardID(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	s := newStore(t, c, newPrefix(t, c), &storetest.Recorder{}, 0)
	if err := s.CreateBoard(ctx, "", store.BoardOptions{}); err == nil {
		t.Fatal("created a leaderboard with an empty id")
	}
	if err := s.Restore(ctx, "", store.BoardOptions{}, 1, nil); err == nil {
		t.Fatal("restored a leaderboard with an empty id")
	}
	sub := []store.Submission{{ParticipantID: "a", Score: 1, AchievedAt: 1}}
	for name, err := range map[string]error{
		"Submit":      s.Submit(ctx, "", sub, make([]store.Result, 1)),
		"Remove":      func() error { _, err := s.Remove(ctx, "", "a"); return err }(),
		"Seal":        func() error { _, err := s.Seal(ctx, ""); return err }(),
		"Stats":       func() error { _, err := s.Stats(ctx, ""); return err }(),
		"Page":        func() error { _, err := s.Page(ctx, "", 0, 1); return err }(),
		"Around":      func() error { _, err := s.Around(ctx, "", "a", 1); return err }(),
		"Participant": func() error { _, err := s.Participant(ctx, "", "a", 1); return err }(),
		"Drop":        s.DropBoard(ctx, ""),
		"CatchUp":     s.CatchUp(ctx, ""),
	} {
		if !errors.Is(err, store.ErrBoardNotFound) {
			t.Errorf("%s(\"\"): %v, want ErrBoardNotFound", name, err)
		}
	}
}

func TestNewClient(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		addrs   []string
		db      int
	}{
		{"redis://127.0.0.1:6379/2", false, []string{"127.0.0.1:6379"}, 2},
		{"redis://h", false, []string{"h:6379"}, 0},
		{"redis+cluster://h1:7000", true, []string{"h1:7000"}, 0},
		{"redis+cluster://h1:7000?addr=h2:7001&addr=h3:7002", true, []string{"h1:7000", "h2:7001", "h3:7002"}, 0},
		{"redis://h1:7000?addr=h2:7001", true, []string{"h1:7000", "h2:7001"}, 0},
		{"rediss+cluster://u:pw@h1:7000", true, []string{"h1:7000"}, 0},
	} {
		c, err := lbredis.NewClient(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		switch c := c.(type) {
		case *goredis.ClusterClient:
			if !tc.cluster || !slices.Equal(c.Options().Addrs, tc.addrs) {
				t.Errorf("%s: cluster %v", tc.url, c.Options().Addrs)
			}
		case *goredis.Client:
			if tc.cluster || c.Options().Addr != tc.addrs[0] || c.Options().DB != tc.db {
				t.Errorf("%s: client %s db %d", tc.url, c.Options().Addr, c.Options().DB)
			}
		}
		c.Close()
	}
	for _, bad := range []string{"http://h", "redis+cluster://h?bogus=1", "::"} {
		if _, err := lbredis.NewClient(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
