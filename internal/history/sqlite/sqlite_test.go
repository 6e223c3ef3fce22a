package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/historytest"
	"github.com/lbhq/leaderboard/internal/store"
)

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenDirRefusesWhatIsNotOurs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	file := filepath.Join(dir, "plain-file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := OpenDir(ctx, file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file as data dir: %v", err)
	}

	used := filepath.Join(dir, "used")
	os.Mkdir(used, 0o755)
	os.WriteFile(filepath.Join(used, "auth-secret"), []byte("s"), 0o600)
	if _, err := OpenDir(ctx, used); err == nil || !strings.Contains(err.Error(), "holds no "+FileName) {
		t.Fatalf("a used directory without its database: %v", err)
	}

	corrupt := filepath.Join(dir, "corrupt")
	os.Mkdir(corrupt, 0o755)
	os.WriteFile(filepath.Join(corrupt, FileName), []byte(strings.Repeat("this is not a database ", 500)), 0o644)
	if _, err := OpenDir(ctx, corrupt); err == nil || !strings.Contains(err.Error(), "not a usable leaderboard database") {
		t.Fatalf("a corrupt database: %v", err)
	}

	// A new directory (even nested) is created, and a second open finds the schema in place.
	fresh := filepath.Join(dir, "a", "b")
	s, err := OpenDir(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenDir(ctx, fresh)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	// A database from a newer program is refused.
	if _, err := s.db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenDir(ctx, fresh); err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Fatalf("a newer schema: %v", err)
	}
}

// BenchmarkWriteEvents measures the audit log's group commit: batches of 2000
// events (what 10,000 submissions/s bring in a 200 ms flush interval).
//
// "log-1M" first fills the log with 1M events of random participants, so that
// every insert lands in indexes much larger than a cache: the steady state of
// a busy server, and the case that matters.
func BenchmarkWriteEvents(b *testing.B) {
	for _, prefill := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("log-%dk", prefill/1000), func(b *testing.B) {
			s, err := OpenDir(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 2000
			events := make([]history.Event, batch)
			version := uint64(0)
			rng := uint64(88172645463325252)
			write := func() {
				for j := range events {
					version++
					rng ^= rng << 13
					rng ^= rng >> 7
					rng ^= rng << 17
					events[j] = history.Event{Event: store.Event{Leaderboard: "bench", Version: version,
						ParticipantID: fmt.Sprintf("participant-%08d", rng%1_000_000), HadOld: true,
						OldScore: version, OldRank: 10, NewScore: version + 1, NewRank: 9, AchievedAt: 1700000000000}, CreatedAt: 1700000000000}
				}
				if err := s.Write(context.Background(), history.Batch{Events: events}); err != nil {
					b.Fatal(err)
				}
			}
			for range prefill / batch {
				write()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				write()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestOpenDirRefusesADatabaseThatLostItsSchema: a leaderboard.db that is
// there but holds no schema (emptied to zero bytes, or copied without the
// -wal file that held everything since it was created) is a damaged
// database, not a new one: opening it must fail instead of starting with
// empty rankings.
func TestOpenDirRefusesADatabaseThatLostItsSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBoard(ctx, history.Board{ID: "b", Name: "B"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, FileName), 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, FileName+"-wal"))
	os.Remove(filepath.Join(dir, FileName+"-shm"))
	if s, err := OpenDir(ctx, dir); err == nil || !strings.Contains(err.Error(), "holds no leaderboard schema") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("an emptied database: %v", err)
	}
	// Refused again: the failed open left the file as it was.
	if _, err := OpenDir(ctx, dir); err == nil {
		t.Fatal("an emptied database opened at the second try")
	}
}

// Processes sharing one database file (docs/SCALING.md) may start at the same
// moment: each must open it, and the migrations must be applied once.
func TestConcurrentOpensOfANewFile(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), FileName)
		const n = 4
		stores := make([]*Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = Open(context.Background(), path) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, open %d of %d at once: %v", round, i, n, errs[i])
			}
			defer stores[i].Close()
		}
		var applied, latest int
		if err := stores[0].db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&applied, &latest); err != nil {
			t.Fatal(err)
		}
		if applied != len(migrations)-1 || latest != len(migrations)-1 {
			t.Fatalf("round %d: %d migrations recorded, latest %d; want %d", round, applied, latest, len(migrations)-1)
		}
	}
}
