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
	}
	// Also when the clock went back: the bucket refills from now on, where
	// keeping a last refill in the future held every refill (and made each
	// Retry-After a lie) until the clock had caught up again, an hour's
	// step an hour of refusals.
	b.last = ns
	if b.tokens < 1 {
		s.m[h] = b
		return false, l.wait(b.tokens)
	}
	b.tokens--
	s.m[h] = b
	return true, 0
}

// maxWait bounds the wait Allow returns (about 146 years): at a tiny rate the
// exact one would overflow a Duration.
const maxWait = 1 << 62

// wait is how long a bucket holding tokens (< 1) takes to hold one: rounded up
// to the nanosecond, at least one, and checked with Allow's own refill
// arithmetic. Truncated, (1-tokens)/rate sent a client that waited exactly
// that long (or the whole seconds of Retry-After, when they came out even)
// into another refusal, and at a wait under a nanosecond gave 0: a 429
// without Retry-After.
func (l *Limiter) wait(tokens float64) time.Duration {
	w := (1 - tokens) / l.rate * 1e9
	if w >= maxWait {
		return maxWait
	}
	d := max(int64(math.Ceil(w)), 1)
	for step := int64(1); tokens+float64(d)/1e9*l.rate < 1; step *= 2 {
		d += step // float rounding: a few nanoseconds more
	}
	return time.Duration(d)
}

// Sweep drops the buckets that are full again at now; they behave exactly like
// absent ones.
func (l *Limiter) Sweep(now time.Time) {
	if l == nil || l.rate <= 0 {
		return
	}
	ns := now.UnixNano()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, b := range s.m {
			// Full by Allow's own arithmetic. A threshold of burst/rate
			// truncated to whole nanoseconds dropped some buckets a fraction
			// of a token short of full (the key then got a whole fresh
			// burst), and at a tiny rate overflowed int64 and dropped
			// every bucket at every sweep.
			if b.tokens+float64(ns-b.last)/1e9*l.rate >= l.burst {
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
