package board

import (
	"context"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// The sweep reads recent profiles again and again (refreshProfiles): setting
// a name a participant already has must not make every cached ranking body
// stale, while a real change must.
func TestSettingTheSameDisplayNameKeepsTheGeneration(t *testing.T) {
	var s Service
	s.setName("p1", "Ada")
	g := s.NamesGeneration()
	s.setName("p1", "Ada")
	if s.NamesGeneration() != g || s.nameCount.Load() != 1 {
		t.Fatalf("same name: generation %d -> %d, count %d", g, s.NamesGeneration(), s.nameCount.Load())
	}
	s.setName("p1", "Ada L.")
	if s.NamesGeneration() == g || s.name("p1") != "Ada L." || s.nameCount.Load() != 1 {
		t.Fatalf("rename: generation %d -> %d, name %q, count %d", g, s.NamesGeneration(), s.name("p1"), s.nameCount.Load())
	}
}

// Two processes over one history store: names written by the other are
// learned at the sweep, including one written after a profile stamped by a
// writer whose clock runs an hour ahead (a cursor taken from the newest
// updated_at seen would have jumped past every later write).
func TestSweepLearnsOtherProcessesNamesWhateverTheirClocks(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	s := New(memory.New(memory.Options{}), Options{History: hs, Shared: true})
	if _, err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	put := func(pid, name string, at time.Time) {
		t.Helper()
		if err := hs.PutProfile(ctx, history.Profile{ParticipantID: pid, DisplayName: name, UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	put("ahead", "From the future", time.Now().Add(time.Hour))
	s.Sweep(ctx)
	if got := s.name("ahead"); got != "From the future" {
		t.Fatalf("after a sweep: %q", got)
	}
	put("later", "Written now", time.Now())
	s.Sweep(ctx)
	if got := s.name("later"); got != "Written now" {
		t.Fatalf("a profile written after one from a clock ahead: %q after a sweep", got)
	}
}
