package history

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
)

// Source is what the writer reads live rankings from to snapshot them (the
// ranking store).
type Source interface {
	Stats(ctx context.Context, board string) (store.Stats, error)
	Page(ctx context.Context, board string, offset, limit int) (store.Page, error)
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// FlushInterval is the group commit: queued events are written at most
	// this long after they were published (default 200 ms).
	FlushInterval time.Duration
	// MaxQueue bounds the events waiting for a commit; past it Admit refuses
	// new submissions (default 200,000).
	MaxQueue int
	// SnapshotInterval is how often each changed live leaderboard is
	// snapshotted, bounding the log replayed at start-up (default 30 s).
	SnapshotInterval time.Duration
	// Logger receives write failures; nil discards them.
	Logger *slog.Logger
}

// snapshotPage is how many entries one read of a snapshot takes: each read
// holds the leaderboard's read lock only for its own length.
const snapshotPage = 2_000

// Writer is the history writer: the ranking store's event sink, which queues
// every accepted change and commits the queue in one transaction per flush
// interval, off the request path; and the snapshotter of live leaderboards.
type Writer struct {
	hs   Store
	opts WriterOptions
	log  *slog.Logger

	queued atomic.Int64 // events waiting, read by Admit without the lock
	stats  struct {
		written, commits, failures, snapshots, commitNanos atomic.Int64
	}

	mu        sync.Mutex
	pending   []Event
	snaps     []Snapshot
	published uint64        // events published so far
	committed uint64        // of which committed
	commitCh  chan struct{} // closed at the next successful commit
	boards    map[string]*boardLog
	lastErr   error

	wake chan struct{}
}

type boardLog struct {
	version     uint64 // latest version published (or recovered)
	snapVersion uint64 // version of the latest snapshot taken
}

// NewWriter returns a writer over hs. Call Run to start committing.
func NewWriter(hs Store, opts WriterOptions) *Writer {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 200_000
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 30 * time.Second
	}
	w := &Writer{hs: hs, opts: opts, log: opts.Logger, commitCh: make(chan struct{}), boards: map[string]*boardLog{}, wake: make(chan struct{}, 1)}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return w
}

// Publish implements store.EventSink: it queues the event. It never blocks on
// I/O (it runs under the leaderboard's write lock).
func (w *Writer) Publish(e store.Event) {
	ev := Event{Event: e, CreatedAt: time.Now().UnixMilli()}
	w.mu.Lock()
	w.pending = append(w.pending, ev)
	w.published++
	b := w.boards[e.Leaderboard]
	if b == nil {
		b = &boardLog{}
		w.boards[e.Leaderboard] = b
	}
	b.version = e.Version
	w.mu.Unlock()
	w.queued.Add(1)
}

// Admit reports whether the queue has room for more submissions. Submissions
// are refused (503) while it is full, so a stalled database costs bounded
// memory; the bound is soft by at most the submissions already admitted.
func (w *Writer) Admit() bool { return w.queued.Load() < int64(w.opts.MaxQueue) }

// Queued returns the number of events waiting for a commit.
func (w *Writer) Queued() int64 { return w.queued.Load() }

// WriterStats are the writer's counters since it started.
type WriterStats struct {
	Queued     int64         // events waiting for a commit
	Written    int64         // events committed
	Snapshots  int64         // snapshots committed
	Commits    int64         // successful group commits
	Failures   int64         // failed commits (retried)
	CommitTime time.Duration // time spent in commits, failed ones included
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Queued: w.queued.Load(), Written: w.stats.written.Load(), Snapshots: w.stats.snapshots.Load(),
		Commits: w.stats.commits.Load(), Failures: w.stats.failures.Load(), CommitTime: time.Duration(w.stats.commitNanos.Load()),
	}
}

// Track records a leaderboard recovered at version, whose latest snapshot is
// at snapVersion, so that it is snapshotted again only once it changes.
func (w *Writer) Track(board string, version, snapVersion uint64) {
	w.mu.Lock()
	w.boards[board] = &boardLog{version: version, snapVersion: snapVersion}
	w.mu.Unlock()
}

// Forget stops snapshotting a leaderboard (it completed).
func (w *Writer) Forget(board string) {
	w.mu.Lock()
	delete(w.boards, board)
	w.mu.Unlock()
}

// Run commits every flush interval and snapshots every snapshot interval
// (none when src is nil) until ctx is done. Call Close after it returns to commit what is left.
func (w *Writer) Run(ctx context.Context, src Source) {
	defer backgroundThread()()
	commit := time.NewTicker(w.opts.FlushInterval)
	defer commit.Stop()
	snap := time.NewTicker(w.opts.SnapshotInterval)
	defer snap.Stop()
	if src == nil { // a ranking store that keeps its own state (Redis): no snapshots
		snap.Stop()
	}
	snapping := make(chan struct{}, 1) // one snapshot round at a time, beside the commits
	for {
		select {
		case <-ctx.Done():
			return
		case <-commit.C:
			w.commit(ctx)
		case <-w.wake:
			w.commit(ctx)
		case <-snap.C:
			select {
			case snapping <- struct{}{}:
				go func() {
					defer func() { <-snapping }()
					w.SnapshotChanged(ctx, src)
				}()
			default:
			}
		}
	}
}

