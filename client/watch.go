package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ErrClosed is returned by [Watcher.WaitFor] once the watcher was closed.
var ErrClosed = errors.New("leaderboard: watcher closed")

// Subscription kinds.
const (
	KindTop         = "top"
	KindParticipant = "participant"
	KindAround      = "around"
)

// State is a consistent copy of a watched window, as returned by
// [Watcher.State]. For KindTop and KindAround, Entries is exactly
// GET /v1/leaderboards/{id}/rankings?offset=<Offset>&limit=<Size> at Version
// (of epoch Epoch). For KindParticipant, Participant is the participant, or
// nil while it is not ranked.
type State struct {
	Kind string
	// Transport is the transport of the current (or last) connection: one of
	// TransportWebSocket, TransportSSE, TransportLongPoll, or "" before the
	// first connection.
	Transport string
	// Ready is false until the first snapshot was applied; the other fields
	// are meaningful only once it is true.
	Ready bool
	// Resyncing is true between a "resync" message and the fresh snapshot
	// that follows it, and between a broken update chain and the snapshot the
	// watcher asked for: the state shown is consistent but may be behind.
	Resyncing bool
	// Version and Epoch are those of the last message applied.
	Version uint64
	Epoch   string
	// Offset is the window's first rank minus one; Size its number of
	// entries.
	Offset int64
	Size   int64
	// Entries are in rank order, ranks Offset+1 .. Offset+Size.
	Entries     []Entry
	Participant *LiveParticipant
	// Status is the last "status" message received, nil if none. The server
	// sends one when the leaderboard's status changes and right after the
	// snapshot of a leaderboard that is not active, so nil means active. Long
	// polling carries no status: a watcher that fell back to it keeps the
	// last one it had.
	Status *LiveStatus
}

type subParams struct {
	kind        string
	limit       int
	participant string
	radius      int
}

// query returns the window's parameters for the SSE and long-poll routes.
func (p subParams) query() url.Values {
	q := url.Values{}
	q.Set("kind", p.kind)
	switch p.kind {
	case KindTop:
		q.Set("limit", strconv.Itoa(p.limit))
	case KindParticipant:
		q.Set("participant_id", p.participant)
	case KindAround:
		q.Set("participant_id", p.participant)
		q.Set("radius", strconv.Itoa(p.radius))
	}
	return q
}

// liveState is the local copy of the window plus what the loop needs about
// it. Guarded by Watcher.mu.
type liveState struct {
	ready     bool
	resyncing bool
	// fresh: the update chain broke; the next subscription must not resume.
	fresh bool
	// epochUncertain: the last snapshot came without an epoch from the
	// server (see session.epoch), so Epoch may be stale; long polls fetch it
	// again before the next request.
	epochUncertain bool
	version        uint64
	epoch          string
	offset, size   int64
	entries        map[int64]Entry
	participant    *LiveParticipant
	status         *LiveStatus
	transport      string
}

// A Watcher keeps a consistent local copy of one window of one leaderboard,
// kept current over WebSocket, SSE or long polling. Create one with
// [Client.WatchTop], [Client.WatchParticipant] or [Client.WatchAround]. Its
// methods are safe for concurrent use.
//
// Changes: [Watcher.Changes] returns a channel with a buffer of one that
// receives a value after every change to the state (snapshot or update
// applied, status received, resync, transport switched). The watcher never
// blocks on it: when the consumer is slow, notifications coalesce into the one
// pending value, and [Watcher.State] always returns the latest state. The
// channel is closed when the watcher ends; [Watcher.Err] then tells why.
type Watcher struct {
	c      *Client
	cfg    config
	board  string
	sub    subParams
	parent context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	st      liveState
	changes chan struct{}
	gen     chan struct{} // closed and replaced on every change, for WaitFor
	ended   bool
	closing bool
	err     error
}

// WatchTop watches the top limit entries (1..1000) of a leaderboard.
func (c *Client) WatchTop(ctx context.Context, board string, limit int, opts ...Option) *Watcher {
	var err error
	if limit < 1 || limit > 1000 {
		err = errors.New("leaderboard: WatchTop: limit must be 1 to 1000")
	}
	return c.watch(ctx, board, subParams{kind: KindTop, limit: limit}, err, opts)
}

