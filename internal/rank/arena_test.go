package rank

import (
	"fmt"
	"testing"
)

// A small leaderboard holds record space in proportion to its participants
// (thousands of boards of a few dozen each must not cost 64 KiB apiece), and
// the first chunk's growth keeps every participant readable.
func TestSmallBoardHoldsLittleRecordSpace(t *testing.T) {
	r := New(Descending)
	arena := func() (n int) {
		for _, c := range r.p.chunks {
			n += len(c)
		}
		return n
	}
	id := func(i int) string { return fmt.Sprintf("participant-%05d", i) } // 17 bytes: 24-byte records
	for i := range 40 {
		r.Submit(id(i), uint64(i), 0, PolicySet)
	}
	if n := arena(); n > 1<<10 {
		t.Fatalf("40 participants hold %d bytes of records, want at most 1 KiB", n)
	}
	for i := 40; i < 6000; i++ { // through every doubling of chunk 0, into chunk 2
		r.Submit(id(i), uint64(i), 0, PolicySet)
	}
	if len(r.p.chunks) < 3 || len(r.p.chunks[0]) != chunkSize {
		t.Fatalf("chunks %d, first %d bytes", len(r.p.chunks), len(r.p.chunks[0]))
	}
	for i := range 6000 {
		if e, ok := r.Get(id(i)); !ok || e.Rank != 6000-i {
			t.Fatalf("%s: %+v %v", id(i), e, ok)
		}
	}
	if got, _ := r.At(6000); got.ID != id(0) {
		t.Fatalf("last entry %+v", got)
	}
}
