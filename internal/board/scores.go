package board

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lbhq/leaderboard/internal/ratelimit"
	"github.com/lbhq/leaderboard/internal/store"
)

// MaxFutureSkew is how far in the future a submission's timestamp may be.
const MaxFutureSkew = 60 * time.Second

// MaxBatch is the largest number of scores in one batch submission.
const MaxBatch = 1000

// ScoreInput is one submission as decoded from a request. Score is already
// known to be an integer in 0..store.MaxScore.
type ScoreInput struct {
	ParticipantID string
	Score         uint64
	Timestamp     int64 // Unix milliseconds; used when HasTimestamp
	HasTimestamp  bool
}

// writable returns the leaderboard's metadata when it takes scores now.
func (s *Service) writable(id string, now time.Time) (meta, error) {
	m, err := s.lookup(id)
	if err != nil {
		return meta{}, err
	}
	switch st := m.status(now); st {
	case Active:
		return m, nil
	case Completed:
		return meta{}, errEnded(id)
	default:
		return meta{}, errNotActive(id, st)
	}
}

// check validates one input against the leaderboard's rules and the rate limit
// and turns it into a store submission.
func (s *Service) check(m *meta, in *ScoreInput, now time.Time) (store.Submission, error) {
	if err := ValidateID("participant_id", in.ParticipantID); err != nil {
		return store.Submission{}, err
	}
	if m.maxScore != nil && in.Score > *m.maxScore {
		return store.Submission{}, invalid(fmt.Sprintf("score %d is above this leaderboard's max_score %d", in.Score, *m.maxScore))
	}
	at := now.UnixMilli()
	if in.HasTimestamp {
		if in.Timestamp < 0 {
			return store.Submission{}, invalid("timestamp must be Unix milliseconds, not negative")
		}
		if in.Timestamp > at+MaxFutureSkew.Milliseconds() {
			return store.Submission{}, invalid("timestamp is more than 60 s in the future")
		}
		at = in.Timestamp
	}
	if ok, wait := s.limiter.Allow(ratelimit.Key{A: m.id, B: in.ParticipantID}, now); !ok {
		return store.Submission{}, errRateLimited(wait)
	}
	return store.Submission{ParticipantID: in.ParticipantID, Score: in.Score, AchievedAt: at}, nil
}

// Submit applies one score.
func (s *Service) Submit(ctx context.Context, board string, in ScoreInput) (store.Result, error) {
	now := s.now()
	m, err := s.writable(board, now)
	if err != nil {
		return store.Result{}, err
	}
	sub, err := s.check(&m, &in, now)
	if err != nil {
		return store.Result{}, err
	}
	if err := s.admit(); err != nil {
		return store.Result{}, err
	}
	// The submission and its result escape through the store interface (and
	// the write queue keeps the submission): one allocation holds both,
	// instead of one each.
	one := &struct {
		sub [1]store.Submission
		res [1]store.Result
	}{sub: [1]store.Submission{sub}}
	if err := s.apply(ctx, board, one.sub[:], one.res[:]); err != nil {
		if errors.Is(err, ErrQueued) {
			return store.Result{Score: sub.Score, AchievedAt: sub.AchievedAt}, err
		}
		return store.Result{}, s.storeError(err, board, "")
	}
	return one.res[0], nil
}

// SubmitBatch applies up to MaxBatch scores in order. A leaderboard-level
// problem (missing, ended, not active) fails the whole call; an item-level one
// (bad id, bounds, rate limit) fails only that item, in errs. decodeErrs
// carries items the caller could not decode (nil entries for good ones); they
// are reported as they are and not applied.
func (s *Service) SubmitBatch(ctx context.Context, board string, ins []ScoreInput, decodeErrs []error) ([]store.Result, []error, error) {
	if len(ins) == 0 || len(ins) > MaxBatch {
		return nil, nil, invalid(fmt.Sprintf("scores must hold 1 to %d items", MaxBatch))
	}
	now := s.now()
	m, err := s.writable(board, now)
	if err != nil {
		return nil, nil, err
	}
	if err := s.admit(); err != nil {
		return nil, nil, err
	}
	results := make([]store.Result, len(ins))
	errs := make([]error, len(ins))
	subs := make([]store.Submission, 0, len(ins))
	index := make([]int, 0, len(ins)) // subs[k] is item index[k]
	for i := range ins {
		if decodeErrs != nil && decodeErrs[i] != nil {
			errs[i] = decodeErrs[i]
			continue
		}
		sub, err := s.check(&m, &ins[i], now)
		if err != nil {
			errs[i] = err
			continue
		}
		subs = append(subs, sub)
		index = append(index, i)
	}
	if len(subs) > 0 {
		// applied[k] is the result of subs[k]. When every item passed the
		// checks, subs[k] is item k and the results go straight into
		// results (the copies below are then no-ops): a second slice of
		// results, 6 KB for 100 items, only when some were left out.
		applied := results
		if len(subs) < len(ins) {
			applied = make([]store.Result, len(subs))
		}
		if err := s.apply(ctx, board, subs, applied); err != nil {
			if errors.Is(err, ErrQueued) {
				for k, i := range index {
					results[i] = store.Result{Score: subs[k].Score, AchievedAt: subs[k].AchievedAt}
				}
				return results, errs, err
			}
			if applied[0].Version > 0 {
				// The store applies a batch in chunks: the leaderboard was
				// sealed (or dropped) between two of them, and the items
				// before are in its final state. Say so per item.
				itemErr := s.storeError(err, board, "")
				for k, i := range index {
					if applied[k].Version > 0 {
						results[i] = applied[k]
					} else {
						errs[i] = itemErr
					}
				}
				return results, errs, nil
			}
			return nil, nil, s.storeError(err, board, "")
		}
		for k, i := range index {
			results[i] = applied[k]
		}
	}
	return results, errs, nil
}

// Epoch names the life of the version sequences the service hands out.
func (s *Service) Epoch() string { return s.store.Epoch() }

// Rankings reads limit entries from 0-based offset.
func (s *Service) Rankings(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	p, err := s.Reader().Page(ctx, board, offset, limit)
	if err != nil {
		return store.Page{}, s.storeError(err, board, "")
	}
	return p, nil
}

// Around reads up to limit entries with participant in the middle.
func (s *Service) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	p, err := s.Reader().Around(ctx, board, participant, limit)
	if err != nil {
		return store.Page{}, s.storeError(err, board, participant)
	}
	return p, nil
}

// Participant reads one participant and its neighbours.
func (s *Service) Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error) {
	v, err := s.Reader().Participant(ctx, board, participant, neighbors)
	if err != nil {
		return store.ParticipantView{}, s.storeError(err, board, participant)
	}
	return v, nil
}

// Version returns a leaderboard's current version: a cheap check of whether
// something cached at an older version is still current.
func (s *Service) Version(ctx context.Context, board string) (uint64, error) {
	st, err := s.Reader().Stats(ctx, board)
	if err != nil {
		return 0, s.storeError(err, board, "")
	}
	return st.Version, nil
}
