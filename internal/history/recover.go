package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/lbhq/leaderboard/internal/store"
)

// Recovered is what Recover rebuilt of one leaderboard.
type Recovered struct {
	Board        string
	Version      uint64
	Participants int
	SnapVersion  uint64 // version of the snapshot it started from (0: none)
	Replayed     int    // events replayed after the snapshot
}

// Recover rebuilds one live leaderboard into st: its latest snapshot, then
// every event after it, each setting or removing its participant (which makes
// the result exact even from a snapshot read while writes went on). The
// version is the last event's. A gap in the log's versions is an error: the
// leaderboard would silently miss a change.
func Recover(ctx context.Context, hs Store, st store.Store, b Board) (Recovered, error) {
	rec := Recovered{Board: b.ID}
	entries := []store.Entry{}
	index := map[string]int{} // participant -> position in entries
	snap, err := hs.Snapshot(ctx, b.ID)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return rec, err
	default:
		err := DecodeSnapshot(snap.Data, func(id string, score uint64, at int64) {
			if i, ok := index[id]; ok { // read twice by a scan that raced a move
				entries[i].Score, entries[i].AchievedAt = score, at
				return
			}
			index[id] = len(entries)
			entries = append(entries, store.Entry{ParticipantID: id, Score: score, AchievedAt: at})
		})
		if err != nil {
			return rec, fmt.Errorf("leaderboard %s: snapshot at version %d: %w", b.ID, snap.Version, err)
		}
		rec.SnapVersion = snap.Version
	}
	version := rec.SnapVersion
	removed := 0
	err = hs.EventsAfter(ctx, b.ID, version, func(e Event) error {
		if e.Version != version+1 {
			return fmt.Errorf("leaderboard %s: the audit log jumps from version %d to %d", b.ID, version, e.Version)
		}
		version = e.Version
		rec.Replayed++
		i, ok := index[e.ParticipantID]
		switch {
		case e.Removed && ok:
			entries[i].ParticipantID = "" // a hole, skipped below
			delete(index, e.ParticipantID)
			removed++
		case e.Removed:
		case ok:
			entries[i].Score, entries[i].AchievedAt = e.NewScore, e.AchievedAt
		default:
			index[e.ParticipantID] = len(entries)
			entries = append(entries, store.Entry{ParticipantID: e.ParticipantID, Score: e.NewScore, AchievedAt: e.AchievedAt})
		}
		return nil
	})
	if err != nil {
		return rec, err
	}
	if removed > 0 {
		kept := entries[:0]
		for _, e := range entries {
			if e.ParticipantID != "" {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	rec.Version, rec.Participants = version, len(entries)
	if err := st.Restore(ctx, b.ID, store.BoardOptions{Order: b.Order, Policy: b.Policy}, version, entries); err != nil {
		return rec, fmt.Errorf("leaderboard %s: %w", b.ID, err)
	}
	return rec, nil
}
