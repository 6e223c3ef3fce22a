package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/guard"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// openRankingStore returns the configured ranking store: this process's
// memory (the default), or Redis with --redis-url. The memory store takes
// the epoch the history decided (see openHistory); Redis keeps its own,
// shared by every process over it.
//
// With Redis it also returns the store itself (the outbox relay reads it),
// while the service uses it behind a circuit breaker.
func openRankingStore(ctx context.Context, cfg Config, client goredis.UniversalClient, epoch string, sink store.EventSink, log *slog.Logger) (store.Store, *redisstore.Store, error) {
	if client == nil {
		return memory.New(memory.Options{Epoch: epoch, Sink: sink}), nil, nil
	}
	st, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: cfg.RedisPrefix, Sink: sink, OutboxMaxLen: cfg.OutboxMaxLen})
	if err != nil {
		return nil, nil, fmt.Errorf("--redis-url: %w", err)
	}
	log.Info("rankings in Redis", "url", redactURL(cfg.RedisURL), "prefix", cfg.RedisPrefix, "epoch", st.Epoch())
	return guard.Store(st, newBreaker("redis", guard.StoreHealthy, log)), st, nil
}

// newBreaker is the circuit breaker around one backend: open after 5
// failures in a row, a probe after 5 s; transitions are logged.
func newBreaker(name string, healthy func(error) bool, log *slog.Logger) *bus.Breaker {
	return bus.NewBreaker(bus.BreakerOptions{Name: name, Healthy: healthy, OnStateChange: func(name, from, to string) {
		log.Warn("circuit breaker", "backend", name, "from", from, "to", to)
	}})
}

// openRedis connects to --redis-url, or returns nil without it.
func openRedis(ctx context.Context, cfg Config) (goredis.UniversalClient, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	client, err := redisstore.NewClient(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("--redis-url %s: %w", redactURL(cfg.RedisURL), err)
	}
	return client, nil
}

// totals is the store's count of leaderboards and participants for
// /metrics, when it keeps one cheaply (the memory store does).
func totals(st store.Store) func() (int64, int64) {
	if t, ok := st.(interface{ Totals() (int64, int64) }); ok {
		return t.Totals
	}
	return nil
}

// redactURL hides a password in a URL before it is logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// snapshotSource is what the history writer snapshots: the memory store
// (whose state would be lost), not Redis (which keeps its own).
func snapshotSource(st store.Store) history.Source {
	if _, ok := st.(*memory.Store); ok {
		return st
	}
	return nil
}

// writeQueue is the write queue's bound: only a ranking store that can be
// unreachable (Redis) needs one.
func writeQueue(cfg Config) int {
	if cfg.RedisURL == "" {
		return 0
	}
	return cfg.WriteQueue
}

// followOtherProcesses brings this process's hub the changes other processes
// sharing the Redis store made to the leaderboards its viewers watch. The
// store hands the hub this process's own changes as its writes return, and
// others' only before its next write to the same leaderboard; without this, a
// viewer connected here of a leaderboard written through another API process
// saw nothing until this one wrote to it. Once per flush window, each watched
// leaderboard's outbox is read from where this process stands (one script
// call when nothing is new). A split deployment's gateways get frames from
// Kafka instead and do not run this. st is the Redis store behind its
// circuit breaker, so that while Redis is away each call is refused at once.
func followOtherProcesses(ctx context.Context, st interface {
	CatchUp(context.Context, string) error
}, hub *fanout.Hub, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, board := range hub.Watched() {
			if err := st.CatchUp(ctx, board); err != nil && !errors.Is(err, store.ErrBoardNotFound) && ctx.Err() == nil {
				log.Debug("following other processes' changes failed; retried next window", "leaderboard", board, "err", err)
			}
		}
	}
}

// watchRedisData checks at every interval that Redis still holds the epoch
// this process serves, and sends ErrDataLost on lost when it does not. A
// Redis restarted without persistence (or flushed) otherwise went unnoticed:
// its leaderboards answered 404 while the board service listed them as
// active, until a restart; and once another process had rebuilt them from
// the audit log (in a new epoch, perhaps at lower versions), this one went
// on handing out the reused versions under its old epoch, so its viewers
// resuming with since_version got deltas of another history. Stopping is the
// way back: the next start rebuilds from the audit log and takes the new
// epoch. Redis not answering is an outage, not a loss: checked again later.
func watchRedisData(ctx context.Context, st *redisstore.Store, every time.Duration, lost chan<- error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		check, cancel := context.WithTimeout(ctx, readyTimeout)
		err := st.CheckEpoch(check)
		cancel()
		if errors.Is(err, redisstore.ErrDataLost) {
			lost <- err
			return
		}
	}
}
