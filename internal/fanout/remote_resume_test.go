package fanout

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A viewer resumes on a gateway whose copy of the segment is a frame behind
// the gateway it came from (both consume the same frames, one a little
// later). The client applied version 9; this gateway is at 7 and the update
// 7->9 is on its way (the fan-out stored 9 in segsnap before producing it).
// The resume must continue the client's chain from 9, not send it back to
// an older snapshot (5) and repeat updates 5->7 and 7->9 it already applied
// (docs/SCALING.md: "resume on the other from its last version with no
// missing or repeated version"; docs/LIVE.md: "never an older snapshot").
func TestResumeAheadOfGatewayGetsNoOlderSnapshot(t *testing.T) {
	f := newRemoteFixture(t, RemoteOptions{})
	ctx := context.Background()
	f.watchedAt7(t)
	// The fan-out stores 9, then produces 7->9; another gateway already
	// forwarded it to the client, this one has not received it yet.
	if err := f.snaps.Put(ctx, "b1", "t:10", 9, snapBody(9)); err != nil {
		t.Fatal(err)
	}
	s := &frameLog{}
	since := uint64(9)
	done := make(chan error, 1)
	go func() {
		_, err := f.r.Subscribe(ctx, "b1", "r", top10, &since, "e1", s, nil)
		done <- err
	}()
	waitUntil(t, "the resume to be answered or to wait", func() bool {
		return len(s.all()) > 0 || f.r.waiting("b1", "t:10")
	})
	f.r.HandleFrame(upd("b1", "t:10", 7, 9))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 9, 10))
	for _, fr := range s.all() {
		if (fr.Type == "snapshot" || fr.Type == "update") && fr.Version <= since {
			t.Fatalf("resumed from v%d, got %s v%d: frames %v", since, fr.Type, fr.Version, describe(s.all()))
		}
	}
	check(t, s.all(), "r", step{"subscribed", 0, 9}, step{"update", 9, 10})
}

// waiting reports whether a Subscribe is parked on the segment (test helper).
func (r *Remote) waiting(board, key string) bool {
	r.mu.Lock()
	rb := r.boards[board]
	r.mu.Unlock()
	if rb == nil {
		return false
	}
	rb.bh.mu.Lock()
	defer rb.bh.mu.Unlock()
	seg := rb.segs[key]
	return seg != nil && seg.refs > len(seg.subs)
}

// One update frame is lost (the frame producer drops a frame it could not
// deliver in time, or the fan-out stopped between storing the snapshot and
// producing the update) and the leaderboard then stays quiet: no later frame
// shows the gap. Once the retained frames have aged out, a new viewer of the
// segment on this gateway finds segsnap ahead of the frames and waits for
// frames that never come: it is refused (ErrSnapshotUnavailable) on every
// attempt, although segsnap holds exactly the snapshot it needs.
func TestLostFrameOnQuietBoardRefusesNewViewers(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	f := newRemoteFixture(t, RemoteOptions{
		Now: func() time.Time { return time.Unix(0, now.Load()) }, History: time.Minute, SnapshotWait: 300 * time.Millisecond,
	})
	ctx := context.Background()
	f.watchedAt7(t)
	// The fan-out stored 8 and produced 7->8, which was dropped.
	if err := f.snaps.Put(ctx, "b1", "t:10", 8, snapBody(8)); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Minute))
	for i := range 2 {
		s := &frameLog{}
		if _, err := f.r.Subscribe(ctx, "b1", "late", top10, nil, "", s, nil); err != nil {
			t.Fatalf("new viewer %d: %v", i, err)
		}
		got := s.all()
		if len(got) < 2 || got[1].Type != "snapshot" {
			t.Fatalf("new viewer %d: %v", i, describe(got))
		}
	}
}

// watchedAt7 gives the fixture's gateway a viewer of top 10 of b1, whose
// segment it loaded from segsnap at 5 and then followed to 7.
func (f *remoteFixture) watchedAt7(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := f.snaps.Put(ctx, "b1", "t:10", 5, snapBody(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Subscribe(ctx, "b1", "first", top10, nil, "", &frameLog{}, nil); err != nil {
		t.Fatal(err)
	}
	f.r.HandleFrame(upd("b1", "t:10", 5, 7))
}
