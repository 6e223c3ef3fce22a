// Package ratelimit holds token buckets keyed by string pairs, for limits such
// as "submissions per participant per leaderboard" across millions of keys.
package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Key names one bucket.
type Key struct{ A, B string }

// Buckets are stored under a 64-bit seeded hash of their key rather than the
// key itself: no string is copied or kept per bucket, and the map holds plain
// values the garbage collector need not scan. Two keys would share a bucket
// only on a 64-bit hash collision, and then both are merely limited together.

type bucket struct {
	tokens float64
	last   int64 // Unix nanoseconds of the last refill
}

const shards = 64

// Limiter is a set of token buckets, each refilled at Rate per second up to
// Burst. Buckets are created on first use and dropped by Sweep once full again,
// so memory follows the number of keys active in the last Burst/Rate seconds.
// The buckets are spread over shards so that concurrent requests rarely share a lock.
type Limiter struct {
	rate   float64
	burst  float64
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]bucket
}

// New returns a limiter; a rate <= 0 means unlimited (Allow always succeeds).
func New(rate float64, burst int) *Limiter {
	l := &Limiter{rate: rate, burst: float64(max(burst, 1)), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]bucket)
	}
	return l
}

func (l *Limiter) hash(k Key) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(k.A)
	h.WriteByte(0)
	h.WriteString(k.B)
	return h.Sum64()
}

// Allow takes one token from k's bucket. When none is left it returns false and
// how long until one will be.
func (l *Limiter) Allow(k Key, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	h := l.hash(k)
	s := &l.shards[h%shards]
	ns := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[h]
	if !ok {
		b = bucket{tokens: l.burst, last: ns}
	}
	if elapsed := ns - b.last; elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(elapsed)/1e9*l.rate)
		b.last = ns
	}
	if b.tokens < 1 {
		s.m[h] = b
		return false, time.Duration((1 - b.tokens) / l.rate * 1e9)
	}
	b.tokens--
	s.m[h] = b
	return true, 0
}

// Sweep drops the buckets that are full again at now; they behave exactly like
// absent ones.
func (l *Limiter) Sweep(now time.Time) {
	if l == nil || l.rate <= 0 {
		return
	}
	ns := now.UnixNano()
	full := int64(l.burst / l.rate * 1e9)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, b := range s.m {
			if ns-b.last >= full {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of live buckets.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
