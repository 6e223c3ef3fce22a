package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// finalizeTimeout bounds the wait for the audit log and the final ranking's
// transaction, so that a stalled database fails a finalize (to be retried)
// instead of holding it forever.
const finalizeTimeout = 30 * time.Second

func errHistoryOff() *Error {
	return &Error{Code: CodeUnavailable, Message: "history is off on this server (it runs without --data-dir or --postgres-url)", RetryAfter: time.Hour}
}

func historyUnavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the history store is unavailable: " + err.Error(), RetryAfter: time.Second}
}

// record is the durable form of a leaderboard's metadata.
func record(m *meta) history.Board {
	return history.Board{
		ID: m.id, Name: m.name, Type: m.typ, Order: m.opts.Order, Policy: m.opts.Policy,
		StartsAt: m.startsAt, EndsAt: m.endsAt, CreatedAt: m.createdAt, MaxScore: m.maxScore, Config: m.config,
		Paused: m.paused, Completed: m.completed,
		FinalizedAt: m.finalizedAt, FinalVersion: m.finalVersion, FinalTotal: m.finalTotal,
	}
}

func metaOf(b *history.Board) *meta {
	return &meta{
		id: b.ID, name: b.Name, typ: b.Type, opts: store.BoardOptions{Order: b.Order, Policy: b.Policy},
		startsAt: b.StartsAt, endsAt: b.EndsAt, createdAt: b.CreatedAt, maxScore: b.MaxScore, config: b.Config,
		paused: b.Paused, completed: b.Completed,
		finalizedAt: b.FinalizedAt, finalVersion: b.FinalVersion, finalTotal: b.FinalTotal, archived: b.Completed,
	}
}

// admit refuses a change while the audit log's queue is full.
func (s *Service) admit() error {
	if s.log != nil && !s.log.Admit() {
		return &Error{Code: CodeUnavailable, Message: "the audit log is behind (its write queue is full); retry shortly", RetryAfter: time.Second}
	}
	return nil
}

// RestoreStats is what Restore brought back.
type RestoreStats struct {
	Live, Completed, Participants, Replayed, Profiles int
}

// Restore loads what the history store holds: every leaderboard's metadata,
// the live ones rebuilt into the ranking store from their latest snapshot and
// the audit log after it, and the profiles' display names. Call it once,
// before serving.
func (s *Service) Restore(ctx context.Context) (RestoreStats, error) {
	var rs RestoreStats
	if s.hs == nil {
		return rs, nil
	}
	boards, err := s.hs.Boards(ctx)
	if err != nil {
		return rs, err
	}
	now := s.now()
	for i := range boards {
		b := &boards[i]
		m := metaOf(b)
		if b.Completed {
			rs.Completed++
		} else if st, err := s.store.Stats(ctx, b.ID); err == nil {
			// A ranking store that keeps its own state (Redis) already has
			// the board: it is authoritative, and history only describes it.
			if s.log != nil {
				s.log.Track(b.ID, st.Version, 0)
			}
			rs.Live++
			rs.Participants += int(st.Total)
		} else {
			rec, err := history.Recover(ctx, s.hs, s.store, *b)
			if err != nil {
				return rs, err
			}
			if pz, ok := s.store.(store.Pauser); ok && b.Paused {
				// The rebuilt board starts unpaused in the store, which
				// refuses a paused board's submissions itself (Update).
				if err := pz.SetPaused(ctx, b.ID, true); err != nil {
					return rs, err
				}
			}
			if s.log != nil {
				s.log.Track(b.ID, rec.Version, rec.SnapVersion)
			}
			rs.Live++
			rs.Participants += rec.Participants
			rs.Replayed += rec.Replayed
		}
		m.notified = m.status(now)
		s.mu.Lock()
		s.boards[b.ID] = m
		s.mu.Unlock()
	}
	s.profilesMu.Lock()
	defer s.profilesMu.Unlock()
	started := time.Now()
	err = s.hs.Profiles(ctx, time.Time{}, func(p history.Profile) error {
		s.setName(p.ParticipantID, p.DisplayName)
		rs.Profiles++
		return nil
	})
	if err == nil {
		s.profilesRead = started
	}
	return rs, err
}

