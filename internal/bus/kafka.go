package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig says where the Kafka cluster is and how the topics are named.
type KafkaConfig struct {
	Brokers []string // host:port seeds (--kafka-brokers)
	// TopicPrefix goes before the topic and group names ("prod." makes
	// "prod.leaderboard.events"), so that several deployments can share a
	// cluster.
	TopicPrefix string
	ClientID    string // default "leaderboard"
	Logger      *slog.Logger
	// Opts are appended to every client's options (TLS, SASL, timeouts).
	Opts []kgo.Opt
}

// EventsTopic is the full name of the events topic.
func (c KafkaConfig) EventsTopic() string { return c.TopicPrefix + EventsTopic }

// FramesTopic is the full name of the frames topic.
func (c KafkaConfig) FramesTopic() string { return c.TopicPrefix + FramesTopic }

func (c KafkaConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c KafkaConfig) opts(extra ...kgo.Opt) []kgo.Opt {
	id := c.ClientID
	if id == "" {
		id = "leaderboard"
	}
	o := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id)}
	o = append(o, extra...)
	return append(o, c.Opts...)
}

// EnsureTopics creates the events and frames topics with partitions
// partitions and the given replication factor (-1: the broker's default)
// when they do not exist. Existing topics are left as they are.
func EnsureTopics(ctx context.Context, cfg KafkaConfig, partitions int32, replication int16) error {
	cl, err := kgo.NewClient(cfg.opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	rs, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, replication, nil, cfg.EventsTopic(), cfg.FramesTopic())
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// ProducerOptions configure a KafkaProducer.
type ProducerOptions struct {
	// Breaker, when set, makes ProduceSync fail at once with ErrBreakerOpen
	// while Kafka keeps failing, instead of each call waiting for its context.
	Breaker *Breaker
}

// KafkaProducer writes events to the events topic. It implements
// EventProducer.
type KafkaProducer struct {
	cl    *kgo.Client
	topic string
	br    *Breaker
}

// NewKafkaProducer connects lazily: it fails only on a bad configuration.
//
// The client is franz-go's default idempotent producer (acks from all
// in-sync replicas; retries keep the order and write each record once per
// producer session) with Kafka's key partitioner, so a leaderboard's events
// go to PartitionFor(leaderboard) in the order produced. Records are retried
// until they are acknowledged; ProduceSync stops waiting when its context
// ends (see ProduceSync).
func NewKafkaProducer(cfg KafkaConfig, opts ProducerOptions) (*KafkaProducer, error) {
	cl, err := kgo.NewClient(cfg.opts(
		kgo.DefaultProduceTopic(cfg.EventsTopic()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key: PartitionFor
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, err
	}
	return &KafkaProducer{cl: cl, topic: cfg.EventsTopic(), br: opts.Breaker}, nil
}

// ProduceSync implements EventProducer. It returns nil only when Kafka
// acknowledged every record. When ctx ends first it returns ctx's error, and
// the records it handed to the client may still be written later (an
// idempotent producer cannot withdraw a record it may have sent); the
// caller's retry can then write them twice, in order, and Dedup drops the
// second copies.
func (p *KafkaProducer) ProduceSync(ctx context.Context, events ...Event) error {
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		b := events[i].Leaderboard
		if b == "" || len(b) > MaxBoardLen {
			return ErrBadBoardID
		}
		recs[i] = &kgo.Record{Key: []byte(b), Value: EncodeEvent(&events[i])}
	}
	produce := func(ctx context.Context) error {
		acks := make(chan error, len(recs)) // the promises never block, even after we stop waiting
		for _, r := range recs {
			p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) { acks <- err })
		}
		var first error
		for range recs {
			select {
			case err := <-acks:
				if err != nil && first == nil {
					first = err
				}
			case <-ctx.Done():
				// Records already sent cannot be taken back by an idempotent
				// producer (the broker may have written them): they stay in
				// the client and may still be written, before anything
				// produced later. The caller retries from its cursor, and the
				// consumer drops the duplicates by version.
				return ctx.Err()
			}
		}
		return first
	}
	if p.br != nil {
		return p.br.Do(ctx, produce)
	}
	return produce(ctx)
}

// Close implements EventProducer; records still buffered fail.
func (p *KafkaProducer) Close() { p.cl.Close() }

