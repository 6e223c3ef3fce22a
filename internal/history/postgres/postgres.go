// Package postgres is the PostgreSQL history.Store (pgx v5), for deployments
// that keep history in a database server (--postgres-url).
//
// # Schema and migrations
//
// Open applies the versioned migrations (migrate.go) in one transaction under
// a transaction-scoped advisory lock keyed by the schema, so two processes
// starting together apply each migration once; it refuses to start
// (ErrSchemaTooNew) on a database migrated by a newer release. The tables and
// their meaning are those of history/sqlite, with one column more:
// score_events.had_old keeps Event.HadOld, because the conformance suite
// requires an event to come back exactly as written, HadOld and OldScore
// independently. old_score is NULL for a new participant (HadOld false and
// OldScore 0, which is what the ranking store emits), and old_rank is NULL
// for 0 (not ranked before).
//
// # Time types
//
// Times are timestamptz (microseconds, so every millisecond the suite compares
// is kept); Board.StartsAt, EndsAt and FinalizedAt are NULL when zero.
// achieved_at stays bigint Unix milliseconds, as the client gave it. Scores,
// versions and ranks are bigint, never floating point: scores are at most
// 2^53-1, and a value above 2^63-1 is refused rather than wrapped.
//
// # The audit log
//
// score_events is range-partitioned by day (UTC) on created_at, the server's
// time of the event. Maintain creates the partitions of today and of
// Options.PartitionsAhead days after it (Open calls it; the server calls it
// hourly) and drops the partitions whose whole day is older than
// Options.Retention; dropping a partition is cheap and leaves no bloat, unlike
// DELETE. An event whose day has no partition (a clock far ahead, or
// maintenance that has not run for longer than PartitionsAhead days, or an
// old created_at) lands in the DEFAULT partition score_events_default, so a
// write never fails for want of a partition. Retention also deletes the
// default partition's rows older than the cutoff, and when Maintain creates a
// day's partition it first moves that day's rows out of the default, which
// PostgreSQL requires. Retention must be longer than the longest time between
// two snapshots of a live leaderboard: recovery replays the events after the
// latest snapshot.
//
// event_id comes from one bigint sequence (score_events_event_id_seq, the
// column's default) taken as each row is copied in, so ids increase in write
// order. Write sends events with binary COPY, and snapshots as upserts that
// never replace a newer snapshot with an older one, in one transaction.
// score_events has no primary key: a partitioned table's key must include
// created_at, and the sequence makes event_id unique by construction. A
// redelivered event (the history role repeats what it committed before a
// crash; a commit whose answer was lost is retried) carries a new created_at,
// so no key could catch it: event_marks keeps the highest version logged per
// leaderboard, read and locked in the transaction that writes the events, and
// an event at or below it is left out (as history/sqlite's INSERT OR IGNORE
// does). Checking the log itself would probe every partition's index.
//
// # Final rankings
//
// Finalize streams the ranking from its iterator into COPY (iter.Pull2 over
// the iterator, so a million entries are never held in memory at once),
// within the transaction that locks and completes the leaderboard's row.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// DefaultPartitionsAhead is Options.PartitionsAhead when it is not set.
const DefaultPartitionsAhead = 7

// Options configure a Store.
type Options struct {
	// Retention is how long audit events are kept; 0 keeps them forever.
	Retention time.Duration
	// PartitionsAhead is how many days after today get their audit-log
	// partition made in advance; 0 or less means DefaultPartitionsAhead.
	PartitionsAhead int
	// Logger receives maintenance messages; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the PostgreSQL history store.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger
}

var _ history.Store = (*Store)(nil)

// Open connects to url (a PostgreSQL URL or keyword/value string, as pgx
// takes it; search_path and other run-time parameters may be given in it),
// applies the migrations, and runs Maintain once.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.PartitionsAhead <= 0 {
		opts.PartitionsAhead = DefaultPartitionsAhead
	}
	if opts.Retention < 0 {
		opts.Retention = 0
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres history: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres history: %w", err)
	}
	s := &Store{pool: pool, opts: opts, log: log}
	from, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if from < len(migrations) {
		log.Info("history: postgres schema migrated", "from", from, "to", len(migrations))
	}
	if err := s.Maintain(ctx, time.Now()); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// soleWriterSQL tries the session-scoped advisory lock of a schema's only