// profileLookback is how far before its previous read the sweep reads the
// profiles again. A profile's updated_at is its writer's clock, taken
// before its write commits: a write that commits after the previous read
// started, or comes from a process whose clock is a little behind this
// one's, carries a time before that read, and a read from exactly then would
// miss it for good. A writer whose clock is ahead is read again at each
// sweep until this clock passes its time (setting a name it already has
// changes nothing).
const profileLookback = 10 * time.Second

// refreshProfiles learns the display names other processes sharing the
// history store have set since the last look (a sweep calls it), so that a
// PUT /v1/participants/{pid} through one API process shows in every
// process's rankings within a sweep, not after their restart.
func (s *Service) refreshProfiles(ctx context.Context) {
	s.profilesMu.Lock()
	defer s.profilesMu.Unlock()
	var since time.Time // zero (all) until one read succeeded
	if !s.profilesRead.IsZero() {
		since = s.profilesRead.Add(-profileLookback)
	}
	started := time.Now()
	err := s.hs.Profiles(ctx, since, func(p history.Profile) error {
		s.setName(p.ParticipantID, p.DisplayName)
		return nil
	})
	if err == nil {
		s.profilesRead = started // on an error the next sweep reads from the same time again
	}
}

// archive writes a sealed leaderboard's final ranking: the audit log first
// (so that every change is in it before the board completes), then every
// entry and the completion in one transaction. On success m holds the
// completion fields.
func (s *Service) archive(ctx context.Context, m *meta, stats store.Stats) error {
	ctx, cancel := context.WithTimeout(ctx, finalizeTimeout)
	defer cancel()
	if s.log != nil { // without a local writer (history in another process) the log catches up from the bus
		if err := s.log.Flush(ctx); err != nil {
			return historyUnavailable(err)
		}
	}
	c := *m
	c.completed, c.finalizedAt, c.finalVersion, c.finalTotal = true, s.now().UTC(), stats.Version, stats.Total
	err := s.hs.Finalize(ctx, record(&c), s.pages(ctx, m.id))
	if err != nil && !errors.Is(err, history.ErrCompleted) { // ErrCompleted: an earlier attempt committed
		return historyUnavailable(err)
	}
	if err != nil {
		// That attempt (perhaps another process's) wrote the completion:
		// answer with its finalized_at and totals, as every other reader will.
		boards, err := s.hs.Boards(ctx)
		if err != nil {
			return historyUnavailable(err)
		}
		for i := range boards {
			if b := &boards[i]; b.ID == m.id {
				c.finalizedAt, c.finalVersion, c.finalTotal = b.FinalizedAt, b.FinalVersion, b.FinalTotal
			}
		}
	}
	c.archived = true
	*m = c
	return nil
}

// pages yields a sealed leaderboard's whole ranking from the store.
func (s *Service) pages(ctx context.Context, id string) iter.Seq2[store.Entry, error] {
	const page = 10_000
	return func(yield func(store.Entry, error) bool) {
		for offset := 0; ; offset += page {
			p, err := s.store.Page(ctx, id, offset, page)
			if err != nil {
				yield(store.Entry{}, err)
				return
			}
			for _, e := range p.Entries {
				if !yield(e, nil) {
					return
				}
			}
			if len(p.Entries) < page {
				return
			}
		}
	}
}

// stats is a leaderboard's version and size, from history once archived.
func (s *Service) stats(ctx context.Context, m *meta) (store.Stats, error) {
	if m.archived {
		return store.Stats{Version: m.finalVersion, Total: m.finalTotal}, nil
	}
	return s.store.Stats(ctx, m.id)
}

// Reader reads rankings for the fan-out hub and the API: from the ranking
// store, or from the history store for a leaderboard that completed and left
// memory, with display names filled in. Its errors are the store's.
type Reader struct{ s *Service }

// Reader returns the service's reader.
func (s *Service) Reader() Reader { return Reader{s} }

// archived returns the metadata of a leaderboard served from history. It is
// asked when the ranking store does not have the leaderboard: with a shared
// history, another process may have completed it (and dropped it from the
// shared ranking store) since this one last read the list, so a leaderboard
// known here as live is looked up again after a fresh read.
func (s *Service) archived(id string) (meta, bool) {
	m, err := s.lookup(id)
	if err == nil && !m.archived && s.shared {
		s.refreshAfter(context.Background(), time.Now())
		m, err = s.lookup(id)
	}
	return m, err == nil && m.archived
}

