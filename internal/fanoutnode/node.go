// Package fanoutnode is the fan-out tier of the scaled-out deployment (the
// process role "fanout"): it turns the events topic into encoded frames on
// the frames topic, once per segment, for every gateway.
//
// # Ownership by partitions
//
// Fan-out nodes share the events topic in one consumer group. A leaderboard
// is owned by the node that holds its partition (bus.PartitionFor(board,
// Partitions)), so each leaderboard has one owner at a time and its frames
// come from one node. The node learns what to compute from the subscription
// registry: every RegistryPoll it reads the leaderboards watched anywhere
// (the Boards of every live gateway, plus the leaderboards named by the
// registry's change notifications) and, for each one it owns, the segments
// that have viewers (registry.Segments). Each segment gets one virtual
// subscriber on an internal fanout.Hub; the hub reads windows from the
// ranking store (Source), coalesces each flush interval, diffs and encodes
// once, exactly as in the single-process deployment. A segment no longer
// registered is unsubscribed and its stored snapshot deleted.
//
// Events pass through bus.Dedup first: a redelivered version (after a
// handover, or a relay retry) is dropped; a gap or a new epoch means the
// hub missed changes, so that leaderboard's virtual subscriptions are
// dropped and made again from a fresh read (gateways then get a snapshot
// frame for each segment).
//
// # Frames, and the snapshot-before-update rule
//
// The hub hands frames to the virtual subscribers under its lock; they are
// queued (bounded) and one goroutine drains the queue in order. A full queue
// never blocks the hub: the subscription is dropped and made again, which
// yields a snapshot. For each frame:
//
//   - snapshot: stored in segsnap (Put), then produced as bus.KindSnapshot;
//   - update: the segment's current snapshot (hub.SegmentSnapshot, whose
//     version is at least the update's) is stored first, then the update is
//     produced as bus.KindUpdate with its PrevVersion. A gateway that starts
//     watching the frames and then reads segsnap at version S therefore finds
//     every update after S still to come: the first it forwards has
//     prev_version S. When the snapshot cannot be stored the update is not
//     produced, and the segment is made again (snapshot frame);
//   - status: produced as bus.KindStatus with Segment "" (whole message);
//   - resync: the segment is made again.
//
// The Payload of snapshot and update frames is the hub's Frame.Body, what
// follows the per-subscription prefix, so a gateway writes
// fanout.Prefix(type, localID) followed by Payload to each viewer, and the
// bytes are identical on every gateway.
//
// # Rebalance
//
// On Revoked the node drops the virtual subscriptions of the leaderboards of
// those partitions, before it returns (frames still queued for them are
// discarded, so nothing of theirs is produced after the partition moved),
// and forgets their dedup state. It does not delete their stored snapshots:
// the new owner continues from them. The new owner, on Assigned, reads the
// registry at once and subscribes from fresh reads: each segment's frames
// restart with a snapshot frame whose version is at least the last one the
// previous owner produced (the store only moves forward).
package fanoutnode

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/registry"
	"github.com/lbhq/leaderboard/internal/segsnap"
)

// Options configure a Node. Source, Events, Frames, Registry, Snapshots and
// Partitions are required.
type Options struct {
	Source    fanout.Source      // the ranking store the hub reads windows from
	Events    bus.EventConsumer  // a member of the fan-out consumer group on the events topic
	Frames    bus.FrameProducer  // the frames topic
	Registry  *registry.Registry // which segments have viewers
	Snapshots *segsnap.Store     // where segment snapshots go for gateways
	// Partitions is the partition count of the events topic (bus.PartitionFor).
	Partitions int
	// Epoch is the ranking store's epoch.
	Epoch string
	// FlushInterval, Phases and History configure the hub (defaults 100 ms,
	// 4, 60 s). Each segment has one (virtual) subscriber here, so phases
	// only spread the segments' flushes over the window.
	FlushInterval, History time.Duration
	Phases                 int
	// RegistryPoll is how often the registry is read (default 250 ms).
	RegistryPoll time.Duration
	// Queue bounds the frames waiting to be stored and produced (default 8192).
	Queue  int
	Logger *slog.Logger
}

