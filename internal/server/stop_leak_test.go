package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// settledGoroutines waits until the number of goroutines is at most want
// (or 5 s pass) and returns it.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStopLeavesNoGoroutines: once Run returned, nothing it started runs
// on, the profiling listener (--pprof-addr) included.
func TestStopLeavesNoGoroutines(t *testing.T) {
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	before := runtime.NumGoroutine()
	cfg := testConfig(t)
	cfg.PprofAddr = "127.0.0.1:0"
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"g","name":"G"}`, nil); st != 201 {
		t.Fatal(st)
	}
	for i := range 10 {
		jsonCall(t, "POST", base+"/v1/leaderboards/g/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, i), nil)
	}
	ctx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/leaderboards/g/stream", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		defer res.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stopStream()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if after := settledGoroutines(before); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before Run, %d after it returned:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
