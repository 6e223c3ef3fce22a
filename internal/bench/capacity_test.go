package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestCapacityFormula(t *testing.T) {
	base := capacityInput{Viewers: 1_000_000, Updates: 10_000, WindowsPerSec: 10, ChangedShare: 1, Segments: 1000, FrameBytes: 400,
		GatewayFrameMicros: 5, GatewayCores: 2, GatewayConnKB: 10, GatewayMemGB: 24, GatewayConnsPerProcess: 18_000,
		APISubmitsPerNode: 20_000, RedisSubmitsPerShard: 40_000, FanoutSegmentMicros: 40, FanoutCores: 2, KafkaPartitionMBps: 10,
		HistoryEventsPerSec: 100_000, Utilization: 0.5, RedisSegmentMicros: 0}
	count := func(c capacityInput, tier string) float64 {
		for _, l := range c.plan() {
			if l.Tier == tier {
				return l.Count
			}
		}
		t.Fatalf("no tier %q", tier)
		return 0
	}
	// 1M viewers × 10 frames/s × 5 µs = 50 core-seconds/s; 2 cores at 50% = 1 per node: 50 nodes.
	if got := count(base, "gateway nodes"); got != 50 {
		t.Fatalf("gateway nodes %v, want 50", got)
	}
	more := base
	more.Viewers *= 2
	if got := count(more, "gateway nodes"); got != 100 {
		t.Fatalf("twice the viewers: %v gateway nodes, want 100", got)
	}
	quiet := base
	quiet.ChangedShare = 0.001 // memory bound: 1M × 10 KB / (24 GB × 50%) = 0.83 -> 1 node, but 56 processes
	if got := count(quiet, "gateway nodes"); got != 1 {
		t.Fatalf("idle viewers: %v gateway nodes, want 1", got)
	}
	if got := count(quiet, "gateway processes"); got != 56 {
		t.Fatalf("gateway processes %v, want 56 (open-file limit)", got)
	}
	if got := count(base, "Redis shards (masters)"); got != 1 {
		t.Fatalf("redis shards %v", got)
	}
	if got := count(base, "fan-out nodes"); got != 1 {
		t.Fatalf("fan-out nodes %v", got) // 10,000 flushes/s × 40 µs = 0.4 core-s/s
	}
	var out, errb bytes.Buffer
	if code := capacityMain([]string{"--viewers", "5000000"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gateway nodes") {
		t.Fatalf("capacity: code %d, out %q, err %q", code, out.String(), errb.String())
	}
	if code := capacityMain([]string{"--nope"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: code %d", code)
	}
}

// TestCapacityFlagsFromEnvironment: capacity is a bench mode like the others,
// so its flags come from LEADERBOARD_BENCH_<FLAG> too ("leaderboard bench -h"
// and the README say every flag does), -h is not an error, and the usage
// lists it among the modes.
func TestCapacityFlagsFromEnvironment(t *testing.T) {
	plan := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(append([]string{"capacity"}, args...), &out, &errb); code != 0 {
			t.Fatalf("capacity %q: exit %d, stderr %q", args, code, errb.String())
		}
		return out.String()
	}
	want := plan("--viewers", "20000000")
	t.Setenv("LEADERBOARD_BENCH_VIEWERS", "20000000")
	if got := plan(); got != want {
		t.Errorf("LEADERBOARD_BENCH_VIEWERS=20000000 not applied:\n%s\nwant\n%s", got, want)
	}
	if got := plan("--viewers", "10000000"); got == want {
		t.Errorf("the command line must win over the environment")
	}
	t.Setenv("LEADERBOARD_BENCH_VIEWERS", "many")
	if code := Main([]string{"capacity"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("bad LEADERBOARD_BENCH_VIEWERS: exit %d, want 2", code)
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"capacity", "-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "gateway-frame-us") {
		t.Errorf("capacity -h: exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	Main([]string{"-h"}, &out, &errb)
	if !strings.Contains(out.String(), "\n  capacity  ") {
		t.Errorf("bench -h does not list the capacity mode:\n%s", out.String())
	}
}
