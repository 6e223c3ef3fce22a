package bus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/bus/bustest"
)

// BenchmarkThroughput: events produced (ProduceSync, batches of 100 across
// 100 leaderboards, 4 producers) and consumed (one group member) per second.
// Over kfake this measures the client path and an in-process broker on
// loopback TCP, not a real Kafka cluster (no disk, no replication):
//
//	go test ./internal/bus -run '^$' -bench Throughput -benchtime 200000x
func BenchmarkThroughput(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		l := bus.NewLocal(bus.LocalOptions{Partitions: 16})
		defer l.Close()
		benchThroughput(b, l.Producer(), l.NewConsumer("bench"))
	})
	b.Run("kfake", func(b *testing.B) {
		c := newCluster(b, 16)
		p, err := bus.NewKafkaProducer(c.cfg, bus.ProducerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		benchThroughput(b, p, bus.NewKafkaConsumer(c.cfg, consumerOptions("bench")))
	})
}

func benchThroughput(b *testing.B, p bus.EventProducer, c bus.EventConsumer) {
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	assigned := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, bus.HandlerFuncs{
			OnAssigned: func(context.Context, []int32) {
				select {
				case assigned <- struct{}{}:
				default:
				}
			},
			OnEvents: func(_ context.Context, _ int32, evs []bus.Event) error {
				got.Add(int64(len(evs)))
				return nil
			},
		})
	}()
	<-assigned
	const producers, batch, boards = 4, 100, 100
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			evs := make([]bus.Event, 0, batch)
			v := uint64(0)
			for i := w; i < b.N; i += producers * batch {
				evs = evs[:0]
				v++
				for j := 0; j < batch && i+j*producers < b.N; j++ {
					evs = append(evs, bustest.Ev(fmt.Sprintf("w%d-b%d", w, j%(boards/producers)), v))
				}
				if err := p.ProduceSync(ctx, evs...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
