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
	_, cancel, done := start(t, cfg)
	err := startRefused(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "in use by another") || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("second server on %s: %v", cfg.DataDir, err)
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

// TestSecondServerOnTheSamePostgresIsRefused: the same with history in one
// PostgreSQL schema (and rankings in each process's memory).
func TestSecondServerOnTheSamePostgresIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.DataDir, cfg.PostgresURL = "", sharedPostgres(t)
	_, cancel, done := start(t, cfg)
	err := startRefused(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "in use by another") {
		t.Fatalf("second server on one PostgreSQL schema: %v", err)
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
