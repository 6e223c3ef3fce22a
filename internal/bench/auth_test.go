package bench

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/server"
)

// TestSecretAgainstAuthServer: with --secret the load tool mints an admin
// token and runs against a server with authentication on (and its default
// per-IP limits, which the token is exempt from); without it every
// submission is refused 401.
func TestSecretAgainstAuthServer(t *testing.T) {
	const secret = "bench-test-secret-0123456789abcdef"
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.SubmitRate, cfg.DataDir = "127.0.0.1:0", 0, t.TempDir()
	cfg.Auth, cfg.AuthSecret = "on", secret
	cfg.IPRate, cfg.IPBurst = 50, 50 // far below the run's rate: only the token's exemption lets it through
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, slog.New(slog.DiscardHandler), func(a string) { addrc <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + <-addrc

	args := []string{"--url", url, "--secret", secret, "--duration", "500ms", "--warmup", "0s", "--connections", "2", "--participants", "100"}
	var stderr bytes.Buffer
	o, code, ok := parseArgs(ModeSubmit, args, &stderr)
	if !ok {
		t.Fatalf("parseArgs: %d %s", code, stderr.String())
	}
	if c, err := auth.Parse([]byte(secret), o.cfg.Token); err != nil || c.Role != auth.Admin {
		t.Fatalf("minted %+v %v", c, err)
	}
	rep, err := Run(context.Background(), o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests < 60 || rep.ErrorsTotal != 0 {
		t.Fatalf("with --secret: %d requests, errors %v", rep.Requests, rep.Errors)
	}

	o.cfg.Token, o.cfg.Create = "", false
	o.cfg.Duration = 200 * time.Millisecond
	rep, err = Run(context.Background(), o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Errors["http_401"] == 0 {
		t.Fatalf("without a token: %d requests, errors %v", rep.Requests, rep.Errors)
	}
	if _, code, ok := parseArgs(ModeSubmit, []string{"--secret", "short"}, &stderr); ok || code != 2 {
		t.Fatalf("a short --secret: ok %v code %d", ok, code)
	}
}
