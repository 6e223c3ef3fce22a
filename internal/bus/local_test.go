package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/bus/bustest"
)

func localHarness(t *testing.T) *bustest.Env {
	l := bus.NewLocal(bus.LocalOptions{Partitions: 8, MaxBatch: 16})
	t.Cleanup(l.Close)
	return &bustest.Env{
		Partitions:    l.Partitions(),
		Producer:      l.Producer(),
		NewConsumer:   l.NewConsumer,
		FrameProducer: l.FrameProducer(),
		NewFrameConsumer: func(fn func(bus.Frame)) (bus.FrameConsumer, error) {
			return l.NewFrameConsumer(fn), nil
		},
	}
}

func TestLocalConformance(t *testing.T) { bustest.Run(t, localHarness) }

// A consumer group that falls Capacity events behind holds the producer back
// until it catches up (or the producer's context ends).
func TestLocalBackPressure(t *testing.T) {
	l := bus.NewLocal(bus.LocalOptions{Partitions: 1, Capacity: 4})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	assigned := make(chan struct{})
	release := make(chan struct{})
	got := make(chan int, 100)
	done := make(chan error, 1)
	go func() {
		done <- l.NewConsumer("g").Run(ctx, bus.HandlerFuncs{
			OnAssigned: func(context.Context, []int32) { close(assigned) },
			OnEvents: func(_ context.Context, _ int32, evs []bus.Event) error {
				<-release
				got <- len(evs)
				return nil
			},
		})
	}()
	<-assigned
	for v := uint64(1); v <= 4; v++ {
		if err := l.ProduceSync(ctx, bustest.Ev("b", v)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	err := l.ProduceSync(short, bustest.Ev("b", 5))
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ProduceSync into a full partition: %v, want the context's deadline", err)
	}
	close(release)
	if err := l.ProduceSync(ctx, bustest.Ev("b", 5)); err != nil {
		t.Fatalf("ProduceSync after the consumer caught up: %v", err)
	}
	n := 0
	for n < 5 {
		n += <-got
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Without a consumer group nothing is kept: a group that joins later starts
// at the end, as on Kafka.
func TestLocalNoGroupKeepsNothing(t *testing.T) {
	l := bus.NewLocal(bus.LocalOptions{Partitions: 2, Capacity: 2})
	defer l.Close()
	ctx := context.Background()
	for v := uint64(1); v <= 10; v++ {
		if err := l.ProduceSync(ctx, bustest.Ev("b", v)); err != nil {
			t.Fatalf("ProduceSync %d with no group: %v", v, err)
		}
	}
	l.Close()
	if err := l.ProduceSync(ctx, bustest.Ev("b", 11)); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("ProduceSync after Close: %v", err)
	}
}
