package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
)

// call is what the REST test server saw.
type call struct {
	method, path, query, auth, contentType string
	body                                   map[string]any
}

// restServer answers every request with status and body, recording it.
func restServer(t *testing.T, status int, header http.Header, body string) (*client.Client, *call) {
	t.Helper()
	seen := &call{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = call{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery,
			auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &seen.body); err != nil {
				t.Errorf("request body %q: %v", b, err)
			}
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", client.WithToken("secret")), seen
}

const leaderboardJSON = `{"leaderboard_id":"cup","name":"Cup","type":"tournament","status":"active","sort_order":"desc",
"update_policy":"best","starts_at":null,"ends_at":"2026-11-27T12:00:00.000Z","created_at":"2026-11-26T12:00:00.000Z",
"max_score":9007199254740991,"config":{"k":1},"version":42,"epoch":"e1","total_participants":7}`

func wantCall(t *testing.T, got *call, method, path, query string, body map[string]any) {
	t.Helper()
	if got.method != method || got.path != path || got.query != query {
		t.Fatalf("request %s %s?%s, want %s %s?%s", got.method, got.path, got.query, method, path, query)
	}
	if got.auth != "Bearer secret" {
		t.Fatalf("Authorization %q", got.auth)
	}
	if body != nil && (got.contentType != "application/json" || !reflect.DeepEqual(got.body, body)) {
		t.Fatalf("body %v (%s), want %v", got.body, got.contentType, body)
	}
}

func TestLeaderboardCalls(t *testing.T) {
	ctx := context.Background()
	end := "2026-11-27T12:00:00.000Z"
	max := uint64(9007199254740991)
	want := client.Leaderboard{
		LeaderboardID: "cup", Name: "Cup", Type: "tournament", Status: "active", SortOrder: "desc", UpdatePolicy: "best",
		EndsAt: &end, CreatedAt: "2026-11-26T12:00:00.000Z", MaxScore: &max, Config: json.RawMessage(`{"k":1}`),
		Version: 42, Epoch: "e1", TotalParticipants: 7,
	}

	c, seen := restServer(t, 201, nil, leaderboardJSON)
	lb, err := c.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{
		LeaderboardID: "cup", Name: "Cup", Type: "tournament", UpdatePolicy: "best", EndsAt: end, MaxScore: &max,
	})
	if err != nil || !reflect.DeepEqual(lb, want) {
		t.Fatalf("CreateLeaderboard = %+v, %v", lb, err)
	}
	wantCall(t, seen, "POST", "/v1/leaderboards", "", map[string]any{
		"leaderboard_id": "cup", "name": "Cup", "type": "tournament", "update_policy": "best", "ends_at": end, "max_score": 9007199254740991.0,
	})

	c, seen = restServer(t, 200, nil, leaderboardJSON)
	if lb, err := c.GetLeaderboard(ctx, "cup"); err != nil || !reflect.DeepEqual(lb, want) {
		t.Fatalf("GetLeaderboard = %+v, %v", lb, err)
	}
	wantCall(t, seen, "GET", "/v1/leaderboards/cup", "", nil)

	if _, err := c.UpdateLeaderboard(ctx, "cup", client.UpdateLeaderboardRequest{Status: "paused"}); err != nil {
		t.Fatal(err)
	}
	wantCall(t, seen, "PATCH", "/v1/leaderboards/cup", "", map[string]any{"status": "paused"})

	if _, err := c.Finalize(ctx, "cup"); err != nil {
		t.Fatal(err)
	}
	wantCall(t, seen, "POST", "/v1/leaderboards/cup/finalize", "", nil)

	c, seen = restServer(t, 200, nil, `{"leaderboards":[`+leaderboardJSON+`]}`)
	lbs, err := c.ListLeaderboards(ctx, client.ListOptions{Status: "active", Limit: 10, Offset: 20})
	if err != nil || len(lbs) != 1 || !reflect.DeepEqual(lbs[0], want) {
		t.Fatalf("ListLeaderboards = %+v, %v", lbs, err)
	}
	wantCall(t, seen, "GET", "/v1/leaderboards", "limit=10&offset=20&status=active", nil)

	c, seen = restServer(t, 204, nil, "")
	if err := c.RemoveParticipant(ctx, "cup", "p:1"); err != nil {
		t.Fatal(err)
	}
	wantCall(t, seen, "DELETE", "/v1/leaderboards/cup/participants/p:1", "", nil)
}

