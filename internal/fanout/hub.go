// Package fanout turns a leaderboard's stream of rank changes into versioned,
// coalesced updates for the windows viewers watch.
//
// Viewers subscribe to segments: the top N of a leaderboard (one segment per N
// in use), one participant, or the ranks around one participant. Every flush
// interval the hub takes the union of rank ranges the leaderboard's changes
// touched, and for each segment that range can have affected it reads the
// segment's window, diffs it against what the segment last sent, encodes the
// update once, and hands the same bytes to every subscriber of that segment.
// Nothing in that path is proportional to the number of viewers except the
// final hand-over; segments far from any change cost nothing.
//
// A segment's subscribers are split into phases (Options.Phases, default 4),
// each flushed at its own offset within the window: phase k of every segment
// is flushed every window, k/Phases of a window after phase 0. Each
// subscription still gets at most one update per window, but a node with
// many viewers writes a quarter of them at a time instead of all of them at
// the end of each window, so a change waits for its window and then for a
// quarter of the writes, not for the window and then for all of them.
//
// All subscribers of one phase of a segment share its version: a new
// subscriber gets the phase's last state as its snapshot, so one encoded
// update fits all of them. A sink that implements Phaser (a WebSocket
// connection) puts all its subscriptions in one phase, so their frames leave
// together.
package fanout

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
)

// Source reads the current state of windows; store.Store implements it.
type Source interface {
	Page(ctx context.Context, board string, offset, limit int) (store.Page, error)
	Around(ctx context.Context, board, participant string, limit int) (store.Page, error)
	Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error)
	Stats(ctx context.Context, board string) (store.Stats, error)
}

// Sink receives the frames of one connection (or one SSE stream, or one long
// poll). Send must not block; it returns false when the connection's queue is
// full, and the hub then takes that subscription off the segment and calls
// the subscription's drop callback.
type Sink interface {
	Send(f Frame) bool
}

// Phaser is implemented by a sink that chooses its phase (any number; it is
// taken modulo Options.Phases). Sinks without it are given phases in turn.
type Phaser interface {
	Phase() uint32
}

// Options configure a Hub.
type Options struct {
	Epoch         string        // the store's epoch
	FlushInterval time.Duration // coalescing window (default 100 ms)
	History       time.Duration // how far back a resume is served by one update (default 60 s)
	// Phases splits each window into this many flush ticks; a subscription
	// is flushed at one of them (default 4; 1 flushes everyone together).
	Phases int
	// Status returns a leaderboard's status as last announced through
	// Hub.Status ("" when unknown). It is called with the board's lock held,
	// so it must not block; a subscription to a leaderboard that is not
	// active is told its status at once (nil: never).
	Status func(board string) string
	Logger *slog.Logger
	Now    func() time.Time
}

// Hub fans out every leaderboard's changes. It implements store.EventSink.
type Hub struct {
	src  Source
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	boards map[string]*boardHub

	nextPhase atomic.Uint32 // for sinks that are not Phasers

	stats Stats
}

// Stats are counters for metrics.
type Stats struct {
	mu          sync.Mutex
	Flushes     uint64 // segment updates encoded
	Frames      uint64 // frames handed to sinks
	Bytes       uint64 // bytes handed to sinks
	Dropped     uint64 // subscriptions dropped as slow
	Snapshots   uint64
	CatchUps    uint64
	Conflated   uint64 // merged updates made for connections that fell behind
	SegmentsNow int
}

