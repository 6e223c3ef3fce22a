package bus

import (
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
)

func ev(board, epoch string, v uint64) Event {
	return Event{Epoch: epoch, Event: store.Event{Leaderboard: board, Version: v}}
}

func TestDedup(t *testing.T) {
	d := NewDedup()
	steps := []struct {
		e    Event
		want Verdict
	}{
		{ev("a", "e1", 5), First},
		{ev("a", "e1", 6), Next},
		{ev("a", "e1", 6), Duplicate},
		{ev("a", "e1", 3), Duplicate},
		{ev("b", "e1", 1), First},
		{ev("a", "e1", 9), Gap},
		{ev("a", "e1", 7), Duplicate}, // below the last seen, even if never seen itself
		{ev("a", "e2", 1), NewEpoch},
		{ev("a", "e2", 2), Next},
		{ev("a", "e1", 10), NewEpoch}, // the epoch is compared, not ordered
	}
	for i, s := range steps {
		if got := d.Check(&s.e); got != s.want {
			t.Fatalf("step %d (%s v%d %s): %s, want %s", i, s.e.Leaderboard, s.e.Version, s.e.Epoch, got, s.want)
		}
	}
	// A snapshot read from the store at version 20 makes 20 and below duplicates.
	d.Set("c", "e1", 20)
	es := d.Filter([]Event{ev("c", "e1", 19), ev("c", "e1", 20), ev("c", "e1", 21), ev("c", "e1", 21), ev("c", "e1", 22)})
	if len(es) != 2 || es[0].Version != 21 || es[1].Version != 22 {
		t.Fatalf("Filter kept %+v", es)
	}
	if _, v, ok := d.Last("c"); !ok || v != 22 {
		t.Fatalf("Last(c) = %d %v", v, ok)
	}
	d.Forget("c")
	if _, _, ok := d.Last("c"); ok {
		t.Fatal("Forget kept c")
	}
	// ForgetPartitions drops exactly the boards of those partitions.
	for _, b := range []string{"x1", "x2", "x3", "x4", "x5", "x6"} {
		d.Set(b, "e1", 1)
	}
	n := 4
	p := PartitionFor("x1", n)
	d.ForgetPartitions([]int32{p}, n)
	for _, b := range []string{"a", "b", "x1", "x2", "x3", "x4", "x5", "x6"} {
		_, _, ok := d.Last(b)
		if ok == (PartitionFor(b, n) == p) {
			t.Errorf("%s (partition %d) known=%v after forgetting partition %d", b, PartitionFor(b, n), ok, p)
		}
	}
}
