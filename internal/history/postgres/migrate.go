package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a newer
// release than this one: its schema_migrations holds a version this code does
// not know, and running against it could corrupt data.
var ErrSchemaTooNew = errors.New("database schema is newer than this release")

// migrations are applied in order; migrations[i] is schema version i+1. A
// released migration is never edited: a change is a new entry at the end.
var migrations = []string{
	// 1: the schema.
	`
CREATE TABLE leaderboards (
	id            text PRIMARY KEY,
	name          text NOT NULL,
	type          text NOT NULL,
	sort_order    smallint NOT NULL,
	update_policy smallint NOT NULL,
	starts_at     timestamptz,
	ends_at       timestamptz,
	created_at    timestamptz NOT NULL,
	max_score     bigint,
	config        jsonb,
	paused        boolean NOT NULL DEFAULT false,
	completed     boolean NOT NULL DEFAULT false,
	finalized_at  timestamptz,
	final_version bigint NOT NULL DEFAULT 0,
	final_total   bigint NOT NULL DEFAULT 0
);

-- The audit log, partitioned by day of created_at (the server's time of the
-- event). Partitions are made by Maintain; score_events_default takes any row
-- whose day has none. No primary key: one would have to include created_at,
-- and event_id comes from one sequence, so it is unique by construction.
CREATE SEQUENCE score_events_event_id_seq AS bigint;
CREATE TABLE score_events (
	event_id       bigint NOT NULL DEFAULT nextval('score_events_event_id_seq'),
	leaderboard_id text NOT NULL,
	participant_id text NOT NULL,
	removed        boolean NOT NULL,
	had_old        boolean NOT NULL,
	old_score      bigint,
	old_rank       bigint,
	new_score      bigint NOT NULL,
	new_rank       bigint NOT NULL,
	version        bigint NOT NULL,
	achieved_at    bigint NOT NULL,
	created_at     timestamptz NOT NULL
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE score_events_event_id_seq OWNED BY score_events.event_id;
CREATE TABLE score_events_default PARTITION OF score_events DEFAULT;
CREATE INDEX score_events_replay ON score_events (leaderboard_id, version);
CREATE INDEX score_events_participant ON score_events (leaderboard_id, participant_id, version);

CREATE TABLE final_rankings (
	leaderboard_id text NOT NULL,
	rank           bigint NOT NULL,
	participant_id text NOT NULL,
	score          bigint NOT NULL,
	achieved_at    bigint NOT NULL,
	PRIMARY KEY (leaderboard_id, rank)
);
CREATE INDEX final_rankings_participant ON final_rankings (participant_id, leaderboard_id);

CREATE TABLE snapshots (
	leaderboard_id text PRIMARY KEY,
	version        bigint NOT NULL,
	taken_at       timestamptz NOT NULL,
	data           bytea NOT NULL
);

CREATE TABLE participants (
	participant_id text PRIMARY KEY,
	display_name   text NOT NULL,
	avatar_url     text NOT NULL DEFAULT '',
	metadata       jsonb NOT NULL DEFAULT '{}',
	updated_at     timestamptz NOT NULL
);

CREATE TABLE server_state (
	key   text PRIMARY KEY,
	value text NOT NULL
);
`,
	// 2: the highest version logged per leaderboard. A leaderboard's events
	// are written in version order, so an event at or below its mark is a
	// redelivery (the history role repeats what it wrote before a crash, a
	// commit whose answer was lost is retried) and is not written again.
	`
CREATE TABLE event_marks (
	leaderboard_id text PRIMARY KEY,
	version        bigint NOT NULL
);
INSERT INTO event_marks (leaderboard_id, version)
SELECT leaderboard_id, max(version) FROM score_events GROUP BY leaderboard_id;
`,
	// 3: config and metadata keep the client's JSON text as is: jsonb
	// refuses the escape \u0000 (valid JSON, accepted by the API and by
	// history/sqlite) and would fail such a write for good.
	`
ALTER TABLE leaderboards ALTER COLUMN config TYPE json USING config::json;
ALTER TABLE participants ALTER COLUMN metadata DROP DEFAULT;
ALTER TABLE participants ALTER COLUMN metadata TYPE json USING metadata::json;
ALTER TABLE participants ALTER COLUMN metadata SET DEFAULT '{}';
`,
	// 4: processes sharing the database read the profiles changed since
	// their last look (Profiles with a since).
	`CREATE INDEX participants_updated ON participants (updated_at);`,
}

// lockSQL takes the transaction-scoped advisory lock that serialises schema
// changes (migrations and partition maintenance) of one schema: the key is
// derived from current_schema(), so stores in different schemas of one
// database (the tests make one per test) do not wait for each other.
const lockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('lbhq/leaderboard history ddl ' || coalesce(current_schema(), ''), 0))`

// migrate brings the schema to len(migrations), in one transaction under the
// advisory lock, so that two processes starting together apply each
// migration once. It returns the version it found.
func migrate(ctx context.Context, pool *pgxpool.Pool) (from int, err error) {
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return err
		}
		// Created under the lock: CREATE TABLE IF NOT EXISTS is not safe
		// against a concurrent one.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
			return err
		}
		if from > len(migrations) {
			return fmt.Errorf("%w (schema_migrations at version %d, this release knows up to %d): refusing to start; run a release at least as new", ErrSchemaTooNew, from, len(migrations))
		}
		for v := from + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	}); err != nil {
		if errors.Is(err, ErrSchemaTooNew) {
			return from, fmt.Errorf("postgres history: %w", err)
		}
		return from, fmt.Errorf("postgres history: migrate: %w", err)
	}
	return from, nil
}
