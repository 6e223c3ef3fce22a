package bus

import (
	"slices"
	"sync"
)

// Verdict is what Dedup.Check makes of an event.
type Verdict uint8

const (
	// First: nothing was known about the leaderboard; the event is taken.
	First Verdict = iota
	// Next: the version follows the last one seen; the event is taken.
	Next
	// Gap: versions between the last one seen and this one are missing (the
	// consumer did not own the partition for a while, or the log lost them);
	// the event is taken, and state built from earlier events must be read
	// again from the ranking store.
	Gap
	// NewEpoch: the epoch changed (the ranking store's version sequence
	// restarted); the event is taken and the same holds as for Gap.
	NewEpoch
	// Duplicate: the version is at or below the last one seen in the same
	// epoch: a redelivery after a handover or a producer retry. Drop it.
	Duplicate
)

func (v Verdict) String() string {
	return [...]string{"first", "next", "gap", "new_epoch", "duplicate"}[v]
}

// Dedup remembers the last version seen (or read from the ranking store) per
// leaderboard and recognises the duplicates an at-least-once bus delivers.
// It is safe for concurrent use.
type Dedup struct {
	mu sync.Mutex
	m  map[string]mark
}

type mark struct {
	epoch   string
	version uint64
}

// NewDedup returns an empty Dedup.
func NewDedup() *Dedup { return &Dedup{m: map[string]mark{}} }

// Check judges e and, unless it is a Duplicate, records its version.
func (d *Dedup) Check(e *Event) Verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	last, ok := d.m[e.Leaderboard]
	var v Verdict
	switch {
	case !ok:
		v = First
	case last.epoch != e.Epoch:
		v = NewEpoch
	case e.Version <= last.version:
		return Duplicate
	case e.Version == last.version+1:
		v = Next
	default:
		v = Gap
	}
	d.m[e.Leaderboard] = mark{e.Epoch, e.Version}
	return v
}

// Filter keeps the events of es that are not duplicates, in place, and
// returns them.
func (d *Dedup) Filter(es []Event) []Event {
	return slices.DeleteFunc(es, func(e Event) bool { return d.Check(&e) == Duplicate })
}

// Set records that the state of board at version (of epoch) is known, as
// after reading it from the ranking store: events up to version are then
// duplicates.
func (d *Dedup) Set(board, epoch string, version uint64) {
	d.mu.Lock()
	d.m[board] = mark{epoch, version}
	d.mu.Unlock()
}

// Last returns the last version recorded for board.
func (d *Dedup) Last(board string) (epoch string, version uint64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.m[board]
	return m.epoch, m.version, ok
}

// Forget drops what is known about board.
func (d *Dedup) Forget(board string) {
	d.mu.Lock()
	delete(d.m, board)
	d.mu.Unlock()
}

// ForgetPartitions drops every leaderboard that lives in one of partitions
// of a topic with n partitions (on EventHandler.Revoked).
func (d *Dedup) ForgetPartitions(partitions []int32, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for b := range d.m {
		if slices.Contains(partitions, PartitionFor(b, n)) {
			delete(d.m, b)
		}
	}
}

// Len is the number of leaderboards known.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}
