package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lbhq/leaderboard/internal/redistest"
)

// TestSplitCompletedBoardNewWindow: in one process a window of a
// completed leaderboard can still be watched (TestStatusOnCompletion in
// package gateway: a late subscribe gets its snapshot, from the final
// rankings). Split over Kafka too: a viewer of a completed board gets status
// completed, and a window no viewer watched when it completed is computed
// from the final rankings (the ranking store no longer has the board); the
// late viewer is told the status as well.
func TestSplitCompletedBoardNewWindow(t *testing.T) {
	url := redisURLForTest(t)
	prefix := redistest.Prefix(t, "lbsplitdone")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, prefix+"leaderboard.events", prefix+"leaderboard.frames"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dir := t.TempDir()
	var stops []func()
	defer func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}()
	run := func(roles string) string {
		addr, stop, done := start(t, splitConfig(t, url, prefix, kc.ListenAddrs(), dir, roles))
		stops = append(stops, func() { stop(); <-done })
		return "http://" + addr
	}
	api := run("api,history")
	run("fanout")
	gw := run("gateway")

	if st := jsonCall(t, "POST", api+"/v1/leaderboards", `{"leaderboard_id":"fin","name":"F"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for i := range 20 {
		if st := jsonCall(t, "POST", api+"/v1/leaderboards/fin/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, 100+i), nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	v := watchTop(t, gw, "fin", 10, nil)
	waitFor(t, "the live viewer's snapshot", func() bool { ver, _, _ := v.state(); return ver > 0 })

	if st := jsonCall(t, "POST", api+"/v1/leaderboards/fin/finalize", `{}`, nil); st != 200 {
		t.Fatalf("finalize: %d", st)
	}
	waitFor(t, "status completed", func() bool { return v.heardStatus("completed") })
	_, want := topWindow(t, api, "fin", 5)

	late := watchTop(t, gw, "fin", 5, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		late.mu.Lock()
		var errMsg map[string]any
		for _, m := range late.msgs {
			if m["type"] == "error" {
				errMsg = m
			}
		}
		late.mu.Unlock()
		if errMsg != nil {
			t.Fatalf("late subscribe to a window of the completed board: %v", errMsg)
		}
		if ver, _, got := late.state(); ver > 0 {
			if !slices.Equal(got, want) {
				t.Fatalf("late snapshot %v, final rankings %v", got, want)
			}
			// And it is told the leaderboard completed (from the status
			// frame this gateway received, or its leaderboard list).
			waitFor(t, "the late viewer's status completed", func() bool { return late.heardStatus("completed") })
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot for the late subscribe")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heardStatus reports whether the viewer got a status message saying status.
func (v *liveViewer) heardStatus(status string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.msgs {
		if m["type"] == "status" && m["status"] == status {
			return true
		}
	}
	return false
}
