// Package guard puts a circuit breaker in front of the backends the service
// calls: the ranking store (Redis) and the history store (PostgreSQL or
// SQLite). While a backend keeps failing, calls fail at once (the API answers
// 503 + Retry-After) instead of each waiting for its own timeout; after a
// pause a probe goes through, and the breaker closes when it succeeds. The
// stores' own answers (not found, already exists, sealed, ...) are the
// backend working and never open it.
package guard

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// StoreHealthy reports the ranking store's normal answers.
func StoreHealthy(err error) bool {
	return errors.Is(err, store.ErrBoardNotFound) || errors.Is(err, store.ErrBoardExists) || errors.Is(err, store.ErrBoardSealed) ||
		errors.Is(err, store.ErrBoardPaused) || errors.Is(err, store.ErrParticipantNotFound) || errors.Is(err, store.ErrOutOfRange) ||
		// One leaderboard's damaged keys: the backend answered, and the
		// other leaderboards must not be refused because of it.
		errors.Is(err, store.ErrDamaged)
}

// HistoryHealthy reports the history store's normal answers.
func HistoryHealthy(err error) bool {
	return errors.Is(err, history.ErrNotFound) || errors.Is(err, history.ErrCompleted)
}

// Store wraps a ranking store. Its breaker must be made with
// Healthy: StoreHealthy.
func Store(st store.Store, br *bus.Breaker) store.Store { return &guardedStore{st: st, br: br} }

type guardedStore struct {
	st store.Store
	br *bus.Breaker
}

func (g *guardedStore) do(ctx context.Context, fn func(context.Context) error) error {
	return g.br.Do(ctx, fn)
}

func (g *guardedStore) CreateBoard(ctx context.Context, board string, opts store.BoardOptions) error {
	return g.do(ctx, func(ctx context.Context) error { return g.st.CreateBoard(ctx, board, opts) })
}

func (g *guardedStore) Restore(ctx context.Context, board string, opts store.BoardOptions, version uint64, es []store.Entry) error {
	return g.do(ctx, func(ctx context.Context) error { return g.st.Restore(ctx, board, opts, version, es) })
}

func (g *guardedStore) DropBoard(ctx context.Context, board string) error {
	return g.do(ctx, func(ctx context.Context) error { return g.st.DropBoard(ctx, board) })
}

func (g *guardedStore) Submit(ctx context.Context, board string, subs []store.Submission, results []store.Result) error {
	return g.do(ctx, func(ctx context.Context) error { return g.st.Submit(ctx, board, subs, results) })
}

func (g *guardedStore) Remove(ctx context.Context, board, participant string) (r store.Result, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { r, e = g.st.Remove(ctx, board, participant); return e })
	return r, err
}

func (g *guardedStore) Seal(ctx context.Context, board string) (s store.Stats, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { s, e = g.st.Seal(ctx, board); return e })
	return s, err
}

// SetPaused implements store.Pauser when the wrapped store does; otherwise
// it does nothing (a store of one process).
func (g *guardedStore) SetPaused(ctx context.Context, board string, paused bool) error {
	p, ok := g.st.(store.Pauser)
	if !ok {
		return nil
	}
	return g.do(ctx, func(ctx context.Context) error { return p.SetPaused(ctx, board, paused) })
}

func (g *guardedStore) Page(ctx context.Context, board string, offset, limit int) (p store.Page, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { p, e = g.st.Page(ctx, board, offset, limit); return e })
	return p, err
}

func (g *guardedStore) Around(ctx context.Context, board, participant string, limit int) (p store.Page, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { p, e = g.st.Around(ctx, board, participant, limit); return e })
	return p, err
}

func (g *guardedStore) Participant(ctx context.Context, board, participant string, neighbors int) (v store.ParticipantView, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) {
		v, e = g.st.Participant(ctx, board, participant, neighbors)
		return e
	})
	return v, err
}

func (g *guardedStore) Stats(ctx context.Context, board string) (s store.Stats, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { s, e = g.st.Stats(ctx, board); return e })
	return s, err
}

func (g *guardedStore) Epoch() string { return g.st.Epoch() }

