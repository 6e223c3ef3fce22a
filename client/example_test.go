package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lbhq/leaderboard/client"
)

// A stand-in for the service's score route, so that the examples run under
// go test.
func scoreServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s client.Score
		_ = json.NewDecoder(r.Body).Decode(&s)
		w.Header().Set("Content-Type", "application/json")
		if s.Score > 1_000_000 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"invalid_argument","message":"score must not exceed max_score 1000000"}}`)
			return
		}
		fmt.Fprintf(w, `{"leaderboard_id":"cup","participant_id":%q,"score":%d,"previous_score":null,"rank":1,
			"previous_rank":null,"updated":true,"version":1,"achieved_at":1732600000000}`, s.ParticipantID, s.Score)
	}))
}

func ExampleClient_SubmitScore() {
	srv := scoreServer()
	defer srv.Close()
	c := client.New(srv.URL, client.WithToken("a-game-server-token"))

	res, err := c.SubmitScore(context.Background(), "cup", client.Score{ParticipantID: "alice", Score: 15000})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s is #%d with %d (updated: %v)\n", res.ParticipantID, res.Rank, res.Score, res.Updated)
	// Output: alice is #1 with 15000 (updated: true)
}

func ExampleAPIError() {
	srv := scoreServer()
	defer srv.Close()
	c := client.New(srv.URL)

	_, err := c.SubmitScore(context.Background(), "cup", client.Score{ParticipantID: "mallory", Score: 99_999_999})
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	// Output: 400 invalid_argument
}

func ExampleClient_WatchTop() {
	// newFake is an in-process stand-in for the service, from this package's
	// tests; point New at the real service instead.
	f := newFake("cup")
	defer f.Close()
	f.Set("alice", 300)
	f.Set("bob", 200)
	f.Set("carol", 100)

	c := client.New(f.URL())
	w := c.WatchTop(context.Background(), "cup", 2)
	defer w.Close()

	// Each value on Changes means "the state changed"; values coalesce, so
	// read the latest state rather than counting them.
	shown := false
	for range w.Changes() {
		s := w.State()
		if !s.Ready {
			continue
		}
		if !shown {
			fmt.Println("over", s.Transport)
			for _, e := range s.Entries {
				fmt.Println(e.Rank, e.ParticipantID, e.Score)
			}
			shown = true
			f.Set("carol", 400) // carol takes the lead
		}
		if s.Entries[0].ParticipantID == "carol" {
			for _, e := range s.Entries {
				fmt.Println(e.Rank, e.ParticipantID, e.Score)
			}
			break
		}
	}
	// Output:
	// over websocket
	// 1 alice 300
	// 2 bob 200
	// 1 carol 400
	// 2 alice 300
}

func ExampleWatcher_WaitFor() {
	f := newFake("cup")
	defer f.Close()
	f.Set("alice", 300)
	f.Set("bob", 200)

	c := client.New(f.URL())
	w := c.WatchParticipant(context.Background(), "cup", "bob")
	defer w.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.WaitFor(ctx, func(s client.State) bool { return s.Ready })
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob is #%d\n", s.Participant.Rank)

	f.Set("bob", 500)
	s, err = w.WaitFor(ctx, func(s client.State) bool { return s.Participant != nil && s.Participant.Rank == 1 })
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob is #%d (was #%d)\n", s.Participant.Rank, *s.Participant.PreviousRank)
	// Output:
	// bob is #2
	// bob is #1 (was #2)
}
