package rank

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// oracle is the obviously correct model: every participant in a slice, sorted
// in full after every change.
type oracle struct {
	order   Order
	entries []Entry // sorted, Rank filled in
}

func (o *oracle) compare(a, b Entry) int { return compareEntries(o.order, a, b) }

// compareEntries is the API's total order, written the obvious way for the
// test models.
func compareEntries(order Order, a, b Entry) int {
	if a.Score != b.Score {
		if order == Descending {
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.Score, b.Score)
	}
	if a.AchievedAt != b.AchievedAt {
		return cmp.Compare(a.AchievedAt, b.AchievedAt)
	}
	return cmp.Compare(a.ID, b.ID)
}

func (o *oracle) find(id string) int {
	for i, e := range o.entries {
		if e.ID == id {
			return i
		}
	}
	return -1
}

func (o *oracle) resort() {
	slices.SortFunc(o.entries, o.compare)
	for i := range o.entries {
		o.entries[i].Rank = i + 1
	}
}

func (o *oracle) submit(id string, score uint64, at int64, p Policy) Change {
	i := o.find(id)
	if i < 0 {
		o.entries = append(o.entries, Entry{ID: id, Score: score, AchievedAt: at})
		o.resort()
		return Change{Updated: true, NewScore: score, NewAt: at, NewRank: o.entries[o.find(id)].Rank}
	}
	old := o.entries[i]
	better := score > old.Score
	if o.order == Ascending {
		better = score < old.Score
	}
	if score == old.Score || (p == PolicyBest && !better) {
		return Change{Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: old.Rank,
			NewScore: old.Score, NewAt: old.AchievedAt, NewRank: old.Rank}
	}
	o.entries[i].Score, o.entries[i].AchievedAt = score, at
	o.resort()
	return Change{Updated: true, Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: old.Rank,
		NewScore: score, NewAt: at, NewRank: o.entries[o.find(id)].Rank}
}

func (o *oracle) remove(id string) (Change, bool) {
	i := o.find(id)
	if i < 0 {
		return Change{}, false
	}
	old := o.entries[i]
	o.entries = slices.Delete(o.entries, i, i+1)
	o.resort()
	return Change{Updated: true, Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: old.Rank}, true
}

// withSmallNodes shrinks the node sizes so a few hundred keys build a tree
// several levels deep, exercising splits, merges and redistribution at every
// level, and makes the arena compact after a few removals.
func withSmallNodes(t *testing.T) {
	lm, lmin, im, imin, cmd, tm := leafMax, leafMin, innerMax, innerMin, compactMinDead, touchMin
	// touchMin 0: every lookup touches its leaf first, as on a large board
	// (under -race, checkptr vets the cast to the leaf's block).
	leafMax, leafMin, innerMax, innerMin, compactMinDead, touchMin = 4, 2, 4, 2, 256, 0
	t.Cleanup(func() { leafMax, leafMin, innerMax, innerMin, compactMinDead, touchMin = lm, lmin, im, imin, cmd, tm })
}

// withCollidingTags makes hash tags one bit wide for the rankings the test
// creates: about half the slots probed then carry a matching tag that belongs to
// someone else, so every lookup that trusts a tag before reading the record
// (Rank, Get, RankMany, SubmitMany's warm-up) must find out and go on.
func withCollidingTags(t *testing.T) {
	old := tagMask
	tagMask = 1
	t.Cleanup(func() { tagMask = old })
}

