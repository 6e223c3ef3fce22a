package client

import (
	"encoding/json"
)

// Leaderboard is the leaderboard object of the API.
type Leaderboard struct {
	LeaderboardID string `json:"leaderboard_id"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	// Status is "scheduled", "active", "paused" or "completed".
	Status string `json:"status"`
	// SortOrder is "desc" (higher is better) or "asc".
	SortOrder string `json:"sort_order"`
	// UpdatePolicy is "set" or "best".
	UpdatePolicy string `json:"update_policy"`
	// StartsAt, EndsAt and CreatedAt are RFC 3339 times; StartsAt and EndsAt
	// are nil when unset.
	StartsAt          *string         `json:"starts_at"`
	EndsAt            *string         `json:"ends_at"`
	CreatedAt         string          `json:"created_at"`
	MaxScore          *uint64         `json:"max_score"`
	Config            json.RawMessage `json:"config,omitempty"`
	Version           uint64          `json:"version"`
	Epoch             string          `json:"epoch"`
	TotalParticipants int64           `json:"total_participants"`
}

// CreateLeaderboardRequest is the body of [Client.CreateLeaderboard]. Only
// Name is required; empty fields are left to the server's defaults.
type CreateLeaderboardRequest struct {
	// LeaderboardID is generated (a UUID) when empty.
	LeaderboardID string `json:"leaderboard_id,omitempty"`
	Name          string `json:"name"`
	Type          string `json:"type,omitempty"`
	SortOrder     string `json:"sort_order,omitempty"`
	UpdatePolicy  string `json:"update_policy,omitempty"`
	// StartsAt and EndsAt are RFC 3339 times.
	StartsAt string          `json:"starts_at,omitempty"`
	EndsAt   string          `json:"ends_at,omitempty"`
	MaxScore *uint64         `json:"max_score,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
}

// UpdateLeaderboardRequest is the body of [Client.UpdateLeaderboard]; empty
// fields are not changed.
type UpdateLeaderboardRequest struct {
	// Status is "paused" or "active".
	Status string `json:"status,omitempty"`
	Name   string `json:"name,omitempty"`
	// EndsAt is an RFC 3339 time.
	EndsAt string `json:"ends_at,omitempty"`
}

// ListOptions filters and pages [Client.ListLeaderboards]; zero values are
// left to the server's defaults.
type ListOptions struct {
	Status string // "scheduled", "active", "paused" or "completed"
	Limit  int
	Offset int
}

// Score is one submission.
type Score struct {
	ParticipantID string `json:"participant_id"`
	Score         uint64 `json:"score"`
	// Timestamp is when the score was achieved, in Unix milliseconds, used to
	// break ties; 0 lets the server use its own clock.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// ScoreResult is the server's answer to one submission.
type ScoreResult struct {
	LeaderboardID string  `json:"leaderboard_id"`
	ParticipantID string  `json:"participant_id"`
	Score         uint64  `json:"score"`
	PreviousScore *uint64 `json:"previous_score"`
	Rank          int64   `json:"rank"`
	PreviousRank  *int64  `json:"previous_rank"`
	// Updated is false when nothing changed (same score, or a worse one under
	// update_policy "best").
	Updated    bool   `json:"updated"`
	Version    uint64 `json:"version"`
	AchievedAt int64  `json:"achieved_at"`
}

// BatchResult is one item of [Client.SubmitScores]: exactly one of Result and
// Err is set.
type BatchResult struct {
	Result *ScoreResult
	Err    *APIError
}

// UnmarshalJSON reads either a result object or {"error": {...}}.
func (b *BatchResult) UnmarshalJSON(data []byte) error {
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err != nil {
		return err
	}
	if eb.Error != nil {
		b.Result = nil
		b.Err = &APIError{Status: statusOfCode[eb.Error.Code], Code: eb.Error.Code, Message: eb.Error.Message}
		return nil
	}
	var r ScoreResult
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	b.Result, b.Err = &r, nil
	return nil
}

// Entry is one ranked participant.
type Entry struct {
	Rank          int64  `json:"rank"`
	ParticipantID string `json:"participant_id"`
	Score         uint64 `json:"score"`
	// AchievedAt is in Unix milliseconds.
	AchievedAt  int64  `json:"achieved_at"`
	DisplayName string `json:"display_name,omitempty"`
}

// RankingPage is the answer of [Client.Rankings] and [Client.Around].
type RankingPage struct {
	LeaderboardID     string  `json:"leaderboard_id"`
	Version           uint64  `json:"version"`
	Epoch             string  `json:"epoch"`
	TotalParticipants int64   `json:"total_participants"`
	Entries           []Entry `json:"entries"`
}

// ParticipantRanking is the answer of [Client.Participant].
type ParticipantRanking struct {
	LeaderboardID     string `json:"leaderboard_id"`
	ParticipantID     string `json:"participant_id"`
	Rank              int64  `json:"rank"`
	Score             uint64 `json:"score"`
	AchievedAt        int64  `json:"achieved_at"`
	DisplayName       string `json:"display_name,omitempty"`
	Version           uint64 `json:"version"`
	Epoch             string `json:"epoch,omitempty"`
	TotalParticipants int64  `json:"total_participants"`
	// Neighbors are the entries directly above and below, in rank order, the
	// participant excluded.
	Neighbors []Entry `json:"neighbors"`
}

// LiveParticipant is the state of a "participant" subscription.
type LiveParticipant struct {
	Rank          int64  `json:"rank"`
	ParticipantID string `json:"participant_id"`
	Score         uint64 `json:"score"`
	AchievedAt    int64  `json:"achieved_at"`
	DisplayName   string `json:"display_name,omitempty"`
	// PreviousRank and PreviousScore come with updates: the values at the
	// update's prev_version (nil when the participant was not ranked then, and
	// in snapshots).
	PreviousRank  *int64  `json:"previous_rank,omitempty"`
	PreviousScore *uint64 `json:"previous_score,omitempty"`
}

// LiveStatus is the last "status" message a watcher received.
type LiveStatus struct {
	// Status is "paused", "active" or "completed".
	Status  string `json:"status"`
	Version uint64 `json:"version"`
}
