package board_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/sqlite"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestBatchRacingFinalizeIsAllOrNothing: a 1000-item batch racing a finalize.
// The store applies a batch in chunks of 64, releasing the board's lock in
// between, so the seal can land between two chunks. The batch must then not
// be answered as a whole "404 leaderboard_ended" while some of its items are
// in the final ranking: a caller told "ended" believes nothing was recorded.
func TestBatchRacingFinalizeIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	outcomes := map[string]int{}
	defer func() { t.Log(outcomes) }()
	for attempt := 0; attempt < 300; attempt++ {
		st := memory.New(memory.Options{})
		svc := board.New(st, board.Options{})
		id := fmt.Sprint("b", attempt)
		if _, err := svc.Create(ctx, board.CreateRequest{ID: id, Name: "B"}); err != nil {
			t.Fatal(err)
		}
		ins := make([]board.ScoreInput, 1000)
		for i := range ins {
			ins[i] = board.ScoreInput{ParticipantID: fmt.Sprint("p", i), Score: uint64(i)}
		}
		var wg sync.WaitGroup
		var results []error
		var batchErr error
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, results, batchErr = svc.SubmitBatch(ctx, id, ins, nil)
		}()
		go func() {
			defer wg.Done()
			<-start
			// Finalize once the batch has begun (its first chunk is in).
			for v, _ := svc.Version(ctx, id); v == 0; v, _ = svc.Version(ctx, id) {
			}
			if _, err := svc.Finalize(ctx, id); err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		page, err := svc.Rankings(ctx, id, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var be *board.Error
		if errors.As(batchErr, &be) && be.Code == board.CodeLeaderboardEnded && len(page.Entries) > 0 {
			t.Fatalf("attempt %d: the batch was answered %v as a whole, yet %d of its items are in the final ranking (version %d)",
				attempt, batchErr, len(page.Entries), page.Version)
		}
		outcomes[fmt.Sprintf("err=%v ranked=%d", batchErr != nil, len(page.Entries))]++
		if batchErr == nil {
			// Per item: each item answered with a result is ranked, each
			// answered with an error is not.
			applied := 0
			for _, e := range results {
				if e == nil {
					applied++
				}
			}
			if applied != len(page.Entries) {
				t.Fatalf("attempt %d: %d items answered applied, %d ranked", attempt, applied, len(page.Entries))
			}
		}
	}
}

// TestSharedPatchKeepsOtherProcessChange: two API processes over one shared
// history store. An admin pauses the board on A; within the sweep interval
// another admin renames it on B. B's PATCH writes its whole (stale) record
// back, so the pause is undone: the board takes scores again on both
// processes, though nobody resumed it. The same with ends_at: an extension
// made on A is reverted by a rename on B, and the board then ends early.
func TestSharedPatchKeepsOtherProcessChange(t *testing.T) {
	ctx := context.Background()
	a, b := twoSharedServices(t)
	ends := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	if _, err := a.Create(ctx, board.CreateRequest{ID: "x", Name: "X", EndsAt: ends}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "x"); err != nil { // B knows the board
		t.Fatal(err)
	}
	paused := board.Paused
	later := ends.Add(24 * time.Hour)
	if _, err := a.Update(ctx, "x", board.Patch{Status: &paused, EndsAt: &later}); err != nil {
		t.Fatal(err)
	}
	name := "renamed"
	lb, err := b.Update(ctx, "x", board.Patch{Name: &name}) // before B's next sweep
	if err != nil {
		t.Fatal(err)
	}
	a.Sweep(ctx)
	b.Sweep(ctx)
	for _, svc := range []*board.Service{a, b} {
		got, _ := svc.Get(ctx, "x")
		if got.Status != board.Paused || !got.EndsAt.Equal(later) || got.Name != name {
			t.Errorf("after pause+extend on A and a rename on B: status %s, ends_at %s, name %q (B answered %s, %s); want paused, %s, %q",
				got.Status, got.EndsAt.Format(time.RFC3339), got.Name, lb.Status, lb.EndsAt.Format(time.RFC3339), later.Format(time.RFC3339), name)
		}
	}
	if _, err := a.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 1}); err == nil {
		t.Error("a submission was accepted on a board an admin paused and nobody resumed")
	}
}

// steppedHistory pauses PutBoard and Boards at the test's command, to run a
// sweep's refresh between a PATCH's write and its answer.
type steppedHistory struct {
	history.Store
	putEntered, putGo     chan struct{}
	boardsRead, boardsGo  chan struct{}
	armedPut, armedBoards atomic.Bool
}

func (h *steppedHistory) PutBoard(ctx context.Context, b history.Board) error {
	if h.armedPut.CompareAndSwap(true, false) {
		h.putEntered <- struct{}{}
		<-h.putGo
	}
	return h.Store.PutBoard(ctx, b)
}