// Stats are a node's counters.
type Stats struct {
	Snapshots   uint64 // snapshot frames produced
	Updates     uint64 // update frames produced
	Statuses    uint64 // status frames produced
	Resubscribe uint64 // segments made again (overflow, gap, failed store)
	Overflows   uint64 // frames refused because the queue was full
	Errors      uint64 // failed registry, segsnap or subscribe calls
	Segments    int    // virtual subscriptions now
}

// Node is one fan-out process. Create it with New and call Run.
type Node struct {
	o     Options
	log   *slog.Logger
	hub   *fanout.Hub
	dedup *bus.Dedup
	q     chan item

	pollNow chan struct{} // read the registry for every owned board now
	fixNow  chan struct{} // remake stale segments now

	mu     sync.Mutex
	owned  map[int32]bool
	subs   map[string]map[string]*vsub // board -> segment key -> virtual subscription
	want   map[string][]string         // board -> segments registered (last successful read)
	known  map[string]bool             // boards named by change notifications
	dirty  map[string]bool             // boards to read again at once
	status map[string]string           // board -> the last status message produced

	ran                                           atomic.Bool
	nSnap, nUpd, nStatus, nResub, nOverflow, nErr atomic.Uint64
}

// New checks opts and returns a node.
func New(opts Options) (*Node, error) {
	switch {
	case opts.Source == nil, opts.Events == nil, opts.Frames == nil, opts.Registry == nil, opts.Snapshots == nil:
		return nil, errors.New("fanoutnode: Source, Events, Frames, Registry and Snapshots are required")
	case opts.Partitions <= 0:
		return nil, errors.New("fanoutnode: Partitions must be the events topic's partition count")
	}
	if opts.RegistryPoll <= 0 {
		opts.RegistryPoll = 250 * time.Millisecond
	}
	if opts.Queue <= 0 {
		opts.Queue = 8192
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		o: opts, log: log, dedup: bus.NewDedup(), q: make(chan item, opts.Queue),
		pollNow: make(chan struct{}, 1), fixNow: make(chan struct{}, 1),
		owned: map[int32]bool{}, subs: map[string]map[string]*vsub{}, want: map[string][]string{},
		known: map[string]bool{}, dirty: map[string]bool{}, status: map[string]string{},
	}
	n.hub = fanout.New(opts.Source, fanout.Options{
		Epoch: opts.Epoch, FlushInterval: opts.FlushInterval, Phases: opts.Phases, History: opts.History, Logger: log,
	})
	return n, nil
}

// Hub is the node's internal hub (for metrics).
func (n *Node) Hub() *fanout.Hub { return n.hub }

// Owns reports whether board's partition is assigned to this node now.
func (n *Node) Owns(board string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owns(board)
}

func (n *Node) owns(board string) bool { return n.owned[bus.PartitionFor(board, n.o.Partitions)] }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	segs := 0
	for _, m := range n.subs {
		segs += len(m)
	}
	n.mu.Unlock()
	return Stats{
		Snapshots: n.nSnap.Load(), Updates: n.nUpd.Load(), Statuses: n.nStatus.Load(),
		Resubscribe: n.nResub.Load(), Overflows: n.nOverflow.Load(), Errors: n.nErr.Load(), Segments: segs,
	}
}

// Run consumes events until ctx ends (nil) or the consumer fails (its
// error). Before returning it gives back its partitions (the consumer calls
// Revoked) and flushes the frames produced.
func (n *Node) Run(ctx context.Context) error {
	if n.ran.Swap(true) {
		return errors.New("fanoutnode: Run called twice")
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { n.hub.Run(rctx) })
	wg.Go(func() { n.drain(rctx) })
	wg.Go(func() { n.segmentsLoop(rctx) })
	wg.Go(func() { n.watchChanges(rctx) })
	err := n.o.Events.Run(rctx, bus.HandlerFuncs{
		OnAssigned: n.assigned,
		OnRevoked:  n.revoked,
		OnEvents:   n.handle,
	})
	cancel()
	wg.Wait()
	n.dropAll()
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer fcancel()
	if ferr := n.o.Frames.Flush(fctx); ferr != nil {
		n.log.Warn("fanout node: flushing frames at exit", "err", ferr)
	}
	return err
}

// ---- the events side ----

