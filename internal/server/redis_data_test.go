package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// TestRedisLosingItsDataStopsTheServer: Redis loses everything while the
// server runs (a restart without persistence; FLUSHALL on a redis-server of
// the test's own is the same for the data). The server must not go on
// serving its leaderboards as missing under its old epoch: it notices that
// the epoch key is gone within a few sweeps and stops with an error. The
// next start rebuilds the leaderboard from the audit log, with every
// acknowledged score, at the same version, in a new epoch.
func TestRedisLosingItsDataStopsTheServer(t *testing.T) {
	url, _ := ownRedis(t)
	cfg := testConfig(t)
	cfg.SubmitRate, cfg.RedisURL, cfg.RedisPrefix = 0, url, "lb:"
	addr, cancel, done := start(t, cfg)
	defer cancel()
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"r","name":"R"}`, nil); st != 201 {
		t.Fatal(st)
	}
	const n = 10
	for i := range n {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/r/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, 100+i), nil); st != 200 {
			t.Fatalf("submission %d: %d", i, st)
		}
	}
	before := readAll(t, base, "r")

	c, _ := redisstore.NewClient(url)
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lost") {
			t.Fatalf("Run after Redis lost its data: %v, want an error saying so", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the server still runs 15 s after Redis lost its data")
	}

	cfg2 := cfg
	addr2, cancel2, done2 := start(t, cfg2)
	defer func() { cancel2(); <-done2 }()
	after := readAll(t, "http://"+addr2, "r")
	if after.Epoch == before.Epoch {
		t.Fatalf("epoch %s kept across the loss of Redis's data", after.Epoch)
	}
	if after.Version != before.Version || len(after.Entries) != n {
		t.Fatalf("rebuilt at version %d with %d entries, was version %d with %d", after.Version, len(after.Entries), before.Version, n)
	}
	for i := range after.Entries {
		if after.Entries[i].ParticipantID != before.Entries[i].ParticipantID || after.Entries[i].Score != before.Entries[i].Score {
			t.Fatalf("entry %d rebuilt as %+v, was %+v", i, after.Entries[i], before.Entries[i])
		}
	}
}

// TestDamagedLeaderboardDoesNotHoldUpTheOthers: one leaderboard's sorted set
// is gone from Redis while its participant hash is still there (what an
// eviction policy that may evict any key does). Submitting a known
// participant to it then fails in the script on every attempt: that is not
// Redis being unreachable, so it is answered 503 at once, not queued (202)
// at the head of the write queue, where every later submission to every
// leaderboard would wait behind it forever; nor does it open the circuit
// breaker for the other leaderboards.
func TestDamagedLeaderboardDoesNotHoldUpTheOthers(t *testing.T) {
	url, _ := ownRedis(t)
	cfg := testConfig(t)
	cfg.DataDir = ""
	cfg.SubmitRate, cfg.RedisURL, cfg.RedisPrefix = 0, url, "lb:"
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	for _, id := range []string{"hurt", "fine"} {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards", fmt.Sprintf(`{"leaderboard_id":%q,"name":"x"}`, id), nil); st != 201 {
			t.Fatal(st)
		}
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/"+id+"/scores", `{"participant_id":"p","score":1}`, nil); st != 200 {
			t.Fatal(st)
		}
	}
	c, _ := redisstore.NewClient(url)
	defer c.Close()
	if err := c.Del(context.Background(), "lb:{hurt}:z").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // more than the breaker's failures in a row
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/hurt/scores", fmt.Sprintf(`{"participant_id":"p","score":%d}`, 2+i), nil); st != 503 {
			t.Fatalf("submission %d to the damaged leaderboard: %d, want 503", i, st)
		}
	}
	var res struct {
		Score uint64 `json:"score"`
	}
	if st := jsonCall(t, "POST", base+"/v1/leaderboards/fine/scores", `{"participant_id":"p","score":7}`, &res); st != 200 || res.Score != 7 {
		t.Fatalf("submission to the intact leaderboard: %d %+v, want 200", st, res)
	}
	if got := readAll(t, base, "fine"); len(got.Entries) != 1 || got.Entries[0].Score != 7 {
		t.Fatalf("intact leaderboard: %+v", got.Entries)
	}
}