// writer; like lockSQL, its key is derived from current_schema().
const soleWriterSQL = `SELECT pg_try_advisory_lock(hashtextextended('lbhq/leaderboard sole writer ' || coalesce(current_schema(), ''), 0))`

// LockSoleWriter takes the schema's sole-writer lock for as long as this
// process runs (release gives it back), or fails when another session holds
// it. A server whose rankings live in its own memory must be the only writer
// of its audit log: two of them hand out the same versions, and the log keeps
// only the first of each. The lock is a session's, so it holds one connection
// out of the pool until release; if that connection breaks (the database
// restarts), the lock is gone with it.
func (s *Store) LockSoleWriter(ctx context.Context) (release func(), err error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres history: %w", err)
	}
	conn := c.Hijack() // out of the pool for good: the lock lives as long as this session
	var got bool
	if err := conn.QueryRow(ctx, soleWriterSQL).Scan(&got); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres history: %w", err)
	}
	if !got {
		conn.Close(context.Background())
		return nil, errors.New("postgres history: the schema is in use by another leaderboard server keeping its rankings in memory: " +
			"stop it, or give this one its own database or schema (search_path)")
	}
	return func() { conn.Close(context.Background()) }, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

// i64 converts an unsigned value to bigint, refusing what does not fit.
func i64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("postgres history: %s %d does not fit a bigint", what, v)
	}
	return int64(v), nil
}

