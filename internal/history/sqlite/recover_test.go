package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestRecoverEqualsLiveState drives random submissions and removals through a
// memory store whose events go to a Writer over SQLite, snapshots while a
// writer goroutine keeps changing the board (the fuzzy scan), then rebuilds
// the board into a fresh store from the snapshot and the log after it: the
// rebuilt ranking and version must equal the live ones exactly.
func TestRecoverEqualsLiveState(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		order  store.SortOrder
		policy store.Policy
		snaps  int
	}{
		{"desc-set-no-snapshot", store.Descending, store.PolicySet, 0},
		{"desc-set", store.Descending, store.PolicySet, 3},
		{"asc-best", store.Ascending, store.PolicyBest, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, err := OpenDir(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer hs.Close()
			w := history.NewWriter(hs, history.WriterOptions{FlushInterval: time.Hour})
			live := memory.New(memory.Options{Sink: w})
			b := history.Board{ID: "b", Name: "B", Type: "custom", Order: tc.order, Policy: tc.policy, CreatedAt: time.Now()}
			if err := hs.PutBoard(ctx, b); err != nil {
				t.Fatal(err)
			}
			if err := live.CreateBoard(ctx, "b", store.BoardOptions{Order: tc.order, Policy: tc.policy}); err != nil {
				t.Fatal(err)
			}
			w.Track("b", 0, 0)
			rng := rand.New(rand.NewPCG(1, uint64(tc.snaps)))
			step := func(rng *rand.Rand) {
				pid := fmt.Sprintf("p%03d", rng.IntN(300))
				if rng.IntN(10) == 0 {
					_, _ = live.Remove(ctx, "b", pid)
					return
				}
				score := []uint64{0, store.MaxScore, rng.Uint64N(100), rng.Uint64N(1 << 40)}[rng.IntN(4)]
				var res [1]store.Result
				if err := live.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: score, AchievedAt: int64(rng.IntN(50))}}, res[:]); err != nil {
					t.Error(err)
				}
			}
			for round := 0; round <= tc.snaps; round++ {
				for i := 0; i < 2000; i++ {
					step(rng)
				}
				if round < tc.snaps {
					// Snapshot while another goroutine keeps writing.
					var wg sync.WaitGroup
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := rand.New(rand.NewPCG(uint64(round), 9))
						for i := 0; i < 3000; i++ {
							step(r)
						}
					}()
					w.SnapshotChanged(ctx, live)
					wg.Wait()
				}
				// Without Run nothing commits: Flush waits until its context ends.
				short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				if err := w.Flush(short); err == nil {
					t.Fatal("flush returned before anything was committed")
				}
				cancel()
			}
			// Commit by hand: no Run loop in this test.
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want, err := live.Page(ctx, "b", 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if tc.snaps > 0 {
				if s, err := hs.Snapshot(ctx, "b"); err != nil || s.Version == 0 {
					t.Fatalf("no snapshot taken: %v", err)
				}
			}
			fresh := memory.New(memory.Options{})
			rec, err := history.Recover(ctx, hs, fresh, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fresh.Page(ctx, "b", 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != want.Version || !slices.Equal(got.Entries, want.Entries) {
				t.Fatalf("recovered v%d (%d entries, from snapshot v%d + %d events), live v%d (%d entries)",
					got.Version, len(got.Entries), rec.SnapVersion, rec.Replayed, want.Version, len(want.Entries))
			}
		})
	}
}

// BenchmarkRecover measures start-up recovery of 1M participants spread over
// 100 leaderboards (10,000 each, 16-byte ids): each from its snapshot plus
// 1,000 events after it (snapshots), or from the audit log alone (log-only).
func BenchmarkRecover(b *testing.B) {
	const boards, perBoard, after = 100, 10_000, 1_000
	for _, mode := range []string{"snapshots", "log-only"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			hs, err := OpenDir(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer hs.Close()
			w := history.NewWriter(hs, history.WriterOptions{MaxQueue: 1 << 30})
			live := memory.New(memory.Options{Sink: w})
			rng := rand.New(rand.NewPCG(1, 2))
			var metas []history.Board
			subs := make([]store.Submission, 1000)
			res := make([]store.Result, 1000)
			fill := func(id string, n int) {
				for start := 0; start < n; start += len(subs) {
					for i := range subs {
						subs[i] = store.Submission{ParticipantID: fmt.Sprintf("participant-%05d", rng.IntN(perBoard)), Score: rng.Uint64N(1 << 40), AchievedAt: 1700000000000 + int64(start+i)}
					}
					if err := live.Submit(ctx, id, subs, res); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := 0; i < boards; i++ {
				m := history.Board{ID: fmt.Sprintf("board-%03d", i), Name: "b", Type: "custom", CreatedAt: time.Now()}
				metas = append(metas, m)
				if err := hs.PutBoard(ctx, m); err != nil {
					b.Fatal(err)
				}
				live.CreateBoard(ctx, m.ID, store.BoardOptions{})
				w.Track(m.ID, 0, 0)
				for j := 0; j < perBoard; j++ { // every participant once, then random changes
					subs[j%1000] = store.Submission{ParticipantID: fmt.Sprintf("participant-%05d", j), Score: rng.Uint64N(1 << 40), AchievedAt: 1700000000000}
					if j%1000 == 999 {
						live.Submit(ctx, m.ID, subs, res)
					}
				}
				if mode == "log-only" {
					fill(m.ID, after)
				}
				if err := w.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if mode == "snapshots" {
				w.SnapshotChanged(ctx, live)
				for _, m := range metas {
					fill(m.ID, after)
				}
				if err := w.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				fresh := memory.New(memory.Options{})
				total := 0
				for _, m := range metas {
					rec, err := history.Recover(ctx, hs, fresh, m)
					if err != nil {
						b.Fatal(err)
					}
					total += rec.Participants
				}
				if total != boards*perBoard {
					b.Fatalf("recovered %d participants", total)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/1M-participants")
		})
	}
}
