package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lbhq/leaderboard/internal/redistest"
)

// sharedPostgres returns a URL of the machine's PostgreSQL (database test)
// whose connections use a fresh schema, dropped when t ends.
func sharedPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("LEADERBOARD_TEST_POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("PostgreSQL at %s: %v (scripts/test.sh starts it)", base, err)
		}
		t.Skipf("PostgreSQL at %s: %v", base, err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	schema := "lbcross_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// twoAPIProcesses starts two servers over one Redis (same prefix) sharing
// their history in PostgreSQL: two API nodes of a deployment.
func twoAPIProcesses(t *testing.T) (a, b string) {
	t.Helper()
	redisURL := redisURLForTest(t)
	prefix := redistest.Prefix(t, "lbcross")
	pgURL := sharedPostgres(t)
	cfg := func() Config {
		c := testConfig(t)
		c.SubmitRate = 0
		c.RedisURL, c.RedisPrefix = redisURL, prefix
		c.DataDir, c.PostgresURL = "", pgURL
		return c // default --sweep-interval 1s
	}
	addrA, cancelA, doneA := start(t, cfg())
	t.Cleanup(func() { cancelA(); <-doneA })
	addrB, cancelB, doneB := start(t, cfg())
	t.Cleanup(func() { cancelB(); <-doneB })
	return "http://" + addrA, "http://" + addrB
}

// TestFinalizeSeenAtOnceByOtherProcess: over Redis + PostgreSQL, right after
// A finalized the board, B answers a retried finalize, a rankings read and a
// late submission as if the board did not exist (404 leaderboard_not_found),
// until its next sweep.
func TestFinalizeSeenAtOnceByOtherProcess(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"f","name":"F"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", b+"/v1/leaderboards/f/scores", `{"participant_id":"p","score":3}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", a+"/v1/leaderboards/f/finalize", "", nil); st != 200 {
		t.Fatal(st)
	}
	if st, code := errorCode(t, "GET", b+"/v1/leaderboards/f/rankings", ""); st != 200 {
		t.Errorf("rankings on B right after the finalize on A: %d %s, want 200 (the final ranking)", st, code)
	}
	if st, code := errorCode(t, "POST", b+"/v1/leaderboards/f/scores", `{"participant_id":"late","score":1}`); code != "leaderboard_ended" {
		t.Errorf("late submission on B: %d %s, want 404 leaderboard_ended", st, code)
	}
	if st, code := errorCode(t, "POST", b+"/v1/leaderboards/f/finalize", ""); st != 200 {
		t.Errorf("finalize retried on B: %d %s, want 200 (idempotent)", st, code)
	}
}