// CatchUp is the Redis store's (processes over one Redis follow each other's
// changes with it), through the breaker: while Redis is away the follow loop
// is refused at once instead of waiting out a timeout per leaderboard. A
// store without it has nothing to catch up.
func (g *guardedStore) CatchUp(ctx context.Context, board string) error {
	c, ok := g.st.(interface {
		CatchUp(context.Context, string) error
	})
	if !ok {
		return nil
	}
	if g.br.State() != "closed" {
		// Not the probe of a half-open breaker: that is one call, and a
		// catch-up reading a backlog could hold it for seconds while every
		// request is refused. The API's own calls probe; this waits for them.
		return fmt.Errorf("catch-up of %s: %w", board, bus.ErrBreakerOpen)
	}
	return g.do(ctx, func(ctx context.Context) error { return c.CatchUp(ctx, board) })
}

// History wraps a history store. Its breaker must be made with
// Healthy: HistoryHealthy.
func History(hs history.Store, br *bus.Breaker) history.Store { return &guardedHistory{hs: hs, br: br} }

type guardedHistory struct {
	hs history.Store
	br *bus.Breaker
}

func (g *guardedHistory) do(ctx context.Context, fn func(context.Context) error) error {
	return g.br.Do(ctx, fn)
}

func (g *guardedHistory) PutBoard(ctx context.Context, b history.Board) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.PutBoard(ctx, b) })
}

func (g *guardedHistory) Boards(ctx context.Context) (bs []history.Board, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { bs, e = g.hs.Boards(ctx); return e })
	return bs, err
}

func (g *guardedHistory) Write(ctx context.Context, b history.Batch) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.Write(ctx, b) })
}

func (g *guardedHistory) Snapshot(ctx context.Context, board string) (s history.Snapshot, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { s, e = g.hs.Snapshot(ctx, board); return e })
	return s, err
}

func (g *guardedHistory) EventsAfter(ctx context.Context, board string, after uint64, fn func(history.Event) error) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.EventsAfter(ctx, board, after, fn) })
}

func (g *guardedHistory) ParticipantEvents(ctx context.Context, board, participant string, limit, offset int) (es []history.Event, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) {
		es, e = g.hs.ParticipantEvents(ctx, board, participant, limit, offset)
		return e
	})
	return es, err
}

func (g *guardedHistory) Finalize(ctx context.Context, b history.Board, entries iter.Seq2[store.Entry, error]) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.Finalize(ctx, b, entries) })
}

func (g *guardedHistory) FinalPage(ctx context.Context, board string, offset, limit int) (es []store.Entry, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { es, e = g.hs.FinalPage(ctx, board, offset, limit); return e })
	return es, err
}

func (g *guardedHistory) FinalEntry(ctx context.Context, board, participant string) (en store.Entry, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { en, e = g.hs.FinalEntry(ctx, board, participant); return e })
	return en, err
}

func (g *guardedHistory) Results(ctx context.Context, participant string, limit, offset int) (rs []history.Result, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { rs, e = g.hs.Results(ctx, participant, limit, offset); return e })
	return rs, err
}

func (g *guardedHistory) PutProfile(ctx context.Context, p history.Profile) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.PutProfile(ctx, p) })
}

func (g *guardedHistory) Profile(ctx context.Context, participant string) (p history.Profile, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { p, e = g.hs.Profile(ctx, participant); return e })
	return p, err
}

func (g *guardedHistory) Profiles(ctx context.Context, since time.Time, fn func(history.Profile) error) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.Profiles(ctx, since, fn) })
}

func (g *guardedHistory) State(ctx context.Context) (s history.State, err error) {
	err = g.do(ctx, func(ctx context.Context) (e error) { s, e = g.hs.State(ctx); return e })
	return s, err
}

func (g *guardedHistory) SetState(ctx context.Context, s history.State) error {
	return g.do(ctx, func(ctx context.Context) error { return g.hs.SetState(ctx, s) })
}

// Ping goes around the breaker: /readyz must see the backend itself.
func (g *guardedHistory) Ping(ctx context.Context) error { return g.hs.Ping(ctx) }

func (g *guardedHistory) Close() error { return g.hs.Close() }

var (
	_ store.Store   = (*guardedStore)(nil)
	_ history.Store = (*guardedHistory)(nil)
)