// ConsumerOptions configure a KafkaConsumer.
type ConsumerOptions struct {
	// Group is the consumer group (default FanoutGroup), after the topic
	// prefix.
	Group string
	// FromStart makes a group with no committed offset start at the oldest
	// event instead of the end of the topic.
	FromStart bool
	// CommitInterval is how often processed offsets are committed (default
	// 1 s); they are also committed when partitions are revoked and when Run
	// ends.
	CommitInterval time.Duration
	// MaxPollRecords bounds the events of one poll (default 1000).
	MaxPollRecords int
	// SessionTimeout, HeartbeatInterval, RebalanceTimeout: the group's
	// timeouts (0: franz-go's defaults of 45 s, 3 s and 60 s).
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration
}

// KafkaConsumer is one member of a consumer group over the events topic. It
// implements EventConsumer.
type KafkaConsumer struct {
	cfg       KafkaConfig
	opts      ConsumerOptions
	ran       atomic.Bool
	malformed atomic.Uint64
}

// NewKafkaConsumer returns a consumer; Run joins the group.
func NewKafkaConsumer(cfg KafkaConfig, opts ConsumerOptions) *KafkaConsumer {
	if opts.Group == "" {
		opts.Group = FanoutGroup
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = time.Second
	}
	if opts.MaxPollRecords <= 0 {
		opts.MaxPollRecords = 1000
	}
	return &KafkaConsumer{cfg: cfg, opts: opts}
}

// Malformed counts records that did not decode; they are skipped (and
// committed), so that one bad record cannot stop a partition.
func (c *KafkaConsumer) Malformed() uint64 { return c.malformed.Load() }

