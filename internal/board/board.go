// Package board is the leaderboard service: leaderboard metadata and
// lifecycle (scheduled, active, paused, completed), the rules a submission must
// pass (status, bounds, timestamps, rate limits), and the reads, all over a
// store.Store that holds the rankings and orders the writes.
package board

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/ratelimit"
	"github.com/lbhq/leaderboard/internal/store"
)

// Status is a leaderboard's place in its lifecycle.
type Status string

const (
	Scheduled Status = "scheduled"
	Active    Status = "active"
	Paused    Status = "paused"
	Completed Status = "completed"
)

// Leaderboard is a leaderboard's metadata as the API shows it.
type Leaderboard struct {
	ID        string
	Name      string
	Type      string
	Status    Status
	Order     store.SortOrder
	Policy    store.Policy
	StartsAt  time.Time // zero: started at creation
	EndsAt    time.Time // zero: no end
	CreatedAt time.Time
	MaxScore  *uint64 // nil: no bound below store.MaxScore
	Config    json.RawMessage
	Version   uint64
	Epoch     string
	Total     int64
}

// meta is the service's own record of a leaderboard. Its fields change only
// under Service.mu.
type meta struct {
	id, name, typ string
	opts          store.BoardOptions
	startsAt      time.Time
	endsAt        time.Time
	createdAt     time.Time
	maxScore      *uint64
	config        json.RawMessage
	paused        bool
	completed     bool
	notified      Status // the status last announced through OnStatus

	// Set when completed with history on: the final ranking is in the history
	// store and the board has left the ranking store.
	finalizedAt  time.Time
	finalVersion uint64
	finalTotal   int64
	archived     bool

	// gen is Service.gen when this process last changed the metadata: a
	// shared refresh whose read started before that does not overwrite it.
	gen uint64
}

// status is the effective status at now: completion by ends_at and the start
// at starts_at take effect at the exact instant, whether or not the lifecycle
// sweep has run yet.
func (m *meta) status(now time.Time) Status {
	switch {
	case m.completed || (!m.endsAt.IsZero() && !now.Before(m.endsAt)):
		return Completed
	case m.paused:
		return Paused
	case !m.startsAt.IsZero() && now.Before(m.startsAt):
		return Scheduled
	}
	return Active
}

// Options configure a Service.
type Options struct {
	// SubmitRate and SubmitBurst limit submissions per participant per
	// leaderboard (tokens per second, bucket size); SubmitRate <= 0 disables it.
	SubmitRate  float64
	SubmitBurst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnStatus is told every change of a leaderboard's status (to reach live
	// viewers), with the leaderboard's version at that moment; optional.
	OnStatus func(board string, status Status, version uint64)
	// History keeps metadata, final rankings, profiles and the audit log;
	// nil runs without persistence (history routes answer 503).
	History history.Store
	// Log is the history writer that the ranking store publishes to; the
	// service asks it for room before a submission and flushes it before a
	// final ranking is written. Nil when the audit log is written by another
	// process (the history role, fed by the event bus).
	Log *history.Writer
	// Shared says the history store is shared with other API processes (a
	// split deployment over PostgreSQL): leaderboards created or changed
	// elsewhere are loaded from it at every sweep and on an unknown id.
	Shared bool
	// WriteQueue, when above zero, queues up to that many submissions while
	// the ranking store is unreachable (Submit returns ErrQueued) and applies
	// them in order when it returns (RunWriteQueue); past it, 503.
	WriteQueue int
	// Logger receives what the service cannot report to a caller.
	Logger *slog.Logger
}

// Service manages leaderboards over a ranking store.
type Service struct {
	store    store.Store
	now      func() time.Time
	limiter  *ratelimit.Limiter
	onStatus func(string, Status, uint64)

	hs  history.Store
	log *history.Writer

	wq     *writeQueue
	logger *slog.Logger

	shared      bool
	refreshMu   sync.Mutex
	lastRefresh time.Time

	// admin serialises metadata changes (create, patch, complete) so that
	// their durable write happens outside mu, which every submission reads.
	admin sync.Mutex
	// announceMu keeps status notices in the order of the changes: one
	// announce at a time, from reading the status to telling OnStatus.
	announceMu sync.Mutex
	mu         sync.RWMutex
	boards     map[string]*meta
	gen        uint64 // counts local metadata changes; under mu

	names     sync.Map // participant id -> display name
	nameCount atomic.Int64
	namesGen  atomic.Uint64 // bumped on every display name change
	// profilesRead is when (this process's clock) the last complete read of
	// the profiles started: at restore, then at each sweep's read of what
	// other processes wrote. profilesMu serialises those reads and this
	// process's profile writes (each with its name set); it is not
	// refreshMu, which requests naming an unknown leaderboard wait on.
	profilesMu   sync.Mutex
	profilesRead time.Time
}

