package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// call makes one JSON request and decodes the answer into out (when not nil).
func jsonCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
	return res.StatusCode
}

type rankingsBody struct {
	Version uint64 `json:"version"`
	Epoch   string `json:"epoch"`
	Total   int64  `json:"total_participants"`
	Entries []struct {
		Rank          int64  `json:"rank"`
		ParticipantID string `json:"participant_id"`
		Score         uint64 `json:"score"`
		AchievedAt    int64  `json:"achieved_at"`
		DisplayName   string `json:"display_name"`
	} `json:"entries"`
}

func readAll(t *testing.T, base, board string) rankingsBody {
	t.Helper()
	var all rankingsBody
	for offset := 0; ; offset += 1000 {
		var page rankingsBody
		if st := jsonCall(t, "GET", fmt.Sprintf("%s/v1/leaderboards/%s/rankings?limit=1000&offset=%d", base, board, offset), "", &page); st != 200 {
			t.Fatalf("rankings of %s: status %d", board, st)
		}
		if offset == 0 {
			all.Version, all.Epoch, all.Total = page.Version, page.Epoch, page.Total
		} else if page.Version != all.Version {
			t.Fatalf("board %s changed while being read", board)
		}
		all.Entries = append(all.Entries, page.Entries...)
		if len(page.Entries) < 1000 {
			return all
		}
	}
}

// TestRestartKeepsEverything: after a clean stop, a restart on the same data
// directory serves the same live rankings at the same version and epoch, the
// final ranking of a finalized leaderboard (from history, out of memory),
// profiles' display names, results and the audit log.
func TestRestartKeepsEverything(t *testing.T) {
	cfg := testConfig(t)
	cfg.SubmitRate = 0
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	for _, b := range []string{`{"leaderboard_id":"live","name":"Live"}`, `{"leaderboard_id":"cup","name":"Cup","sort_order":"asc","update_policy":"best"}`} {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards", b, nil); st != 201 {
			t.Fatalf("create: %d", st)
		}
	}
	if st := jsonCall(t, "PUT", base+"/v1/participants/p7", `{"display_name":"Séverine ✓","metadata":{"team":"blue"}}`, nil); st != 200 {
		t.Fatalf("put profile: %d", st)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				body := fmt.Sprintf(`{"participant_id":"p%d","score":%d,"timestamp":%d}`, (g*31+i)%40, (i*7919+g)%1000, 1700000000000+i)
				for _, b := range []string{"live", "cup"} {
					if st := jsonCall(t, "POST", base+"/v1/leaderboards/"+b+"/scores", body, nil); st != 200 {
						t.Errorf("submit: %d", st)
					}
				}
			}
		}()
	}
	wg.Wait()
	if st := jsonCall(t, "DELETE", base+"/v1/leaderboards/live/participants/p3", "", nil); st != 204 {
		t.Fatalf("remove: %d", st)
	}
	if st := jsonCall(t, "POST", base+"/v1/leaderboards/cup/finalize", "", nil); st != 200 {
		t.Fatalf("finalize: %d", st)
	}
	liveBefore, cupBefore := readAll(t, base, "live"), readAll(t, base, "cup")
	var eventsBefore map[string]any
	jsonCall(t, "GET", base+"/v1/leaderboards/live/participants/p7/events?limit=1000", "", &eventsBefore)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	addr, cancel, done = start(t, cfg)
	defer func() { cancel(); <-done }()
	base = "http://" + addr
	liveAfter, cupAfter := readAll(t, base, "live"), readAll(t, base, "cup")
	if fmt.Sprint(liveAfter) != fmt.Sprint(liveBefore) {
		t.Fatalf("live board after restart:\n got %+v\nwant %+v", liveAfter, liveBefore)
	}
	if liveAfter.Epoch == "" || liveAfter.Version == 0 {
		t.Fatalf("live board: epoch %q version %d", liveAfter.Epoch, liveAfter.Version)
	}
	cupBefore.Epoch, cupAfter.Epoch = "", ""
	if fmt.Sprint(cupAfter) != fmt.Sprint(cupBefore) {
		t.Fatalf("completed board after restart:\n got %+v\nwant %+v", cupAfter, cupBefore)
	}
	named := 0
	for _, e := range liveAfter.Entries {
		if e.ParticipantID == "p7" {
			named++
			if e.DisplayName != "Séverine ✓" {
				t.Fatalf("display name %q", e.DisplayName)
			}
		} else if e.DisplayName != "" {
			t.Fatalf("%s has display name %q", e.ParticipantID, e.DisplayName)
		}
	}
	if named != 1 {
		t.Fatal("p7 is not ranked")
	}
	for _, e := range liveAfter.Entries {
		if e.ParticipantID == "p3" {
			t.Fatal("removed participant came back")
		}
	}
	var final struct {
		FinalizedAt string `json:"finalized_at"`
		Entries     []struct {
			Rank          int64  `json:"rank"`
			ParticipantID string `json:"participant_id"`
			Score         uint64 `json:"score"`
		} `json:"entries"`
	}
	if st := jsonCall(t, "GET", base+"/v1/leaderboards/cup/final-rankings?limit=1000", "", &final); st != 200 {
		t.Fatalf("final rankings: %d", st)
	}
	if len(final.Entries) != len(cupBefore.Entries) || final.FinalizedAt == "" {
		t.Fatalf("final ranking has %d entries, want %d", len(final.Entries), len(cupBefore.Entries))
	}
	for i, e := range final.Entries {
		w := cupBefore.Entries[i]
		if e.Rank != w.Rank || e.ParticipantID != w.ParticipantID || e.Score != w.Score {
			t.Fatalf("final entry %d: %+v, want %+v", i, e, w)
		}
	}
	if st := jsonCall(t, "GET", base+"/v1/leaderboards/live/final-rankings", "", nil); st != 404 {
		t.Fatalf("final rankings of a live board: %d, want 404", st)
	}
	var results struct {
		Results []struct {
			LeaderboardID string `json:"leaderboard_id"`
			Rank          int64  `json:"rank"`
		} `json:"results"`
	}
	jsonCall(t, "GET", base+"/v1/participants/p7/results", "", &results)
	if len(results.Results) != 1 || results.Results[0].LeaderboardID != "cup" || results.Results[0].Rank < 1 {
		t.Fatalf("results %+v", results)
	}
	var eventsAfter map[string]any
	jsonCall(t, "GET", base+"/v1/leaderboards/live/participants/p7/events?limit=1000", "", &eventsAfter)
	if fmt.Sprint(eventsAfter) != fmt.Sprint(eventsBefore) || len(eventsAfter["events"].([]any)) == 0 {
		t.Fatalf("audit log changed across the restart or is empty: %v", eventsAfter)
	}
	// The completed board takes nothing; the live one continues its versions.
	if st := jsonCall(t, "POST", base+"/v1/leaderboards/cup/scores", `{"participant_id":"x","score":1}`, nil); st != 404 {
		t.Fatalf("submit to completed board: %d", st)
	}
	var res struct{ Version uint64 }
	jsonCall(t, "POST", base+"/v1/leaderboards/live/scores", `{"participant_id":"new","score":5}`, &res)
	if res.Version != liveBefore.Version+1 {
		t.Fatalf("next version %d, want %d", res.Version, liveBefore.Version+1)
	}
}

