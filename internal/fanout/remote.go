package fanout

// Remote: the gateway side of the scaled-out deployment.
//
// # Role
//
// A Remote serves viewers of a process that does not run the fan-out. The
// fan-out nodes compute every segment's frames once and publish them on the
// frames topic (bus.Frame: KindSnapshot once per segment, then KindUpdate
// with Version and PrevVersion, and KindStatus for a leaderboard's status);
// a Remote only follows those frames and writes each one's Payload, behind
// the subscription's own Prefix, to every local subscriber of the segment.
// It never reads the ranking store on the hot path and encodes nothing per
// viewer: the work per frame is O(1) per segment plus the final writes of
// the same bytes, so viewers on two gateways get identical frames.
//
// Subscribe counts the viewer in the subscription registry (Member.Add: the
// first viewer of a segment anywhere makes the fan-out compute it), watches
// the leaderboard's frames on the first local subscriber of the board
// (Unwatch after the last), and starts the viewer from the segment's state.
//
// # The snapshot rule
//
// The fan-out stores a segment's snapshot in segsnap at version V before it
// produces the update that leads to V, and a gateway watches the frames
// before it reads that snapshot (see package segsnap). So a segment this
// process does not follow yet is started from segsnap (version S; polled
// for up to SnapshotWait while the fan-out creates a new segment, and a
// KindSnapshot frame that arrives meanwhile serves as well), and the frames
// that arrived meanwhile are buffered and replayed: those with Version <= S
// are dropped and the first one forwarded is the one whose PrevVersion is S.
// A segment this process follows already (current version V, retained
// update frames) starts a new viewer from the last snapshot it knows plus
// the retained updates that chain from it to V (at most MaxCatchUp of them);
// when there is no such chain it reads segsnap again, and when that snapshot
// is ahead of V it waits until the frames reach it.
//
// # Resume
//
// A subscribe with since_version and the current epoch is answered, when
// the retained update frames (History, default 60 s) chain from since to V,
// with `subscribed` and then exactly those updates in order (none when since
// is V): the same bytes the other viewers got, with no gap and no duplicate.
// The client's rule (prev_version equals the version last applied) holds for
// each of them. This differs from an in-process Hub, which encodes one
// catch-up update: a gateway cannot encode, it has only the fan-out's frames.
// Otherwise the viewer gets a snapshot as above.
//
// # Gaps
//
// Frames with Version <= V are dropped (duplicates, stale). An update whose
// PrevVersion is not V means frames were lost (a dropped Kafka record, a
// fan-out handover): the segment stops forwarding, buffers what arrives, and
// reads segsnap until it holds a snapshot at least as new as that update's
// PrevVersion (or a KindSnapshot frame that new arrives). Every local
// subscriber of the segment is then sent that snapshot (Prefix("snapshot",
// id) + body, the same bytes for all), and the buffered frames continue from
// it. docs/LIVE.md's rule "on snapshot: replace everything" applies to any
// snapshot, and the existing clients (the Go client, the page) apply one at
// any time; a `resync` would not do: clients treat it as "wait for the
// snapshot the server sends" rather than resubscribing, and a long poll
// would answer it as its response. A KindSnapshot frame newer than V (a new
// fan-out owner restarting the segment's chain) is handled the same way. If
// no snapshot arrives within SnapshotWait the segment's subscribers are
// dropped like slow ones (onDrop; the gateway resyncs and resubscribes them).
//
// A sink that refuses a frame is treated like the Hub does: the subscription
// leaves the segment, is marked Dropped, its registry count and watch are
// released, and onDrop is called outside the Remote's locks.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/registry"
	"github.com/lbhq/leaderboard/internal/segsnap"
)

