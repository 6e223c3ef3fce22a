package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/guard"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/postgres"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store/memory"
	goredis "github.com/redis/go-redis/v9"
)

// durable is the server's history: the store, its writer, and the epoch this
// run hands out. With persistence off every part is nil and each method does
// nothing.
type durable struct {
	cfg   Config
	logg  *slog.Logger
	store history.Store
	log   *history.Writer
	epoch string
	done  chan struct{}
	// unlock releases the history's sole-writer lock (nil: none taken).
	unlock func()
}

// openHistory opens the configured history store and decides the epoch: the
// previous one when the last run stopped cleanly (everything it acknowledged
// was flushed, so its versions still hold), a new one otherwise, so that no
// client trusts a version that a crash may have lost.
func openHistory(ctx context.Context, cfg Config, log *slog.Logger) (*durable, error) {
	d := &durable{cfg: cfg, logg: log, done: make(chan struct{})}
	var err error
	switch {
	case cfg.PostgresURL != "":
		d.store, d.unlock, err = openPostgres(ctx, cfg, log)
	case cfg.DataDir != "":
		var s *sqlite.Store
		if s, err = sqlite.OpenDir(ctx, cfg.DataDir); err == nil {
			d.store = s
			if cfg.RedisURL == "" {
				// Rankings in this process's memory: a second server on the
				// same directory would hand out the same versions, and the
				// audit log keeps only the first of each, so its
				// acknowledged changes would be lost at the next start.
				// Processes over one Redis share its versions and may share
				// the directory.
				if d.unlock, err = sqlite.LockDir(cfg.DataDir); err != nil {
					s.Close()
				}
			}
		}
	default:
		log.Warn("persistence is off (--data-dir is empty): rankings live in memory only and history routes answer 503")
		close(d.done)
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	state, err := d.store.State(ctx)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("history: %w", err)
	}
	switch {
	case state.Epoch == "":
		d.epoch = memory.NewEpoch()
	case state.Clean:
		d.epoch = state.Epoch
	case cfg.RedisURL != "":
		// The rankings and their epoch are Redis's, and other processes may
		// be running on this history right now (it is "not clean" while any
		// runs): nothing this process acknowledged before is at stake.
		d.epoch = memory.NewEpoch()
	default:
		d.epoch = memory.NewEpoch()
		log.Warn("the last run did not stop cleanly: changes it acknowledged but had not committed yet (its last flush interval, or its queue while the database was behind) may be lost; starting a new epoch",
			"previous_epoch", state.Epoch, "epoch", d.epoch)
	}
	d.log = history.NewWriter(d.store, history.WriterOptions{
		FlushInterval: cfg.HistoryFlushInterval, MaxQueue: cfg.HistoryQueue, SnapshotInterval: cfg.SnapshotInterval, Logger: log,
	})
	return d, nil
}

// restore rebuilds the live leaderboards, then marks the run as not (yet)
// stopped cleanly.
func (d *durable) restore(ctx context.Context, svc *board.Service) error {
	if d.store == nil {
		return nil
	}
	start := time.Now()
	rs, err := svc.Restore(ctx)
	if err != nil {
		return fmt.Errorf("history: recovery failed (the data is left as it is): %w", err)
	}
	d.logg.Info("recovered", "live_leaderboards", rs.Live, "completed_leaderboards", rs.Completed, "participants", rs.Participants,
		"events_replayed", rs.Replayed, "profiles", rs.Profiles, "took", time.Since(start).Round(time.Millisecond))
	if err := d.store.SetState(ctx, history.State{Epoch: d.epoch, Clean: false}); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// run starts the group commit and the snapshots.
func (d *durable) run(ctx context.Context, src history.Source) {
	if d.log == nil {
		return
	}
	go func() {
		defer close(d.done)
		d.log.Run(ctx, src)
	}()
	go d.maintain(ctx)
}

// stop is the clean stop, after the last request: snapshot what changed,
// commit everything, and record that this run's epoch still holds (only when
// clean: every request finished, so nothing acknowledged can follow the last
// commit).
func (d *durable) stop(ctx context.Context, src history.Source, clean bool) error {
	if d.log == nil {
		return nil
	}
	<-d.done
	if src != nil {
		d.log.SnapshotChanged(ctx, src)
	}
	if err := d.log.Close(ctx); err != nil {
		return fmt.Errorf("history: could not write the last changes before stopping: %w", err)
	}
	if !clean {
		return nil
	}
	if err := d.store.SetState(ctx, history.State{Epoch: d.epoch, Clean: true}); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

func (d *durable) ping(ctx context.Context) error {
	if d.store == nil {
		return nil
	}
	return d.store.Ping(ctx)
}

// readyTimeout bounds each backend's answer to /readyz: a frozen backend
// turns the probe 503 instead of holding it until the prober gives up.
const readyTimeout = 2 * time.Second

// readiness is /readyz's check, the contract's "every configured backend
// reachable": the history database and, with --redis-url, Redis. Not Kafka:
// nothing a client asks waits on it (the outbox holds the events while it is
// away), and the relay's metrics say when it is.
func readiness(hist *durable, rdb goredis.UniversalClient) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := hist.ping(ctx); err != nil {
			return fmt.Errorf("history database: %w", err)
		}
		if rdb != nil {
			if err := rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
		}
		return nil
	}
}

func (d *durable) close() {
	if d.store != nil {
		d.store.Close()
	}
	if d.unlock != nil {
		d.unlock()
	}
}

// openPostgres opens the PostgreSQL history store (migrations applied,
// audit-log partitions made ahead). With rankings in this process's memory
// it also takes the schema's sole-writer lock (see openHistory), which
// unlock releases.
func openPostgres(ctx context.Context, cfg Config, log *slog.Logger) (_ history.Store, unlock func(), _ error) {
	s, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{Retention: cfg.HistoryRetention, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("--postgres-url: %w", err)
	}
	if cfg.RedisURL == "" {
		if unlock, err = s.LockSoleWriter(ctx); err != nil {
			s.Close()
			return nil, nil, fmt.Errorf("--postgres-url: %w", err)
		}
	}
	return guard.History(s, newBreaker("postgresql", guard.HistoryHealthy, log)), unlock, nil
}

// maintainInterval is how often PostgreSQL's audit-log partitions are made
// ahead and old ones dropped.
const maintainInterval = time.Hour

// maintain runs the store's periodic upkeep, when it has any.
func (d *durable) maintain(ctx context.Context) {
	m, ok := d.store.(interface {
		Maintain(context.Context, time.Time) error
	})
	if !ok {
		return
	}
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := m.Maintain(ctx, now); err != nil {
				d.logg.Warn("history: partition upkeep failed; retried in an hour", "err", err)
			}
		}
	}
}
