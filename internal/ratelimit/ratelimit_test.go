package ratelimit

import (
	"sync"
	"testing"
	"time"
)

func TestBurstThenRefill(t *testing.T) {
	l := New(10, 3) // 10 per second, burst 3
	now := time.Unix(1000, 0)
	k := Key{"board", "alice"}
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow(k, now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow(k, now)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("4th request: ok=%v wait=%v, want refused with 100ms", ok, wait)
	}
	// Another key is independent.
	if ok, _ := l.Allow(Key{"board", "bob"}, now); !ok {
		t.Fatal("bob limited by alice's use")
	}
	if ok, _ := l.Allow(Key{"other", "alice"}, now); !ok {
		t.Fatal("alice limited on another board")
	}
	// 100ms later one token is back, and only one.
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.Allow(k, now); !ok {
		t.Fatal("refill did not happen")
	}
	if ok, _ := l.Allow(k, now); ok {
		t.Fatal("refilled more than elapsed time allows")
	}
}

func TestSweepDropsOnlyFullBuckets(t *testing.T) {
	l := New(10, 2)
	now := time.Unix(1000, 0)
	l.Allow(Key{"b", "old"}, now)
	l.Allow(Key{"b", "recent"}, now.Add(150*time.Millisecond))
	l.Sweep(now.Add(220 * time.Millisecond)) // old is full again (2 tokens need 200ms), recent is not
	if n := l.Len(); n != 1 {
		t.Fatalf("after sweep %d buckets, want 1", n)
	}
	// A swept key starts with a full burst, like a new one.
	for i := 0; i < 2; i++ {
		if ok, _ := l.Allow(Key{"b", "old"}, now.Add(220*time.Millisecond)); !ok {
			t.Fatalf("swept key refused at %d", i)
		}
	}
}

func TestUnlimited(t *testing.T) {
	l := New(0, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(Key{"b", "p"}, time.Unix(0, 0)); !ok {
			t.Fatal("unlimited limiter refused")
		}
	}
}

func TestConcurrentAllowCountsExactly(t *testing.T) {
	l := New(1e-9, 100) // effectively no refill: exactly 100 tokens
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if ok, _ := l.Allow(Key{"b", "p"}, now); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("allowed %d of 400, want exactly 100", allowed)
	}
}

// TestWaitingTheReturnedWaitIsEnough: a refused caller that comes back
// exactly when told, to the nanosecond, or after the whole seconds a
// Retry-After rounds it up to, gets its token; the wait is never zero.
func TestWaitingTheReturnedWaitIsEnough(t *testing.T) {
	rates := []float64{0.5, 1.0 / 3, 1.0 / 7, 0.3, 3, 7, 200, 1e6, 1e9, 1e12}
	start := time.Unix(1700000000, 0)
	k := Key{"b", "p"}
	for _, rate := range rates {
		for burst := 1; burst <= 3; burst++ {
			period := time.Duration(1e9 / rate)
			// Refused at many moments of a refill: after a full drain, then
			// at fractions of the time one token takes.
			for step := int64(1); step <= 97; step++ {
				at := start.Add(time.Duration(int64(period) * step / 97))
				for _, whole := range []bool{false, true} {
					l := New(rate, burst)
					for i := 0; i < burst; i++ {
						l.Allow(k, start)
					}
					ok, wait := l.Allow(k, at)
					if ok {
						continue
					}
					if wait <= 0 {
						t.Fatalf("rate %v burst %d: refused with wait %v", rate, burst, wait)
					}
					if whole {
						wait = max((wait+time.Second-1)/time.Second, 1) * time.Second
					}
					if ok, again := l.Allow(k, at.Add(wait)); !ok {
						t.Fatalf("rate %v burst %d: refused at +%v, came back after %v (whole seconds: %v), refused again (wait %v)",
							rate, burst, at.Sub(start), wait, whole, again)
					}
				}
			}
		}
	}
	// One every 7 s, refused 5 s after the last: 2 s to go by the arithmetic
	// of reals, but 2 s more refill only 0.9999999999999999 tokens, so the
	// whole seconds of a Retry-After must come out at 3.
	l := New(1.0/7, 1)
	l.Allow(k, start)
	at := start.Add(5 * time.Second)
	_, wait := l.Allow(k, at)
	secs := max((wait+time.Second-1)/time.Second, 1)
	if ok, _ := l.Allow(k, at.Add(secs*time.Second)); !ok {
		t.Fatalf("rate 1/7: told to wait %v (Retry-After %d), refused again after it", wait, secs)
	}
}

// TestClockGoingBackDoesNotHoldTheRefill: after the wall clock steps back, a
// drained bucket refills from the new time on, and its wait is the truth.
func TestClockGoingBackDoesNotHoldTheRefill(t *testing.T) {
	l := New(10, 1)
	now := time.Unix(1000, 0)
	k := Key{"b", "p"}
	if ok, _ := l.Allow(k, now); !ok {
		t.Fatal("first request refused")
	}
	now = now.Add(-time.Hour) // e.g. an NTP step
	ok, wait := l.Allow(k, now)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("after the step back: ok=%v wait=%v, want refused with 100ms", ok, wait)
	}
	if ok, again := l.Allow(k, now.Add(wait)); !ok {
		t.Fatalf("refused again %v after the step back, told to wait %v", again, wait)
	}
}

// TestSweepKeepsABucketShortOfFull: a bucket a fraction of a token short of
// its burst is not swept; a key swept would get the whole burst back.
func TestSweepKeepsABucketShortOfFull(t *testing.T) {
	l := New(3, 20) // a full refill takes 6.666666666...s
	now := time.Unix(1000, 0)
	k := Key{"b", "p"}
	for i := 0; i < 20; i++ {
		l.Allow(k, now)
	}
	now = now.Add(6666666666 * time.Nanosecond) // 19.999999998 tokens
	l.Sweep(now)
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want the one short of full kept", n)
	}
	allowed := 0
	for i := 0; i < 20; i++ {
		if ok, _ := l.Allow(k, now); ok {
			allowed++
		}
	}
	if allowed != 19 {
		t.Fatalf("%d requests allowed, want 19 (19.999999998 tokens)", allowed)
	}
}

// TestSweepAtATinyRateKeepsTheBucket: at a rate so low that a full refill
// takes longer than an int64 of nanoseconds, a drained bucket is kept.
func TestSweepAtATinyRateKeepsTheBucket(t *testing.T) {
	l := New(1e-10, 1) // one token per ~317 years
	now := time.Unix(1000, 0)
	k := Key{"b", "p"}
	l.Allow(k, now)
	now = now.Add(time.Second)
	l.Sweep(now)
	if ok, _ := l.Allow(k, now); ok {
		t.Fatal("a drained bucket was swept and refilled a second later")
	}
}
