package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/server"
)

// TestSSEAndLongPollsMeetMaxConnections: docs/API.md ("Concurrency cap"):
// open SSE streams and long polls are not counted in --max-inflight because
// "they have --max-connections and the upgrade limit". With
// --max-connections 2, a client must not hold more than 2 live streams.
func TestSSEAndLongPollsMeetMaxConnections(t *testing.T) {
	addr := startServer(t, func(c *server.Config) { c.MaxConnections = 2 })
	seed(t, addr, "cap")
	open := 0
	for i := 0; i < 6; i++ {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/leaderboards/cap/stream", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if res.StatusCode == 200 {
			open++
		}
	}
	page := getJSON(t, "http://"+addr+"/v1/leaderboards/cap/rankings?limit=10")
	version, epoch := num(page["version"]), page["epoch"]
	polls := make(chan int, 6)
	for i := 0; i < 6; i++ {
		go func() {
			res, err := http.Get(fmt.Sprintf("http://%s/v1/leaderboards/cap/updates?limit=10&since_version=%d&epoch=%s&timeout_ms=1500", addr, version, epoch))
			if err != nil {
				polls <- 0
				return
			}
			res.Body.Close()
			polls <- res.StatusCode
		}()
	}
	held := 0
	for i := 0; i < 6; i++ {
		select {
		case code := <-polls:
			if code == 204 { // held until its timeout
				held++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("long polls did not end")
		}
	}
	if open > 2 || open+held > 2 {
		t.Fatalf("--max-connections 2: %d SSE streams open and %d long polls held", open, held)
	}
}
