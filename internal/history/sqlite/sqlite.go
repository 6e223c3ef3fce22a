// Package sqlite is the embedded history store: one SQLite database file
// under the data directory, through modernc.org/sqlite (pure Go, no cgo, so the
// binary stays one static file).
//
// The database runs in WAL mode with synchronous=NORMAL: a committed
// transaction survives the process being killed (the WAL is in the OS's page
// cache), and a power loss may lose the last commits but never corrupts the
// file. Every write transaction starts IMMEDIATE so that two writers queue on
// the busy timeout instead of failing to upgrade a read lock.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"time"

	sqlitedrv "modernc.org/sqlite" // registers the "sqlite" driver
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// FileName is the database's name inside the data directory.
const FileName = "leaderboard.db"

// LockName is the file LockDir locks inside the data directory.
const LockName = "leaderboard.lock"

// migrations are applied in order; the database records the last one applied
// and a database newer than this code is refused.
var migrations = []string{
	1: `
CREATE TABLE leaderboards (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	type          TEXT NOT NULL,
	sort_order    INTEGER NOT NULL,
	update_policy INTEGER NOT NULL,
	starts_at     INTEGER,
	ends_at       INTEGER,
	created_at    INTEGER NOT NULL,
	max_score     INTEGER,
	config        TEXT NOT NULL,
	paused        INTEGER NOT NULL,
	completed     INTEGER NOT NULL DEFAULT 0,
	finalized_at  INTEGER,
	final_version INTEGER NOT NULL DEFAULT 0,
	final_total   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE score_events (
	event_id       INTEGER PRIMARY KEY,
	leaderboard_id TEXT NOT NULL,
	participant_id TEXT NOT NULL,
	removed        INTEGER NOT NULL,
	old_score      INTEGER,
	new_score      INTEGER,
	old_rank       INTEGER,
	new_rank       INTEGER,
	version        INTEGER NOT NULL,
	achieved_at    INTEGER NOT NULL,
	created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX score_events_version ON score_events (leaderboard_id, version);
CREATE INDEX score_events_participant ON score_events (leaderboard_id, participant_id, version);
CREATE TABLE final_rankings (
	leaderboard_id TEXT NOT NULL,
	rank           INTEGER NOT NULL,
	participant_id TEXT NOT NULL,
	score          INTEGER NOT NULL,
	achieved_at    INTEGER NOT NULL,
	PRIMARY KEY (leaderboard_id, rank)
) WITHOUT ROWID;
CREATE INDEX final_rankings_participant ON final_rankings (participant_id, leaderboard_id);
CREATE TABLE snapshots (
	leaderboard_id TEXT PRIMARY KEY,
	version        INTEGER NOT NULL,
	taken_at       INTEGER NOT NULL,
	data           BLOB NOT NULL
);
CREATE TABLE participants (
	participant_id TEXT PRIMARY KEY,
	display_name   TEXT NOT NULL,
	avatar_url     TEXT NOT NULL,
	metadata       TEXT NOT NULL,
	updated_at     INTEGER NOT NULL
);
CREATE TABLE server_state (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);`,
	// 2: processes sharing the database read the profiles changed since
	// their last look (Profiles with a since).
	2: `CREATE INDEX participants_updated ON participants (updated_at);`,
}

// Store is the SQLite history store.
type Store struct {
	db *sql.DB
}

// OpenDir opens the database in the data directory dir, creating the
// directory when it does not exist. It refuses, with an error saying why, a
// path that is not a directory, a directory that is not empty but holds no
// database (a lost or moved file must not start the service with empty
// rankings), and a file that is not a healthy database of a known schema.
func OpenDir(ctx context.Context, dir string) (*Store, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// 0700: the directory also holds the auth secret (auth.LoadOrCreateSecret
		// would create it so), and the audit log is the server's own.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: cannot create it: %w", dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("data directory %s is not a directory", dir)
	}
	path := filepath.Join(dir, FileName)
	_, err = os.Stat(path)
	existed := !errors.Is(err, os.ErrNotExist)
	if !existed {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("data directory %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("data directory %s is not empty but holds no %s: refusing to start with empty rankings "+
				"(restore the file, or point --data-dir at a new or empty directory)", dir, FileName)
		}
	}
	return open(ctx, path, existed)
}

// Open opens (creating it when missing) the database file at path and brings
// its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, false)
}

