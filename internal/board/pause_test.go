package board_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestRestoredPausedBoardIsPausedInTheStore: the ranking store refuses a
// paused leaderboard's submissions itself (so that a batch racing a PATCH
// stops at the pause). A board rebuilt at start from history must be
// paused there too, not only in the service's status; a resume lifts it.
func TestRestoredPausedBoardIsPausedInTheStore(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	svc := board.New(memory.New(memory.Options{}), board.Options{History: hs})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "b", Name: "B"}); err != nil {
		t.Fatal(err)
	}
	paused, active := board.Paused, board.Active
	if _, err := svc.Update(ctx, "b", board.Patch{Status: &paused}); err != nil {
		t.Fatal(err)
	}

	st := memory.New(memory.Options{}) // the next start: an empty store, rebuilt from history
	svc = board.New(st, board.Options{History: hs})
	if _, err := svc.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	sub := []store.Submission{{ParticipantID: "p", Score: 1, AchievedAt: 1}}
	if err := st.Submit(ctx, "b", sub, make([]store.Result, 1)); !errors.Is(err, store.ErrBoardPaused) {
		t.Fatalf("a submission reaching the store of a restored paused board: %v, want ErrBoardPaused", err)
	}
	if _, err := svc.Update(ctx, "b", board.Patch{Status: &active}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Submit(ctx, "b", board.ScoreInput{ParticipantID: "p", Score: 1}); err != nil {
		t.Fatalf("submission after the resume: %v", err)
	}
}
