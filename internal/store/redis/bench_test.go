package redis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/store"
	lbredis "github.com/lbhq/leaderboard/internal/store/redis"
)

// The benchmarks share one leaderboard of benchParticipants participants
// (16-byte ids), restored once per run, and a plain sorted set holding the
// same members for the raw ZADD baseline. Each reports ops/s: submissions (or
// ZADDs) per second over benchGoroutines concurrent callers.
//
//	go test -run '^$' -bench . -benchtime 5s ./internal/store/redis/

const (
	benchParticipants = 1_000_000
	benchGoroutines   = 16
)

type benchEnv struct {
	c      goredis.UniversalClient
	s      *lbredis.Store // with a Sink, as an API process has
	noSink *lbredis.Store // the same keys, without a Sink
	prefix string
	board  string
	raw    string // the baseline's sorted set
	ids    []string
	err    error
}

var (
	benchOnce sync.Once
	bench     *benchEnv
)

type countingSink struct{ n atomic.Int64 }

func (c *countingSink) Publish(store.Event) { c.n.Add(1) }

func TestMain(m *testing.M) {
	code := m.Run()
	if bench != nil && bench.c != nil {
		if err := deleteKeys(bench.c, bench.prefix); err != nil {
			fmt.Fprintln(os.Stderr, "deleting benchmark keys:", err)
		}
		bench.c.Close()
	}
	os.Exit(code)
}

// memberOf is the store's sorted-set member for achieved_at 1 (13 digits, then the id).
func memberOf(id string) string { return "0000000000001" + id }

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	benchOnce.Do(func() {
		env := &benchEnv{prefix: fmt.Sprintf("lbbench-%016x:", rand.Uint64()), board: "bench"}
		bench = env
		c, err := lbredis.NewClient(testURL())
		if err != nil {
			env.err = err
			return
		}
		env.c = c
		ctx := context.Background()
		if env.err = c.Ping(ctx).Err(); env.err != nil {
			return
		}
		if env.s, env.err = lbredis.New(ctx, lbredis.Options{Client: c, Prefix: env.prefix, Sink: &countingSink{}}); env.err != nil {
			return
		}
		if env.noSink, env.err = lbredis.New(ctx, lbredis.Options{Client: c, Prefix: env.prefix}); env.err != nil {
			return
		}
		env.raw = env.prefix + "raw"
		rng := rand.New(rand.NewPCG(1, 2))
		env.ids = make([]string, benchParticipants)
		entries := make([]store.Entry, benchParticipants)
		for i := range env.ids {
			env.ids[i] = fmt.Sprintf("%016x", rng.Uint64())
			entries[i] = store.Entry{ParticipantID: env.ids[i], Score: rng.Uint64N(1e9), AchievedAt: 1}
		}
		if env.err = env.s.Restore(ctx, env.board, store.BoardOptions{}, 0, entries); env.err != nil {
			return
		}
		for start := 0; start < len(entries); start += 50_000 {
			pipe := c.Pipeline()
			for i := start; i < start+50_000; i += 1000 {
				zs := make([]goredis.Z, 0, 1000)
				for _, e := range entries[i : i+1000] {
					zs = append(zs, goredis.Z{Score: float64(store.MaxScore - e.Score), Member: memberOf(e.ParticipantID)})
				}
				pipe.ZAdd(ctx, env.raw, zs...)
			}
			if _, env.err = pipe.Exec(ctx); env.err != nil {
				return
			}
		}
	})
	if bench.err != nil {
		unavailable(b, "benchmark setup against %s: %v", testURL(), bench.err)
	}
	return bench
}

// parallel runs body on benchGoroutines goroutines, each with its own rng.
func parallel(b *testing.B, body func(rng *rand.Rand, pb *testing.PB)) {
	b.SetParallelism((benchGoroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body(rand.New(rand.NewPCG(seed.Add(1), 9)), pb)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkSubmit: one submission per Submit call (one script call each),
// its event published to a Sink.
func BenchmarkSubmit(b *testing.B) { benchSubmit(b, setupBench(b).s) }

// BenchmarkSubmitNoSink is BenchmarkSubmit on a store without a Sink: the
// difference is the cost of publishing in version order.
func BenchmarkSubmitNoSink(b *testing.B) { benchSubmit(b, setupBench(b).noSink) }

func benchSubmit(b *testing.B, s *lbredis.Store) {
	env := setupBench(b)
	ctx := context.Background()
	parallel(b, func(rng *rand.Rand, pb *testing.PB) {
		sub := make([]store.Submission, 1)
		res := make([]store.Result, 1)
		for pb.Next() {
			sub[0] = store.Submission{ParticipantID: env.ids[rng.IntN(len(env.ids))], Score: rng.Uint64N(1e9), AchievedAt: 1 + rng.Int64N(1e12)}
			if err := s.Submit(ctx, env.board, sub, res); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSubmitBatch64: submissions sent 64 to a Submit call (one script
// call each); an op is one submission.
func BenchmarkSubmitBatch64(b *testing.B) {
	env := setupBench(b)
	ctx := context.Background()
	parallel(b, func(rng *rand.Rand, pb *testing.PB) {
		subs := make([]store.Submission, 0, 64)
		res := make([]store.Result, 64)
		flush := func() bool {
			if err := env.s.Submit(ctx, env.board, subs, res[:len(subs)]); err != nil {
				b.Error(err)
				return false
			}
			subs = subs[:0]
			return true
		}
		for pb.Next() {
			subs = append(subs, store.Submission{ParticipantID: env.ids[rng.IntN(len(env.ids))], Score: rng.Uint64N(1e9), AchievedAt: 1 + rng.Int64N(1e12)})
			if len(subs) == 64 && !flush() {
				return
			}
		}
		if len(subs) > 0 {
			flush()
		}
	})
}

// BenchmarkRawZADDPipelined is the baseline: ZADD of the same members (new
// scores) through go-redis pipelines of 64 commands; an op is one ZADD.
func BenchmarkRawZADDPipelined(b *testing.B) {
	env := setupBench(b)
	ctx := context.Background()
	parallel(b, func(rng *rand.Rand, pb *testing.PB) {
		pipe := env.c.Pipeline()
		n := 0
		flush := func() bool {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Error(err)
				return false
			}
			n = 0
			return true
		}
		for pb.Next() {
			pipe.ZAdd(ctx, env.raw, goredis.Z{Score: float64(rng.Uint64N(1e9)), Member: memberOf(env.ids[rng.IntN(len(env.ids))])})
			if n++; n == 64 && !flush() {
				return
			}
		}
		if n > 0 {
			flush()
		}
	})
}

// BenchmarkRawZADD is the unpipelined baseline: one ZADD per round trip.
func BenchmarkRawZADD(b *testing.B) {
	env := setupBench(b)
	ctx := context.Background()
	parallel(b, func(rng *rand.Rand, pb *testing.PB) {
		for pb.Next() {
			if err := env.c.ZAdd(ctx, env.raw, goredis.Z{Score: float64(rng.Uint64N(1e9)), Member: memberOf(env.ids[rng.IntN(len(env.ids))])}).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