func (s *Service) historyErr(err error) error {
	if errors.Is(err, history.ErrNotFound) {
		return store.ErrParticipantNotFound
	}
	return err
}

// Page reads limit entries from 0-based offset.
func (r Reader) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	p, err := r.s.store.Page(ctx, board, offset, limit)
	if errors.Is(err, store.ErrBoardNotFound) {
		if m, ok := r.s.archived(board); ok {
			p = store.Page{Version: m.finalVersion, Total: m.finalTotal}
			p.Entries, err = r.s.hs.FinalPage(ctx, board, offset, limit)
		}
	}
	if err != nil {
		return store.Page{}, err
	}
	r.s.fillNames(p.Entries)
	return p, nil
}

// Around reads up to limit entries with participant in the middle.
func (r Reader) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	p, err := r.s.store.Around(ctx, board, participant, limit)
	if errors.Is(err, store.ErrBoardNotFound) {
		if m, ok := r.s.archived(board); ok {
			p, err = r.finalAround(ctx, &m, participant, limit)
		}
	}
	if err != nil {
		return store.Page{}, err
	}
	r.s.fillNames(p.Entries)
	return p, nil
}

func (r Reader) finalAround(ctx context.Context, m *meta, participant string, limit int) (store.Page, error) {
	e, err := r.s.hs.FinalEntry(ctx, m.id, participant)
	if err != nil {
		return store.Page{}, r.s.historyErr(err)
	}
	from := e.Rank - int64(limit-1)/2 // 1-based, clipped like the live store
	n := int64(limit)
	if from < 1 {
		n += from - 1
		from = 1
	}
	p := store.Page{Version: m.finalVersion, Total: m.finalTotal}
	p.Entries, err = r.s.hs.FinalPage(ctx, m.id, int(from-1), int(n))
	return p, err
}

// Participant reads one participant and its neighbours.
func (r Reader) Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error) {
	v, err := r.s.store.Participant(ctx, board, participant, neighbors)
	if errors.Is(err, store.ErrBoardNotFound) {
		if m, ok := r.s.archived(board); ok {
			v, err = r.finalParticipant(ctx, &m, participant, neighbors)
		}
	}
	if err != nil {
		return store.ParticipantView{}, err
	}
	if r.s.nameCount.Load() > 0 {
		v.Entry.DisplayName = r.s.name(v.Entry.ParticipantID)
		r.s.fillNames(v.Neighbors)
	}
	return v, nil
}

func (r Reader) finalParticipant(ctx context.Context, m *meta, participant string, neighbors int) (store.ParticipantView, error) {
	e, err := r.s.hs.FinalEntry(ctx, m.id, participant)
	if err != nil {
		return store.ParticipantView{}, r.s.historyErr(err)
	}
	from := max(e.Rank-int64(neighbors), 1)
	page, err := r.s.hs.FinalPage(ctx, m.id, int(from-1), int(e.Rank+int64(neighbors)-from+1))
	if err != nil {
		return store.ParticipantView{}, err
	}
	v := store.ParticipantView{Version: m.finalVersion, Total: m.finalTotal, Entry: e}
	for _, n := range page {
		if n.Rank != e.Rank {
			v.Neighbors = append(v.Neighbors, n)
		}
	}
	return v, nil
}

// Stats reads a leaderboard's version and size.
func (r Reader) Stats(ctx context.Context, board string) (store.Stats, error) {
	st, err := r.s.store.Stats(ctx, board)
	if errors.Is(err, store.ErrBoardNotFound) {
		if m, ok := r.s.archived(board); ok {
			return store.Stats{Version: m.finalVersion, Total: m.finalTotal}, nil
		}
	}
	return st, err
}

// ---- profiles and display names ----

// setName sets a participant's display name. Setting the name it has
// already changes nothing (the sweep's re-reads of recent profiles would
// otherwise make every cached body stale at each sweep).
func (s *Service) setName(participant, name string) {
	old, loaded := s.names.Swap(participant, name)
	if loaded && old.(string) == name {
		return
	}
	if !loaded {
		s.nameCount.Add(1)
	}
	s.namesGen.Add(1)
}

