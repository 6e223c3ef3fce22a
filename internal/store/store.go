// Package store is the ranking store seam: where each leaderboard's ordered
// participants live and where its single ordered writer applies submissions.
// The embedded implementation is store/memory; every implementation must pass
// the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
)

// MaxScore is the largest accepted score, 2^53-1 (exact in JSON and JavaScript).
const MaxScore uint64 = 1<<53 - 1

// MaxAchievedAt is the largest accepted achieved_at in Unix milliseconds (2^43-1,
// in the year 2248); stores may pack it beside the score.
const MaxAchievedAt int64 = 1<<43 - 1

// SortOrder says which scores rank first.
type SortOrder uint8

const (
	Descending SortOrder = iota // higher score first
	Ascending                   // lower score first
)

// Policy says how a submission combines with a participant's current score.
type Policy uint8

const (
	PolicySet  Policy = iota // the submitted score replaces the current one
	PolicyBest               // the better of current and submitted is kept
)

// BoardOptions fix a leaderboard's order for its whole life.
type BoardOptions struct {
	Order  SortOrder
	Policy Policy
}

// Entry is one ranked participant.
type Entry struct {
	Rank          int64
	ParticipantID string
	Score         uint64
	AchievedAt    int64 // Unix milliseconds
	// DisplayName is the participant's profile name. Stores leave it empty:
	// the board service fills it from its profile cache on the way out.
	DisplayName string
}

// Submission is one score to apply. AchievedAt is set by the caller (server
// time when the client gave none).
type Submission struct {
	ParticipantID string
	Score         uint64
	AchievedAt    int64
}

// Result is what one submission did. When Updated is false nothing changed:
// Rank == PreviousRank and Version is the leaderboard's current version.
type Result struct {
	Updated       bool
	Score         uint64 // the participant's score after the submission
	AchievedAt    int64  // and when it was achieved
	Rank          int64
	HadPrevious   bool // PreviousScore and PreviousRank are meaningful
	PreviousScore uint64
	PreviousRank  int64
	Version       uint64
}

// Event is one accepted change, in the leaderboard's version order. It is what
// fan-out and the audit log consume.
type Event struct {
	Leaderboard   string
	Version       uint64
	ParticipantID string
	Removed       bool // the participant was removed; New* are zero
	HadOld        bool
	OldScore      uint64
	OldRank       int64
	NewScore      uint64
	NewRank       int64
	AchievedAt    int64
}

// EventSink receives every accepted change of every leaderboard. A store calls
// Publish from the leaderboard's ordered writer, so one leaderboard's events
// arrive in strictly increasing version order with no gap; Publish must be quick
// and must not call back into the store.
type EventSink interface {
	Publish(Event)
}

// Page is a contiguous run of a leaderboard's ranking, read at one version.
type Page struct {
	Version uint64
	Total   int64
	Entries []Entry
}

// ParticipantView is one participant with its neighbours, read at one version.
type ParticipantView struct {
	Version   uint64
	Total     int64
	Entry     Entry
	Neighbors []Entry // up to n above and n below, in rank order, the participant excluded
}

// Stats is a leaderboard's version and size.
type Stats struct {
	Version uint64
	Total   int64
}

// Errors every implementation returns (wrapped or as is).
var (
	ErrBoardNotFound       = errors.New("leaderboard not found")
	ErrBoardExists         = errors.New("leaderboard already exists")
	ErrBoardSealed         = errors.New("leaderboard is sealed: it takes no more changes")
	ErrBoardPaused         = errors.New("leaderboard is paused: it takes no submissions")
	ErrParticipantNotFound = errors.New("participant not found")
	ErrOutOfRange          = errors.New("score or achieved_at out of range")
	// ErrDamaged is a leaderboard whose data the store holds is damaged (a
	// shared store that lost some of its keys): every write to it fails the
	// same way until an operator repairs it. The store is reachable, so
	// this is no reason to queue writes or to refuse other leaderboards'.
	ErrDamaged = errors.New("leaderboard data damaged in the ranking store")
)

// Pauser is a ranking store that refuses submissions to a paused leaderboard
// itself (ErrBoardPaused), atomically with its writes. Shared by several
// processes, a pause made through one then holds at once in every other:
// each checks its own copy of the status too, but re-reads it only at its
// sweep. In one process (memory) it stops what passed the status check
// before the pause: a submission in flight, the remaining chunks of a batch.
type Pauser interface {
	SetPaused(ctx context.Context, board string, paused bool) error
}

// Store holds the rankings of many leaderboards.
type Store interface {
	// CreateBoard makes an empty leaderboard at version 0.
	CreateBoard(ctx context.Context, board string, opts BoardOptions) error
	// Restore makes a leaderboard at version holding entries (their ranks are
	// ignored; ids are unique), as crash recovery rebuilds it. Nothing is
	// published. ErrBoardExists when it exists; ErrOutOfRange for a bad entry.
	Restore(ctx context.Context, board string, opts BoardOptions, version uint64, entries []Entry) error
	// DropBoard forgets a leaderboard and its participants.
	DropBoard(ctx context.Context, board string) error
	// Submit applies subs in order through the leaderboard's single writer and
	// fills results[i] for subs[i] (len(results) must be len(subs)). Every
	// accepted change gets the next version. A sealed board returns ErrBoardSealed
	// and applies nothing from the point it was sealed.
	Submit(ctx context.Context, board string, subs []Submission, results []Result) error
	// Remove takes a participant out of the ranking and bumps the version.
	Remove(ctx context.Context, board, participant string) (Result, error)
	// Seal makes a leaderboard read-only, atomically with respect to writes:
	// every write that returned success is in the state Seal returns.
	Seal(ctx context.Context, board string) (Stats, error)
	// Page reads limit entries starting at 0-based offset.
	Page(ctx context.Context, board string, offset, limit int) (Page, error)
	// Around reads up to limit entries with the participant in the middle:
	// (limit-1)/2 ranks above it and the rest below, clipped at both ends.
	Around(ctx context.Context, board, participant string, limit int) (Page, error)
	// Participant reads one participant and up to neighbors entries on each side.
	Participant(ctx context.Context, board, participant string, neighbors int) (ParticipantView, error)
	// Stats reads a leaderboard's version and size.
	Stats(ctx context.Context, board string) (Stats, error)
	// Epoch names the life of the store's version sequences; versions compare
	// only within one epoch.
	Epoch() string
}

// Better reports whether score a ranks before score b under order.
func Better(order SortOrder, a, b uint64) bool {
	if order == Descending {
		return a > b
	}
	return a < b
}
