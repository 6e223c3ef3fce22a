package fanout

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// mutedFixture is a hub over a memory store whose events can be kept from
// the hub: changes made through another API process over the same Redis
// (which this process's store publishes only once it writes to the board
// itself, or never), or changes trimmed from an outbox before this process
// read them (the Redis store skips them and publishes the next one).
type mutedFixture struct {
	*fixture
	mute bool
}

func newMutedFixture(t *testing.T, history time.Duration) *mutedFixture {
	m := &mutedFixture{fixture: &fixture{now: time.Unix(1000, 0)}}
	var hub *Hub
	m.st = memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) {
		if !m.mute {
			hub.Publish(e)
		}
	})})
	hub = New(m.st, Options{Epoch: "ep", History: history, Now: func() time.Time { return m.now }})
	m.hub = hub
	return m
}

// TestResumeFromTheCurrentVersionIsNoSnapshot: a client that resumes from
// the very version its window is at needs nothing from the log, so a log
// that has not (or never will have) the changes up to that version must not
// turn the resume into a snapshot. With several API processes over one
// Redis, a process hears of the others' changes only when it writes to the
// board itself: its log stays behind the versions its reads see, and every
// long poll from the current version was answered at once with a snapshot
// (a busy loop) instead of waiting for a change.
func TestResumeFromTheCurrentVersionIsNoSnapshot(t *testing.T) {
	f := newMutedFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 5, 100)
	spec := Spec{Kind: Top, Limit: 3}
	first := &recorder{}
	sub, err := f.hub.Subscribe(ctx, "b", "a", spec, nil, "", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.hub.Unsubscribe(sub)

	f.mute = true // changed through another process
	f.submit(t, "b", "p04", 1000, 0)
	f.mute = false

	poll := &recorder{}
	sub, err = f.hub.Subscribe(ctx, "b", "a", spec, nil, "", poll, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.hub.Unsubscribe(sub)
	since := uint64(num(poll.all()[1]["version"]))

	again := &recorder{}
	if _, err := f.hub.Subscribe(ctx, "b", "a", spec, &since, "ep", again, nil); err != nil {
		t.Fatal(err)
	}
	if fr := again.all()[1]; fr["type"] != "update" || uint64(num(fr["version"])) != since {
		t.Fatalf("resume from the current version %d answered with %v, want an update to that same version", since, fr)
	}
}

// TestChangesSkippedByTheStoreAreNotLeftOutOfACatchUp: when the store skips
// versions (the Redis store after its outbox was trimmed, or a process that
// starts following a board other processes wrote), the hub's log misses
// those changes. A catch-up across them built from the log alone would leave
// out the positions they moved, and the flush would not read the windows
// they changed: after a skip every window is read again and a catch-up
// carries all of it.
func TestChangesSkippedByTheStoreAreNotLeftOutOfACatchUp(t *testing.T) {
	f := newMutedFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 10, 100)
	spec := Spec{Kind: Top, Limit: 5}
	live := &recorder{}
	sub, err := f.hub.Subscribe(ctx, "b", "a", spec, nil, "", live, nil)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := live.all()[:2]
	since := uint64(num(snapshot[1]["version"]))
	f.submit(t, "b", "p09", 200, 0) // to rank 1
	f.hub.Flush(ctx)

	f.mute = true
	f.submit(t, "b", "p07", 1000, 0) // to rank 1: never reaches the hub
	f.mute = false
	f.now = f.now.Add(time.Second)
	f.submit(t, "b", "zz", 1, 0) // arrives at rank 12, below the window
	f.hub.Flush(ctx)
	want, _ := expected(t, f.st, "b", spec)
	if got := apply(t, live.all(), "a").list(); !slices.Equal(got, want) {
		t.Errorf("live viewer after the skipped change: %v, want %v", got, want)
	}

	check := func(when string) {
		t.Helper()
		again := &recorder{}
		if _, err := f.hub.Subscribe(ctx, "b", "a", spec, &since, "ep", again, nil); err != nil {
			t.Fatal(err)
		}
		frames := append(slices.Clone(snapshot), again.all()[1])
		if again.all()[1]["type"] == "snapshot" {
			frames = again.all()[:2]
		}
		if got := apply(t, frames, "a").list(); !slices.Equal(got, want) {
			t.Errorf("%s: resume from %d answered with %v: window\n got %v\nwant %v", when, since, again.all()[1], got, want)
		}
	}
	// Resumes to the window as read after the skip.
	f.hub.Unsubscribe(sub)
	check("from the snapshot before the skip")
	since, snapshot = uint64(num(live.all()[2]["version"])), live.all()[:3]
	check("from the update before the skip")
}
