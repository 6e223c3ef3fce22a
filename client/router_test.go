package client_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/server"
)

// startOnRedis runs a server over Redis (shared rankings and registry).
func startOnRedis(t *testing.T, url, prefix string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.SubmitRate, cfg.FlushInterval = "127.0.0.1:0", 0, 20*time.Millisecond
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", t.TempDir(), 0, 0
	cfg.RedisURL, cfg.RedisPrefix, cfg.RegistryTTL = url, prefix, 10*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addrc:
		return "http://" + a
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	return ""
}

func websockets(t *testing.T, base string) string {
	t.Helper()
	if v := metric(t, base, "leaderboard_live_websocket_connections"); v != "" {
		return v
	}
	return "?"
}

// metric returns the value of one unlabelled metric in base's /metrics ("" when absent).
func metric(t *testing.T, base, name string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestWatcherUsesTheRouter: with WithRouter, a watcher created against one
// server opens its WebSocket on the gateway the router names (the one
// already serving the leaderboard).
func TestWatcherUsesTheRouter(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t, "lbclient")
	a, b := startOnRedis(t, url, prefix), startOnRedis(t, url, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ca, cb := client.New(a), client.New(b, client.WithRouter())
	if _, err := ca.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "r", Name: "R"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SubmitScore(ctx, "r", client.Score{ParticipantID: "p", Score: 5}); err != nil {
		t.Fatal(err)
	}
	// A viewer on A makes A the gateway serving "r".
	res, err := http.Get(a + "/v1/leaderboards/r/stream?kind=top&limit=10")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	wantURL := strings.Replace(a, "http://", "ws://", 1) + "/v1/leaderboards/r/subscribe"
	for streak, deadline := 0, time.Now().Add(15*time.Second); streak < 20; {
		r, err := http.Get(b + "/v1/leaderboards/r/connect")
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ URL string }
		json.NewDecoder(r.Body).Decode(&out)
		r.Body.Close()
		if out.URL == wantURL {
			streak++
			continue
		}
		streak = 0
		if time.Now().After(deadline) {
			t.Fatal("the router never settled on the gateway serving the board")
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := cb.WatchTop(ctx, "r", 10, client.WithTransport(client.TransportWebSocket))
	defer w.Close()
	if _, err := w.WaitFor(ctx, func(s client.State) bool { return len(s.Entries) == 1 }); err != nil {
		t.Fatal(err)
	}
	if got := websockets(t, a); got != "1" {
		t.Fatalf("WebSockets on the routed gateway: %s, want 1 (on the other: %s)", got, websockets(t, b))
	}
	if got := websockets(t, b); got != "0" {
		t.Fatalf("WebSockets on the server the client was made for: %s, want 0", got)
	}
}
