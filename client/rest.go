package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// CreateLeaderboard creates a leaderboard (POST /v1/leaderboards). An id in
// use gives an *APIError with code "already_exists".
func (c *Client) CreateLeaderboard(ctx context.Context, req CreateLeaderboardRequest) (Leaderboard, error) {
	var lb Leaderboard
	err := c.do(ctx, http.MethodPost, c.path("v1", "leaderboards"), req, &lb)
	return lb, err
}

// GetLeaderboard returns one leaderboard (GET /v1/leaderboards/{id}).
func (c *Client) GetLeaderboard(ctx context.Context, board string) (Leaderboard, error) {
	var lb Leaderboard
	err := c.do(ctx, http.MethodGet, c.path("v1", "leaderboards", board), nil, &lb)
	return lb, err
}

// ListLeaderboards returns a page of leaderboards (GET /v1/leaderboards).
func (c *Client) ListLeaderboards(ctx context.Context, opts ListOptions) ([]Leaderboard, error) {
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", opts.Status)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Offset > 0 {
		q.Set("offset", strconv.Itoa(opts.Offset))
	}
	u := c.path("v1", "leaderboards")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var out struct {
		Leaderboards []Leaderboard `json:"leaderboards"`
	}
	err := c.do(ctx, http.MethodGet, u, nil, &out)
	return out.Leaderboards, err
}

// UpdateLeaderboard pauses, resumes, renames or moves the end of a
// leaderboard (PATCH /v1/leaderboards/{id}).
func (c *Client) UpdateLeaderboard(ctx context.Context, board string, req UpdateLeaderboardRequest) (Leaderboard, error) {
	var lb Leaderboard
	err := c.do(ctx, http.MethodPatch, c.path("v1", "leaderboards", board), req, &lb)
	return lb, err
}

// Finalize completes a leaderboard, persisting its final rankings
// (POST /v1/leaderboards/{id}/finalize). It is idempotent.
func (c *Client) Finalize(ctx context.Context, board string) (Leaderboard, error) {
	var lb Leaderboard
	err := c.do(ctx, http.MethodPost, c.path("v1", "leaderboards", board, "finalize"), nil, &lb)
	return lb, err
}

// RemoveParticipant removes a participant from a leaderboard
// (DELETE /v1/leaderboards/{id}/participants/{pid}).
func (c *Client) RemoveParticipant(ctx context.Context, board, participant string) error {
	return c.do(ctx, http.MethodDelete, c.path("v1", "leaderboards", board, "participants", participant), nil, nil)
}

// SubmitScore submits one score (POST /v1/leaderboards/{id}/scores).
func (c *Client) SubmitScore(ctx context.Context, board string, s Score) (ScoreResult, error) {
	var r ScoreResult
	err := c.do(ctx, http.MethodPost, c.path("v1", "leaderboards", board, "scores"), s, &r)
	return r, err
}

// SubmitScores submits up to 1000 scores in one request
// (POST /v1/leaderboards/{id}/scores:batch). Errors of the whole request (the
// leaderboard is unknown or not active, the batch is malformed) are returned
// as the error; errors of single items come back in place, in the item's
// BatchResult.Err.
func (c *Client) SubmitScores(ctx context.Context, board string, scores []Score) ([]BatchResult, error) {
	in := struct {
		Scores []Score `json:"scores"`
	}{Scores: scores}
	if in.Scores == nil {
		in.Scores = []Score{}
	}
	var out struct {
		Results []BatchResult `json:"results"`
	}
	err := c.do(ctx, http.MethodPost, c.path("v1", "leaderboards", board, "scores:batch"), in, &out)
	return out.Results, err
}

// Rankings returns limit entries from rank offset+1 on
// (GET /v1/leaderboards/{id}/rankings?offset=&limit=). A limit of 0 uses the
// server's default (100).
func (c *Client) Rankings(ctx context.Context, board string, offset, limit int) (RankingPage, error) {
	q := url.Values{}
	q.Set("offset", strconv.Itoa(offset))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p RankingPage
	err := c.do(ctx, http.MethodGet, c.path("v1", "leaderboards", board, "rankings")+"?"+q.Encode(), nil, &p)
	return p, err
}

// Around returns up to limit entries with the participant in the middle,
// clipped at the ends of the board (GET .../rankings?around={pid}&limit=). A
// limit of 0 uses the server's default.
func (c *Client) Around(ctx context.Context, board, participant string, limit int) (RankingPage, error) {
	q := url.Values{}
	q.Set("around", participant)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p RankingPage
	err := c.do(ctx, http.MethodGet, c.path("v1", "leaderboards", board, "rankings")+"?"+q.Encode(), nil, &p)
	return p, err
}

// Participant returns a participant's rank and score with up to neighbors
// entries directly above and below
// (GET /v1/leaderboards/{id}/participants/{pid}?neighbors=). A negative
// neighbors uses the server's default (2).
func (c *Client) Participant(ctx context.Context, board, participant string, neighbors int) (ParticipantRanking, error) {
	u := c.path("v1", "leaderboards", board, "participants", participant)
	if neighbors >= 0 {
		u += "?neighbors=" + strconv.Itoa(neighbors)
	}
	var p ParticipantRanking
	err := c.do(ctx, http.MethodGet, u, nil, &p)
	return p, err
}