// Run implements EventConsumer.
//
// The client blocks rebalances from the moment a poll returns until its
// events were handled and marked (BlockRebalanceOnPoll), so Assigned, Revoked
// and Handle never overlap, and a revoked partition's offsets are committed
// (only what was handled: AutoCommitMarks) before another member can take it.
func (c *KafkaConsumer) Run(ctx context.Context, h EventHandler) error {
	if c.ran.Swap(true) {
		return ErrRunTwice
	}
	topic := c.cfg.EventsTopic()
	log := c.cfg.logger()
	reset := kgo.NewOffset().AtEnd()
	if c.opts.FromStart {
		reset = kgo.NewOffset().AtStart()
	}
	hctx := context.WithoutCancel(ctx) // callbacks during the final leave run after ctx ended

	// A partition the group never committed starts at its end. That position
	// is resolved here (rather than left to the client), marked and
	// committed as soon as the next poll returns, so that the next owner
	// starts at the same place even if this member never handles an event
	// there; otherwise a second "start at the end" would skip the events in
	// between. A member that lost its session before that commit (Kafka
	// unreachable for longer than the session timeout) takes its own last
	// position back instead of the end.
	var (
		cl *kgo.Client
		// client is cl for franz-go's callbacks, which may run before
		// NewClient has returned (the group starts joining inside it).
		client   atomic.Pointer[kgo.Client]
		startsMu sync.Mutex
		starts   = map[int32]int64{} // resolved starts not committed yet
		known    = map[int32]int64{} // this member's next offset per partition
		atAssign = map[int32]int64{} // end offsets read when the partitions were assigned
	)
	// endsAtAssign reads the end offsets of newly assigned partitions before
	// Assigned is called, so that a partition without a commit starts no
	// later than the moment the handler learnt it owns it.
	//
	// A partition assigned again before its offsets were fetched (the member
	// rejoined in between: the fetch failed, a connection was cut, the
	// session was lost) keeps the end read at its first assignment: the
	// handler may have caused events since then, and reading the end again
	// would skip them. Earlier is safe (handlers drop what they have seen by
	// version); later loses events.
	//
	// A failed lookup is tried again (up to endsAttempts times, while the
	// group's context lasts): given up, the start would be looked up when the
	// fetch begins instead, which may be after the handler, told it owns the
	// partitions, has caused events there, and those would be skipped.
	endsAtAssign := func(actx context.Context, acl *kgo.Client, ps []int32) {
		adm := kadm.NewClient(acl)
		for attempt := 1; ; attempt++ {
			ends, err := adm.ListEndOffsets(actx, topic)
			missing := 0
			startsMu.Lock()
			for _, p := range ps {
				if _, ok := atAssign[p]; ok {
					continue // assigned before and never fetched: the earlier end stands
				}
				if err == nil {
					if e, ok := ends.Lookup(topic, p); ok && e.Err == nil {
						atAssign[p] = e.Offset
						continue
					}
				}
				if _, ok := atAssign[p]; !ok {
					missing++
				}
			}
			startsMu.Unlock()
			if missing == 0 {
				return
			}
			if attempt == endsAttempts || actx.Err() != nil {
				log.Warn("kafka: end offsets at assignment", "err", err, "partitions_missing", missing)
				return
			}
			select {
			case <-actx.Done():
			case <-time.After(endsRetryBackoff):
			}
		}
	}
	resolveStarts := func(actx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
		var fresh []int32
		for p, o := range offs[topic] {
			if o.EpochOffset().Offset < 0 {
				fresh = append(fresh, p)
			}
		}
		startsMu.Lock()
		defer startsMu.Unlock()
		if len(fresh) == 0 || c.opts.FromStart {
			clear(atAssign)
			return offs, nil
		}
		var ends kadm.ListedOffsets
		for _, p := range fresh {
			at, ok := atAssign[p]
			if !ok {
				if ends == nil {
					acl := waitClient(actx, &client)
					if acl == nil {
						return nil, actx.Err()
					}
					var err error
					if ends, err = kadm.NewClient(acl).ListEndOffsets(actx, topic); err != nil {
						return nil, err
					}
				}
				e, ok := ends.Lookup(topic, p)
				if !ok || e.Err != nil {
					return nil, fmt.Errorf("end offset of %s/%d: %v", topic, p, e.Err)
				}
				at = e.Offset
			}
			if k, ok := known[p]; ok && k < at {
				at = k
			}
			offs[topic][p] = kgo.NewOffset().At(at)
			starts[p] = at
			known[p] = at
		}
		clear(atAssign)
		return offs, nil
	}
	// markStarts marks the resolved starts for committing and reports
	// whether there were any.
	markStarts := func() bool {
		startsMu.Lock()
		defer startsMu.Unlock()
		if len(starts) == 0 {
			return false
		}
		m := map[int32]kgo.EpochOffset{}
		for p, o := range starts {
			m[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
		cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{topic: m}) // never rewinds
		clear(starts)
		return true
	}
	handled := func(p int32, next int64) {
		startsMu.Lock()
		known[p] = next
		startsMu.Unlock()
	}

	o := []kgo.Opt{
		kgo.AdjustFetchOffsetsFn(resolveStarts),
		kgo.ConsumerGroup(c.cfg.TopicPrefix + c.opts.Group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(reset),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(c.opts.CommitInterval),
		kgo.OnPartitionsAssigned(func(actx context.Context, acl *kgo.Client, m map[string][]int32) {
			client.CompareAndSwap(nil, acl)
			if ps := m[topic]; len(ps) > 0 {
				endsAtAssign(actx, acl, ps)
				h.Assigned(hctx, ps)
			}
		}),
		kgo.OnPartitionsRevoked(func(cctx context.Context, cl *kgo.Client, m map[string][]int32) {
			markStarts()
			if err := cl.CommitMarkedOffsets(cctx); err != nil {
				log.Warn("kafka: commit on revoke failed", "err", err)
			}
			if ps := m[topic]; len(ps) > 0 {
				h.Revoked(hctx, ps)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if ps := m[topic]; len(ps) > 0 {
				h.Revoked(hctx, ps)
			}
		}),
	}
	if c.opts.SessionTimeout > 0 {
		o = append(o, kgo.SessionTimeout(c.opts.SessionTimeout))
	}
	if c.opts.HeartbeatInterval > 0 {
		o = append(o, kgo.HeartbeatInterval(c.opts.HeartbeatInterval))
	}
	if c.opts.RebalanceTimeout > 0 {
		o = append(o, kgo.RebalanceTimeout(c.opts.RebalanceTimeout))
	}
	var err error
	if cl, err = kgo.NewClient(c.cfg.opts(o...)...); err != nil {
		return err
	}
	client.CompareAndSwap(nil, cl)

	var herr error
	events := make([]Event, 0, c.opts.MaxPollRecords)
	for herr == nil {
		fs := cl.PollRecords(ctx, c.opts.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			break
		}
		if markStarts() {
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				log.Warn("kafka: commit of start offsets failed", "err", err)
			}
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("kafka: fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if herr != nil || len(ftp.Records) == 0 {
				return
			}
			events = events[:0]
			for _, r := range ftp.Records {
				e, err := DecodeEvent(r.Value)
				if err != nil {
					c.malformed.Add(1)
					log.Error("kafka: malformed event skipped", "partition", r.Partition, "offset", r.Offset)
					continue
				}
				events = append(events, e)
			}
			if len(events) > 0 {
				if herr = h.Handle(ctx, ftp.Partition, events); herr != nil {
					return
				}
			}
			last := ftp.Records[len(ftp.Records)-1]
			cl.MarkCommitRecords(last)
			handled(ftp.Partition, last.Offset+1)
		})
		cl.AllowRebalance()
	}

	// Commit what was handled, then leave (the final revoke calls Revoked).
	markStarts()
	cctx, cancel := context.WithTimeout(hctx, 10*time.Second)
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		log.Warn("kafka: final commit failed", "err", err)
	}
	cancel()
	cl.CloseAllowingRebalance()
	return herr
}