func TestScoreCalls(t *testing.T) {
	ctx := context.Background()
	c, seen := restServer(t, 200, nil, `{"leaderboard_id":"cup","participant_id":"p1","score":9007199254740991,
"previous_score":null,"rank":1,"previous_rank":null,"updated":true,"version":3,"achieved_at":1732600000000}`)
	r, err := c.SubmitScore(ctx, "cup", client.Score{ParticipantID: "p1", Score: 9007199254740991, Timestamp: 1732600000000})
	want := client.ScoreResult{LeaderboardID: "cup", ParticipantID: "p1", Score: 9007199254740991, Rank: 1, Updated: true,
		Version: 3, AchievedAt: 1732600000000}
	if err != nil || !reflect.DeepEqual(r, want) {
		t.Fatalf("SubmitScore = %+v, %v", r, err)
	}
	wantCall(t, seen, "POST", "/v1/leaderboards/cup/scores", "", map[string]any{
		"participant_id": "p1", "score": 9007199254740991.0, "timestamp": 1732600000000.0,
	})

	c, seen = restServer(t, 200, nil, `{"results":[
{"leaderboard_id":"cup","participant_id":"p1","score":10,"previous_score":20,"rank":2,"previous_rank":2,"updated":false,"version":3,"achieved_at":5},
{"error":{"code":"rate_limited","message":"slow down"}}]}`)
	res, err := c.SubmitScores(ctx, "cup", []client.Score{{ParticipantID: "p1", Score: 10}, {ParticipantID: "p2", Score: 1}})
	if err != nil || len(res) != 2 {
		t.Fatalf("SubmitScores = %+v, %v", res, err)
	}
	if r := res[0].Result; res[0].Err != nil || r == nil || *r.PreviousScore != 20 || *r.PreviousRank != 2 || r.Updated {
		t.Fatalf("item 0 = %+v", res[0])
	}
	if e := res[1].Err; res[1].Result != nil || e == nil || e.Code != "rate_limited" || e.Status != 429 || e.Message != "slow down" {
		t.Fatalf("item 1 = %+v", res[1])
	}
	wantCall(t, seen, "POST", "/v1/leaderboards/cup/scores:batch", "", map[string]any{"scores": []any{
		map[string]any{"participant_id": "p1", "score": 10.0}, map[string]any{"participant_id": "p2", "score": 1.0},
	}})
}

func TestRankingCalls(t *testing.T) {
	ctx := context.Background()
	page := `{"leaderboard_id":"cup","version":9,"epoch":"e1","total_participants":3,"entries":[
{"rank":2,"participant_id":"p2","score":20,"achieved_at":2,"display_name":"Two"},{"rank":3,"participant_id":"p3","score":10,"achieved_at":3}]}`
	want := client.RankingPage{LeaderboardID: "cup", Version: 9, Epoch: "e1", TotalParticipants: 3, Entries: []client.Entry{
		{Rank: 2, ParticipantID: "p2", Score: 20, AchievedAt: 2, DisplayName: "Two"}, {Rank: 3, ParticipantID: "p3", Score: 10, AchievedAt: 3},
	}}
	c, seen := restServer(t, 200, nil, page)
	if p, err := c.Rankings(ctx, "cup", 1, 2); err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("Rankings = %+v, %v", p, err)
	}
	wantCall(t, seen, "GET", "/v1/leaderboards/cup/rankings", "limit=2&offset=1", nil)
	if p, err := c.Around(ctx, "cup", "p2", 11); err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("Around = %+v, %v", p, err)
	}
	wantCall(t, seen, "GET", "/v1/leaderboards/cup/rankings", "around=p2&limit=11", nil)

	c, seen = restServer(t, 200, nil, `{"leaderboard_id":"cup","participant_id":"p2","rank":2,"score":20,"achieved_at":2,
"version":9,"epoch":"e1","total_participants":3,"neighbors":[{"rank":1,"participant_id":"p1","score":30,"achieved_at":1}]}`)
	p, err := c.Participant(ctx, "cup", "p2", 1)
	if err != nil || p.Rank != 2 || p.Epoch != "e1" || len(p.Neighbors) != 1 || p.Neighbors[0].ParticipantID != "p1" {
		t.Fatalf("Participant = %+v, %v", p, err)
	}
	wantCall(t, seen, "GET", "/v1/leaderboards/cup/participants/p2", "neighbors=1", nil)
}

func TestAPIError(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		status int
		header http.Header
		body   string
		want   client.APIError
	}{
		{404, nil, `{"error":{"code":"leaderboard_not_found","message":"no leaderboard \"x\""}}`,
			client.APIError{Status: 404, Code: "leaderboard_not_found", Message: `no leaderboard "x"`}},
		{429, http.Header{"Retry-After": {"3"}}, `{"error":{"code":"rate_limited","message":"slow down"}}`,
			client.APIError{Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 3 * time.Second}},
		{503, http.Header{"Retry-After": {"1"}}, `{"error":{"code":"unavailable","message":"draining"}}`,
			client.APIError{Status: 503, Code: "unavailable", Message: "draining", RetryAfter: time.Second}},
		{502, nil, `<html>bad gateway</html>`, client.APIError{Status: 502, Message: "<html>bad gateway</html>"}},
	}
	for _, tc := range cases {
		c, _ := restServer(t, tc.status, tc.header, tc.body)
		_, err := c.SubmitScore(ctx, "x", client.Score{ParticipantID: "p", Score: 1})
		var ae *client.APIError
		if !errors.As(err, &ae) || *ae != tc.want {
			t.Fatalf("status %d: error %#v, want %#v", tc.status, err, tc.want)
		}
		if ae.Error() == "" {
			t.Fatal("empty message")
		}
	}
}
