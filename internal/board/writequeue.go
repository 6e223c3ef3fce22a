package board

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
)

// ErrQueued is returned by Submit and SubmitBatch when the ranking store was
// unreachable and the submissions were queued, to be applied in order when it
// returns (the API answers 202 Accepted). See Options.WriteQueue.
var ErrQueued = errors.New("queued: the ranking store is unreachable; the submission will be applied when it returns")

// writeQueue holds submissions that met an unreachable ranking store. While
// it holds anything, new submissions queue behind them, so that every
// leaderboard's submissions are applied in the order they were accepted.
type writeQueue struct {
	max   int
	n     atomic.Int64 // items queued, read by busy on every submission without the lock
	mu    sync.Mutex
	items []queuedWrite
	// draining is held by the one drain at a time (the loop, or the last
	// drain at stop), which applies the head of the queue and then pops it.
	draining sync.Mutex
	wake     chan struct{}
	// dropped counts queued submissions the store refused when they were
	// applied (the board completed or removed meanwhile, by another
	// process, or damaged): answered 202, never ranked. Only a log line
	// said so; DroppedWrites makes it a metric.
	dropped atomic.Int64
}

type queuedWrite struct {
	board string
	subs  []store.Submission
}

func (q *writeQueue) enabled() bool { return q != nil && q.max > 0 }

// busy reports whether submissions are waiting (new ones must wait behind).
func (q *writeQueue) busy() bool { return q.n.Load() > 0 }

// push queues subs, or refuses with 503 when the queue is full.
func (q *writeQueue) push(board string, subs []store.Submission) error {
	q.mu.Lock()
	n := 0
	for _, it := range q.items {
		n += len(it.subs)
	}
	if n+len(subs) > q.max {
		q.mu.Unlock()
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("the ranking store is unreachable and %d submissions already wait for it; retry later", n), RetryAfter: time.Second}
	}
	q.items = append(q.items, queuedWrite{board: board, subs: subs})
	q.n.Add(1)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return ErrQueued
}

// backendFailure reports whether err is the ranking store failing (rather
// than answering: not found, sealed, out of range). A damaged leaderboard
// (ErrDamaged) is an answer too: its writes would fail again at every drain,
// and queued at the head they would hold every later submission behind them.
func backendFailure(err error) bool {
	return err != nil && !errors.Is(err, store.ErrBoardNotFound) && !errors.Is(err, store.ErrBoardSealed) && !errors.Is(err, store.ErrBoardPaused) &&
		!errors.Is(err, store.ErrParticipantNotFound) && !errors.Is(err, store.ErrOutOfRange) && !errors.Is(err, store.ErrBoardExists) &&
		!errors.Is(err, store.ErrDamaged) && !errors.Is(err, context.Canceled)
}

// apply submits through the store, or queues when the queue is in use or
// the store fails.
func (s *Service) apply(ctx context.Context, board string, subs []store.Submission, results []store.Result) error {
	if s.wq.enabled() && s.wq.busy() {
		return s.wq.push(board, subs)
	}
	err := s.store.Submit(ctx, board, subs, results)
	if s.wq.enabled() && backendFailure(err) {
		// The store applies a batch in chunks: the ones before the failure
		// are applied (their results carry a version) and must not be
		// applied a second time when the queue drains.
		rest := subs[appliedPrefix(results):]
		if len(rest) == 0 {
			return nil
		}
		return s.wq.push(board, rest)
	}
	return err
}

// appliedPrefix returns how many of a Submit's results, from the first on,
// were applied: an applied submission's result carries the version it was
// applied at (at least 1), one never applied is left zero.
func appliedPrefix(results []store.Result) int {
	n := 0
	for n < len(results) && results[n].Version > 0 {
		n++
	}
	return n
}

// drainFirst applies the queued submissions before a change that goes to
// the store directly (a finalize, a pause, a removal): they were accepted
// (202) before it, so they must not land after it. While the store still
// fails, the change answers 503 with Retry-After instead of overtaking them.
func (s *Service) drainFirst(ctx context.Context) error {
	if !s.wq.enabled() || !s.wq.busy() {
		return nil
	}
	s.drain(ctx)
	if s.wq.busy() {
		return &Error{Code: CodeUnavailable, Message: "submissions accepted while the ranking store was unreachable are still waiting for it; retry shortly", RetryAfter: time.Second}
	}
	return nil
}

// QueuedWrites returns the number of submissions waiting for the store.
func (s *Service) QueuedWrites() int {
	if !s.wq.enabled() {
		return 0
	}
	s.wq.mu.Lock()
	defer s.wq.mu.Unlock()
	n := 0
	for _, it := range s.wq.items {
		n += len(it.subs)
	}
	return n
}

// DroppedWrites returns how many queued submissions (answered 202) the
// store refused when the queue drained, since the start.
func (s *Service) DroppedWrites() int64 {
	if !s.wq.enabled() {
		return 0
	}
	return s.wq.dropped.Load()
}

// RunWriteQueue applies queued submissions in order while the store answers,
// retrying every interval while it does not, until ctx ends.
func (s *Service) RunWriteQueue(ctx context.Context, interval time.Duration) {
	if !s.wq.enabled() {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wq.wake:
			continue // queued just now: the store just failed, wait for the tick
		}
		s.drain(ctx)
	}
}

// FlushWriteQueue is the last drain, at stop, after the last request: it
// tries every interval until the queue is empty or ctx ends, and returns the
// submissions still queued then. The queue lives in this process's memory,
// so those are lost; the caller says so.
func (s *Service) FlushWriteQueue(ctx context.Context, interval time.Duration) int {
	if !s.wq.enabled() {
		return 0
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.drain(ctx)
		if s.QueuedWrites() == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return s.QueuedWrites()
		case <-t.C:
		}
	}
}

func (s *Service) drain(ctx context.Context) {
	s.wq.draining.Lock()
	defer s.wq.draining.Unlock()
	for {
		s.wq.mu.Lock()
		if len(s.wq.items) == 0 {
			s.wq.mu.Unlock()
			return
		}
		it := s.wq.items[0]
		s.wq.mu.Unlock()
		results := make([]store.Result, len(it.subs))
		err := s.store.Submit(ctx, it.board, it.subs, results)
		if backendFailure(err) || (err != nil && ctx.Err() != nil) {
			// Still down, or stopping: retry at the next tick (or the last
			// drain), in the same order, without the chunks that went in.
			if done := appliedPrefix(results); done > 0 {
				s.wq.mu.Lock()
				s.wq.items[0].subs = it.subs[done:]
				s.wq.mu.Unlock()
			}
			return
		}
		if err != nil {
			n := len(it.subs) - appliedPrefix(results)
			s.wq.dropped.Add(int64(n))
			s.logger.Warn("queued submissions (answered 202) could not be applied and are dropped", "leaderboard", it.board, "submissions", n, "err", err)
		}
		s.wq.mu.Lock()
		s.wq.items = s.wq.items[1:]
		s.wq.n.Add(-1)
		s.wq.mu.Unlock()
	}
}