// endsAttempts and endsRetryBackoff bound the lookup of a new assignment's
// end offsets (see KafkaConsumer.Run): about a second in all.
const (
	endsAttempts     = 10
	endsRetryBackoff = 100 * time.Millisecond
)

// FrameProducerOptions configure a KafkaFrameProducer.
type FrameProducerOptions struct {
	// DeliveryTimeout drops a frame not acknowledged within it (default
	// 5 s): a late frame is worth less than a resync.
	DeliveryTimeout time.Duration
	// MaxBuffered frames wait for Kafka at most (default 10000); past it
	// PublishFrame drops frames instead of blocking the fan-out.
	MaxBuffered int
}

// KafkaFrameProducer writes frames to the frames topic, asynchronously. It
// implements FrameProducer.
type KafkaFrameProducer struct {
	cl      *kgo.Client
	topic   string
	dropped atomic.Uint64
	log     *slog.Logger
}

// NewKafkaFrameProducer connects lazily: it fails only on a bad configuration.
func NewKafkaFrameProducer(cfg KafkaConfig, opts FrameProducerOptions) (*KafkaFrameProducer, error) {
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 5 * time.Second
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = 10000
	}
	cl, err := kgo.NewClient(cfg.opts(
		kgo.DefaultProduceTopic(cfg.FramesTopic()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RecordDeliveryTimeout(opts.DeliveryTimeout),
		kgo.MaxBufferedRecords(opts.MaxBuffered),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, err
	}
	return &KafkaFrameProducer{cl: cl, topic: cfg.FramesTopic(), log: cfg.logger()}, nil
}

// PublishFrame implements FrameProducer.
func (p *KafkaFrameProducer) PublishFrame(f Frame) {
	if f.Board == "" || len(f.Board) > MaxBoardLen {
		p.dropped.Add(1)
		return
	}
	r := &kgo.Record{Key: []byte(f.Board), Value: EncodeFrame(&f)}
	p.cl.TryProduce(context.Background(), r, func(_ *kgo.Record, err error) {
		if err != nil {
			if p.dropped.Add(1) == 1 || errors.Is(err, kgo.ErrMaxBuffered) {
				p.log.Debug("kafka: frame dropped", "err", err)
			}
		}
	})
}

// Dropped counts frames that were not delivered.
func (p *KafkaFrameProducer) Dropped() uint64 { return p.dropped.Load() }

// Flush implements FrameProducer.
func (p *KafkaFrameProducer) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }

// Close implements FrameProducer.
func (p *KafkaFrameProducer) Close() { p.cl.Close() }

// FrameConsumerOptions configure a KafkaFrameConsumer.
type FrameConsumerOptions struct {
	// FetchMaxWait is how long a fetch waits for new frames (default 100 ms
	// here, rather than Kafka's 500 ms: it bounds nothing when frames flow,
	// but keeps a quiet partition's first frame from waiting).
	FetchMaxWait time.Duration
}

// KafkaFrameConsumer reads the frames of watched leaderboards, without a
// consumer group. It implements FrameConsumer.
type KafkaFrameConsumer struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
	n     int // partitions of the topic
	fn    func(Frame)
	log   *slog.Logger

	mu      sync.Mutex
	watched map[string]bool
	parts   map[int32]int // partition -> watched boards on it

	cancel    context.CancelFunc
	done      chan struct{}
	once      sync.Once
	malformed atomic.Uint64
}

