package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
	"github.com/lbhq/leaderboard/internal/segsnap"
)

// A gateway over a fanout.Remote serves WebSocket viewers from fan-out frames
// on the bus and snapshots in Redis: subscribe, updates, a gap (answered with
// a fresh snapshot), and a resume from the retained frames.
func TestWebSocketOverRemote(t *testing.T) {
	addr := os.Getenv("LEADERBOARD_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
			t.Fatalf("Redis at %s is unreachable: %v", addr, err)
		}
		t.Skipf("Redis at %s is unreachable: %v", addr, err)
	}
	prefix := fmt.Sprintf("test:gwremote:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	snaps := segsnap.New(rdb, prefix)
	l := bus.NewLocal(bus.LocalOptions{})
	remote := fanout.NewRemote(fanout.RemoteOptions{Snapshots: snaps, Epoch: "e1"})
	fc := l.NewFrameConsumer(remote.HandleFrame)
	t.Cleanup(fc.Close)
	remote.SetFrames(fc)
	g := gateway.New(remote, gateway.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeWebSocket(w, r, "b1"); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.Shutdown)
	host := strings.TrimPrefix(srv.URL, "http://")

	entry := func(score int) string {
		return fmt.Sprintf(`[{"rank":1,"participant_id":"p1","score":%d,"achieved_at":1}]`, score)
	}
	snap := func(v uint64) []byte {
		return fmt.Appendf(nil, `,"version":%d,"epoch":"e1","offset":0,"size":1,"entries":%s}`, v, entry(int(v)))
	}
	update := func(prev, v uint64) {
		l.PublishFrame(bus.Frame{Board: "b1", Segment: "t:3", Kind: bus.KindUpdate, PrevVersion: prev, Version: v,
			Payload: fmt.Appendf(nil, `,"prev_version":%d,"version":%d,"offset":0,"size":1,"changes":%s}`, prev, v, entry(int(v)))})
	}
	if err := snaps.Put(ctx, "b1", "t:3", 5, snap(5)); err != nil {
		t.Fatal(err)
	}

	c, _, err := dial(t, host, "b1", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"type":"subscribe","id":"a","kind":"top","limit":3}`)
	waitFor(t, "subscribed and snapshot", func() bool { return len(c.all()) >= 2 })
	update(5, 6)
	update(5, 6) // duplicate
	// Frames 6 -> 9 are lost; the fan-out stored 9 before producing 9 -> 10.
	if err := snaps.Put(ctx, "b1", "t:3", 9, snap(9)); err != nil {
		t.Fatal(err)
	}
	update(9, 10)
	waitFor(t, "the update after the gap", func() bool { return replay(t, c.all(), "a").version == 10 })
	var types []string
	for _, m := range c.all() {
		types = append(types, fmt.Sprintf("%s %d", m["type"], num(m["version"])))
	}
	if got := strings.Join(types, ", "); got != "subscribed 5, snapshot 5, update 6, snapshot 9, update 10" {
		t.Fatalf("messages: %s", got)
	}
	if w := replay(t, c.all(), "a"); w.entries[1] != "p1:10" {
		t.Fatalf("window: %+v", w)
	}

	// A viewer resuming at 9 gets the retained update only.
	c2, _, err := dial(t, host, "b1", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.send(t, `{"type":"subscribe","id":"r","kind":"top","limit":3,"since_version":9,"epoch":"e1"}`)
	waitFor(t, "the resume", func() bool { return len(c2.all()) >= 2 })
	update(10, 11)
	waitFor(t, "both at 11", func() bool {
		return replay(t, c.all(), "a").version == 11 && len(c2.all()) >= 3
	})
	msgs := c2.all()
	if msgs[0]["type"] != "subscribed" || num(msgs[0]["version"]) != 10 ||
		msgs[1]["type"] != "update" || num(msgs[1]["prev_version"]) != 9 || num(msgs[1]["version"]) != 10 ||
		msgs[2]["type"] != "update" || num(msgs[2]["prev_version"]) != 10 || len(msgs) != 3 {
		t.Fatalf("resume: %v", msgs)
	}
}
