package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testConfig is the default configuration for tests that drive the server
// from one address without tokens: authentication and the per-IP limits off,
// any file in a temporary directory (never the source tree).
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.Auth, cfg.IPRate, cfg.UpgradeRate = "off", 0, 0
	return cfg
}

func start(t *testing.T, cfg Config) (string, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		return a, cancel, done
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	return "", cancel, done
}

// TestShutdownDrainsInFlightRequests: a request whose body is still arriving
// when shutdown starts is served to completion; new connections are refused
// once the listener is closed; Run returns nil.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	cfg := testConfig(t)
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	res, err := http.Post(base+"/v1/leaderboards", "application/json", strings.NewReader(`{"leaderboard_id":"d","name":"d"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()

	// Send the headers and half of a body by hand, then start the shutdown.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"participant_id":"p1","score":42}`
	fmt.Fprintf(conn, "POST /v1/leaderboards/d/scores HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	time.Sleep(100 * time.Millisecond) // let the server start reading the request
	cancel()
	// Shutdown is waiting for our request; new connections are refused soon.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprint(conn, body[10:])
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200") || !strings.Contains(string(raw), `"score":42`) {
		t.Fatalf("in-flight request not completed: %s", raw)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunFailsOnBadAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.Addr = "256.0.0.1:99999"
	err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run with a bad address: %v", err)
	}
}

// TestLifecycleSweepCompletesAtEndsAt: a leaderboard whose ends_at passes
// shows up as completed with the real clock and the background sweep running.
func TestLifecycleSweepCompletesAtEndsAt(t *testing.T) {
	cfg := testConfig(t)
	cfg.SweepInterval = 20 * time.Millisecond
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	ends := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	res, err := http.Post("http://"+addr+"/v1/leaderboards", "application/json",
		strings.NewReader(`{"leaderboard_id":"short","name":"s","ends_at":"`+ends+`"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/v1/leaderboards?status=completed")
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Leaderboards []map[string]any `json:"leaderboards"`
		}
		json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if len(out.Leaderboards) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("leaderboard never completed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