// NewKafkaFrameConsumer reads the frames topic's partition count (the topic
// must exist) and starts consuming; fn gets every frame of the watched
// leaderboards, from one goroutine.
func NewKafkaFrameConsumer(ctx context.Context, cfg KafkaConfig, fn func(Frame), opts FrameConsumerOptions) (*KafkaFrameConsumer, error) {
	if opts.FetchMaxWait <= 0 {
		opts.FetchMaxWait = 100 * time.Millisecond
	}
	topic := cfg.FramesTopic()
	cl, err := kgo.NewClient(cfg.opts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(opts.FetchMaxWait),
	)...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx, topic)
	if err == nil {
		err = tds.Error()
	}
	if err == nil && !tds.Has(topic) {
		err = kerr.UnknownTopicOrPartition
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("frames topic %s: %w", topic, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	fc := &KafkaFrameConsumer{
		cl: cl, adm: adm, topic: topic, n: len(tds[topic].Partitions), fn: fn, log: cfg.logger(),
		watched: map[string]bool{}, parts: map[int32]int{}, cancel: cancel, done: make(chan struct{}),
	}
	go fc.run(rctx)
	return fc, nil
}

// Partitions is the frames topic's partition count.
func (fc *KafkaFrameConsumer) Partitions() int { return fc.n }

// Malformed counts records that did not decode.
func (fc *KafkaFrameConsumer) Malformed() uint64 { return fc.malformed.Load() }

// Watch implements FrameConsumer. When board's partition is not read yet,
// Watch asks Kafka for its end offset and starts reading there, so it needs
// Kafka reachable (it fails with ctx otherwise).
func (fc *KafkaFrameConsumer) Watch(ctx context.Context, board string) error {
	if board == "" || len(board) > MaxBoardLen {
		return ErrBadBoardID
	}
	p := PartitionFor(board, fc.n)
	for {
		fc.mu.Lock()
		if fc.watched[board] {
			fc.mu.Unlock()
			return nil
		}
		if fc.parts[p] > 0 {
			// Already reading that partition: from before now, so every
			// later frame comes.
			fc.parts[p]++
			fc.watched[board] = true
			fc.mu.Unlock()
			return nil
		}
		fc.mu.Unlock()

		end, err := fc.endOffset(ctx, p)
		if err != nil {
			return err
		}
		fc.mu.Lock()
		if fc.parts[p] > 0 || fc.watched[board] {
			fc.mu.Unlock()
			continue // a concurrent Watch added the partition
		}
		fc.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{fc.topic: {p: kgo.NewOffset().At(end)}})
		fc.parts[p] = 1
		fc.watched[board] = true
		fc.mu.Unlock()
		return nil
	}
}

func (fc *KafkaFrameConsumer) endOffset(ctx context.Context, p int32) (int64, error) {
	offs, err := fc.adm.ListEndOffsets(ctx, fc.topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(fc.topic, p)
	if !ok {
		return 0, fmt.Errorf("frames topic %s: no end offset for partition %d", fc.topic, p)
	}
	if o.Err != nil {
		return 0, o.Err
	}
	return o.Offset, nil
}

// Unwatch implements FrameConsumer; the partition stops being read when no
// watched leaderboard is left on it.
func (fc *KafkaFrameConsumer) Unwatch(board string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if !fc.watched[board] {
		return
	}
	delete(fc.watched, board)
	p := PartitionFor(board, fc.n)
	if fc.parts[p]--; fc.parts[p] <= 0 {
		delete(fc.parts, p)
		fc.cl.RemoveConsumePartitions(map[string][]int32{fc.topic: {p}})
	}
}

func (fc *KafkaFrameConsumer) run(ctx context.Context) {
	defer close(fc.done)
	for {
		fs := fc.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			fc.log.Warn("kafka: frame fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			fc.mu.Lock()
			ok := fc.watched[string(r.Key)]
			fc.mu.Unlock()
			if !ok {
				return // another leaderboard on the same partition
			}
			f, err := DecodeFrame(r.Value)
			if err != nil || f.Board != string(r.Key) {
				fc.malformed.Add(1)
				return
			}
			fc.fn(f)
		})
	}
}

// Close implements FrameConsumer.
func (fc *KafkaFrameConsumer) Close() {
	fc.once.Do(func() {
		fc.cancel()
		<-fc.done
		fc.cl.Close()
	})
}

var (
	_ EventProducer = (*KafkaProducer)(nil)
	_ EventConsumer = (*KafkaConsumer)(nil)
	_ FrameProducer = (*KafkaFrameProducer)(nil)
	_ FrameConsumer = (*KafkaFrameConsumer)(nil)
	_ EventProducer = (*Local)(nil)
	_ FrameProducer = (*Local)(nil)
)

// waitClient returns the client once NewClient (or a callback that was
// handed it) has published it; callbacks can run before NewClient returns.
func waitClient(ctx context.Context, p *atomic.Pointer[kgo.Client]) *kgo.Client {
	for {
		if c := p.Load(); c != nil {
			return c
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Millisecond):
		}
	}
}
