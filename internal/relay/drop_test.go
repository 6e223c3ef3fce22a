package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/store"
)

// TestRelayEventsBeforeDrop: a leaderboard that completes is sealed, its
// final ranking archived, and then dropped from the ranking store
// (board.Service.complete). The changes accepted before it was sealed are in
// its outbox; the relay must still deliver them to the bus (the audit log of
// the history role and the viewers' last updates come from there), even
// when its next round comes after the drop (a busy relay, or the bus down
// at that moment).
func TestRelayEventsBeforeDrop(t *testing.T) {
	st := redisStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	defer local.Close()
	col := &collector{t: t, last: map[string]uint64{}, epochs: map[string]bool{}}
	consume(ctx, t, local, col.handler())
	opts := Options{Client: st.Client(), CursorKey: "relay-test-cursors:" + fmt.Sprint(rand.Uint64()), Interval: 5 * time.Millisecond}
	defer st.Client().Del(context.Background(), opts.CursorKey)
	r := New(st, local.Producer(), opts)

	if err := st.CreateBoard(ctx, "done", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	submit(t, st, []string{"done"}, 5)
	// Finalize: seal, (archive), drop; the relay's next round comes after.
	if _, err := st.Seal(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	if err := st.DropBoard(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the 5 changes accepted before the leaderboard completed", func() bool { return col.count() == 5 })
	// Once produced, the dropped leaderboard's outbox goes.
	if _, err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Client().Exists(ctx, st.OutboxKey("done")).Result(); err != nil || n != 0 {
		t.Fatalf("the dropped leaderboard's outbox is still there after it was produced: %d %v", n, err)
	}
	if ro, ok := any(st).(interface {
		ListRetired(context.Context) ([]string, error)
	}); ok {
		if ids, err := ro.ListRetired(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("ListRetired = %v, %v after the outbox was produced", ids, err)
		}
	}
}