// TestFinalizeRacingSubmissions: submissions race a finalize; every one that
// was acknowledged is in the final ranking with its score, and every one
// after the finalize answered gets 404 leaderboard_ended.
func TestFinalizeRacingSubmissions(t *testing.T) {
	cfg := testConfig(t)
	cfg.SubmitRate = 0
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"race","name":"Race"}`, nil); st != 201 {
		t.Fatal(st)
	}
	var (
		mu        sync.Mutex
		acked     = map[string]uint64{}
		finalized = make(chan struct{})
		afterEnd  = map[int]int{}
		wg        sync.WaitGroup
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-finalized:
					// One more after the finalize answered: it must be refused.
					st := jsonCall(t, "POST", base+"/v1/leaderboards/race/scores", fmt.Sprintf(`{"participant_id":"late-%d","score":1}`, g), nil)
					mu.Lock()
					afterEnd[st]++
					mu.Unlock()
					return
				default:
				}
				pid, score := fmt.Sprintf("g%d-%d", g, i), uint64(i*37%1000)
				st := jsonCall(t, "POST", base+"/v1/leaderboards/race/scores", fmt.Sprintf(`{"participant_id":%q,"score":%d}`, pid, score), nil)
				if st == 200 {
					mu.Lock()
					acked[pid] = score
					mu.Unlock()
				} else if st != 404 {
					t.Errorf("submission racing finalize: %d", st)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let submissions pile up before the finalize races them
	if st := jsonCall(t, "POST", base+"/v1/leaderboards/race/finalize", "", nil); st != 200 {
		t.Fatalf("finalize: %d", st)
	}
	close(finalized)
	wg.Wait()
	if afterEnd[404] != 4 {
		t.Fatalf("submissions after completion: %v, want 4 × 404", afterEnd)
	}
	var final struct {
		Entries []struct {
			ParticipantID string `json:"participant_id"`
			Score         uint64 `json:"score"`
		} `json:"entries"`
	}
	got := map[string]uint64{}
	for offset := 0; ; offset += 1000 {
		final.Entries = nil
		jsonCall(t, "GET", fmt.Sprintf("%s/v1/leaderboards/race/final-rankings?limit=1000&offset=%d", base, offset), "", &final)
		for _, e := range final.Entries {
			got[e.ParticipantID] = e.Score
		}
		if len(final.Entries) < 1000 {
			break
		}
	}
	if len(acked) == 0 {
		t.Fatal("no submission was acknowledged")
	}
	for pid, score := range acked {
		if s, ok := got[pid]; !ok || s != score {
			t.Fatalf("acknowledged %s=%d is missing from the final ranking (has %v, %v)", pid, score, s, ok)
		}
	}
	// At most the submissions in flight at the seal were applied unacknowledged: none here (in-process, every answer arrives).
	if len(got) != len(acked) {
		t.Fatalf("final ranking holds %d participants, %d were acknowledged", len(got), len(acked))
	}
}

// TestStartRefusesABrokenDataDir: a corrupt database or a used directory that
// lost its database stops the start with an error naming the problem.
func TestStartRefusesABrokenDataDir(t *testing.T) {
	cfg := testConfig(t)
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "leaderboard.db"), bytes.Repeat([]byte("garbage!"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), cfg, discardLog(), nil)
	if err == nil || !strings.Contains(err.Error(), "not a usable leaderboard database") {
		t.Fatalf("corrupt database: %v", err)
	}
	cfg = testConfig(t)
	os.WriteFile(filepath.Join(cfg.DataDir, "auth-secret"), []byte("x"), 0o600)
	err = Run(t.Context(), cfg, discardLog(), nil)
	if err == nil || !strings.Contains(err.Error(), "holds no leaderboard.db") {
		t.Fatalf("used directory without a database: %v", err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// errorCode makes a request and returns its status and error code.
func errorCode(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e.Error.Code
}

// TestHistoryRouteErrors: every history route's errors, with persistence on
// and off.
func TestHistoryRouteErrors(t *testing.T) {
	cfg := testConfig(t)
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"b","name":"B"}`, nil)
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/leaderboards/none/final-rankings", "", 404, "leaderboard_not_found"},
		{"GET", "/v1/leaderboards/b/final-rankings", "", 404, "leaderboard_not_found"}, // not completed
		{"GET", "/v1/leaderboards/b/final-rankings?limit=0", "", 400, "invalid_argument"},
		{"GET", "/v1/leaderboards/b/final-rankings?offset=-1", "", 400, "invalid_argument"},
		{"GET", "/v1/leaderboards/none/participants/p/events", "", 404, "leaderboard_not_found"},
		{"GET", "/v1/leaderboards/b/participants/p/events?limit=1001", "", 400, "invalid_argument"},
		{"GET", "/v1/participants/p/results?limit=x", "", 400, "invalid_argument"},
		{"GET", "/v1/participants/nobody", "", 404, "participant_not_found"},
		{"GET", "/v1/participants/bad%20id", "", 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":""}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":"` + long + `"}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":"a\u0007b"}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":"a","avatar_url":"javascript:alert(1)"}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":"a","metadata":[1]}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":5}`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `not json`, 400, "invalid_argument"},
		{"PUT", "/v1/participants/p", `{"display_name":"` + strings.Repeat("é", 64) + `"}`, 200, ""},
	} {
		status, code := errorCode(t, tc.method, base+tc.path, tc.body)
		if status != tc.status || code != tc.code {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.path, tc.body, status, code, tc.status, tc.code)
		}
	}

	off := testConfig(t)
	off.DataDir = ""
	addr, cancel2, done2 := start(t, off)
	defer func() { cancel2(); <-done2 }()
	base = "http://" + addr
	jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"b","name":"B"}`, nil)
	for _, p := range []string{"GET /v1/leaderboards/b/final-rankings", "GET /v1/leaderboards/b/participants/p/events",
		"GET /v1/participants/p/results", "GET /v1/participants/p", `PUT /v1/participants/p {"display_name":"a"}`} {
		parts := strings.SplitN(p, " ", 3)
		body := ""
		if len(parts) == 3 {
			body = parts[2]
		}
		if status, code := errorCode(t, parts[0], base+parts[1], body); status != 503 || code != "unavailable" {
			t.Errorf("%s without persistence: %d %q, want 503 unavailable", p, status, code)
		}
	}
}

