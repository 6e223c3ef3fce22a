package fanoutnode_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the Redis server's own CPU time (INFO cpu).
func (e *env) redisCPU() time.Duration {
	info, _ := e.st.Client().Info(context.Background(), "cpu").Result()
	var total float64
	for _, line := range strings.Split(info, "\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkSegmentFlush measures what one segment update costs the fan-out
// tier: 20 leaderboards of 1,000 participants, 5 watched windows each (top
// 10 and 100, two participants, one around-window), random submissions
// through the Redis store, the outbox relay, the in-process bus and a fan-out
// node (window reads from Redis, diff, encode, segment snapshot stored,
// frame produced). It reports this process's CPU and Redis's own CPU per
// update frame produced (the relay and the submissions' client side are in
// this process's figure too, so it is an upper bound for the node).
func BenchmarkSegmentFlush(b *testing.B) {
	e := newEnv(b)
	var boards []string
	for i := range 20 {
		board := fmt.Sprintf("b%02d", i)
		boards = append(boards, board)
		e.createBoard(board, 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, board := range boards {
		for j := 0; j < 1000; j += 100 {
			for k := range 100 {
				_ = k
				e.submit(board, fmt.Sprintf("p%04d", j+k), uint64(rand.IntN(1_000_000)))
			}
		}
	}
	e.gateway("gw", boards, "t:10", "t:100", "p:p0001", "p:p0500", "a:5:p0100")
	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	defer local.Close()
	frames := local.FrameProducer()
	e.relay(ctx, local.Producer())
	n := e.node(local.NewConsumer(bus.FanoutGroup), frames, 4)
	stopNode := func() func() {
		done := make(chan struct{})
		go func() { _ = n.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}()
	defer stopNode()
	waitSegments := time.Now().Add(30 * time.Second)
	for n.Stats().Snapshots < uint64(len(boards)*5) && time.Now().Before(waitSegments) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)

	b.ResetTimer()
	startCPU, startRedis, startUpdates := cpuTime(), e.redisCPU(), n.Stats().Updates
	for i := 0; i < b.N; i++ {
		board := boards[rand.IntN(len(boards))]
		e.submit(board, fmt.Sprintf("p%04d", rand.IntN(1000)), uint64(rand.IntN(1_100_000)))
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // spread over flush windows, as live traffic is
		}
	}
	time.Sleep(500 * time.Millisecond) // the last windows flush
	b.StopTimer()
	updates := n.Stats().Updates - startUpdates
	if updates == 0 {
		if b.N < 100 {
			return // the testing package's first short run: too few submissions to move a window
		}
		b.Fatal("no update frame produced")
	}
	b.ReportMetric(float64(cpuTime()-startCPU)/float64(time.Microsecond)/float64(updates), "µs-cpu/frame")
	b.ReportMetric(float64(e.redisCPU()-startRedis)/float64(time.Microsecond)/float64(updates), "µs-redis/frame")
	b.ReportMetric(float64(updates)/float64(b.N), "frames/submission")
}
