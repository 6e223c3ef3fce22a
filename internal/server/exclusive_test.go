package server

import (
	"context"
	"strings"
	"testing"
)

// startRefused runs a server that must not start: it returns Run's error,
// or fails the test (after stopping it) when the server came up.
func startRefused(t *testing.T, cfg Config) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, discardLog(), func(string) { cancel() })
	}()
	err := <-done
	if ctx.Err() != nil {
		t.Fatalf("a second server started on the same history (and stopped with %v)", err)
	}
	return err
}

// TestSecondServerOnTheSameDataDirIsRefused: two servers keeping rankings in
// memory over one data directory would each hand out the same versions and
// write them into one audit log, where the second of each pair is dropped (a
// redelivery, to the log): acknowledged scores gone at the next start. The
// second server's start fails, naming the directory; once the first stopped,
// the directory can be used again.
func TestSecondServerOnTheSameDataDirIsRefused(t *testing.T) {
	cfg := testConfig(t)
	secondServerIsRefused(t, cfg, "in use by another", cfg.DataDir)
}

// TestSecondServerOnTheSamePostgresIsRefused: the same with history in one
// PostgreSQL schema (and rankings in each process's memory).
func TestSecondServerOnTheSamePostgresIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.DataDir, cfg.PostgresURL = "", sharedPostgres(t)
	secondServerIsRefused(t, cfg, "in use by another")
}

// secondServerIsRefused starts a server on cfg, checks that a second one on
// the same history fails with an error holding every want, and that a server
// starts again once the first stopped.
func secondServerIsRefused(t *testing.T, cfg Config, want ...string) {
	t.Helper()
	_, cancel, done := start(t, cfg)
	err := startRefused(t, cfg)
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("second server on the same history: %v, want an error naming %q", err, w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first server: %v", err)
	}
	_, cancel, done = start(t, cfg)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("a server after the first stopped: %v", err)
	}
}