func (h *steppedHistory) Boards(ctx context.Context) ([]history.Board, error) {
	bs, err := h.Store.Boards(ctx)
	if h.armedBoards.CompareAndSwap(true, false) {
		h.boardsRead <- struct{}{}
		<-h.boardsGo
	}
	return bs, err
}

// TestSweepRefreshDoesNotUndoALocalPatch: with a shared history store (two
// API processes over Redis), each sweep re-reads every leaderboard. A read
// that started before a local PATCH was written, and is applied after it,
// puts the old record back: the PATCH was answered "paused", yet the same
// process then says active and takes scores, until its next sweep.
func TestSweepRefreshDoesNotUndoALocalPatch(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	hs := &steppedHistory{Store: sq, putEntered: make(chan struct{}), putGo: make(chan struct{}),
		boardsRead: make(chan struct{}), boardsGo: make(chan struct{})}
	svc := board.New(memory.New(memory.Options{}), board.Options{History: hs, Shared: true})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	paused := board.Paused
	hs.armedPut.Store(true)
	patched := make(chan board.Leaderboard)
	go func() {
		lb, err := svc.Update(ctx, "x", board.Patch{Status: &paused})
		if err != nil {
			t.Error(err)
		}
		patched <- lb
	}()
	<-hs.putEntered // the PATCH is about to write
	hs.armedBoards.Store(true)
	swept := make(chan struct{})
	go func() { svc.Sweep(ctx); close(swept) }()
	<-hs.boardsRead // the sweep read the list before the PATCH's write
	close(hs.putGo)
	lb := <-patched
	close(hs.boardsGo)
	<-swept
	got, _ := svc.Get(ctx, "x")
	if lb.Status != board.Paused || got.Status != board.Paused {
		t.Fatalf("PATCH answered %s; the board then reads %s on the same process", lb.Status, got.Status)
	}
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 1}); err == nil {
		t.Fatal("a submission was accepted right after the PATCH that paused the board was answered")
	}
}

// flakyStore fails every call while down, as a Redis that does not answer.
type flakyStore struct {
	*memory.Store
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (f *flakyStore) Submit(ctx context.Context, b string, subs []store.Submission, res []store.Result) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Submit(ctx, b, subs, res)
}

func (f *flakyStore) Seal(ctx context.Context, b string) (store.Stats, error) {
	if f.down.Load() {
		return store.Stats{}, errDown
	}
	return f.Store.Seal(ctx, b)
}

