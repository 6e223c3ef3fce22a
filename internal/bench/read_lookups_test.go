package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReadLookupsSpreadOverTheBoard reproduces scripts/bench-http.sh's "read-participant" run
// (docs/BENCHMARKS.md: "Participant with 2 neighbours (random of 1M)"): the board already holds
// 1,000,000 participants p0..p999999 (seeded by an earlier run), and the measured run is
// `bench read --create=false --seed-participants 1 --top-ratio 0`. The lookups must be spread
// over the board's participants, not all ask for the one participant this run seeded.
func TestReadLookupsSpreadOverTheBoard(t *testing.T) {
	const boardSize = 1_000_000
	var (
		mu      sync.Mutex
		lookups = map[string]int{}
		total   int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/leaderboards/"), "/")
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/scores:batch"):
			_, _ = io.WriteString(w, `{"results":[{"leaderboard_id":"bench-0","participant_id":"p000000000000000","score":1,"rank":1,"updated":true,"version":1,"achieved_at":1}]}`)
		case r.Method == "GET" && len(parts) == 1:
			fmt.Fprintf(w, `{"leaderboard_id":%q,"name":"x","status":"active","sort_order":"desc","version":1,"total_participants":%d}`, parts[0], boardSize)
		case r.Method == "GET" && len(parts) == 3 && parts[1] == "participants":
			mu.Lock()
			lookups[parts[2]]++
			total++
			mu.Unlock()
			fmt.Fprintf(w, `{"leaderboard_id":%q,"participant_id":%q,"rank":1,"score":1,"achieved_at":1,"version":1,"total_participants":%d,"neighbors":[]}`, parts[0], parts[2], boardSize)
		default:
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no route"}}`)
		}
	}))
	t.Cleanup(srv.Close)

	cfg := testConfig(ModeRead, srv.URL)
	cfg.Create = false
	cfg.SeedParticipants = 1
	cfg.TopRatio = 0
	cfg.Duration = 300 * time.Millisecond
	rep := run(t, cfg)

	mu.Lock()
	defer mu.Unlock()
	if total < 100 {
		t.Fatalf("only %d lookups", total)
	}
	if rep.ErrorsTotal != 0 {
		t.Fatalf("errors %v", rep.Errors)
	}
	// Uniform over 1M: practically every lookup is a different participant.
	if len(lookups) < total/2 {
		t.Errorf("%d lookups asked for %d distinct participants (%v...): a 'random participant of 1M' "+
			"figure measured one cached participant", total, len(lookups), firstKeys(lookups, 3))
	}
}

func firstKeys(m map[string]int, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}
