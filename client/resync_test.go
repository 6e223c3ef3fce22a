package client_test

import (
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
)

// TestResyncThenDropClearsResyncing: the server told the watcher to
// resync (a slow reader) and the connection dropped before the fresh
// snapshot came (a slow reader's connection is the likeliest to drop). The
// watcher reconnects and resumes from the version it holds, which the server
// answers with a catch-up update: the state is current again, but
// State.Resyncing stays true forever, because only a snapshot clears it.
func TestResyncThenDropClearsResyncing(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3, client.WithTransport(client.TransportWebSocket))
	waitWindow(t, f, w, top3)

	// Only the resync notice: the snapshot that would follow is lost with
	// the connection.
	f.mu.Lock()
	for s := range f.subs {
		f.sendLocked(s, msg{"type": "resync", "id": s.id, "reason": "slow_consumer"})
	}
	f.mu.Unlock()
	if _, err := w.WaitFor(within(t), func(s client.State) bool { return s.Resyncing }); err != nil {
		t.Fatal(err)
	}
	f.Drop(func() { f.setLocked("p5", 900, false) })
	waitWindow(t, f, w, top3) // the catch-up update brought the window up to date
	f.Set("p4", 950)          // and live updates flow again
	s := waitWindow(t, f, w, top3)
	time.Sleep(50 * time.Millisecond)
	if s = w.State(); s.Resyncing {
		t.Fatalf("window current at version %d and following live updates, but State.Resyncing is still true (requests %+v)", s.Version, f.Requests())
	}
}
