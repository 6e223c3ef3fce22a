package server

import (
	"syscall"
	"testing"
	"time"
)

// TestStopWithRedisFrozenReturnsInTime: a stop while Redis does not answer
// (frozen with SIGSTOP, never back) returns within the drain and the stop's
// own --shutdown-timeout each, whatever the Redis client's default timeouts.
func TestStopWithRedisFrozenReturnsInTime(t *testing.T) {
	url, proc := ownRedis(t)
	cfg := testConfig(t)
	cfg.DataDir = ""
	cfg.SubmitRate, cfg.RedisURL, cfg.RedisPrefix = 0, url, "lb:"
	cfg.ShutdownTimeout = time.Second
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"f","name":"F"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		t.Logf("Run: %v after %v", err, time.Since(began))
	case <-time.After(2*cfg.ShutdownTimeout + time.Second):
		t.Fatalf("Run still running %v after the stop began, with --shutdown-timeout %v", time.Since(began), cfg.ShutdownTimeout)
	}
}