// WatchParticipant watches one participant's rank and score.
func (c *Client) WatchParticipant(ctx context.Context, board, participant string, opts ...Option) *Watcher {
	var err error
	if participant == "" {
		err = errors.New("leaderboard: WatchParticipant: empty participant id")
	}
	return c.watch(ctx, board, subParams{kind: KindParticipant, participant: participant}, err, opts)
}

// WatchAround watches the ranks rank-radius .. rank+radius around a
// participant (radius 0..50), clipped at both ends of the board, following it
// as it moves; the window is empty while the participant is not ranked.
func (c *Client) WatchAround(ctx context.Context, board, participant string, radius int, opts ...Option) *Watcher {
	var err error
	switch {
	case participant == "":
		err = errors.New("leaderboard: WatchAround: empty participant id")
	case radius < 0 || radius > 50:
		err = errors.New("leaderboard: WatchAround: radius must be 0 to 50")
	}
	return c.watch(ctx, board, subParams{kind: KindAround, participant: participant, radius: radius}, err, opts)
}

func (c *Client) watch(ctx context.Context, board string, sub subParams, err error, opts []Option) *Watcher {
	cfg := c.cfg
	for _, o := range opts {
		o(&cfg)
	}
	w := &Watcher{
		c: c, cfg: cfg, board: board, sub: sub, parent: ctx,
		done:    make(chan struct{}),
		changes: make(chan struct{}, 1),
		gen:     make(chan struct{}),
		st:      liveState{entries: map[int64]Entry{}},
	}
	if err == nil && board == "" {
		err = errors.New("leaderboard: empty leaderboard id")
	}
	if err == nil {
		switch cfg.forceTrans {
		case "", TransportWebSocket, TransportSSE, TransportLongPoll:
		default:
			err = fmt.Errorf("leaderboard: unknown transport %q", cfg.forceTrans)
		}
	}
	var rctx context.Context
	rctx, w.cancel = context.WithCancel(ctx)
	if err != nil {
		w.finish(err)
		return w
	}
	go func() { w.finish(w.run(rctx)) }()
	return w
}

// Changes returns the change channel (see [Watcher]). Every call returns the
// same channel.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Done is closed when the watcher has ended.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err returns why the watcher ended: nil while it runs and after
// [Watcher.Close], the context's error when the context given to Watch*
// ended, or the fatal error (an *APIError with code "leaderboard_not_found",
// "invalid_argument", "unauthenticated" or "permission_denied", or an
// argument error).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Transport returns the transport of the current (or last) connection:
// "websocket", "sse", "longpoll", or "" before the first connection.
func (w *Watcher) Transport() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.transport
}

// Close stops the watcher, closes its connection and waits for its goroutines
// to end. The change channel is then closed and Err returns nil (unless the
// watcher had already ended with an error).
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
	return nil
}

// State returns a copy of the current consistent state.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stateLocked()
}

func (w *Watcher) stateLocked() State {
	st := &w.st
	s := State{
		Kind: w.sub.kind, Transport: st.transport, Ready: st.ready, Resyncing: st.resyncing || (st.ready && st.fresh),
		Version: st.version, Epoch: st.epoch, Offset: st.offset, Size: st.size,
	}
	if w.sub.kind != KindParticipant && st.size > 0 {
		// The entries held, not the ranks of the window: offset and size come
		// from the server, and a size that is absurd (a broken server or a
		// mangled frame) must not size an allocation or a loop. The entries
		// held are bounded by the frames received.
		s.Entries = make([]Entry, 0, len(st.entries))
		for r, e := range st.entries {
			if r > st.offset && r-st.offset <= st.size {
				s.Entries = append(s.Entries, e)
			}
		}
		slices.SortFunc(s.Entries, func(a, b Entry) int { return cmp.Compare(a.Rank, b.Rank) })
	}
	if p := st.participant; p != nil {
		cp := *p
		if p.PreviousRank != nil {
			v := *p.PreviousRank
			cp.PreviousRank = &v
		}
		if p.PreviousScore != nil {
			v := *p.PreviousScore
			cp.PreviousScore = &v
		}
		s.Participant = &cp
	}
	if st.status != nil {
		v := *st.status
		s.Status = &v
	}
	return s
}

