package rank

import (
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

// The benchmarks share one ranking of benchN participants with 16-byte ids,
// built once: building it takes longer than most benchmarks run.
const benchN = 1_000_000

var (
	benchOnce    sync.Once
	benchRanking *Ranking
)

func benchSetup(b *testing.B) *Ranking {
	b.Helper()
	benchOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		benchRanking = New(Descending)
		var buf [16]byte
		for i := 0; i < benchN; i++ {
			benchRanking.Submit(idOf(&buf, i), rng.Uint64N(1e9), int64(i), PolicySet)
		}
	})
	return benchRanking
}

// BenchmarkSubmit is a full submission: a random participant gets a random new
// score; Submit finds the old rank, moves the participant and returns the new rank.
func BenchmarkSubmit(b *testing.B) {
	r := benchSetup(b)
	rng := rand.New(rand.NewPCG(5, 6))
	var buf [16]byte
	b.ReportAllocs()
	at := int64(benchN)
	for b.Loop() {
		at++
		r.Submit(idOf(&buf, rng.IntN(benchN)), rng.Uint64N(1e9), at, PolicySet)
	}
}

func BenchmarkRank(b *testing.B) {
	r := benchSetup(b)
	rng := rand.New(rand.NewPCG(7, 8))
	var buf [16]byte
	b.ReportAllocs()
	for b.Loop() {
		if r.Rank(idOf(&buf, rng.IntN(benchN))) == 0 {
			b.Fatal("missing participant")
		}
	}
}

func BenchmarkTop100(b *testing.B) {
	r := benchSetup(b)
	dst := make([]Entry, 0, 100)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.Range(dst[:0], 1, 100)
	}
	if len(dst) != 100 {
		b.Fatal("short page")
	}
}

// BenchmarkPageDeep reads 100 entries starting at a random rank.
func BenchmarkPageDeep(b *testing.B) {
	r := benchSetup(b)
	rng := rand.New(rand.NewPCG(9, 10))
	dst := make([]Entry, 0, 100)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.Range(dst[:0], 1+rng.IntN(benchN-100), 100)
	}
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