// New returns a hub reading windows from src. Call Run to start flushing.
func New(src Source, opts Options) *Hub {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.History <= 0 {
		opts.History = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Phases <= 0 {
		opts.Phases = 4
	}
	h := &Hub{src: src, opts: opts, log: opts.Logger, boards: map[string]*boardHub{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// Epoch is the epoch the hub's versions belong to.
func (h *Hub) Epoch() string { return h.opts.Epoch }

// FlushInterval is the coalescing window.
func (h *Hub) FlushInterval() time.Duration { return h.opts.FlushInterval }

// Phases is the number of flush ticks per window.
func (h *Hub) Phases() int { return h.opts.Phases }

// boardHub is the fan-out state of one leaderboard.
//
// Two locks: evMu guards only the change log (Publish takes it from inside
// the store's write lock, so it is held for a few instructions), mu guards
// segments and their subscribers (held while frames are handed over). Lock
// order: mu before evMu; store locks are never taken while holding either.
type boardHub struct {
	id string

	evMu      sync.Mutex
	open      bucket   // changes since the last flush
	hist      []bucket // closed buckets, oldest first
	histStart uint64   // every change with a version above this is in open or hist
	histKnown bool
	// through: every change up to this version has reached the log (or
	// predates histStart). A store may publish a change after a read has
	// seen it (the Redis store publishes once its script returned), so a
	// window can be at a version the log does not reach yet; a catch-up to
	// it built from the log would leave out that change's positions.
	through uint64

	mu       sync.Mutex
	segments map[string]*segGroup
	pending  []bucket // per phase: the union of the buckets closed since its last flush
	stale    []bool   // per phase: some segment must be read again at its next flush (see markIfMissed)
	// byPhase lists, per phase, the segments installed in that phase of a
	// group in segments: a tick looks at its phase's segments only.
	byPhase [][]*segment
	// idleSince is when the board last had no segment; zero while it has
	// some. gone is set when the hub forgot the board (see forgetIdle): a
	// Subscribe holding it starts again on a new one.
	idleSince time.Time
	gone      bool
}

// bucket is the union of rank ranges changed by versions from..to.
type bucket struct {
	from, to uint64
	lo, hi   int64     // ranks; hi = math.MaxInt64 for "to the end"
	at       time.Time // closed (last closed into, for a merged bucket)
	start    time.Time // first closed
	any      bool
	// removal: one of the changes removed a participant, the only change
	// after which someone ranked before is not ranked now.
	removal bool
}

func (b *bucket) add(version uint64, lo, hi int64) {
	if !b.any {
		b.from, b.lo, b.hi, b.any = version, lo, hi, true
	} else {
		b.lo, b.hi = min(b.lo, lo), max(b.hi, hi)
	}
	b.to = version
}

// union widens b to cover o as well.
func (b *bucket) union(o bucket) {
	if !o.any {
		return
	}
	if !b.any {
		*b = o
		return
	}
	b.from, b.to = min(b.from, o.from), max(b.to, o.to)
	b.lo, b.hi = min(b.lo, o.lo), max(b.hi, o.hi)
	b.removal = b.removal || o.removal
}

// segGroup is one distinct window: its subscribers, split by phase.
type segGroup struct {
	key    string
	spec   Spec
	phases []*segment // nil until a subscriber joins the phase; kept while the window has subscribers (see dropEmpty)
}

// subscribed reports whether any phase has a subscriber.
func (g *segGroup) subscribed() bool {
	for _, s := range g.phases {
		if s != nil && len(s.subs) > 0 {
			return true
		}
	}
	return false
}

// newest is the phase state with the highest version.
func (g *segGroup) newest() *segment {
	var n *segment
	for _, s := range g.phases {
		if s != nil && (n == nil || s.version > n.version) {
			n = s
		}
	}
	return n
}

// segment is one phase of a window: its subscribers, and the state they have
// been sent.
type segment struct {
	key     string
	phase   int
	group   *segGroup
	spec    Spec
	version uint64
	list    listState
	part    partState
	subs    map[*Subscription]struct{}
	snap    []byte // the encoded snapshot of this version, shared by new subscribers
	// merged caches Conflate's bodies from earlier versions to this one: the
	// connections of a phase that fell behind together share them.
	merged map[[2]uint64][]byte
	stale  bool // installed after a flush that missed it; read again at the next flush
	at     int  // index in bh.byPhase[phase]
}

// Subscription is one subscriber of one segment.
type Subscription struct {
	ID     string
	Board  string
	Spec   Spec
	sink   Sink
	onDrop func(*Subscription)

	seg           *segment
	board         *boardHub
	updatePrefix  []byte
	snapPrefix    []byte
	dropped, gone bool
}

// Publish implements store.EventSink. It runs inside the store's write lock:
// it only records the rank range the change touched.
func (h *Hub) Publish(e store.Event) {
	h.mu.Lock()
	bh := h.boards[e.Leaderboard]
	h.mu.Unlock()
	if bh == nil {
		return // nobody has watched this leaderboard: no history needed
	}
	lo, hi := changedRanks(&e)
	removal := e.Removed
	bh.evMu.Lock()
	if !bh.histKnown || e.Version-1 < bh.histStart {
		// The log now starts just before this change and holds it, but not
		// yet the changes after it up to through: a read saw them, and they
		// are published after this one (the Redis store publishing after
		// its script returned, or a backlog of other processes' changes
		// read page by page). Until they are in, a catch-up to a version
		// past this one would be built without them.
		bh.histStart, bh.histKnown, bh.through = e.Version-1, true, e.Version
	} else if e.Version > bh.through+1 {
		// The store skipped versions (the Redis store after its outbox was
		// trimmed, or a process that starts following a board others wrote):
		// their changes never reach the log, and through would claim them.
		// Anything may have changed: every window is read at the next flush
		// and a catch-up across them carries all of its window.
		lo, hi, removal = 1, math.MaxInt64, true
	}
	bh.open.add(e.Version, lo, hi)
	bh.open.removal = bh.open.removal || removal
	bh.through = max(bh.through, e.Version)
	bh.evMu.Unlock()
}

// changedRanks is the range of ranks whose occupant or score a change can
// have altered. An entry or exit shifts every rank below it.
func changedRanks(e *store.Event) (int64, int64) {
	switch {
	case e.Removed:
		return e.OldRank, math.MaxInt64
	case !e.HadOld:
		return e.NewRank, math.MaxInt64
	}
	return min(e.OldRank, e.NewRank), max(e.OldRank, e.NewRank)
}

func (h *Hub) boardHub(id string) *boardHub {
	h.mu.Lock()
	defer h.mu.Unlock()
	bh := h.boards[id]
	if bh == nil {
		bh = &boardHub{id: id, segments: map[string]*segGroup{},
			pending: make([]bucket, h.opts.Phases), stale: make([]bool, h.opts.Phases),
			byPhase: make([][]*segment, h.opts.Phases)}
		h.boards[id] = bh
	}
	return bh
}

// Watched returns the leaderboards that have viewers (at least one segment)
// now, in no particular order.
func (h *Hub) Watched() []string {
	h.mu.Lock()
	boards := make([]*boardHub, 0, len(h.boards))
	for _, bh := range h.boards {
		boards = append(boards, bh)
	}
	h.mu.Unlock()
	ids := make([]string, 0, len(boards))
	for _, bh := range boards {
		bh.mu.Lock()
		if len(bh.segments) > 0 {
			ids = append(ids, bh.id)
		}
		bh.mu.Unlock()
	}
	return ids
}

// ErrNotFound is returned by Subscribe for a leaderboard that does not exist.
var ErrNotFound = errors.New("leaderboard not found")

// Exists reports whether a leaderboard exists (ErrNotFound when it does not).
func (h *Hub) Exists(ctx context.Context, board string) error {
	_, err := h.src.Stats(ctx, board)
	return mapErr(err)
}

// Dropped reports whether the hub took this subscription off its segment
// because its sink refused a frame.
func (s *Subscription) Dropped() bool {
	s.board.mu.Lock()
	defer s.board.mu.Unlock()
	return s.dropped
}

// Subscribe adds a subscriber and sends it `subscribed` and then a snapshot,
// or, when since names a version this process still has the history for, one
// update from that version. onDrop is called (outside hub locks) when the sink
// refused a frame; the subscription is then off the hot path, and the caller
// may Subscribe again later.
func (h *Hub) Subscribe(ctx context.Context, board, id string, spec Spec, since *uint64, epoch string, sink Sink, onDrop func(*Subscription)) (*Subscription, error) {
	if _, err := h.src.Stats(ctx, board); err != nil {
		if errors.Is(err, store.ErrBoardNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	bh := h.boardHub(board)
	key := spec.Key()
	phase := h.phaseOf(sink)
	bh.mu.Lock()
	grp := bh.segments[key]
	bh.mu.Unlock()
	if grp == nil {
		// Read outside the hub's locks (the store takes its own); the hub
		// exists already, so every change after this read is recorded.
		fresh, err := h.read(ctx, board, spec)
		if err != nil {
			return nil, err
		}
		bh.noteRead(fresh.version)
		bh.mu.Lock()
		if grp = bh.segments[key]; grp == nil {
			grp = &segGroup{key: key, spec: spec, phases: make([]*segment, h.opts.Phases)}
			fresh.key, fresh.phase, fresh.group = key, phase, grp
			grp.phases[phase] = fresh
			bh.index(fresh)
			bh.segments[key] = grp
			bh.markIfMissed(fresh)
		}
		bh.mu.Unlock()
	}
	sub := &Subscription{
		ID: id, Board: board, Spec: spec, sink: sink, onDrop: onDrop, board: bh,
		updatePrefix: Prefix("update", id), snapPrefix: Prefix("snapshot", id),
	}
	bh.mu.Lock()
	grp = bh.segments[key] // may have been replaced by a concurrent unsubscribe + subscribe
	if grp == nil || bh.gone {
		// Or the board was forgotten meanwhile (idle): start again on the
		// hub's current state of it.
		bh.mu.Unlock()
		return h.Subscribe(ctx, board, id, spec, since, epoch, sink, onDrop)
	}
	seg := grp.phases[phase]
	if seg != nil && len(seg.subs) > 0 && since != nil && epoch == h.opts.Epoch && *since > seg.version {
		// A resume from a state this phase has not reached yet: the client's
		// last message came from a phase that ticked after this one. Join a
		// phase that has reached it (one catch-up update) rather than send
		// the client back to an older snapshot.
		if n := grp.newest(); n.version >= *since {
			seg = n
		}
	}
	switch {
	case seg == nil:
		// The first subscriber of this phase starts from the newest state of
		// another phase. Changes after it may have been flushed to that
		// phase only, so this one reads the window again at its next flush.
		n := grp.newest()
		seg = &segment{key: key, phase: phase, group: grp, spec: spec, version: n.version,
			list: n.list, part: n.part, snap: n.snap, subs: map[*Subscription]struct{}{}, stale: true}
		grp.phases[phase] = seg
		bh.index(seg)
	case len(seg.subs) == 0:
		// A phase kept without subscribers (its flushes skipped it): start
		// from the newest state, and read again at its next flush.
		if n := grp.newest(); n != seg && n.version > seg.version {
			seg.version, seg.list, seg.part, seg.snap, seg.stale = n.version, n.list, n.part, n.snap, true
			seg.merged = nil
		}
	}
	if seg.stale {
		bh.stale[seg.phase] = true
	}
	sub.seg = seg
	seg.subs[sub] = struct{}{}
	first := []Frame{SubscribedFrame(id, spec.Kind.String(), seg.version, h.opts.Epoch), h.initial(bh, seg, sub, since, epoch)}
	ok := sink.Send(first[0]) && sink.Send(first[1])
	if ok && h.opts.Status != nil {
		// Read under the board's lock, which Status takes to send a change:
		// a change announced after this read reaches this subscription after
		// this notice, so the last status a viewer gets is the current one.
		if st := h.opts.Status(board); st != "" && st != "active" {
			sink.Send(StatusFrame(st, seg.version)) // a full queue loses only this notice, as in Status
		}
	}
	if !ok {
		delete(seg.subs, sub)
		sub.dropped = true
		h.dropEmpty(bh, seg)
	}
	bh.mu.Unlock()
	if !ok && onDrop != nil {
		onDrop(sub)
	}
	return sub, nil
}

// maxMerged bounds the bodies a segment caches for Conflate per version.
const maxMerged = 8

// Conflate returns one update that takes sub from version from to version
// to, in place of the updates between them that its sink has not written
// yet (a connection that fell behind): the same frame a resume from from
// would get. ok is false when it cannot be made: to is no longer the
// subscription's current version (a later update is on its way, and the
// merged one must end where the queued ones end), the subscription left
// the hot path, or the history no longer reaches from. The body is encoded
// once per segment phase, versions and from: connections that fell behind
// together share it.
func (h *Hub) Conflate(sub *Subscription, from, to uint64) (Frame, bool) {
	bh := sub.board
	bh.mu.Lock()
	defer bh.mu.Unlock()
	seg := sub.seg
	if sub.dropped || sub.gone || seg == nil || seg.version != to || from >= to {
		return Frame{}, false
	}
	if _, ok := seg.subs[sub]; !ok {
		return Frame{}, false
	}
	key := [2]uint64{from, to}
	body := seg.merged[key]
	if body == nil {
		lo, hi, _, ok := bh.changedSince(from, to)
		if !ok {
			return Frame{}, false
		}
		body = seg.catchUp(from, lo, hi)
		if len(seg.merged) < maxMerged {
			if seg.merged == nil {
				seg.merged = map[[2]uint64][]byte{}
			}
			seg.merged[key] = body
		}
	}
	h.count(func(s *Stats) { s.Conflated++ })
	return Frame{Type: "update", Version: to, PrevVersion: from, Prefix: sub.updatePrefix, Body: body, Sub: sub}, true
}

// phaseOf is the phase a sink's subscriptions are flushed in.
func (h *Hub) phaseOf(sink Sink) int {
	var p uint32
	if ph, ok := sink.(Phaser); ok {
		p = ph.Phase()
	} else {
		p = h.nextPhase.Add(1)
	}
	return int(p % uint32(h.opts.Phases))
}

// noteRead records that every change after version will be in the log. It
// matters only until the first change is recorded: afterwards the log is
// continuous, and a read cannot be older than what it has already pruned.
func (bh *boardHub) noteRead(version uint64) {
	bh.evMu.Lock()
	if !bh.histKnown {
		bh.histStart, bh.histKnown = version, true
		bh.through = max(bh.through, version) // nothing up to it is needed
	}
	bh.evMu.Unlock()
}

// markIfMissed flags a segment just installed from a read at seg.version when
// a flush already closed a bucket of later changes that can reach it: that
// flush did not know the segment, so the next one must read it again even if
// nothing new happens. Called with bh.mu held.
func (bh *boardHub) markIfMissed(seg *segment) {
	bh.evMu.Lock()
	defer bh.evMu.Unlock()
	for i := len(bh.hist) - 1; i >= 0 && bh.hist[i].to > seg.version; i-- {
		if seg.affected(bh.hist[i].lo, bh.hist[i].hi) {
			seg.stale, bh.stale[seg.phase] = true, true
			return
		}
	}
}

// initial is the frame after `subscribed`: a catch-up update from since when
// the log covers it, else a snapshot. Called with bh.mu held.
func (h *Hub) initial(bh *boardHub, seg *segment, sub *Subscription, since *uint64, epoch string) Frame {
	if since != nil && epoch == h.opts.Epoch && *since <= seg.version {
		if lo, hi, removal, ok := bh.changedSince(*since, seg.version); ok {
			h.count(func(s *Stats) { s.CatchUps++ })
			return Frame{Type: "update", Version: seg.version, PrevVersion: *since, Prefix: sub.updatePrefix, Body: seg.catchUp(*since, lo, hi), Unchanged: seg.untouched(lo, hi, removal)}
		}
	}
	h.count(func(s *Stats) { s.Snapshots++ })
	return Frame{Type: "snapshot", Version: seg.version, Prefix: sub.snapPrefix, Body: seg.snapshot(h.opts.Epoch)}
}

// untouched reports whether no rank in lo..hi (the ranks changed since some
// version, see changedSince) is a rank of this window then or now, nor the
// watched participant's: the window is the same at both versions. removal
// says whether one of those changes removed a participant.
func (s *segment) untouched(lo, hi int64, removal bool) bool {
	if lo > hi {
		return true
	}
	switch s.spec.Kind {
	case Top:
		return lo > int64(s.spec.Limit)
	case Participant:
		if s.part.entry == nil {
			// Not ranked now: it was not then either, unless a removal
			// (the only change that unranks) took it off since. Others
			// arriving do not change an unranked participant's window.
			return !removal
		}
		r := s.part.entry.Rank
		return r < lo || r > hi
	}
	if len(s.list.entries) == 0 {
		return !removal // Around, its participant not ranked: as for Participant
	}
	for _, e := range s.list.entries { // Around: the participant's rank
		if e.ParticipantID == s.spec.ParticipantID {
			r, rad := e.Rank, int64(s.spec.Radius)
			return hi < r-rad || lo > r+rad
		}
	}
	return false
}

// changedSince returns the union of rank ranges changed after version since
// up to version to, if the log still reaches back that far and already
// holds every change up to to.
func (bh *boardHub) changedSince(since, to uint64) (lo, hi int64, removal, ok bool) {
	bh.evMu.Lock()
	defer bh.evMu.Unlock()
	// Nothing is needed from the log for since == to (a client resuming from
	// the version its window is at): a log behind the reads, as with several
	// API processes over one Redis, must not make that a snapshot (a long
	// poll from the current version would be answered at once, again and
	// again).
	if !bh.histKnown || since < bh.histStart || (to > since && to > bh.through) {
		return 0, 0, false, false
	}
	lo, hi = math.MaxInt64, 0
	for _, b := range bh.hist {
		if b.to > since {
			lo, hi, removal = min(lo, b.lo), max(hi, b.hi), removal || b.removal
		}
	}
	if bh.open.any && bh.open.to > since {
		lo, hi, removal = min(lo, bh.open.lo), max(hi, bh.open.hi), removal || bh.open.removal
	}
	return lo, hi, removal, true
}

// Unsubscribe removes a subscription; it is safe to call twice.
func (h *Hub) Unsubscribe(sub *Subscription) {
	bh := sub.board
	bh.mu.Lock()
	sub.gone = true
	if seg := sub.seg; seg != nil {
		delete(seg.subs, sub)
		h.dropEmpty(bh, seg)
	}
	bh.mu.Unlock()
}

// dropEmpty forgets a segment none of whose phases has subscribers. A phase
// that lost its last subscriber keeps its state while other phases have
// some: a client resuming from it is served a catch-up from that state.
// Called with bh.mu held.
func (h *Hub) dropEmpty(bh *boardHub, seg *segment) {
	grp := seg.group
	if len(seg.subs) > 0 || grp.subscribed() {
		return
	}
	if bh.segments[grp.key] == grp {
		delete(bh.segments, grp.key)
		if len(bh.segments) == 0 {
			bh.idleSince = h.opts.Now()
		}
		for _, s := range grp.phases {
			if s != nil {
				bh.unindex(s)
			}
		}
	}
}

// index adds seg to its phase's list. Called with bh.mu held.
func (bh *boardHub) index(seg *segment) {
	seg.at = len(bh.byPhase[seg.phase])
	bh.byPhase[seg.phase] = append(bh.byPhase[seg.phase], seg)
}

// unindex removes seg from its phase's list. Called with bh.mu held.
func (bh *boardHub) unindex(seg *segment) {
	l := bh.byPhase[seg.phase]
	last := l[len(l)-1]
	l[seg.at], last.at = last, seg.at
	l[len(l)-1] = nil
	bh.byPhase[seg.phase] = l[:len(l)-1]
}

// Status sends a leaderboard status change to every connection watching it,
// once per sink.
func (h *Hub) Status(board, status string, version uint64) {
	h.mu.Lock()
	bh := h.boards[board]
	h.mu.Unlock()
	if bh == nil {
		return
	}
	f := StatusFrame(status, version)
	bh.mu.Lock()
	seen := map[Sink]bool{}
	for _, grp := range bh.segments {
		for _, seg := range grp.phases {
			if seg == nil {
				continue
			}
			for sub := range seg.subs {
				if !seen[sub.sink] {
					seen[sub.sink] = true
					sub.sink.Send(f) // a full queue loses only this notice; the data frames resync
				}
			}
		}
	}
	bh.mu.Unlock()
}

func (h *Hub) count(f func(*Stats)) {
	h.stats.mu.Lock()
	f(&h.stats)
	h.stats.mu.Unlock()
}

// Snapshot returns a copy of the hub's counters.
func (h *Hub) Snapshot() Stats {
	h.mu.Lock()
	boards := make([]*boardHub, 0, len(h.boards))
	for _, bh := range h.boards {
		boards = append(boards, bh)
	}
	h.mu.Unlock()
	n := 0
	for _, bh := range boards {
		bh.mu.Lock()
		n += len(bh.segments)
		bh.mu.Unlock()
	}
	h.stats.mu.Lock()
	defer h.stats.mu.Unlock()
	return Stats{Flushes: h.stats.Flushes, Frames: h.stats.Frames, Bytes: h.stats.Bytes, Dropped: h.stats.Dropped,
		Snapshots: h.stats.Snapshots, CatchUps: h.stats.CatchUps, Conflated: h.stats.Conflated, SegmentsNow: n}
}

// Run flushes one phase every FlushInterval/Phases until ctx ends, so that
// each phase is flushed once per window.
func (h *Hub) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.FlushInterval / time.Duration(h.opts.Phases))
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.flush(ctx, tick%h.opts.Phases)
		}
	}
}

// Flush sends every phase the changes since its last flush. Tests call it
// directly to control time.
func (h *Hub) Flush(ctx context.Context) { h.flush(ctx, -1) }

// flush sends the changes since its last flush to one phase (-1: all).
func (h *Hub) flush(ctx context.Context, phase int) {
	h.mu.Lock()
	boards := make([]*boardHub, 0, len(h.boards))
	for _, bh := range h.boards {
		boards = append(boards, bh)
	}
	h.mu.Unlock()
	now := h.opts.Now()
	for _, bh := range boards {
		h.flushBoard(ctx, bh, now, phase)
		h.forgetIdle(bh, now)
	}
}

// forgetIdle drops a leaderboard that has had no segment for longer than
// the history window. Without it the hub kept every leaderboard ever
// watched (completed and dropped ones included): each flush walked them all
// and every change was logged for nobody. A viewer resuming after that gets
// a snapshot instead of a catch-up, the contract's answer to a gap the
// server no longer covers. Lock order: Hub.mu before boardHub.mu (nothing
// takes them the other way round).
func (h *Hub) forgetIdle(bh *boardHub, now time.Time) {
	bh.mu.Lock()
	idle := len(bh.segments) == 0
	switch {
	case !idle:
		bh.idleSince = time.Time{}
	case bh.idleSince.IsZero():
		bh.idleSince = now
	}
	expired := idle && now.Sub(bh.idleSince) > h.opts.History
	bh.mu.Unlock()
	if !expired {
		return
	}
	h.mu.Lock()
	bh.mu.Lock()
	if len(bh.segments) == 0 && h.boards[bh.id] == bh {
		delete(h.boards, bh.id)
		bh.gone = true
	}
	bh.mu.Unlock()
	h.mu.Unlock()
}

func (h *Hub) flushBoard(ctx context.Context, bh *boardHub, now time.Time, phase int) {
	bh.evMu.Lock()
	b := bh.open
	if b.any {
		// One bucket per flush interval, not per tick: resumes and merges
		// walk the history, and Publish waits on evMu meanwhile. A coarser
		// bucket only makes a catch-up carry a few more unchanged ranks.
		if n := len(bh.hist); n > 0 && now.Sub(bh.hist[n-1].start) < h.opts.FlushInterval {
			last := &bh.hist[n-1]
			last.union(b)
			last.at = now
		} else {
			b.at, b.start = now, now
			bh.hist = append(bh.hist, b)
		}
		bh.open = bucket{}
	}
	// Forget what is older than the history window.
	cut := 0
	for cut < len(bh.hist) && now.Sub(bh.hist[cut].at) > h.opts.History {
		bh.histStart = bh.hist[cut].to
		cut++
	}
	if cut > 0 {
		bh.hist = append(bh.hist[:0], bh.hist[cut:]...)
	}
	bh.evMu.Unlock()

	bh.mu.Lock()
	var due []*segment
	maxTop := 0
	for p := range bh.pending {
		bh.pending[p].union(b)
		if phase >= 0 && p != phase {
			continue
		}
		changed, stale := bh.pending[p], bh.stale[p]
		bh.pending[p], bh.stale[p] = bucket{}, false
		if !changed.any && !stale {
			continue
		}
		for _, seg := range bh.byPhase[p] {
			if !(seg.stale || (changed.any && seg.affected(changed.lo, changed.hi))) {
				continue
			}
			if len(seg.subs) == 0 {
				seg.stale = true // nobody to send to: read when someone joins
				continue
			}
			seg.stale = false
			due = append(due, seg)
			if seg.spec.Kind == Top {
				maxTop = max(maxTop, seg.spec.Limit)
			}
		}
	}
	bh.mu.Unlock()
	if len(due) == 0 {
		return
	}
	// One read serves every top-N segment: the largest N, cut for the others;
	// one read of any other window serves all its phases. A segment whose
	// read fails (a remote store that is unreachable) is marked stale, so
	// that it is read again at its phase's next flush instead of missing
	// this window's changes for good.
	retry := func(segs ...*segment) {
		bh.mu.Lock()
		for _, seg := range segs {
			seg.stale = true
			bh.stale[seg.phase] = true
		}
		bh.mu.Unlock()
	}
	var top *segment
	if maxTop > 0 {
		var err error
		if top, err = h.read(ctx, bh.id, Spec{Kind: Top, Limit: maxTop}); err != nil {
			h.log.Warn("fan-out read failed; retried at the next flush", "leaderboard", bh.id, "err", err)
			retry(due...)
			return
		}
	}
	fresh := make([]*segment, len(due))
	reads := map[*segGroup]*segment{}
	for i, seg := range due {
		if seg.spec.Kind == Top {
			fresh[i] = top.cutTop(seg.spec.Limit)
			continue
		}
		if s, ok := reads[seg.group]; ok {
			fresh[i] = s
			continue
		}
		s, err := h.read(ctx, bh.id, seg.spec)
		if err != nil {
			h.log.Warn("fan-out read failed; retried at the next flush", "leaderboard", bh.id, "err", err)
		}
		fresh[i], reads[seg.group] = s, s // nil after an error: marked stale below
	}

	var dropped []*Subscription
	bh.mu.Lock()
	for i, seg := range due {
		nf := fresh[i]
		if nf == nil {
			seg.stale, bh.stale[seg.phase] = true, true // its read failed
			continue
		}
		if nf.version <= seg.version || seg.group.phases[seg.phase] != seg || bh.segments[seg.key] != seg.group {
			continue
		}
		prev := seg.version
		body := seg.advance(nf)
		if body == nil {
			continue // the window did not change; it keeps its older version
		}
		f := Frame{Type: "update", Version: seg.version, PrevVersion: prev, Body: body}
		n := 0
		for sub := range seg.subs {
			f.Prefix, f.Sub = sub.updatePrefix, sub
			if !sub.sink.Send(f) {
				delete(seg.subs, sub)
				sub.dropped = true
				dropped = append(dropped, sub)
				continue
			}
			n++
		}
		h.dropEmpty(bh, seg)
		h.count(func(s *Stats) {
			s.Flushes++
			s.Frames += uint64(n)
			s.Bytes += uint64(n * (len(body) + 24))
		})
	}
	bh.mu.Unlock()
	if len(dropped) > 0 {
		h.count(func(s *Stats) { s.Dropped += uint64(len(dropped)) })
	}
	for _, sub := range dropped {
		if sub.onDrop != nil {
			sub.onDrop(sub)
		}
	}
}

// read loads a window's current state into a new (unregistered) segment.
func (h *Hub) read(ctx context.Context, board string, spec Spec) (*segment, error) {
	seg := &segment{spec: spec, subs: map[*Subscription]struct{}{}}
	switch spec.Kind {
	case Top:
		p, err := h.src.Page(ctx, board, 0, spec.Limit)
		if err != nil {
			return nil, mapErr(err)
		}
		seg.version, seg.list = p.Version, listState{offset: 0, entries: p.Entries}
	case Around:
		p, err := h.src.Around(ctx, board, spec.ParticipantID, 2*spec.Radius+1)
		if err != nil {
			return h.unranked(ctx, board, seg, err)
		}
		seg.version = p.Version
		seg.list.entries = p.Entries
		if len(p.Entries) > 0 {
			seg.list.offset = p.Entries[0].Rank - 1
		}
	case Participant:
		v, err := h.src.Participant(ctx, board, spec.ParticipantID, 0)
		if err != nil {
			return h.unranked(ctx, board, seg, err)
		}
		e := v.Entry
		seg.version, seg.part.entry = v.Version, &e
	}
	return seg, nil
}

// unranked finishes a read of a window around a participant that failed:
// when the participant is not ranked, the window is empty at the board's
// current version; any other error is returned.
func (h *Hub) unranked(ctx context.Context, board string, seg *segment, err error) (*segment, error) {
	if !errors.Is(err, store.ErrParticipantNotFound) {
		return nil, mapErr(err)
	}
	st, err := h.src.Stats(ctx, board)
	if err != nil {
		return nil, mapErr(err)
	}
	seg.version = st.Version
	return seg, nil
}

func mapErr(err error) error {
	if errors.Is(err, store.ErrBoardNotFound) {
		return ErrNotFound
	}
	return err
}

// cutTop derives the top-n window from a larger top window.
func (s *segment) cutTop(n int) *segment {
	c := &segment{spec: Spec{Kind: Top, Limit: n}, version: s.version}
	c.list.entries = s.list.entries[:min(n, len(s.list.entries))]
	return c
}

// affected reports whether a change to ranks lo..hi can have altered the window.
func (s *segment) affected(lo, hi int64) bool {
	switch s.spec.Kind {
	case Top:
		return lo <= int64(s.spec.Limit)
	case Participant:
		if s.part.entry == nil {
			return hi == math.MaxInt64 // not ranked: only an arrival can be it
		}
		r := s.part.entry.Rank
		return lo <= r && r <= hi
	default:
		if len(s.list.entries) == 0 {
			return hi == math.MaxInt64 // its participant is not ranked: only an arrival can be it
		}
		first, last := s.list.offset+1, s.list.offset+int64(len(s.list.entries))
		// A window near the end also grows when someone arrives just below it.
		return lo <= last+1 && hi >= first
	}
}

// advance installs the newer state nf and returns the encoded update body, or
// nil when the window is the same (the segment then keeps its old version).
func (s *segment) advance(nf *segment) []byte {
	var body []byte
	if s.spec.Kind == Participant {
		old, cur := s.part.entry, nf.part.entry
		if (old == nil) == (cur == nil) && (old == nil || *old == *cur) {
			return nil
		}
		body = participantUpdateBody(s.version, nf.version, &nf.part, old)
		s.part = nf.part
	} else {
		changes := diff(&s.list, &nf.list)
		if len(changes) == 0 && s.list.offset == nf.list.offset && len(s.list.entries) == len(nf.list.entries) {
			return nil
		}
		body = listUpdateBody(s.version, nf.version, &nf.list, changes)
		s.list = nf.list
	}
	s.version = nf.version
	s.snap, s.merged = nil, nil
	return body
}

// diff returns the entries of cur whose rank was not in old's window or held
// another occupant or score there.
func diff(old, cur *listState) []store.Entry {
	var changes []store.Entry
	for i := range cur.entries {
		e := &cur.entries[i]
		j := e.Rank - old.offset - 1
		if j >= 0 && j < int64(len(old.entries)) && old.entries[j] == *e {
			continue
		}
		changes = append(changes, *e)
	}
	return changes
}

// snapshot encodes the segment's state as a snapshot body.
// The body is encoded once per version: a burst of new subscribers (a
// reconnect storm) shares it.
func (s *segment) snapshot(epoch string) []byte {
	if s.snap == nil {
		if s.spec.Kind == Participant {
			s.snap = participantSnapshotBody(s.version, epoch, &s.part)
		} else {
			s.snap = listSnapshotBody(s.version, epoch, &s.list)
		}
	}
	return s.snap
}

// catchUp encodes an update from version since to the segment's state, given
// the ranks changed in between.
func (s *segment) catchUp(since uint64, lo, hi int64) []byte {
	switch s.spec.Kind {
	case Participant:
		return participantUpdateBody(since, s.version, &s.part, nil)
	case Around:
		// Where the window stood at since is not known: send all of it.
		return listUpdateBody(since, s.version, &s.list, s.list.entries)
	}
	for i := range s.list.entries {
		if s.list.entries[i].DisplayName != "" {
			// Display names change without an event (a profile PUT), so the
			// changed ranks do not cover a rename; the updates this one
			// stands for (a merge) carried it: send all of the window.
			return listUpdateBody(since, s.version, &s.list, s.list.entries)
		}
	}
	var changes []store.Entry
	for _, e := range s.list.entries {
		if e.Rank >= lo && e.Rank <= hi {
			changes = append(changes, e)
		}
	}
	return listUpdateBody(since, s.version, &s.list, changes)
}

// Segments returns, per leaderboard, the keys of the segments that have
// subscribers now ("t:100", "p:<participant>", "a:<radius>:<participant>"):
// what this process's viewers watch, for the subscription registry.
func (h *Hub) Segments() map[string][]string {
	h.mu.Lock()
	boards := make([]*boardHub, 0, len(h.boards))
	for _, bh := range h.boards {
		boards = append(boards, bh)
	}
	h.mu.Unlock()
	out := map[string][]string{}
	for _, bh := range boards {
		bh.mu.Lock()
		for key, grp := range bh.segments {
			if grp.subscribed() {
				out[bh.id] = append(out[bh.id], key)
			}
		}
		bh.mu.Unlock()
	}
	return out
}

// SegmentSnapshot returns the snapshot body (what follows a subscription's
// Prefix("snapshot", id)) and version of a segment that has subscribers now:
// what a fan-out in its own process stores for gateways to start new
// viewers from. Bodies are cached per version, so this is cheap.
func (h *Hub) SegmentSnapshot(board, key string) (version uint64, body []byte, ok bool) {
	h.mu.Lock()
	bh := h.boards[board]
	h.mu.Unlock()
	if bh == nil {
		return 0, nil, false
	}
	bh.mu.Lock()
	defer bh.mu.Unlock()
	grp := bh.segments[key]
	if grp == nil {
		return 0, nil, false
	}
	// The newest phase that has subscribers: a phase kept without any
	// (dropEmpty) is not flushed, and its state need not be on the chain of
	// the updates the caller publishes.
	seg := grp.newest()
	for _, s := range grp.phases {
		if s != nil && len(s.subs) > 0 && (len(seg.subs) == 0 || s.version > seg.version) {
			seg = s
		}
	}
	return seg.version, seg.snapshot(h.opts.Epoch), true
}
