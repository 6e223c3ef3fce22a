package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/redistest"
)

func redisURLForTest(t *testing.T) string { return redistest.URL(t) }

// TestServeOnRedis: with --redis-url the service keeps rankings in Redis:
// submissions, reads and a restart (the board comes back from Redis at the
// same version, its metadata from history).
func TestServeOnRedis(t *testing.T) {
	cfg := testConfig(t)
	cfg.SubmitRate = 0
	cfg.RedisURL = redisURLForTest(t)
	cfg.RedisPrefix = redistest.Prefix(t, "lbtest")
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

func connectURL(t *testing.T, base, board string) string {
	t.Helper()
	var out struct {
		URL       string `json:"url"`
		GatewayID string `json:"gateway_id"`
	}
	if st := jsonCall(t, "GET", base+"/v1/leaderboards/"+board+"/connect", "", &out); st != 200 {
		t.Fatalf("connect: %d", st)
	}
	return out.URL
}

// TestConnectionRouter: without Redis /connect answers the server itself;
// with two servers over one Redis, it prefers the gateway whose viewers
// already watch the leaderboard, and forgets a gateway that stopped.
func TestConnectionRouter(t *testing.T) {
	solo := testConfig(t)
	addr, cancel, done := start(t, solo)
	jsonCall(t, "POST", "http://"+addr+"/v1/leaderboards", `{"leaderboard_id":"s","name":"S"}`, nil)
	if got, want := connectURL(t, "http://"+addr, "s"), "ws://"+addr+"/v1/leaderboards/s/subscribe"; got != want {
		t.Fatalf("solo connect %q, want %q", got, want)
	}
	if st, code := errorCode(t, "GET", "http://"+addr+"/v1/leaderboards/none/connect", ""); st != 404 || code != "leaderboard_not_found" {
		t.Fatalf("connect to an unknown board: %d %s", st, code)
	}
	cancel()
	<-done

	url := redisURLForTest(t)
	prefix := redistest.Prefix(t, "lbtest")
	cfg := func() Config {
		c := testConfig(t)
		c.RedisURL, c.RedisPrefix, c.RegistryTTL = url, prefix, 10*time.Second
		return c
	}
	addrA, cancelA, doneA := start(t, cfg())
	addrB, cancelB, doneB := start(t, cfg())
	defer func() { cancelB(); <-doneB }()
	a, b := "http://"+addrA, "http://"+addrB
	jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"x","name":"X"}`, nil)
	wantA := "ws://" + addrA + "/v1/leaderboards/x/subscribe"
	wantB := "ws://" + addrB + "/v1/leaderboards/x/subscribe"
	if got := connectURL(t, b, "x"); got != wantA && got != wantB {
		t.Fatalf("connect %q is neither gateway", got)
	}
	// A viewer on A: once A's segments are registered, every router sends new viewers of x to A.
	res, err := http.Get(a + "/v1/leaderboards/x/stream?kind=top&limit=10")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// Picks among equals are random: wait for 20 picks in a row of A (a chance of 2^-20 otherwise).
	deadline := time.Now().Add(15 * time.Second)
	for streak := 0; streak < 20; {
		if connectURL(t, b, "x") == wantA {
			streak++
			continue
		}
		streak = 0
		if time.Now().After(deadline) {
			t.Fatal("the router never settled on the gateway serving the leaderboard")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A stops: it leaves the registry, and the router answers B.
	res.Body.Close()
	cancelA()
	<-doneA
	if got := connectURL(t, b, "x"); got != wantB {
		t.Fatalf("after A stopped: %q, want %q", got, wantB)
	}
}