// TestFinalizeKeepsQueuedSubmissions: submissions answered 202 (queued while
// the ranking store was unreachable) were accepted while the board was
// active; docs/API.md promises they are applied in order when the store
// returns. A finalize (or the sweep at ends_at) that reaches the store before
// the queue's drain seals the board first, and the queued submissions are
// then dropped (logged only): accepted, never ranked.
func TestFinalizeKeepsQueuedSubmissions(t *testing.T) {
	ctx := context.Background()
	st := &flakyStore{Store: memory.New(memory.Options{})}
	svc := board.New(st, board.Options{WriteQueue: 100})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "before", Score: 5}); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "queued", Score: 7}); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("submission while the store is down: %v, want queued (202)", err)
	}
	if _, err := svc.Finalize(ctx, "x"); err == nil {
		t.Fatal("finalize while the store is down succeeded")
	}
	st.down.Store(false) // the store returns; the admin retries the finalize
	if _, err := svc.Finalize(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	page, err := svc.Rankings(ctx, "x", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range page.Entries {
		ids = append(ids, e.ParticipantID)
	}
	if len(ids) != 2 {
		t.Fatalf("final ranking %v: the submission answered 202 before the finalize is missing", ids)
	}
}

// slowStats holds one Stats call (armed) until released, as a Redis round
// trip that takes a while.
type slowStats struct {
	*memory.Store
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *slowStats) Stats(ctx context.Context, b string) (store.Stats, error) {
	if s.armed.CompareAndSwap(true, false) {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Stats(ctx, b)
}

// TestStatusNoticesInOrder: a PATCH pausing the board and a finalize right
// after it. Live viewers are told each status change (OnStatus); the notices
// must arrive in the order of the changes, so that the last one a viewer
// gets is the board's status. announce decides the status under the lock
// but reads the version and calls OnStatus after releasing it, so a slow
// read in the PATCH's announce lets the finalize's "completed" go out first
// and the stale "paused" last: viewers show a completed board as paused.
func TestStatusNoticesInOrder(t *testing.T) {
	ctx := context.Background()
	st := &slowStats{Store: memory.New(memory.Options{}), entered: make(chan struct{}), release: make(chan struct{})}
	var mu sync.Mutex
	var notices []board.Status
	svc := board.New(st, board.Options{OnStatus: func(_ string, s board.Status, _ uint64) {
		mu.Lock()
		notices = append(notices, s)
		mu.Unlock()
	}})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	paused := board.Paused
	st.armed.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := svc.Update(ctx, "x", board.Patch{Status: &paused}); err != nil {
			t.Error(err)
		}
	}()
	<-st.entered // the PATCH's notice is on its way
	finalized := make(chan struct{})
	go func() {
		defer close(finalized)
		if _, err := svc.Finalize(ctx, "x"); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-finalized:
	case <-time.After(500 * time.Millisecond): // a fix may make the finalize wait for the PATCH's notice
	}
	close(st.release)
	<-done
	<-finalized
	mu.Lock()
	defer mu.Unlock()
	if len(notices) == 0 || notices[len(notices)-1] != board.Completed {
		t.Fatalf("status notices %v: the last one viewers get is not completed", notices)
	}
}

// TestSharedAfterFinalizeElsewhere: two API processes over one ranking store
// (Redis) and one history store. A finalizes the board, which archives the
// final ranking and drops the live one from the shared ranking store. Until
// B's next sweep (up to --sweep-interval) B still believes the board is
// live, and: a retried finalize through B (idempotent by docs/API.md) answers
// 404 leaderboard_not_found, a read of the rankings answers 404
// leaderboard_not_found, and a late submission 404 leaderboard_not_found
// instead of leaderboard_ended.
func TestSharedAfterFinalizeElsewhere(t *testing.T) {
	ctx := context.Background()
	a, b := twoSharedServices(t)
	if _, err := a.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Finalize(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	// B, before its next sweep:
	if lb, err := b.Finalize(ctx, "x"); err != nil || lb.Status != board.Completed {
		t.Errorf("finalize retried on the other process: %+v, %v; want 200 completed", lb, err)
	}
	if p, err := b.Rankings(ctx, "x", 0, 10); err != nil || len(p.Entries) != 1 {
		t.Errorf("rankings on the other process: %+v, %v; want the final ranking", p, err)
	}
	var be *board.Error
	if _, err := b.Submit(ctx, "x", board.ScoreInput{ParticipantID: "late", Score: 1}); !errors.As(err, &be) || be.Code != board.CodeLeaderboardEnded {
		t.Errorf("late submission on the other process: %v; want leaderboard_ended", err)
	}
}

// heldFinalize holds one Finalize (armed) until released.
type heldFinalize struct {
	history.Store
	armed            atomic.Bool
	entered, release chan struct{}
}

func (h *heldFinalize) Finalize(ctx context.Context, b history.Board, es iter.Seq2[store.Entry, error]) error {
	if h.armed.CompareAndSwap(true, false) {
		h.entered <- struct{}{}
		<-h.release
	}
	return h.Store.Finalize(ctx, b, es)
}

// TestBothSweepsCompleteOneFinalizedAt: two API processes over a shared
// history both sweep a board whose ends_at passed. The one whose final
// ranking commits second is told ErrCompleted ("an earlier attempt
// committed") and keeps its own finalized_at, final version and total in
// memory for good (its refresh skips completed boards): the two processes
// then answer final-rankings with different finalized_at, and the loser's
// differs from what results (read from the history store) says.
func TestBothSweepsCompleteOneFinalizedAt(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	var clock atomic.Int64
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	clock.Store(t0.UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	st := memory.New(memory.Options{})
	hb := &heldFinalize{Store: sq, entered: make(chan struct{}), release: make(chan struct{})}
	a := board.New(st, board.Options{History: sq, Shared: true, Now: now})
	b := board.New(st, board.Options{History: hb, Shared: true, Now: now})
	if _, err := a.Create(ctx, board.CreateRequest{ID: "x", Name: "X", EndsAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 1}); err != nil {
		t.Fatal(err)
	}
	clock.Store(t0.Add(time.Hour + time.Second).UnixMilli()) // past ends_at
	hb.armed.Store(true)
	bDone := make(chan struct{})
	go func() { b.Sweep(ctx); close(bDone) }()
	<-hb.entered   // B sealed and is writing the final ranking
	clock.Add(700) // A's sweep runs a little later
	a.Sweep(ctx)
	close(hb.release)
	<-bDone
	fa, _, errA := a.FinalRankings(ctx, "x", 0, 10)
	fb, _, errB := b.FinalRankings(ctx, "x", 0, 10)
	rs, _ := b.Results(ctx, "p", 0, 10)
	if errA != nil || errB != nil || !fa.Equal(fb) || len(rs) != 1 || !rs[0].FinalizedAt.Equal(fb) {
		t.Fatalf("finalized_at: A %v (%v), B %v (%v), results %+v: want one value", fa, errA, fb, errB, rs)
	}
}
