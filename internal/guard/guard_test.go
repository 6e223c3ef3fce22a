package guard

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
	"github.com/lbhq/leaderboard/internal/store/storetest"
)

// The guard changes nothing while the backend works: the whole store suite.
func TestGuardedStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, sink store.EventSink) store.Store {
		return Store(memory.New(memory.Options{Sink: sink}), bus.NewBreaker(bus.BreakerOptions{Name: "test", Healthy: StoreHealthy}))
	})
}

// downStore fails every Stats call while down is set, and counts calls.
type downStore struct {
	store.Store
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("connection refused")

func (d *downStore) Stats(ctx context.Context, board string) (store.Stats, error) {
	d.calls.Add(1)
	if d.down.Load() {
		return store.Stats{}, errDown
	}
	return d.Store.Stats(ctx, board)
}

func TestBreakerOpensFailsFastAndCloses(t *testing.T) {
	ctx := context.Background()
	inner := &downStore{Store: memory.New(memory.Options{})}
	inner.CreateBoard(ctx, "b", store.BoardOptions{})
	g := Store(inner, bus.NewBreaker(bus.BreakerOptions{Name: "redis", Failures: 3, OpenFor: 50 * time.Millisecond, Healthy: StoreHealthy}))

	// The store's own answers never open it.
	for i := 0; i < 10; i++ {
		if _, err := g.Stats(ctx, "missing"); !errors.Is(err, store.ErrBoardNotFound) {
			t.Fatalf("not found: %v", err)
		}
	}
	inner.down.Store(true)
	for i := 0; i < 3; i++ {
		if _, err := g.Stats(ctx, "b"); !errors.Is(err, errDown) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := inner.calls.Load()
	for i := 0; i < 100; i++ {
		if _, err := g.Stats(ctx, "b"); !errors.Is(err, bus.ErrBreakerOpen) {
			t.Fatalf("open breaker: %v", err)
		}
	}
	if inner.calls.Load() != before {
		t.Fatal("an open breaker let calls through")
	}
	inner.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g.Stats(ctx, "b")
		if err == nil {
			break
		}
		if !errors.Is(err, bus.ErrBreakerOpen) || time.Now().After(deadline) {
			t.Fatalf("after the backend returned: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := g.Stats(ctx, "b"); err != nil {
		t.Fatalf("closed again: %v", err)
	}
}

// catchUpStore counts catch-ups (the Redis store's follow of other
// processes' changes).
type catchUpStore struct {
	downStore
	catchUps atomic.Int64
}

func (c *catchUpStore) CatchUp(ctx context.Context, board string) error {
	c.catchUps.Add(1)
	return nil
}

// A catch-up goes through the breaker while it is closed, and is refused
// at once, not let through as the probe, while it is open or half-open: a
// catch-up reading a backlog would hold the one probe for seconds while every
// request is refused. The API's own call probes and closes it.
func TestCatchUpNeverTakesTheProbe(t *testing.T) {
	ctx := context.Background()
	inner := &catchUpStore{downStore: downStore{Store: memory.New(memory.Options{})}}
	inner.CreateBoard(ctx, "b", store.BoardOptions{})
	br := bus.NewBreaker(bus.BreakerOptions{Name: "redis", Failures: 2, OpenFor: 20 * time.Millisecond, Healthy: StoreHealthy})
	g := Store(inner, br).(interface {
		store.Store
		CatchUp(context.Context, string) error
	})
	if err := g.CatchUp(ctx, "b"); err != nil || inner.catchUps.Load() != 1 {
		t.Fatalf("closed: %v, %d calls", err, inner.catchUps.Load())
	}
	inner.down.Store(true)
	for range 2 {
		g.Stats(ctx, "b")
	}
	for br.State() != "half-open" {
		if err := g.CatchUp(ctx, "b"); !errors.Is(err, bus.ErrBreakerOpen) {
			t.Fatalf("open: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.CatchUp(ctx, "b"); !errors.Is(err, bus.ErrBreakerOpen) || inner.catchUps.Load() != 1 {
		t.Fatalf("half-open: %v, %d calls", err, inner.catchUps.Load())
	}
	inner.down.Store(false)
	if _, err := g.Stats(ctx, "b"); err != nil || br.State() != "closed" {
		t.Fatalf("the API's probe: %v, breaker %s", err, br.State())
	}
	if err := g.CatchUp(ctx, "b"); err != nil || inner.catchUps.Load() != 2 {
		t.Fatalf("closed again: %v, %d calls", err, inner.catchUps.Load())
	}
}