// RemoteOptions configure a Remote.
type RemoteOptions struct {
	// Exists checks that a leaderboard exists (the ranking store's Stats):
	// store.ErrBoardNotFound or ErrNotFound when it does not.
	Exists func(ctx context.Context, board string) error
	// Snapshots holds the fan-out's segment snapshots.
	Snapshots *segsnap.Store
	// Member registers the segments this process's viewers watch; nil: none.
	Member *registry.Member
	// Epoch is the ranking store's epoch (resumes name it).
	Epoch string
	// History is how long update frames are retained for resumes (default 60 s).
	History time.Duration
	// SnapshotWait bounds how long Subscribe waits for a segment's snapshot
	// (a new segment: the fan-out computes its first one), default 3 s.
	SnapshotWait time.Duration
	// MaxCatchUp is the most update frames sent to a new or resuming
	// subscriber after `subscribed` (default 64); a longer chain is replaced
	// by a snapshot.
	MaxCatchUp int
	// Status returns a leaderboard's status as this process's copy of the
	// leaderboard list has it ("" when unknown); it must not block. A
	// subscription to a leaderboard that is not active is told its status at
	// once: the last status frame this process received for the leaderboard
	// when it has one (it is newer than the list, which a sweep refreshes),
	// otherwise this. Nil: only the received one.
	Status func(board string) string
	Logger *slog.Logger
	Now    func() time.Time // retention clock (default time.Now)
}

// ErrSnapshotUnavailable: no snapshot of the segment arrived within
// SnapshotWait (the fan-out is down or slow); the subscriber retries later.
var ErrSnapshotUnavailable = errors.New("fanout: the segment's snapshot is not available yet")

// Remote implements the gateway's hub from frames produced by fan-out nodes.
type Remote struct {
	opts RemoteOptions
	log  *slog.Logger

	mu     sync.Mutex
	frames bus.FrameConsumer
	boards map[string]*remoteBoard
}

// remoteBoard is one watched leaderboard.
type remoteBoard struct {
	id   string
	bh   *boardHub // only its mu is used: it guards segs and the board's subscriptions (Subscription.Dropped takes it)
	segs map[string]*remoteSeg
	// status is the last status frame received (Type "" before one),
	// guarded by bh.mu like segs.
	status     Frame
	statusName string
	nsubs      int // guarded by Remote.mu: subscriptions holding a registry count and the watch

	watchMu  sync.Mutex // serialises Watch/Unwatch of this board
	watching bool
}

// remoteSeg is one segment as the frames tell it.
type remoteSeg struct {
	key  string
	refs int // subscriptions attached or being set up
	subs map[*Subscription]struct{}

	ready   bool   // version is known and frames are forwarded
	version uint64 // the segment's current version
	hist    []heldFrame
	snapV   uint64 // the newest snapshot known (body snap), for new subscribers
	snap    []byte

	loading bool   // a loader reads segsnap
	loadGen uint64 // identifies the current loader
	target  uint64 // the loader needs a snapshot at least this new
	buf     []bus.Frame

	changed chan struct{} // closed on the next state change; nil while nobody waits
	gone    bool          // forgotten (no subscriber left)
}

// heldFrame is a forwarded update, retained for resumes and new subscribers.
type heldFrame struct {
	prev, version uint64
	body          []byte
	at            time.Time
}

const (
	maxBuffered = 1024 // frames buffered per segment while it loads
	maxHeld     = 4096 // update frames retained per segment, whatever History says
)

