package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// longPoll runs one GET .../updates and returns the status and decoded body.
func longPoll(t *testing.T, url string) (int, map[string]any, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if len(b) > 0 {
		json.Unmarshal(b, &m)
	}
	return res.StatusCode, m, time.Since(start)
}

// TestLongPollWaitsWhileItsWindowIsUnchanged: API.md, long poll: "200 with one
// update (or snapshot when V cannot be served) as soon as the window changed
// after V; 204 on timeout", and "none [no update] when its window did not
// change". A change below a top-1 window does not change the window, so a
// poll from the window's version must wait and end in 204, not be answered at
// once with an empty update.
func TestLongPollWaitsWhileItsWindowIsUnchanged(t *testing.T) {
	addr := startServer(t, nil)
	base := "http://" + addr + "/v1/leaderboards"
	post(t, base, `{"leaderboard_id":"lp","name":"LP"}`)
	post(t, base+"/lp/scores", `{"participant_id":"a","score":100}`)
	post(t, base+"/lp/scores", `{"participant_id":"b","score":50}`)

	code, snap, _ := longPoll(t, base+"/lp/updates?kind=top&limit=1")
	if code != 200 || snap["type"] != "snapshot" {
		t.Fatalf("first poll: %d %v", code, snap)
	}
	v, epoch := uint64(snap["version"].(float64)), snap["epoch"].(string)

	// Someone enters at rank 3: the top-1 window (a, 100) is unchanged.
	post(t, base+"/lp/scores", `{"participant_id":"c","score":10}`)
	code, m, took := longPoll(t, fmt.Sprintf("%s/lp/updates?kind=top&limit=1&since_version=%d&epoch=%s&timeout_ms=700", base, v, epoch))
	if code != 204 {
		t.Errorf("poll since %d after a change outside the window: %d after %v with %v; want 204 after the timeout", v, code, took.Round(time.Millisecond), m)
	}

	// The window does change while a poll from v waits: it gets one update
	// chained to v that carries the new leader.
	go func() {
		time.Sleep(300 * time.Millisecond)
		post(t, base+"/lp/scores", `{"participant_id":"b","score":500}`)
	}()
	code, m, _ = longPoll(t, fmt.Sprintf("%s/lp/updates?kind=top&limit=1&since_version=%d&epoch=%s&timeout_ms=5000", base, v, epoch))
	if code != 200 || m["type"] != "update" || uint64(m["prev_version"].(float64)) != v {
		t.Fatalf("poll since %d across a change of the window: %d %v", v, code, m)
	}
	changes, _ := m["changes"].([]any)
	if len(changes) != 1 || changes[0].(map[string]any)["participant_id"] != "b" {
		t.Fatalf("update since %d: changes %v, want b at rank 1", v, changes)
	}
}

// TestLongPollParticipantWaitsWhileUnchanged: the same for kind=participant:
// a change that leaves the participant's rank and score alone is no change of
// its window.
func TestLongPollParticipantWaitsWhileUnchanged(t *testing.T) {
	addr := startServer(t, nil)
	base := "http://" + addr + "/v1/leaderboards"
	post(t, base, `{"leaderboard_id":"lq","name":"LQ"}`)
	post(t, base+"/lq/scores", `{"participant_id":"a","score":100}`)
	code, snap, _ := longPoll(t, base+"/lq/updates?kind=participant&participant_id=a")
	if code != 200 || snap["type"] != "snapshot" {
		t.Fatalf("first poll: %d %v", code, snap)
	}
	v, epoch := uint64(snap["version"].(float64)), snap["epoch"].(string)
	post(t, base+"/lq/scores", `{"participant_id":"b","score":10}`) // rank 2
	code, m, took := longPoll(t, fmt.Sprintf("%s/lq/updates?kind=participant&participant_id=a&since_version=%d&epoch=%s&timeout_ms=700", base, v, epoch))
	if code != 204 {
		t.Errorf("poll since %d after a change below a: %d after %v with %v; want 204", v, code, took.Round(time.Millisecond), m)
	}
	post(t, base+"/lq/scores", `{"participant_id":"b","score":1000}`) // a drops to rank 2
	code, m, _ = longPoll(t, fmt.Sprintf("%s/lq/updates?kind=participant&participant_id=a&since_version=%d&epoch=%s&timeout_ms=2000", base, v, epoch))
	if code != 200 || m["type"] != "update" || m["participant"].(map[string]any)["rank"].(float64) != 2 {
		t.Errorf("poll since %d after a moved: %d %v", v, code, m)
	}
}

// TestLongPollAroundWaitsWhileUnchanged: the same for kind=around: a change
// beyond the window around the participant is no change of it.
func TestLongPollAroundWaitsWhileUnchanged(t *testing.T) {
	addr := startServer(t, nil)
	base := "http://" + addr + "/v1/leaderboards"
	post(t, base, `{"leaderboard_id":"la","name":"LA"}`)
	post(t, base+"/la/scores", `{"participant_id":"a","score":100}`)
	post(t, base+"/la/scores", `{"participant_id":"b","score":50}`)
	post(t, base+"/la/scores", `{"participant_id":"c","score":10}`)
	q := "kind=around&participant_id=a&radius=1"
	code, snap, _ := longPoll(t, base+"/la/updates?"+q)
	if code != 200 || snap["type"] != "snapshot" {
		t.Fatalf("first poll: %d %v", code, snap)
	}
	v, epoch := uint64(snap["version"].(float64)), snap["epoch"].(string)
	post(t, base+"/la/scores", `{"participant_id":"d","score":1}`) // rank 4, outside ranks 1-2
	code, m, took := longPoll(t, fmt.Sprintf("%s/la/updates?%s&since_version=%d&epoch=%s&timeout_ms=700", base, q, v, epoch))
	if code != 204 {
		t.Errorf("poll since %d after a change outside the window: %d after %v with %v; want 204", v, code, took.Round(time.Millisecond), m)
	}
	post(t, base+"/la/scores", `{"participant_id":"d","score":75}`) // rank 2: in the window
	code, m, _ = longPoll(t, fmt.Sprintf("%s/la/updates?%s&since_version=%d&epoch=%s&timeout_ms=2000", base, q, v, epoch))
	if code != 200 || m["type"] != "update" || uint64(m["prev_version"].(float64)) != v {
		t.Fatalf("poll since %d after d entered the window: %d %v", v, code, m)
	}
}
