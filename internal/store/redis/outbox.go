package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/store"
)

// The outbox of leaderboard B is the stream P{B}:o. Each accepted change is one
// entry, appended by the script that made the change, so the entries are in
// version order. Its fields, all decimal strings:
//
//	v   version              p   participant id
//	r   "1" when removed (absent otherwise)
//	h   "1" when the participant had a previous entry, else "0"
//	os  previous score       or  previous rank (0 when none)
//	ns  new score            nr  new rank (0 when removed)
//	at  achieved_at (13 digits; 0 when removed)
//
// The stream is capped at about Options.OutboxMaxLen entries (XADD MAXLEN ~);
// a reader that falls further behind sees a jump in versions.

// OutboxEvent is one outbox entry: its stream id and the event.
type OutboxEvent struct {
	ID string
	store.Event
}

// outboxReadCount is how many entries one XRANGE of the tailer reads.
const outboxReadCount = 256

// ReadOutbox returns up to count events of board's outbox after stream id
// afterID ("" reads from the oldest entry kept), in version order. Pass the ID
// of the last event returned to read on. An empty result means nothing newer
// yet. A relay that wants to block can XREAD OutboxKey(board) itself and
// decode with ParseOutboxMessage.
func (s *Store) ReadOutbox(ctx context.Context, board, afterID string, count int) ([]OutboxEvent, error) {
	if count <= 0 {
		count = outboxReadCount
	}
	return s.readRange(ctx, board, afterID, "+", count)
}