// New returns a service over st.
func New(st store.Store, opts Options) *Service {
	s := &Service{
		store:    st,
		now:      opts.Now,
		limiter:  ratelimit.New(opts.SubmitRate, opts.SubmitBurst),
		onStatus: opts.OnStatus,
		boards:   make(map[string]*meta),
		hs:       opts.History,
		log:      opts.Log,
		shared:   opts.Shared && opts.History != nil,
		logger:   opts.Logger,
	}
	if opts.WriteQueue > 0 {
		s.wq = &writeQueue{max: opts.WriteQueue, wake: make(chan struct{}, 1)}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// CreateRequest is the body of POST /v1/leaderboards, decoded.
type CreateRequest struct {
	ID       string
	Name     string
	Type     string
	Order    store.SortOrder
	Policy   store.Policy
	StartsAt time.Time
	EndsAt   time.Time
	MaxScore *uint64
	Config   json.RawMessage
}

// Create makes a leaderboard.
func (s *Service) Create(ctx context.Context, req CreateRequest) (Leaderboard, error) {
	if req.ID == "" {
		req.ID = newUUID()
	}
	if err := ValidateID("leaderboard_id", req.ID); err != nil {
		return Leaderboard{}, err
	}
	if req.Name == "" || utf8.RuneCountInString(req.Name) > 200 {
		return Leaderboard{}, invalid("name is required and must be at most 200 characters")
	}
	if err := storableName(req.Name); err != nil {
		return Leaderboard{}, err
	}
	if req.Type == "" {
		req.Type = "custom"
	}
	if !validType(req.Type) {
		return Leaderboard{}, invalid("type must be 1 to 64 characters of a-z, 0-9 and _")
	}
	if !req.EndsAt.IsZero() && !req.StartsAt.IsZero() && !req.EndsAt.After(req.StartsAt) {
		return Leaderboard{}, invalid("ends_at must be after starts_at")
	}
	if req.MaxScore != nil && *req.MaxScore > store.MaxScore {
		return Leaderboard{}, invalid(fmt.Sprintf("max_score must be between 0 and %d", store.MaxScore))
	}
	if len(req.Config) == 0 || string(req.Config) == "null" {
		req.Config = json.RawMessage("{}")
	}
	if !utf8.Valid(req.Config) {
		// encoding/json copies a RawMessage's bytes unchecked; PostgreSQL
		// refuses such text (a 503 no retry cures) and a response echoing it
		// is not UTF-8 JSON.
		return Leaderboard{}, invalid("config must be valid UTF-8")
	}
	s.admin.Lock()
	defer s.admin.Unlock()
	// The clock is read once the admin lock is held: another admin call
	// (a finalize writing a large final ranking) may have held it for
	// seconds, and an ends_at that was ahead when the request arrived
	// may have passed since.
	now := s.now()
	if !req.EndsAt.IsZero() && !req.EndsAt.After(now) {
		return Leaderboard{}, invalid("ends_at must be in the future")
	}
	m := &meta{
		id: req.ID, name: req.Name, typ: req.Type,
		opts:     store.BoardOptions{Order: req.Order, Policy: req.Policy},
		startsAt: req.StartsAt, endsAt: req.EndsAt, createdAt: now,
		maxScore: req.MaxScore, config: slices.Clone(req.Config),
	}
	m.notified = m.status(now)
	if _, err := s.lookup(m.id); err == nil {
		return Leaderboard{}, errAlreadyExists(m.id)
	}
	if err := s.store.CreateBoard(ctx, m.id, m.opts); err != nil {
		if errors.Is(err, store.ErrBoardExists) {
			return Leaderboard{}, errAlreadyExists(m.id)
		}
		return Leaderboard{}, unavailable(err)
	}
	if s.hs != nil {
		if err := s.hs.PutBoard(ctx, record(m)); err != nil {
			_ = s.store.DropBoard(ctx, m.id)
			return Leaderboard{}, unavailable(err)
		}
	}
	c := *m // once published, m changes under mu only (a shared refresh writes it)
	s.mu.Lock()
	s.boards[m.id] = m
	s.mu.Unlock()
	return s.view(&c, store.Stats{}, now), nil
}

func (s *Service) view(m *meta, st store.Stats, now time.Time) Leaderboard {
	return Leaderboard{
		ID: m.id, Name: m.name, Type: m.typ, Status: m.status(now),
		Order: m.opts.Order, Policy: m.opts.Policy,
		StartsAt: m.startsAt, EndsAt: m.endsAt, CreatedAt: m.createdAt,
		MaxScore: m.maxScore, Config: m.config,
		Version: st.Version, Epoch: s.store.Epoch(), Total: st.Total,
	}
}

// lookup returns a copy of the metadata of id, taken under the lock.
func (s *Service) lookup(id string) (meta, error) {
	s.mu.RLock()
	m, ok := s.boards[id]
	var c meta
	if ok {
		c = *m
	}
	s.mu.RUnlock()
	if !ok && s.shared {
		// Another process may have created it: look again after a read of the
		// shared store that started after this miss.
		s.refreshAfter(context.Background(), time.Now())
		s.mu.RLock()
		m, ok = s.boards[id]
		if ok {
			c = *m
		}
		s.mu.RUnlock()
	}
	if !ok {
		return meta{}, errBoardNotFound(id)
	}
	return c, nil
}

// AnnouncedStatus is leaderboard id's status as last told to OnStatus, or
// "" for a leaderboard this process does not know. It reads memory only: the
// fan-out calls it, with its own lock held, for a new viewer of a leaderboard
// that is not active.
func (s *Service) AnnouncedStatus(id string) Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m, ok := s.boards[id]; ok {
		return m.notified
	}
	return ""
}

// Get returns one leaderboard.
func (s *Service) Get(ctx context.Context, id string) (Leaderboard, error) {
	m, err := s.lookup(id)
	if err != nil {
		return Leaderboard{}, err
	}
	st, err := s.stats(ctx, &m)
	if err != nil {
		return Leaderboard{}, s.storeError(err, id, "")
	}
	return s.view(&m, st, s.now()), nil
}

// List returns leaderboards ordered by creation time then id, optionally only
// those with one status.
func (s *Service) List(ctx context.Context, status Status, limit, offset int) ([]Leaderboard, error) {
	now := s.now()
	s.mu.RLock()
	all := make([]meta, 0, len(s.boards))
	for _, m := range s.boards {
		if status == "" || m.status(now) == status {
			all = append(all, *m)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b meta) int {
		if c := a.createdAt.Compare(b.createdAt); c != 0 {
			return c
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	if offset >= len(all) {
		return []Leaderboard{}, nil
	}
	all = all[offset:min(len(all), offset+limit)]
	out := make([]Leaderboard, 0, len(all))
	for i := range all {
		st, err := s.stats(ctx, &all[i])
		if err != nil {
			return nil, s.storeError(err, all[i].id, "")
		}
		out = append(out, s.view(&all[i], st, now))
	}
	return out, nil
}

// Patch is a partial update of a leaderboard; nil fields are left alone.
type Patch struct {
	Status *Status
	Name   *string
	EndsAt *time.Time
}

// Update applies a PATCH. Setting status active on a scheduled leaderboard
// starts it now; a completed leaderboard takes no changes.
func (s *Service) Update(ctx context.Context, id string, p Patch) (Leaderboard, error) {
	if p.Status != nil && *p.Status != Active && *p.Status != Paused {
		return Leaderboard{}, invalid(`status must be "active" or "paused" (use finalize to complete a leaderboard)`)
	}
	if p.Name != nil && (*p.Name == "" || utf8.RuneCountInString(*p.Name) > 200) {
		return Leaderboard{}, invalid("name must be 1 to 200 characters")
	}
	if p.Name != nil {
		if err := storableName(*p.Name); err != nil {
			return Leaderboard{}, err
		}
	}
	s.admin.Lock()
	if s.shared {
		// Another process may have changed this leaderboard since the last
		// sweep: patch its latest record, not this process's copy, whose
		// other fields would be written back over that change.
		s.refresh(ctx)
	}
	// The clock is read once the admin lock is held, as in Create: a PATCH
	// that waited behind a long finalize must not judge the board by the
	// time it arrived, or it would reopen a board that ended meanwhile
	// (reads said completed, submissions were refused as ended).
	now := s.now()
	c, err := s.lookup(id)
	if err != nil {
		s.admin.Unlock()
		return Leaderboard{}, err
	}
	if c.status(now) == Completed {
		s.admin.Unlock()
		return Leaderboard{}, errEnded(id)
	}
	if p.EndsAt != nil {
		if !p.EndsAt.After(now) {
			s.admin.Unlock()
			return Leaderboard{}, invalid("ends_at must be in the future")
		}
		if !c.startsAt.IsZero() && !p.EndsAt.After(c.startsAt) {
			s.admin.Unlock()
			return Leaderboard{}, invalid("ends_at must be after starts_at")
		}
	}
	if p.Name != nil {
		c.name = *p.Name
	}
	if p.EndsAt != nil {
		c.endsAt = *p.EndsAt
	}
	wasPaused := c.paused
	if p.Status != nil {
		c.paused = *p.Status == Paused
		if *p.Status == Active && !c.startsAt.IsZero() && now.Before(c.startsAt) {
			c.startsAt = now
		}
	}
	// The ranking store refuses a paused board's submissions itself, under
	// its write lock: the pause holds at once for what already passed the
	// status check in this process (a batch's remaining chunks) and, over a
	// shared store, in every process, not at their next sweep.
	if c.paused && !wasPaused {
		// Submissions answered 202 were accepted while the board was
		// active: applied after the pause the store would refuse them as
		// paused, and the drain would drop them.
		if err := s.drainFirst(ctx); err != nil {
			s.admin.Unlock()
			return Leaderboard{}, err
		}
	}
	pz, sharedPause := s.store.(store.Pauser)
	sharedPause = sharedPause && c.paused != wasPaused
	if sharedPause {
		if err := pz.SetPaused(ctx, id, c.paused); err != nil {
			s.admin.Unlock()
			return Leaderboard{}, s.storeError(err, id, "")
		}
	}
	if s.hs != nil {
		if err := s.hs.PutBoard(ctx, record(&c)); err != nil {
			if sharedPause {
				_ = pz.SetPaused(ctx, id, wasPaused) // the change did not happen
			}
			s.admin.Unlock()
			if errors.Is(err, history.ErrCompleted) { // completed by another process
				return Leaderboard{}, errEnded(id)
			}
			return Leaderboard{}, unavailable(err)
		}
	}
	s.mu.Lock()
	m, ok := s.boards[id]
	if ok && m.status(s.now()) == Completed {
		// The board ended while the change was being written (its ends_at
		// passed after the check above): reads have said completed and
		// submissions were refused as ended since, so the change comes too
		// late and must not reopen it. Put the durable record back, or a
		// restart before the sweep completes the board would reopen it.
		old := *m
		s.mu.Unlock()
		if s.hs != nil {
			_ = s.hs.PutBoard(ctx, record(&old))
		}
		if sharedPause {
			_ = pz.SetPaused(ctx, id, wasPaused)
		}
		s.admin.Unlock()
		return Leaderboard{}, errEnded(id)
	}
	if ok {
		m.name, m.endsAt, m.paused, m.startsAt = c.name, c.endsAt, c.paused, c.startsAt
		s.gen++
		m.gen = s.gen
	}
	s.mu.Unlock()
	s.admin.Unlock()
	s.announce(ctx, id)
	return s.Get(ctx, id)
}

// announce tells OnStatus when a leaderboard's status differs from the one
// last announced.
func (s *Service) announce(ctx context.Context, id string) {
	if s.onStatus == nil {
		return
	}
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	now := s.now()
	s.mu.Lock()
	m, ok := s.boards[id]
	var st Status
	var c meta
	if ok {
		c = *m
		st = m.status(now)
		if st == m.notified {
			ok = false
		} else {
			m.notified = st
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	var version uint64
	if stats, err := s.stats(ctx, &c); err == nil {
		version = stats.Version
	}
	s.onStatus(id, st, version)
}

// Finalize completes a leaderboard: the store seals it first, so every
// submission acknowledged before is in the final ranking and none after is.
// Finalizing a completed leaderboard returns it unchanged.
func (s *Service) Finalize(ctx context.Context, id string) (Leaderboard, error) {
	if _, err := s.lookup(id); err != nil {
		return Leaderboard{}, err
	}
	if s.shared {
		// Another process may have completed it since the last sweep (and
		// dropped it from the shared ranking store): a retry is answered
		// as the completed leaderboard, not as a missing one.
		s.refresh(ctx)
	}
	if err := s.complete(ctx, id); err != nil {
		return Leaderboard{}, err
	}
	return s.Get(ctx, id)
}

func (s *Service) complete(ctx context.Context, id string) error {
	s.admin.Lock()
	defer s.admin.Unlock()
	m, err := s.lookup(id)
	if err != nil {
		return err
	}
	if m.completed {
		return nil
	}
	// Submissions answered 202 wait for the store: they were accepted
	// before this completion, so they go in before the seal.
	if err := s.drainFirst(ctx); err != nil {
		return err
	}
	stats, err := s.store.Seal(ctx, id)
	if err != nil {
		return s.storeError(err, id, "")
	}
	if s.hs != nil {
		if err := s.archive(ctx, &m, stats); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if b, ok := s.boards[id]; ok {
		b.completed = true
		b.finalizedAt, b.finalVersion, b.finalTotal, b.archived = m.finalizedAt, m.finalVersion, m.finalTotal, m.archived
	}
	s.mu.Unlock()
	s.announce(ctx, id)
	if m.archived {
		// The final ranking is durable and served from history: the live
		// one leaves memory.
		if s.log != nil {
			s.log.Forget(id)
		}
		_ = s.store.DropBoard(ctx, id)
	}
	return nil
}

// Sweep completes the leaderboards whose ends_at has passed and drops rate
// limit buckets that are full again. Run it every second or so.
func (s *Service) Sweep(ctx context.Context) {
	if s.shared {
		s.refresh(ctx)
		if s.hs != nil {
			s.refreshProfiles(ctx)
		}
	}
	now := s.now()
	var due, changed []string
	s.mu.RLock()
	for id, m := range s.boards {
		st := m.status(now)
		if !m.completed && st == Completed {
			due = append(due, id)
		} else if st != m.notified {
			changed = append(changed, id) // e.g. scheduled -> active at starts_at
		}
	}
	s.mu.RUnlock()
	for _, id := range due {
		_ = s.complete(ctx, id) // a failure is retried at the next sweep
	}
	for _, id := range changed {
		s.announce(ctx, id)
	}
	s.limiter.Sweep(now)
}

// RemoveParticipant takes a participant off a leaderboard (anti-cheat).
func (s *Service) RemoveParticipant(ctx context.Context, id, participant string) error {
	m, err := s.lookup(id)
	if err != nil {
		return err
	}
	if m.status(s.now()) == Completed {
		return errEnded(id)
	}
	if err := s.admit(); err != nil {
		return err
	}
	// A submission of this participant answered 202 earlier would otherwise
	// be applied after the removal and put the participant back.
	if err := s.drainFirst(ctx); err != nil {
		return err
	}
	if _, err := s.store.Remove(ctx, id, participant); err != nil {
		return s.storeError(err, id, participant)
	}
	return nil
}

// Counts returns the number of leaderboards in each status.
func (s *Service) Counts() map[Status]int {
	now := s.now()
	out := map[Status]int{Scheduled: 0, Active: 0, Paused: 0, Completed: 0}
	s.mu.RLock()
	for _, m := range s.boards {
		out[m.status(now)]++
	}
	s.mu.RUnlock()
	return out
}

// storeError maps a store error to the API's errors.
func (s *Service) storeError(err error, board, participant string) error {
	var e *Error
	if errors.As(err, &e) {
		// Already an answer (the write queue's 503 when full): wrapped as a
		// store failure it read "the ranking store is unavailable:
		// unavailable: ...".
		return e
	}
	switch {
	case errors.Is(err, store.ErrBoardNotFound):
		if _, ok := s.archived(board); ok { // completed by another process
			return errEnded(board)
		}
		return errBoardNotFound(board)
	case errors.Is(err, store.ErrBoardSealed):
		return errEnded(board)
	case errors.Is(err, store.ErrBoardPaused): // paused through another process
		return errNotActive(board, Paused)
	case errors.Is(err, store.ErrParticipantNotFound):
		return errParticipantNotFound(participant)
	case errors.Is(err, store.ErrOutOfRange):
		return invalid("score or timestamp out of range")
	case errors.Is(err, store.ErrDamaged):
		// Retrying soon does not help: say what is wrong and wait long.
		s.log0("leaderboard damaged in the ranking store (keys lost: a Redis eviction policy other than noeviction, or a partial restore); it needs repair", board, err)
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("leaderboard %q is damaged in the ranking store; an operator must repair it", board), RetryAfter: time.Minute}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return unavailable(err)
	}
	return unavailable(err)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// storableName refuses a leaderboard name with U+0000: JSON can carry it
// ("\u0000") but PostgreSQL text cannot, so the create or rename failed with a
// 503 that no retry cures. The other characters stay allowed (API.md: 1-200
// characters).
func storableName(name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return invalid("name must not contain the character U+0000")
	}
	return nil
}

func validType(t string) bool {
	if len(t) == 0 || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid leaderboard or participant id: 1 to 128
// characters of A-Z a-z 0-9 _ . : -
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateID returns an invalid_argument error naming field when s is not a valid id.
func ValidateID(field, s string) error {
	if !ValidID(s) {
		return invalid(field + " must be 1 to 128 characters of A-Z a-z 0-9 _ . : -")
	}
	return nil
}

func (s *Service) log0(msg, board string, err error) {
	s.logger.Warn(msg, "leaderboard", board, "err", err)
}
