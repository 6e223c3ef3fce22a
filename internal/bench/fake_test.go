package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI implements just enough of the leaderboard API for the load tool, and counts what it
// received and answered so tests can compare the tool's report with the server's view.
type fakeAPI struct {
	// failEvery > 0 makes single submissions fail: request n (1-based) gets 429 when
	// n%failEvery == 0 and 500 when n%failEvery == 1.
	failEvery int
	// itemErrorEvery > 0 makes every itemErrorEvery-th batch item (counted over the whole run) an
	// {"error":...} result.
	itemErrorEvery int
	token          string // when set, every request must carry it

	mu           sync.Mutex
	boards       map[string]bool
	creates      int
	submits      int            // single submissions received
	batches      int            // batch requests received during load (after seeding)
	batchSizes   map[int]int    // batch requests by item count
	batchItems   int            // items received in all batches
	itemErrors   int            // error items answered in 200 batch responses
	seeded       map[string]int // items per board received before the first GET
	tops         int
	lookups      int
	badLookups   int         // lookups of participants never seeded
	status       map[int]int // answers of the load endpoints (scores, batch, rankings, participants)
	badRequests  []string
	getBeforeAll bool // a GET arrived while seeding was incomplete
	wantSeeded   int  // total seeded items expected before GETs (read tests)
	seedPerBoard int  // lookups must ask for p000000000000000 .. p<seedPerBoard-1>
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		boards:     map[string]bool{},
		batchSizes: map[int]int{},
		seeded:     map[string]int{},
		status:     map[int]int{},
	}
}

