package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/redistest"
)

// TestBadIntervalsAreStartUpErrors: a flag value that would give a ticker a
// zero or negative period (time.NewTicker panics in a background goroutine
// after the server is listening) is refused by Run with an error naming the
// flag, before anything starts.
func TestBadIntervalsAreStartUpErrors(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Config)
		flag string
	}{
		{"sweep 0", func(c *Config) { c.SweepInterval = 0 }, "--sweep-interval"},
		{"sweep negative", func(c *Config) { c.SweepInterval = -time.Second }, "--sweep-interval"},
		{"flush 1ns", func(c *Config) { c.FlushInterval = time.Nanosecond }, "--flush-interval"},
		{"flush 3ns, 4 phases", func(c *Config) { c.FlushInterval = 3 * time.Nanosecond }, "--flush-interval"},
		{"phases past the interval", func(c *Config) { c.FlushPhases = 200_000_000 }, "--flush-phases"},
		{"phases 0", func(c *Config) { c.FlushPhases = 0 }, "--flush-phases"},
		{"flush 0", func(c *Config) { c.FlushInterval = 0 }, "--flush-interval"},
		{"registry ttl 2ns", func(c *Config) {
			c.RedisURL, c.RedisPrefix = redisURLForTest(t), redistest.Prefix(t, "lbcfg")
			c.RegistryTTL = 2 * time.Nanosecond
		}, "--registry-ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DataDir = ""
			tc.set(&cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.flag) {
					t.Fatalf("Run: %v, want an error naming %s", err, tc.flag)
				}
			case <-time.After(3 * time.Second):
				cancel()
				<-done
				t.Fatalf("Run started (and served) with this value instead of refusing it naming %s", tc.flag)
			}
		})
	}
}