// WaitFor blocks until cond returns true for the current state and returns
// that state. It returns early with the latest state and an error when ctx
// ends or the watcher ends (Err, or ErrClosed after Close). It does not
// consume the change channel.
func (w *Watcher) WaitFor(ctx context.Context, cond func(State) bool) (State, error) {
	for {
		w.mu.Lock()
		s, gen, ended, err := w.stateLocked(), w.gen, w.ended, w.err
		w.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		if ended {
			if err == nil {
				err = ErrClosed
			}
			return s, err
		}
		select {
		case <-gen:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// changedLocked signals a change: the coalescing channel and WaitFor.
func (w *Watcher) changedLocked() {
	if w.ended {
		return
	}
	select {
	case w.changes <- struct{}{}:
	default:
	}
	close(w.gen)
	w.gen = make(chan struct{})
}

func (w *Watcher) setTransport(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.st.transport != name {
		w.st.transport = name
		w.changedLocked()
	}
}

func (w *Watcher) finish(err error) {
	w.mu.Lock()
	if w.closing && w.parent.Err() == nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	w.ended, w.err = true, err
	close(w.changes)
	close(w.gen)
	w.mu.Unlock()
	close(w.done)
}

// resumePoint returns the since_version and epoch to resume from, if any.
func (w *Watcher) resumePoint() (since uint64, epoch string, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &w.st
	if !st.ready || st.fresh || st.epoch == "" {
		return 0, "", false
	}
	return st.version, st.epoch, true
}

func (w *Watcher) needsEpoch() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.st.ready || w.st.fresh || w.st.epochUncertain || w.st.epoch == ""
}

// ---- applying messages: one code path for every transport ----

// liveMsg is any server-to-client message of docs/LIVE.md.
type liveMsg struct {
	Type        string           `json:"type"`
	ID          string           `json:"id,omitempty"`
	Kind        string           `json:"kind,omitempty"`
	Version     uint64           `json:"version"`
	PrevVersion *uint64          `json:"prev_version,omitempty"`
	Epoch       string           `json:"epoch,omitempty"`
	Offset      *int64           `json:"offset,omitempty"`
	Size        *int64           `json:"size,omitempty"`
	Entries     []Entry          `json:"entries,omitempty"`
	Changes     []Entry          `json:"changes,omitempty"`
	Participant *LiveParticipant `json:"participant,omitempty"`
	Status      string           `json:"status,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	Code        string           `json:"code,omitempty"`
	Message     string           `json:"message,omitempty"`
}

// session is what one connection (or one long poll) knows beyond the state.
type session struct {
	// id is the subscription id messages must carry ("" accepts any: SSE
	// and long polls carry "stream" or nothing).
	id string
	// epoch is the epoch the server named for this subscription: the
	// "subscribed" message over WebSocket; for SSE and long polls, which send
	// no "subscribed", the epoch read over REST just before the request (a
	// snapshot that follows it is of that epoch or a later one, so a stale
	// value can only cost a snapshot on the next resume, never a wrong
	// update).
	epoch string
	// awaiting: a snapshot is due (after a resubscription or a resync);
	// updates still in flight for the old subscription are dropped.
	awaiting bool
}

type action int

const (
	actNone        action = iota
	actResubscribe        // the chain broke: subscribe again without since_version
	actReconnect          // close this connection and reconnect
	actFatal              // end the watcher
)

// apply applies one message to the state, following docs/LIVE.md "Keeping a
// local copy".
func (w *Watcher) apply(s *session, m *liveMsg) (action, error) {
	if s.id != "" && m.ID != "" && m.ID != s.id {
		return actNone, nil
	}
	switch m.Type {
	case "subscribed":
		s.epoch = m.Epoch
	case "snapshot":
		if !w.applySnapshot(s, m) {
			s.awaiting = true
			return actResubscribe, nil
		}
		s.awaiting = false
	case "update":
		if s.awaiting {
			return actNone, nil
		}
		if !w.applyUpdate(s, m) {
			s.awaiting = true
			return actResubscribe, nil
		}
	case "status":
		w.mu.Lock()
		w.st.status = &LiveStatus{Status: m.Status, Version: m.Version}
		w.changedLocked()
		w.mu.Unlock()
	case "resync":
		s.awaiting = true
		w.mu.Lock()
		w.st.resyncing = true
		w.changedLocked()
		w.mu.Unlock()
	case "error":
		e := &APIError{Status: statusOfCode[m.Code], Code: m.Code, Message: m.Message}
		switch {
		case m.Code == CodeLeaderboardNotFound:
			return actFatal, e
		case m.ID == "":
			// About the connection or a message we sent; nothing to fix.
			return actNone, nil
		case m.Code == CodeInvalidArgument || m.Code == CodeUnauthenticated || m.Code == CodePermissionDenied:
			return actFatal, e
		default: // too_many_subscriptions and the like: try again later
			return actReconnect, e
		}
	}
	return actNone, nil
}

// maxWindowEntries is the most entries a window holds: a top window's limit
// is at most 1000, an around window 101 ranks. The watcher keeps no more:
// with a size from the server that is absurd (a broken server, a mangled
// frame), each update could add its changes to the entries held and none
// left the window, so they grew without bound, and every update walked
// them all.
const maxWindowEntries = 1000

// applySnapshot replaces the state with a snapshot and reports whether it
// did: a snapshot with more entries in its window than a window holds is
// not applied (the state is marked fresh, the chain broken).
func (w *Watcher) applySnapshot(s *session, m *liveMsg) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &w.st
	offset, size := int64(0), int64(len(m.Entries))
	if m.Offset != nil {
		offset = *m.Offset
	}
	if m.Size != nil {
		size = *m.Size
	}
	entries := make(map[int64]Entry, min(len(m.Entries), maxWindowEntries))
	if w.sub.kind != KindParticipant && !addInWindow(entries, m.Entries, offset, size) {
		st.fresh = true
		w.changedLocked()
		return false
	}
	st.entries, st.offset, st.size = entries, offset, size
	st.participant = m.Participant
	st.version = m.Version
	switch {
	case m.Epoch != "":
		st.epoch, st.epochUncertain = m.Epoch, false
	case s.epoch != "":
		st.epoch, st.epochUncertain = s.epoch, false
	default:
		st.epochUncertain = true
	}
	st.ready, st.resyncing, st.fresh = true, false, false
	w.changedLocked()
	return true
}

// addInWindow puts the entries whose rank is in the window into entries, and
// reports false as soon as that makes more than a window holds.
func addInWindow(entries map[int64]Entry, list []Entry, offset, size int64) bool {
	for _, e := range list {
		if inWindow(e.Rank, offset, size) {
			entries[e.Rank] = e
		}
		if len(entries) > maxWindowEntries {
			return false
		}
	}
	return true
}

// inWindow reports whether rank is in offset+1 .. offset+size, with no
// overflow for any offset and size.
func inWindow(rank, offset, size int64) bool {
	return rank > offset && rank-offset <= size
}

// applyUpdate applies an update if it continues the chain and reports
// whether it did.
func (w *Watcher) applyUpdate(s *session, m *liveMsg) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &w.st
	if !st.ready || st.fresh || m.PrevVersion == nil || *m.PrevVersion != st.version ||
		(s.epoch != "" && s.epoch != st.epoch) || (m.Epoch != "" && m.Epoch != st.epoch) {
		st.fresh = true
		w.changedLocked()
		return false
	}
	if w.sub.kind == KindParticipant {
		st.participant = m.Participant
	} else {
		offset, size := st.offset, st.size
		if m.Offset != nil {
			offset = *m.Offset
		}
		if m.Size != nil {
			size = *m.Size
		}
		// The window after the update, built aside: one that would hold
		// more than a window can is not applied (see maxWindowEntries).
		entries := make(map[int64]Entry, len(st.entries))
		for r, e := range st.entries {
			if inWindow(r, offset, size) {
				entries[r] = e
			}
		}
		if !addInWindow(entries, m.Changes, offset, size) {
			st.fresh = true
			w.changedLocked()
			return false
		}
		st.entries, st.offset, st.size = entries, offset, size
	}
	st.version = m.Version
	// An update applied on a session that is not awaiting a snapshot
	// continues the chain from the state: it is current again (a resync
	// whose snapshot was lost with its connection ends with the resume).
	st.resyncing = false
	w.changedLocked()
	return true
}

// ---- the connection loop ----

// sessionResult is how one connection (or run of long polls) ended.
type sessionResult struct {
	connected bool  // the transport was accepted (101, a 200 stream, a poll answered)
	refused   bool  // the server answered the handshake with another status
	stable    bool  // it lived long enough to reset the backoff
	fatal     error // ends the watcher
	err       error // why it ended, for nothing but debugging
	// limited: the server answered 429 rate_limited (too many upgrades or
	// streams from this address): no reason to leave the transport, but
	// wait at least retryAfter before the next attempt.
	limited    bool
	retryAfter time.Duration
}

var ladder = [...]string{TransportWebSocket, TransportSSE, TransportLongPoll}

// run connects, reconnects and falls back until ctx ends or a fatal error.
//
// The ladder is WebSocket, SSE, long poll. A transport is left for the next
// one when the server refuses it (a non-101 upgrade answer, a non-200 stream
// or poll answer other than a fatal error) or when it cannot connect and has
// never connected in this watcher's life. Any other loss reconnects the same
// transport after a backoff. Every cfg.wsRetry on a fallback, the watcher
// climbs back to WebSocket.
func (w *Watcher) run(ctx context.Context) error {
	mode := 0
	if w.cfg.forceTrans != "" {
		for i, t := range ladder {
			if t == w.cfg.forceTrans {
				mode = i
			}
		}
	}
	auto := w.cfg.forceTrans == ""
	var worked [len(ladder)]bool
	climbing := false
	var nextClimb time.Time
	attempt := 0
	for {
		if auto && mode != 0 && !time.Now().Before(nextClimb) {
			mode, climbing = 0, true
		}
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if auto && mode != 0 {
			sctx, cancel = context.WithDeadline(ctx, nextClimb)
		}
		var res sessionResult
		switch ladder[mode] {
		case TransportWebSocket:
			res = w.runWebSocket(sctx)
		case TransportSSE:
			res = w.runSSE(sctx)
		default:
			res = w.runLongPoll(sctx)
		}
		climbTime := sctx.Err() != nil
		cancel()
		if res.fatal != nil {
			return res.fatal
		}
		if !auto && res.refused {
			// A WebSocket upgrade refused with a fatal answer (401, 403,
			// 400) falls back to SSE, which ends the watcher with the same
			// answer; a watcher pinned to WebSocket has nowhere to fall.
			var e *APIError
			if errors.As(res.err, &e) && fatalHTTP(e) {
				return e
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if res.connected {
			worked[mode], climbing = true, false
		}
		if res.stable {
			attempt = 0
		}
		if auto {
			if climbTime {
				continue
			}
			down := !res.limited && (res.refused || (!res.connected && (!worked[mode] || climbing)))
			if down && mode < len(ladder)-1 {
				if mode == 0 {
					nextClimb = time.Now().Add(w.cfg.wsRetry)
				}
				mode++
				continue
			}
		}
		t := time.NewTimer(res.retryAfter + backoffDelay(attempt, w.cfg.backoffBase, w.cfg.backoffMax))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoffDelay is full jitter: uniform in [0, min(max, base*2^attempt)).
func backoffDelay(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// stableAfter is how long a connection must live to reset the backoff.
func (cfg *config) stableAfter() time.Duration {
	return max(cfg.backoffMax, time.Second)
}

// maxRetryAfter bounds the Retry-After a watcher honours. The server asks
// for seconds; a Retry-After of days or centuries (a broken proxy, a hostile
// server) would leave the watcher silent that long, and one near the largest
// Duration overflowed when the backoff was added to it, into a negative wait:
// the watcher then hammered the server it was asked to leave alone.
const maxRetryAfter = time.Minute

// rateLimited makes the session result of a 429 answer on a live route.
func rateLimited(e *APIError) (sessionResult, bool) {
	if e.Status != 429 && e.Code != CodeRateLimited {
		return sessionResult{}, false
	}
	return sessionResult{limited: true, retryAfter: min(e.RetryAfter, maxRetryAfter), err: e}, true
}

// fatalHTTP reports whether an error answer on a live route ends the
// watcher rather than the transport.
func fatalHTTP(e *APIError) bool {
	switch e.Code {
	case CodeLeaderboardNotFound, CodeInvalidArgument, CodeUnauthenticated, CodePermissionDenied:
		return true
	}
	return false
}
