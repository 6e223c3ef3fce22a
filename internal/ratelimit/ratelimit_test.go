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
