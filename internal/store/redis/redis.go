// Package redis is the ranking store of the scaled-out deployment: every
// leaderboard lives in Redis (one node or a Redis Cluster), so any number of
// API processes share it and a leaderboard's versions stay gap-free across all
// of them. It passes the same conformance suite (store/storetest) as the
// in-memory store.
//
// # Keys
//
// A leaderboard B has four keys, all hash-tagged {B} so that they share one
// Cluster slot and every script touches one slot only (P is Options.Prefix,
// "lb:" by default, so several deployments or tests can share one Redis):
//
//	P{B}:z       sorted set, the ranking (member and score below)
//	P{B}:p       hash participant -> "score:achieved_at" (O(1) lookup of the old entry)
//	P{B}:m       hash v (version), o (order 0 desc, 1 asc), pl (policy 0 set, 1 best),
//	             s (sealed 0/1), g (random incarnation id), b (version it started at)
//	P{B}:o       stream, the leaderboard's outbox: one entry per accepted change
//
// and two keys are global: P+"epoch" (the store's epoch, shared by every
// process on the same Redis) and P+"boards" (a set of the leaderboard ids, for
// the relay: see ListBoards). Restore builds in P{B}:rz:<gen> and P{B}:rp:<gen>
// (with a one-hour expiry) and renames them into place atomically.
//
// # Exact order
//
// Redis scores are doubles, exact for every integer up to 2^53, and every
// score here is an integer no larger than store.MaxScore = 2^53-1. The sorted
// set's score is MaxScore-score on a descending board and score on an
// ascending one, so the ascending sorted-set order is always best first; no
// timestamp goes in the score's fraction. Equal sorted-set scores are ordered
// by member bytes, and the member is achieved_at as 13 zero-padded decimal
// digits (store.MaxAchievedAt < 10^13) followed by the participant id, so ties
// go to the earlier achieved_at, then to the participant id in byte order:
// exactly the total order of API.md. Rank = ZRANK + 1. Scores are read back
// from WITHSCORES replies, whose decimal form round-trips a double exactly.
//
// # Writes
//
// Submit sends each chunk of up to 64 submissions as one Lua script (EVALSHA,
// falling back to EVAL when the script cache was flushed) that, for each
// submission in order: reads the old entry and rank, applies the board's
// policy (an unchanged score, or a worse one under best, changes nothing and
// bumps nothing), writes the sorted set and the hash, reads the new rank, bumps
// the version and appends the event to the outbox with XADD MAXLEN ~
// Options.OutboxMaxLen. Remove is one script too. Seal sets the sealed flag in
// a script, so every write that returned success is in the state it returns.
// Every read (Page, Around, Participant, Stats) is one script too, so what it
// returns is the state at the one version it reports.
//
// # Events
//
// The outbox is the source of truth for events; a relay (a later component)
// reads it with ReadOutbox, or with XREAD on OutboxKey, and ListBoards names
// the leaderboards. Events and stream ids are decoded by ParseOutboxMessage.
//
// The Sink of this process gets, for every leaderboard this process writes to,
// every event of that leaderboard (those of other processes too) in strictly
// increasing version order, from the version the leaderboard had when this
// process first wrote to it (or created it). After each write, under a
// per-leaderboard mutex, the events the script returned are published. When
// an earlier version is still missing, the write first waits for the local
// writes that were in flight when it returned (they may hold it; see tail),
// then reads whatever is still missing (other processes' events) with XRANGE
// on the outbox from the last published stream id. CatchUp does the same
// without writing. A Submit returns only after its own events were published.
// The one case with a gap: when this process last published for a leaderboard
// more than OutboxMaxLen events ago, the trimmed events are skipped
// (OutboxGaps counts them); and a process that writes to a leaderboard seldom
// while others write to it often publishes the backlog (at most OutboxMaxLen
// events) at its next write. With a nil Sink nothing is read back and nothing
// waits. A write racing a DropBoard of its own leaderboard may publish events
// of the dropped incarnation.
//
// # Epoch
//
// The epoch is kept in Redis at P+"epoch" (set once with SET NX to a random
// value), so every process on the same Redis reports the same one; it changes
// only if that key is lost (a flushed Redis), which is exactly when versions
// stop being comparable. Options.Epoch overrides it. A Redis that loses its
// data under a running process (restarted without persistence, flushed, or
// the key evicted) loses the epoch key with it: CheckEpoch tells, and the
// process must stop using its epoch (see ErrDataLost).
//
// # Connecting
//
// NewClient turns the --redis-url value into a client: see its comment.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/store"
)

