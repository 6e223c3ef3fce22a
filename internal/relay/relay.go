// Package relay moves every leaderboard's outbox into the event bus.
//
// The Redis ranking store appends each accepted change to its leaderboard's
// outbox stream inside the same Lua script that applies it, so the outbox is
// the leaderboard's changes in version order and is never behind the
// rankings. The relay reads each outbox from a cursor, produces the events to
// the bus (keyed by leaderboard: one partition, one order), and advances the
// cursor only once the bus acknowledged them. When the bus is unreachable the
// relay keeps retrying from the same cursor while submissions go on filling
// the outbox; when it returns, delivery resumes where it stopped, with
// nothing lost as long as the outbox still holds it: each outbox is capped
// (the Redis store's OutboxMaxLen), so an outage during which one leaderboard
// makes more changes than the cap loses the oldest of them. The relay sees
// the jump in versions, logs it and counts it (Stats.Skipped; it knows the
// last version it produced since it started). A retry after a produce that
// timed out may repeat events:
// consumers drop an event whose version is not above the last one they saw
// (bus.Dedup).
//
// Cursors live in Redis (one hash, field = leaderboard), so a relay that
// restarts, or another process's relay, continues from them. Running one
// relay per deployment is enough; two relays produce duplicates, which the
// consumers drop, not gaps.
package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// Outbox is what the relay reads: the Redis store.
type Outbox interface {
	ListBoards(ctx context.Context) ([]string, error)
	ReadOutbox(ctx context.Context, board, afterID string, count int) ([]redisstore.OutboxEvent, error)
	Epoch() string
}

// RetiredOutbox is implemented by an Outbox whose dropped leaderboards keep
// their outbox until the relay has produced it (the Redis store).
type RetiredOutbox interface {
	// ListRetired names the dropped leaderboards whose outbox may hold
	// events not produced yet.
	ListRetired(ctx context.Context) ([]string, error)
	// ForgetRetired takes one off the list when its outbox holds nothing
	// after afterID, and reports whether it did.
	ForgetRetired(ctx context.Context, board, afterID string) (bool, error)
}

// Options configure a Relay.
type Options struct {
	// Client and CursorKey keep the cursors (a Redis hash); required.
	Client    goredis.UniversalClient
	CursorKey string
	// Interval between two rounds over the leaderboards when nothing was
	// pending (default 20 ms); a round that found events starts the next at once.
	Interval time.Duration
	// Batch is the most events produced in one call (default 1000).
	Batch int
	// Logger receives produce failures (once per outage) and recoveries.
	Logger *slog.Logger
}

// Relay copies outboxes into the bus. Create it with New and call Run.
type Relay struct {
	out  Outbox
	prod bus.EventProducer
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	cursors map[string]string // leaderboard -> last stream id produced
	last    map[string]uint64 // leaderboard -> last version produced by this process
	loaded  bool
	failing bool
	stats   Stats
}

// Stats are the relay's counters.
type Stats struct {
	Produced int64 // events acknowledged by the bus
	Failures int64 // produce calls that failed (and were retried)
	// Skipped counts the events an outbox no longer held when the relay came
	// to them (trimmed at the cap during a long outage): lost to the bus.
	Skipped int64
}

// New returns a relay from out to prod.
func New(out Outbox, prod bus.EventProducer, opts Options) *Relay {
	if opts.Interval <= 0 {
		opts.Interval = 20 * time.Millisecond
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	r := &Relay{out: out, prod: prod, opts: opts, log: opts.Logger, cursors: map[string]string{}, last: map[string]uint64{}}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		moved, err := r.Round(ctx)
		if err != nil && ctx.Err() == nil {
			r.noteFailure(err)
		}
		if moved == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(r.opts.Interval):
			}
		}
	}
	return nil
}

func (r *Relay) noteFailure(err error) {
	r.mu.Lock()
	first := !r.failing
	r.failing = true
	r.stats.Failures++
	r.mu.Unlock()
	if first {
		r.log.Warn("relay: the event bus is unreachable; retrying from the outbox cursor", "err", err)
	}
}