// nullTime is nil for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// PutBoard inserts or replaces a board's metadata, not its completion fields.
func (s *Store) PutBoard(ctx context.Context, b history.Board) error {
	var maxScore any
	if b.MaxScore != nil {
		v, err := i64("max_score", *b.MaxScore)
		if err != nil {
			return err
		}
		maxScore = v
	}
	var config any
	if len(b.Config) > 0 {
		config = string(b.Config)
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO leaderboards (id, name, type, sort_order, update_policy, starts_at, ends_at, created_at, max_score, config, paused)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11)
ON CONFLICT (id) DO UPDATE SET
	name = excluded.name, type = excluded.type, sort_order = excluded.sort_order,
	update_policy = excluded.update_policy, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
	created_at = excluded.created_at, max_score = excluded.max_score, config = excluded.config,
	paused = excluded.paused
WHERE NOT leaderboards.completed`,
		b.ID, b.Name, b.Type, int16(b.Order), int16(b.Policy), nullTime(b.StartsAt), nullTime(b.EndsAt),
		b.CreatedAt, maxScore, config, b.Paused)
	if err != nil {
		return fmt.Errorf("postgres history: put board %q: %w", b.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres history: put board %q: %w", b.ID, history.ErrCompleted)
	}
	return nil
}

// Boards returns every board.
func (s *Store) Boards(ctx context.Context) ([]history.Board, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, name, type, sort_order, update_policy, starts_at, ends_at, created_at, max_score, config::text,
	paused, completed, finalized_at, final_version, final_total
FROM leaderboards ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres history: boards: %w", err)
	}
	var out []history.Board
	var (
		b                       history.Board
		order, policy           int16
		starts, ends, finalized *time.Time
		maxScore                *int64
		finalVersion            int64
		config                  *string
	)
	_, err = pgx.ForEachRow(rows, []any{&b.ID, &b.Name, &b.Type, &order, &policy, &starts, &ends, &b.CreatedAt,
		&maxScore, &config, &b.Paused, &b.Completed, &finalized, &finalVersion, &b.FinalTotal}, func() error {
		x := b
		x.Order, x.Policy = store.SortOrder(order), store.Policy(policy)
		x.StartsAt, x.EndsAt, x.FinalizedAt = fromNullTime(starts), fromNullTime(ends), fromNullTime(finalized)
		x.CreatedAt = x.CreatedAt.UTC()
		if maxScore != nil {
			v := uint64(*maxScore)
			x.MaxScore = &v
		}
		if config != nil {
			x.Config = json.RawMessage(*config)
		}
		x.FinalVersion = uint64(finalVersion)
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres history: boards: %w", err)
	}
	return out, nil
}

// eventSource feeds a batch's events to COPY.
type eventSource struct {
	events []history.Event
	i      int
	vals   []any
}

var eventCopyColumns = []string{"leaderboard_id", "participant_id", "removed", "had_old", "old_score", "old_rank",
	"new_score", "new_rank", "version", "achieved_at", "created_at"}

func (s *eventSource) Next() bool { s.i++; return s.i <= len(s.events) }
func (s *eventSource) Err() error { return nil }

func (s *eventSource) Values() ([]any, error) {
	e := &s.events[s.i-1]
	// A new participant has no old score: NULL, as in history/sqlite. had_old
	// keeps HadOld itself, so an event round-trips exactly whatever it holds.
	var oldScore, oldRank any
	if e.HadOld || e.OldScore != 0 {
		v, err := i64("old_score", e.OldScore)
		if err != nil {
			return nil, err
		}
		oldScore = v
	}
	if e.OldRank != 0 {
		oldRank = e.OldRank
	}
	newScore, err := i64("new_score", e.NewScore)
	if err != nil {
		return nil, err
	}
	version, err := i64("version", e.Version)
	if err != nil {
		return nil, err
	}
	s.vals = append(s.vals[:0], e.Leaderboard, e.ParticipantID, e.Removed, e.HadOld, oldScore, oldRank,
		newScore, e.NewRank, version, e.AchievedAt, time.UnixMilli(e.CreatedAt))
	return s.vals, nil
}

// batchMarks are the highest versions a batch writes, per leaderboard.
type batchMarks struct {
	boards   []string
	versions []int64
}

// unlogged returns the events that are not in the log yet, and the marks to
// record for them. It locks the marks of the batch's leaderboards (creating
// them at 0), in one order, so that two writers of one leaderboard (a
// rebalance of the history role) take turns and the second sees what the
// first wrote.
func unlogged(ctx context.Context, tx pgx.Tx, events []history.Event) ([]history.Event, batchMarks, error) {
	var boards []string
	seen := map[string]bool{}
	for i := range events {
		if id := events[i].Leaderboard; !seen[id] {
			seen[id] = true
			boards = append(boards, id)
		}
	}
	slices.Sort(boards)
	var batch pgx.Batch
	batch.Queue(`INSERT INTO event_marks (leaderboard_id, version) SELECT unnest($1::text[]), 0 ON CONFLICT DO NOTHING`, boards)
	rowsQ := batch.Queue(`SELECT leaderboard_id, version FROM event_marks WHERE leaderboard_id = ANY($1) ORDER BY leaderboard_id COLLATE "C" FOR UPDATE`, boards)
	mark := make(map[string]uint64, len(boards))
	rowsQ.Query(func(rows pgx.Rows) error {
		var id string
		var v int64
		_, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error {
			mark[id] = uint64(v)
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, batchMarks{}, err
	}
	// Only what the log holds is left out: the events of one batch are
	// distinct (the writer queues each once; the history role drops what it
	// has seen), and one out of order is written, as it would be alone.
	// Above its mark a leaderboard has nothing logged. At or below it an event
	// is usually a redelivery, but not always: API processes sharing one
	// Redis without Kafka each log the changes they see, and one that starts
	// following a leaderboard can commit a later version before the process
	// that made an earlier one commits it. Those are looked up (logged).
	top := make(map[string]uint64, len(boards))
	var candidates []int // indexes of events at or below their mark
	for i := range events {
		e := &events[i]
		if e.Version > mark[e.Leaderboard] {
			top[e.Leaderboard] = max(top[e.Leaderboard], e.Version)
		} else {
			candidates = append(candidates, i)
		}
	}
	out := events
	if len(candidates) > 0 {
		found, err := logged(ctx, tx, events, candidates)
		if err != nil {
			return nil, batchMarks{}, err
		}
		out = make([]history.Event, 0, len(events)-len(found))
		for i := range events {
			if !found[i] {
				out = append(out, events[i])
			}
		}
	}
	m := batchMarks{boards: boards, versions: make([]int64, len(boards))}
	for i, id := range boards {
		v, err := i64("version", top[id])
		if err != nil {
			return nil, batchMarks{}, err
		}
		m.versions[i] = v
	}
	return out, m, nil
}

// logged reports which of events[candidates] the log already holds. The
// copies of one change that two processes log are stamped within seconds of
// each other, so the first query looks in the partitions of the last hour
// before the oldest candidate only; what it does not find there (a change
// nobody logged yet, or a redelivery hours after its first delivery, both
// rare) is looked up in every partition.
func logged(ctx context.Context, tx pgx.Tx, events []history.Event, candidates []int) (map[int]bool, error) {
	found := make(map[int]bool, len(candidates))
	lookup := func(idx []int, since *time.Time) ([]int, error) {
		boards, versions := make([]string, len(idx)), make([]int64, len(idx))
		type key struct {
			board   string
			version int64
		}
		at := make(map[key]int, len(idx))
		for j, i := range idx {
			e := &events[i]
			v, err := i64("version", e.Version)
			if err != nil {
				return nil, err
			}
			boards[j], versions[j] = e.Leaderboard, v
			at[key{e.Leaderboard, v}] = i
		}
		q := `SELECT e.leaderboard_id, e.version FROM score_events e
JOIN unnest($1::text[], $2::bigint[]) AS x(leaderboard_id, version) ON e.leaderboard_id = x.leaderboard_id AND e.version = x.version`
		args := []any{boards, versions}
		if since != nil {
			q += ` WHERE e.created_at >= $3`
			args = append(args, *since)
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		var id string
		var v int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error {
			if i, ok := at[key{id, v}]; ok {
				found[i] = true
			}
			return nil
		}); err != nil {
			return nil, err
		}
		var missing []int
		for _, i := range idx {
			if !found[i] {
				missing = append(missing, i)
			}
		}
		return missing, nil
	}
	oldest := events[candidates[0]].CreatedAt
	for _, i := range candidates {
		oldest = min(oldest, events[i].CreatedAt)
	}
	since := time.UnixMilli(oldest).Add(-time.Hour)
	missing, err := lookup(candidates, &since)
	if err == nil && len(missing) > 0 {
		_, err = lookup(missing, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres history: look up logged events: %w", err)
	}
	return found, nil
}

// Write commits a batch in one transaction: events by COPY, then snapshots.
// An event whose leaderboard has that version logged already is left out.
func (s *Store) Write(ctx context.Context, b history.Batch) error {
	if len(b.Events) == 0 && len(b.Snapshots) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(b.Events) > 0 {
			events, marks, err := unlogged(ctx, tx, b.Events)
			if err != nil {
				return err
			}
			if len(events) > 0 {
				src := &eventSource{events: events, vals: make([]any, 0, len(eventCopyColumns))}
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"score_events"}, eventCopyColumns, src); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `
UPDATE event_marks m SET version = x.version FROM unnest($1::text[], $2::bigint[]) AS x(leaderboard_id, version)
WHERE m.leaderboard_id = x.leaderboard_id AND m.version < x.version`, marks.boards, marks.versions); err != nil {
					return err
				}
			}
		}
		if len(b.Snapshots) == 0 {
			return nil
		}
		var batch pgx.Batch
		for _, sn := range b.Snapshots {
			v, err := i64("snapshot version", sn.Version)
			if err != nil {
				return err
			}
			data := sn.Data
			if data == nil {
				data = []byte{}
			}
			// Not for a completed board: Finalize deleted its snapshot, and
			// one taken while it was being finalized would otherwise stay.
			batch.Queue(`
INSERT INTO snapshots (leaderboard_id, version, taken_at, data) SELECT $1, $2, $3, $4
WHERE NOT EXISTS (SELECT 1 FROM leaderboards WHERE id = $1 AND completed)
ON CONFLICT (leaderboard_id) DO UPDATE SET version = excluded.version, taken_at = excluded.taken_at, data = excluded.data
WHERE excluded.version >= snapshots.version`, sn.Board, v, sn.TakenAt, data)
		}
		return tx.SendBatch(ctx, &batch).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres history: write: %w", err)
	}
	return nil
}

// Snapshot returns a board's latest snapshot.
func (s *Store) Snapshot(ctx context.Context, board string) (history.Snapshot, error) {
	sn := history.Snapshot{Board: board}
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT version, taken_at, data FROM snapshots WHERE leaderboard_id = $1`, board).
		Scan(&version, &sn.TakenAt, &sn.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return history.Snapshot{}, fmt.Errorf("postgres history: snapshot of %q: %w", board, history.ErrNotFound)
	}
	if err != nil {
		return history.Snapshot{}, fmt.Errorf("postgres history: snapshot of %q: %w", board, err)
	}
	sn.Version, sn.TakenAt = uint64(version), sn.TakenAt.UTC()
	return sn, nil
}