func (n *Node) assigned(_ context.Context, partitions []int32) {
	n.mu.Lock()
	for _, p := range partitions {
		n.owned[p] = true
	}
	n.mu.Unlock()
	n.log.Info("fanout node: partitions assigned", "partitions", partitions)
	signal(n.pollNow)
}

func (n *Node) revoked(_ context.Context, partitions []int32) {
	n.mu.Lock()
	for _, p := range partitions {
		delete(n.owned, p)
	}
	// vs.sub is read under n.mu: a subscribe may be setting it (a
	// subscription still being made is unsubscribed by subscribe itself).
	var gone []*fanout.Subscription
	for board, segs := range n.subs {
		if slices.Contains(partitions, bus.PartitionFor(board, n.o.Partitions)) {
			for _, vs := range segs {
				vs.dead = true
				if vs.sub != nil {
					gone = append(gone, vs.sub)
				}
			}
			delete(n.subs, board)
			delete(n.want, board)
			delete(n.status, board)
		}
	}
	n.mu.Unlock()
	for _, sub := range gone {
		n.hub.Unsubscribe(sub)
	}
	n.dedup.ForgetPartitions(partitions, n.o.Partitions)
	n.log.Info("fanout node: partitions revoked", "partitions", partitions, "segments", len(gone))
}

func (n *Node) handle(_ context.Context, _ int32, events []bus.Event) error {
	remake := false
	for i := range events {
		e := &events[i]
		switch v := n.dedup.Check(e); v {
		case bus.Duplicate:
			continue
		case bus.Gap, bus.NewEpoch:
			if v == bus.NewEpoch && e.Epoch != n.o.Epoch {
				n.log.Warn("fanout node: event of another epoch", "leaderboard", e.Leaderboard, "epoch", e.Epoch, "ours", n.o.Epoch)
			}
			n.markBoardStale(e.Leaderboard)
			remake = true
		}
		n.hub.Publish(e.Event)
	}
	if remake {
		signal(n.fixNow)
	}
	return nil
}

// markBoardStale makes every segment of board be made again from a fresh read.
func (n *Node) markBoardStale(board string) {
	n.mu.Lock()
	for _, vs := range n.subs[board] {
		vs.stale.Store(true)
	}
	n.mu.Unlock()
}

// ---- segments: the registry side ----

func (n *Node) segmentsLoop(ctx context.Context) {
	t := time.NewTicker(n.o.RegistryPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.poll(ctx, true)
		case <-n.pollNow:
			n.poll(ctx, true)
		case <-n.fixNow:
			n.poll(ctx, false)
		}
	}
}

// poll reads the registry (every watched board when all, else only the
// boards change notifications named) and then reconciles the virtual
// subscriptions of owned boards with it.
func (n *Node) poll(ctx context.Context, all bool) {
	var boards map[string]bool
	if all {
		boards = map[string]bool{}
		gws, err := n.o.Registry.Gateways(ctx)
		if err != nil {
			n.fail("registry gateways", "", err)
		}
		for _, g := range gws {
			for _, b := range g.Boards {
				boards[b] = true
			}
		}
	}
	n.mu.Lock()
	if all {
		for b := range n.known {
			boards[b] = true
		}
		for b := range n.subs {
			boards[b] = true
		}
		for b := range n.want {
			boards[b] = true
		}
		clear(n.dirty)
	} else {
		boards = n.dirty
		n.dirty = map[string]bool{}
	}
	var read []string
	for b := range boards {
		if n.owns(b) {
			read = append(read, b)
		}
	}
	n.mu.Unlock()

	for _, b := range read {
		segs, err := n.o.Registry.Segments(ctx, b)
		if err != nil {
			if ctx.Err() == nil {
				n.fail("registry segments", b, err)
			}
			continue
		}
		n.mu.Lock()
		if !n.owns(b) {
			n.mu.Unlock()
			continue
		}
		if len(segs.Keys) == 0 {
			delete(n.want, b)
			delete(n.known, b)
		} else {
			n.want[b] = segs.Keys
		}
		n.mu.Unlock()
	}
	n.reconcile(ctx)
}