func (f *fakeAPI) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeAPI) bad(format string, args ...any) {
	f.badRequests = append(f.badRequests, fmt.Sprintf(format, args...))
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

type scoreItem struct {
	ParticipantID *string `json:"participant_id"`
	Score         *int64  `json:"score"`
}

func (f *fakeAPI) checkItem(it scoreItem) bool {
	if it.ParticipantID == nil || it.Score == nil {
		return false
	}
	pid := *it.ParticipantID
	return len(pid) == 16 && pid[0] == 'p' && *it.Score >= 0 && *it.Score < 1_000_000_000
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()

	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		f.bad("%s %s without the token", r.Method, r.URL.Path)
		writeJSON(w, 401, `{"error":{"code":"unauthenticated","message":"no token"}}`)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/leaderboards")
	if !ok {
		writeJSON(w, 404, `{"error":{"code":"not_found","message":"no route"}}`)
		return
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")

	switch {
	case r.Method == "POST" && rest == "":
		f.creates++
		var req struct {
			ID   string `json:"leaderboard_id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.ID == "" || req.Name == "" {
			f.bad("bad create body %q", body)
			writeJSON(w, 400, `{"error":{"code":"invalid_argument","message":"bad body"}}`)
			return
		}
		if f.boards[req.ID] {
			writeJSON(w, 409, `{"error":{"code":"already_exists","message":"exists"}}`)
			return
		}
		f.boards[req.ID] = true
		writeJSON(w, 201, fmt.Sprintf(`{"leaderboard_id":%q,"name":%q,"status":"active","version":0}`, req.ID, req.Name))

	case r.Method == "POST" && len(parts) == 2 && parts[1] == "scores":
		f.submits++
		var it scoreItem
		if err := json.Unmarshal(body, &it); err != nil || !f.checkItem(it) || r.Header.Get("Content-Type") != "application/json" {
			f.bad("bad submission %q", body)
		}
		code := 200
		if f.failEvery > 0 {
			switch f.submits % f.failEvery {
			case 0:
				code = 429
			case 1:
				code = 500
			}
		}
		f.status[code]++
		switch code {
		case 429:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, code, `{"error":{"code":"rate_limited","message":"slow down"}}`)
		case 500:
			writeJSON(w, code, `{"error":{"code":"internal","message":"oops"}}`)
		default:
			writeJSON(w, code, fmt.Sprintf(`{"leaderboard_id":%q,"participant_id":%q,"score":%d,"previous_score":null,"rank":1,"previous_rank":null,"updated":true,"version":%d,"achieved_at":1}`,
				parts[0], *it.ParticipantID, *it.Score, f.submits))
		}

	case r.Method == "POST" && len(parts) == 2 && parts[1] == "scores:batch":
		var req struct {
			Scores []scoreItem `json:"scores"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Scores) == 0 || len(req.Scores) > 1000 {
			f.bad("bad batch body (%d bytes): %v", len(body), err)
			writeJSON(w, 400, `{"error":{"code":"invalid_argument","message":"bad body"}}`)
			return
		}
		if f.tops+f.lookups == 0 && f.wantSeeded > 0 {
			f.seeded[parts[0]] += len(req.Scores)
		} else {
			f.batches++
			f.status[200]++
		}
		f.batchSizes[len(req.Scores)]++
		var out strings.Builder
		out.WriteString(`{"results":[`)
		for i, it := range req.Scores {
			if i > 0 {
				out.WriteByte(',')
			}
			f.batchItems++
			if !f.checkItem(it) {
				f.bad("bad batch item %d", i)
				continue
			}
			if f.itemErrorEvery > 0 && f.batchItems%f.itemErrorEvery == 0 {
				f.itemErrors++
				out.WriteString(`{"error":{"code":"invalid_argument","message":"score too large"}}`)
				continue
			}
			fmt.Fprintf(&out, `{"leaderboard_id":%q,"participant_id":%q,"score":%d,"previous_score":null,"rank":%d,"previous_rank":null,"updated":true,"version":%d,"achieved_at":1}`,
				parts[0], *it.ParticipantID, *it.Score, i+1, f.batchItems)
		}
		out.WriteString(`]}`)
		writeJSON(w, 200, out.String())

	case r.Method == "GET" && len(parts) == 1 && f.boards[parts[0]]:
		writeJSON(w, 200, fmt.Sprintf(`{"leaderboard_id":%q,"status":"active","version":1,"total_participants":%d}`, parts[0], f.seeded[parts[0]]))

	case r.Method == "GET" && len(parts) == 2 && parts[1] == "rankings":
		f.noteGet()
		f.tops++
		f.status[200]++
		if r.URL.Query().Get("limit") != "100" {
			f.bad("rankings without limit=100: %s", r.URL.RawQuery)
		}
		writeJSON(w, 200, fmt.Sprintf(`{"leaderboard_id":%q,"version":1,"epoch":"e","total_participants":0,"entries":[]}`, parts[0]))

	case r.Method == "GET" && len(parts) == 3 && parts[1] == "participants":
		f.noteGet()
		f.lookups++
		f.status[200]++
		n, err := strconv.Atoi(strings.TrimPrefix(parts[2], "p"))
		if len(parts[2]) != 16 || err != nil || n >= f.seedPerBoard {
			f.badLookups++
		}
		if r.URL.Query().Get("neighbors") != "2" {
			f.bad("lookup without neighbors=2: %s", r.URL.RawQuery)
		}
		writeJSON(w, 200, fmt.Sprintf(`{"leaderboard_id":%q,"participant_id":%q,"rank":1,"score":1,"achieved_at":1,"version":1,"total_participants":1,"neighbors":[]}`, parts[0], parts[2]))

	default:
		f.bad("unexpected %s %s", r.Method, r.URL.Path)
		writeJSON(w, 404, `{"error":{"code":"not_found","message":"no route"}}`)
	}
}

func (f *fakeAPI) noteGet() {
	total := 0
	for _, n := range f.seeded {
		total += n
	}
	if total < f.wantSeeded {
		f.getBeforeAll = true
	}
}

// statusMap converts the server's status counts to the report's representation.
func (f *fakeAPI) statusMap() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int64{}
	for code, n := range f.status {
		m[strconv.Itoa(code)] = int64(n)
	}
	return m
}

func (f *fakeAPI) checkNoBadRequests(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.badRequests {
		if i == 5 {
			t.Errorf("... %d bad requests in all", len(f.badRequests))
			break
		}
		t.Errorf("fake server: %s", b)
	}
}
