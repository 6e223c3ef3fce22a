package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// redelivered returns versions from..to of board b's events, stamped createdAt.
func redelivered(b string, from, to uint64, createdAt int64) []history.Event {
	var out []history.Event
	for v := from; v <= to; v++ {
		out = append(out, history.Event{Event: store.Event{Leaderboard: b, Version: v, ParticipantID: "p",
			HadOld: v > 1, OldScore: 10 * (v - 1), OldRank: min(int64(v-1), 1), NewScore: 10 * v, NewRank: 1, AchievedAt: int64(v)}, CreatedAt: createdAt})
	}
	return out
}

// loggedOnce checks that board b's log holds versions 1..n once each and
// that recovery accepts it.
func loggedOnce(t *testing.T, s *Store, b history.Board, n int) {
	t.Helper()
	ctx := context.Background()
	got, err := s.ParticipantEvents(ctx, b.ID, "p", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Errorf("%s: participant history holds %d events, want %d", b.ID, len(got), n)
	}
	if _, err := history.Recover(ctx, s, memory.New(memory.Options{}), b); err != nil {
		t.Errorf("%s: recovery: %v", b.ID, err)
	}
}

func putBoard(t *testing.T, s *Store, id string) history.Board {
	t.Helper()
	b := history.Board{ID: id, Name: id, Type: "custom", CreatedAt: time.Now().UTC()}
	if err := s.PutBoard(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRedeliveredEventsAreLoggedOnce: the history role commits a polled
// batch before its Kafka offsets, so a crash between the two (or a
// rebalance) delivers the same events again to a fresh process, whose Writer
// stamps them with a new created_at; a commit whose answer was lost is sent
// again. The audit log must keep each (leaderboard, version) once, as
// history/sqlite does: a duplicate shows a change twice in the participant's
// history and makes recovery refuse the log, so the server cannot start.
func TestRedeliveredEventsAreLoggedOnce(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshSchema(t), Options{})
	b, other := putBoard(t, s, "b"), putBoard(t, s, "c")
	now := time.Now().UnixMilli()
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 1, 2, now)}); err != nil {
		t.Fatal(err)
	}
	// The same two again, then a batch overlapping them, mixed with another board's first events.
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 1, 2, now+1500)}); err != nil {
		t.Fatal(err)
	}
	mixed := append(redelivered("b", 2, 4, now+3000), redelivered("c", 1, 3, now+3000)...)
	if err := s.Write(ctx, history.Batch{Events: mixed}); err != nil {
		t.Fatal(err)
	}
	loggedOnce(t, s, b, 4)
	loggedOnce(t, s, other, 3)
}

// TestConcurrentWritersLogOnce: two history processes that both hold a
// partition for a moment (a rebalance) write the same events at once.
func TestConcurrentWritersLogOnce(t *testing.T) {
	ctx := context.Background()
	url := freshSchema(t)
	s1, s2 := open(t, url, Options{}), open(t, url, Options{})
	b := putBoard(t, s1, "b")
	const n = 200
	var wg sync.WaitGroup
	for _, s := range []*Store{s1, s2} {
		wg.Go(func() {
			for v := uint64(1); v <= n; v += 10 {
				if err := s.Write(ctx, history.Batch{Events: redelivered("b", v, v+9, time.Now().UnixMilli())}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	loggedOnce(t, s1, b, n)
}

// TestMarksOfAnExistingLog: a database written before event_marks existed
// gets each leaderboard's mark from its log when it is migrated, so a
// redelivery right after the upgrade is left out too.
func TestMarksOfAnExistingLog(t *testing.T) {
	ctx := context.Background()
	url := freshSchema(t)
	s := open(t, url, Options{})
	b := putBoard(t, s, "b")
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 1, 5, time.Now().UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	// Back to schema version 1: what migrations 2 and later made undone (the
	// table of 2, the json columns of 3, the index of 4), so that upgrading
	// runs each of them again as it would on a database of that version.
	if _, err := s.pool.Exec(ctx, `
DROP TABLE event_marks;
ALTER TABLE leaderboards ALTER COLUMN config TYPE jsonb USING config::jsonb;
ALTER TABLE participants ALTER COLUMN metadata DROP DEFAULT;
ALTER TABLE participants ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb;
ALTER TABLE participants ALTER COLUMN metadata SET DEFAULT '{}';
DROP INDEX participants_updated;
DELETE FROM schema_migrations WHERE version >= 2`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, url, Options{})
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 4, 6, time.Now().UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	loggedOnce(t, s, b, 6)
}

// TestLowerVersionsCommittedAfterAHigherOneAreLogged: API processes sharing
// one Redis without Kafka each log the changes they see. One that starts
// following a leaderboard logs the newest change first; the process that
// made the changes before it commits them after. Those are not redeliveries:
// the log must hold them (once), and a redelivery hours after its first
// delivery is still left out.
func TestLowerVersionsCommittedAfterAHigherOneAreLogged(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshSchema(t), Options{})
	b := putBoard(t, s, "b")
	now := time.Now()
	// The follower commits version 5 (the newest when it started following).
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 5, 5, now.UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	// The maker commits 1..5 a moment later: 1..4 are new, 5 is a copy.
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 1, 5, now.Add(200*time.Millisecond).UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	loggedOnce(t, s, b, 5)
	// Then 6..7, and their redelivery three hours later (stamped then).
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 6, 7, now.UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, history.Batch{Events: redelivered("b", 6, 7, now.Add(3*time.Hour).UnixMilli())}); err != nil {
		t.Fatal(err)
	}
	loggedOnce(t, s, b, 7)
}
