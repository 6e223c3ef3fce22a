package server

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/flagenv"
)

// TestPageFlagsFromEnvironment: the page and demo flags have their defaults
// and, like every flag, come from LEADERBOARD_<FLAG> too.
func TestPageFlagsFromEnvironment(t *testing.T) {
	d := DefaultConfig()
	if !d.WebSocket || d.Demo || d.DemoRate != 50 || d.DemoParticipants != 3000 {
		t.Fatalf("defaults: websocket %v demo %v rate %v participants %d", d.WebSocket, d.Demo, d.DemoRate, d.DemoParticipants)
	}
	env := map[string]string{"LEADERBOARD_WEBSOCKET": "false", "LEADERBOARD_DEMO": "true", "LEADERBOARD_DEMO_RATE": "7.5"}
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.Flags(fs)
	if err := flagenv.Parse(fs, "LEADERBOARD", []string{"--demo-participants", "99"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.WebSocket || !c.Demo || c.DemoRate != 7.5 || c.DemoParticipants != 99 {
		t.Fatalf("parsed: %+v", c)
	}
}

// TestWebSocketDisabled: with --websocket=false the WebSocket route answers
// 503 unavailable (so clients fall back) while SSE still streams.
func TestWebSocketDisabled(t *testing.T) {
	cfg := testConfig(t)
	cfg.WebSocket = false
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	res, err := http.Post(base+"/v1/leaderboards", "application/json", strings.NewReader(`{"leaderboard_id":"w","name":"w"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()

	req, _ := http.NewRequest("GET", base+"/v1/leaderboards/w/subscribe", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&e)
	res.Body.Close()
	if res.StatusCode != 503 || e.Error.Code != "unavailable" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("WebSocket upgrade with --websocket=false: %d %q Retry-After %q", res.StatusCode, e.Error.Code, res.Header.Get("Retry-After"))
	}

	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/v1/leaderboards/w/stream?kind=top&limit=10", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, _ := io.ReadAtLeast(res.Body, buf, 16)
	stop()
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(buf[:n]), "event: snapshot") {
		t.Fatalf("SSE with --websocket=false: %d %q", res.StatusCode, buf[:n])
	}
}

// TestDemo: with --demo the tournament exists before the server answers,
// the bots move it, the page opens on it, and shutdown stops them.
func TestDemo(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo, cfg.DemoRate, cfg.DemoParticipants = true, 200, 300
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	version := func() (uint64, int64) {
		res, err := http.Get(base + "/v1/leaderboards/demo-cup")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var lb struct {
			Version uint64 `json:"version"`
			Total   int64  `json:"total_participants"`
		}
		if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&lb) != nil {
			t.Fatalf("GET demo-cup: %d", res.StatusCode)
		}
		return lb.Version, lb.Total
	}
	v1, total := version()
	if total != 300 {
		t.Fatalf("demo-cup has %d participants, want 300", total)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v2, _ := version(); v2 > v1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo bots did not submit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `<meta name="lb-default-board" content="demo-cup">`) {
		t.Fatalf("the page does not open on the demo:\n%s", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the demo's shutdown")
	}
}