// open opens the database at path; existing says that the file was there
// before, so it must hold the schema already.
func open(ctx context.Context, path string, existing bool) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "wal_autocheckpoint(16384)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &Store{db: db}
	// Switching a new file to WAL (the first connection's pragma) answers
	// SQLITE_BUSY at once, without waiting on the busy timeout, when another
	// process is opening the same new file at that moment: tried again,
	// briefly, as the busy timeout would have.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = s.migrate(ctx, existing)
		var se *sqlitedrv.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlitelib.SQLITE_BUSY || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, existing bool) error {
	// Everything runs in one IMMEDIATE transaction (the write lock, taken at
	// BEGIN, waiting on the busy timeout): processes that share the file and
	// start together then apply each migration once. With the version read
	// outside it, two of them saw the same version and the second failed to
	// start on "table leaderboards already exists" (or on SQLITE_BUSY, which
	// WAL answers at once to a read transaction that turns into a write
	// after another connection wrote).
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("not a usable leaderboard database: %w", err)
	}
	defer tx.Rollback()
	// The first statement that reads the file tells a damaged or foreign file
	// apart ("file is not a database").
	var tables int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&tables); err != nil {
		return fmt.Errorf("not a usable leaderboard database: %w", err)
	}
	if existing && tables == 0 {
		// SQLite takes an empty file, or a database whose -wal file (all
		// of it since its first checkpoint) is gone, for a new database:
		// migrating it would start the service with empty rankings.
		return errors.New("the file exists but holds no leaderboard schema: it was emptied, or copied without its -wal file; " +
			"restore it (with leaderboard.db-wal), or remove it if this directory's first start was interrupted")
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("not a usable leaderboard database: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	latest := len(migrations) - 1
	if current > latest {
		return fmt.Errorf("the database's schema version %d is newer than this program knows (%d): run a newer leaderboard", current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close implements history.Store.
func (s *Store) Close() error { return s.db.Close() }

// Ping implements history.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func msOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func timeOf(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PutBoard implements history.Store.
func (s *Store) PutBoard(ctx context.Context, b history.Board) error {
	var maxScore any
	if b.MaxScore != nil {
		maxScore = int64(*b.MaxScore)
	}
	config := string(b.Config)
	if config == "" {
		config = "{}"
	}
	res, err := s.db.ExecContext(ctx, `
INSERT INTO leaderboards (id, name, type, sort_order, update_policy, starts_at, ends_at, created_at, max_score, config, paused)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	name = excluded.name, type = excluded.type, sort_order = excluded.sort_order, update_policy = excluded.update_policy,
	starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_at = excluded.created_at,
	max_score = excluded.max_score, config = excluded.config, paused = excluded.paused
WHERE leaderboards.completed = 0`,
		b.ID, b.Name, b.Type, int(b.Order), int(b.Policy), msOrNull(b.StartsAt), msOrNull(b.EndsAt), b.CreatedAt.UnixMilli(),
		maxScore, config, boolInt(b.Paused))
	if err != nil {
		return fmt.Errorf("put leaderboard %s: %w", b.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return history.ErrCompleted
	}
	return nil
}

// Boards implements history.Store.
func (s *Store) Boards(ctx context.Context) ([]history.Board, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT id, name, type, sort_order, update_policy, starts_at, ends_at, created_at, max_score, config, paused,
	completed, finalized_at, final_version, final_total
FROM leaderboards ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list leaderboards: %w", err)
	}
	defer rows.Close()
	var out []history.Board
	for rows.Next() {
		var (
			b                                 history.Board
			order, policy                     int
			startsAt, endsAt, maxScore, finAt sql.NullInt64
			createdAt                         int64
			config                            string
			paused, completed                 int
		)
		if err := rows.Scan(&b.ID, &b.Name, &b.Type, &order, &policy, &startsAt, &endsAt, &createdAt, &maxScore, &config, &paused,
			&completed, &finAt, &b.FinalVersion, &b.FinalTotal); err != nil {
			return nil, fmt.Errorf("list leaderboards: %w", err)
		}
		b.Order, b.Policy = store.SortOrder(order), store.Policy(policy)
		b.StartsAt, b.EndsAt, b.CreatedAt, b.FinalizedAt = timeOf(startsAt), timeOf(endsAt), time.UnixMilli(createdAt).UTC(), timeOf(finAt)
		if maxScore.Valid {
			m := uint64(maxScore.Int64)
			b.MaxScore = &m
		}
		b.Config = json.RawMessage(config)
		b.Paused, b.Completed = paused != 0, completed != 0
		out = append(out, b)
	}
	return out, rows.Err()
}

// Write implements history.Store.
func (s *Store) Write(ctx context.Context, batch history.Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	defer tx.Rollback()
	if len(batch.Events) > 0 {
		if err := insertEvents(ctx, tx, batch.Events); err != nil {
			return err
		}
	}
	for _, snap := range batch.Snapshots {
		// Not for a completed board: Finalize deleted its snapshot, and one
		// taken while it was being finalized would otherwise stay for good.
		if _, err := tx.ExecContext(ctx, `
INSERT INTO snapshots (leaderboard_id, version, taken_at, data) SELECT ?, ?, ?, ?
WHERE NOT EXISTS (SELECT 1 FROM leaderboards WHERE id = ? AND completed = 1)
ON CONFLICT (leaderboard_id) DO UPDATE SET version = excluded.version, taken_at = excluded.taken_at, data = excluded.data
WHERE excluded.version >= snapshots.version`,
			snap.Board, int64(snap.Version), snap.TakenAt.UnixMilli(), snap.Data, snap.Board); err != nil {
			return fmt.Errorf("write snapshot of %s: %w", snap.Board, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

// eventsPerInsert is how many events one INSERT statement carries: one
// statement per row costs a round through the SQL layer each; 100 rows of 10
// columns stay under SQLite's limit of 32766 variables.
const eventsPerInsert = 100

func insertEvents(ctx context.Context, tx *sql.Tx, events []history.Event) error {
	const cols = 10
	var full *sql.Stmt
	args := make([]any, 0, eventsPerInsert*cols)
	for start := 0; start < len(events); start += eventsPerInsert {
		chunk := events[start:min(start+eventsPerInsert, len(events))]
		args = args[:0]
		for i := range chunk {
			e := &chunk[i]
			var oldScore, oldRank, newScore, newRank any
			if e.HadOld {
				oldScore, oldRank = int64(e.OldScore), e.OldRank
			}
			if !e.Removed {
				newScore, newRank = int64(e.NewScore), e.NewRank
			}
			args = append(args, e.Leaderboard, e.ParticipantID, boolInt(e.Removed), oldScore, newScore, oldRank, newRank,
				int64(e.Version), e.AchievedAt, e.CreatedAt)
		}
		stmt := full
		if len(chunk) < eventsPerInsert || full == nil {
			var err error
			stmt, err = tx.PrepareContext(ctx, insertEventsSQL(len(chunk)))
			if err != nil {
				return fmt.Errorf("write events: %w", err)
			}
			if len(chunk) == eventsPerInsert {
				full = stmt
			} else {
				defer stmt.Close()
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
	}
	if full != nil {
		full.Close()
	}
	return nil
}

// insertEventsSQL skips an event whose (leaderboard, version) is already
// logged: a redelivered event (several processes over one Redis, or a bus
// redelivery) is written once.
func insertEventsSQL(n int) string {
	b := []byte(`INSERT OR IGNORE INTO score_events (leaderboard_id, participant_id, removed, old_score, new_score, old_rank, new_rank, version, achieved_at, created_at) VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "(?,?,?,?,?,?,?,?,?,?)"...)
	}
	return string(b)
}

func scanEvent(rows *sql.Rows, e *history.Event) error {
	var removed int
	var oldScore, newScore, oldRank, newRank sql.NullInt64
	var version int64
	if err := rows.Scan(&e.ID, &e.Leaderboard, &e.ParticipantID, &removed, &oldScore, &newScore, &oldRank, &newRank,
		&version, &e.AchievedAt, &e.CreatedAt); err != nil {
		return err
	}
	e.Version, e.Removed = uint64(version), removed != 0
	e.HadOld = oldScore.Valid
	e.OldScore, e.OldRank = uint64(oldScore.Int64), oldRank.Int64
	e.NewScore, e.NewRank = uint64(newScore.Int64), newRank.Int64
	return nil
}

const eventColumns = `event_id, leaderboard_id, participant_id, removed, old_score, new_score, old_rank, new_rank, version, achieved_at, created_at`

// EventsAfter implements history.Store.
func (s *Store) EventsAfter(ctx context.Context, board string, after uint64, fn func(history.Event) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM score_events WHERE leaderboard_id = ? AND version > ? ORDER BY version`, board, int64(after))
	if err != nil {
		return fmt.Errorf("read events of %s: %w", board, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e history.Event
		if err := scanEvent(rows, &e); err != nil {
			return fmt.Errorf("read events of %s: %w", board, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ParticipantEvents implements history.Store.
func (s *Store) ParticipantEvents(ctx context.Context, board, participant string, limit, offset int) ([]history.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM score_events
WHERE leaderboard_id = ? AND participant_id = ? ORDER BY version DESC LIMIT ? OFFSET ?`, board, participant, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("read events of %s in %s: %w", participant, board, err)
	}
	defer rows.Close()
	out := []history.Event{}
	for rows.Next() {
		var e history.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Snapshot implements history.Store.
func (s *Store) Snapshot(ctx context.Context, board string) (history.Snapshot, error) {
	snap := history.Snapshot{Board: board}
	var version, takenAt int64
	err := s.db.QueryRowContext(ctx, `SELECT version, taken_at, data FROM snapshots WHERE leaderboard_id = ?`, board).Scan(&version, &takenAt, &snap.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return history.Snapshot{}, history.ErrNotFound
	}
	if err != nil {
		return history.Snapshot{}, fmt.Errorf("read snapshot of %s: %w", board, err)
	}
	snap.Version, snap.TakenAt = uint64(version), time.UnixMilli(takenAt).UTC()
	return snap, nil
}

// Finalize implements history.Store.
func (s *Store) Finalize(ctx context.Context, b history.Board, entries iter.Seq2[store.Entry, error]) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	defer tx.Rollback()
	var completed int
	err = tx.QueryRowContext(ctx, `SELECT completed FROM leaderboards WHERE id = ?`, b.ID).Scan(&completed)
	if errors.Is(err, sql.ErrNoRows) {
		return history.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	if completed != 0 {
		return history.ErrCompleted
	}
	const perInsert = 200
	full, err := tx.PrepareContext(ctx, insertFinalSQL(perInsert))
	if err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	defer full.Close()
	args := make([]any, 0, perInsert*5)
	flush := func(stmt *sql.Stmt) error {
		if len(args) == 0 {
			return nil
		}
		if stmt == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, insertFinalSQL(len(args)/5)); err != nil {
				return err
			}
			defer stmt.Close()
		}
		_, err := stmt.ExecContext(ctx, args...)
		args = args[:0]
		return err
	}
	for e, err := range entries {
		if err != nil {
			return err
		}
		args = append(args, b.ID, e.Rank, e.ParticipantID, int64(e.Score), e.AchievedAt)
		if len(args) == perInsert*5 {
			if err := flush(full); err != nil {
				return fmt.Errorf("finalize %s: %w", b.ID, err)
			}
		}
	}
	if err := flush(nil); err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE leaderboards SET completed = 1, finalized_at = ?, final_version = ?, final_total = ? WHERE id = ?`,
		b.FinalizedAt.UnixMilli(), int64(b.FinalVersion), b.FinalTotal, b.ID); err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	// The live snapshot is of no more use: the final ranking replaces it.
	if _, err := tx.ExecContext(ctx, `DELETE FROM snapshots WHERE leaderboard_id = ?`, b.ID); err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("finalize %s: %w", b.ID, err)
	}
	return nil
}

func insertFinalSQL(n int) string {
	b := []byte(`INSERT INTO final_rankings (leaderboard_id, rank, participant_id, score, achieved_at) VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "(?,?,?,?,?)"...)
	}
	return string(b)
}

func scanEntries(rows *sql.Rows) ([]store.Entry, error) {
	defer rows.Close()
	out := []store.Entry{}
	for rows.Next() {
		var e store.Entry
		var score int64
		if err := rows.Scan(&e.Rank, &e.ParticipantID, &score, &e.AchievedAt); err != nil {
			return nil, err
		}
		e.Score = uint64(score)
		out = append(out, e)
	}
	return out, rows.Err()
}

// FinalPage implements history.Store.
func (s *Store) FinalPage(ctx context.Context, board string, offset, limit int) ([]store.Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rank, participant_id, score, achieved_at FROM final_rankings
WHERE leaderboard_id = ? AND rank > ? AND rank <= ? ORDER BY rank`, board, offset, offset+limit)
	if err != nil {
		return nil, fmt.Errorf("read final ranking of %s: %w", board, err)
	}
	return scanEntries(rows)
}

// FinalEntry implements history.Store.
func (s *Store) FinalEntry(ctx context.Context, board, participant string) (store.Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rank, participant_id, score, achieved_at FROM final_rankings
WHERE participant_id = ? AND leaderboard_id = ?`, participant, board)
	if err != nil {
		return store.Entry{}, fmt.Errorf("read final entry: %w", err)
	}
	es, err := scanEntries(rows)
	if err != nil {
		return store.Entry{}, err
	}
	if len(es) == 0 {
		return store.Entry{}, history.ErrNotFound
	}
	return es[0], nil
}

// Results implements history.Store.
func (s *Store) Results(ctx context.Context, participant string, limit, offset int) ([]history.Result, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT f.leaderboard_id, l.name, f.rank, f.score, f.achieved_at, l.finalized_at
FROM final_rankings f JOIN leaderboards l ON l.id = f.leaderboard_id
WHERE f.participant_id = ? ORDER BY l.finalized_at DESC, f.leaderboard_id LIMIT ? OFFSET ?`, participant, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("read results of %s: %w", participant, err)
	}
	defer rows.Close()
	out := []history.Result{}
	for rows.Next() {
		var r history.Result
		var score int64
		var finAt sql.NullInt64
		if err := rows.Scan(&r.Leaderboard, &r.Name, &r.Rank, &score, &r.AchievedAt, &finAt); err != nil {
			return nil, err
		}
		r.Score, r.FinalizedAt = uint64(score), timeOf(finAt)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutProfile implements history.Store.
func (s *Store) PutProfile(ctx context.Context, p history.Profile) error {
	meta := string(p.Metadata)
	if meta == "" {
		meta = "{}"
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO participants (participant_id, display_name, avatar_url, metadata, updated_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (participant_id) DO UPDATE SET
	display_name = excluded.display_name, avatar_url = excluded.avatar_url, metadata = excluded.metadata, updated_at = excluded.updated_at`,
		p.ParticipantID, p.DisplayName, p.AvatarURL, meta, p.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("put profile of %s: %w", p.ParticipantID, err)
	}
	return nil
}

const profileColumns = `participant_id, display_name, avatar_url, metadata, updated_at`

func scanProfile(scan func(...any) error) (history.Profile, error) {
	var p history.Profile
	var meta string
	var updatedAt int64
	if err := scan(&p.ParticipantID, &p.DisplayName, &p.AvatarURL, &meta, &updatedAt); err != nil {
		return history.Profile{}, err
	}
	p.Metadata, p.UpdatedAt = json.RawMessage(meta), time.UnixMilli(updatedAt).UTC()
	return p, nil
}

// Profile implements history.Store.
func (s *Store) Profile(ctx context.Context, participant string) (history.Profile, error) {
	p, err := scanProfile(s.db.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM participants WHERE participant_id = ?`, participant).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return history.Profile{}, history.ErrNotFound
	}
	if err != nil {
		return history.Profile{}, fmt.Errorf("read profile of %s: %w", participant, err)
	}
	return p, nil
}

// Profiles implements history.Store.
func (s *Store) Profiles(ctx context.Context, since time.Time, fn func(history.Profile) error) error {
	q, args := `SELECT `+profileColumns+` FROM participants`, []any(nil)
	if !since.IsZero() {
		q, args = q+` WHERE updated_at >= ?`, []any{since.UnixMilli()}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read profiles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanProfile(rows.Scan)
		if err != nil {
			return fmt.Errorf("read profiles: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// State implements history.Store.
func (s *Store) State(ctx context.Context) (history.State, error) {
	var st history.State
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM server_state WHERE key IN ('epoch', 'clean')`)
	if err != nil {
		return st, fmt.Errorf("read server state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		switch k {
		case "epoch":
			st.Epoch = v
		case "clean":
			st.Clean = v == "true"
		}
	}
	return st, rows.Err()
}

// SetState implements history.Store.
func (s *Store) SetState(ctx context.Context, st history.State) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO server_state (key, value) VALUES ('epoch', ?), ('clean', ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, st.Epoch, fmt.Sprint(st.Clean))
	if err != nil {
		return fmt.Errorf("write server state: %w", err)
	}
	return nil
}

var _ history.Store = (*Store)(nil)
