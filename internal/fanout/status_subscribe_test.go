package fanout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/store"
)

// lastStatus is the status a connection last heard of ("active" before any
// notice, the status a viewer assumes).
func lastStatus(r *recorder) string {
	st := "active"
	for _, fr := range r.all() {
		if fr["type"] == "status" {
			st, _ = fr["status"].(string)
		}
	}
	return st
}

func TestNewViewerOfAPausedLeaderboardIsToldAtOnce(t *testing.T) {
	f := newFixture(t, time.Minute)
	status := map[string]string{"p": "paused", "c": "completed", "a": "active"}
	f.hub.opts.Status = func(board string) string { return status[board] }
	ctx := context.Background()
	for board, want := range status {
		f.st.CreateBoard(ctx, board, store.BoardOptions{})
		f.submit(t, board, "p1", 10, 0)
		conn := &recorder{}
		if _, err := f.hub.Subscribe(ctx, board, "a", Spec{Kind: Top, Limit: 3}, nil, "", conn, nil); err != nil {
			t.Fatal(err)
		}
		frames := conn.all()
		if want == "active" {
			if len(frames) != 2 {
				t.Fatalf("%s: %d frames at subscribe, want subscribed and snapshot only: %v", board, len(frames), frames)
			}
			continue
		}
		if len(frames) != 3 || frames[0]["type"] != "subscribed" || frames[1]["type"] != "snapshot" || frames[2]["type"] != "status" {
			t.Fatalf("%s: frames at subscribe %v, want subscribed, snapshot, status", board, frames)
		}
		if frames[2]["status"] != want || num(frames[2]["version"]) != num(frames[1]["version"]) {
			t.Fatalf("%s: status notice %v after snapshot %v", board, frames[2], frames[1])
		}
	}
}

// Status changes announced while viewers subscribe: whatever the
// interleaving, the last status every viewer heard is the leaderboard's
// final one (a notice read before a change must not arrive after it).
func TestViewersSubscribingDuringStatusChangesEndOnTheCurrentStatus(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "b", store.BoardOptions{})
	f.submit(t, "b", "p1", 10, 0)
	var current atomic.Value
	current.Store("active")
	f.hub.opts.Status = func(string) string { return current.Load().(string) }
	// announce is what the leaderboard service does: record, then tell the hub.
	announce := func(st string) {
		current.Store(st)
		f.hub.Status("b", st, 0)
	}
	conns := make([]*recorder, 400)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			announce([]string{"paused", "active"}[i%2])
		}
		announce("paused")
	}()
	for i := range conns {
		conns[i] = &recorder{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.hub.Subscribe(ctx, "b", fmt.Sprint("s", i%3), Spec{Kind: Top, Limit: 1 + i%3}, nil, "", conns[i], nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, c := range conns {
		if st := lastStatus(c); st != "paused" {
			t.Fatalf("viewer %d last heard %q, the leaderboard is paused", i, st)
		}
	}
}

func TestRemoteNewViewerIsToldAStatusOtherThanActive(t *testing.T) {
	listed := map[string]string{"b1": "paused", "b2": "active"}
	var mu sync.Mutex
	f := newRemoteFixture(t, RemoteOptions{Status: func(board string) string {
		mu.Lock()
		defer mu.Unlock()
		return listed[board]
	}})
	ctx := context.Background()
	for _, b := range []string{"b1", "b2"} {
		if err := f.snaps.Put(ctx, b, "t:10", 5, snapBody(5)); err != nil {
			t.Fatal(err)
		}
	}
	statuses := func(l *frameLog) []string {
		var got []string
		for _, fr := range l.all() {
			if fr.Type == "status" {
				got = append(got, string(fr.AppendJSON(nil)))
			}
		}
		return got
	}
	subscribe := func(board string) *frameLog {
		t.Helper()
		l := &frameLog{}
		if _, err := f.r.Subscribe(ctx, board, "a", top10, nil, "", l, nil); err != nil {
			t.Fatal(err)
		}
		return l
	}
	// From the leaderboard list: b1 is paused, b2 active.
	if got := statuses(subscribe("b1")); len(got) != 1 || got[0] != string(StatusFrame("paused", 5).Body) {
		t.Fatalf("viewer of a paused leaderboard got status notices %q", got)
	}
	if got := statuses(subscribe("b2")); len(got) != 0 {
		t.Fatalf("viewer of an active leaderboard got status notices %q", got)
	}
	// A status frame received is newer than the list (refreshed by a sweep):
	// it wins, both ways.
	f.r.HandleFrame(bus.Frame{Board: "b1", Kind: bus.KindStatus, Version: 7, Payload: StatusFrame("active", 7).Body})
	f.r.HandleFrame(bus.Frame{Board: "b2", Kind: bus.KindStatus, Version: 8, Payload: StatusFrame("completed", 8).Body})
	if got := statuses(subscribe("b1")); len(got) != 0 {
		t.Fatalf("viewer of a resumed leaderboard (list not yet refreshed) got %q", got)
	}
	if got := statuses(subscribe("b2")); len(got) != 1 || got[0] != string(StatusFrame("completed", 8).Body) {
		t.Fatalf("viewer of a completed leaderboard (list not yet refreshed) got %q", got)
	}
}
