package board_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestRemovalAfterQueuedSubmissionStaysRemoved: p's score is queued (202)
// while the store is down; the store returns and, before the queue's drain
// ticks, an admin removes p. The removal is the later change: p must stay
// off the board. Going straight to the store, the removal was overtaken by
// the earlier queued submission, which put p back when the queue drained.
func TestRemovalAfterQueuedSubmissionStaysRemoved(t *testing.T) {
	ctx := context.Background()
	st, svc := queueingBoard(t, &flakyStore{Store: memory.New(memory.Options{})}, 100)
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 5}); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	mustQueue(t, svc, board.ScoreInput{ParticipantID: "p", Score: 9})
	st.down.Store(false)
	if err := svc.RemoveParticipant(ctx, "x", "p"); err != nil {
		t.Fatal(err)
	}
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	if v, err := svc.Participant(ctx, "x", "p", 0); err == nil {
		t.Fatalf("p is ranked with score %d after its removal: the earlier queued submission overtook the removal", v.Entry.Score)
	}
}

// TestPauseAfterQueuedSubmissionKeepsIt: a submission answered 202 while
// the board was active, then a pause once the store is back but before the
// queue's drain. The submission was accepted before the pause, so it is
// applied (as a finalize applies them first); the store refused it as
// paused at the drain, and it was dropped with only a log line.
func TestPauseAfterQueuedSubmissionKeepsIt(t *testing.T) {
	ctx := context.Background()
	st, svc := queueingBoard(t, &flakyStore{Store: memory.New(memory.Options{})}, 100)
	st.down.Store(true)
	mustQueue(t, svc, board.ScoreInput{ParticipantID: "queued", Score: 7})
	st.down.Store(false)
	paused := board.Paused
	if _, err := svc.Update(ctx, "x", board.Patch{Status: &paused}); err != nil {
		t.Fatal(err)
	}
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	v, err := svc.Participant(ctx, "x", "queued", 0)
	if err != nil {
		t.Fatalf("the submission answered 202 before the pause is missing: %v", err)
	}
	if v.Entry.Score != 7 {
		t.Fatalf("score %d, want 7", v.Entry.Score)
	}
}

// TestFullWriteQueueAnswersItsOwnMessage: past --write-queue a submission
// gets 503 unavailable with Retry-After and the queue's own sentence, not
// that sentence wrapped again as "the ranking store is unavailable:
// unavailable: ...".
func TestFullWriteQueueAnswersItsOwnMessage(t *testing.T) {
	ctx := context.Background()
	st, svc := queueingBoard(t, &flakyStore{Store: memory.New(memory.Options{})}, 1)
	st.down.Store(true)
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "a", Score: 1}); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("first submission: %v, want queued", err)
	}
	_, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "b", Score: 2})
	var e *board.Error
	if !errors.As(err, &e) || e.Code != board.CodeUnavailable || e.RetryAfter <= 0 {
		t.Fatalf("submission past the queue: %v, want unavailable with Retry-After", err)
	}
	if strings.Count(e.Message, "unavailable") > 0 {
		t.Fatalf("message %q: the queue's answer was wrapped as a store failure", e.Message)
	}
	if n := svc.QueuedWrites(); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
}

// TestQueuedSubmissionRefusedAtDrainIsCounted: a submission answered 202,
// then the board is sealed in the shared store by another process before
// this one's queue drains. The store refuses it; the client was told
// "accepted", so the loss must be counted (DroppedWrites, the metric
// leaderboard_write_queue_dropped_total), not only logged.
func TestQueuedSubmissionRefusedAtDrainIsCounted(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	st, svc := queueingBoard(t, &flakyStore{Store: mem}, 100)
	st.down.Store(true)
	mustQueue(t, svc, board.ScoreInput{ParticipantID: "p", Score: 7})
	st.down.Store(false)
	if _, err := mem.Seal(ctx, "x"); err != nil { // another process's finalize
		t.Fatal(err)
	}
	if lost := svc.FlushWriteQueue(ctx, 10*time.Millisecond); lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	if n := svc.DroppedWrites(); n != 1 {
		t.Fatalf("DroppedWrites %d, want 1", n)
	}
}

// queueingBoard is a service with a write queue of size over st, and its
// leaderboard "x".
func queueingBoard(t *testing.T, st *flakyStore, size int) (*flakyStore, *board.Service) {
	t.Helper()
	svc := board.New(st, board.Options{WriteQueue: size})
	if _, err := svc.Create(context.Background(), board.CreateRequest{ID: "x", Name: "X"}); err != nil {
		t.Fatal(err)
	}
	return st, svc
}

// mustQueue submits in to "x" while the store is down: it must be queued (202).
func mustQueue(t *testing.T, svc *board.Service, in board.ScoreInput) {
	t.Helper()
	if _, err := svc.Submit(context.Background(), "x", in); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("submission while the store is down: %v, want queued (202)", err)
	}
}

// blockingStore holds one Submit (armed) until released, as a slow Redis
// round trip in the middle of the queue's drain.
type blockingStore struct {
	flakyStore
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Submit(ctx context.Context, id string, subs []store.Submission, res []store.Result) error {
	if b.armed.CompareAndSwap(true, false) {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.flakyStore.Submit(ctx, id, subs, res)
}

// TestSubmissionDuringDrainWaitsBehindTheQueue: p=9 is queued (202), then,
// while the drain is applying it, p sends p=3 (set policy). The later
// submission queues behind instead of going straight to the store, so p
// ends at 3, not overtaken by the earlier 9.
func TestSubmissionDuringDrainWaitsBehindTheQueue(t *testing.T) {
	ctx := context.Background()
	st := &blockingStore{flakyStore: flakyStore{Store: memory.New(memory.Options{})}, entered: make(chan struct{}), release: make(chan struct{})}
	svc := board.New(st, board.Options{WriteQueue: 100})
	if _, err := svc.Create(ctx, board.CreateRequest{ID: "x", Name: "X", Policy: store.PolicySet}); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	mustQueue(t, svc, board.ScoreInput{ParticipantID: "p", Score: 9, Timestamp: 1000, HasTimestamp: true})
	st.down.Store(false)
	st.armed.Store(true)
	done := make(chan int)
	go func() { done <- svc.FlushWriteQueue(ctx, 10*time.Millisecond) }()
	<-st.entered // the drain is applying p=9
	if _, err := svc.Submit(ctx, "x", board.ScoreInput{ParticipantID: "p", Score: 3, Timestamp: 2000, HasTimestamp: true}); !errors.Is(err, board.ErrQueued) {
		t.Fatalf("submission during the drain: %v, want queued behind it", err)
	}
	close(st.release)
	if lost := <-done; lost != 0 {
		t.Fatalf("%d still queued", lost)
	}
	svc.FlushWriteQueue(ctx, 10*time.Millisecond)
	v, err := svc.Participant(ctx, "x", "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v.Entry.Score != 3 {
		t.Fatalf("p has %d, want 3 (its later submission)", v.Entry.Score)
	}
}
