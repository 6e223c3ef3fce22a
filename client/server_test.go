package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/server"
)

// These tests run the client against the real service, through a TCP proxy
// that can cut every connection at once (a forced disconnect mid-stream).

func startRealServer(t *testing.T) string {
	t.Helper()
	return startReal(t, func(c *server.Config) { c.DataDir = t.TempDir() }).addr // the auth tests are in internal/server
}

// TestWatchersAgainstRealServer: watchers of every kind on every transport
// follow concurrent random submissions, survive two forced disconnects
// mid-stream, and end with exactly the window the REST API returns, with no
// broken chain along the way (a broken chain would show as a resync).
func TestWatchersAgainstRealServer(t *testing.T) {
	addr := startRealServer(t)
	proxy := newSwitchProxy(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := client.New("http://" + addr)
	if _, err := admin.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "cw", Name: "cw"}); err != nil {
		t.Fatal(err)
	}
	var seed []client.Score
	for i := 0; i < 30; i++ {
		seed = append(seed, client.Score{ParticipantID: fmt.Sprint("p", i), Score: uint64(i * 10)})
	}
	if _, err := admin.SubmitScores(ctx, "cw", seed); err != nil {
		t.Fatal(err)
	}
	viewer := client.New(proxy.url(), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond))
	type watched struct {
		name string
		w    *client.Watcher
		rest func() ([]client.Entry, *client.Entry)
	}
	var all []watched
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		opt := client.WithTransport(transport)
		top := viewer.WatchTop(ctx, "cw", 10, opt)
		part := viewer.WatchParticipant(ctx, "cw", "p5", opt)
		around := viewer.WatchAround(ctx, "cw", "p12", 2, opt)
		all = append(all,
			watched{transport + "/top", top, func() ([]client.Entry, *client.Entry) {
				p, err := admin.Rankings(ctx, "cw", 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				return p.Entries, nil
			}},
			watched{transport + "/participant", part, func() ([]client.Entry, *client.Entry) {
				p, err := admin.Participant(ctx, "cw", "p5", 0)
				if err != nil {
					return nil, nil
				}
				return nil, &client.Entry{Rank: p.Rank, ParticipantID: p.ParticipantID, Score: p.Score, AchievedAt: p.AchievedAt}
			}},
			watched{transport + "/around", around, func() ([]client.Entry, *client.Entry) {
				p, err := admin.Around(ctx, "cw", "p12", 5)
				if err != nil {
					return nil, nil
				}
				return p.Entries, nil
			}},
		)
	}
	for _, w := range all {
		if _, err := w.w.WaitFor(ctx, func(s client.State) bool { return s.Ready }); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		defer w.w.Close()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 3; round++ {
		var batch []client.Score
		for i := 0; i < 40; i++ {
			batch = append(batch, client.Score{ParticipantID: fmt.Sprint("p", rng.IntN(40)), Score: uint64(rng.IntN(50) * 10)})
		}
		for _, s := range batch {
			if _, err := admin.SubmitScore(ctx, "cw", s); err != nil {
				t.Fatal(err)
			}
		}
		if round < 2 {
			time.Sleep(50 * time.Millisecond)
			proxy.cut() // every viewer connection drops mid-stream
		}
	}
	for _, w := range all {
		wantList, wantPart := w.rest()
		_, err := w.w.WaitFor(ctx, func(s client.State) bool {
			if !s.Ready || s.Resyncing {
				return false
			}
			if strings.HasSuffix(w.name, "/participant") {
				if s.Participant == nil || wantPart == nil {
					return s.Participant == nil && wantPart == nil
				}
				return s.Participant.Rank == wantPart.Rank && s.Participant.Score == wantPart.Score && s.Participant.ParticipantID == wantPart.ParticipantID
			}
			if len(s.Entries) != len(wantList) {
				return false
			}
			for i := range wantList {
				if s.Entries[i] != wantList[i] {
					return false
				}
			}
			return true
		})
		if err != nil {
			st := w.w.State()
			t.Fatalf("%s did not converge: %v\nstate %+v\nwant %v %v", w.name, err, st, wantList, wantPart)
		}
		if tr := w.w.Transport(); !strings.HasPrefix(w.name, tr+"/") {
			t.Fatalf("%s ended on transport %s", w.name, tr)
		}
	}
	// The reconnections resumed from their versions instead of starting over.
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var catchUps float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "leaderboard_live_catchups_total ") {
			fmt.Sscan(strings.TrimPrefix(line, "leaderboard_live_catchups_total "), &catchUps)
		}
	}
	if catchUps < 6 {
		t.Fatalf("%v resumes served by catch-up updates after two cuts of 6 streaming watchers, want at least 6", catchUps)
	}
}

// TestTokenAgainstRealServer: WithToken authenticates REST calls and every
// live transport against a server with --auth on and --auth-reads.
func TestTokenAgainstRealServer(t *testing.T) {
	secret := "client-test-secret-0123456789abcdef"
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.SubmitRate, cfg.FlushInterval = "127.0.0.1:0", 0, 20*time.Millisecond
	cfg.Auth, cfg.AuthSecret, cfg.AuthReads, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "on", secret, true, t.TempDir(), 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + <-addrc
	mint := func(role auth.Role, sub string) string {
		tok, err := auth.Mint([]byte(secret), role, sub, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var apiErr *client.APIError
	if _, err := client.New(base).CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "tk", Name: "tk"}); !errors.As(err, &apiErr) || apiErr.Code != "unauthenticated" {
		t.Fatalf("without a token: %v", err)
	}
	admin := client.New(base, client.WithToken(mint(auth.Admin, "")))
	if _, err := admin.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "tk", Name: "tk"}); err != nil {
		t.Fatal(err)
	}
	p1 := client.New(base, client.WithToken(mint(auth.Participant, "p1")))
	if _, err := p1.SubmitScore(ctx, "tk", client.Score{ParticipantID: "p2", Score: 5}); !errors.As(err, &apiErr) || apiErr.Code != "permission_denied" {
		t.Fatalf("a participant submitting for another: %v", err)
	}
	if _, err := p1.SubmitScore(ctx, "tk", client.Score{ParticipantID: "p1", Score: 5}); err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		w := p1.WatchTop(ctx, "tk", 10, client.WithTransport(transport))
		s, err := w.WaitFor(ctx, func(s client.State) bool { return s.Ready && len(s.Entries) == 1 })
		w.Close()
		if err != nil || s.Entries[0].ParticipantID != "p1" {
			t.Fatalf("%s watcher with a token: %v %+v", transport, err, s)
		}
	}
}
