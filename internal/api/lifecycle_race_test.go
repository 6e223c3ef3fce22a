package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// slowSink takes a little time per change, as a busy server does, so that a
// 1000-item batch is still being applied (64 items per hold of the board's
// lock) well after its first chunk; firstChunk is closed once 64 changes
// were published.
type slowSink struct {
	mu         sync.Mutex
	n          int
	firstChunk chan struct{}
}

func (s *slowSink) Publish(store.Event) {
	time.Sleep(50 * time.Microsecond)
	s.mu.Lock()
	s.n++
	if s.n == 64 {
		close(s.firstChunk)
	}
	s.mu.Unlock()
}

// TestBatchRacingPauseStopsAtThePause: a 1000-item batch is being applied
// when a PATCH pauses the leaderboard. Once the PATCH answered 200 (paused,
// at some version), the board takes no more scores: the rest of the batch
// is answered leaderboard_not_active in place, and the version stays the
// one the PATCH reported. Before, the board took the rest of the batch
// after the pause was acknowledged (and while other submissions got 409).
func TestBatchRacingPauseStopsAtThePause(t *testing.T) {
	sink := &slowSink{firstChunk: make(chan struct{})}
	st := memory.New(memory.Options{Epoch: "e1", Sink: sink})
	svc := board.New(st, board.Options{})
	srv := httptest.NewServer(api.New(svc, api.Options{Totals: st.Totals}))
	defer srv.Close()
	e := &env{t: t, url: srv.URL, svc: svc}
	e.create(map[string]any{"leaderboard_id": "p", "name": "P"})

	items := make([]map[string]any, 1000)
	for i := range items {
		items[i] = map[string]any{"participant_id": fmt.Sprint("p", i), "score": i}
	}
	batch := make(chan response, 1)
	go func() { batch <- e.do("POST", "/v1/leaderboards/p/scores:batch", map[string]any{"scores": items}) }()
	<-sink.firstChunk
	r := e.do("PATCH", "/v1/leaderboards/p", map[string]any{"status": "paused"})
	if r.status != 200 || r.json(t)["status"] != "paused" {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	pausedAt := num(r.json(t)["version"])
	// A submission after the pause answered is refused.
	expectError(t, e.submit("p", "late", 1), 409, "leaderboard_not_active")

	br := <-batch
	if br.status != 200 {
		t.Fatalf("batch: %d %s", br.status, br.body)
	}
	if v := num(e.do("GET", "/v1/leaderboards/p", nil).json(t)["version"]); v != pausedAt {
		t.Fatalf("the pause answered at version %d, the paused board is at version %d: %d scores were taken after the pause", pausedAt, v, v-pausedAt)
	}
	var out struct {
		Results []struct {
			ParticipantID string `json:"participant_id"`
			Version       int64  `json:"version"`
			Error         *struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(br.body, &out); err != nil || len(out.Results) != len(items) {
		t.Fatalf("batch results: %v %s", err, br.body)
	}
	applied := int64(0)
	for i, res := range out.Results {
		switch {
		case res.Error == nil:
			applied++
			if res.Version > pausedAt {
				t.Fatalf("item %d applied at version %d, after the pause at %d", i, res.Version, pausedAt)
			}
		case res.Error.Code != board.CodeLeaderboardNotActive:
			t.Fatalf("item %d: %s, want leaderboard_not_active", i, res.Error.Code)
		}
	}
	if total := num(e.do("GET", "/v1/leaderboards/p", nil).json(t)["total_participants"]); applied != pausedAt || total != applied {
		t.Fatalf("%d items answered applied, %d ranked, paused at version %d", applied, total, pausedAt)
	}
}

// heldHistory holds one final ranking's transaction or one metadata write
// (whichever is armed) until released, as a large final ranking or a slow
// database does. The service's admin operations (create, patch, finalize)
// wait for it meanwhile.
type heldHistory struct {
	history.Store
	finalize, putBoard atomic.Bool
	entered, release   chan struct{}
}

func (h *heldHistory) hold(armed *atomic.Bool) {
	if armed.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.release
	}
}

func (h *heldHistory) Finalize(ctx context.Context, b history.Board, entries iter.Seq2[store.Entry, error]) error {
	h.hold(&h.finalize)
	return h.Store.Finalize(ctx, b, entries)
}

func (h *heldHistory) PutBoard(ctx context.Context, b history.Board) error {
	h.hold(&h.putBoard)
	return h.Store.PutBoard(ctx, b)
}

func newHeldHistoryEnv(t *testing.T) (*env, *heldHistory) {
	t.Helper()
	sq, err := sqlite.OpenDir(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	hs := &heldHistory{Store: sq, entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, board.Options{History: hs})
	return e, hs
}

// TestPatchWaitingBehindAFinalizeCannotReopenAnEndedBoard: a PATCH that
// extends ends_at arrives just before the end, while a finalize of another
// leaderboard holds the admin operations (its final ranking being written).
// By the time the PATCH runs, the board has ended: reads say completed and
// submissions get leaderboard_ended. The PATCH must then be refused as on
// any completed board, not judged by the clock of its arrival, which
// reopened the ended board (active again, scores taken after its end).
func TestPatchWaitingBehindAFinalizeCannotReopenAnEndedBoard(t *testing.T) {
	e, hs := newHeldHistoryEnv(t)
	e.create(map[string]any{"leaderboard_id": "big", "name": "Big"})
	e.create(map[string]any{"leaderboard_id": "cup", "name": "Cup", "ends_at": "2026-11-27T13:00:00Z"})
	e.clock.Advance(time.Hour - time.Second) // 12:59:59, one second before cup ends

	hs.finalize.Store(true)
	finalized := make(chan response, 1)
	go func() { finalized <- e.do("POST", "/v1/leaderboards/big/finalize", nil) }()
	<-hs.entered
	patched := make(chan response, 1)
	go func() {
		patched <- e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"ends_at": "2026-11-27T15:00:00Z"})
	}()
	time.Sleep(100 * time.Millisecond) // let the PATCH reach the service and wait there
	e.clock.Advance(2 * time.Second)   // 13:00:01: cup has ended
	if s := e.do("GET", "/v1/leaderboards/cup", nil).json(t)["status"]; s != "completed" {
		t.Fatalf("cup after its ends_at: %v, want completed", s)
	}
	expectError(t, e.submit("cup", "p1", 10), 404, "leaderboard_ended")
	close(hs.release)
	if r := <-finalized; r.status != 200 {
		t.Fatalf("finalize big: %d %s", r.status, r.body)
	}

	expectError(t, <-patched, 404, "leaderboard_ended")
	r := e.do("GET", "/v1/leaderboards/cup", nil)
	if m := r.json(t); m["status"] != "completed" || m["ends_at"] != "2026-11-27T13:00:00.000Z" {
		t.Fatalf("cup after the PATCH: %s: an ended leaderboard came back", r.body)
	}
	expectError(t, e.submit("cup", "p1", 10), 404, "leaderboard_ended")
}

// TestCreateWaitingBehindAFinalizeRefusesAnEndInThePast: a create whose
// ends_at is a moment away waits behind a finalize of another leaderboard;
// by the time it runs, that end has passed. It is refused as any create
// with an ends_at in the past (API.md: a board created already ended is a
// mistake), not created completed, and its created_at is when it was
// created, not when the request arrived.
func TestCreateWaitingBehindAFinalizeRefusesAnEndInThePast(t *testing.T) {
	e, hs := newHeldHistoryEnv(t)
	e.create(map[string]any{"leaderboard_id": "big", "name": "Big"})

	hs.finalize.Store(true)
	finalized := make(chan response, 1)
	go func() { finalized <- e.do("POST", "/v1/leaderboards/big/finalize", nil) }()
	<-hs.entered
	created := make(chan response, 1)
	go func() {
		created <- e.do("POST", "/v1/leaderboards", map[string]any{"leaderboard_id": "flash", "name": "Flash", "ends_at": "2026-11-27T12:00:30Z"})
	}()
	time.Sleep(100 * time.Millisecond) // let the create reach the service and wait there
	e.clock.Advance(time.Minute)       // 12:01: flash's ends_at has passed
	close(hs.release)
	if r := <-finalized; r.status != 200 {
		t.Fatalf("finalize big: %d %s", r.status, r.body)
	}
	expectError(t, <-created, 400, "invalid_argument")
	expectError(t, e.do("GET", "/v1/leaderboards/flash", nil), 404, "leaderboard_not_found")
}

// TestPatchWrittenAcrossTheEndCannotReopenTheBoard: a PATCH extending
// ends_at arrives a second before the end, and the end passes while its
// metadata is being written to the history store. Meanwhile reads say
// completed and submissions get leaderboard_ended; the PATCH must not then
// reopen the board: it is answered leaderboard_ended and the board stays
// completed with its old end, in memory and in history (a restart reads
// it from there).
func TestPatchWrittenAcrossTheEndCannotReopenTheBoard(t *testing.T) {
	e, hs := newHeldHistoryEnv(t)
	e.create(map[string]any{"leaderboard_id": "cup", "name": "Cup", "ends_at": "2026-11-27T13:00:00Z"})
	e.clock.Advance(time.Hour - time.Second) // 12:59:59

	hs.putBoard.Store(true)
	patched := make(chan response, 1)
	go func() {
		patched <- e.do("PATCH", "/v1/leaderboards/cup", map[string]any{"ends_at": "2026-11-27T15:00:00Z"})
	}()
	<-hs.entered                     // the PATCH passed its checks and is writing
	e.clock.Advance(2 * time.Second) // 13:00:01: cup has ended
	if s := e.do("GET", "/v1/leaderboards/cup", nil).json(t)["status"]; s != "completed" {
		t.Fatalf("cup after its ends_at: %v, want completed", s)
	}
	expectError(t, e.submit("cup", "p1", 10), 404, "leaderboard_ended")
	close(hs.release)

	expectError(t, <-patched, 404, "leaderboard_ended")
	r := e.do("GET", "/v1/leaderboards/cup", nil)
	if m := r.json(t); m["status"] != "completed" || m["ends_at"] != "2026-11-27T13:00:00.000Z" {
		t.Fatalf("cup after the PATCH: %s: an ended leaderboard came back", r.body)
	}
	expectError(t, e.submit("cup", "p1", 10), 404, "leaderboard_ended")
	boards, err := hs.Boards(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boards {
		if b.ID == "cup" && !b.EndsAt.Equal(time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)) {
			t.Fatalf("history holds ends_at %v for cup: a restart would reopen it", b.EndsAt)
		}
	}
}