const eventSelect = `SELECT event_id, leaderboard_id, participant_id, removed, had_old, old_score, old_rank,
	new_score, new_rank, version, achieved_at, created_at FROM score_events `

// eventScanner scans eventSelect's rows.
type eventScanner struct {
	e                 history.Event
	oldScore, oldRank *int64
	newScore, version int64
	created           time.Time
	dest              []any
}

func newEventScanner() *eventScanner {
	sc := &eventScanner{}
	sc.dest = []any{&sc.e.ID, &sc.e.Leaderboard, &sc.e.ParticipantID, &sc.e.Removed, &sc.e.HadOld, &sc.oldScore,
		&sc.oldRank, &sc.newScore, &sc.e.NewRank, &sc.version, &sc.e.AchievedAt, &sc.created}
	return sc
}

func (sc *eventScanner) event() history.Event {
	e := sc.e
	e.OldScore, e.OldRank = 0, 0
	if sc.oldScore != nil {
		e.OldScore = uint64(*sc.oldScore)
	}
	if sc.oldRank != nil {
		e.OldRank = *sc.oldRank
	}
	e.NewScore, e.Version, e.CreatedAt = uint64(sc.newScore), uint64(sc.version), sc.created.UnixMilli()
	return e
}

// EventsAfter yields a board's events above version after, in version order.
func (s *Store) EventsAfter(ctx context.Context, board string, after uint64, fn func(history.Event) error) error {
	if after > math.MaxInt64 {
		return nil
	}
	rows, err := s.pool.Query(ctx, eventSelect+`WHERE leaderboard_id = $1 AND version > $2 ORDER BY version, event_id`,
		board, int64(after))
	if err != nil {
		return fmt.Errorf("postgres history: events of %q: %w", board, err)
	}
	sc := newEventScanner()
	var fnErr error
	_, err = pgx.ForEachRow(rows, sc.dest, func() error {
		if err := fn(sc.event()); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("postgres history: events of %q: %w", board, err)
	}
	return nil
}

// ParticipantEvents returns a participant's events on a board, newest first.
func (s *Store) ParticipantEvents(ctx context.Context, board, participant string, limit, offset int) ([]history.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	rows, err := s.pool.Query(ctx, eventSelect+`WHERE leaderboard_id = $1 AND participant_id = $2
ORDER BY version DESC, event_id DESC LIMIT $3 OFFSET $4`, board, participant, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres history: events of %q on %q: %w", participant, board, err)
	}
	var out []history.Event
	sc := newEventScanner()
	if _, err := pgx.ForEachRow(rows, sc.dest, func() error { out = append(out, sc.event()); return nil }); err != nil {
		return nil, fmt.Errorf("postgres history: events of %q on %q: %w", participant, board, err)
	}
	return out, nil
}

// Finalize stores the final ranking and completes the board, in one
// transaction.
func (s *Store) Finalize(ctx context.Context, b history.Board, entries iter.Seq2[store.Entry, error]) error {
	finalVersion, err := i64("final version", b.FinalVersion)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var completed bool
		err := tx.QueryRow(ctx, `SELECT completed FROM leaderboards WHERE id = $1 FOR UPDATE`, b.ID).Scan(&completed)
		if errors.Is(err, pgx.ErrNoRows) {
			return history.ErrNotFound
		}
		if err != nil {
			return err
		}
		if completed {
			return history.ErrCompleted
		}
		// A ranking left by an earlier, failed attempt cannot exist (it rolled
		// back), but one written by hand would make COPY fail; clear it.
		if _, err := tx.Exec(ctx, `DELETE FROM final_rankings WHERE leaderboard_id = $1`, b.ID); err != nil {
			return err
		}
		src := newEntrySource(b.ID, entries)
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"final_rankings"},
			[]string{"leaderboard_id", "rank", "participant_id", "score", "achieved_at"}, src)
		if srcErr := src.close(); srcErr != nil {
			return srcErr // the iterator's own error, rather than COPY's report of it
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE leaderboards SET completed = true, finalized_at = $2, final_version = $3, final_total = $4
WHERE id = $1`, b.ID, nullTime(b.FinalizedAt), finalVersion, b.FinalTotal)
		if err != nil {
			return err
		}
		// The live snapshot is of no more use: the final ranking replaces
		// it (recovery skips completed boards). Left, every completed
		// leaderboard would keep one, as large as its ranking, for good.
		_, err = tx.Exec(ctx, `DELETE FROM snapshots WHERE leaderboard_id = $1`, b.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres history: finalize %q: %w", b.ID, err)
	}
	return nil
}

// entrySource adapts a ranking iterator to COPY. pgx calls Next and Values
// from a goroutine of its own, one call at a time, and is done with the
// source when CopyFrom returns; iter.Pull2 lets that goroutine pull entries,
// and a panic of the iterator is caught there and becomes an error rather
// than crashing the process from a goroutine nobody can recover.
type entrySource struct {
	board string
	next  func() (store.Entry, error, bool)
	stop  func()
	vals  []any
	e     store.Entry
	err   error
}

func newEntrySource(board string, entries iter.Seq2[store.Entry, error]) *entrySource {
	next, stop := iter.Pull2(entries)
	return &entrySource{board: board, next: next, stop: stop, vals: make([]any, 5)}
}

func (s *entrySource) Next() (ok bool) {
	if s.err != nil {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			s.err, ok = fmt.Errorf("final ranking source panicked: %v", p), false
		}
	}()
	e, err, more := s.next()
	switch {
	case !more:
		return false
	case err != nil:
		s.err = err
		return false
	}
	s.e = e
	return true
}

func (s *entrySource) Values() ([]any, error) {
	score, err := i64("score", s.e.Score)
	if err != nil {
		s.err = err
		return nil, err
	}
	s.vals[0], s.vals[1], s.vals[2], s.vals[3], s.vals[4] = s.board, s.e.Rank, s.e.ParticipantID, score, s.e.AchievedAt
	return s.vals, nil
}

func (s *entrySource) Err() error { return s.err }

// close stops the iterator (once CopyFrom has returned, so no other goroutine
// is using it) and returns the source's error, if any.
func (s *entrySource) close() error {
	func() {
		defer func() {
			if p := recover(); p != nil && s.err == nil {
				s.err = fmt.Errorf("final ranking source panicked: %v", p)
			}
		}()
		s.stop()
	}()
	return s.err
}

// FinalPage reads limit final entries from 0-based offset.
func (s *Store) FinalPage(ctx context.Context, board string, offset, limit int) ([]store.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	// Ranks are 1..n (Finalize's contract), so the page starts after rank
	// offset: an index range scan rather than OFFSET's walk over the skipped
	// rows, which on a million-entry ranking is the difference between a
	// millisecond and a hundred.
	rows, err := s.pool.Query(ctx, `SELECT rank, participant_id, score, achieved_at FROM final_rankings
WHERE leaderboard_id = $1 AND rank > $2 ORDER BY rank LIMIT $3`, board, offset, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres history: final page of %q: %w", board, err)
	}
	out := make([]store.Entry, 0, min(limit, 1000))
	var e store.Entry
	var score int64
	if _, err := pgx.ForEachRow(rows, []any{&e.Rank, &e.ParticipantID, &score, &e.AchievedAt}, func() error {
		e.Score = uint64(score)
		out = append(out, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres history: final page of %q: %w", board, err)
	}
	return out, nil
}

// FinalEntry reads one participant's final entry.
func (s *Store) FinalEntry(ctx context.Context, board, participant string) (store.Entry, error) {
	e := store.Entry{ParticipantID: participant}
	var score int64
	err := s.pool.QueryRow(ctx, `SELECT rank, score, achieved_at FROM final_rankings WHERE leaderboard_id = $1 AND participant_id = $2`,
		board, participant).Scan(&e.Rank, &score, &e.AchievedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Entry{}, fmt.Errorf("postgres history: final entry of %q on %q: %w", participant, board, history.ErrNotFound)
	}
	if err != nil {
		return store.Entry{}, fmt.Errorf("postgres history: final entry of %q on %q: %w", participant, board, err)
	}
	e.Score = uint64(score)
	return e, nil
}

// Results returns a participant's places in completed boards, the most
// recently finalized first.
func (s *Store) Results(ctx context.Context, participant string, limit, offset int) ([]history.Result, error) {
	if limit <= 0 {
		return nil, nil
	}
	offset = max(offset, 0)
	rows, err := s.pool.Query(ctx, `
SELECT l.id, l.name, f.rank, f.score, f.achieved_at, l.finalized_at
FROM final_rankings f JOIN leaderboards l ON l.id = f.leaderboard_id
WHERE f.participant_id = $1 AND l.completed
ORDER BY l.finalized_at DESC NULLS LAST, l.id LIMIT $2 OFFSET $3`, participant, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres history: results of %q: %w", participant, err)
	}
	var out []history.Result
	var r history.Result
	var score int64
	var finalized *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&r.Leaderboard, &r.Name, &r.Rank, &score, &r.AchievedAt, &finalized}, func() error {
		r.Score, r.FinalizedAt = uint64(score), fromNullTime(finalized)
		out = append(out, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres history: results of %q: %w", participant, err)
	}
	return out, nil
}

// PutProfile inserts or replaces a profile.
func (s *Store) PutProfile(ctx context.Context, p history.Profile) error {
	meta := "{}"
	if len(p.Metadata) > 0 {
		meta = string(p.Metadata)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO participants (participant_id, display_name, avatar_url, metadata, updated_at) VALUES ($1, $2, $3, $4::json, $5)
ON CONFLICT (participant_id) DO UPDATE SET display_name = excluded.display_name, avatar_url = excluded.avatar_url,
	metadata = excluded.metadata, updated_at = excluded.updated_at`,
		p.ParticipantID, p.DisplayName, p.AvatarURL, meta, p.UpdatedAt)
	if err != nil {
		return fmt.Errorf("postgres history: put profile %q: %w", p.ParticipantID, err)
	}
	return nil
}

