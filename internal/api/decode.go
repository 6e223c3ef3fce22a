package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
)

// Request decoding. Every decoder takes the whole body (already bounded by the
// body limit) and returns either the value or an invalid_argument error whose
// message says what is wrong. Unknown fields are ignored, as API.md says.

// unmarshal decodes body into v and words the errors for a client.
func unmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return board.Invalid("the request body is empty; a JSON object is required")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return board.Invalid(fmt.Sprintf("%s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
		}
		return board.Invalid("the request body is not valid JSON: " + err.Error())
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "string"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	}
	return "value of the documented type"
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// parseUint parses a non-negative JSON integer no larger than maxV. Fractions,
// exponents, signs and strings are refused: scores are exact integers.
func parseUint(field string, raw json.RawMessage, maxV uint64) (uint64, error) {
	bad := board.Invalid(fmt.Sprintf("%s must be an integer between 0 and %d", field, maxV))
	if len(raw) == 0 || len(raw) > 20 {
		return 0, bad
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	if len(raw) > 1 && raw[0] == '0' {
		return 0, bad
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || v > maxV {
		return 0, bad
	}
	return v, nil
}

type scoreBody struct {
	ParticipantID *string         `json:"participant_id"`
	Score         json.RawMessage `json:"score"`
	Timestamp     json.RawMessage `json:"timestamp"`
}

// decodeScore turns one submission object into a board.ScoreInput.
func decodeScore(body []byte) (board.ScoreInput, error) {
	var sb scoreBody
	if err := unmarshal(body, &sb); err != nil {
		return board.ScoreInput{}, err
	}
	return sb.input()
}

func (sb *scoreBody) input() (board.ScoreInput, error) {
	if sb.ParticipantID == nil {
		return board.ScoreInput{}, board.Invalid("participant_id is required")
	}
	if err := board.ValidateID("participant_id", *sb.ParticipantID); err != nil {
		return board.ScoreInput{}, err
	}
	if isNull(sb.Score) {
		return board.ScoreInput{}, board.Invalid("score is required")
	}
	score, err := parseUint("score", sb.Score, store.MaxScore)
	if err != nil {
		return board.ScoreInput{}, err
	}
	in := board.ScoreInput{ParticipantID: *sb.ParticipantID, Score: score}
	if !isNull(sb.Timestamp) {
		raw := sb.Timestamp
		if len(raw) > 0 && raw[0] == '-' {
			return board.ScoreInput{}, board.Invalid("timestamp must be Unix milliseconds, not negative")
		}
		ts, err := parseUint("timestamp", raw, uint64(store.MaxAchievedAt))
		if err != nil {
			return board.ScoreInput{}, err
		}
		in.Timestamp, in.HasTimestamp = int64(ts), true
	}
	return in, nil
}

type batchBody struct {
	Scores *[]json.RawMessage `json:"scores"`
}

// decodeBatch decodes a batch body. Items that do not decode get their error
// in errs (and a zero input); the batch as a whole fails only when its shape
// is wrong.
func decodeBatch(body []byte) (ins []board.ScoreInput, errs []error, err error) {
	var bb batchBody
	if err := unmarshal(body, &bb); err != nil {
		return nil, nil, err
	}
	if bb.Scores == nil {
		return nil, nil, board.Invalid("scores is required: an array of 1 to 1000 score objects")
	}
	items := *bb.Scores
	if len(items) == 0 || len(items) > board.MaxBatch {
		return nil, nil, board.Invalid(fmt.Sprintf("scores must hold 1 to %d items, not %d", board.MaxBatch, len(items)))
	}
	ins = make([]board.ScoreInput, len(items))
	errs = make([]error, len(items))
	for i, raw := range items {
		var sb scoreBody
		if err := unmarshal(raw, &sb); err != nil {
			errs[i] = err
			continue
		}
		ins[i], errs[i] = sb.input()
	}
	return ins, errs, nil
}

type createBody struct {
	LeaderboardID *string         `json:"leaderboard_id"`
	Name          *string         `json:"name"`
	Type          *string         `json:"type"`
	SortOrder     *string         `json:"sort_order"`
	UpdatePolicy  *string         `json:"update_policy"`
	StartsAt      *string         `json:"starts_at"`
	EndsAt        *string         `json:"ends_at"`
	MaxScore      json.RawMessage `json:"max_score"`
	Config        json.RawMessage `json:"config"`
}

func parseTime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, board.Invalid(field + " must be an RFC 3339 time such as 2026-11-27T18:00:00Z")
	}
	return t, nil
}

func decodeCreate(body []byte) (board.CreateRequest, error) {
	var cb createBody
	if err := unmarshal(body, &cb); err != nil {
		return board.CreateRequest{}, err
	}
	var req board.CreateRequest
	if cb.LeaderboardID != nil {
		if err := board.ValidateID("leaderboard_id", *cb.LeaderboardID); err != nil {
			return req, err
		}
		req.ID = *cb.LeaderboardID
	}
	if cb.Name == nil {
		return req, board.Invalid("name is required")
	}
	req.Name = *cb.Name
	if cb.Type != nil {
		req.Type = *cb.Type
	}
	if cb.SortOrder != nil {
		switch *cb.SortOrder {
		case "desc":
			req.Order = store.Descending
		case "asc":
			req.Order = store.Ascending
		default:
			return req, board.Invalid(`sort_order must be "desc" or "asc"`)
		}
	}
	if cb.UpdatePolicy != nil {
		switch *cb.UpdatePolicy {
		case "set":
			req.Policy = store.PolicySet
		case "best":
			req.Policy = store.PolicyBest
		default:
			return req, board.Invalid(`update_policy must be "set" or "best"`)
		}
	}
	var err error
	if req.StartsAt, err = parseTime("starts_at", cb.StartsAt); err != nil {
		return req, err
	}
	if req.EndsAt, err = parseTime("ends_at", cb.EndsAt); err != nil {
		return req, err
	}
	if !isNull(cb.MaxScore) {
		v, err := parseUint("max_score", cb.MaxScore, store.MaxScore)
		if err != nil {
			return req, err
		}
		req.MaxScore = &v
	}
	if !isNull(cb.Config) {
		if cb.Config[0] != '{' {
			return req, board.Invalid("config must be a JSON object")
		}
		req.Config = cb.Config
	}
	return req, nil
}

type patchBody struct {
	Status *string         `json:"status"`
	Name   *string         `json:"name"`
	EndsAt json.RawMessage `json:"ends_at"`
}

func decodePatch(body []byte) (board.Patch, error) {
	var pb patchBody
	if err := unmarshal(body, &pb); err != nil {
		return board.Patch{}, err
	}
	var p board.Patch
	if pb.Status != nil {
		st := board.Status(*pb.Status)
		p.Status = &st
	}
	p.Name = pb.Name
	if pb.EndsAt != nil {
		var s *string
		if err := json.Unmarshal(pb.EndsAt, &s); err != nil || s == nil {
			return p, board.Invalid("ends_at must be an RFC 3339 time; it cannot be removed")
		}
		t, err := parseTime("ends_at", s)
		if err != nil {
			return p, err
		}
		p.EndsAt = &t
	}
	return p, nil
}
