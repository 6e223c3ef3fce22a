package sqlite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// hookSource runs hook after each page of a snapshot is read (with the
// number of pages read so far): writes landing between two page reads.
type hookSource struct {
	*memory.Store
	pages int
	hook  func(pages int)
}

func (h *hookSource) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	p, err := h.Store.Page(ctx, board, offset, limit)
	h.pages++
	h.hook(h.pages)
	return p, err
}

// TestRecoverAfterShiftDuringSnapshot: a change that moves a participant
// from the first snapshot page to a later one (or removes it) shifts every
// participant after it up one rank, between two page reads. A participant that
// did not change and crossed the page boundary must still be in the snapshot:
// no event after the snapshot's version brings it back. The later cases move
// more participants between two reads than the overlap the snapshot guessed
// (it reads again, further back), and shift the board after every page.
func TestRecoverAfterShiftDuringSnapshot(t *testing.T) {
	ctx := context.Background()
	drop := func(live *memory.Store, pid string) error {
		var res [1]store.Result
		return live.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: 0, AchievedAt: 1}}, res[:])
	}
	remove := func(live *memory.Store, pid string) error {
		_, err := live.Remove(ctx, "b", pid)
		return err
	}
	for _, tc := range []struct {
		name   string
		change func(live *memory.Store, pages int) error
	}{
		{"worse-score", func(live *memory.Store, pages int) error {
			if pages > 1 {
				return nil
			}
			return drop(live, "p00000")
		}},
		{"remove", func(live *memory.Store, pages int) error {
			if pages > 1 {
				return nil
			}
			return remove(live, "p00000")
		}},
		{"many-removed-at-once", func(live *memory.Store, pages int) error {
			if pages != 2 {
				return nil
			}
			for i := range 300 {
				if err := remove(live, fmt.Sprintf("p%05d", i)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"after-every-page", func(live *memory.Store, pages int) error {
			for i := range 5 {
				if err := drop(live, fmt.Sprintf("p%05d", 10*pages+i)); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := OpenDir(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer hs.Close()
			w := history.NewWriter(hs, history.WriterOptions{FlushInterval: time.Hour})
			live := memory.New(memory.Options{Sink: w})
			b := history.Board{ID: "b", Name: "B", Type: "custom", CreatedAt: time.Now()}
			if err := hs.PutBoard(ctx, b); err != nil {
				t.Fatal(err)
			}
			if err := live.CreateBoard(ctx, "b", store.BoardOptions{}); err != nil {
				t.Fatal(err)
			}
			w.Track("b", 0, 0)
			const n = 5000
			subs := make([]store.Submission, n)
			for i := range subs {
				subs[i] = store.Submission{ParticipantID: fmt.Sprintf("p%05d", i), Score: uint64(10 * (n - i)), AchievedAt: 1}
			}
			if err := live.Submit(ctx, "b", subs, make([]store.Result, n)); err != nil {
				t.Fatal(err)
			}
			src := &hookSource{Store: live, hook: func(pages int) {
				if err := tc.change(live, pages); err != nil {
					t.Error(err)
				}
			}}
			w.SnapshotChanged(ctx, src)
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want, _ := live.Page(ctx, "b", 0, n)
			fresh := memory.New(memory.Options{})
			rec, err := history.Recover(ctx, hs, fresh, b)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := fresh.Page(ctx, "b", 0, n)
			if got.Version != want.Version || !slices.Equal(got.Entries, want.Entries) {
				var missing []string
				have := map[string]bool{}
				for _, e := range got.Entries {
					have[e.ParticipantID] = true
				}
				for _, e := range want.Entries {
					if !have[e.ParticipantID] {
						missing = append(missing, e.ParticipantID)
					}
				}
				if len(missing) > 10 {
					missing = append(missing[:10], "...")
				}
				t.Fatalf("recovered v%d with %d entries (snapshot v%d + %d events); live v%d with %d entries; missing %v",
					got.Version, len(got.Entries), rec.SnapVersion, rec.Replayed, want.Version, len(want.Entries), missing)
			}
		})
	}
}

// TestRecoverAfterConcurrentSnapshotLargeBoard: the same with a board of
// several snapshot pages and a goroutine changing it (drops, removals,
// inserts) while the snapshot is read.
func TestRecoverAfterConcurrentSnapshotLargeBoard(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		hs, err := OpenDir(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w := history.NewWriter(hs, history.WriterOptions{FlushInterval: time.Hour, MaxQueue: 1 << 30})
		live := memory.New(memory.Options{Sink: w})
		b := history.Board{ID: "b", Name: "B", Type: "custom", CreatedAt: time.Now()}
		if err := hs.PutBoard(ctx, b); err != nil {
			t.Fatal(err)
		}
		live.CreateBoard(ctx, "b", store.BoardOptions{})
		w.Track("b", 0, 0)
		const n = 12000
		subs := make([]store.Submission, n)
		for i := range subs {
			subs[i] = store.Submission{ParticipantID: fmt.Sprintf("p%05d", i), Score: uint64(10 * (n - i)), AchievedAt: 1}
		}
		live.Submit(ctx, "b", subs, make([]store.Result, n))
		done := make(chan struct{})
		go func() {
			defer close(done)
			var res [1]store.Result
			for i := 0; i < 3000; i++ {
				pid := fmt.Sprintf("p%05d", (i*7919+round)%n)
				switch i % 3 {
				case 0:
					_, _ = live.Remove(ctx, "b", pid)
				case 1:
					_ = live.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: uint64(i % 50), AchievedAt: 2}}, res[:])
				default:
					_ = live.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprintf("q%05d", i), Score: uint64(i * 37 % (10 * n)), AchievedAt: 2}}, res[:])
				}
			}
		}()
		w.SnapshotChanged(ctx, live)
		<-done
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want, _ := live.Page(ctx, "b", 0, 2*n)
		fresh := memory.New(memory.Options{})
		rec, err := history.Recover(ctx, hs, fresh, b)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := fresh.Page(ctx, "b", 0, 2*n)
		hs.Close()
		if got.Version != want.Version || !slices.Equal(got.Entries, want.Entries) {
			t.Fatalf("round %d: recovered v%d with %d entries (snapshot v%d + %d events); live v%d with %d entries",
				round, got.Version, len(got.Entries), rec.SnapVersion, rec.Replayed, want.Version, len(want.Entries))
		}
	}
}
