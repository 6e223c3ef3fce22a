package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSSEStableConnectionResetsBackoff: an SSE stream that stayed up
// longer than stableAfter must report stable, so that run() resets the
// backoff count (WithBackoff: "The count restarts after a connection that
// stayed up at least max (or 1 s, if longer)"). WebSocket and long poll do.
func TestSSEStableConnectionResetsBackoff(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/leaderboards/b/rankings", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"leaderboard_id":"b","version":1,"epoch":"e1","total_participants":0,"entries":[]}`)
	})
	mux.HandleFunc("GET /v1/leaderboards/b/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "event: snapshot\nid: 1\ndata: {\"type\":\"snapshot\",\"id\":\"stream\",\"version\":1,\"epoch\":\"e1\",\"offset\":0,\"size\":0,\"entries\":[]}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(1200 * time.Millisecond) // stays up past stableAfter (1 s), then the server ends it
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := New(srv.URL, WithBackoff(10*time.Millisecond, 500*time.Millisecond))
	w := &Watcher{c: c, cfg: c.cfg, board: "b", sub: subParams{kind: KindTop, limit: 10},
		changes: make(chan struct{}, 1), gen: make(chan struct{}), st: liveState{entries: map[int64]Entry{}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res := w.runSSE(ctx)
	lived := time.Since(start)
	if !res.connected {
		t.Fatalf("stream did not connect: %+v", res)
	}
	if lived < w.cfg.stableAfter() {
		t.Fatalf("stream lived %v only", lived)
	}
	if !res.stable {
		t.Fatalf("SSE stream lived %v (>= stableAfter %v) but runSSE reported stable=false: the backoff count never restarts on SSE", lived, w.cfg.stableAfter())
	}
}