// NewRemote returns a Remote; call SetFrames before the first Subscribe.
func NewRemote(opts RemoteOptions) *Remote {
	if opts.History <= 0 {
		opts.History = 60 * time.Second
	}
	if opts.SnapshotWait <= 0 {
		opts.SnapshotWait = 3 * time.Second
	}
	if opts.MaxCatchUp <= 0 {
		opts.MaxCatchUp = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Remote{opts: opts, log: opts.Logger, boards: map[string]*remoteBoard{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// SetFrames sets the frame consumer, made with r.HandleFrame as its
// callback. Without one, boards are not watched (frames come only through
// HandleFrame).
func (r *Remote) SetFrames(fc bus.FrameConsumer) {
	r.mu.Lock()
	r.frames = fc
	r.mu.Unlock()
}

// Epoch is the epoch of the versions served.
func (r *Remote) Epoch() string { return r.opts.Epoch }

// Exists reports whether a leaderboard exists (ErrNotFound when it does not).
func (r *Remote) Exists(ctx context.Context, board string) error {
	if r.opts.Exists == nil {
		return nil
	}
	return mapErr(r.opts.Exists(ctx, board))
}

// Subscribe adds a subscriber: `subscribed`, then a snapshot or the resume's
// chain of updates (see the package's Remote comment), then every update of
// the segment. onDrop is called, outside the Remote's locks, when the sink
// refused a frame; the subscription is then released (Unsubscribe is not
// needed, and harmless).
func (r *Remote) Subscribe(ctx context.Context, board, id string, spec Spec, since *uint64, epoch string, sink Sink, onDrop func(*Subscription)) (*Subscription, error) {
	if err := r.Exists(ctx, board); err != nil {
		return nil, err
	}
	key := spec.Key()
	if r.opts.Member != nil {
		if err := r.opts.Member.Add(ctx, board, key); err != nil {
			// Counted all the same; the next heartbeat registers it.
			r.log.Warn("registering a segment failed", "leaderboard", board, "segment", key, "err", err)
		}
	}
	rb := r.acquire(board)
	if err := r.syncWatch(ctx, rb); err != nil {
		r.release(rb, key)
		return nil, err
	}
	sub := &Subscription{
		ID: id, Board: board, Spec: spec, sink: sink, onDrop: onDrop, board: rb.bh,
		updatePrefix: Prefix("update", id), snapPrefix: Prefix("snapshot", id),
	}
	bh := rb.bh
	bh.mu.Lock()
	seg := rb.segs[key]
	if seg == nil {
		seg = &remoteSeg{key: key, subs: map[*Subscription]struct{}{}}
		rb.segs[key] = seg
	}
	seg.refs++
	bh.mu.Unlock()

	timeout := time.NewTimer(r.opts.SnapshotWait)
	defer timeout.Stop()
	// checked: segsnap was read once for a resume ahead of this process's
	// frames (the client came from a gateway that got them earlier).
	checked := false
	var stallTimer *time.Timer
	var stalled <-chan time.Time // set while waiting for frames to reach segsnap
	defer func() {
		if stallTimer != nil {
			stallTimer.Stop()
		}
	}()
	for {
		bh.mu.Lock()
		// A resume from a version this process's frames have not reached
		// yet waits for them when the fan-out has reached it (segsnap is at
		// least as new), rather than sending the client back to an older
		// snapshot and repeating updates it applied.
		ahead := seg.ready && since != nil && epoch == r.opts.Epoch && *since > seg.version &&
			(seg.snapV >= *since || !checked)
		if seg.ready && !ahead {
			if frames, ok := r.initial(seg, sub, since, epoch); ok {
				if f, ok := r.statusNow(rb, seg.version); ok {
					frames = append(frames, f)
				}
				seg.subs[sub] = struct{}{}
				sent := true
				for _, f := range frames {
					if !sink.Send(f) {
						sent = false
						break
					}
				}
				if !sent {
					r.dropLocked(rb, seg, sub)
				}
				bh.mu.Unlock()
				if !sent {
					r.afterDrops(rb, []*Subscription{sub}, false)
				}
				return sub, nil
			}
		} else if !seg.ready && !seg.loading {
			r.startLoad(rb, seg, 0)
		}
		// Ready but not servable: either the snapshot known is ahead of the
		// frames (wait for them), or there is no short chain from it to the
		// current version (read segsnap again).
		read := seg.ready && seg.snapV <= seg.version
		if read && ahead {
			checked = true
		}
		known := seg.snapV
		if seg.ready && seg.snapV > seg.version && stalled == nil {
			// Waiting for frames to reach the stored snapshot. If they do not
			// come (the frame leading to it was lost and nothing followed),
			// the segment starts again from segsnap, as after a gap.
			stallTimer = time.NewTimer(r.opts.SnapshotWait / 2)
			stalled = stallTimer.C
		}
		ch := seg.wait()
		bh.mu.Unlock()
		var poll <-chan time.Time
		if read {
			v, body, err := r.opts.Snapshots.Get(ctx, board, key)
			if err == nil && v > known {
				bh.mu.Lock()
				seg.offerSnapshot(v, body)
				bh.mu.Unlock()
				continue
			}
			poll = time.After(20 * time.Millisecond)
		}
		select {
		case <-ch:
		case <-poll:
		case <-stalled:
			bh.mu.Lock()
			if seg.ready && seg.snapV > seg.version {
				r.log.Info("frames did not reach the stored snapshot; reloading the segment", "leaderboard", board, "segment", key,
					"version", seg.version, "snapshot", seg.snapV)
				r.startLoad(rb, seg, seg.snapV)
			}
			bh.mu.Unlock()
		case <-timeout.C:
			r.abandon(rb, seg, key)
			return nil, ErrSnapshotUnavailable
		case <-ctx.Done():
			r.abandon(rb, seg, key)
			return nil, ctx.Err()
		}
	}
}

// abandon undoes a Subscribe that did not complete.
func (r *Remote) abandon(rb *remoteBoard, seg *remoteSeg, key string) {
	rb.bh.mu.Lock()
	seg.refs--
	r.forgetIfIdle(rb, seg)
	rb.bh.mu.Unlock()
	r.release(rb, key)
}

// initial returns what a new subscriber of a ready segment is sent, if the
// segment can serve it now. Called with the board's lock held.
func (r *Remote) initial(seg *remoteSeg, sub *Subscription, since *uint64, epoch string) ([]Frame, bool) {
	now := r.opts.Now()
	seg.prune(now, r.opts.History)
	subscribed := SubscribedFrame(sub.ID, sub.Spec.Kind.String(), seg.version, r.opts.Epoch)
	if since != nil && epoch == r.opts.Epoch {
		if chain, ok := seg.chain(*since, r.opts.MaxCatchUp); ok {
			return appendUpdates([]Frame{subscribed}, sub, chain), true
		}
	}
	if seg.snap != nil && seg.snapV <= seg.version {
		if chain, ok := seg.chain(seg.snapV, r.opts.MaxCatchUp); ok {
			frames := []Frame{subscribed, {Type: "snapshot", Version: seg.snapV, Prefix: sub.snapPrefix, Body: seg.snap}}
			return appendUpdates(frames, sub, chain), true
		}
	}
	return nil, false
}

func appendUpdates(frames []Frame, sub *Subscription, chain []heldFrame) []Frame {
	for _, h := range chain {
		frames = append(frames, Frame{Type: "update", Version: h.version, PrevVersion: h.prev, Prefix: sub.updatePrefix, Body: h.body})
	}
	return frames
}

// chain returns the retained updates leading from version from to the
// current version, if they are retained and at most max.
func (s *remoteSeg) chain(from uint64, max int) ([]heldFrame, bool) {
	if from == s.version {
		return nil, true
	}
	i := sort.Search(len(s.hist), func(i int) bool { return s.hist[i].prev >= from })
	if i == len(s.hist) || s.hist[i].prev != from || len(s.hist)-i > max {
		return nil, false
	}
	return s.hist[i:], true
}

// prune forgets updates older than the history window.
func (s *remoteSeg) prune(now time.Time, history time.Duration) {
	cut := 0
	for cut < len(s.hist) && (now.Sub(s.hist[cut].at) > history || len(s.hist)-cut > maxHeld) {
		cut++
	}
	if cut > 0 {
		s.hist = append(s.hist[:0], s.hist[cut:]...)
	}
}

// offerSnapshot keeps a snapshot for new subscribers if it is the newest known.
func (s *remoteSeg) offerSnapshot(v uint64, body []byte) {
	if s.snap == nil || v > s.snapV {
		s.snapV, s.snap = v, body
		s.notify()
	}
}

func (s *remoteSeg) wait() chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *remoteSeg) notify() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// startLoad makes the segment read its snapshot from segsnap (at least
// version target), buffering frames meanwhile. Called with the board's lock.
func (r *Remote) startLoad(rb *remoteBoard, seg *remoteSeg, target uint64) {
	seg.ready, seg.loading, seg.target = false, true, target
	seg.loadGen++
	go r.load(rb, seg, seg.loadGen)
}

// load polls segsnap until it holds a snapshot the segment can continue
// from, or SnapshotWait has passed.
func (r *Remote) load(rb *remoteBoard, seg *remoteSeg, gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.SnapshotWait)
	defer cancel()
	wait := 5 * time.Millisecond
	for {
		v, body, err := r.opts.Snapshots.Get(ctx, rb.id, seg.key)
		rb.bh.mu.Lock()
		if seg.gone || !seg.loading || seg.loadGen != gen {
			rb.bh.mu.Unlock() // resolved by a snapshot frame, or forgotten
			return
		}
		if err == nil && v >= seg.target {
			dropped := r.install(rb, seg, v, body)
			rb.bh.mu.Unlock()
			r.afterDrops(rb, dropped, false)
			return
		}
		if ctx.Err() != nil {
			// Give up: the subscribers start over (the gateway resubscribes
			// them, and Subscribe loads again or reports unavailable).
			seg.loading, seg.buf = false, nil
			dropped := make([]*Subscription, 0, len(seg.subs))
			for sub := range seg.subs {
				dropped = append(dropped, sub)
			}
			for _, sub := range dropped {
				r.dropLocked(rb, seg, sub)
			}
			seg.notify()
			rb.bh.mu.Unlock()
			r.log.Warn("no snapshot of a segment", "leaderboard", rb.id, "segment", seg.key, "err", err)
			r.afterDrops(rb, dropped, false)
			return
		}
		rb.bh.mu.Unlock()
		if err != nil && !errors.Is(err, segsnap.ErrNotFound) {
			r.log.Debug("reading a segment snapshot failed", "leaderboard", rb.id, "segment", seg.key, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// install starts the segment (again) from a snapshot at version v: its
// subscribers, if any (after a gap), are sent the snapshot, and the frames
// buffered meanwhile continue from it. Called with the board's lock held;
// returns the subscriptions dropped.
func (r *Remote) install(rb *remoteBoard, seg *remoteSeg, v uint64, body []byte) []*Subscription {
	seg.ready, seg.loading = true, false
	seg.version, seg.snapV, seg.snap, seg.hist = v, v, body, nil
	dropped := r.sendAll(rb, seg, Frame{Type: "snapshot", Version: v, Body: body}, true, nil)
	buf := seg.buf
	seg.buf = nil
	for _, f := range buf {
		dropped = r.apply(rb, seg, f, dropped)
	}
	seg.notify()
	return dropped
}

// sendAll writes f (the same Body) to every subscriber of the segment behind
// its own prefix. Called with the board's lock held.
func (r *Remote) sendAll(rb *remoteBoard, seg *remoteSeg, f Frame, snapshot bool, dropped []*Subscription) []*Subscription {
	for sub := range seg.subs {
		if snapshot {
			f.Prefix = sub.snapPrefix
		} else {
			f.Prefix = sub.updatePrefix
		}
		if !sub.sink.Send(f) {
			dropped = append(dropped, sub)
		}
	}
	for _, sub := range dropped {
		if _, ok := seg.subs[sub]; ok {
			r.dropLocked(rb, seg, sub)
		}
	}
	return dropped
}

// dropLocked takes a subscription off its segment because its sink refused
// a frame. Called with the board's lock held; afterDrops finishes the job.
func (r *Remote) dropLocked(rb *remoteBoard, seg *remoteSeg, sub *Subscription) {
	delete(seg.subs, sub)
	seg.refs--
	sub.dropped, sub.gone = true, true
	r.forgetIfIdle(rb, seg)
}

// afterDrops calls the drop callbacks and releases the subscriptions'
// registry counts and watches, outside the Remote's locks. From the frame
// consumer's goroutine (async) the release, which talks to Redis and the
// bus, runs on a goroutine of its own.
func (r *Remote) afterDrops(rb *remoteBoard, dropped []*Subscription, async bool) {
	for _, sub := range dropped {
		if sub.onDrop != nil {
			sub.onDrop(sub)
		}
	}
	for _, sub := range dropped {
		if async {
			go r.release(rb, sub.Spec.Key())
		} else {
			r.release(rb, sub.Spec.Key())
		}
	}
}

// forgetIfIdle forgets a segment nobody subscribes to or waits for: its
// retained frames go with it. Called with the board's lock held.
func (r *Remote) forgetIfIdle(rb *remoteBoard, seg *remoteSeg) {
	if seg.refs == 0 && rb.segs[seg.key] == seg {
		delete(rb.segs, seg.key)
		seg.gone, seg.loading, seg.buf, seg.hist = true, false, nil, nil
		seg.notify()
	}
}

// HandleFrame is the frame consumer's callback: frames of watched
// leaderboards, in the order the fan-out published them.
func (r *Remote) HandleFrame(f bus.Frame) {
	r.mu.Lock()
	rb := r.boards[f.Board]
	r.mu.Unlock()
	if rb == nil {
		return
	}
	rb.bh.mu.Lock()
	if f.Kind == bus.KindStatus {
		r.status(rb, f)
		rb.bh.mu.Unlock()
		return
	}
	seg := rb.segs[f.Segment]
	if seg == nil {
		rb.bh.mu.Unlock()
		return
	}
	dropped := r.apply(rb, seg, f, nil)
	rb.bh.mu.Unlock()
	r.afterDrops(rb, dropped, true)
}

// apply handles one frame of a segment. Called with the board's lock held.
func (r *Remote) apply(rb *remoteBoard, seg *remoteSeg, f bus.Frame, dropped []*Subscription) []*Subscription {
	if !seg.ready {
		switch {
		case f.Kind == bus.KindSnapshot && (!seg.loading || f.Version >= seg.target):
			return append(dropped, r.install(rb, seg, f.Version, f.Payload)...)
		case seg.loading:
			if len(seg.buf) == maxBuffered {
				// Lose the oldest: the replay sees the gap and loads again.
				seg.buf = append(seg.buf[:0], seg.buf[1:]...)
			}
			seg.buf = append(seg.buf, f)
		}
		return dropped
	}
	switch f.Kind {
	case bus.KindUpdate:
		switch {
		case f.Version <= seg.version:
			// A duplicate or a frame the snapshot already contains.
		case f.PrevVersion == seg.version:
			now := r.opts.Now()
			seg.hist = append(seg.hist, heldFrame{prev: f.PrevVersion, version: f.Version, body: f.Payload, at: now})
			seg.prune(now, r.opts.History)
			seg.version = f.Version
			dropped = r.sendAll(rb, seg, Frame{Type: "update", Version: f.Version, PrevVersion: f.PrevVersion, Body: f.Payload}, false, dropped)
			seg.notify()
		default:
			// Frames were lost: start again from a snapshot.
			r.log.Info("frames lost; reloading the segment", "leaderboard", rb.id, "segment", seg.key,
				"version", seg.version, "prev_version", f.PrevVersion)
			r.startLoad(rb, seg, max(f.PrevVersion, seg.version+1))
			seg.buf = append(seg.buf, f)
		}
	case bus.KindSnapshot:
		if f.Version > seg.version {
			// The chain restarted (a new fan-out owner, or lost frames).
			return append(dropped, r.install(rb, seg, f.Version, f.Payload)...)
		}
		seg.offerSnapshot(f.Version, f.Payload)
	}
	return dropped
}

// status sends a leaderboard's status message to every connection watching
// it, once per sink. Like the Hub, a full queue loses only this notice.
// Called with the board's lock held.
func (r *Remote) status(rb *remoteBoard, f bus.Frame) {
	fr := Frame{Type: "status", Version: f.Version, Body: f.Payload}
	var m struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(f.Payload, &m) == nil {
		rb.status, rb.statusName = fr, m.Status
	}
	seen := map[Sink]bool{}
	for _, seg := range rb.segs {
		for sub := range seg.subs {
			if !seen[sub.sink] {
				seen[sub.sink] = true
				sub.sink.Send(fr)
			}
		}
	}
}

// statusNow is the status notice a new subscription of rb gets: none when
// the leaderboard is active (or its status unknown). Called with rb's lock
// held, which status takes too, so a frame received later reaches the
// subscription after this notice.
func (r *Remote) statusNow(rb *remoteBoard, version uint64) (Frame, bool) {
	if rb.status.Type != "" {
		return rb.status, rb.statusName != "active"
	}
	if r.opts.Status == nil {
		return Frame{}, false
	}
	st := r.opts.Status(rb.id)
	if st == "" || st == "active" {
		return Frame{}, false
	}
	return StatusFrame(st, version), true
}

// Unsubscribe removes a subscription; it is safe to call twice, and after
// the subscription was dropped.
func (r *Remote) Unsubscribe(sub *Subscription) {
	r.mu.Lock()
	rb := r.boards[sub.Board]
	r.mu.Unlock()
	if rb == nil || rb.bh != sub.board {
		return // released already
	}
	key := sub.Spec.Key()
	rb.bh.mu.Lock()
	if sub.gone {
		rb.bh.mu.Unlock()
		return
	}
	sub.gone = true
	if seg := rb.segs[key]; seg != nil {
		if _, ok := seg.subs[sub]; ok {
			delete(seg.subs, sub)
			seg.refs--
			r.forgetIfIdle(rb, seg)
		}
	}
	rb.bh.mu.Unlock()
	r.release(rb, key)
}

// acquire counts one more subscription of a board.
func (r *Remote) acquire(board string) *remoteBoard {
	r.mu.Lock()
	defer r.mu.Unlock()
	rb := r.boards[board]
	if rb == nil {
		rb = &remoteBoard{id: board, bh: &boardHub{id: board}, segs: map[string]*remoteSeg{}}
		r.boards[board] = rb
	}
	rb.nsubs++
	return rb
}

// release undoes acquire and Member.Add for one subscription.
func (r *Remote) release(rb *remoteBoard, key string) {
	if r.opts.Member != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.opts.Member.Remove(ctx, rb.id, key); err != nil {
			r.log.Warn("unregistering a segment failed", "leaderboard", rb.id, "segment", key, "err", err)
		}
		cancel()
	}
	r.mu.Lock()
	rb.nsubs--
	r.mu.Unlock()
	_ = r.syncWatch(context.Background(), rb)
}

// syncWatch watches the board's frames while it has subscriptions and
// unwatches it after the last, one call at a time per board so that an
// Unwatch never overtakes a later Watch. A board is forgotten only after
// it was unwatched.
func (r *Remote) syncWatch(ctx context.Context, rb *remoteBoard) error {
	rb.watchMu.Lock()
	defer rb.watchMu.Unlock()
	r.mu.Lock()
	want, fc := rb.nsubs > 0, r.frames
	r.mu.Unlock()
	switch {
	case fc == nil:
	case want && !rb.watching:
		if err := fc.Watch(ctx, rb.id); err != nil {
			return err
		}
		rb.watching = true
	case !want && rb.watching:
		fc.Unwatch(rb.id)
		rb.watching = false
	}
	if !want {
		r.mu.Lock()
		if rb.nsubs == 0 && r.boards[rb.id] == rb {
			delete(r.boards, rb.id)
		}
		r.mu.Unlock()
	}
	return nil
}

// Segments returns, per leaderboard, the keys of the segments that have
// local subscribers now (what Hub.Segments returns for an in-process hub).
func (r *Remote) Segments() map[string][]string {
	r.mu.Lock()
	boards := make([]*remoteBoard, 0, len(r.boards))
	for _, rb := range r.boards {
		boards = append(boards, rb)
	}
	r.mu.Unlock()
	out := map[string][]string{}
	for _, rb := range boards {
		rb.bh.mu.Lock()
		for key, seg := range rb.segs {
			if len(seg.subs) > 0 {
				out[rb.id] = append(out[rb.id], key)
			}
		}
		rb.bh.mu.Unlock()
	}
	return out
}