// commit writes everything queued in one transaction. On failure the batch
// goes back to the head of the queue, to be retried at the next interval.
func (w *Writer) commit(ctx context.Context) error {
	w.mu.Lock()
	batch := Batch{Events: w.pending, Snapshots: w.snaps}
	upTo := w.published
	w.pending, w.snaps = nil, nil
	w.mu.Unlock()
	if len(batch.Events) == 0 && len(batch.Snapshots) == 0 {
		w.markCommitted(upTo)
		return nil
	}
	start := time.Now()
	err := w.hs.Write(ctx, batch)
	w.stats.commitNanos.Add(int64(time.Since(start)))
	if err != nil {
		w.stats.failures.Add(1)
		w.mu.Lock()
		w.pending = append(batch.Events, w.pending...)
		w.snaps = append(batch.Snapshots, w.snaps...)
		first := w.lastErr == nil
		w.lastErr = err
		w.mu.Unlock()
		if first {
			w.log.Error("history: commit failed; retrying every flush interval, submissions are refused once the queue is full",
				"events", len(batch.Events), "err", err)
		}
		return err
	}
	w.queued.Add(-int64(len(batch.Events)))
	w.stats.written.Add(int64(len(batch.Events)))
	w.stats.snapshots.Add(int64(len(batch.Snapshots)))
	w.stats.commits.Add(1)
	w.markCommitted(upTo)
	return nil
}

func (w *Writer) markCommitted(upTo uint64) {
	w.mu.Lock()
	if w.lastErr != nil {
		w.log.Info("history: commits succeed again")
		w.lastErr = nil
	}
	if upTo > w.committed {
		w.committed = upTo
		close(w.commitCh)
		w.commitCh = make(chan struct{})
	}
	w.mu.Unlock()
}

// Flush commits everything published before it was called and waits for it.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.published
	w.mu.Unlock()
	for {
		w.mu.Lock()
		done, ch, lastErr := w.committed >= target, w.commitCh, w.lastErr
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if lastErr != nil {
				return lastErr
			}
			return ctx.Err()
		}
	}
}

// Close commits what is queued (the server's clean stop). It returns an error
// when the queue could not be written before ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	for {
		err := w.commit(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(w.opts.FlushInterval):
		}
	}
}

// SnapshotChanged snapshots every tracked leaderboard that changed since its
// last snapshot; the snapshots are committed with the next group commit.
func (w *Writer) SnapshotChanged(ctx context.Context, src Source) {
	w.mu.Lock()
	var due []string
	for id, b := range w.boards {
		if b.version > b.snapVersion {
			due = append(due, id)
		}
	}
	w.mu.Unlock()
	for _, id := range due {
		if ctx.Err() != nil {
			return
		}
		if err := w.snapshot(ctx, src, id); err != nil {
			w.log.Warn("history: snapshot failed", "leaderboard", id, "err", err)
		}
	}
}

// snapshot reads a leaderboard page by page while writes go on. The result
// is "fuzzy": it starts at version V and may hold changes after V. That is
// safe because recovery replays the log after V with each event setting (or
// removing) its participant, which converges to the state of the last event
// whatever the scan saw; and the snapshot is queued after the events it may
// hold, so it is never committed without them.
// maxSnapshotRetries bounds the pages a snapshot reads again because the
// board changed more between two reads than their overlap allowed for.
const maxSnapshotRetries = 16

func (w *Writer) snapshot(ctx context.Context, src Source, id string) error {
	st, err := src.Stats(ctx, id)
	if err != nil {
		return err
	}
	// Pages are read by offset while writes go on, and a change moves every
	// participant it passes by one rank: when someone above the next page's
	// offset drops or is removed between two reads, the participant first on
	// that page moves up onto the one already read, neither read sees it, and
	// no event after st.Version brings it back. Versions count changes, so
	// each page starts at least as many ranks before the end of the last one
	// as versions passed in between, and is read again further back when more
	// passed than it allowed for. A participant read twice (it changed, and
	// moved) is harmless: recovery keeps its last reading.
	var enc SnapshotEncoder
	covered, seen := 0, st.Version // every participant ranked 1..covered at version seen that has not changed since is encoded
	overlap, retries := 0, 0
	for {
		offset := max(covered-overlap, 0)
		limit := covered - offset + snapshotPage // always reaches snapshotPage ranks past covered
		p, err := src.Page(ctx, id, offset, limit)
		if err != nil {
			return err
		}
		if p.Version < seen {
			return fmt.Errorf("leaderboard %s went back from version %d to %d during its snapshot", id, seen, p.Version)
		}
		passed := p.Version - seen
		if offset > 0 && uint64(covered-offset) < passed {
			if retries++; retries > maxSnapshotRetries {
				return fmt.Errorf("leaderboard %s changed faster than its snapshot could read it; tried again at the next interval", id)
			}
			overlap = int(min(2*passed, uint64(covered)))
			continue
		}
		// Who ranks covered-passed or better now and has not changed since
		// was ranked covered or better at seen: encoded already.
		for i := max(covered-int(passed)-offset, 0); i < len(p.Entries); i++ {
			enc.Add(p.Entries[i].ParticipantID, p.Entries[i].Score, p.Entries[i].AchievedAt)
		}
		if len(p.Entries) < limit {
			break
		}
		covered, seen = offset+len(p.Entries), p.Version
		overlap = int(min(2*passed+8, uint64(covered))) // as many changes again, and then some, before the next read
	}
	snap := Snapshot{Board: id, Version: st.Version, TakenAt: time.Now(), Data: enc.Finish()}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.boards[id]
	if b == nil { // completed meanwhile
		return nil
	}
	w.snaps = append(w.snaps, snap)
	b.snapVersion = max(b.snapVersion, st.Version)
	return nil
}
