package history_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
)

// flakyStore records committed batches and fails the first failures writes.
type flakyStore struct {
	history.Store // only Write is used by the writer
	mu            sync.Mutex
	failures      int
	events        []history.Event
	snapshots     []history.Snapshot
}

func (f *flakyStore) Write(_ context.Context, b history.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return errors.New("disk on fire")
	}
	f.events = append(f.events, b.Events...)
	f.snapshots = append(f.snapshots, b.Snapshots...)
	return nil
}

func (f *flakyStore) written() []history.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]history.Event(nil), f.events...)
}

func publish(w *history.Writer, board string, from, to uint64) {
	for v := from; v <= to; v++ {
		w.Publish(store.Event{Leaderboard: board, Version: v, ParticipantID: "p", NewScore: v})
	}
}

// TestWriterRetriesFailedCommits: a failing store loses nothing and
// duplicates nothing: the batch goes back to the head of the queue and is
// written, in order, once the store answers again.
func TestWriterRetriesFailedCommits(t *testing.T) {
	fs := &flakyStore{failures: 3}
	w := history.NewWriter(fs, history.WriterOptions{FlushInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, nil)
	publish(w, "b", 1, 50)
	time.Sleep(5 * time.Millisecond) // let a failing commit take the first batch
	publish(w, "b", 51, 100)
	flushCtx, done := context.WithTimeout(ctx, 30*time.Second)
	defer done()
	if err := w.Flush(flushCtx); err != nil {
		t.Fatal(err)
	}
	got := fs.written()
	if len(got) != 100 {
		t.Fatalf("%d events written, want 100", len(got))
	}
	for i, e := range got {
		if e.Version != uint64(i+1) || e.CreatedAt == 0 {
			t.Fatalf("event %d: version %d created %d", i, e.Version, e.CreatedAt)
		}
	}
	if st := w.Stats(); st.Failures != 3 || st.Written != 100 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWriterAdmitBound: past MaxQueue waiting events, Admit refuses until a
// commit makes room.
func TestWriterAdmitBound(t *testing.T) {
	fs := &flakyStore{failures: 1}
	w := history.NewWriter(fs, history.WriterOptions{MaxQueue: 10})
	publish(w, "b", 1, 9)
	if !w.Admit() {
		t.Fatal("refused with 9 of 10 queued")
	}
	publish(w, "b", 10, 10)
	if w.Admit() {
		t.Fatal("admitted with the queue full")
	}
	ctx := context.Background()
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := w.Close(short); err == nil { // the one failure: still full
		t.Fatal("close succeeded on a failing store")
	}
	if w.Admit() {
		t.Fatal("admitted after a failed commit")
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.Admit() || len(fs.written()) != 10 {
		t.Fatalf("after the commit: admit %v, %d written", w.Admit(), len(fs.written()))
	}
}

// snapSource serves a fixed ranking for snapshots.
type snapSource struct{ entries []store.Entry }

func (s snapSource) Stats(context.Context, string) (store.Stats, error) {
	return store.Stats{Version: 7, Total: int64(len(s.entries))}, nil
}

func (s snapSource) Page(_ context.Context, _ string, offset, limit int) (store.Page, error) {
	end := min(offset+limit, len(s.entries))
	if offset > end {
		offset = end
	}
	return store.Page{Version: 7, Total: int64(len(s.entries)), Entries: s.entries[offset:end]}, nil
}

// TestWriterSnapshotsChangedBoards: only boards that changed since their last
// snapshot are snapshotted, and not after Forget.
func TestWriterSnapshotsChangedBoards(t *testing.T) {
	fs := &flakyStore{}
	w := history.NewWriter(fs, history.WriterOptions{})
	src := snapSource{entries: make([]store.Entry, 25_000)} // more than one page
	for i := range src.entries {
		src.entries[i] = store.Entry{ParticipantID: "p" + string(rune('a'+i%26)), Score: uint64(i)}
	}
	ctx := context.Background()
	w.Track("quiet", 3, 3)
	w.Track("gone", 1, 0)
	w.Forget("gone")
	publish(w, "busy", 1, 7)
	w.SnapshotChanged(ctx, src)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(fs.snapshots) != 1 || fs.snapshots[0].Board != "busy" || fs.snapshots[0].Version != 7 {
		t.Fatalf("snapshots %+v", fs.snapshots)
	}
	n := 0
	if err := history.DecodeSnapshot(fs.snapshots[0].Data, func(string, uint64, int64) { n++ }); err != nil || n != 25_000 {
		t.Fatalf("snapshot holds %d entries: %v", n, err)
	}
	w.SnapshotChanged(ctx, src) // nothing changed since
	w.Close(ctx)
	if len(fs.snapshots) != 1 {
		t.Fatalf("%d snapshots after a round with no change", len(fs.snapshots))
	}
}
