package bus

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// LocalOptions configure a Local bus.
type LocalOptions struct {
	// Partitions of the events log (default 16): the unit of ownership in a
	// consumer group, as on Kafka.
	Partitions int
	// Capacity is how many events a partition holds that a consumer group
	// with members has not committed yet (default 65536). ProduceSync waits
	// while a partition it writes to is full: back-pressure instead of
	// unbounded memory.
	Capacity int
	// FrameQueue is the number of frames queued per frame consumer (default
	// 4096); past it frames are dropped and counted, and the gateway resyncs.
	FrameQueue int
	// MaxBatch is the most events one Handle call gets (default 512).
	MaxBatch int
}

// Local is the in-process bus: an events log with partitions, consumer
// groups and committed offsets, and direct delivery of frames. It implements
// EventProducer and FrameProducer; NewConsumer and NewFrameConsumer make the
// other sides.
type Local struct {
	opts LocalOptions

	mu     sync.Mutex
	cond   *sync.Cond // l.mu; broadcast on produce, commit, rebalance and close
	parts  []*localPart
	groups map[string]*localGroup
	closed bool

	fmu      sync.RWMutex
	watchers map[string]map[*localFrames]struct{} // board -> consumers watching it

	framesDropped atomic.Uint64
}

type localPart struct {
	base int64   // offset of recs[0]
	recs []Event // offsets base .. base+len(recs)-1
}

func (p *localPart) end() int64 { return p.base + int64(len(p.recs)) }

type localGroup struct {
	committed []int64 // per partition; -1 = nothing committed
	owner     []*localMember
	members   []*localMember // in join order
}

type localMember struct {
	g      *localGroup
	target map[int32]bool  // partitions the group gives this member
	pos    map[int32]int64 // partitions owned, next offset to hand over
}

