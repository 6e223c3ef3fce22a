package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

func redisURLForTest(t *testing.T) string {
	url := os.Getenv("LEADERBOARD_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := redisstore.NewClient(url)
	if err == nil {
		err = c.Ping(context.Background()).Err()
		c.Close()
	}
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("Redis at %s: %v", url, err)
		}
		t.Skipf("Redis at %s: %v", url, err)
	}
	return url
}

// TestServeOnRedis: with --redis-url the service keeps rankings in Redis:
// submissions, reads and a restart (the board comes back from Redis at the
// same version, its metadata from history).
func TestServeOnRedis(t *testing.T) {
	cfg := testConfig(t)
	cfg.SubmitRate = 0
	cfg.RedisURL = redisURLForTest(t)
	cfg.RedisPrefix = fmt.Sprintf("lbtest%d:", rand.Uint64())
	t.Cleanup(func() {
		c, _ := redisstore.NewClient(cfg.RedisURL)
		ctx := context.Background()
		keys, _ := c.Keys(ctx, cfg.RedisPrefix+"*").Result()
		if len(keys) > 0 {
			for _, k := range keys {
				c.Del(ctx, k)
			}
		}
		c.Close()
	})
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"r","name":"R","sort_order":"asc"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for i := 0; i < 50; i++ {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/r/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d,"timestamp":%d}`, i, 9007199254740991-uint64(i%5), 1700000000000+i%3), nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	before := readAll(t, base, "r")
	if before.Version != 50 || len(before.Entries) != 50 || before.Entries[0].Score != 9007199254740991-4 {
		t.Fatalf("rankings on Redis: version %d, %d entries, first %+v", before.Version, len(before.Entries), before.Entries[0])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	addr, cancel, done = start(t, cfg)
	defer func() { cancel(); <-done }()
	after := readAll(t, "http://"+addr, "r")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after restart:\n got %+v\nwant %+v", after, before)
	}
}
