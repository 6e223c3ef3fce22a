package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lbhq/leaderboard/internal/server"
)

func patch(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest("PATCH", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PATCH %s: %d", url, res.StatusCode)
	}
}

// types lists the message types of id and of messages without an id (all
// when id is "").
func types(msgs []map[string]any, id string) []string {
	var out []string
	for _, m := range msgs {
		if id == "" || m["id"] == nil || m["id"] == id {
			out = append(out, m["type"].(string))
		}
	}
	return out
}

// A viewer who connects while a leaderboard is paused (or after it
// completed) learns its status right after the snapshot, on WebSocket and on
// SSE, rather than seeing a window that does not move and no reason why.
func TestNewViewerLearnsTheStatusOfALeaderboardThatIsNotActive(t *testing.T) {
	addr := startServer(t, func(c *server.Config) {})
	seed(t, addr, "st")
	base := "http://" + addr + "/v1/leaderboards/st"

	// Active: subscribed and snapshot, no status.
	c, _, err := dial(t, addr, "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"type":"subscribe","id":"a","kind":"top","limit":5}`)
	waitFor(t, "snapshot", func() bool { return firstOfType(c.all(), "snapshot", "a") != nil })

	patch(t, base, `{"status":"paused"}`)
	waitFor(t, "the change's status notice", func() bool { return firstOfType(c.all(), "status", "") != nil })

	late, _, err := dial(t, addr, "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	late.send(t, `{"type":"subscribe","id":"b","kind":"participant","participant_id":"p1"}`)
	waitFor(t, "the late viewer's status", func() bool { return firstOfType(late.all(), "status", "") != nil })
	if got := strings.Join(types(late.all(), "b"), ","); got != "subscribed,snapshot,status" {
		t.Fatalf("late viewer of a paused leaderboard got %s", got)
	}
	if st := firstOfType(late.all(), "status", ""); st["status"] != "paused" || num(st["version"]) != num(firstOfType(late.all(), "snapshot", "b")["version"]) {
		t.Fatalf("status notice %v", st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sse := openSSE(t, ctx, addr, "st", "kind=top&limit=3", "")
	waitFor(t, "SSE status", func() bool { return len(sse.all()) >= 2 })
	if got := strings.Join(types(sse.all(), ""), ","); got != "snapshot,status" {
		t.Fatalf("SSE viewer of a paused leaderboard got %s", got)
	}

	// Resumed: a new viewer gets no notice; finalized: a new one gets completed.
	patch(t, base, `{"status":"active"}`)
	waitFor(t, "resumed notice", func() bool { return len(types(late.all(), "b")) == 4 })
	fresh, _, err := dial(t, addr, "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh.send(t, `{"type":"subscribe","id":"a","kind":"top","limit":5}`)
	fresh.send(t, `{"type":"ping"}`)
	waitFor(t, "pong", func() bool { return firstOfType(fresh.all(), "pong", "") != nil })
	if got := strings.Join(types(fresh.all(), "a"), ","); got != "subscribed,snapshot,pong" {
		t.Fatalf("viewer of an active leaderboard got %s", got)
	}
	post(t, base+"/finalize", `{}`)
	done, _, err := dial(t, addr, "st", nil)
	if err != nil {
		t.Fatal(err)
	}
	done.send(t, `{"type":"subscribe","id":"a","kind":"around","participant_id":"p1","radius":2}`)
	waitFor(t, "completed notice", func() bool { return firstOfType(done.all(), "status", "") != nil })
	if st := firstOfType(done.all(), "status", ""); st["status"] != "completed" {
		t.Fatalf("viewer of a completed leaderboard got %v", st)
	}
}
