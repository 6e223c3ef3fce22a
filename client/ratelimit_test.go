package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/server"
)

// TestUpgradeRateLimitIsNotAFallback: the server limits WebSocket
// upgrades and SSE streams per client IP (--upgrade-rate/--upgrade-burst,
// 429 rate_limited + Retry-After: "Clients reconnect with backoff anyway;
// this spreads out a reconnect storm from one address", docs/LIVE.md). A
// burst of watchers from one address (an app with several windows, or every
// viewer behind one NAT reconnecting after a restart) over the burst gets
// 429 on the upgrade; the watcher takes it for "WebSocket cannot be used",
// tries SSE (429 too: the same limiter) and settles on long polling until its
// next WebSocket retry (30 s by default, an hour here), instead of waiting
// the Retry-After and upgrading.
func TestUpgradeRateLimitIsNotAFallback(t *testing.T) {
	rs := startReal(t, func(c *server.Config) { c.UpgradeRate, c.UpgradeBurst = 2, 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://" + rs.addr
	admin := client.New(base)
	if _, err := admin.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "rl", Name: "rl"}); err != nil {
		t.Fatal(err)
	}
	c := client.New(base, client.WithWebSocketRetry(time.Hour))
	var ws []*client.Watcher
	for i := 0; i < 6; i++ {
		w := c.WatchTop(ctx, "rl", 5)
		defer w.Close()
		ws = append(ws, w)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for i, w := range ws {
		if s, err := w.WaitFor(wctx, func(s client.State) bool { return s.Ready && s.Transport == client.TransportWebSocket }); err != nil {
			var trs []string
			for _, w := range ws {
				trs = append(trs, w.Transport())
			}
			t.Fatalf("watcher %d: %v: on %q; transports of all: %v (upgrade limit 2/s, burst 2: every watcher should be on WebSocket within a few seconds)", i, err, s.Transport, fmt.Sprint(trs))
		}
	}
}