// Round relays what every outbox holds beyond its cursor, up to Batch events
// per leaderboard, and returns how many events were produced.
func (r *Relay) Round(ctx context.Context) (int, error) {
	if err := r.loadCursors(ctx); err != nil {
		return 0, err
	}
	boards, err := r.out.ListBoards(ctx)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, b := range boards {
		n, err := r.pump(ctx, b)
		moved += n
		if err != nil {
			return moved, err
		}
	}
	// Dropped leaderboards (a completed one leaves the ranking store once
	// archived) keep their outbox until it was produced: their last changes
	// may not be on the bus yet.
	if ro, ok := r.out.(RetiredOutbox); ok {
		retired, err := ro.ListRetired(ctx)
		if err != nil {
			return moved, err
		}
		for _, b := range retired {
			if slices.Contains(boards, b) {
				// Made again: followed above; only the retired entry goes.
				if _, err := ro.ForgetRetired(ctx, b, ""); err != nil {
					return moved, err
				}
				continue
			}
			n, err := r.pump(ctx, b)
			moved += n
			if err != nil {
				return moved, err
			}
			if n > 0 {
				continue
			}
			r.mu.Lock()
			after := r.cursors[b]
			r.mu.Unlock()
			if done, err := ro.ForgetRetired(ctx, b, after); err != nil {
				return moved, err
			} else if done {
				r.opts.Client.HDel(ctx, r.opts.CursorKey, b)
				r.mu.Lock()
				delete(r.cursors, b)
				delete(r.last, b)
				r.mu.Unlock()
			}
		}
	}
	r.mu.Lock()
	if r.failing && moved > 0 {
		r.failing = false
		r.log.Info("relay: the event bus takes events again")
	}
	r.mu.Unlock()
	return moved, nil
}

func (r *Relay) loadCursors(ctx context.Context) error {
	r.mu.Lock()
	loaded := r.loaded
	r.mu.Unlock()
	if loaded {
		return nil
	}
	m, err := r.opts.Client.HGetAll(ctx, r.opts.CursorKey).Result()
	if err != nil {
		return err
	}
	r.mu.Lock()
	for b, id := range m {
		if later(id, r.cursors[b]) {
			r.cursors[b] = id
		}
	}
	r.loaded = true
	r.mu.Unlock()
	return nil
}

// cursorSaveTimeout bounds the saving of a cursor, which a stop does not cut
// short.
const cursorSaveTimeout = 2 * time.Second

// pump produces one batch of a leaderboard's outbox beyond its cursor.
func (r *Relay) pump(ctx context.Context, board string) (int, error) {
	r.mu.Lock()
	after := r.cursors[board]
	r.mu.Unlock()
	evs, err := r.out.ReadOutbox(ctx, board, after, r.opts.Batch)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	epoch := r.out.Epoch()
	batch := make([]bus.Event, len(evs))
	for i := range evs {
		batch[i] = bus.Event{Epoch: epoch, Event: evs[i].Event}
	}
	if err := r.prod.ProduceSync(ctx, batch...); err != nil {
		return 0, err
	}
	lastID := evs[len(evs)-1].ID
	// The bus has the events: record it even when the relay is being stopped
	// right now. Saved under the relay's own context, a stop between the
	// produce and the save failed the save, and the next relay produced the
	// batch again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cursorSaveTimeout)
	err = r.opts.Client.HSet(sctx, r.opts.CursorKey, board, lastID).Err()
	cancel()
	if err != nil {
		// Produced but not recorded: a restart would produce these again,
		// which consumers drop; this process keeps its own cursor.
		r.log.Warn("relay: saving the cursor failed", "leaderboard", board, "err", err)
	}
	r.mu.Lock()
	r.cursors[board] = lastID
	r.stats.Produced += int64(len(evs))
	prev, known := r.last[board]
	first := evs[0].Version
	r.last[board] = evs[len(evs)-1].Version
	skipped := known && first > prev+1 // a lower version: the leaderboard was made again
	if skipped {
		r.stats.Skipped += int64(first - prev - 1)
	}
	r.mu.Unlock()
	if skipped {
		r.log.Error("relay: the outbox was trimmed past events not produced yet (an outage longer than the outbox holds): they are lost to the bus",
			"leaderboard", board, "from_version", prev+1, "to_version", first-1, "events", first-prev-1)
	}
	return len(evs), nil
}

// later reports whether stream id a ("ms-seq") is after b ("" is before all).
func later(a, b string) bool {
	am, as, aok := splitID(a)
	bm, bs, bok := splitID(b)
	switch {
	case !aok:
		return false
	case !bok:
		return true
	case am != bm:
		return am > bm
	}
	return as > bs
}

func splitID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, errors.Join(err1, err2) == nil
}
