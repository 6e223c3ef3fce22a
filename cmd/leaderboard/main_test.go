package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/auth"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "leaderboard ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no command: %d", code)
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
	if code := run([]string{"serve", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Fatalf("bad serve flag: %d", code)
	}
	t.Setenv("LEADERBOARD_SUBMIT_RATE", "lots")
	errb.Reset()
	if code := run([]string{"serve"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "LEADERBOARD_SUBMIT_RATE") {
		t.Fatalf("bad env value: %d %q", code, errb.String())
	}
	if code := run([]string{"bench", "nomode"}, &out, &errb); code != 2 {
		t.Fatalf("bad bench mode: %d", code)
	}
	os.Unsetenv("LEADERBOARD_SUBMIT_RATE")
	// Values that used to mean something other than they read (a format
	// taken as text, a 0 taken as the default) are usage errors naming the
	// flag; nothing is started.
	for _, args := range [][]string{
		{"--log-format", "JSON"}, {"--max-connections", "0"}, {"--send-queue", "-1"}, {"--ping-interval", "0s"},
		{"--history-retention", "50s"}, {"--ip-rate", "-5"},
	} {
		errb.Reset()
		if code := run(append([]string{"serve", "--data-dir", ""}, args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), args[0]) {
			t.Fatalf("serve %q: exit %d, stderr %q; want 2 naming the flag", args, code, errb.String())
		}
	}
}

// TestValuesTheServerCannotTakeAreUsageErrors: a 0 that the server would take
// as its default, as 1 or as "no timeout", and access, TLS and tier flags
// whose values need nothing opened to be refused, are usage errors (exit 2,
// the flag named) before anything opens. The data directory's parent is a
// file, so that a value let through fails the start (exit 1) at the first
// thing it opens instead of serving.
func TestValuesTheServerCannotTakeAreUsageErrors(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(blocker, "data")
	for _, args := range [][]string{
		{"--max-body-bytes", "0"}, {"--max-batch-body-bytes", "0"}, {"--submit-burst", "0"}, {"--ip-burst", "0"},
		{"--upgrade-burst", "0"}, {"--ws-message-burst", "0"}, {"--demo-participants", "0"}, {"--ip-burst", "-3"},
		{"--read-header-timeout", "0s"}, {"--read-timeout", "0s"}, {"--write-timeout", "0s"}, {"--idle-timeout", "0s"},
		{"--shutdown-timeout", "0s"}, {"--auth", "maybe"}, {"--auth-secret", "short"},
		{"--cors-origins", "game.example"}, {"--trusted-proxies", "lb.internal"}, {"--tls-cert", "cert.pem"},
		{"--history-retention", "720h"}, // SQLite: nothing would ever be dropped
		{"--kafka-brokers", "127.0.0.1:9092"}, {"--roles", "api,cache", "--kafka-brokers", "127.0.0.1:9092", "--redis-url", "redis://127.0.0.1:1"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir}, args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("serve %q: exit %d, stderr %q; want 2 naming the flag", args, code, errb.String())
		}
	}
}

// TestTokenCommand: `leaderboard token` mints tokens the server accepts, from
// --secret, LEADERBOARD_AUTH_SECRET or the data directory's secret file.
func TestTokenCommand(t *testing.T) {
	secret := "cmd-test-secret-0123456789abcdef-xyz"
	mint := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"token"}, args...), &out, &errb)
		return code, strings.TrimSpace(out.String()), errb.String()
	}
	code, tok, errs := mint("--secret", secret, "--role", "participant", "--sub", "p456", "--ttl", "2h")
	if code != 0 {
		t.Fatalf("token: %d %s", code, errs)
	}
	c, err := auth.Parse([]byte(secret), tok)
	if err != nil || c.Role != auth.Participant || c.Subject != "p456" || time.Until(c.ExpiresAt) < 119*time.Minute || time.Until(c.ExpiresAt) > 2*time.Hour {
		t.Fatalf("minted %+v %v", c, err)
	}
	// The secret from the environment, and from a server's data directory.
	t.Setenv("LEADERBOARD_AUTH_SECRET", secret)
	if code, tok, errs = mint("--role", "admin"); code != 0 {
		t.Fatalf("token from the environment: %d %s", code, errs)
	}
	if c, err := auth.Parse([]byte(secret), tok); err != nil || c.Role != auth.Admin {
		t.Fatalf("minted %+v %v", c, err)
	}
	t.Setenv("LEADERBOARD_AUTH_SECRET", "")
	os.Unsetenv("LEADERBOARD_AUTH_SECRET")
	dir := t.TempDir()
	fileSecret, _, err := auth.LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if code, tok, errs = mint("--data-dir", dir, "--role", "server", "--sub", "gs-1"); code != 0 {
		t.Fatalf("token from the data dir: %d %s", code, errs)
	}
	if c, err := auth.Parse(fileSecret, tok); err != nil || c.Role != auth.Server || c.Subject != "gs-1" {
		t.Fatalf("minted %+v %v", c, err)
	}
	// Mistakes.
	for _, args := range [][]string{
		{"--secret", secret},                          // no role
		{"--secret", secret, "--role", "root"},        // unknown role
		{"--secret", secret, "--role", "participant"}, // no sub
		{"--secret", secret, "--role", "admin", "--ttl", "0s"},
		{"--secret", "short", "--role", "admin"},
	} {
		if code, _, errs := mint(args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d %q, want 2 with a message", args, code, errs)
		}
	}
	if code, _, errs := mint("--data-dir", t.TempDir(), "--role", "admin"); code != 1 || !strings.Contains(errs, "auth-secret") {
		t.Errorf("no secret anywhere: %d %q", code, errs)
	}
}
