package gateway_test

import (
	"fmt"
	"testing"
	"time"
)

// TestLongPollUnrankedWaitsWhileUnchanged: a window on a participant who is
// not ranked (kind participant: null; kind around: empty) does not change
// when others arrive on the board, so a poll from its version waits (204)
// instead of being answered at once with an update that changes nothing;
// when the participant arrives, the poll gets it.
func TestLongPollUnrankedWaitsWhileUnchanged(t *testing.T) {
	addr := startServer(t, nil)
	base := "http://" + addr + "/v1/leaderboards"
	post(t, base, `{"leaderboard_id":"lu","name":"LU"}`)
	post(t, base+"/lu/scores", `{"participant_id":"a","score":100}`)
	for _, q := range []string{"kind=participant&participant_id=late", "kind=around&participant_id=late&radius=1"} {
		code, snap, _ := longPoll(t, base+"/lu/updates?"+q)
		if code != 200 || snap["type"] != "snapshot" {
			t.Fatalf("%s: first poll: %d %v", q, code, snap)
		}
		v, epoch := uint64(snap["version"].(float64)), snap["epoch"].(string)
		post(t, base+"/lu/scores", fmt.Sprintf(`{"participant_id":"other%d","score":%d}`, v, 10+v)) // someone else arrives
		code, m, took := longPoll(t, fmt.Sprintf("%s/lu/updates?%s&since_version=%d&epoch=%s&timeout_ms=700", base, q, v, epoch))
		if code != 204 {
			t.Errorf("%s: poll since %d after another participant arrived: %d after %v with %v; want 204", q, v, code, took.Round(time.Millisecond), m)
		}
	}
	code, snap, _ := longPoll(t, base+"/lu/updates?kind=participant&participant_id=late")
	v, epoch := uint64(snap["version"].(float64)), snap["epoch"].(string)
	go func() {
		time.Sleep(200 * time.Millisecond)
		post(t, base+"/lu/scores", `{"participant_id":"late","score":50}`)
	}()
	code, m, _ := longPoll(t, fmt.Sprintf("%s/lu/updates?kind=participant&participant_id=late&since_version=%d&epoch=%s&timeout_ms=5000", base, v, epoch))
	if p, _ := m["participant"].(map[string]any); code != 200 || m["type"] != "update" || p == nil || p["rank"].(float64) != 2 {
		t.Fatalf("poll since %d across the participant's arrival: %d %v", v, code, m)
	}
}