// NamesGeneration changes whenever a display name does: a body encoded with
// the names of one generation is stale under another, whatever its version
// (a rename changes no version).
func (s *Service) NamesGeneration() uint64 { return s.namesGen.Load() }

func (s *Service) name(participant string) string {
	if v, ok := s.names.Load(participant); ok {
		return v.(string)
	}
	return ""
}

// fillNames sets each entry's display name from the cache; with no profile
// at all (the common case of anonymous boards) it costs one atomic load.
func (s *Service) fillNames(es []store.Entry) {
	if s.nameCount.Load() == 0 {
		return
	}
	for i := range es {
		es[i].DisplayName = s.name(es[i].ParticipantID)
	}
}

// ProfileInput is the body of PUT /v1/participants/{pid}, decoded.
type ProfileInput struct {
	DisplayName string
	AvatarURL   string
	Metadata    json.RawMessage
}

// Profile limits.
const (
	MaxDisplayName  = 64   // characters
	MaxAvatarURL    = 2048 // bytes
	MaxProfileBytes = 8192 // metadata, bytes of JSON
)

// PutProfile creates or replaces a participant's profile. Its display name is
// shown in rankings and live entries from then on.
func (s *Service) PutProfile(ctx context.Context, participant string, in ProfileInput) (history.Profile, error) {
	if err := ValidateID("participant_id", participant); err != nil {
		return history.Profile{}, err
	}
	if n := utf8.RuneCountInString(in.DisplayName); n == 0 || n > MaxDisplayName || !utf8.ValidString(in.DisplayName) {
		return history.Profile{}, invalid(fmt.Sprintf("display_name is required and must be 1 to %d characters", MaxDisplayName))
	}
	for _, r := range in.DisplayName {
		if unicode.IsControl(r) {
			return history.Profile{}, invalid("display_name must not contain control characters")
		}
	}
	if in.AvatarURL != "" {
		u, err := url.Parse(in.AvatarURL)
		if len(in.AvatarURL) > MaxAvatarURL || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return history.Profile{}, invalid(fmt.Sprintf("avatar_url must be an absolute http(s) URL of at most %d bytes", MaxAvatarURL))
		}
	}
	meta := in.Metadata
	if len(meta) == 0 || string(meta) == "null" {
		meta = json.RawMessage("{}")
	}
	if len(meta) > MaxProfileBytes || meta[0] != '{' {
		return history.Profile{}, invalid(fmt.Sprintf("metadata must be a JSON object of at most %d bytes", MaxProfileBytes))
	}
	if !utf8.Valid(meta) {
		// As a leaderboard's config (see Create): raw bytes PostgreSQL refuses.
		return history.Profile{}, invalid("metadata must be valid UTF-8")
	}
	if s.hs == nil {
		return history.Profile{}, errHistoryOff()
	}
	// The write and the name set after it go together under profilesMu:
	// two PUTs of one profile at once could otherwise set their names in the
	// other order than they committed (rankings showing a name the stored
	// profile no longer has, for good without a sweep), and a sweep's read
	// taken before this commit could set the older name after this one.
	s.profilesMu.Lock()
	defer s.profilesMu.Unlock()
	p := history.Profile{ParticipantID: participant, DisplayName: in.DisplayName, AvatarURL: in.AvatarURL, Metadata: meta, UpdatedAt: s.now().UTC()}
	if err := s.hs.PutProfile(ctx, p); err != nil {
		return history.Profile{}, historyUnavailable(err)
	}
	s.setName(participant, in.DisplayName)
	return p, nil
}

// Profile reads a participant's profile.
func (s *Service) Profile(ctx context.Context, participant string) (history.Profile, error) {
	if err := ValidateID("participant_id", participant); err != nil {
		return history.Profile{}, err
	}
	if s.hs == nil {
		return history.Profile{}, errHistoryOff()
	}
	p, err := s.hs.Profile(ctx, participant)
	if errors.Is(err, history.ErrNotFound) {
		return history.Profile{}, &Error{Code: CodeParticipantNotFound, Message: fmt.Sprintf("participant %q has no profile", participant)}
	}
	if err != nil {
		return history.Profile{}, historyUnavailable(err)
	}
	return p, nil
}

// ---- history reads ----

