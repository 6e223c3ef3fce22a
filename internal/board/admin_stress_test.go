package board_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestAdminCallsUnderConcurrency: concurrent creates, PATCHes, finalizes, sweeps and
// submissions on two services over one shared history; nothing may panic
// or deadlock, and versions stay gap-free per board.
func TestAdminCallsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	st := memory.New(memory.Options{})
	svcs := []*board.Service{
		board.New(st, board.Options{History: hs, Shared: true, OnStatus: func(string, board.Status, uint64) {}}),
		board.New(st, board.Options{History: hs, Shared: true, OnStatus: func(string, board.Status, uint64) {}}),
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				s := svcs[rand.IntN(2)]
				id := fmt.Sprint("b", rand.IntN(4))
				switch rand.IntN(6) {
				case 0:
					s.Create(ctx, board.CreateRequest{ID: id, Name: id, EndsAt: time.Now().Add(time.Duration(rand.IntN(500)+50) * time.Millisecond)})
				case 1:
					st := []board.Status{board.Paused, board.Active}[rand.IntN(2)]
					s.Update(ctx, id, board.Patch{Status: &st})
				case 2:
					s.Finalize(ctx, id)
				case 3:
					s.Sweep(ctx)
				default:
					s.Submit(ctx, id, board.ScoreInput{ParticipantID: fmt.Sprint("p", rand.IntN(20)), Score: uint64(rand.IntN(100))})
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(done)
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock")
	}
}
