package board

import (
	"fmt"
	"time"
)

// Error codes of the API contract.
const (
	CodeInvalidArgument      = "invalid_argument"
	CodeLeaderboardNotFound  = "leaderboard_not_found"
	CodeParticipantNotFound  = "participant_not_found"
	CodeLeaderboardEnded     = "leaderboard_ended"
	CodeAlreadyExists        = "already_exists"
	CodeLeaderboardNotActive = "leaderboard_not_active"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
)

// Error is an error the API shows to its caller: a code from the contract and
// a sentence for a human. RetryAfter is set for rate_limited and unavailable.
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func invalid(msg string) *Error { return &Error{Code: CodeInvalidArgument, Message: msg} }

// Invalid returns an invalid_argument error with the given message.
func Invalid(msg string) *Error { return invalid(msg) }

func errBoardNotFound(id string) *Error {
	return &Error{Code: CodeLeaderboardNotFound, Message: fmt.Sprintf("leaderboard %q does not exist", id)}
}

func errParticipantNotFound(id string) *Error {
	return &Error{Code: CodeParticipantNotFound, Message: fmt.Sprintf("participant %q is not on this leaderboard", id)}
}

func errEnded(id string) *Error {
	return &Error{Code: CodeLeaderboardEnded, Message: fmt.Sprintf("leaderboard %q has completed and takes no more changes", id)}
}

func errAlreadyExists(id string) *Error {
	return &Error{Code: CodeAlreadyExists, Message: fmt.Sprintf("leaderboard %q already exists", id)}
}

func errNotActive(id string, st Status) *Error {
	return &Error{Code: CodeLeaderboardNotActive, Message: fmt.Sprintf("leaderboard %q is %s and takes no scores now", id, st)}
}

func errRateLimited(wait time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: "too many submissions for this participant on this leaderboard; retry later", RetryAfter: wait}
}

func unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "the ranking store is unavailable: " + err.Error(), RetryAfter: time.Second}
}
