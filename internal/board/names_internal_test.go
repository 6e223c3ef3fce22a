package board

import (
	"context"
	"sync/atomic"
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

// heldProfileWrites is a history store whose first PutProfile commits and
// then waits for release before it returns: the moment between a profile
// write and the in-memory name set after it.
type heldProfileWrites struct {
	history.Store
	committed chan struct{}
	release   chan struct{}
	first     atomic.Bool
}

func (h *heldProfileWrites) PutProfile(ctx context.Context, p history.Profile) error {
	err := h.Store.PutProfile(ctx, p)
	if h.first.CompareAndSwap(false, true) {
		close(h.committed)
		<-h.release
	}
	return err
}

// Two PUTs of one participant's profile at once (a double click, a retry):
// the in-memory name that rankings show must end as the stored profile's,
// the last write. The name used to be set after the write without holding
// anything, so the earlier write setting its name last left rankings
// showing a name GET /v1/participants/{pid} no longer had, until a restart.
func TestConcurrentProfileWritesLeaveTheStoredName(t *testing.T) {
	ctx := context.Background()
	hs, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	held := &heldProfileWrites{Store: hs, committed: make(chan struct{}), release: make(chan struct{})}
	s := New(memory.New(memory.Options{}), Options{History: held})
	if _, err := s.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() {
		_, err := s.PutProfile(ctx, "p1", ProfileInput{DisplayName: "First"})
		firstDone <- err
	}()
	<-held.committed
	secondDone := make(chan error, 1)
	go func() {
		_, err := s.PutProfile(ctx, "p1", ProfileInput{DisplayName: "Second"})
		secondDone <- err
	}()
	select {
	case err := <-secondDone: // the second write went through while the first had not set its name
		secondDone <- err
	case <-time.After(200 * time.Millisecond): // the second waits for the first
	}
	close(held.release)
	for _, done := range []chan error{firstDone, secondDone} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.Profile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.name("p1"); got != p.DisplayName {
		t.Fatalf("rankings show p1 as %q, its stored profile says %q", got, p.DisplayName)
	}
}
