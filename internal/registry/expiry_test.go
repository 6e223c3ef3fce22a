package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/registry"
)

// A leaderboard's registrations go from Redis by themselves when nobody
// renews them and nobody reads the leaderboard again (a gateway that
// crashed while viewers watched a leaderboard that then completed): the
// key holding them expires with its last pair, rather than staying, with
// pairs long dead, for as long as Redis runs.
func TestAbandonedRegistrationsLeaveRedis(t *testing.T) {
	rdb, prefix := newRedis(t, nil)
	const ttl = 300 * time.Millisecond
	r := registry.New(rdb, registry.Options{Prefix: prefix, TTL: ttl})
	ctx := context.Background()
	crashed, _ := r.NewMember(registry.Gateway{ID: "crashed", URL: "ws://10.0.0.1"}, nil)
	if err := crashed.Add(ctx, "ended", "t:100"); err != nil {
		t.Fatal(err)
	}
	if err := crashed.Add(ctx, "ended", "p:p1"); err != nil {
		t.Fatal(err)
	}
	key := prefix + "reg:{ended}:seg"
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 1 {
		t.Fatalf("registration key %s: exists %d, %v", key, n, err)
	}
	pttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > ttl {
		t.Fatalf("registration key expires in %v, want within the TTL %v", pttl, ttl)
	}
	waitFor(t, "the abandoned registrations to leave Redis", func() bool {
		n, err := rdb.Exists(ctx, key).Result()
		return err == nil && n == 0
	})

	// A registration made again (a heartbeat) makes the key live again,
	// with its pairs.
	if err := crashed.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, r, "ended"); len(s.Keys) != 2 {
		t.Fatalf("segments after a heartbeat: %v", s.Keys)
	}
	if pttl, err := rdb.PTTL(ctx, key).Result(); err != nil || pttl <= 0 {
		t.Fatalf("registration key expires in %v, %v", pttl, err)
	}
}
