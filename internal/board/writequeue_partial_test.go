package board_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// midBatchStore fails like the Redis store when the connection drops
// between two of a batch's chunks: the first 64 submissions were applied
// (their results filled in), the rest were not, and Submit returns the
// connection error.
type midBatchStore struct {
	*memory.Store
	failNext atomic.Bool
	down     atomic.Bool
}

func (m *midBatchStore) Submit(ctx context.Context, b string, subs []store.Submission, res []store.Result) error {
	if m.down.Load() {
		return errDown
	}
	if len(subs) > 64 && m.failNext.CompareAndSwap(true, false) {
		if err := m.Store.Submit(ctx, b, subs[:64], res[:64]); err != nil {
			return err
		}
		return errDown
	}
	return m.Store.Submit(ctx, b, subs, res)
}

func twoChunkBatch(pid string) []board.ScoreInput {
	ins := []board.ScoreInput{
		{ParticipantID: pid, Score: 10, Timestamp: 1000, HasTimestamp: true},
		{ParticipantID: pid, Score: 20, Timestamp: 1001, HasTimestamp: true},
	}
	for i := 0; len(ins) < 64; i++ {
		ins = append(ins, board.ScoreInput{ParticipantID: fmt.Sprint("f", i), Score: 1, Timestamp: 1000, HasTimestamp: true})
	}
	return append(ins, board.ScoreInput{ParticipantID: "last", Score: 5, Timestamp: 1000, HasTimestamp: true})
}

// TestQueuedBatchNotReappliedVersions: a batch of 65 distinct changes
// whose second chunk met a dropped connection is answered 202 and drained
// later. The changes it holds are 65; the board must end at version 65.
// The whole batch is queued, the applied first chunk included, so the drain
// applies p=10 and p=20 a second time: two extra versions, and events that
// move p back down to 10 and up again.
func TestQueuedBatchNotReappliedVersions(t *testing.T) {
	ctx := context.Background()
	st := &midBatchStore{Store: memory.New(memory.Options{})}
	svc := board.New(st, board.Options{WriteQueue: 1000})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	st.failNext.Store(true)
	if _, _, err := svc.SubmitBatch(ctx, "x", twoChunkBatch("p"), nil); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("batch: %v, want queued", err)
	}
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	v, err := svc.Version(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if v != 65 {
		t.Fatalf("version %d after one batch of 65 changes, want 65 (the applied chunk was applied again)", v)
	}
}

// TestQueuedBatchLostUpdate: two API processes over one ranking store.
// A's batch sets p=10 in its first chunk (applied) and then meets a dropped
// connection (202). B then sets p=30 (200, a later accepted change). When A's
// queue drains it applies p=10 again: B's later score is lost.
func TestQueuedBatchLostUpdate(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	st := &midBatchStore{Store: mem}
	a := board.New(st, board.Options{WriteQueue: 1000})
	if _, err := a.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	b := board.New(mem, board.Options{})
	if _, err := b.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err == nil {
		t.Fatal("setup: the second service should find the board in the shared store")
	}
	ins := twoChunkBatch("p") // p=10 in the first chunk, and only there
	ins[1].ParticipantID = "q"
	st.failNext.Store(true)
	if _, _, err := a.SubmitBatch(ctx, "x", ins, nil); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("batch: %v, want queued", err)
	}
	// Process B: a later submission for p, applied directly.
	var res [1]store.Result
	if err := mem.Submit(ctx, "x", []store.Submission{{ParticipantID: "p", Score: 30, AchievedAt: 2000}}, res[:]); err != nil || !res[0].Updated {
		t.Fatalf("B's submission: %+v %v", res[0], err)
	}
	if lost := a.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	v, err := a.Participant(ctx, "x", "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v.Entry.Score != 30 {
		t.Fatalf("p has score %d, want 30: B's later submission was overwritten by A's already-applied p=10", v.Entry.Score)
	}
}

// TestDrainPartialNotReapplied: the same, when the connection drops
// in the middle of the drain's own application of a queued batch.
func TestDrainPartialNotReapplied(t *testing.T) {
	ctx := context.Background()
	st := &midBatchStore{Store: memory.New(memory.Options{})}
	svc := board.New(st, board.Options{WriteQueue: 1000})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	// Queue something first (a failed single submission), so the batch is queued whole behind it.
	st.down.Store(true)
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "first", Score: 1, Timestamp: 1, HasTimestamp: true}); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("submit: %v, want queued", err)
	}
	if _, _, err := svc.SubmitBatch(ctx, "x", twoChunkBatch("p"), nil); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("batch: %v, want queued", err)
	}
	st.down.Store(false)
	st.failNext.Store(true) // the drain's batch meets a dropped connection after its first chunk
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	v, err := svc.Version(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if v != 66 {
		t.Fatalf("version %d after 66 changes, want 66 (the applied chunk was applied again)", v)
	}
}
