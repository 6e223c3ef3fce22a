package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

func redisStore(t *testing.T) *redisstore.Store {
	t.Helper()
	c, err := redisstore.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, Prefix: redistest.Prefix(t, "lbrelay")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// flaky is a producer that fails while down is set, producing nothing.
type flaky struct {
	bus.EventProducer
	down atomic.Bool
}

func (f *flaky) ProduceSync(ctx context.Context, evs ...bus.Event) error {
	if f.down.Load() {
		return errors.New("broker unreachable")
	}
	return f.EventProducer.ProduceSync(ctx, evs...)
}

// collector consumes events and checks each leaderboard's versions arrive
// in order with no gap and no repeat.
type collector struct {
	t      *testing.T
	mu     sync.Mutex
	last   map[string]uint64
	total  int
	epochs map[string]bool
}

func (c *collector) handler() bus.HandlerFuncs {
	return bus.HandlerFuncs{OnEvents: func(_ context.Context, _ int32, evs []bus.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range evs {
			if e.Version != c.last[e.Leaderboard]+1 {
				c.t.Errorf("%s: version %d after %d", e.Leaderboard, e.Version, c.last[e.Leaderboard])
			}
			c.last[e.Leaderboard] = e.Version
			c.epochs[e.Epoch] = true
			c.total++
		}
		return nil
	}}
}

// consume runs a member of consumer group "g" of local with h until ctx ends,
// and returns once the member holds its partitions. A member of a group that
// committed nothing starts at the end of the log (as on Kafka with the latest
// offset), so an event produced before that is never handed to it: a test
// that produces right after starting its consumer must wait for this.
func consume(ctx context.Context, t *testing.T, local *bus.Local, h bus.HandlerFuncs) {
	t.Helper()
	assigned := make(chan struct{})
	var once sync.Once
	onAssigned := h.OnAssigned
	h.OnAssigned = func(ctx context.Context, p []int32) {
		if onAssigned != nil {
			onAssigned(ctx, p)
		}
		once.Do(func() { close(assigned) })
	}
	go local.NewConsumer("g").Run(ctx, h)
	select {
	case <-assigned:
	case <-time.After(20 * time.Second):
		t.Fatal("the consumer was never assigned its partitions")
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func submit(t *testing.T, st store.Store, boards []string, n int) {
	t.Helper()
	ctx := context.Background()
	for _, b := range boards {
		subs := make([]store.Submission, n)
		for i := range subs {
			subs[i] = store.Submission{ParticipantID: fmt.Sprintf("p%d", rand.IntN(1_000_000)), Score: rand.Uint64N(1000), AchievedAt: 1}
		}
		res := make([]store.Result, n)
		if err := st.Submit(ctx, b, subs, res); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelayResumesAfterOutage: events reach the bus in version order; while
// the bus is down nothing is lost (the outbox keeps filling and the cursor
// stays), and delivery resumes when it returns; a new relay continues from
// the saved cursors without repeating anything.
func TestRelayResumesAfterOutage(t *testing.T) {
	st := redisStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	boards := []string{"a", "b", "c"}
	for _, b := range boards {
		if err := st.CreateBoard(ctx, b, store.BoardOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	local := bus.NewLocal(bus.LocalOptions{Partitions: 4})
	defer local.Close()
	col := &collector{t: t, last: map[string]uint64{}, epochs: map[string]bool{}}
	consume(ctx, t, local, col.handler())
	prod := &flaky{EventProducer: local.Producer()}
	opts := Options{Client: st.Client(), CursorKey: "relay-test-cursors:" + fmt.Sprint(rand.Uint64()), Interval: 5 * time.Millisecond, Batch: 64}
	defer st.Client().Del(context.Background(), opts.CursorKey)

	submit(t, st, boards, 100)
	r1 := New(st, prod, opts)
	r1ctx, stopR1 := context.WithCancel(ctx)
	r1done := make(chan struct{})
	go func() { r1.Run(r1ctx); close(r1done) }()
	waitFor(t, "the first 300 events", func() bool { return col.count() == 300 })

	prod.down.Store(true)
	submit(t, st, boards, 50)
	waitFor(t, "a failed produce", func() bool { return r1.Stats().Failures > 0 })
	if n := col.count(); n != 300 {
		t.Fatalf("%d events delivered while the bus was down", n)
	}
	prod.down.Store(false)
	waitFor(t, "the events queued in the outbox during the outage", func() bool { return col.count() == 450 })
	stopR1()
	<-r1done

	// A new relay (a restart) continues from the cursors in Redis.
	submit(t, st, boards, 10)
	r2 := New(st, prod, opts)
	go r2.Run(ctx)
	waitFor(t, "the events after the restart", func() bool { return col.count() == 480 })
	time.Sleep(50 * time.Millisecond) // a repeat would arrive now
	if n := col.count(); n != 480 {
		t.Fatalf("%d events after the restart, want 480 (a repeat)", n)
	}
	for _, b := range boards {
		if col.last[b] != 160 {
			t.Fatalf("%s ends at version %d, want 160", b, col.last[b])
		}
	}
	if len(col.epochs) != 1 || !col.epochs[st.Epoch()] {
		t.Fatalf("epochs %v, want only %s", col.epochs, st.Epoch())
	}
}

// TestRelayIntoKafka: the same path through Kafka (franz-go against kfake on
// loopback TCP).
func TestRelayIntoKafka(t *testing.T) {
	st := redisStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "relay."+bus.EventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cfg := bus.KafkaConfig{Brokers: kc.ListenAddrs(), TopicPrefix: "relay."}
	prod, err := bus.NewKafkaProducer(cfg, bus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cons := bus.NewKafkaConsumer(cfg, bus.ConsumerOptions{Group: "g", FromStart: true})
	col := &collector{t: t, last: map[string]uint64{}, epochs: map[string]bool{}}
	go cons.Run(ctx, col.handler())
	for _, b := range []string{"x", "y"} {
		if err := st.CreateBoard(ctx, b, store.BoardOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	submit(t, st, []string{"x", "y"}, 200)
	opts := Options{Client: st.Client(), CursorKey: "relay-test-cursors:" + fmt.Sprint(rand.Uint64())}
	defer st.Client().Del(context.Background(), opts.CursorKey)
	go New(st, prod, opts).Run(ctx)
	waitFor(t, "400 events through Kafka", func() bool { return col.count() == 400 })
	if col.last["x"] != 200 || col.last["y"] != 200 {
		t.Fatalf("last versions %v", col.last)
	}
}

func TestLaterStreamIDs(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"2-0", "1-9", true}, {"1-10", "1-9", true}, {"1-9", "1-10", false}, {"1-1", "", true}, {"", "1-1", false}, {"x", "1-1", false}} {
		if got := later(c.a, c.b); got != c.want {
			t.Errorf("later(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// stopAfterProduce is a producer that, once armed, stops its relay (cancels
// the relay's context) right after the bus acknowledged a batch: the stop
// arrives between the produce and the saving of the cursor.
type stopAfterProduce struct {
	bus.EventProducer
	stop  atomic.Pointer[context.CancelFunc]
	count atomic.Int64
}

func (p *stopAfterProduce) ProduceSync(ctx context.Context, evs ...bus.Event) error {
	err := p.EventProducer.ProduceSync(ctx, evs...)
	p.count.Add(int64(len(evs)))
	if stop := p.stop.Swap(nil); err == nil && stop != nil {
		(*stop)()
	}
	return err
}

// TestRelayStoppedRightAfterAProduceKeepsItsCursor: the events the bus
// acknowledged are recorded in the cursor even when the relay is stopped at
// that moment, so the next relay does not produce them again. (The cursor was
// saved with the relay's own context, cancelled by the stop: the save failed
// and the successor repeated the batch.)
func TestRelayStoppedRightAfterAProduceKeepsItsCursor(t *testing.T) {
	st := redisStore(t)
	ctx := context.Background()
	if err := st.CreateBoard(ctx, "s", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	local := bus.NewLocal(bus.LocalOptions{Partitions: 2})
	defer local.Close()
	col := &collector{t: t, last: map[string]uint64{}, epochs: map[string]bool{}}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consume(cctx, t, local, col.handler())
	opts := Options{Client: st.Client(), CursorKey: "relay-test-cursors:" + fmt.Sprint(rand.Uint64()), Interval: 5 * time.Millisecond, Batch: 64}
	defer st.Client().Del(context.Background(), opts.CursorKey)

	submit(t, st, []string{"s"}, 20)
	prod := &stopAfterProduce{EventProducer: local.Producer()}
	r1ctx, stopR1 := context.WithCancel(ctx)
	prod.stop.Store(&stopR1)
	r1done := make(chan struct{})
	go func() { New(st, prod, opts).Run(r1ctx); close(r1done) }()
	<-r1done
	if n := prod.count.Load(); n != 20 {
		t.Fatalf("the first relay produced %d events before its stop, want the 20", n)
	}

	submit(t, st, []string{"s"}, 5)
	go New(st, prod, opts).Run(cctx)
	waitFor(t, "the events after the restart", func() bool { return col.count() == 25 })
	time.Sleep(50 * time.Millisecond) // a repeat would arrive now
	if n := prod.count.Load(); n != 25 || col.count() != 25 {
		t.Fatalf("%d events produced, %d delivered; want 25 each (the stopped relay's batch produced again)", n, col.count())
	}
}