func (s *Store) readRange(ctx context.Context, board, afterID, end string, count int) ([]OutboxEvent, error) {
	start := "-"
	if end == "" {
		end = "+"
	}
	if afterID != "" {
		start = "(" + afterID
	}
	msgs, err := s.c.XRangeN(ctx, s.keysOf(board).o, start, end, int64(count)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: outbox: %w", err)
	}
	evs := make([]OutboxEvent, 0, len(msgs))
	for _, m := range msgs {
		e, err := ParseOutboxMessage(board, m)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// ParseOutboxMessage decodes one entry of board's outbox stream.
func ParseOutboxMessage(board string, m goredis.XMessage) (OutboxEvent, error) {
	var bad error
	num := func(k string) uint64 {
		v, _ := m.Values[k].(string)
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil && bad == nil {
			bad = fmt.Errorf("redis store: outbox entry %s: field %s = %q", m.ID, k, v)
		}
		return n
	}
	pid, _ := m.Values["p"].(string)
	e := OutboxEvent{ID: m.ID, Event: store.Event{
		Leaderboard:   board,
		Version:       num("v"),
		ParticipantID: pid,
		Removed:       m.Values["r"] == "1",
		HadOld:        m.Values["h"] == "1",
		OldScore:      num("os"),
		OldRank:       int64(num("or")),
		NewScore:      num("ns"),
		NewRank:       int64(num("nr")),
		AchievedAt:    int64(num("at")),
	}}
	if pid == "" && bad == nil {
		bad = fmt.Errorf("redis store: outbox entry %s has no participant", m.ID)
	}
	return e, bad
}

// tail is this process's position in one leaderboard's outbox: the last
// version published to the Sink and its stream id. Its mutex orders the
// publishing.
//
// Local writes to the leaderboard hold a ticket from before they send their
// script until they hand their events in. A write whose events cannot be
// published yet (an earlier version is missing) first waits for the writes
// that started before it returned, since those may hold the missing versions
// and hand them in a moment later; only what is still missing then (another
// process's events) is read back from the outbox. So a busy leaderboard with
// one process rarely costs an XRANGE.
type tail struct {
	mu      sync.Mutex
	handed  sync.Cond // signalled whenever a ticket ends
	ready   bool
	gen     string // the leaderboard incarnation it follows
	last    uint64 // last version published
	lastID  string // its stream id; "" = before the first entry
	pending map[uint64]OutboxEvent
	tickets uint64              // tickets handed out
	open    map[uint64]struct{} // tickets not ended
}

func (s *Store) tailOf(board string) *tail {
	s.tailsMu.Lock()
	defer s.tailsMu.Unlock()
	t := s.tails[board]
	if t == nil {
		t = &tail{open: map[uint64]struct{}{}}
		t.handed.L = &t.mu
		s.tails[board] = t
	}
	return t
}

// resetTail starts following a leaderboard this process just made, from its
// first version.
func (s *Store) resetTail(board, gen string, base uint64) {
	if s.sink == nil {
		return
	}
	t := s.tailOf(board)
	t.mu.Lock()
	t.reset(gen, base)
	t.mu.Unlock()
}

func (t *tail) reset(gen string, base uint64) {
	t.ready, t.gen, t.last, t.lastID, t.pending = true, gen, base, "", nil
}

// begin takes a ticket for a write about to be sent.
func (t *tail) begin() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tickets++
	t.open[t.tickets] = struct{}{}
	return t.tickets
}

// end ends a ticket whose write made no event (or failed).
func (t *tail) end(ticket uint64) {
	t.mu.Lock()
	t.endLocked(ticket)
	t.mu.Unlock()
}

func (t *tail) endLocked(ticket uint64) {
	delete(t.open, ticket)
	t.handed.Broadcast()
}

// openBefore reports whether a ticket below n has not ended.
func (t *tail) openBefore(n uint64) bool {
	for k := range t.open {
		if k < n {
			return true
		}
	}
	return false
}

// openTail makes sure this process follows board before it writes to it
// (from the version it has now) and takes a ticket for the write.
func (s *Store) openTail(ctx context.Context, board string) (*tail, uint64, error) {
	t := s.tailOf(board)
	t.mu.Lock()
	if !t.ready {
		k := s.keysOf(board)
		code, r, err := run(ctx, s.c, tailScript, []string{k.m, k.o})
		if err != nil {
			t.mu.Unlock()
			return nil, 0, err
		}
		if code == codeNoBoard {
			t.mu.Unlock()
			s.tailsMu.Lock()
			if s.tails[board] == t && !t.ready {
				delete(s.tails, board)
			}
			s.tailsMu.Unlock()
			return nil, 0, store.ErrBoardNotFound
		}
		t.ready, t.gen, t.last, t.lastID = true, str(r[2]), uintOf(r[1]), str(r[4])
	}
	t.mu.Unlock()
	return t, t.begin(), nil
}

// deliver ends the write's ticket and publishes own (the events the write
// made, in version order, of incarnation gen that started at version base)
// and every event before them not published yet.
func (s *Store) deliver(ctx context.Context, board string, t *tail, ticket uint64, gen string, base uint64, own []OutboxEvent) {
	if cur := s.tailOf(board); cur != t {
		// The leaderboard was dropped meanwhile (and maybe made again).
		t.end(ticket)
		t, ticket = cur, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ticket != 0 {
		t.endLocked(ticket)
	}
	if !t.ready || t.gen != gen {
		t.reset(gen, base)
	} else if own[0].Version <= t.last && laterID(own[0].ID, t.lastID) {
		// A version already published, at a newer stream id than the last
		// one published (a catch-up that read this write's own event first
		// has it at the same id): Redis went back in time (restarted from
		// an older RDB or AOF state, the epoch key with it), and these
		// versions name other changes than the ones clients and the audit
		// log have.
		s.rolledBack.Store(true)
	}
	target := own[len(own)-1]
	for len(own) > 0 && own[0].Version == t.last+1 { // the usual case: nothing in between
		s.publish(t, own[0])
		own = own[1:]
	}
	for _, e := range own {
		if e.Version > t.last {
			if t.pending == nil {
				t.pending = map[uint64]OutboxEvent{}
			}
			t.pending[e.Version] = e
		}
	}
	s.drain(t)
	// Writes that started before this one returned may hold what is missing.
	for n := t.tickets + 1; t.last < target.Version && t.gen == gen && t.openBefore(n); {
		t.handed.Wait()
	}
	if t.last < target.Version && t.gen == gen {
		s.fill(ctx, board, t, target.ID, target.Version)
	}
}

// laterID reports whether stream id a ("ms-seq") comes after b; false when
// either does not parse.
func laterID(a, b string) bool {
	am, as, ok1 := strings.Cut(a, "-")
	bm, bs, ok2 := strings.Cut(b, "-")
	if !ok1 || !ok2 {
		return false
	}
	amn, err1 := strconv.ParseUint(am, 10, 64)
	asn, err2 := strconv.ParseUint(as, 10, 64)
	bmn, err3 := strconv.ParseUint(bm, 10, 64)
	bsn, err4 := strconv.ParseUint(bs, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return false
	}
	return amn > bmn || (amn == bmn && asn > bsn)
}

// CatchUp publishes to the Sink every event of board not published yet, made
// by any process. A board this process has not written to yet is followed
// from now on: only its newest event is published this time.
func (s *Store) CatchUp(ctx context.Context, board string) error {
	if s.sink == nil {
		return nil
	}
	if board == "" {
		return store.ErrBoardNotFound
	}
	k := s.keysOf(board)
	// What was published before the read: the version the read finds can be
	// below it only if Redis went back in time. (What is published after the
	// read started, by this process's own writes, can be above the version
	// read: the board moved on.)
	var readyBefore bool
	var genBefore string
	var lastBefore uint64
	s.tailsMu.Lock()
	before := s.tails[board] // not made here: a board that does not exist gets no tail
	s.tailsMu.Unlock()
	if before != nil {
		before.mu.Lock()
		readyBefore, genBefore, lastBefore = before.ready, before.gen, before.last
		before.mu.Unlock()
	}
	code, r, err := run(ctx, s.c, tailScript, []string{k.m, k.o})
	if err != nil {
		return err
	}
	if code == codeNoBoard {
		return store.ErrBoardNotFound
	}
	t := s.tailOf(board)
	if t != before {
		readyBefore = false // dropped and made again meanwhile
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch gen := str(r[2]); {
	case !t.ready:
		// Followed from its newest event, which is published: the Sink may
		// have read the board before (the hub serves a viewer from a read,
		// and only then is the board followed for it), and the changes made
		// since that read would otherwise reach it only with the next
		// change, on a quiet board never. A Sink whose log is further
		// behind sees a skip in versions (the hub then reads every window).
		v, id := uintOf(r[1]), str(r[4])
		var newest *OutboxEvent
		if id != "" {
			msgs, err := s.c.XRangeN(ctx, k.o, id, id, 1).Result()
			if err != nil {
				return fmt.Errorf("redis store: outbox: %w", err) // not followed yet: the next call tries again
			}
			if len(msgs) == 1 {
				e, err := ParseOutboxMessage(board, msgs[0])
				if err != nil {
					return err
				}
				if e.Version == v {
					newest = &e
				}
			}
		}
		t.ready, t.gen, t.last, t.lastID = true, gen, v, id
		if newest != nil {
			t.last = v - 1
			s.publish(t, *newest)
		}
		return nil
	case t.gen != gen:
		t.reset(gen, uintOf(r[3]))
	case readyBefore && genBefore == gen && uintOf(r[1]) < lastBefore:
		s.rolledBack.Store(true) // as in deliver: Redis went back in time
	}
	if v := uintOf(r[1]); t.last < v {
		return s.fill(ctx, board, t, str(r[4]), v)
	}
	return nil
}

// fill reads the outbox after t's position up to stream id end and publishes
// until version target is published. When the outbox no longer holds what
// comes before the pending events (trimmed), it skips ahead and counts the gap.
func (s *Store) fill(ctx context.Context, board string, t *tail, end string, target uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for t.last < target {
		evs, err := s.readRange(ctx, board, t.lastID, end, outboxReadCount)
		if err != nil {
			return err // what is pending is published by the next write or CatchUp
		}
		for _, e := range evs {
			if e.Version > t.last {
				s.publish(t, e)
			}
		}
		s.drain(t)
		if len(evs) < outboxReadCount {
			break
		}
	}
	for t.last < target && len(t.pending) > 0 { // trimmed under us
		next := uint64(0)
		for v := range t.pending {
			if next == 0 || v < next {
				next = v
			}
		}
		s.publish(t, t.pending[next])
		s.drain(t)
	}
	return nil
}

// drain publishes the pending events that come next.
func (s *Store) drain(t *tail) {
	for len(t.pending) > 0 {
		e, ok := t.pending[t.last+1]
		if !ok {
			for v := range t.pending {
				if v <= t.last {
					delete(t.pending, v)
				}
			}
			return
		}
		s.publish(t, e)
	}
}

// publish hands e, the next event of t's leaderboard, to the Sink.
func (s *Store) publish(t *tail, e OutboxEvent) {
	if e.Version > t.last+1 {
		s.gaps.Add(e.Version - t.last - 1)
	}
	delete(t.pending, e.Version)
	t.last, t.lastID = e.Version, e.ID
	s.sink.Publish(e.Event)
}

// OutboxGaps is how many events the Sink missed because they were trimmed from
// an outbox before this process read them (see the package comment).
func (s *Store) OutboxGaps() uint64 { return s.gaps.Load() }
