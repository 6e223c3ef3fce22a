package postgres

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	day              = 24 * time.Hour
	partitionPrefix  = "score_events_p"
	partitionLayout  = "20060102"
	defaultPartition = "score_events_default"
	// eventColumns in table order, for moving rows between partitions.
	eventColumns = "event_id, leaderboard_id, participant_id, removed, had_old, old_score, old_rank, new_score, new_rank, version, achieved_at, created_at"
)

// lockParentSQL is the first thing every partition change does: always the
// same lock, on the parent before any partition, as writers take them.
const lockParentSQL = `LOCK TABLE ONLY score_events IN ACCESS EXCLUSIVE MODE`

var partitionName = regexp.MustCompile(`^` + partitionPrefix + `(\d{8})$`)

// dayOf is the UTC midnight starting t's day.
func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Maintain creates the daily partitions of the audit log for now's day (UTC)
// and Options.PartitionsAhead days after it, and, when Options.Retention is
// set, drops every partition whose whole day is older than now-Retention and
// deletes the default partition's rows older than that. Open calls it; the
// server calls it periodically (hourly is plenty). Safe to run from several
// processes at once: each change is its own short transaction under the
// schema's advisory lock.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	existing, err := s.partitions(ctx)
	if err != nil {
		return fmt.Errorf("postgres history: maintain: %w", err)
	}
	first := dayOf(now)
	for i := 0; i <= s.opts.PartitionsAhead; i++ {
		d := first.AddDate(0, 0, i)
		if slices.ContainsFunc(existing, d.Equal) {
			continue
		}
		if err := s.createPartition(ctx, d); err != nil {
			return fmt.Errorf("postgres history: maintain: partition for %s: %w", d.Format(time.DateOnly), err)
		}
	}
	if s.opts.Retention <= 0 {
		return nil
	}
	cutoff := now.Add(-s.opts.Retention)
	for _, d := range existing {
		if d.Add(day).After(cutoff) {
			continue
		}
		name := partitionPrefix + d.Format(partitionLayout)
		if err := s.ddl(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockParentSQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
			return err
		}); err != nil {
			return fmt.Errorf("postgres history: maintain: drop %s: %w", name, err)
		}
		s.log.Info("history: dropped audit-log partition past retention", "partition", name, "retention", s.opts.Retention)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+defaultPartition+` WHERE created_at < $1`, cutoff)
	if err != nil {
		return fmt.Errorf("postgres history: maintain: retention on the default partition: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		s.log.Info("history: deleted audit events past retention from the default partition", "events", n, "retention", s.opts.Retention)
	}
	return nil
}

// partitions lists the days that have a partition, oldest first.
func (s *Store) partitions(ctx context.Context) ([]time.Time, error) {
	rows, err := s.pool.Query(ctx, `
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'score_events'::regclass`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var days []time.Time
	for _, n := range names {
		m := partitionName.FindStringSubmatch(n)
		if m == nil {
			continue // the default partition, or one made by hand
		}
		d, err := time.Parse(partitionLayout, m[1])
		if err != nil {
			continue
		}
		days = append(days, d)
	}
	slices.SortFunc(days, time.Time.Compare)
	return days, nil
}

// createPartition makes day d's partition. Rows of that day already in the
// default partition (written while the day had none) would make CREATE fail,
// so they are moved into the new partition in the same transaction: the
// default is detached, the partition created, the rows moved, the default
// attached again.
func (s *Store) createPartition(ctx context.Context, d time.Time) error {
	name := pgx.Identifier{partitionPrefix + d.Format(partitionLayout)}.Sanitize()
	lo, hi := d, d.Add(day)
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF score_events FOR VALUES FROM ('%s') TO ('%s')`,
		name, lo.Format(time.RFC3339), hi.Format(time.RFC3339))
	var moved int64
	created := false
	err := s.ddl(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil || exists {
			return err // made meanwhile by another process
		}
		created = true
		// The parent is locked first, in the mode CREATE ... PARTITION OF
		// takes anyway, so no write can route a row to the default partition
		// between the check below and CREATE (which would make it fail). Taken
		// at once rather than upgraded: a writer that already holds a weaker
		// lock on the parent (pgx describes the table before COPY) would
		// deadlock with an upgrade, while it may pass a waiting request.
		if _, err := tx.Exec(ctx, lockParentSQL); err != nil {
			return err
		}
		var stray bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+defaultPartition+` WHERE created_at >= $1 AND created_at < $2)`, lo, hi).Scan(&stray); err != nil {
			return err
		}
		if !stray {
			_, err := tx.Exec(ctx, create)
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE score_events DETACH PARTITION `+defaultPartition); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, create); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
WITH moved AS (DELETE FROM `+defaultPartition+` WHERE created_at >= $1 AND created_at < $2 RETURNING `+eventColumns+`)
INSERT INTO score_events (`+eventColumns+`) SELECT `+eventColumns+` FROM moved`, lo, hi)
		if err != nil {
			return err
		}
		moved = tag.RowsAffected()
		_, err = tx.Exec(ctx, `ALTER TABLE score_events ATTACH PARTITION `+defaultPartition+` DEFAULT`)
		return err
	})
	if err == nil && created {
		s.log.Info("history: created audit-log partition", "partition", name, "moved_from_default", moved)
	}
	return err
}

// ddl runs fn in a transaction holding the schema's advisory lock, with a
// lock timeout so that a long query on score_events makes maintenance fail
// (and be tried again later) rather than queue every write behind it.
func (s *Store) ddl(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		return fn(tx)
	})
}
