package rank

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// batchCase drives two rankings through the same random history, one with the
// batched calls and one with the single-operation calls, and compares them
// after every batch: RankMany against Rank for random ids (with duplicates and
// absent ids), SubmitMany's Changes and final state against Submit one by one.
func batchCase(t *testing.T, order Order, policy Policy, pool, rounds, maxBatch int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(order)<<8|uint64(policy)))
	a, b := New(order), New(order) // a: batched, b: one by one
	scores := []uint64{0, 1, 2, 3, 1000, MaxScore - 1, MaxScore}
	id := func() string {
		if rng.IntN(20) == 0 {
			return fmt.Sprintf("absent-%d", rng.IntN(5)) // never submitted in RankMany batches
		}
		return fmt.Sprintf("p%05d", rng.IntN(pool))
	}
	var (
		subs []Sub
		got  []Change
		ids  []string
		out  []int
	)
	for round := range rounds {
		// A batch of submissions, with repeats of the same participant inside it.
		subs = subs[:0]
		for range rng.IntN(maxBatch + 1) {
			s := Sub{ID: fmt.Sprintf("p%05d", rng.IntN(pool)), At: int64(rng.IntN(4))}
			if rng.IntN(3) == 0 && len(subs) > 0 {
				s.ID = subs[rng.IntN(len(subs))].ID
			}
			if rng.IntN(2) == 0 {
				s.Score = scores[rng.IntN(len(scores))]
			} else {
				s.Score = rng.Uint64N(MaxScore + 1)
			}
			subs = append(subs, s)
		}
		got = slices.Grow(got[:0], len(subs))[:len(subs)]
		a.SubmitMany(subs, policy, got)
		for i, s := range subs {
			if want := b.Submit(s.ID, s.Score, s.At, policy); got[i] != want {
				t.Fatalf("round %d: SubmitMany[%d] (%+v) = %+v, Submit = %+v", round, i, s, got[i], want)
			}
		}
		// Some removals, so that holes, compaction and merges happen between batches.
		for range rng.IntN(3) {
			rid := fmt.Sprintf("p%05d", rng.IntN(pool))
			ca, oka := a.Remove(rid)
			cb, okb := b.Remove(rid)
			if ca != cb || oka != okb {
				t.Fatalf("round %d: Remove(%s) differs", round, rid)
			}
		}
		checkTree(t, &a.t)
		var ea, eb []Entry
		a.Each(func(e Entry) bool { ea = append(ea, e); return true })
		b.Each(func(e Entry) bool { eb = append(eb, e); return true })
		if !slices.Equal(ea, eb) {
			t.Fatalf("round %d: state after SubmitMany differs from Submit one by one", round)
		}
		// RankMany against Rank, on both rankings (they are equal).
		ids = ids[:0]
		for range rng.IntN(maxBatch + 1) {
			if rng.IntN(4) == 0 && len(ids) > 0 {
				ids = append(ids, ids[rng.IntN(len(ids))])
			} else {
				ids = append(ids, id())
			}
		}
		out = slices.Grow(out[:0], len(ids))[:len(ids)]
		for i := range out {
			out[i] = -1
		}
		a.RankMany(ids, out)
		for i, x := range ids {
			if want := a.Rank(x); out[i] != want {
				t.Fatalf("round %d: RankMany[%d] (%s) = %d, Rank = %d", round, i, x, out[i], want)
			}
		}
	}
}

func TestBatchMatchesSingleSmallNodes(t *testing.T) {
	withSmallNodes(t)
	for _, order := range []Order{Descending, Ascending} {
		for _, policy := range []Policy{PolicySet, PolicyBest} {
			t.Run(fmt.Sprintf("order=%d/policy=%d", order, policy), func(t *testing.T) {
				batchCase(t, order, policy, 300, 400, 150, 1)
			})
		}
	}
}

func TestBatchMatchesSingleCollidingTags(t *testing.T) {
	withSmallNodes(t)
	withCollidingTags(t)
	for _, order := range []Order{Descending, Ascending} {
		for _, policy := range []Policy{PolicySet, PolicyBest} {
			t.Run(fmt.Sprintf("order=%d/policy=%d", order, policy), func(t *testing.T) {
				batchCase(t, order, policy, 300, 200, 150, 3)
			})
		}
	}
}

func TestBatchMatchesSingleLargeNodes(t *testing.T) {
	for _, order := range []Order{Descending, Ascending} {
		for _, policy := range []Policy{PolicySet, PolicyBest} {
			t.Run(fmt.Sprintf("order=%d/policy=%d", order, policy), func(t *testing.T) {
				batchCase(t, order, policy, 20000, 300, 200, 2)
			})
		}
	}
}

// TestRankManyEveryParticipant: on a tree several levels deep, RankMany of all
// ids in rank order gives 1..n.
func TestRankManyEveryParticipant(t *testing.T) {
	withSmallNodes(t)
	r := New(Descending)
	for i := range 1000 {
		r.Submit(fmt.Sprint("p", i), uint64(i%13), int64(i%3), PolicySet)
	}
	var ids []string
	r.Each(func(e Entry) bool { ids = append(ids, e.ID); return true })
	out := make([]int, len(ids))
	r.RankMany(ids, out)
	for i, rk := range out {
		if rk != i+1 {
			t.Fatalf("RankMany[%d] = %d, want %d", i, rk, i+1)
		}
	}
	// Empty ranking and empty batch.
	e := New(Ascending)
	out = []int{-1, -1}
	e.RankMany([]string{"x", "y"}, out)
	if out[0] != 0 || out[1] != 0 {
		t.Fatalf("RankMany on an empty ranking = %v", out)
	}
	e.RankMany(nil, nil)
	e.SubmitMany(nil, PolicySet, nil)
}

// TestSubmitManyPanicsInOrder: an out-of-range submission panics like Submit,
// after the submissions before it were applied and none after it.
func TestSubmitManyPanicsInOrder(t *testing.T) {
	r := New(Descending)
	subs := []Sub{{"a", 1, 1}, {"b", 2, 2}, {"c", MaxScore + 1, 3}, {"d", 4, 4}}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("SubmitMany did not panic")
			}
		}()
		r.SubmitMany(subs, PolicySet, make([]Change, len(subs)))
	}()
	if r.Len() != 2 || r.Rank("a") != 2 || r.Rank("b") != 1 || r.Rank("d") != 0 {
		t.Fatalf("after the panic: Len %d, ranks a=%d b=%d d=%d", r.Len(), r.Rank("a"), r.Rank("b"), r.Rank("d"))
	}
}