// TestPauseHoldsAtOnceInEveryProcess: a pause answered by A holds in B at
// once (B took submissions for up to a sweep interval before: the Redis
// store now refuses them itself), and a resume on A opens B again.
func TestPauseHoldsAtOnceInEveryProcess(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"p","name":"P"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", b+"/v1/leaderboards/p/scores", `{"participant_id":"x","score":1}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "PATCH", a+"/v1/leaderboards/p", `{"status":"paused"}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st, code := errorCode(t, "POST", b+"/v1/leaderboards/p/scores", `{"participant_id":"x","score":2}`); st != 409 || code != "leaderboard_not_active" {
		t.Fatalf("submission on B right after A paused the board: %d %s, want 409 leaderboard_not_active", st, code)
	}
	if st := jsonCall(t, "PATCH", a+"/v1/leaderboards/p", `{"status":"active"}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st, code := errorCode(t, "POST", b+"/v1/leaderboards/p/scores", `{"participant_id":"x","score":3}`); st != 200 {
		t.Fatalf("submission on B after A resumed the board: %d %s, want 200", st, code)
	}
}

// TestProfileReachesOtherProcessesRankings: a display name set through A
// shows in B's rankings (top-N and participant reads) within a sweep, not
// only after B restarts; a rename through B reaches A the same way.
func TestProfileReachesOtherProcessesRankings(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"names","name":"N"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for i := range 3 {
		if st := jsonCall(t, "POST", a+"/v1/leaderboards/names/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, 10+i), nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	nameIn := func(base, pid string) string {
		var body struct {
			Entries []struct {
				ParticipantID string `json:"participant_id"`
				DisplayName   string `json:"display_name"`
			} `json:"entries"`
		}
		if st := jsonCall(t, "GET", base+"/v1/leaderboards/names/rankings?limit=10", "", &body); st != 200 {
			t.Fatalf("rankings: %d", st)
		}
		for _, e := range body.Entries {
			if e.ParticipantID == pid {
				return e.DisplayName
			}
		}
		return ""
	}
	if got := nameIn(b, "p1"); got != "" {
		t.Fatalf("p1 has name %q before any profile", got)
	}
	if st := jsonCall(t, "PUT", a+"/v1/participants/p1", `{"display_name":"Ada"}`, nil); st != 200 {
		t.Fatalf("put profile: %d", st)
	}
	waitFor(t, "B's rankings to show A's profile", func() bool { return nameIn(b, "p1") == "Ada" })
	if st := jsonCall(t, "PUT", b+"/v1/participants/p1", `{"display_name":"Ada L."}`, nil); st != 200 {
		t.Fatalf("put profile: %d", st)
	}
	waitFor(t, "A's rankings to show B's rename", func() bool { return nameIn(a, "p1") == "Ada L." })
	var p struct {
		Neighbors []struct {
			ParticipantID string `json:"participant_id"`
			DisplayName   string `json:"display_name"`
		} `json:"neighbors"`
	}
	if st := jsonCall(t, "GET", a+"/v1/leaderboards/names/participants/p0?neighbors=2", "", &p); st != 200 || len(p.Neighbors) == 0 {
		t.Fatalf("A's participant read: %d %+v", st, p)
	}
	for _, n := range p.Neighbors {
		if n.ParticipantID == "p1" && n.DisplayName != "Ada L." {
			t.Fatalf("A's participant read shows p1 as %q", n.DisplayName)
		}
	}
}

// TestLongPollFromTheCurrentVersionWaitsOnEveryProcess: with two API
// processes over one Redis, a process's live log hears of the other's
// changes only when it writes to the board itself. A long poll from the
// version the window is at must still wait for a change (204 after its
// timeout), not be answered at once with a snapshot of that same version,
// which made every poll of a quiet board a round trip with no wait.
func TestLongPollFromTheCurrentVersionWaitsOnEveryProcess(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"lp","name":"LP"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", a+"/v1/leaderboards/lp/scores", `{"participant_id":"p1","score":1}`, nil); st != 200 {
		t.Fatal(st)
	}
	poll := func(query string) (int, map[string]any) {
		t.Helper()
		res, err := http.Get(a + "/v1/leaderboards/lp/updates?kind=top&limit=5&timeout_ms=300" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		if res.StatusCode == 200 {
			if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
		}
		return res.StatusCode, m
	}
	if st, _ := poll(""); st != 200 {
		t.Fatalf("first poll on A: %d", st)
	}
	if st := jsonCall(t, "POST", b+"/v1/leaderboards/lp/scores", `{"participant_id":"p2","score":2}`, nil); st != 200 {
		t.Fatal(st)
	}
	st, snap := poll("")
	if st != 200 || snap["type"] != "snapshot" {
		t.Fatalf("poll on A: %d %v", st, snap)
	}
	v := strconv.FormatInt(int64(snap["version"].(float64)), 10)
	if st, m := poll("&since_version=" + v + "&epoch=" + url.QueryEscape(snap["epoch"].(string))); st != 204 {
		t.Fatalf("poll on A from the current version %s: %d %v, want 204 (nothing changed)", v, st, m)
	}
}

// TestViewerSeesChangesMadeThroughAnotherProcess: two API processes over one
// Redis, no Kafka: a viewer connected to A sees the submissions made through
// B (A follows the outboxes of the leaderboards its viewers watch), and its
// window ends equal to the rankings.
func TestViewerSeesChangesMadeThroughAnotherProcess(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"follow","name":"F"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st := jsonCall(t, "POST", a+"/v1/leaderboards/follow/scores", `{"participant_id":"first","score":1}`, nil); st != 200 {
		t.Fatalf("submit: %d", st)
	}
	v := watchTop(t, a, "follow", 5, nil)
	waitFor(t, "the viewer's snapshot", func() bool { ver, _, _ := v.state(); return ver > 0 })
	for i := range 8 {
		if st := jsonCall(t, "POST", b+"/v1/leaderboards/follow/scores", fmt.Sprintf(`{"participant_id":"b%d","score":%d}`, i, 10+i), nil); st != 200 {
			t.Fatalf("submit through B: %d", st)
		}
	}
	ver, want := topWindow(t, b, "follow", 5)
	waitFor(t, "A's viewer to reach B's version", func() bool { got, _, _ := v.state(); return got >= ver })
	if _, _, got := v.state(); !slices.Equal(got, want) {
		t.Fatalf("A's viewer window %v, rankings %v", got, want)
	}
}