// batchChunk is how many submissions of one batch go into one script call:
// long enough to amortise the round trip, short enough that one script never
// holds Redis for long.
const batchChunk = 64

// DefaultOutboxMaxLen is the default approximate length of each outbox.
const DefaultOutboxMaxLen = 100_000

// DefaultPrefix is the default key prefix.
const DefaultPrefix = "lb:"

// maxParticipantID is the longest accepted participant id in bytes (as memory).
const maxParticipantID = 255

// restoreTTL bounds how long the keys of an interrupted Restore stay.
const restoreTTL = time.Hour

// retiredTTL is how long a dropped leaderboard's outbox is kept for a relay
// that has not produced all of it yet (a relay down, Kafka unreachable).
const retiredTTL = 24 * time.Hour

// Options configure a Store.
type Options struct {
	// Client is the Redis connection (one node or a cluster); see NewClient.
	// The Store does not close it.
	Client goredis.UniversalClient
	// Prefix starts every key; empty means DefaultPrefix. It must not contain
	// '{' or '}'.
	Prefix string
	// Epoch overrides the epoch kept in Redis.
	Epoch string
	// Sink receives every accepted change in version order; nil discards them.
	Sink store.EventSink
	// OutboxMaxLen caps each leaderboard's outbox (approximately, XADD MAXLEN
	// ~); 0 means DefaultOutboxMaxLen.
	OutboxMaxLen int64
}

// ErrDataLost is CheckEpoch's answer when the epoch key no longer holds the
// epoch this store read at its start.
var ErrDataLost = errors.New("redis store: Redis lost its data: the epoch key is gone or holds another epoch (restarted without persistence, flushed, or evicted), or a leaderboard's version went backwards (restarted from an older persisted state)")

// Store is the Redis ranking store. Create it with New.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	epoch  string
	ownEp  bool // the epoch is Options.Epoch, not the key's
	sink   store.EventSink
	maxlen string

	tailsMu    sync.Mutex
	tails      map[string]*tail
	gaps       atomic.Uint64
	rolledBack atomic.Bool // a leaderboard's version went backwards (see deliver)
}

