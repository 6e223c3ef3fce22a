package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/historytest"
	"github.com/lbhq/leaderboard/internal/store"
)

// The tests run against a real PostgreSQL: LEADERBOARD_TEST_POSTGRES_URL, by
// default the machine's own server (scripts/test.sh makes sure it runs). Each
// test gets a schema of its own, dropped when it ends, so tests and packages
// running at the same time never see each other's tables.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func baseURL() string {
	if u := os.Getenv("LEADERBOARD_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// requirePostgres skips the test when PostgreSQL cannot be reached, or fails
// it in CI (CI set, and not false or 0, as internal/web reads it): CI must run
// the suite for real.
func requirePostgres(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseURL())
		if err != nil {
			reachErr = err
			return
		}
		defer conn.Close(ctx)
		reachErr = conn.Ping(ctx)
	})
	if reachErr == nil {
		return
	}
	if ci := strings.ToLower(os.Getenv("CI")); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("PostgreSQL at %s is unreachable (scripts/test.sh starts it): %v", baseURL(), reachErr)
	}
	t.Skipf("PostgreSQL at %s is unreachable (set LEADERBOARD_TEST_POSTGRES_URL, or run scripts/test.sh): %v", baseURL(), reachErr)
}

// withParam adds a run-time parameter to a URL or keyword/value string.
func withParam(conn, key, value string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			panic(err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return conn + " " + key + "=" + value
}

// freshSchema creates an empty schema, dropped when t ends, and returns a URL
// whose connections use it.
func freshSchema(t testing.TB) string {
	t.Helper()
	requirePostgres(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "lbtest_" + hex.EncodeToString(b[:])
	admin(t, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { admin(t, `DROP SCHEMA `+schema+` CASCADE`) })
	return withParam(baseURL(), "search_path", schema)
}

func admin(t testing.TB, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	requirePostgres(t)
	historytest.Run(t, func(t *testing.T) history.Store {
		s, err := Open(context.Background(), freshSchema(t), Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func migrationCount(t *testing.T, s *Store) (n, max int) {
	t.Helper()
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	return n, max
}

func TestMigrationsIdempotent(t *testing.T) {
	u := freshSchema(t)
	a := open(t, u, Options{})
	if err := a.PutBoard(context.Background(), history.Board{ID: "kept", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := open(t, u, Options{})
	if n, max := migrationCount(t, b); n != len(migrations) || max != len(migrations) {
		t.Fatalf("after two opens: %d migrations recorded, latest %d; want %d", n, max, len(migrations))
	}
	if boards, err := b.Boards(context.Background()); err != nil || len(boards) != 1 {
		t.Fatalf("second open lost data: %v, %v", boards, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	u := freshSchema(t)
	s := open(t, u, Options{})
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO schema_migrations (version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), u, Options{Logger: quiet})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
	t.Log(err)
}

func TestConcurrentOpen(t *testing.T) {
	u := freshSchema(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), u, Options{Logger: quiet}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	if c, max := migrationCount(t, stores[0]); c != len(migrations) || max != len(migrations) {
		t.Fatalf("%d migrations recorded, latest %d; want %d", c, max, len(migrations))
	}
	days, err := stores[0].partitions(context.Background())
	if err != nil || len(days) < DefaultPartitionsAhead+1 {
		t.Fatalf("partitions %v, %v; want %d", days, err, DefaultPartitionsAhead+1)
	}
}

func hasAll(days, want []time.Time) bool {
	for _, d := range want {
		if !slices.ContainsFunc(days, d.Equal) {
			return false
		}
	}
	return true
}

func daysFrom(first time.Time, n int) []time.Time {
	var out []time.Time
	for i := range n {
		out = append(out, dayOf(first).AddDate(0, 0, i))
	}
	return out
}

func TestPartitionsAhead(t *testing.T) {
	s := open(t, freshSchema(t), Options{PartitionsAhead: 3})
	ctx := context.Background()
	now := time.Now()
	days, err := s.partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Open made today's and the next three days' partitions (one more if the
	// test ran across midnight UTC).
	if want := daysFrom(now, 4); !hasAll(days, want) || len(days) > 5 {
		t.Fatalf("partitions after open %v, want %v", days, want)
	}
	// Maintenance two days on makes the two missing days; a second run
	// changes nothing.
	for range 2 {
		if err := s.Maintain(ctx, now.Add(2*day)); err != nil {
			t.Fatal(err)
		}
	}
	days, _ = s.partitions(ctx)
	if want := daysFrom(now, 6); !hasAll(days, want) || len(days) > 7 {
		t.Fatalf("partitions after maintain %v, want %v", days, want)
	}
	// Today's events land in today's partition.
	if err := s.Write(ctx, history.Batch{Events: []history.Event{ev("b", 1, now)}}); err != nil {
		t.Fatal(err)
	}
	if got := partitionOf(t, s, "b", 1); got != partitionPrefix+dayOf(now).Format(partitionLayout) {
		t.Fatalf("today's event in %s", got)
	}
}

func ev(board string, version uint64, at time.Time) history.Event {
	return history.Event{Event: store.Event{Leaderboard: board, Version: version, ParticipantID: "p", NewScore: version, NewRank: 1,
		AchievedAt: at.UnixMilli()}, CreatedAt: at.UnixMilli()}
}

// partitionOf names the partition holding a board's event, or "" when there
// is none.
func partitionOf(t *testing.T, s *Store, board string, version uint64) string {
	t.Helper()
	var name string
	err := s.pool.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM score_events WHERE leaderboard_id = $1 AND version = $2`,
		board, int64(version)).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func TestRetentionDropsOldPartitions(t *testing.T) {
	s := open(t, freshSchema(t), Options{Retention: 30 * day, PartitionsAhead: 2})
	ctx := context.Background()
	now := time.Now()
	// Maintenance as it ran 40 days ago made that day's partitions.
	if err := s.Maintain(ctx, now.Add(-40*day)); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-40 * day)
	batch := history.Batch{Events: []history.Event{ev("b", 1, old), ev("b", 2, now.Add(-50*day)), ev("b", 3, now.Add(-29*day)), ev("b", 4, now)}}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	oldPartition := partitionPrefix + dayOf(old).Format(partitionLayout)
	if got := partitionOf(t, s, "b", 1); got != oldPartition {
		t.Fatalf("40-day-old event in %q, want %s", got, oldPartition)
	}
	for v, want := range map[uint64]string{2: defaultPartition, 3: defaultPartition} {
		if got := partitionOf(t, s, "b", v); got != want {
			t.Fatalf("event %d in %q, want %s", v, got, want)
		}
	}

	if err := s.Maintain(ctx, now); err != nil {
		t.Fatal(err)
	}
	days, _ := s.partitions(ctx)
	if want := daysFrom(now, 3); !hasAll(days, want) || days[0].Before(dayOf(now).Add(-day)) {
		t.Fatalf("partitions after retention %v, want only %v", days, want)
	}
	var left []uint64
	if err := s.EventsAfter(ctx, "b", 0, func(e history.Event) error { left = append(left, e.Version); return nil }); err != nil {
		t.Fatal(err)
	}
	// 1 went with its partition, 2 was deleted from the default partition;
	// 3 (29 days old) and 4 (today) are within retention.
	if fmt.Sprint(left) != "[3 4]" {
		t.Fatalf("events after retention %v, want [3 4]", left)
	}
}

func TestDefaultPartitionRowsMovedWhenTheirDayComes(t *testing.T) {
	s := open(t, freshSchema(t), Options{PartitionsAhead: 1})
	ctx := context.Background()
	now := time.Now()
	later := now.Add(10 * day)
	if err := s.Write(ctx, history.Batch{Events: []history.Event{ev("b", 1, later), ev("b", 2, later.Add(day))}}); err != nil {
		t.Fatal(err)
	}
	if got := partitionOf(t, s, "b", 1); got != defaultPartition {
		t.Fatalf("event with no partition for its day in %q", got)
	}
	if err := s.Maintain(ctx, later); err != nil {
		t.Fatal(err)
	}
	if got, want := partitionOf(t, s, "b", 1), partitionPrefix+dayOf(later).Format(partitionLayout); got != want {
		t.Fatalf("event in %q after its partition was made, want %s", got, want)
	}
	if got, want := partitionOf(t, s, "b", 2), partitionPrefix+dayOf(later.Add(day)).Format(partitionLayout); got != want {
		t.Fatalf("event in %q after its partition was made, want %s", got, want)
	}
	var got []history.Event
	if err := s.EventsAfter(ctx, "b", 0, func(e history.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].CreatedAt != later.UnixMilli() || got[0].ID >= got[1].ID {
		t.Fatalf("moved events %+v", got)
	}
}

func TestEventColumns(t *testing.T) {
	s := open(t, freshSchema(t), Options{})
	ctx := context.Background()
	now := time.Now()
	fresh := ev("b", 1, now)                                 // a new participant: no old score, no old rank
	moved := ev("b", 2, now)                                 // an existing one
	moved.HadOld, moved.OldScore, moved.OldRank = true, 0, 3 // whose old score was 0
	big := ev("b", 3, now)
	big.HadOld, big.OldScore, big.NewScore, big.OldRank = true, store.MaxScore, store.MaxScore-1, 1
	if err := s.Write(ctx, history.Batch{Events: []history.Event{fresh, moved, big}}); err != nil {
		t.Fatal(err)
	}
	var nulls []bool
	rows, _ := s.pool.Query(ctx, `SELECT old_score IS NULL FROM score_events ORDER BY version`)
	nulls, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil || fmt.Sprint(nulls) != "[true false false]" {
		t.Fatalf("old_score NULL: %v, %v; want only for the new participant", nulls, err)
	}
	var got []history.Event
	if err := s.EventsAfter(ctx, "b", 0, func(e history.Event) error { e.ID = 0; got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []history.Event{fresh, moved, big}; !slices.Equal(got, want) {
		t.Fatalf("events\n got %+v\nwant %+v", got, want)
	}

	// A score beyond bigint is refused, not wrapped, and the batch is not written.
	bad := ev("b", 4, now)
	bad.NewScore = 1 << 63
	if err := s.Write(ctx, history.Batch{Events: []history.Event{ev("b", 5, now), bad}}); err == nil {
		t.Fatal("score 2^63 written")
	}
	if p := partitionOf(t, s, "b", 5); p != "" {
		t.Fatalf("failed batch left an event in %s", p)
	}
}

func TestFinalizePanickingSource(t *testing.T) {
	s := open(t, freshSchema(t), Options{})
	ctx := context.Background()
	b := history.Board{ID: "f", Name: "F", CreatedAt: time.Now()}
	if err := s.PutBoard(ctx, b); err != nil {
		t.Fatal(err)
	}
	var panicking iter.Seq2[store.Entry, error] = func(yield func(store.Entry, error) bool) {
		yield(store.Entry{Rank: 1, ParticipantID: "a"}, nil)
		panic("source broke")
	}
	b.Completed, b.FinalizedAt = true, time.Now()
	err := s.Finalize(ctx, b, panicking)
	if err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Fatalf("finalize from a panicking source: %v", err)
	}
	duplicate := historytest.Entries([]store.Entry{{Rank: 1, ParticipantID: "a"}, {Rank: 1, ParticipantID: "b"}})
	if err := s.Finalize(ctx, b, duplicate); err == nil {
		t.Fatal("finalize with rank 1 twice succeeded")
	}
	boards, _ := s.Boards(ctx)
	if len(boards) != 1 || boards[0].Completed {
		t.Fatalf("failed finalize completed the board: %+v", boards)
	}
	// And it can still be finalized.
	if err := s.Finalize(ctx, b, historytest.Entries([]store.Entry{{Rank: 1, ParticipantID: "a", Score: 5}})); err != nil {
		t.Fatal(err)
	}
}

// TestFinalizeMillion streams a million-entry ranking, generated on the fly,
// into one Finalize.
func TestFinalizeMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows: not in -short")
	}
	s := open(t, freshSchema(t), Options{})
	ctx := context.Background()
	b := history.Board{ID: "m", Name: "M", CreatedAt: time.Now()}
	if err := s.PutBoard(ctx, b); err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	entry := func(i int) store.Entry {
		return store.Entry{Rank: int64(i + 1), ParticipantID: fmt.Sprintf("p%07d", i), Score: store.MaxScore - uint64(i), AchievedAt: int64(i)}
	}
	b.Completed, b.FinalizedAt, b.FinalTotal = true, time.Now(), n
	if err := s.Finalize(ctx, b, func(yield func(store.Entry, error) bool) {
		for i := range n {
			if !yield(entry(i), nil) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	page, err := s.FinalPage(ctx, "m", n-2, 10)
	if err != nil || fmt.Sprint(page) != fmt.Sprint([]store.Entry{entry(n - 2), entry(n - 1)}) {
		t.Fatalf("tail %v, %v", page, err)
	}
	if e, err := s.FinalEntry(ctx, "m", "p0500000"); err != nil || e != entry(500000) {
		t.Fatalf("middle %v, %v", e, err)
	}
}

// BenchmarkWriteEvents measures the audit log's write rate: batches of 2000
// events (one group commit each) into one store, as the history writer sends
// them. Compare events/s with the 20,000.
//
//	go test ./internal/history/postgres -run '^$' -bench WriteEvents -benchtime 100x
func BenchmarkWriteEvents(b *testing.B) {
	s := open(b, freshSchema(b), Options{})
	ctx := context.Background()
	const batchSize = 2000
	boards := make([]string, 8)
	for i := range boards {
		boards[i] = fmt.Sprintf("board-%d", i)
	}
	players := make([]string, 10_000)
	for i := range players {
		players[i] = fmt.Sprintf("player-%05d", i)
	}
	now := time.Now().UnixMilli()
	events := make([]history.Event, batchSize)
	version := uint64(0)
	for b.Loop() {
		for i := range events {
			version++
			events[i] = history.Event{Event: store.Event{Leaderboard: boards[version%8], Version: version,
				ParticipantID: players[version%10_000], HadOld: version%3 != 0, OldScore: version / 2,
				OldRank: int64(version % 5000), NewScore: version, NewRank: int64(version%5000) + 1, AchievedAt: now},
				CreatedAt: now}
		}
		if err := s.Write(ctx, history.Batch{Events: events}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(version)/b.Elapsed().Seconds(), "events/s")
}

// TestMaintainWhileWriting makes partitions (moving rows out of the default
// partition) and drops them while batches keep coming: no write fails, no
// event is lost but those past retention.
func TestMaintainWhileWriting(t *testing.T) {
	s := open(t, freshSchema(t), Options{PartitionsAhead: 1, Retention: 3 * day})
	ctx := context.Background()
	now := time.Now()
	const batches, perBatch = 40, 50
	done := make(chan error, 1)
	go func() {
		version := uint64(0)
		for i := range batches {
			var b history.Batch
			for j := range perBatch {
				version++
				// Days 0..9 ahead: most have no partition yet when written.
				b.Events = append(b.Events, ev("w", version, now.Add(time.Duration((i+j)%10)*day)))
			}
			if err := s.Write(ctx, b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range 10 {
		if err := s.Maintain(ctx, now.Add(time.Duration(i)*day)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The last maintenance ran "9 days on", so days 0..5 are past 3 days of
	// retention, except for the rows of those days written after their
	// partition was dropped, which went to the default partition and are
	// deleted by the next run.
	if err := s.Maintain(ctx, now.Add(9*day)); err != nil {
		t.Fatal(err)
	}
	cutoff := now.Add(6 * day).UnixMilli()
	n := 0
	if err := s.EventsAfter(ctx, "w", 0, func(e history.Event) error {
		if e.CreatedAt < cutoff {
			t.Fatalf("event %d of %v kept past retention", e.Version, time.UnixMilli(e.CreatedAt))
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range batches {
		for j := range perBatch {
			if (i+j)%10 >= 6 {
				want++
			}
		}
	}
	if n != want {
		t.Fatalf("%d events kept, want %d", n, want)
	}
}
