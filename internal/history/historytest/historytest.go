// Package historytest is the conformance suite every history.Store must pass:
// history/sqlite and history/postgres run it against a real database.
package historytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// Run runs the suite. newStore returns an empty store; it is closed by the suite.
func Run(t *testing.T, newStore func(t *testing.T) history.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h history.Store)
	}{
		{"Boards", testBoards},
		{"EventsInVersionOrder", testEvents},
		{"ParticipantEventsNewestFirst", testParticipantEvents},
		{"EventsKeptWhateverTheirTime", testEventsWhateverTheirTime},
		{"Snapshots", testSnapshots},
		{"Finalize", testFinalize},
		{"FinalizeDropsSnapshot", testFinalizeDropsSnapshot},
		{"FinalizeLarge", testFinalizeLarge},
		{"Results", testResults},
		{"Profiles", testProfiles},
		{"JSONWithNULEscape", testJSONWithNULEscape},
		{"State", testState},
		{"Ping", func(t *testing.T, h history.Store) {
			if err := h.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newStore(t)
			t.Cleanup(func() { h.Close() })
			tt.fn(t, h)
		})
	}
}

// ms truncates t to milliseconds, the precision every store keeps.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func sampleBoard(id string) history.Board {
	max := uint64(store.MaxScore)
	now := ms(time.Now())
	return history.Board{
		ID: id, Name: "Board " + id, Type: "tournament",
		Order: store.Ascending, Policy: store.PolicyBest,
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), CreatedAt: now.Add(-2 * time.Hour),
		MaxScore: &max, Config: json.RawMessage(`{"region":"eu","n":1}`), Paused: true,
	}
}

func normBoard(b history.Board) history.Board {
	b.StartsAt, b.EndsAt, b.CreatedAt, b.FinalizedAt = norm(b.StartsAt), norm(b.EndsAt), norm(b.CreatedAt), norm(b.FinalizedAt)
	if len(b.Config) > 0 {
		var v any
		if err := json.Unmarshal(b.Config, &v); err == nil {
			b.Config, _ = json.Marshal(v)
		}
	}
	return b
}

func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return ms(t)
}

func equalBoards(t *testing.T, got, want history.Board) {
	t.Helper()
	got, want = normBoard(got), normBoard(want)
	if (got.MaxScore == nil) != (want.MaxScore == nil) || (got.MaxScore != nil && *got.MaxScore != *want.MaxScore) {
		t.Fatalf("max_score: got %v, want %v", got.MaxScore, want.MaxScore)
	}
	got.MaxScore, want.MaxScore = nil, nil
	gc, wc := string(got.Config), string(want.Config)
	got.Config, want.Config = nil, nil
	if gc != wc {
		t.Fatalf("config: got %s, want %s", gc, wc)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("board:\n got %+v\nwant %+v", got, want)
	}
}

func boardByID(t *testing.T, h history.Store, id string) history.Board {
	t.Helper()
	all, err := h.Boards(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.ID == id {
			return b
		}
	}
	t.Fatalf("board %s not listed", id)
	return history.Board{}
}

