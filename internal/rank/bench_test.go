package rank

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"unsafe"
)

// idOf writes participant i's 16-byte id into buf and returns it as a string
// aliasing buf, the way a request handler holds an id from its request: hot in
// cache and not allocated. (Indexing a slice of a million prepared strings
// would add two cache misses per operation that belong to the benchmark.)
func idOf(buf *[16]byte, i int) string {
	b := strconv.AppendInt(buf[:1], int64(i), 10)
	n := copy(buf[16-(len(b)-1):], b[1:])
	for j := 1; j < 16-n; j++ {
		buf[j] = '0'
	}
	buf[0] = 'p'
	return unsafe.String(&buf[0], 16)
}

// The benchmarks run on rankings of 100k and 1M participants with 16-byte ids,
// each built once: building takes longer than most benchmarks run. 100k fits
// in the processor's last-level cache (about 8 MB), 1M does not (about 80 MB),
// so the pair separates the structure's own cost from memory latency.
const benchN = 1_000_000

var benchSizes = []int{100_000, 1_000_000}

var (
	benchMu       sync.Mutex
	benchRankings = map[int]*Ranking{}
)

func benchSetup(b *testing.B, n int) *Ranking {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if r := benchRankings[n]; r != nil {
		return r
	}
	rng := rand.New(rand.NewPCG(1, 2))
	r := New(Descending)
	var buf [16]byte
	for i := 0; i < n; i++ {
		r.Submit(idOf(&buf, i), rng.Uint64N(1e9), int64(i), PolicySet)
	}
	benchRankings[n] = r
	return r
}

func forSizes(b *testing.B, fn func(b *testing.B, r *Ranking, n int)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { fn(b, benchSetup(b, n), n) })
	}
}

// BenchmarkSubmit is a full submission: a random participant gets a random new
// score; Submit finds the old rank, moves the participant and returns the new rank.
func BenchmarkSubmit(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(5, 6))
		var buf [16]byte
		b.ReportAllocs()
		at := int64(n)
		for b.Loop() {
			at++
			r.Submit(idOf(&buf, rng.IntN(n)), rng.Uint64N(1e9), at, PolicySet)
		}
	})
}

// BenchmarkSubmitSmallGain is the common case of a live game: a random
// participant improves by a little (up to 10,000 points on a board whose
// scores spread over 1e9, so it passes up to about 10 others). The benchmark
// keeps every participant's score in a slice, as a client knows its own
// score; reading it is part of the measured loop.
func BenchmarkSubmitSmallGain(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			r := New(Descending)
			scores := make([]uint64, n)
			var buf [16]byte
			for i := range scores {
				scores[i] = rng.Uint64N(1e9)
				r.Submit(idOf(&buf, i), scores[i], int64(i), PolicySet)
			}
			b.ReportAllocs()
			at := int64(n)
			b.ResetTimer()
			for b.Loop() {
				at++
				i := rng.IntN(n)
				scores[i] += 1 + rng.Uint64N(10_000)
				r.Submit(idOf(&buf, i), scores[i], at, PolicySet)
			}
		})
	}
}

func BenchmarkRank(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(7, 8))
		var buf [16]byte
		b.ReportAllocs()
		for b.Loop() {
			if r.Rank(idOf(&buf, rng.IntN(n))) == 0 {
				b.Fatal("missing participant")
			}
		}
	})
}

// BenchmarkRankMany is BenchmarkRank in batches of 64 random participants per
// RankMany call; ns/op is per lookup, not per call.
func BenchmarkRankMany(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(7, 8))
		var bufs [batchLanes][16]byte
		var ids [batchLanes]string
		var out [batchLanes]int
		b.ReportAllocs()
		for i := 0; i < b.N; i += batchLanes {
			k := min(batchLanes, b.N-i)
			for j := range k {
				ids[j] = idOf(&bufs[j], rng.IntN(n))
			}
			r.RankMany(ids[:k], out[:k])
			if out[0] == 0 {
				b.Fatal("missing participant")
			}
		}
	})
}

// BenchmarkSubmitMany is BenchmarkSubmit in batches of 64 random participants
// per SubmitMany call; ns/op is per submission, not per call.
func BenchmarkSubmitMany(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(5, 6))
		var bufs [batchLanes][16]byte
		var subs [batchLanes]Sub
		var out [batchLanes]Change
		b.ReportAllocs()
		at := int64(n)
		for i := 0; i < b.N; i += batchLanes {
			k := min(batchLanes, b.N-i)
			for j := range k {
				at++
				subs[j] = Sub{ID: idOf(&bufs[j], rng.IntN(n)), Score: rng.Uint64N(1e9), At: at}
			}
			r.SubmitMany(subs[:k], PolicySet, out[:k])
		}
	})
}

// BenchmarkSubmitWarm is what the memory store did before SubmitMany: Warm
// (index slots and records) for a batch of 64, then Submit one by one.
func BenchmarkSubmitWarm(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(5, 6))
		var bufs [batchLanes][16]byte
		var subs [batchLanes]Sub
		var ids [batchLanes]string
		b.ReportAllocs()
		at := int64(n)
		for i := 0; i < b.N; i += batchLanes {
			k := min(batchLanes, b.N-i)
			for j := range k {
				at++
				subs[j] = Sub{ID: idOf(&bufs[j], rng.IntN(n)), Score: rng.Uint64N(1e9), At: at}
				ids[j] = subs[j].ID
			}
			r.Warm(ids[:k])
			for j := range k {
				r.Submit(subs[j].ID, subs[j].Score, subs[j].At, PolicySet)
			}
		}
	})
}

func BenchmarkTop100(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		dst := make([]Entry, 0, 100)
		b.ReportAllocs()
		for b.Loop() {
			dst = r.Range(dst[:0], 1, 100)
		}
		if len(dst) != 100 {
			b.Fatal("short page")
		}
	})
}

// BenchmarkPageDeep reads 100 entries starting at a random rank.
func BenchmarkPageDeep(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Ranking, n int) {
		rng := rand.New(rand.NewPCG(9, 10))
		dst := make([]Entry, 0, 100)
		b.ReportAllocs()
		for b.Loop() {
			dst = r.Range(dst[:0], 1+rng.IntN(n-100), 100)
		}
	})
}

// BenchmarkMemory builds a ranking of benchN participants and reports the
// live heap it holds per participant (index, tree and id bytes together).
func BenchmarkMemory(b *testing.B) {
	for b.Loop() {
		rng := rand.New(rand.NewPCG(11, 12))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := New(Descending)
		var buf [16]byte
		for i := 0; i < benchN; i++ {
			r.Submit(idOf(&buf, i), rng.Uint64N(1e9), int64(i), PolicySet)
		}
		// Churn as a live board does: score changes move participants between leaves.
		for i := 0; i < benchN; i++ {
			r.Submit(idOf(&buf, rng.IntN(benchN)), rng.Uint64N(1e9), int64(benchN+i), PolicySet)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchN, "bytes/participant")
		runtime.KeepAlive(r)
	}
}

// BenchmarkMemoryLatency is context for the 1M figures, not a test of this
// package: one dependent load from a random place in 128 MB, the cost of the
// cache misses a random participant's lookup cannot avoid on this machine.
func BenchmarkMemoryLatency(b *testing.B) {
	n := 1 << 25
	next := make([]int32, n)
	perm := rand.New(rand.NewPCG(13, 14)).Perm(n)
	for i := range perm {
		next[perm[i]] = int32(perm[(i+1)%n])
	}
	j := int32(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j = next[j]
	}
	runtime.KeepAlive(j)
}