// checkTree verifies the structure itself: counts, separators, leaf chain,
// and that every node's arrays are still the ones in its own allocation.
func checkTree(t *testing.T, tr *tree) {
	t.Helper()
	if tr.root == nil {
		if tr.n != 0 {
			t.Fatalf("nil root with n=%d", tr.n)
		}
		return
	}
	var leaves []*node
	var walk func(n *node, lo, hi *entry, depth int) (int, int)
	walk = func(n *node, lo, hi *entry, depth int) (int, int) {
		if n.leaf {
			for i := range n.keys {
				k := &n.keys[i]
				if i > 0 && !tr.less(&n.keys[i-1], k) {
					t.Fatalf("leaf keys out of order at %d", i)
				}
				if lo != nil && tr.less(k, lo) {
					t.Fatalf("key %v below its lower bound %v", *k, *lo)
				}
				if hi != nil && !tr.less(k, hi) {
					t.Fatalf("key %v not below upper bound %v", *k, *hi)
				}
			}
			if b := (*leafBlock)(unsafe.Pointer(n)); unsafe.SliceData(n.keys) != &b.keys[0] {
				t.Fatalf("a leaf's keys moved out of its allocation")
			}
			leaves = append(leaves, n)
			return len(n.keys), depth
		}
		if len(n.kids) != len(n.keys) || len(n.kids) != len(n.counts) || len(n.kids) == 0 {
			t.Fatalf("inner node lengths differ: keys %d kids %d counts %d", len(n.keys), len(n.kids), len(n.counts))
		}
		// Separators nest inside the parent's bounds and increase: Submit's
		// test of whether a new key stays in its leaf relies on it.
		for i := 1; i < len(n.keys); i++ {
			k := &n.keys[i]
			if lo != nil && tr.less(k, lo) {
				t.Fatalf("separator %v below its parent's lower bound %v", *k, *lo)
			}
			if hi != nil && !tr.less(k, hi) {
				t.Fatalf("separator %v not below its parent's upper bound %v", *k, *hi)
			}
			if i > 1 && !tr.less(&n.keys[i-1], k) {
				t.Fatalf("separators out of order at %d", i)
			}
		}
		if b := (*innerBlock)(unsafe.Pointer(n)); unsafe.SliceData(n.keys) != &b.keys[0] ||
			unsafe.SliceData(n.kids) != &b.kids[0] || unsafe.SliceData(n.counts) != &b.counts[0] {
			t.Fatalf("an inner node's arrays moved out of its allocation")
		}
		total, leafDepth := 0, -1
		for i, kid := range n.kids {
			clo, chi := lo, hi
			if i > 0 {
				clo = &n.keys[i]
			}
			if i+1 < len(n.kids) {
				chi = &n.keys[i+1]
			}
			c, d := walk(kid, clo, chi, depth+1)
			if c != n.counts[i] {
				t.Fatalf("count %d recorded for a child holding %d", n.counts[i], c)
			}
			if leafDepth >= 0 && d != leafDepth {
				t.Fatalf("leaves at depths %d and %d", leafDepth, d)
			}
			leafDepth = d
			total += c
		}
		return total, leafDepth
	}
	total, _ := walk(tr.root, nil, nil, 0)
	if total != tr.n {
		t.Fatalf("tree holds %d keys, n says %d", total, tr.n)
	}
	for i := range leaves {
		var want *node
		if i+1 < len(leaves) {
			want = leaves[i+1]
		}
		if leaves[i].next != want {
			t.Fatalf("leaf chain broken after leaf %d", i)
		}
	}
}

