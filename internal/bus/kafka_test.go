package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/bus/bustest"
)

// cutListener is a broker's listener that can be cut: every open connection
// is closed and new ones are closed as soon as they are accepted, so Kafka is
// unreachable while its state (topics, offsets, groups) stays as it was.
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func (l *cutListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.(*trackedConn).Conn.Close()
	}
	clear(l.conns)
}

func (l *cutListener) heal() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	l *cutListener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

type cluster struct {
	*kfake.Cluster
	ln  *cutListener
	cfg bus.KafkaConfig
}

// newCluster starts kfake with one broker on a loopback port and both topics
// seeded with partitions partitions.
func newCluster(t testing.TB, partitions int32) *cluster {
	t.Helper()
	var ln *cutListener
	kc, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, bus.EventsTopic, bus.FramesTopic),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			inner, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			ln = &cutListener{Listener: inner, conns: map[net.Conn]struct{}{}}
			return ln, nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	cfg := bus.KafkaConfig{
		Brokers: kc.ListenAddrs(),
		Opts: []kgo.Opt{
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			kgo.DialTimeout(time.Second),
		},
	}
	return &cluster{Cluster: kc, ln: ln, cfg: cfg}
}

func consumerOptions(group string) bus.ConsumerOptions {
	return bus.ConsumerOptions{
		Group:             group,
		CommitInterval:    200 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		RebalanceTimeout:  10 * time.Second,
	}
}

// collector is a consumer of its own group that records every event it is
// handed, duplicates included.
type collector struct {
	mu     sync.Mutex
	got    []bus.Event
	cancel context.CancelFunc
	done   chan error
}

// startCollector runs a collector in group and returns once it has been
// assigned its partitions; onAssigned, if not nil, runs in Assigned first.
func startCollector(t *testing.T, c *cluster, group string, onAssigned func()) *collector {
	t.Helper()
	col := &collector{done: make(chan error, 1)}
	var ctx context.Context
	ctx, col.cancel = context.WithCancel(context.Background())
	t.Cleanup(col.cancel)
	assigned := make(chan struct{}, 1)
	cons := bus.NewKafkaConsumer(c.cfg, consumerOptions(group))
	go func() {
		col.done <- cons.Run(ctx, bus.HandlerFuncs{
			OnAssigned: func(context.Context, []int32) {
				if onAssigned != nil {
					onAssigned()
				}
				select {
				case assigned <- struct{}{}:
				default:
				}
			},
			OnEvents: func(_ context.Context, _ int32, evs []bus.Event) error {
				col.mu.Lock()
				col.got = append(col.got, evs...)
				col.mu.Unlock()
				return nil
			},
		})
	}()
	<-assigned
	return col
}

// events returns a copy of what the collector received, in order.
func (col *collector) events() []bus.Event {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]bus.Event(nil), col.got...)
}

// distinct is the number of different events received.
func (col *collector) distinct() int {
	seen := map[bus.Event]bool{}
	for _, e := range col.events() {
		seen[e] = true
	}
	return len(seen)
}

// stop ends the consumer and fails the test if Run returned an error.
func (col *collector) stop(t *testing.T) {
	t.Helper()
	col.cancel()
	if err := <-col.done; err != nil {
		t.Fatal(err)
	}
}

func kafkaHarness(t *testing.T) *bustest.Env {
	c := newCluster(t, 8)
	p, err := bus.NewKafkaProducer(c.cfg, bus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	fp, err := bus.NewKafkaFrameProducer(c.cfg, bus.FrameProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fp.Close)
	return &bustest.Env{
		Partitions: 8,
		Producer:   p,
		NewConsumer: func(group string) bus.EventConsumer {
			return bus.NewKafkaConsumer(c.cfg, consumerOptions(group))
		},
		FrameProducer: fp,
		NewFrameConsumer: func(fn func(bus.Frame)) (bus.FrameConsumer, error) {
			ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
			defer cancel()
			return bus.NewKafkaFrameConsumer(ctx, c.cfg, fn, bus.FrameConsumerOptions{})
		},
	}
}

func TestKafkaConformance(t *testing.T) { bustest.Run(t, kafkaHarness) }

// Records land in PartitionFor(key): the producer's partitioner and the
// function gateways use agree.
func TestKafkaPartitionForMatchesProducer(t *testing.T) {
	c := newCluster(t, 7)
	cl, err := kgo.NewClient(append(c.cfg.Opts, kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.DefaultProduceTopic(bus.EventsTopic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "board-%d", i), Value: []byte("x")})
	}
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if want := bus.PartitionFor(string(r.Key), 7); r.Partition != want {
			t.Fatalf("%s went to partition %d, PartitionFor says %d", r.Key, r.Partition, want)
		}
	}
}

