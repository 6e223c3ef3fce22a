// Package history is the durable side of the service: leaderboard metadata,
// the audit log of every score change, snapshots of live rankings for crash
// recovery, final rankings of completed leaderboards, and participant profiles.
//
// Store is the seam; history/sqlite (embedded, the default) and
// history/postgres implement it and pass the conformance suite in
// history/historytest. Writer batches the audit log off the request path
// (group commit), and Recover rebuilds live leaderboards on start.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
)

// Board is a leaderboard's metadata as it is kept.
type Board struct {
	ID        string
	Name      string
	Type      string
	Order     store.SortOrder
	Policy    store.Policy
	StartsAt  time.Time // zero: started at creation
	EndsAt    time.Time // zero: no end
	CreatedAt time.Time
	MaxScore  *uint64 // nil: no bound below store.MaxScore
	Config    json.RawMessage
	Paused    bool

	// Set once, by Finalize.
	Completed    bool
	FinalizedAt  time.Time
	FinalVersion uint64
	FinalTotal   int64
}

// Event is one audit-log record: a store.Event with its id and the server
// time it happened (Unix milliseconds).
type Event struct {
	ID int64 // assigned by the store on write; 0 before
	store.Event
	CreatedAt int64
}

// Snapshot is a live leaderboard's ranking at (or, when read while writes go
// on, from) Version: recovery loads it and replays the audit log after Version.
// Data is the snapshot codec's encoding (EncodeSnapshot).
type Snapshot struct {
	Board   string
	Version uint64
	TakenAt time.Time
	Data    []byte
}

// Batch is one group commit: written in one transaction, events before
// snapshots, so that a snapshot is never durable without the events it holds.
type Batch struct {
	Events    []Event
	Snapshots []Snapshot
}

// Profile is a participant's public profile.
type Profile struct {
	ParticipantID string
	DisplayName   string
	AvatarURL     string
	Metadata      json.RawMessage // a JSON object; empty means {}
	UpdatedAt     time.Time
}

// Result is a participant's place in one completed leaderboard.
type Result struct {
	Leaderboard string
	Name        string
	Rank        int64
	Score       uint64
	AchievedAt  int64
	FinalizedAt time.Time
}

// State is what the server keeps about its own life: the epoch of its version
// sequences, and whether it stopped cleanly (everything flushed), in which case
// the next start keeps the epoch.
type State struct {
	Epoch string
	Clean bool
}

// Errors every implementation returns (wrapped or as is).
var (
	ErrNotFound  = errors.New("not found")
	ErrCompleted = errors.New("leaderboard already completed")
)

// Store is the history store.
type Store interface {
	// PutBoard inserts or replaces a leaderboard's metadata, except the
	// completion fields, which only Finalize sets. A completed board is left
	// alone (ErrCompleted).
	PutBoard(ctx context.Context, b Board) error
	// Boards returns every leaderboard, completed ones included.
	Boards(ctx context.Context) ([]Board, error)

	// Write commits a batch of audit events and snapshots in one transaction.
	// Events of one leaderboard arrive in version order.
	Write(ctx context.Context, b Batch) error
	// Snapshot returns the latest snapshot of a leaderboard, or ErrNotFound.
	Snapshot(ctx context.Context, board string) (Snapshot, error)
	// EventsAfter yields the leaderboard's events with a version above after,
	// in version order.
	EventsAfter(ctx context.Context, board string, after uint64, fn func(Event) error) error
	// ParticipantEvents returns one participant's events on a leaderboard,
	// newest first.
	ParticipantEvents(ctx context.Context, board, participant string, limit, offset int) ([]Event, error)

	// Finalize stores the complete final ranking (entries in rank order, ranks
	// 1..n) and marks the leaderboard completed with b's completion fields, in
	// one transaction. An error yielded by entries (its source failed) aborts
	// the transaction and is returned. ErrNotFound when the board was never
	// put; ErrCompleted when it is already completed.
	Finalize(ctx context.Context, b Board, entries iter.Seq2[store.Entry, error]) error
	// FinalPage reads limit entries of a final ranking from 0-based offset.
	FinalPage(ctx context.Context, board string, offset, limit int) ([]store.Entry, error)
	// FinalEntry reads one participant's final entry, or ErrNotFound.
	FinalEntry(ctx context.Context, board, participant string) (store.Entry, error)
	// Results returns the participant's place in every completed leaderboard,
	// the most recently finalized first.
	Results(ctx context.Context, participant string, limit, offset int) ([]Result, error)

	// PutProfile inserts or replaces a participant's profile.
	PutProfile(ctx context.Context, p Profile) error
	// Profile reads one profile, or ErrNotFound.
	Profile(ctx context.Context, participant string) (Profile, error)
	// Profiles yields every profile updated at or after since (the zero
	// time: all of them): all to warm the display-name cache at start, the
	// recent ones to learn of profiles other processes wrote.
	Profiles(ctx context.Context, since time.Time, fn func(Profile) error) error

	// State reads the server's state; a new store returns the zero State.
	State(ctx context.Context) (State, error)
	// SetState records the server's state.
	SetState(ctx context.Context, s State) error

	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}