func compareWithOracle(t *testing.T, step int, r *Ranking, o *oracle, rng *rand.Rand) {
	t.Helper()
	if r.Len() != len(o.entries) {
		t.Fatalf("step %d: Len %d, oracle %d", step, r.Len(), len(o.entries))
	}
	// Full order.
	var got []Entry
	r.Each(func(e Entry) bool { got = append(got, e); return true })
	if !slices.Equal(got, o.entries) {
		t.Fatalf("step %d: order differs\n got %v\nwant %v", step, got, o.entries)
	}
	// Rank and Get of every participant, At of every rank.
	for _, e := range o.entries {
		if g, ok := r.Get(e.ID); !ok || g != e {
			t.Fatalf("step %d: Get(%s) = %v %v, want %v", step, e.ID, g, ok, e)
		}
		if rk := r.Rank(e.ID); rk != e.Rank {
			t.Fatalf("step %d: Rank(%s) = %d, want %d", step, e.ID, rk, e.Rank)
		}
		if g, ok := r.At(e.Rank); !ok || g != e {
			t.Fatalf("step %d: At(%d) = %v, want %v", step, e.Rank, g, e)
		}
	}
	if _, ok := r.At(0); ok {
		t.Fatalf("At(0) succeeded")
	}
	if _, ok := r.At(len(o.entries) + 1); ok {
		t.Fatalf("At(n+1) succeeded")
	}
	// A random page and a random window around a participant.
	n := len(o.entries)
	from, limit := rng.IntN(n+3)-1, rng.IntN(12)+1
	page := r.Range(nil, from, limit)
	lo, hi := max(from, 1), min(from+limit-1, n)
	var want []Entry
	if lo <= hi {
		want = o.entries[lo-1 : hi]
	}
	if !slices.Equal(page, want) {
		t.Fatalf("step %d: Range(%d,%d) = %v, want %v", step, from, limit, page, want)
	}
	if n > 0 {
		e := o.entries[rng.IntN(n)]
		radius := rng.IntN(4)
		around := r.Range(nil, e.Rank-radius, 2*radius+1)
		lo, hi := max(e.Rank-radius, 1), min(e.Rank+radius, n)
		if !slices.Equal(around, o.entries[lo-1:hi]) {
			t.Fatalf("step %d: around %s radius %d = %v, want %v", step, e.ID, radius, around, o.entries[lo-1:hi])
		}
	}
	checkTree(t, &r.t)
}

// TestRankingMatchesOracle runs thousands of random operations against the
// sorted-slice oracle and compares everything after every step.
func TestRankingMatchesOracle(t *testing.T) {
	withSmallNodes(t)
	t.Run("tags=full", func(t *testing.T) { oracleCases(t) })
	t.Run("tags=colliding", func(t *testing.T) {
		withCollidingTags(t)
		oracleCases(t)
	})
}

func oracleCases(t *testing.T) {
	for _, order := range []Order{Descending, Ascending} {
		for _, policy := range []Policy{PolicySet, PolicyBest} {
			t.Run(fmt.Sprintf("order=%d/policy=%d", order, policy), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(order)+1, uint64(policy)+7))
				r, o := New(order), &oracle{order: order}
				// Few distinct scores and timestamps force ties at every level of the order;
				// scores near MaxScore check that the mapping is exact at the top of the range.
				scores := []uint64{0, 1, 2, 3, 1000, MaxScore - 2, MaxScore - 1, MaxScore}
				for step := 0; step < 4000; step++ {
					id := fmt.Sprintf("p%03d", rng.IntN(300))
					switch op := rng.IntN(10); {
					case op < 7 || o.find(id) < 0 && op < 9:
						var score uint64
						if rng.IntN(2) == 0 {
							score = scores[rng.IntN(len(scores))]
						} else {
							score = rng.Uint64N(MaxScore + 1)
						}
						at := int64(rng.IntN(4))
						got, want := r.Submit(id, score, at, policy), o.submit(id, score, at, policy)
						if got != want {
							t.Fatalf("step %d: Submit(%s, %d, %d) = %+v, want %+v", step, id, score, at, got, want)
						}
					default:
						got, gok := r.Remove(id)
						want, wok := o.remove(id)
						if got != want || gok != wok {
							t.Fatalf("step %d: Remove(%s) = %+v %v, want %+v %v", step, id, got, gok, want, wok)
						}
					}
					compareWithOracle(t, step, r, o, rng)
				}
				// Drain to empty: merges all the way up to the root.
				for len(o.entries) > 0 {
					id := o.entries[rng.IntN(len(o.entries))].ID
					r.Remove(id)
					o.remove(id)
					compareWithOracle(t, -1, r, o, rng)
				}
			})
		}
	}
}

