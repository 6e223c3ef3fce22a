package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// TestOutageLongerThanTheOutbox: the bus is down while a leaderboard makes
// more changes than its outbox keeps (OutboxMaxLen). When the bus returns,
// the relay delivers what the outbox still holds, in order, up to the last
// change, and counts the events it can no longer deliver (and logs them):
// exactly those the consumers never got.
func TestOutageLongerThanTheOutbox(t *testing.T) {
	c, err := redisstore.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, Prefix: redistest.Prefix(t, "lbrelaytrim"), OutboxMaxLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := st.CreateBoard(ctx, "hot", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	defer local.Close()
	var (
		mu       sync.Mutex
		received int
		last     uint64
	)
	consume(ctx, t, local, bus.HandlerFuncs{OnEvents: func(_ context.Context, _ int32, evs []bus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			if e.Version <= last {
				t.Errorf("version %d after %d", e.Version, last)
			}
			last = e.Version
			received++
		}
		return nil
	}})
	prod := &flaky{EventProducer: local.Producer()}
	opts := Options{Client: c, CursorKey: "relay-test-cursors:" + fmt.Sprint(rand.Uint64()), Interval: 5 * time.Millisecond}
	defer c.Del(context.Background(), opts.CursorKey)
	r := New(st, prod, opts)
	go r.Run(ctx)

	submit(t, st, []string{"hot"}, 10)
	waitFor(t, "the first 10 events", func() bool { mu.Lock(); defer mu.Unlock(); return received == 10 })
	prod.down.Store(true)
	submit(t, st, []string{"hot"}, 1000)
	prod.down.Store(false)
	// The consumer can hold the last event before the relay, which counts
	// what it produced and skipped once the bus acknowledged the batch (after
	// saving its cursor in Redis), has counted it: wait for both.
	waitFor(t, "version 1010, and the relay's counters of it", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return last == 1010 && r.Stats().Produced == int64(received)
	})
	mu.Lock()
	defer mu.Unlock()
	lost := int64(1010 - received)
	if lost == 0 {
		t.Fatal("nothing was trimmed: the outage did not outlast the outbox")
	}
	if got := r.Stats().Skipped; got != lost {
		t.Fatalf("the relay counted %d events skipped; the consumer missed %d", got, lost)
	}
	t.Logf("%d of 1010 delivered, %d counted lost", received, lost)
}