func testBoards(t *testing.T, h history.Store) {
	ctx := context.Background()
	if all, err := h.Boards(ctx); err != nil || len(all) != 0 {
		t.Fatalf("new store: boards %v, %v", all, err)
	}
	a := sampleBoard("a")
	b := history.Board{ID: "b:2", Name: "B", Type: "custom", CreatedAt: ms(time.Now()), Config: json.RawMessage(`{}`)}
	for _, x := range []history.Board{a, b} {
		if err := h.PutBoard(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	equalBoards(t, boardByID(t, h, "a"), a)
	equalBoards(t, boardByID(t, h, "b:2"), b)

	// A put replaces every field but completion.
	a.Name, a.Paused, a.EndsAt = "Renamed", false, a.EndsAt.Add(time.Hour)
	a.Completed, a.FinalVersion = true, 99 // ignored by PutBoard
	if err := h.PutBoard(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Completed, a.FinalVersion = false, 0
	equalBoards(t, boardByID(t, h, "a"), a)
	if all, _ := h.Boards(ctx); len(all) != 2 {
		t.Fatalf("%d boards after replacing one, want 2", len(all))
	}
}

func event(board string, version uint64, pid string, oldScore, newScore uint64, hadOld bool) history.Event {
	oldRank := int64(version)
	if !hadOld { // old_* mean nothing then, and stores need not keep them
		oldScore, oldRank = 0, 0
	}
	return history.Event{
		Event: store.Event{
			Leaderboard: board, Version: version, ParticipantID: pid, HadOld: hadOld,
			OldScore: oldScore, OldRank: oldRank, NewScore: newScore, NewRank: int64(version + 1),
			AchievedAt: int64(1700000000000 + version),
		},
		CreatedAt: int64(1700000000500 + version),
	}
}

func testEvents(t *testing.T, h history.Store) {
	ctx := context.Background()
	for _, id := range []string{"x", "y"} {
		if err := h.PutBoard(ctx, sampleBoard(id)); err != nil {
			t.Fatal(err)
		}
	}
	var want []history.Event
	for v := uint64(1); v <= 300; v++ {
		e := event("x", v, fmt.Sprintf("p%d", v%7), v*3, store.MaxScore-v, v > 7)
		if v%50 == 0 {
			e.Removed, e.NewScore, e.NewRank = true, 0, 0
		}
		want = append(want, e)
	}
	// In three batches, interleaved with another board's events.
	for i := 0; i < 300; i += 100 {
		batch := history.Batch{Events: slices.Clone(want[i : i+100])}
		batch.Events = append(batch.Events, event("y", uint64(i/100+1), "q", 0, 1, false))
		if err := h.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var got []history.Event
	if err := h.EventsAfter(ctx, "x", 120, func(e history.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 180 {
		t.Fatalf("%d events after version 120, want 180", len(got))
	}
	var lastID int64
	for i, e := range got {
		w := want[120+i]
		if e.ID <= lastID {
			t.Fatalf("event ids not increasing: %d after %d", e.ID, lastID)
		}
		lastID = e.ID
		e.ID = 0
		if e != w {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, e, w)
		}
	}
	// The callback's error stops the walk and is returned.
	stop := errors.New("stop")
	n := 0
	if err := h.EventsAfter(ctx, "x", 0, func(history.Event) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stopping walk: err %v after %d events", err, n)
	}
	n = 0
	if err := h.EventsAfter(ctx, "none", 0, func(history.Event) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("unknown board: %d events, %v", n, err)
	}
}

func testParticipantEvents(t *testing.T, h history.Store) {
	ctx := context.Background()
	if err := h.PutBoard(ctx, sampleBoard("x")); err != nil {
		t.Fatal(err)
	}
	var batch history.Batch
	for v := uint64(1); v <= 40; v++ {
		batch.Events = append(batch.Events, event("x", v, []string{"me", "other"}[v%2], v, v+1, v > 2))
	}
	if err := h.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := h.ParticipantEvents(ctx, "x", "me", 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	// me has versions 2, 4, ..., 40; newest first: 40, 38, 36, 34, ...; offset 2 starts at 36.
	var versions []uint64
	for _, e := range got {
		if e.ParticipantID != "me" || e.Leaderboard != "x" || e.ID == 0 {
			t.Fatalf("bad event %+v", e)
		}
		versions = append(versions, e.Version)
	}
	if fmt.Sprint(versions) != "[36 34 32 30 28]" {
		t.Fatalf("versions %v, want [36 34 32 30 28]", versions)
	}
	if got, err := h.ParticipantEvents(ctx, "x", "nobody", 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("unknown participant: %v, %v", got, err)
	}
}

// testEventsWhateverTheirTime: an event is kept and read back exactly, and
// paged without a gap or a repeat, whatever its created_at: on either side
// of a UTC midnight (PostgreSQL's day partitions), far before the days a
// store prepared for and far after them (a clock that jumped).
func testEventsWhateverTheirTime(t *testing.T, h history.Store) {
	ctx := context.Background()
	if err := h.PutBoard(ctx, sampleBoard("t")); err != nil {
		t.Fatal(err)
	}
	midnight := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	times := []time.Time{
		time.Date(1971, 1, 1, 0, 0, 0, 1e6, time.UTC),
		midnight.Add(-24*time.Hour - time.Millisecond),
		midnight.Add(-time.Millisecond), // 23:59:59.999
		midnight,                        // 00:00:00.000
		midnight.Add(time.Millisecond),
		midnight.AddDate(0, 0, 40),
		time.Date(2100, 12, 31, 23, 59, 59, 999e6, time.UTC),
	}
	var batch history.Batch
	for i, at := range times {
		e := event("t", uint64(i+1), "me", 0, uint64(i+1), false)
		e.CreatedAt = at.UnixMilli()
		batch.Events = append(batch.Events, e)
	}
	if err := h.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var replayed []history.Event
	if err := h.EventsAfter(ctx, "t", 0, func(e history.Event) error { replayed = append(replayed, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(replayed) != len(times) {
		t.Fatalf("%d events read back, want %d", len(replayed), len(times))
	}
	for i, e := range replayed {
		if e.Version != uint64(i+1) || e.CreatedAt != times[i].UnixMilli() {
			t.Fatalf("event %d: version %d created_at %v, want %d at %v", i, e.Version, time.UnixMilli(e.CreatedAt).UTC(), i+1, times[i])
		}
	}
	// Pages of 2, newest first, cover every version once.
	var paged []uint64
	for offset := 0; ; offset += 2 {
		page, err := h.ParticipantEvents(ctx, "t", "me", 2, offset)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			paged = append(paged, e.Version)
		}
	}
	if fmt.Sprint(paged) != "[7 6 5 4 3 2 1]" {
		t.Fatalf("paged versions %v, want [7 6 5 4 3 2 1]", paged)
	}
}

func testSnapshots(t *testing.T, h history.Store) {
	ctx := context.Background()
	if err := h.PutBoard(ctx, sampleBoard("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Snapshot(ctx, "x"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("no snapshot yet: %v, want ErrNotFound", err)
	}
	entries := []store.Entry{{ParticipantID: "a", Score: store.MaxScore, AchievedAt: store.MaxAchievedAt}, {ParticipantID: "b", Score: 0, AchievedAt: 0}}
	taken := ms(time.Now())
	for v := uint64(1); v <= 3; v++ {
		s := history.Snapshot{Board: "x", Version: v * 10, TakenAt: taken, Data: history.EncodeSnapshot(entries[:v%2+1])}
		if err := h.Write(ctx, history.Batch{Events: []history.Event{event("x", v, "a", 0, 1, false)}, Snapshots: []history.Snapshot{s}}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.Snapshot(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if s.Board != "x" || s.Version != 30 || !norm(s.TakenAt).Equal(taken) {
		t.Fatalf("latest snapshot %s v%d at %v, want x v30 at %v", s.Board, s.Version, s.TakenAt, taken)
	}
	var got []store.Entry
	if err := history.DecodeSnapshot(s.Data, func(id string, score uint64, at int64) {
		got = append(got, store.Entry{ParticipantID: id, Score: score, AchievedAt: at})
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(entries) {
		t.Fatalf("snapshot entries %v, want %v", got, entries)
	}
}

func ranked(n int, prefix string) []store.Entry {
	out := make([]store.Entry, n)
	for i := range out {
		out[i] = store.Entry{Rank: int64(i + 1), ParticipantID: fmt.Sprintf("%s%06d", prefix, i), Score: store.MaxScore - uint64(i/2), AchievedAt: int64(1700000000000 + i)}
	}
	return out
}

func finalize(t *testing.T, h history.Store, id string, entries []store.Entry, at time.Time) history.Board {
	t.Helper()
	b := sampleBoard(id)
	if err := h.PutBoard(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	b.Completed, b.FinalizedAt, b.FinalVersion, b.FinalTotal = true, ms(at), 1234, int64(len(entries))
	if err := h.Finalize(context.Background(), b, Entries(entries)); err != nil {
		t.Fatal(err)
	}
	return b
}

func testFinalize(t *testing.T, h history.Store) {
	ctx := context.Background()
	entries := ranked(250, "p")
	b := finalize(t, h, "f", entries, time.Now())
	equalBoards(t, boardByID(t, h, "f"), b)

	page, err := h.FinalPage(ctx, "f", 95, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(page) != fmt.Sprint(entries[95:105]) {
		t.Fatalf("page at 95:\n got %v\nwant %v", page, entries[95:105])
	}
	if page, err := h.FinalPage(ctx, "f", 245, 100); err != nil || fmt.Sprint(page) != fmt.Sprint(entries[245:]) {
		t.Fatalf("last page %v, %v", page, err)
	}
	if page, err := h.FinalPage(ctx, "f", 250, 10); err != nil || len(page) != 0 {
		t.Fatalf("past the end %v, %v", page, err)
	}
	e, err := h.FinalEntry(ctx, "f", "p000123")
	if err != nil || e != entries[123] {
		t.Fatalf("final entry %v, %v; want %v", e, err, entries[123])
	}
	if _, err := h.FinalEntry(ctx, "f", "nobody"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("unknown participant: %v", err)
	}

	// A completed board takes no more puts and no second finalize.
	if err := h.PutBoard(ctx, sampleBoard("f")); !errors.Is(err, history.ErrCompleted) {
		t.Fatalf("put on completed board: %v, want ErrCompleted", err)
	}
	if err := h.Finalize(ctx, b, Entries(entries[:1])); !errors.Is(err, history.ErrCompleted) {
		t.Fatalf("second finalize: %v, want ErrCompleted", err)
	}
	if page, _ := h.FinalPage(ctx, "f", 0, 1000); len(page) != 250 {
		t.Fatalf("second finalize changed the ranking: %d entries", len(page))
	}
	unknown := sampleBoard("never-put")
	unknown.Completed = true
	if err := h.Finalize(ctx, unknown, Entries(entries)); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("finalize of an unknown board: %v, want ErrNotFound", err)
	}

	// A failing ranking (the iterator's source broke mid-way) leaves the board
	// live and its final ranking empty: the transaction is all or nothing.
	live := sampleBoard("g")
	if err := h.PutBoard(ctx, live); err != nil {
		t.Fatal(err)
	}
	var broken iter.Seq2[store.Entry, error] = func(yield func(store.Entry, error) bool) {
		for _, e := range entries[:10] {
			if !yield(e, nil) {
				return
			}
		}
		yield(store.Entry{}, errBrokenSource)
	}
	done := live
	done.Completed, done.FinalizedAt, done.FinalTotal = true, ms(time.Now()), 250
	if err := h.Finalize(ctx, done, broken); !errors.Is(err, errBrokenSource) {
		t.Fatalf("finalize from a broken source: %v, want the source's error", err)
	}
	equalBoards(t, boardByID(t, h, "g"), live)
	if page, _ := h.FinalPage(ctx, "g", 0, 100); len(page) != 0 {
		t.Fatalf("failed finalize left %d final entries", len(page))
	}
}

// testFinalizeDropsSnapshot: a completed leaderboard's live snapshot is of
// no more use (the final ranking replaces it, and recovery skips completed
// boards), so Finalize deletes it, and a snapshot that reaches the store
// after the completion (the writer's snapshot round read the board while it
// was being finalized) is not kept. Otherwise every completed leaderboard
// would leave its last snapshot, as large as its ranking, for good.
func testFinalizeDropsSnapshot(t *testing.T, h history.Store) {
	ctx := context.Background()
	entries := ranked(50, "s")
	snap := func(v uint64) history.Snapshot {
		return history.Snapshot{Board: "fs", Version: v, TakenAt: ms(time.Now()), Data: history.EncodeSnapshot(entries)}
	}
	if err := h.PutBoard(ctx, sampleBoard("fs")); err != nil {
		t.Fatal(err)
	}
	if err := h.Write(ctx, history.Batch{Snapshots: []history.Snapshot{snap(10)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Snapshot(ctx, "fs"); err != nil {
		t.Fatalf("snapshot of a live board: %v", err)
	}
	finalize(t, h, "fs", entries, time.Now())
	if _, err := h.Snapshot(ctx, "fs"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("snapshot after finalize: %v, want ErrNotFound", err)
	}
	if err := h.Write(ctx, history.Batch{Events: []history.Event{event("fs", 1, "a", 0, 1, false)}, Snapshots: []history.Snapshot{snap(20)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Snapshot(ctx, "fs"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("snapshot written after finalize: %v, want ErrNotFound", err)
	}
	// A live board's snapshots are written as before.
	if err := h.PutBoard(ctx, sampleBoard("live")); err != nil {
		t.Fatal(err)
	}
	live := snap(5)
	live.Board = "live"
	if err := h.Write(ctx, history.Batch{Snapshots: []history.Snapshot{live}}); err != nil {
		t.Fatal(err)
	}
	if s, err := h.Snapshot(ctx, "live"); err != nil || s.Version != 5 {
		t.Fatalf("live snapshot v%d, %v; want v5", s.Version, err)
	}
}

var errBrokenSource = errors.New("broken source")

// Entries yields es with no error, for Finalize.
func Entries(es []store.Entry) iter.Seq2[store.Entry, error] {
	return func(yield func(store.Entry, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func testFinalizeLarge(t *testing.T, h history.Store) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	entries := ranked(n, "p")
	finalize(t, h, "big", entries, time.Now())
	page, err := h.FinalPage(context.Background(), "big", n-3, 10)
	if err != nil || fmt.Sprint(page) != fmt.Sprint(entries[n-3:]) {
		t.Fatalf("tail %v, %v", page, err)
	}
}

func testResults(t *testing.T, h history.Store) {
	ctx := context.Background()
	base := ms(time.Now())
	finalize(t, h, "old", ranked(5, "p"), base.Add(-time.Hour))
	finalize(t, h, "new", ranked(5, "p")[2:], base)
	finalize(t, h, "other", ranked(3, "q"), base.Add(time.Minute))
	if err := h.PutBoard(ctx, sampleBoard("live")); err != nil {
		t.Fatal(err)
	}
	got, err := h.Results(ctx, "p000003", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []history.Result{
		{Leaderboard: "new", Name: "Board new", Rank: 4, Score: store.MaxScore - 1, AchievedAt: 1700000000003, FinalizedAt: base},
		{Leaderboard: "old", Name: "Board old", Rank: 4, Score: store.MaxScore - 1, AchievedAt: 1700000000003, FinalizedAt: base.Add(-time.Hour)},
	}
	for i := range got {
		got[i].FinalizedAt = norm(got[i].FinalizedAt)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("results:\n got %+v\nwant %+v", got, want)
	}
	if got, err := h.Results(ctx, "p000003", 1, 1); err != nil || len(got) != 1 || got[0].Leaderboard != "old" {
		t.Fatalf("second page %+v, %v", got, err)
	}
	if got, err := h.Results(ctx, "nobody", 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("nobody: %+v, %v", got, err)
	}
}

func testProfiles(t *testing.T, h history.Store) {
	ctx := context.Background()
	if _, err := h.Profile(ctx, "p1"); !errors.Is(err, history.ErrNotFound) {
		t.Fatalf("missing profile: %v", err)
	}
	p := history.Profile{ParticipantID: "p1", DisplayName: "Ada «λ» \"quoted\"", AvatarURL: "https://example.com/a.png",
		Metadata: json.RawMessage(`{"team":"red"}`), UpdatedAt: ms(time.Now())}
	if err := h.PutProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.DisplayName, p.AvatarURL = "Ada L.", ""
	if err := h.PutProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := h.PutProfile(ctx, history.Profile{ParticipantID: "p2", DisplayName: "Bo", UpdatedAt: ms(time.Now())}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Profile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	got.UpdatedAt = norm(got.UpdatedAt)
	if got.DisplayName != p.DisplayName || got.AvatarURL != "" || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("profile %+v, want %+v", got, p)
	}
	var meta map[string]string
	if err := json.Unmarshal(got.Metadata, &meta); err != nil || meta["team"] != "red" {
		t.Fatalf("metadata %s: %v", got.Metadata, err)
	}
	seen := map[string]string{}
	if err := h.Profiles(ctx, time.Time{}, func(p history.Profile) error { seen[p.ParticipantID] = p.DisplayName; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen["p1"] != "Ada L." || seen["p2"] != "Bo" {
		t.Fatalf("profiles %v", seen)
	}
	// Since a time: the profiles updated at or after it, and no other.
	base := ms(time.Now().Add(time.Hour))
	for i, id := range []string{"p3", "p4", "p5"} {
		if err := h.PutProfile(ctx, history.Profile{ParticipantID: id, DisplayName: id, UpdatedAt: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	var recent []string
	if err := h.Profiles(ctx, base.Add(time.Second), func(p history.Profile) error { recent = append(recent, p.ParticipantID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(recent)
	if !slices.Equal(recent, []string{"p4", "p5"}) {
		t.Fatalf("profiles since %v: %v, want p4 p5", base.Add(time.Second), recent)
	}
}

func testState(t *testing.T, h history.Store) {
	ctx := context.Background()
	s, err := h.State(ctx)
	if err != nil || s != (history.State{}) {
		t.Fatalf("new store state %+v, %v", s, err)
	}
	for _, want := range []history.State{{Epoch: "e1", Clean: false}, {Epoch: "e1", Clean: true}, {Epoch: "e2"}} {
		if err := h.SetState(ctx, want); err != nil {
			t.Fatal(err)
		}
		if got, err := h.State(ctx); err != nil || got != want {
			t.Fatalf("state %+v, %v; want %+v", got, err, want)
		}
	}
}

// testJSONWithNULEscape: metadata and config are any JSON object the API
// accepted; "\u0000" is valid JSON (encoding/json accepts it), so a store
// must keep it rather than fail the write (the API would answer 503 forever).
func testJSONWithNULEscape(t *testing.T, h history.Store) {
	ctx := context.Background()
	obj := json.RawMessage(`{"tag":"a\u0000b"}`)
	p := history.Profile{ParticipantID: "p1", DisplayName: "Ada", Metadata: obj, UpdatedAt: ms(time.Now())}
	if err := h.PutProfile(ctx, p); err != nil {
		t.Fatalf("profile with \\u0000 in metadata: %v", err)
	}
	got, err := h.Profile(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(got.Metadata, &m); err != nil || m["tag"] != "a\x00b" {
		t.Fatalf("metadata %s: %v", got.Metadata, err)
	}
	b := sampleBoard("nul")
	b.Config = obj
	if err := h.PutBoard(ctx, b); err != nil {
		t.Fatalf("board with \\u0000 in config: %v", err)
	}
	equalBoards(t, boardByID(t, h, "nul"), b)
}
