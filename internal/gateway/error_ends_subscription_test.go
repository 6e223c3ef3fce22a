package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/server"
)

func gaugeOf(t *testing.T, addr, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics(t, addr), "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil {
			return v
		}
	}
	return -1
}

// TestClosedConnectionsFreeSegments: connections with several
// subscriptions (some sharing windows, some replaced, one resubscribed
// after unsubscribe) close; every segment must leave the hub.
func TestClosedConnectionsFreeSegments(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "lk")
	var cs []*wsClient
	for i := 0; i < 10; i++ {
		c, _, err := dial(t, addr, "lk", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			c.send(t, s.message())
		}
		c.send(t, `{"type":"subscribe","id":"t1","kind":"participant","participant_id":"p5"}`)
		c.send(t, `{"type":"unsubscribe","id":"t3"}`)
		c.send(t, `{"type":"subscribe","id":"dup","kind":"top","limit":10}`)
		cs = append(cs, c)
	}
	waitFor(t, "snapshots", func() bool {
		for _, c := range cs {
			if firstOfType(c.all(), "snapshot", "dup") == nil {
				return false
			}
		}
		return true
	})
	// Submissions go on while the connections close; the test waits for
	// them before it ends (and its server stops), or they would fail
	// against a server that is shutting down.
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		submitRandom(t, addr, "lk", 2, 50)
	}()
	time.Sleep(200 * time.Millisecond)
	if n := gaugeOf(t, addr, "leaderboard_live_segments"); n <= 0 {
		t.Fatalf("segments %v with viewers", n)
	}
	for _, c := range cs {
		c.conn.NetConn().Close()
	}
	<-submitted
	waitFor(t, "segments freed", func() bool {
		return gaugeOf(t, addr, "leaderboard_live_segments") == 0 && gaugeOf(t, addr, "leaderboard_live_websocket_connections") == 0
	})
}

// TestErrorWithIDEndsSubscription: docs/LIVE.md: an error with an id is
// about that subscription, "which then does not exist, even if the id named
// one before". A malformed unsubscribe (or a message of an unknown type)
// carrying the id of a live subscription is answered with such an error,
// yet the subscription lives on and keeps sending updates.
func TestErrorWithIDEndsSubscription(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "er")
	c, _, err := dial(t, addr, "er", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"type":"subscribe","id":"a","kind":"top","limit":3}`)
	waitFor(t, "snapshot", func() bool { return firstOfType(c.all(), "snapshot", "a") != nil })
	c.send(t, `{"type":"unsubscribe","id":"a","limit":"x"}`)
	waitFor(t, "error", func() bool { return firstOfType(c.all(), "error", "a") != nil })
	n := len(c.all())
	post(t, "http://"+addr+"/v1/leaderboards/er/scores", `{"participant_id":"zz","score":999999}`)
	time.Sleep(300 * time.Millisecond)
	for _, m := range c.all()[n:] {
		if m["id"] == "a" {
			t.Fatalf("after error %v for a, still got %v", firstOfType(c.all(), "error", "a"), m)
		}
	}
}

// TestStatusOnCompletion: a viewer of a leaderboard that completes
// gets status completed, and its window stays consistent with REST.
func TestStatusOnCompletion(t *testing.T) {
	addr := startServer(t, func(c *server.Config) {})
	seed(t, addr, "fin")
	c, _, err := dial(t, addr, "fin", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		c.send(t, s.message())
	}
	waitFor(t, "snapshots", func() bool { return firstOfType(c.all(), "snapshot", "a4") != nil })
	submitRandom(t, addr, "fin", 2, 20)
	post(t, "http://"+addr+"/v1/leaderboards/fin/finalize", `{}`)
	waitFor(t, "status", func() bool { return firstOfType(c.all(), "status", "") != nil })
	time.Sleep(300 * time.Millisecond)
	st := firstOfType(c.all(), "status", "")
	if st["status"] != "completed" {
		t.Fatalf("status %v", st)
	}
	c.send(t, `{"type":"subscribe","id":"late","kind":"top","limit":10}`)
	waitFor(t, "late snapshot", func() bool { return firstOfType(c.all(), "snapshot", "late") != nil })
	checkConverged(t, addr, "fin", func(id string) []map[string]any { return c.all() })
	t.Logf("status %v; late snapshot version %v", st, firstOfType(c.all(), "snapshot", "late")["version"])
}