// TestRankingLargeChurn checks the real node sizes with many keys: a growing,
// then churning, then shrinking ranking keeps its structure and order.
func TestRankingLargeChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r, ids := New(Descending), make([]string, 20000)
	for i := range ids {
		ids[i] = fmt.Sprintf("participant-%08d", i)
		r.Submit(ids[i], rng.Uint64N(1000), int64(i), PolicySet)
	}
	checkTree(t, &r.t)
	for i := 0; i < 50000; i++ {
		r.Submit(ids[rng.IntN(len(ids))], rng.Uint64N(1000), int64(i), PolicySet)
	}
	checkTree(t, &r.t)
	for _, i := range rng.Perm(len(ids))[:19000] {
		if _, ok := r.Remove(ids[i]); !ok {
			t.Fatalf("remove %s failed", ids[i])
		}
	}
	checkTree(t, &r.t)
	prev := Entry{}
	r.Each(func(e Entry) bool {
		if e.Rank > 1 && (prev.Score < e.Score || prev.Score == e.Score && prev.AchievedAt > e.AchievedAt) {
			t.Fatalf("out of order at rank %d: %v then %v", e.Rank, prev, e)
		}
		prev = e
		return true
	})
	if r.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", r.Len())
	}
}

// TestSubmitDoesNotKeepCallerBuffer: ids handed in may alias a request buffer
// that is reused afterwards; the ranking must keep its own copy, on insert and
// on update (where a map assignment would otherwise swap in the caller's key).
func TestSubmitDoesNotKeepCallerBuffer(t *testing.T) {
	buf := []byte(`{"participant_id":"alice"}`)
	alias := unsafe.String(&buf[19], 5)
	r := New(Descending)
	r.Submit(alias, 10, 1, PolicySet)
	r.Submit(alias, 20, 2, PolicySet)
	copy(buf[19:], "XXXXX")
	if e, ok := r.Get("alice"); !ok || e.ID != "alice" || e.Score != 20 {
		t.Fatalf("Get(alice) = %v %v after the request buffer changed", e, ok)
	}
	if e, _ := r.At(1); e.ID != "alice" {
		t.Fatalf("At(1).ID = %q", e.ID)
	}
}

func TestIDOf(t *testing.T) {
	var buf [16]byte
	for _, i := range []int{0, 7, 123456, 999999999999999} {
		if got, want := idOf(&buf, i), fmt.Sprintf("p%015d", i); got != want {
			t.Fatalf("idOf(%d) = %q, want %q", i, got, want)
		}
	}
}

// TestWarmChangesNothing: Warm is only a cache hint.
func TestWarmChangesNothing(t *testing.T) {
	r := New(Descending)
	for i := 0; i < 200; i++ {
		r.Submit(fmt.Sprint("p", i), uint64(i%7), int64(i), PolicySet)
	}
	var before []Entry
	r.Each(func(e Entry) bool { before = append(before, e); return true })
	ids := make([]string, 150)
	for i := range ids {
		ids[i] = fmt.Sprint("p", i*2) // half of them absent
	}
	r.Warm(ids)
	var after []Entry
	r.Each(func(e Entry) bool { after = append(after, e); return true })
	if !slices.Equal(before, after) {
		t.Fatal("Warm changed the ranking")
	}
}

// TestRelocateMergesToRoot: a submission that moves a participant to another
// leaf, whose delete merges the root's last two leaves so that the root
// collapses, then inserts by a fresh descent (the recorded path is stale).
func TestRelocateMergesToRoot(t *testing.T) {
	withSmallNodes(t) // leaves of at most 4, merged when two hold 3 or fewer
	r := New(Descending)
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		r.Submit(id, uint64(50-10*i), 0, PolicySet)
	}
	if r.t.root.leaf || len(r.t.root.kids) != 2 {
		t.Fatalf("setup: want a root over two leaves")
	}
	r.Remove("e") // leaves [a b] [c d]
	c := r.Submit("a", 25, 1, PolicySet)
	if c.OldRank != 1 || c.NewRank != 3 {
		t.Fatalf("Submit moved a from %d to %d, want 1 to 3", c.OldRank, c.NewRank)
	}
	if !r.t.root.leaf {
		t.Fatalf("the root did not collapse into one leaf")
	}
	checkTree(t, &r.t)
	var got []string
	r.Each(func(e Entry) bool { got = append(got, e.ID); return true })
	if want := []string{"b", "c", "a", "d"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
