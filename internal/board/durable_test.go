package board_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestFullAuditQueueRefusesChanges: while the history writer's queue is full
// (its database stalled), submissions, batches and removals get 503
// unavailable with a Retry-After and change nothing; once it commits they
// are served again.
func TestFullAuditQueueRefusesChanges(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	w := history.NewWriter(hs, history.WriterOptions{MaxQueue: 3}) // not running: nothing commits
	st := memory.New(memory.Options{Sink: w})
	svc := board.New(st, board.Options{History: hs, Log: w})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "b", Name: "B"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := svc.Submit(ctx, "b", board.ScoreInput{ParticipantID: fmt.Sprint("p", i), Score: 1}); err != nil {
			t.Fatal(err)
		}
	}
	unavailable := func(what string, err error) {
		t.Helper()
		var be *board.Error
		if !errors.As(err, &be) || be.Code != board.CodeUnavailable || be.RetryAfter <= 0 {
			t.Fatalf("%s with the queue full: %v, want unavailable with Retry-After", what, err)
		}
	}
	_, err = svc.Submit(ctx, "b", board.ScoreInput{ParticipantID: "late", Score: 9})
	unavailable("submit", err)
	_, _, err = svc.SubmitBatch(ctx, "b", []board.ScoreInput{{ParticipantID: "late", Score: 9}}, nil)
	unavailable("batch", err)
	unavailable("remove", svc.RemoveParticipant(ctx, "b", "p0"))
	if v, _ := svc.Version(ctx, "b"); v != 3 {
		t.Fatalf("version %d after refused changes, want 3", v)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Submit(ctx, "b", board.ScoreInput{ParticipantID: "late", Score: 9})
	if err != nil || res.Version != 4 {
		t.Fatalf("after the commit: %+v, %v", res, err)
	}
}

// TestSharedHistoryRefresh: two services (two API processes) over one
// history store and one ranking store: a leaderboard created on one is found
// by the other, and a pause made on one reaches the other at its next sweep.
func TestSharedHistoryRefresh(t *testing.T) {
	ctx := context.Background()
	a, b := twoSharedServices(t)
	if _, err := a.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Get(ctx, "x")
	if err != nil || lb.Name != "X" || lb.Status != board.Active {
		t.Fatalf("the other process: %+v, %v", lb, err)
	}
	paused := board.Paused
	if _, err := a.Update(ctx, "x", board.Patch{Status: &paused}); err != nil {
		t.Fatal(err)
	}
	b.Sweep(ctx)
	if lb, _ := b.Get(ctx, "x"); lb.Status != board.Paused {
		t.Fatalf("after a sweep the other process sees %s, want paused", lb.Status)
	}
	if _, err := b.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 1}); err == nil {
		t.Fatal("submission accepted on a board paused by the other process")
	}
	if _, err := b.Get(ctx, "never"); err == nil {
		t.Fatal("unknown board found")
	}
}

// countingHistory counts the reads of the leaderboard list.
type countingHistory struct {
	history.Store
	reads atomic.Int64
}

func (c *countingHistory) Boards(ctx context.Context) ([]history.Board, error) {
	c.reads.Add(1)
	return c.Store.Boards(ctx)
}

// TestSharedLookupAfterCreate: a leaderboard created on one process is found
// by another right away, even when that other one has just re-read the list
// for an unknown id (it used to answer 404 for up to a second: a submission
// through another API node right after the create got leaderboard_not_found);
// and a flood of unknown ids reads the list at most about once per
// refreshSpacing (100 ms), not once per request (each waits for the next
// read, at most about 100 ms).
func TestSharedLookupAfterCreate(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	counted := &countingHistory{Store: hs}
	st := memory.New(memory.Options{})
	a := board.New(st, board.Options{History: hs, Shared: true})
	b := board.New(st, board.Options{History: counted, Shared: true})
	for i := range 3 {
		if _, err := b.Get(ctx, "unknown"); err == nil {
			t.Fatal("unknown board found")
		}
		id := fmt.Sprintf("fresh-%d", i)
		if _, err := a.Create(ctx, board.CreateRequest{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Submit(ctx, id, board.ScoreInput{ParticipantID: "p", Score: 1}); err != nil {
			t.Fatalf("submission on the other process right after the create: %v", err)
		}
	}

	before := counted.reads.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := b.Get(ctx, fmt.Sprintf("bad-%d-%d", w, i)); err == nil {
					t.Error("a bad id was found")
				}
			}
		})
	}
	wg.Wait()
	reads, took := counted.reads.Load()-before, time.Since(start)
	// One read per 100 ms at most, plus the first one: 80 lookups are not 80 reads.
	if limit := int64(took/(100*time.Millisecond)) + 2; reads > limit {
		t.Fatalf("80 lookups of unknown ids read the list %d times in %v (at most %d)", reads, took, limit)
	}
}

// twoSharedServices returns two services (two API processes) over one
// history store and one ranking store (a memory store standing for the
// shared Redis).
func twoSharedServices(t *testing.T) (a, b *board.Service) {
	t.Helper()
	hs, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	st := memory.New(memory.Options{})
	return board.New(st, board.Options{History: hs, Shared: true}), board.New(st, board.Options{History: hs, Shared: true})
}
