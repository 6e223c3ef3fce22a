package client_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/server"
)

// TestConnectionCapWaitsForAPlace: with --max-connections 1 taken by a
// WebSocket, a second watcher is refused 503 on every transport (SSE streams
// and long polls count in the same cap); once the first closes, the second
// gets the place, climbs back to WebSocket and follows the board.
func TestConnectionCapWaitsForAPlace(t *testing.T) {
	rs := startReal(t, func(c *server.Config) { c.MaxConnections = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://" + rs.addr
	admin := client.New(base)
	if _, err := admin.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "cap", Name: "cap"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SubmitScore(ctx, "cap", client.Score{ParticipantID: "a", Score: 1}); err != nil {
		t.Fatal(err)
	}
	first := client.New(base).WatchTop(ctx, "cap", 5, client.WithTransport(client.TransportWebSocket))
	defer first.Close()
	if _, err := first.WaitFor(ctx, func(s client.State) bool { return s.Ready }); err != nil {
		t.Fatal(err)
	}
	second := client.New(base, client.WithBackoff(5*time.Millisecond, 50*time.Millisecond), client.WithWebSocketRetry(300*time.Millisecond)).WatchTop(ctx, "cap", 5)
	defer second.Close()
	// It goes down the ladder, refused on every transport.
	for rejected(t, base) < 6 {
		if ctx.Err() != nil {
			t.Fatalf("the second watcher was refused %v times", rejected(t, base))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := second.State(); s.Ready {
		t.Fatalf("second watcher got a window past the cap: %+v\nfirst %+v", s, first.State())
	}
	first.Close()
	if _, err := second.WaitFor(ctx, func(s client.State) bool { return s.Ready && s.Transport == client.TransportWebSocket }); err != nil {
		t.Fatalf("second watcher did not get the freed place on WebSocket: %v %+v", err, second.State())
	}
	if _, err := admin.SubmitScore(ctx, "cap", client.Score{ParticipantID: "b", Score: 2}); err != nil {
		t.Fatal(err)
	}
	if s, err := second.WaitFor(ctx, func(s client.State) bool { return len(s.Entries) == 2 && !s.Resyncing }); err != nil {
		t.Fatalf("second watcher on WebSocket: %v %+v", err, s)
	}
}

// TestForcedWebSocketUnauthenticatedEnds: on a server with
// --auth-reads, a watcher pinned to WebSocket without a token gets 401
// unauthenticated on every upgrade. The package documents that an
// unauthenticated answer ends the watcher (Err returns the *APIError); it
// retries forever instead.
func TestForcedWebSocketUnauthenticatedEnds(t *testing.T) {
	secret := "client-review-secret-0123456789abcdef"
	rs := startReal(t, func(c *server.Config) {
		c.Auth, c.AuthSecret, c.AuthReads = "on", secret, true
		c.DataDir = t.TempDir()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	viewer := client.New("http://"+rs.addr, client.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	for _, tr := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		w := viewer.WatchTop(ctx, "any", 5, client.WithTransport(tr))
		select {
		case <-w.Done():
			var e *client.APIError
			if !errors.As(w.Err(), &e) || e.Code != client.CodeUnauthenticated {
				t.Errorf("%s: ended with %v, want unauthenticated", tr, w.Err())
			}
		case <-time.After(3 * time.Second):
			t.Errorf("%s: watcher without a token still running after 3 s of 401 answers (err %v)", tr, w.Err())
		}
		w.Close()
	}
}

// rejected reads leaderboard_live_connections_rejected_total from base.
func rejected(t *testing.T, base string) float64 {
	t.Helper()
	v := metric(t, base, "leaderboard_live_connections_rejected_total")
	if v == "" {
		t.Fatal("no leaderboard_live_connections_rejected_total")
	}
	f, _ := strconv.ParseFloat(v, 64)
	return f
}
