package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/server"
)

// TestConnectionCapFallsBackAndClimbs: with --max-connections 1 taken,
// a second watcher's upgrade gets 503; it must fall back to SSE, follow the
// board there, and climb back to WebSocket once a connection is free.
func TestConnectionCapFallsBackAndClimbs(t *testing.T) {
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
	second := client.New(base, client.WithBackoff(5*time.Millisecond, 50*time.Millisecond), client.WithWebSocketRetry(500*time.Millisecond)).WatchTop(ctx, "cap", 5)
	defer second.Close()
	if _, err := second.WaitFor(ctx, func(s client.State) bool { return s.Ready && s.Transport == client.TransportSSE }); err != nil {
		t.Fatalf("second watcher: %v %+v", err, second.State())
	}
	if _, err := admin.SubmitScore(ctx, "cap", client.Score{ParticipantID: "b", Score: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := second.WaitFor(ctx, func(s client.State) bool { return len(s.Entries) == 2 }); err != nil {
		t.Fatalf("second watcher on SSE: %v %+v", err, second.State())
	}
	first.Close()
	if _, err := second.WaitFor(ctx, func(s client.State) bool { return s.Transport == client.TransportWebSocket }); err != nil {
		t.Fatalf("second watcher did not climb back: %v %+v", err, second.State())
	}
	if _, err := admin.SubmitScore(ctx, "cap", client.Score{ParticipantID: "c", Score: 3}); err != nil {
		t.Fatal(err)
	}
	if s, err := second.WaitFor(ctx, func(s client.State) bool { return len(s.Entries) == 3 && !s.Resyncing }); err != nil {
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