// reconcile makes the virtual subscriptions match n.want: it removes the
// segments no longer registered (deleting their snapshots), remakes stale
// ones and adds missing ones.
func (n *Node) reconcile(ctx context.Context) {
	type add struct{ board, key string }
	var remove []*vsub
	var drop []*fanout.Subscription
	var adds []add
	remade := 0
	n.mu.Lock()
	for board, segs := range n.subs {
		if !n.owns(board) {
			continue // Revoked drops these, and keeps their snapshots
		}
		want := n.want[board]
		for key, vs := range segs {
			switch {
			case !slices.Contains(want, key):
				remove = append(remove, vs)
			case vs.stale.Load():
				remade++
			default:
				continue
			}
			vs.dead = true
			if vs.sub != nil {
				drop = append(drop, vs.sub)
			}
			delete(segs, key)
		}
		if len(segs) == 0 {
			delete(n.subs, board)
		}
	}
	for board, keys := range n.want {
		if !n.owns(board) {
			delete(n.want, board)
			continue
		}
		for _, key := range keys {
			if n.subs[board][key] == nil {
				adds = append(adds, add{board, key})
			}
		}
	}
	n.mu.Unlock()

	for _, sub := range drop {
		n.hub.Unsubscribe(sub)
	}
	n.nResub.Add(uint64(remade))
	// The deletions go through the queue, behind the frames already queued
	// for those segments (a queued snapshot must not land after the delete).
	for _, vs := range remove {
		select {
		case n.q <- item{vs: vs, del: true}:
		case <-ctx.Done():
			return
		}
	}
	for _, a := range adds {
		if ctx.Err() != nil {
			return
		}
		n.subscribe(ctx, a.board, a.key)
	}
}

// subscribe adds the virtual subscriber of one segment.
func (n *Node) subscribe(ctx context.Context, board, key string) {
	spec, err := fanout.ParseSpecKey(key)
	if err != nil {
		n.fail("segment key", board, err)
		return
	}
	vs := &vsub{n: n, board: board, key: key}
	n.mu.Lock()
	if !n.owns(board) || n.subs[board][key] != nil {
		n.mu.Unlock()
		return
	}
	// Installed before Subscribe, so that Revoked finds it while the hub is
	// still reading the window.
	if n.subs[board] == nil {
		n.subs[board] = map[string]*vsub{}
	}
	n.subs[board][key] = vs
	n.mu.Unlock()

	sub, err := n.hub.Subscribe(ctx, board, "fanout", spec, nil, "", vs, func(*fanout.Subscription) { vs.markStale() })
	n.mu.Lock()
	if err != nil {
		if n.subs[board][key] == vs {
			delete(n.subs[board], key)
			if len(n.subs[board]) == 0 {
				delete(n.subs, board)
			}
		}
		vs.dead = true
		n.mu.Unlock()
		if ctx.Err() == nil {
			n.fail("subscribe", board, err)
		}
		return
	}
	vs.sub = sub
	dead := vs.dead
	n.mu.Unlock()
	if dead { // revoked meanwhile
		n.hub.Unsubscribe(sub)
	}
}

// dropAll unsubscribes whatever is left (after Run's consumer returned).
func (n *Node) dropAll() {
	n.mu.Lock()
	var all []*fanout.Subscription
	for _, segs := range n.subs {
		for _, vs := range segs {
			vs.dead = true
			if vs.sub != nil {
				all = append(all, vs.sub)
			}
		}
	}
	clear(n.subs)
	clear(n.want)
	n.mu.Unlock()
	for _, sub := range all {
		n.hub.Unsubscribe(sub)
	}
}

// watchChanges notes the boards named by the registry's change
// notifications (a gateway's new board is known there before its next
// heartbeat lists it) and reads them at once.
func (n *Node) watchChanges(ctx context.Context) {
	for ctx.Err() == nil {
		err := n.o.Registry.Changes(ctx, func(board string) {
			n.mu.Lock()
			n.known[board] = true
			n.dirty[board] = true
			n.mu.Unlock()
			signal(n.fixNow)
		})
		if ctx.Err() != nil {
			return
		}
		n.fail("registry changes", "", err)
		select {
		case <-ctx.Done():
		case <-time.After(n.o.RegistryPoll):
		}
	}
}

