package fanout

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
)

// boardCount is how many leaderboards the hub keeps state for.
func (h *Hub) boardCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.boards)
}

// TestUnwatchedBoardsAreForgotten: a server that runs for weeks sees
// thousands of leaderboards watched for a while and then never again. Once
// a leaderboard has had no subscriber for longer than the history window,
// the hub forgets it (every flush walked it, and every change to it was
// logged, for nobody); a viewer who comes back later starts afresh and
// still follows the board.
func TestUnwatchedBoardsAreForgotten(t *testing.T) {
	f := newFixture(t, 10*time.Second)
	ctx := context.Background()
	for i := range 50 {
		board := fmt.Sprint("b", i)
		if err := f.st.CreateBoard(ctx, board, store.BoardOptions{}); err != nil {
			t.Fatal(err)
		}
		f.submit(t, board, "a", 1, 0)
		sub, err := f.hub.Subscribe(ctx, board, "x", Spec{Kind: Top, Limit: 3}, nil, "", &recorder{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.submit(t, board, "b", 2, 0)
		f.hub.Flush(ctx)
		f.hub.Unsubscribe(sub)
		f.submit(t, board, "c", 3, 0) // changes go on after the last viewer left
		if i%2 == 0 {
			_ = f.st.DropBoard(ctx, board) // completed and archived
		}
	}
	f.hub.Flush(ctx)
	if n := f.hub.boardCount(); n != 50 {
		t.Fatalf("%d boards right after their viewers left, want all 50 kept for resumes", n)
	}
	f.now = f.now.Add(11 * time.Second)
	f.hub.Flush(ctx)
	f.now = f.now.Add(time.Second)
	f.hub.Flush(ctx)
	if n := f.hub.boardCount(); n != 0 {
		t.Fatalf("%d boards still held after a history window without viewers, want 0", n)
	}
	if n := f.hub.Snapshot().SegmentsNow; n != 0 {
		t.Fatalf("%d segments, want 0", n)
	}

	// A viewer of a forgotten board is served as before.
	rec := &recorder{}
	if _, err := f.hub.Subscribe(ctx, "b1", "y", Spec{Kind: Top, Limit: 3}, nil, "", rec, nil); err != nil {
		t.Fatal(err)
	}
	f.submit(t, "b1", "d", 10, 0)
	f.hub.Flush(ctx)
	v := apply(t, rec.all(), "y")
	want, _ := expected(t, f.st, "b1", Spec{Kind: Top, Limit: 3})
	if !slices.Equal(v.list(), want) {
		t.Fatalf("after coming back: %v, want %v", v.list(), want)
	}
	if n := f.hub.boardCount(); n != 1 {
		t.Fatalf("%d boards, want the one watched", n)
	}
}