const profileSelect = `SELECT participant_id, display_name, avatar_url, metadata::text, updated_at FROM participants `

// Profile reads one profile.
func (s *Store) Profile(ctx context.Context, participant string) (history.Profile, error) {
	var p history.Profile
	var meta string
	err := s.pool.QueryRow(ctx, profileSelect+`WHERE participant_id = $1`, participant).
		Scan(&p.ParticipantID, &p.DisplayName, &p.AvatarURL, &meta, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return history.Profile{}, fmt.Errorf("postgres history: profile %q: %w", participant, history.ErrNotFound)
	}
	if err != nil {
		return history.Profile{}, fmt.Errorf("postgres history: profile %q: %w", participant, err)
	}
	p.Metadata, p.UpdatedAt = json.RawMessage(meta), p.UpdatedAt.UTC()
	return p, nil
}

// Profiles yields every profile updated at or after since (zero: all).
func (s *Store) Profiles(ctx context.Context, since time.Time, fn func(history.Profile) error) error {
	q, args := profileSelect+`ORDER BY participant_id`, []any(nil)
	if !since.IsZero() {
		q, args = profileSelect+`WHERE updated_at >= $1 ORDER BY participant_id`, []any{since}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("postgres history: profiles: %w", err)
	}
	var p history.Profile
	var meta string
	var fnErr error
	_, err = pgx.ForEachRow(rows, []any{&p.ParticipantID, &p.DisplayName, &p.AvatarURL, &meta, &p.UpdatedAt}, func() error {
		x := p
		x.Metadata, x.UpdatedAt = json.RawMessage(meta), x.UpdatedAt.UTC()
		if err := fn(x); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("postgres history: profiles: %w", err)
	}
	return nil
}

// State reads the server's state.
func (s *Store) State(ctx context.Context) (history.State, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM server_state WHERE key IN ('epoch', 'clean')`)
	if err != nil {
		return history.State{}, fmt.Errorf("postgres history: state: %w", err)
	}
	var st history.State
	var key, value string
	if _, err := pgx.ForEachRow(rows, []any{&key, &value}, func() error {
		switch key {
		case "epoch":
			st.Epoch = value
		case "clean":
			st.Clean, _ = strconv.ParseBool(value)
		}
		return nil
	}); err != nil {
		return history.State{}, fmt.Errorf("postgres history: state: %w", err)
	}
	return st, nil
}

// SetState records the server's state.
func (s *Store) SetState(ctx context.Context, st history.State) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO server_state (key, value) VALUES ('epoch', $1), ('clean', $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, st.Epoch, strconv.FormatBool(st.Clean))
	if err != nil {
		return fmt.Errorf("postgres history: set state: %w", err)
	}
	return nil
}