func (n *Node) fail(what, board string, err error) {
	n.nErr.Add(1)
	n.log.Warn("fanout node: "+what+" failed", "leaderboard", board, "err", err)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ---- the virtual subscribers and the drainer ----

// vsub is the node's one subscriber of one segment. sub and dead are
// guarded by n.mu; once dead is set, nothing of this subscription is
// produced any more.
type vsub struct {
	n          *Node
	board, key string
	sub        *fanout.Subscription
	dead       bool
	stale      atomic.Bool // to be made again (queue full, gap, failed store)
}

type item struct {
	vs  *vsub
	f   fanout.Frame
	del bool // delete the segment's stored snapshot
}

// Send implements fanout.Sink. The hub calls it under its lock: it never blocks.
func (vs *vsub) Send(f fanout.Frame) bool {
	if f.Type == "subscribed" {
		return true // nothing to produce; it must not take a queue slot
	}
	select {
	case vs.n.q <- item{vs: vs, f: f}:
		return true
	default:
		vs.n.nOverflow.Add(1)
		vs.markStale() // the hub drops the subscription; it is made again
		return false
	}
}

func (vs *vsub) markStale() {
	vs.stale.Store(true)
	signal(vs.n.fixNow)
}

func (n *Node) drain(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.q:
			n.process(ctx, it)
		}
	}
}

func (n *Node) process(ctx context.Context, it item) {
	vs := it.vs
	if it.del {
		if err := n.o.Snapshots.Delete(ctx, vs.board, vs.key); err != nil && ctx.Err() == nil {
			n.fail("segsnap delete", vs.board, err)
		}
		return
	}
	f := it.f
	switch f.Type {
	case "snapshot":
		if !n.alive(vs) {
			return
		}
		if err := n.o.Snapshots.Put(ctx, vs.board, vs.key, f.Version, f.Body); err != nil {
			n.storeFailed(ctx, vs, err)
			return
		}
		if n.publish(vs, bus.Frame{Board: vs.board, Segment: vs.key, Kind: bus.KindSnapshot, Version: f.Version, Payload: f.Body}) {
			n.nSnap.Add(1)
		}
	case "update":
		if !n.alive(vs) {
			return
		}
		// Snapshot first: its version is at least the update's (segsnap's rule).
		v, body, ok := n.hub.SegmentSnapshot(vs.board, vs.key)
		if !ok || v < f.Version {
			vs.markStale() // the segment left the hub meanwhile
			return
		}
		if err := n.o.Snapshots.Put(ctx, vs.board, vs.key, v, body); err != nil {
			n.storeFailed(ctx, vs, err)
			return
		}
		if n.publish(vs, bus.Frame{Board: vs.board, Segment: vs.key, Kind: bus.KindUpdate, Version: f.Version, PrevVersion: f.PrevVersion, Payload: f.Body}) {
			n.nUpd.Add(1)
		}
	case "status":
		// The hub sends a status once per subscriber; produce it once per board.
		payload := f.AppendJSON(nil)
		n.mu.Lock()
		dup := n.status[vs.board] == string(payload)
		n.status[vs.board] = string(payload)
		n.mu.Unlock()
		if dup {
			return
		}
		if n.publish(vs, bus.Frame{Board: vs.board, Kind: bus.KindStatus, Version: f.Version, Payload: payload}) {
			n.nStatus.Add(1)
		}
	case "resync":
		vs.markStale()
	}
	// Anything else: nothing to produce.
}

func (n *Node) alive(vs *vsub) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !vs.dead
}

// publish produces f unless vs was dropped meanwhile. The check and the
// (non-blocking) produce share n.mu with Revoked, so once Revoked returned
// nothing more of those boards is produced here.
func (n *Node) publish(vs *vsub, f bus.Frame) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if vs.dead {
		return false
	}
	n.o.Frames.PublishFrame(f)
	return true
}

// storeFailed: the frame is not produced (an update without its snapshot
// stored would break the rule gateways rely on); the segment is made again,
// which yields a snapshot frame once Redis answers.
func (n *Node) storeFailed(ctx context.Context, vs *vsub, err error) {
	if ctx.Err() != nil {
		return
	}
	n.fail("segsnap put", vs.board, err)
	vs.markStale()
}
