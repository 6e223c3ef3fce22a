package redis_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
	lbredis "github.com/lbhq/leaderboard/internal/store/redis"
	"github.com/lbhq/leaderboard/internal/store/storetest"
)

// TestCheckEpochReportsLostData: the epoch key gone (what a Redis restarted
// without persistence looks like under a prefix) is ErrDataLost, and so is
// the key holding another epoch (another process started on the emptied
// Redis and set a new one); a store whose epoch is Options.Epoch checks
// nothing.
func TestCheckEpochReportsLostData(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	prefix := newPrefix(t, c)
	s := newStore(t, c, prefix, nil, 0)
	if err := s.CheckEpoch(ctx); err != nil {
		t.Fatalf("CheckEpoch with the key in place: %v", err)
	}
	if err := c.Del(ctx, prefix+"epoch").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckEpoch(ctx); !errors.Is(err, lbredis.ErrDataLost) {
		t.Fatalf("CheckEpoch with the key gone: %v, want ErrDataLost", err)
	}
	later := newStore(t, c, prefix, nil, 0)
	if later.Epoch() == s.Epoch() {
		t.Fatal("a store started after the loss took the lost epoch")
	}
	if err := s.CheckEpoch(ctx); !errors.Is(err, lbredis.ErrDataLost) {
		t.Fatalf("CheckEpoch with another epoch in the key: %v, want ErrDataLost", err)
	}
	if err := later.CheckEpoch(ctx); err != nil {
		t.Fatalf("CheckEpoch of the store that set the new epoch: %v", err)
	}
	fixed, err := lbredis.New(ctx, lbredis.Options{Client: c, Prefix: newPrefix(t, c), Epoch: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixed.CheckEpoch(ctx); err != nil {
		t.Fatalf("CheckEpoch with Options.Epoch: %v", err)
	}
}

// TestDamagedKeysAreErrDamaged: a leaderboard whose sorted set is gone while
// its participant hash remains, or whose key has the wrong type, fails its
// scripts with ErrDamaged (the same failure at every retry), not with an
// error that reads as Redis being unreachable.
func TestDamagedKeysAreErrDamaged(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	prefix := newPrefix(t, c)
	s := newStore(t, c, prefix, nil, 0)
	for _, b := range []string{"gone", "wrongtype"} {
		if err := s.CreateBoard(ctx, b, store.BoardOptions{}); err != nil {
			t.Fatal(err)
		}
		res := make([]store.Result, 1)
		if err := s.Submit(ctx, b, []store.Submission{{ParticipantID: "p", Score: 1, AchievedAt: 1}}, res); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Del(ctx, prefix+"{gone}:z").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, prefix+"{wrongtype}:z").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+"{wrongtype}:z", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"gone", "wrongtype"} {
		res := make([]store.Result, 1)
		err := s.Submit(ctx, b, []store.Submission{{ParticipantID: "p", Score: 2, AchievedAt: 2}}, res)
		if !errors.Is(err, store.ErrDamaged) {
			t.Errorf("Submit to %s: %v, want ErrDamaged", b, err)
		}
		if _, err := s.Participant(ctx, b, "p", 1); !errors.Is(err, store.ErrDamaged) {
			t.Errorf("Participant on %s: %v, want ErrDamaged", b, err)
		}
	}
}

// TestVersionGoingBackwardsIsLostData: Redis restarted from an older
// persisted state keeps its epoch key, but a leaderboard's version is back
// where that state had it, and the next writes hand out versions this
// process already published for other changes. The store notices it at its
// next write (a version at or below the last published, at a newer stream
// id) and CheckEpoch reports ErrDataLost.
func TestVersionGoingBackwardsIsLostData(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	prefix := newPrefix(t, c)
	s := newStore(t, c, prefix, &storetest.Recorder{}, 0)
	if err := s.CreateBoard(ctx, "b", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	res := make([]store.Result, 3)
	if err := s.Submit(ctx, "b", []store.Submission{{ParticipantID: "a", Score: 1, AchievedAt: 1},
		{ParticipantID: "b", Score: 2, AchievedAt: 1}, {ParticipantID: "c", Score: 3, AchievedAt: 1}}, res); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckEpoch(ctx); err != nil {
		t.Fatalf("CheckEpoch before: %v", err)
	}
	// The persisted state was taken at version 1.
	if err := c.HSet(ctx, prefix+"{b}:m", "v", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(ctx, "b", []store.Submission{{ParticipantID: "d", Score: 4, AchievedAt: 1}}, res[:1]); err != nil {
		t.Fatal(err)
	}
	if res[0].Version != 2 {
		t.Fatalf("version %d after the rollback, want 2 (reused)", res[0].Version)
	}
	if err := s.CheckEpoch(ctx); !errors.Is(err, lbredis.ErrDataLost) {
		t.Fatalf("CheckEpoch after a version went backwards: %v, want ErrDataLost", err)
	}
}

// TestCatchUpRacingWritesIsNoDataLoss: a catch-up reads a board's version,
// then takes the board's tail; writes of this same process may publish
// versions above the one it read in between. That is the board moving on,
// not Redis going back in time: the catch-up took it for a rollback, and a
// server following a watched board while submissions came in stopped with
// "Redis lost its data" (TestRedisOutage failed on it, 1 run in 5).
func TestCatchUpRacingWritesIsNoDataLoss(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	s := newStore(t, c, newPrefix(t, c), &storetest.Recorder{}, 0)
	if err := s.CreateBoard(ctx, "race", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res := make([]store.Result, 1)
		for i := range 3000 {
			sub := []store.Submission{{ParticipantID: "p", Score: uint64(i + 1), AchievedAt: 1}}
			if err := s.Submit(ctx, "race", sub, res); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for caught := false; !caught; {
		select {
		case <-done:
			caught = true
		default:
			if err := s.CatchUp(ctx, "race"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CheckEpoch(ctx); err != nil {
		t.Fatalf("after catch-ups racing this process's own writes: %v", err)
	}
}
