// Package redistest gives tests the real Redis of the machine and a key
// prefix of their own, so that tests running in parallel packages never see
// each other's keys.
//
// The Redis is LEADERBOARD_TEST_REDIS_URL, by default redis://127.0.0.1:6379/0
// (scripts/test.sh starts it when it is down). When it cannot be reached a
// test is skipped, or fails when the environment variable CI is set (and not
// "0" or "false"): CI must never pass by skipping.
package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// URL returns the test Redis's URL, or skips (fails in CI) when it does not answer.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("LEADERBOARD_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := goredis.ParseURL(url)
	if err == nil {
		c := goredis.NewClient(opts)
		err = c.Ping(context.Background()).Err()
		c.Close()
	}
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("Redis at %s: %v (scripts/test.sh starts it)", url, err)
		}
		t.Skipf("Redis at %s: %v", url, err)
	}
	return url
}

// Addr is URL's host:port, for clients configured by address.
func Addr(t testing.TB) string {
	t.Helper()
	opts, err := goredis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return opts.Addr
}

// Prefix returns a key prefix no other test uses ("<name><random>:"); every
// key under it is deleted when the test ends.
func Prefix(t testing.TB, name string) string {
	t.Helper()
	url := URL(t)
	prefix := fmt.Sprintf("%s%d:", name, rand.Uint64())
	t.Cleanup(func() {
		opts, err := goredis.ParseURL(url)
		if err != nil {
			return
		}
		c := goredis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return prefix
}