// NewLocal returns an in-process bus.
func NewLocal(opts LocalOptions) *Local {
	if opts.Partitions <= 0 {
		opts.Partitions = 16
	}
	if opts.Capacity <= 0 {
		opts.Capacity = 65536
	}
	if opts.FrameQueue <= 0 {
		opts.FrameQueue = 4096
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	l := &Local{opts: opts, groups: map[string]*localGroup{}, watchers: map[string]map[*localFrames]struct{}{}}
	l.cond = sync.NewCond(&l.mu)
	for range opts.Partitions {
		l.parts = append(l.parts, &localPart{})
	}
	return l
}

// Partitions is the number of partitions of the events log.
func (l *Local) Partitions() int { return l.opts.Partitions }

// FramesDropped counts frames dropped because a consumer's queue was full.
func (l *Local) FramesDropped() uint64 { return l.framesDropped.Load() }

// Close stops every consumer's Run and fails every ProduceSync waiting.
func (l *Local) Close() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// wakeOn broadcasts l.cond when ctx ends; the returned func stops that.
func (l *Local) wakeOn(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
}

// ProduceSync implements EventProducer: the events are in the log (in order
// per leaderboard) when it returns nil.
func (l *Local) ProduceSync(ctx context.Context, events ...Event) error {
	for i := range events {
		if b := events[i].Leaderboard; b == "" || len(b) > MaxBoardLen {
			return ErrBadBoardID
		}
	}
	stop := l.wakeOn(ctx)
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range events {
		p := PartitionFor(events[i].Leaderboard, len(l.parts))
		for {
			if l.closed {
				return ErrClosed
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if l.parts[p].end()-l.low(p) < int64(l.opts.Capacity) {
				break
			}
			l.cond.Wait()
		}
		l.parts[p].recs = append(l.parts[p].recs, events[i])
		if len(l.parts[p].recs) > l.opts.Capacity {
			l.trim(p) // only idle groups (or none) hold it: keep at most Capacity
		}
	}
	l.cond.Broadcast()
	return nil
}

// low is the first offset of partition p some group with members still
// needs. Called with l.mu held.
func (l *Local) low(p int32) int64 {
	low := l.parts[p].end()
	for _, g := range l.groups {
		if len(g.members) > 0 && g.committed[p] >= 0 {
			low = min(low, g.committed[p])
		}
	}
	return low
}

// trim forgets the events of partition p no group needs. A group without
// members keeps its committed offsets, and the log keeps up to Capacity
// events for it (as Kafka's retention would); past that a member that comes
// back starts at the end. Called with l.mu held.
func (l *Local) trim(p int32) {
	part := l.parts[p]
	idle := part.end()
	for _, g := range l.groups {
		if len(g.members) == 0 && g.committed[p] >= 0 {
			idle = min(idle, g.committed[p])
		}
	}
	keep := min(l.low(p), max(idle, part.end()-int64(l.opts.Capacity)))
	n := keep - part.base
	if n <= 0 {
		return
	}
	clear(part.recs[:n])
	part.recs = part.recs[n:]
	part.base += n
}

// Close implements EventProducer; the bus itself stays open (see Local.Close).
func (localProducer) Close() {}

type localProducer struct{ *Local }

// Producer returns l as an EventProducer whose Close does not close l.
func (l *Local) Producer() EventProducer { return localProducer{l} }

// NewConsumer returns a member of consumer group group.
func (l *Local) NewConsumer(group string) EventConsumer {
	return &localConsumer{l: l, group: group}
}

type localConsumer struct {
	l     *Local
	group string
	ran   atomic.Bool
}

// Run implements EventConsumer.
func (c *localConsumer) Run(ctx context.Context, h EventHandler) error {
	if c.ran.Swap(true) {
		return ErrRunTwice
	}
	l := c.l
	stop := l.wakeOn(ctx)
	defer stop()

	l.mu.Lock()
	g := l.groups[c.group]
	if g == nil {
		g = &localGroup{committed: make([]int64, len(l.parts)), owner: make([]*localMember, len(l.parts))}
		for i := range g.committed {
			g.committed[i] = -1
		}
		l.groups[c.group] = g
	}
	m := &localMember{g: g, pos: map[int32]int64{}}
	g.members = append(g.members, m)
	l.rebalance(g)
	l.mu.Unlock()

	err := c.loop(ctx, m, h)

	// Leave: give back every partition, then let the others take them.
	l.mu.Lock()
	owned := m.owned()
	l.mu.Unlock()
	if len(owned) > 0 {
		h.Revoked(context.WithoutCancel(ctx), owned)
	}
	l.mu.Lock()
	for _, p := range owned {
		g.owner[p] = nil
	}
	g.members = slices.DeleteFunc(g.members, func(x *localMember) bool { return x == m })
	l.rebalance(g)
	for p := range l.parts {
		l.trim(int32(p))
	}
	l.mu.Unlock()
	return err
}

func (m *localMember) owned() []int32 {
	ps := make([]int32, 0, len(m.pos))
	for p := range m.pos {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// rebalance gives partition p to member p mod n (in join order). A member
// lets go of what it lost before the new owner takes it (see loop), so a
// partition is never handled by two members at once. Called with l.mu held.
func (l *Local) rebalance(g *localGroup) {
	for i, m := range g.members {
		m.target = map[int32]bool{}
		for p := i; p < len(l.parts); p += len(g.members) {
			m.target[int32(p)] = true
		}
	}
	l.cond.Broadcast()
}

func (c *localConsumer) loop(ctx context.Context, m *localMember, h EventHandler) error {
	l, g := c.l, m.g
	next := int32(0) // round robin over owned partitions
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed || ctx.Err() != nil {
			return nil
		}
		// Let go of partitions the group moved elsewhere.
		var revoked []int32
		for _, p := range m.owned() {
			if !m.target[p] {
				revoked = append(revoked, p)
			}
		}
		if len(revoked) > 0 {
			l.mu.Unlock()
			h.Revoked(ctx, revoked)
			l.mu.Lock()
			for _, p := range revoked {
				delete(m.pos, p)
				g.owner[p] = nil
			}
			l.cond.Broadcast()
			continue
		}
		// Take partitions given to this member once their last owner let go.
		var assigned []int32
		for p := range int32(len(l.parts)) {
			if m.target[p] && g.owner[p] == nil {
				g.owner[p] = m
				start := g.committed[p]
				if start < l.parts[p].base {
					// Nothing committed, or committed before what the log
					// still holds: start at the end.
					start = l.parts[p].end()
					g.committed[p] = start
				}
				m.pos[p] = start
				assigned = append(assigned, p)
			}
		}
		if len(assigned) > 0 {
			l.mu.Unlock()
			h.Assigned(ctx, assigned)
			l.mu.Lock()
			continue
		}
		// Hand over one batch of the next partition that has events.
		p, batch := c.nextBatch(m, &next)
		if batch == nil {
			l.cond.Wait()
			continue
		}
		l.mu.Unlock()
		err := h.Handle(ctx, p, batch)
		l.mu.Lock()
		if err != nil {
			return err
		}
		if _, ok := m.pos[p]; ok {
			m.pos[p] += int64(len(batch))
			g.committed[p] = m.pos[p]
			l.trim(p)
			l.cond.Broadcast() // a producer may wait for room
		}
	}
}

// nextBatch copies the next events of an owned partition, round robin from
// *next. Called with l.mu held.
func (c *localConsumer) nextBatch(m *localMember, next *int32) (int32, []Event) {
	l := c.l
	n := int32(len(l.parts))
	for i := range n {
		p := (*next + i) % n
		pos, ok := m.pos[p]
		if !ok {
			continue
		}
		part := l.parts[p]
		if pos < part.base {
			pos = part.base // only after a reset; not reached while the group holds the log
			m.pos[p] = pos
		}
		if pos >= part.end() {
			continue
		}
		k := min(part.end()-pos, int64(l.opts.MaxBatch))
		i0 := pos - part.base
		*next = (p + 1) % n
		return p, slices.Clone(part.recs[i0 : i0+k])
	}
	return 0, nil
}

// PublishFrame implements FrameProducer: f is queued for every consumer
// watching its leaderboard, or dropped for one whose queue is full.
func (l *Local) PublishFrame(f Frame) {
	l.fmu.RLock()
	defer l.fmu.RUnlock()
	for fc := range l.watchers[f.Board] {
		select {
		case fc.q <- localItem{f: f}:
		default:
			l.framesDropped.Add(1)
		}
	}
}

// Flush implements FrameProducer: it returns once every consumer handed the
// frames queued before it to its callback.
func (l *Local) Flush(ctx context.Context) error {
	l.fmu.RLock()
	seen := map[*localFrames]bool{}
	for _, fcs := range l.watchers {
		for fc := range fcs {
			seen[fc] = true
		}
	}
	l.fmu.RUnlock()
	for fc := range seen {
		done := make(chan struct{})
		select {
		case fc.q <- localItem{done: done}:
		case <-fc.stop:
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-done:
		case <-fc.stop:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// FrameProducer returns l as a FrameProducer whose Close does not close l.
func (l *Local) FrameProducer() FrameProducer { return localFrameProducer{l} }

type localFrameProducer struct{ *Local }

func (localFrameProducer) Close() {}

type localItem struct {
	f    Frame
	done chan struct{} // a Flush marker
}

type localFrames struct {
	l       *Local
	fn      func(Frame)
	q       chan localItem
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once

	mu      sync.Mutex
	watched map[string]bool
}

// NewFrameConsumer returns a frame consumer calling fn, from one goroutine,
// for every frame of the leaderboards it watches.
func (l *Local) NewFrameConsumer(fn func(Frame)) FrameConsumer {
	fc := &localFrames{l: l, fn: fn, q: make(chan localItem, l.opts.FrameQueue), stop: make(chan struct{}), watched: map[string]bool{}}
	fc.stopped.Add(1)
	go fc.run()
	return fc
}

func (fc *localFrames) run() {
	defer fc.stopped.Done()
	for {
		select {
		case <-fc.stop:
			return
		case it := <-fc.q:
			if it.done != nil {
				close(it.done)
				continue
			}
			fc.mu.Lock()
			ok := fc.watched[it.f.Board]
			fc.mu.Unlock()
			if ok {
				fc.fn(it.f)
			}
		}
	}
}

// Watch implements FrameConsumer.
func (fc *localFrames) Watch(ctx context.Context, board string) error {
	if board == "" || len(board) > MaxBoardLen {
		return ErrBadBoardID
	}
	select {
	case <-fc.stop:
		return ErrClosed
	default:
	}
	fc.mu.Lock()
	fc.watched[board] = true
	fc.mu.Unlock()
	fc.l.fmu.Lock()
	if fc.l.watchers[board] == nil {
		fc.l.watchers[board] = map[*localFrames]struct{}{}
	}
	fc.l.watchers[board][fc] = struct{}{}
	fc.l.fmu.Unlock()
	return nil
}

// Unwatch implements FrameConsumer.
func (fc *localFrames) Unwatch(board string) {
	fc.mu.Lock()
	delete(fc.watched, board)
	fc.mu.Unlock()
	fc.l.fmu.Lock()
	if w := fc.l.watchers[board]; w != nil {
		delete(w, fc)
		if len(w) == 0 {
			delete(fc.l.watchers, board)
		}
	}
	fc.l.fmu.Unlock()
}

// Close implements FrameConsumer.
func (fc *localFrames) Close() {
	fc.once.Do(func() {
		fc.mu.Lock()
		boards := make([]string, 0, len(fc.watched))
		for b := range fc.watched {
			boards = append(boards, b)
		}
		fc.mu.Unlock()
		for _, b := range boards {
			fc.Unwatch(b)
		}
		close(fc.stop)
		fc.stopped.Wait()
	})
}
