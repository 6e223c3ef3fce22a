package bus

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	var changes []string
	b := NewBreaker(BreakerOptions{Name: "x", Failures: 3, OpenFor: 20 * time.Millisecond, Probes: 2,
		OnStateChange: func(_, from, to string) { changes = append(changes, from+">"+to) }})
	ctx := context.Background()
	boom := errors.New("boom")
	calls := 0
	fail := func(context.Context) error { calls++; return boom }
	ok := func(context.Context) error { calls++; return nil }

	// A caller that gave up does not count against the backend.
	for range 10 {
		if err := b.Do(ctx, func(context.Context) error { return context.Canceled }); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if b.State() != "closed" {
		t.Fatalf("cancellations opened the breaker")
	}
	for range 2 {
		b.Do(ctx, fail)
	}
	b.Do(ctx, ok) // a success resets the run of failures
	for range 3 {
		if err := b.Do(ctx, fail); !errors.Is(err, boom) {
			t.Fatal(err)
		}
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 3 failures in a row", b.State())
	}
	before := calls
	if err := b.Do(ctx, ok); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("open breaker: %v", err)
	}
	if calls != before {
		t.Fatal("an open breaker called the backend")
	}
	// Half-open: a failed probe opens it again.
	waitState(t, b, "half-open")
	b.Do(ctx, fail)
	if b.State() != "open" {
		t.Fatalf("state %s after a failed probe", b.State())
	}
	// Two successful probes close it.
	waitState(t, b, "half-open")
	if err := b.Do(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if b.State() != "half-open" {
		t.Fatalf("state %s after one of two probes", b.State())
	}
	if err := b.Do(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after two good probes", b.State())
	}
	want := "[closed>open open>half-open half-open>open open>half-open half-open>closed]"
	if got := fmtList(changes); got != want {
		t.Fatalf("transitions %s, want %s", got, want)
	}
}

// A deadline that expired is the backend being too slow: it counts.
func TestBreakerCountsDeadlines(t *testing.T) {
	b := NewBreaker(BreakerOptions{Failures: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	b.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if b.State() != "open" {
		t.Fatalf("state %s after a deadline", b.State())
	}
}

func waitState(t *testing.T, b *Breaker, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for b.State() != s {
		if time.Now().After(deadline) {
			t.Fatalf("breaker stayed %s", b.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fmtList(ss []string) string {
	out := "["
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out + "]"
}