// TestDisplayNamesInLiveEntries: a profile's display name appears in live
// frames (here the SSE snapshot), not only in REST reads.
func TestDisplayNamesInLiveEntries(t *testing.T) {
	cfg := testConfig(t)
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"n","name":"N"}`, nil)
	jsonCall(t, "PUT", base+"/v1/participants/ada", `{"display_name":"Ada \"the\" Great"}`, nil)
	jsonCall(t, "POST", base+"/v1/leaderboards/n/scores", `{"participant_id":"ada","score":10}`, nil)
	jsonCall(t, "POST", base+"/v1/leaderboards/n/scores", `{"participant_id":"bob","score":5}`, nil)
	res, err := http.Get(base + "/v1/leaderboards/n/stream?kind=top&limit=10")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for !bytes.Contains(buf, []byte("\n\n")) {
		n, err := res.Body.Read(tmp)
		if err != nil {
			t.Fatalf("reading the stream: %v (%s)", err, buf)
		}
		buf = append(buf, tmp[:n]...)
	}
	if !bytes.Contains(buf, []byte(`"participant_id":"ada","score":10,"achieved_at":`)) || !bytes.Contains(buf, []byte(`"display_name":"Ada \"the\" Great"`)) {
		t.Fatalf("snapshot without the display name: %s", buf)
	}
	if bytes.Contains(buf, []byte(`"participant_id":"bob","score":5,"achieved_at":0,"display_name"`)) {
		t.Fatalf("bob has no profile but got a name: %s", buf)
	}
}