// New returns a store over opts.Client, reading (or setting) the epoch.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redis store: no client")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis store: prefix %q must not contain braces", prefix)
	}
	maxlen := opts.OutboxMaxLen
	if maxlen <= 0 {
		maxlen = DefaultOutboxMaxLen
	}
	s := &Store{
		c:      opts.Client,
		prefix: prefix,
		epoch:  opts.Epoch,
		ownEp:  opts.Epoch != "",
		sink:   opts.Sink,
		maxlen: strconv.FormatInt(maxlen, 10),
		tails:  map[string]*tail{},
	}
	if s.epoch == "" {
		key := prefix + "epoch"
		if err := s.c.SetNX(ctx, key, randomHex(8), 0).Err(); err != nil {
			return nil, fmt.Errorf("redis store: epoch: %w", err)
		}
		epoch, err := s.c.Get(ctx, key).Result()
		if err != nil {
			return nil, fmt.Errorf("redis store: epoch: %w", err)
		}
		s.epoch = epoch
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Epoch implements store.Store.
func (s *Store) Epoch() string { return s.epoch }

// CheckEpoch returns ErrDataLost when the epoch key is gone or holds another
// epoch than the one this store reports: Redis lost the data the versions
// this process handed out belong to (its leaderboards are gone, or were
// rebuilt by another process from the audit log, perhaps at lower versions
// that will be reused). Any other error is Redis not answering. With
// Options.Epoch set there is no key to check, and it returns nil.
//
// It also returns ErrDataLost once this store saw a leaderboard's version go
// backwards within one incarnation: a Redis restarted from an older persisted
// state (an RDB snapshot, an AOF fsynced every second) keeps its epoch key,
// but hands out versions again that this process already published.
func (s *Store) CheckEpoch(ctx context.Context) error {
	if s.rolledBack.Load() {
		return ErrDataLost
	}
	if s.ownEp {
		return nil
	}
	epoch, err := s.c.Get(ctx, s.prefix+"epoch").Result()
	if errors.Is(err, goredis.Nil) || (err == nil && epoch != s.epoch) {
		return ErrDataLost
	}
	if err != nil {
		return fmt.Errorf("redis store: epoch: %w", err)
	}
	return nil
}

// Client returns the Redis client the store uses.
func (s *Store) Client() goredis.UniversalClient { return s.c }

// keys are the names of one leaderboard's keys.
type keys struct{ m, z, p, o string }

func (s *Store) keysOf(board string) keys {
	base := s.prefix + "{" + board + "}:"
	return keys{m: base + "m", z: base + "z", p: base + "p", o: base + "o"}
}

// OutboxKey is the name of a leaderboard's outbox stream, for a relay that
// reads it with XREAD (decode its entries with ParseOutboxMessage).
func (s *Store) OutboxKey(board string) string { return s.keysOf(board).o }

func (s *Store) boardsKey() string { return s.prefix + "boards" }

// retiredKey names the set of dropped leaderboards whose outbox is kept for
// the relay.
func (s *Store) retiredKey() string { return s.prefix + "retired" }

func orderArg(o store.SortOrder) string {
	if o == store.Ascending {
		return "1"
	}
	return "0"
}

func policyArg(p store.Policy) string {
	if p == store.PolicyBest {
		return "1"
	}
	return "0"
}

// CreateBoard implements store.Store.
func (s *Store) CreateBoard(ctx context.Context, board string, opts store.BoardOptions) error {
	if board == "" {
		return errors.New("redis store: empty leaderboard id")
	}
	// Listed first: ListBoards may name a leaderboard that does not exist (a
	// failed create, a drop in progress) but never misses one that does.
	if err := s.c.SAdd(ctx, s.boardsKey(), board).Err(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	k := s.keysOf(board)
	gen := randomHex(8)
	code, _, err := run(ctx, s.c, createScript, []string{k.m, k.z, k.p, k.o}, orderArg(opts.Order), policyArg(opts.Policy), gen)
	if err != nil {
		return err
	}
	if code == codeNoBoard {
		return store.ErrBoardExists
	}
	s.resetTail(board, gen, 0)
	return nil
}

// Restore implements store.Store. The entries are written to temporary keys in
// pipelined chunks, then one script checks that the board still does not
// exist and renames them into place with the board's metadata, so the board
// appears whole or not at all. Nothing is published. Versions above 2^53-1
// are ErrOutOfRange (Redis scripts count in doubles).
func (s *Store) Restore(ctx context.Context, board string, opts store.BoardOptions, version uint64, entries []store.Entry) error {
	if board == "" {
		return errors.New("redis store: empty leaderboard id")
	}
	if version > store.MaxScore {
		return store.ErrOutOfRange
	}
	for i := range entries {
		e := &entries[i]
		if !valid(e.ParticipantID, e.Score, e.AchievedAt) {
			return store.ErrOutOfRange
		}
	}
	k := s.keysOf(board)
	if n, err := s.c.Exists(ctx, k.m).Result(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	} else if n > 0 {
		return store.ErrBoardExists
	}
	if err := s.c.SAdd(ctx, s.boardsKey(), board).Err(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	gen := randomHex(8)
	base := s.prefix + "{" + board + "}:"
	tz, tp := base+"rz:"+gen, base+"rp:"+gen
	const perCommand, perPipeline = 1000, 32
	desc := opts.Order != store.Ascending
	var buf []byte
	for start := 0; start < len(entries); {
		pipe := s.c.Pipeline()
		for c := 0; c < perPipeline && start < len(entries); c++ {
			end := min(start+perCommand, len(entries))
			zs := make([]goredis.Z, 0, end-start)
			hv := make([]any, 0, 2*(end-start))
			for i := start; i < end; i++ {
				e := &entries[i]
				buf = appendAt(buf[:0], e.AchievedAt)
				at := string(buf)
				zs = append(zs, goredis.Z{Score: float64(zscore(desc, e.Score)), Member: at + e.ParticipantID})
				hv = append(hv, e.ParticipantID, strconv.FormatUint(e.Score, 10)+":"+at)
			}
			pipe.ZAdd(ctx, tz, zs...)
			pipe.HSet(ctx, tp, hv...)
			start = end
		}
		pipe.Expire(ctx, tz, restoreTTL)
		pipe.Expire(ctx, tp, restoreTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			s.c.Unlink(context.WithoutCancel(ctx), tz, tp)
			return fmt.Errorf("redis store: restore: %w", err)
		}
	}
	code, _, err := run(ctx, s.c, restoreScript, []string{k.m, k.z, k.p, k.o, tz, tp},
		orderArg(opts.Order), policyArg(opts.Policy), gen, strconv.FormatUint(version, 10), strconv.Itoa(len(entries)))
	if err != nil {
		s.c.Unlink(context.WithoutCancel(ctx), tz, tp)
		return err
	}
	switch code {
	case codeNoBoard:
		return store.ErrBoardExists
	case codeDuplicateEntries:
		return fmt.Errorf("%w: duplicate participant ids", store.ErrOutOfRange)
	}
	s.resetTail(board, gen, version)
	return nil
}

// DropBoard implements store.Store.
func (s *Store) DropBoard(ctx context.Context, board string) error {
	if board == "" {
		return store.ErrBoardNotFound
	}
	k := s.keysOf(board)
	// Retired first: its outbox outlives it (for retiredTTL) until the relay
	// has produced what it still holds (ListRetired, ForgetRetired).
	// A sorted set by time of the drop, so that entries whose outbox has
	// expired go even where no relay ever forgets them (Redis without Kafka).
	now := time.Now()
	if err := s.c.ZAdd(ctx, s.retiredKey(), goredis.Z{Score: float64(now.UnixMilli()), Member: board}).Err(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	if err := s.c.ZRemRangeByScore(ctx, s.retiredKey(), "-inf", "("+strconv.FormatInt(now.Add(-retiredTTL).UnixMilli(), 10)).Err(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	// Unlisted first, so that a create racing with this drop is listed again
	// by its own SADD (ListBoards never misses a leaderboard that exists).
	if err := s.c.SRem(ctx, s.boardsKey(), board).Err(); err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	code, _, err := run(ctx, s.c, dropScript, []string{k.m, k.z, k.p, k.o}, retiredTTL.Milliseconds())
	if err != nil {
		return err
	}
	s.tailsMu.Lock()
	delete(s.tails, board)
	s.tailsMu.Unlock()
	if code == codeNoBoard {
		return store.ErrBoardNotFound
	}
	return nil
}

// ListBoards returns the ids of the leaderboards in this Redis under this
// prefix (SMEMBERS of P+"boards"), in no particular order. It may name a
// leaderboard that was just dropped or whose creation failed (reading it then
// says ErrBoardNotFound), never misses one that exists.
func (s *Store) ListBoards(ctx context.Context) ([]string, error) {
	ids, err := s.c.SMembers(ctx, s.boardsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	return ids, nil
}

// ListRetired returns the ids of dropped leaderboards whose outbox the relay
// may not have finished (see ForgetRetired), in no particular order.
func (s *Store) ListRetired(ctx context.Context) ([]string, error) {
	ids, err := s.c.ZRange(ctx, s.retiredKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	return ids, nil
}

// ForgetRetired takes a dropped leaderboard off ListRetired when its outbox
// holds nothing after stream id afterID (the relay's cursor; "" for none),
// deleting that outbox unless the leaderboard was made again. It reports
// whether it did.
func (s *Store) ForgetRetired(ctx context.Context, board, afterID string) (bool, error) {
	if board == "" {
		return true, s.c.ZRem(ctx, s.retiredKey(), board).Err()
	}
	k := s.keysOf(board)
	done, err := forgetRetiredScript.Run(ctx, s.c, []string{k.m, k.o}, afterID).Int64()
	if err != nil {
		return false, fmt.Errorf("redis store: %w", err)
	}
	if done == 0 {
		return false, nil
	}
	if err := s.c.ZRem(ctx, s.retiredKey(), board).Err(); err != nil {
		return false, fmt.Errorf("redis store: %w", err)
	}
	return true, nil
}

func valid(pid string, score uint64, at int64) bool {
	return score <= store.MaxScore && at >= 0 && at <= store.MaxAchievedAt &&
		len(pid) > 0 && len(pid) <= maxParticipantID
}

// zscore is the sorted-set score of score: ascending order is best first.
func zscore(desc bool, score uint64) uint64 {
	if desc {
		return store.MaxScore - score
	}
	return score
}

// appendAt appends achieved_at as 13 zero-padded decimal digits.
func appendAt(dst []byte, at int64) []byte {
	var d [13]byte
	for i := 12; i >= 0; i-- {
		d[i] = byte('0' + at%10)
		at /= 10
	}
	return append(dst, d[:]...)
}

// Submit implements store.Store.
func (s *Store) Submit(ctx context.Context, board string, subs []store.Submission, results []store.Result) error {
	if len(results) != len(subs) {
		return errors.New("redis store: len(results) != len(subs)")
	}
	for i := range subs {
		if !valid(subs[i].ParticipantID, subs[i].Score, subs[i].AchievedAt) {
			return store.ErrOutOfRange
		}
	}
	if len(subs) == 0 || board == "" {
		_, err := s.Stats(ctx, board)
		return err
	}
	k := s.keysOf(board)
	keys := []string{k.m, k.z, k.p, k.o}
	args := make([]any, 0, 2+4*min(len(subs), batchChunk))
	var at []byte
	var own []OutboxEvent
	for start := 0; start < len(subs); start += batchChunk {
		end := min(start+batchChunk, len(subs))
		args = append(args[:0], s.maxlen, strconv.Itoa(end-start))
		for i := start; i < end; i++ {
			sub := &subs[i]
			at = appendAt(at[:0], sub.AchievedAt)
			args = append(args, sub.ParticipantID, strconv.FormatUint(sub.Score, 10), string(at),
				strconv.FormatUint(store.MaxScore-sub.Score, 10))
		}
		var t *tail
		var ticket uint64
		if s.sink != nil {
			var err error
			if t, ticket, err = s.openTail(ctx, board); err != nil {
				return err
			}
		}
		code, reply, err := run(ctx, s.c, submitScript, keys, args...)
		if err == nil {
			switch code {
			case codeNoBoard:
				err = store.ErrBoardNotFound
			case codeSealed:
				err = store.ErrBoardSealed
			case codePaused:
				err = store.ErrBoardPaused
			default:
				if len(reply) != 3+9*(end-start) {
					err = fmt.Errorf("redis store: submit script replied %d values for %d submissions", len(reply), end-start)
				}
			}
		}
		if err != nil {
			if t != nil {
				t.end(ticket)
			}
			return err
		}
		own = own[:0]
		for i, r := 0, reply[3:]; i < end-start; i, r = i+1, r[9:] {
			res := &results[start+i]
			*res = store.Result{
				Updated:       intOf(r[0]) == 1,
				Score:         uintOf(r[1]),
				AchievedAt:    int64(uintOf(r[2])),
				Rank:          intOf(r[3]),
				HadPrevious:   intOf(r[4]) == 1,
				PreviousScore: uintOf(r[5]),
				PreviousRank:  intOf(r[6]),
				Version:       uintOf(r[7]),
			}
			if res.Updated && t != nil {
				own = append(own, OutboxEvent{ID: str(r[8]), Event: store.Event{
					Leaderboard:   board,
					Version:       res.Version,
					ParticipantID: subs[start+i].ParticipantID,
					HadOld:        res.HadPrevious,
					OldScore:      res.PreviousScore,
					OldRank:       res.PreviousRank,
					NewScore:      res.Score,
					NewRank:       res.Rank,
					AchievedAt:    res.AchievedAt,
				}})
			}
		}
		if t != nil {
			if len(own) > 0 {
				s.deliver(ctx, board, t, ticket, str(reply[1]), uintOf(reply[2]), own)
			} else {
				t.end(ticket)
			}
		}
	}
	return nil
}

// Remove implements store.Store.
func (s *Store) Remove(ctx context.Context, board, participant string) (store.Result, error) {
	if board == "" {
		return store.Result{}, store.ErrBoardNotFound
	}
	var t *tail
	var ticket uint64
	if s.sink != nil {
		var err error
		if t, ticket, err = s.openTail(ctx, board); err != nil {
			return store.Result{}, err
		}
	}
	k := s.keysOf(board)
	code, r, err := run(ctx, s.c, removeScript, []string{k.m, k.z, k.p, k.o}, s.maxlen, participant)
	if t != nil && (err != nil || code != codeOK) {
		t.end(ticket)
	}
	if err != nil {
		return store.Result{}, err
	}
	switch code {
	case codeNoBoard:
		return store.Result{}, store.ErrBoardNotFound
	case codeSealed:
		return store.Result{}, store.ErrBoardSealed
	case codeNoParticipant:
		return store.Result{}, store.ErrParticipantNotFound
	}
	if len(r) != 7 {
		if t != nil {
			t.end(ticket)
		}
		return store.Result{}, fmt.Errorf("redis store: remove script replied %v", r)
	}
	res := store.Result{
		Updated:       true,
		HadPrevious:   true,
		PreviousScore: uintOf(r[3]),
		PreviousRank:  intOf(r[4]),
		Version:       uintOf(r[5]),
	}
	if t != nil {
		s.deliver(ctx, board, t, ticket, str(r[1]), uintOf(r[2]), []OutboxEvent{{ID: str(r[6]), Event: store.Event{
			Leaderboard:   board,
			Version:       res.Version,
			ParticipantID: participant,
			Removed:       true,
			HadOld:        true,
			OldScore:      res.PreviousScore,
			OldRank:       res.PreviousRank,
		}}})
	}
	return res, nil
}

// SetPaused implements store.Pauser: the submit script refuses a paused
// leaderboard's submissions (ErrBoardPaused), whichever process sends them.
func (s *Store) SetPaused(ctx context.Context, board string, paused bool) error {
	flag := "0"
	if paused {
		flag = "1"
	}
	code, _, err := run(ctx, s.c, pauseScript, []string{s.keysOf(board).m}, flag)
	if err != nil {
		return err
	}
	if code == codeNoBoard {
		return store.ErrBoardNotFound
	}
	return nil
}

// Seal implements store.Store.
func (s *Store) Seal(ctx context.Context, board string) (store.Stats, error) {
	return s.stats(ctx, sealScript, board)
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context, board string) (store.Stats, error) {
	return s.stats(ctx, statsScript, board)
}

func (s *Store) stats(ctx context.Context, script *goredis.Script, board string) (store.Stats, error) {
	if board == "" {
		return store.Stats{}, store.ErrBoardNotFound
	}
	k := s.keysOf(board)
	code, r, err := run(ctx, s.c, script, []string{k.m, k.z})
	if err != nil {
		return store.Stats{}, err
	}
	if code == codeNoBoard {
		return store.Stats{}, store.ErrBoardNotFound
	}
	return store.Stats{Version: uintOf(r[1]), Total: intOf(r[2])}, nil
}

// Page implements store.Store.
func (s *Store) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	if offset < 0 { // as memory: the ranks before the first are clipped off
		limit += offset
		offset = 0
	}
	limit = max(limit, 0)
	if board == "" {
		return store.Page{}, store.ErrBoardNotFound
	}
	k := s.keysOf(board)
	code, r, err := run(ctx, s.c, pageScript, []string{k.m, k.z}, offset, int64(offset)+int64(limit)-1)
	if err != nil {
		return store.Page{}, err
	}
	if code == codeNoBoard {
		return store.Page{}, store.ErrBoardNotFound
	}
	p := store.Page{Version: uintOf(r[1]), Total: intOf(r[3])}
	p.Entries, err = decodeEntries(make([]store.Entry, 0, (len(r)-4)/2), r[4:], str(r[2]) == "0", int64(offset)+1)
	return p, err
}

// Around implements store.Store.
func (s *Store) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	limit = max(limit, 0)
	_, total, version, es, err := s.window(ctx, board, participant, (limit-1)/2, limit)
	if err != nil {
		return store.Page{}, err
	}
	return store.Page{Version: version, Total: total, Entries: es}, nil
}

// Participant implements store.Store.
func (s *Store) Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error) {
	neighbors = max(neighbors, 0)
	rank, total, version, es, err := s.window(ctx, board, participant, neighbors, 2*neighbors+1)
	if err != nil {
		return store.ParticipantView{}, err
	}
	v := store.ParticipantView{Version: version, Total: total, Neighbors: make([]store.Entry, 0, max(len(es)-1, 0))}
	for _, e := range es {
		if e.Rank == rank {
			v.Entry = e
		} else {
			v.Neighbors = append(v.Neighbors, e)
		}
	}
	return v, nil
}

// window reads the participant's rank and the ranks rank-before ..
// rank-before+limit-1 clipped to the board, at one version.
func (s *Store) window(ctx context.Context, board, participant string, before, limit int) (rank, total int64, version uint64, es []store.Entry, err error) {
	if board == "" {
		return 0, 0, 0, nil, store.ErrBoardNotFound
	}
	k := s.keysOf(board)
	code, r, err := run(ctx, s.c, windowScript, []string{k.m, k.z, k.p}, participant, before, limit)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	switch code {
	case codeNoBoard:
		return 0, 0, 0, nil, store.ErrBoardNotFound
	case codeNoParticipant:
		return 0, 0, 0, nil, store.ErrParticipantNotFound
	}
	es, err = decodeEntries(make([]store.Entry, 0, (len(r)-6)/2), r[6:], str(r[2]) == "0", intOf(r[4]))
	return intOf(r[5]), intOf(r[3]), uintOf(r[1]), es, err
}

// decodeEntries appends the entries of member, zscore pairs ranked from rank on.
func decodeEntries(dst []store.Entry, pairs []any, desc bool, rank int64) ([]store.Entry, error) {
	for i := 0; i+1 < len(pairs); i += 2 {
		member, zs := str(pairs[i]), str(pairs[i+1])
		f, err := strconv.ParseFloat(zs, 64)
		if err != nil || len(member) < 13 || f < 0 || f > float64(store.MaxScore) {
			return dst, fmt.Errorf("redis store: bad ranking entry %q %q", member, zs)
		}
		at, err := strconv.ParseInt(member[:13], 10, 64)
		if err != nil {
			return dst, fmt.Errorf("redis store: bad ranking entry %q", member)
		}
		score := uint64(f)
		if desc {
			score = store.MaxScore - score
		}
		dst = append(dst, store.Entry{Rank: rank, ParticipantID: member[13:], Score: score, AchievedAt: at})
		rank++
	}
	return dst, nil
}

// run runs a script and returns its status code and reply.
func run(ctx context.Context, c goredis.UniversalClient, script *goredis.Script, keys []string, args ...any) (int64, []any, error) {
	v, err := script.Run(ctx, c, keys, args...).Result()
	if err != nil {
		if damaged(err) {
			return 0, nil, fmt.Errorf("redis store: %w: %w", store.ErrDamaged, err)
		}
		return 0, nil, fmt.Errorf("redis store: %w", err)
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return 0, nil, fmt.Errorf("redis store: unexpected script reply %v", v)
	}
	return intOf(r[0]), r, nil
}

// damaged reports whether err is Redis answering that a script failed on the
// board's data: a key of the wrong type, or a Lua error such as a rank read
// from a sorted set that is gone while the participant hash still names its
// member (keys evicted, partly lost). Such a script fails again on every
// retry, unlike Redis being away, out of memory (OOM), read-only after a
// failover (READONLY), busy (BUSY) or loading (LOADING), which pass.
func damaged(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGTYPE ") || strings.HasPrefix(msg, "ERR user_script:") || // Redis 7
		strings.HasPrefix(msg, "ERR Error running script") // Redis 6
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func intOf(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func uintOf(v any) uint64 {
	switch x := v.(type) {
	case int64:
		return uint64(x)
	case string:
		n, _ := strconv.ParseUint(x, 10, 64)
		return n
	}
	return 0
}

var _ store.Store = (*Store)(nil)