// Kafka unreachable: ProduceSync blocks until its context ends (it never
// claims an ack it did not get); when Kafka is back, production resumes and
// a relay that retried from its outbox cursor loses nothing (the consumer
// drops the duplicates by version).
func TestKafkaOutageAndResume(t *testing.T) {
	c := newCluster(t, 4)
	p, err := bus.NewKafkaProducer(c.cfg, bus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	col := startCollector(t, c, "outage", nil)

	// A relay: one leaderboard's outbox, produced in order, the cursor moved
	// only past what ProduceSync acknowledged.
	boards := []string{"alpha", "beta", "gamma"}
	cursor := map[string]uint64{}
	relay := func(upTo uint64, timeout time.Duration) error {
		for _, b := range boards {
			for cursor[b] < upTo {
				var batch []bus.Event
				for v := cursor[b] + 1; v <= min(upTo, cursor[b]+5); v++ {
					batch = append(batch, bustest.Ev(b, v))
				}
				pctx, pcancel := context.WithTimeout(context.Background(), timeout)
				err := p.ProduceSync(pctx, batch...)
				pcancel()
				if err != nil {
					return err
				}
				cursor[b] = batch[len(batch)-1].Version
			}
		}
		return nil
	}
	if err := relay(10, bustest.Wait); err != nil {
		t.Fatal(err)
	}

	c.ln.cut()
	err = relay(20, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ProduceSync with Kafka unreachable returned %v, want the context's deadline", err)
	}
	// Retried while still down: each attempt gives up with its context.
	for range 3 {
		if err := relay(20, 100*time.Millisecond); err == nil {
			t.Fatal("ProduceSync succeeded while Kafka was unreachable")
		}
	}
	c.ln.heal()
	if err := relay(30, bustest.Wait); err != nil {
		t.Fatalf("ProduceSync after Kafka came back: %v", err)
	}

	d := bus.NewDedup()
	deadline := time.Now().Add(bustest.Wait)
	for col.distinct() < 30*len(boards) {
		if time.Now().After(deadline) {
			seq := map[string][]uint64{}
			for _, e := range col.events() {
				seq[e.Leaderboard] = append(seq[e.Leaderboard], e.Version)
			}
			t.Fatalf("gave up waiting for every version; received %v", seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	col.stop(t)
	got := col.events()
	dups := 0
	last := map[string]uint64{}
	for _, e := range got {
		switch v := d.Check(&e); v {
		case bus.Duplicate:
			dups++
		case bus.First, bus.Next:
			last[e.Leaderboard] = e.Version
		default:
			t.Fatalf("%s: %s at version %d", e.Leaderboard, v, e.Version)
		}
	}
	for _, b := range boards {
		if last[b] != 30 {
			t.Errorf("%s: last version %d, want 30", b, last[b])
		}
	}
	t.Logf("%d events received for %d, %d duplicates dropped", len(got), 30*len(boards), dups)
}

// With a breaker, ProduceSync stops waiting for Kafka once it has failed
// enough times in a row, and Kafka's return closes it again.
func TestKafkaProducerBreaker(t *testing.T) {
	c := newCluster(t, 2)
	var mu sync.Mutex
	var states []string
	br := bus.NewBreaker(bus.BreakerOptions{Name: "kafka", Failures: 2, OpenFor: 200 * time.Millisecond,
		OnStateChange: func(_, _, to string) { mu.Lock(); states = append(states, to); mu.Unlock() }})
	p, err := bus.NewKafkaProducer(c.cfg, bus.ProducerOptions{Breaker: br})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(v uint64, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return p.ProduceSync(ctx, bustest.Ev("b", v))
	}
	if err := produce(1, bustest.Wait); err != nil {
		t.Fatal(err)
	}
	c.ln.cut()
	for v := uint64(2); v <= 3; v++ {
		if err := produce(v, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("produce while down: %v", err)
		}
	}
	if br.State() != "open" {
		t.Fatalf("breaker %s after 2 failures, want open", br.State())
	}
	// Open: fails without waiting for the context (an hour here).
	if err := produce(4, time.Hour); !errors.Is(err, bus.ErrBreakerOpen) {
		t.Fatalf("produce with the breaker open: %v", err)
	}
	c.ln.heal()
	bustest.WaitFor(t, "the breaker to let a probe through and close", func() bool {
		return produce(5, bustest.Wait) == nil
	})
	if br.State() != "closed" {
		t.Fatalf("breaker %s after a successful probe", br.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != "[open half-open closed]" {
		t.Fatalf("transitions %v", states)
	}
}

// A gateway's Watch needs Kafka for the partition's end offset: with Kafka
// down it fails with its context; after, it works and frames flow.
func TestKafkaWatchDuringOutage(t *testing.T) {
	c := newCluster(t, 4)
	var mu sync.Mutex
	var got []bus.Frame
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
	defer cancel()
	fc, err := bus.NewKafkaFrameConsumer(ctx, c.cfg, func(f bus.Frame) { mu.Lock(); got = append(got, f); mu.Unlock() }, bus.FrameConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	c.ln.cut()
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	err = fc.Watch(short, "b1")
	cancelShort()
	if err == nil {
		t.Fatal("Watch succeeded with Kafka unreachable")
	}
	c.ln.heal()
	if err := fc.Watch(ctx, "b1"); err != nil {
		t.Fatalf("Watch after Kafka came back: %v", err)
	}
	fp, err := bus.NewKafkaFrameProducer(c.cfg, bus.FrameProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	fp.PublishFrame(bus.Frame{Board: "b1", Segment: "top:100", Version: 2, PrevVersion: 1, Payload: []byte("{}")})
	if err := fp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, "the frame", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
}

func TestEnsureTopics(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cfg := bus.KafkaConfig{Brokers: kc.ListenAddrs(), TopicPrefix: "test."}
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Wait)
	defer cancel()
	for range 2 { // the second time they exist already
		if err := bus.EnsureTopics(ctx, cfg, 6, 1); err != nil {
			t.Fatal(err)
		}
	}
	fc, err := bus.NewKafkaFrameConsumer(ctx, cfg, func(bus.Frame) {}, bus.FrameConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if fc.Partitions() != 6 {
		t.Fatalf("frames topic has %d partitions, want 6", fc.Partitions())
	}
}

// TestKafkaStartsAtAssignmentDespiteFailedLookup: a new group's partitions
// start where they ended when the handler learnt it owned them, even when the
// first lookup of those end offsets fails: the events produced right after
// Assigned are all delivered. (With the failure ignored, the start was looked
// up again later, after those events, and they were skipped.)
func TestKafkaStartsAtAssignmentDespiteFailedLookup(t *testing.T) {
	c := newCluster(t, 4)
	// The first lookup of end offsets fails; any lookup after Assigned waits
	// until the test has produced (as a slow one on a loaded machine would).
	var failed, wasAssigned atomic.Bool
	produced := make(chan struct{})
	c.ControlKey(int16(kmsg.ListOffsets), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if failed.Load() {
			if wasAssigned.Load() {
				c.SleepControl(func() { <-produced })
			}
			return nil, nil, false
		}
		failed.Store(true)
		req := kreq.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	col := startCollector(t, c, "lookup", func() { wasAssigned.Store(true) })
	produceAfterAssigned(t, c, col, produced)
}

// produceAfterAssigned produces 10 events to each of two boards (col has
// been assigned its partitions), closes produced, and waits until col has
// received every one of them.
func produceAfterAssigned(t *testing.T, c *cluster, col *collector, produced chan struct{}) {
	t.Helper()
	p, err := bus.NewKafkaProducer(c.cfg, bus.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var evs []bus.Event
	for v := uint64(1); v <= 10; v++ {
		evs = append(evs, bustest.Ev("alpha", v), bustest.Ev("beta", v))
	}
	if err := p.ProduceSync(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	close(produced)
	deadline := time.Now().Add(15 * time.Second) // delivered within milliseconds when right
	for n := col.distinct(); n < len(evs); n = col.distinct() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d events produced after Assigned were delivered", n, len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	col.stop(t)
}

// A member that rejoins between its assignment and its first offset fetch
// (here: the fetch fails with an error that makes franz-go rejoin, as a cut
// connection or a lost session does) is assigned the same partitions again.
// The events produced after the first Assigned must still be delivered: the
// start is the end offset read at the first assignment, not at the second.
func TestKafkaStartsAtFirstAssignmentDespiteRejoin(t *testing.T) {
	c := newCluster(t, 4)
	var fetchFailed, wasAssigned atomic.Bool
	produced := make(chan struct{})
	c.ControlKey(int16(kmsg.OffsetFetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !wasAssigned.Load() || fetchFailed.Swap(true) {
			return nil, nil, false
		}
		req := kreq.(*kmsg.OffsetFetchRequest)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.SetVersion(req.GetVersion())
		resp.ErrorCode = kerr.UnknownMemberID.Code
		for _, rg := range req.Groups {
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group = rg.Group
			g.ErrorCode = kerr.UnknownMemberID.Code
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil, true
	})
	// The rejoin waits until the test has produced.
	c.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if fetchFailed.Load() {
			c.SleepControl(func() { <-produced })
		}
		return nil, nil, false
	})
	col := startCollector(t, c, "rejoin", func() { wasAssigned.Store(true) })
	produceAfterAssigned(t, c, col, produced)
	if !fetchFailed.Load() {
		t.Fatal("the offset fetch was never failed: the test did not test the rejoin")
	}
}