// FinalRankings reads a completed leaderboard's final ranking.
func (s *Service) FinalRankings(ctx context.Context, id string, offset, limit int) (time.Time, []store.Entry, error) {
	m, err := s.lookup(id)
	if err != nil {
		return time.Time{}, nil, err
	}
	if s.hs == nil {
		return time.Time{}, nil, errHistoryOff()
	}
	if !m.archived && s.shared {
		// Another process may have completed it (and dropped it from the
		// shared ranking store) since this one last read the list.
		if _, err := s.store.Stats(ctx, id); errors.Is(err, store.ErrBoardNotFound) {
			if a, ok := s.archived(id); ok {
				m = a
			}
		}
	}
	if !m.archived {
		return time.Time{}, nil, &Error{Code: CodeLeaderboardNotFound, Message: fmt.Sprintf("leaderboard %q has not completed: its final rankings exist once it does", id)}
	}
	es, err := s.hs.FinalPage(ctx, id, offset, limit)
	if err != nil {
		return time.Time{}, nil, historyUnavailable(err)
	}
	s.fillNames(es)
	return m.finalizedAt, es, nil
}

// Results reads a participant's places in completed leaderboards.
func (s *Service) Results(ctx context.Context, participant string, offset, limit int) ([]history.Result, error) {
	if err := ValidateID("participant_id", participant); err != nil {
		return nil, err
	}
	if s.hs == nil {
		return nil, errHistoryOff()
	}
	rs, err := s.hs.Results(ctx, participant, limit, offset)
	if err != nil {
		return nil, historyUnavailable(err)
	}
	return rs, nil
}

// Events reads a participant's audit log on a leaderboard, newest first.
// Events reach it with the history writer's group commit, so the latest
// flush interval's changes may not be there yet.
func (s *Service) Events(ctx context.Context, id, participant string, offset, limit int) ([]history.Event, error) {
	if _, err := s.lookup(id); err != nil {
		return nil, err
	}
	if err := ValidateID("participant_id", participant); err != nil {
		return nil, err
	}
	if s.hs == nil {
		return nil, errHistoryOff()
	}
	es, err := s.hs.ParticipantEvents(ctx, id, participant, limit, offset)
	if err != nil {
		return nil, historyUnavailable(err)
	}
	return es, nil
}

// refreshSpacing is the least time between two reads of the leaderboards
// on behalf of unknown ids, so that a stream of bad ids cannot hammer the
// database (at most 1/refreshSpacing reads a second, one at a time).
const refreshSpacing = 100 * time.Millisecond

// refreshAfter makes sure the leaderboards were read from the shared history
// store at or after missAt, the moment a lookup did not find an id: a
// leaderboard another process created before that moment is then known. A
// read that started after missAt (another lookup's) is enough; otherwise this
// one waits for refreshSpacing to pass since the last read, then reads.
func (s *Service) refreshAfter(ctx context.Context, missAt time.Time) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if !s.lastRefresh.Before(missAt) {
		return
	}
	if wait := refreshSpacing - time.Since(s.lastRefresh); wait > 0 {
		time.Sleep(wait)
	}
	s.refreshLocked(ctx)
}

// refresh loads, from a shared history store, the leaderboards this process
// does not know and the changes other processes made to those it knows (the
// history store is written synchronously on every change, so it is never
// behind).
func (s *Service) refresh(ctx context.Context) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.refreshLocked(ctx)
}

func (s *Service) refreshLocked(ctx context.Context) {
	s.lastRefresh = time.Now() // when the read started: what it returns is at least this fresh
	s.mu.RLock()
	gen := s.gen // local changes after this may be missing from the read
	s.mu.RUnlock()
	boards, err := s.hs.Boards(ctx)
	if err != nil {
		return // the next lookup or sweep tries again
	}
	at := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range boards {
		b := &boards[i]
		m, ok := s.boards[b.ID]
		switch {
		case !ok:
			m = metaOf(b)
			m.notified = m.status(at)
			s.boards[b.ID] = m
		case !m.completed && m.gen <= gen:
			m.name, m.endsAt, m.paused, m.startsAt = b.Name, b.EndsAt, b.Paused, b.StartsAt
			if b.Completed {
				m.completed, m.archived = true, true
				m.finalizedAt, m.finalVersion, m.finalTotal = b.FinalizedAt, b.FinalVersion, b.FinalTotal
			}
		}
	}
}
