package rank

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// model is a second oracle, faster than ranking_test.go's for long runs: a
// sorted slice searched by bisection, and a map from id to entry.
type model struct {
	order Order
	es    []Entry // sorted, Rank not maintained
	by    map[string]Entry
}

func (m *model) cmp(a, b Entry) int { return compareEntries(m.order, a, b) }

func (m *model) pos(e Entry) int {
	i, ok := slices.BinarySearchFunc(m.es, e, m.cmp)
	if !ok {
		panic("model: missing")
	}
	return i
}
func (m *model) ins(e Entry) int {
	i, _ := slices.BinarySearchFunc(m.es, e, m.cmp)
	m.es = slices.Insert(m.es, i, e)
	m.by[e.ID] = e
	return i
}
func (m *model) del(e Entry) int {
	i := m.pos(e)
	m.es = slices.Delete(m.es, i, i+1)
	delete(m.by, e.ID)
	return i
}
func (m *model) submit(id string, score uint64, at int64, p Policy) Change {
	old, ok := m.by[id]
	if !ok {
		i := m.ins(Entry{ID: id, Score: score, AchievedAt: at})
		return Change{Updated: true, NewScore: score, NewAt: at, NewRank: i + 1}
	}
	better := score > old.Score
	if m.order == Ascending {
		better = score < old.Score
	}
	op := m.pos(old)
	if score == old.Score || (p == PolicyBest && !better) {
		return Change{Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: op + 1,
			NewScore: old.Score, NewAt: old.AchievedAt, NewRank: op + 1}
	}
	m.del(old)
	np := m.ins(Entry{ID: id, Score: score, AchievedAt: at})
	return Change{Updated: true, Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: op + 1,
		NewScore: score, NewAt: at, NewRank: np + 1}
}
func (m *model) remove(id string) (Change, bool) {
	old, ok := m.by[id]
	if !ok {
		return Change{}, false
	}
	op := m.del(old)
	return Change{Updated: true, Existed: true, OldScore: old.Score, OldAt: old.AchievedAt, OldRank: op + 1}, true
}

// checkInline: every node's slices point into its own block with cap nodeCap;
// separators nested within bounds and strictly increasing.
func fullCheck(t *testing.T, step int, r *Ranking, m *model) {
	t.Helper()
	checkTree(t, &r.t)
	if r.Len() != len(m.es) {
		t.Fatalf("step %d: len %d want %d", step, r.Len(), len(m.es))
	}
	i := 0
	r.Each(func(e Entry) bool {
		w := m.es[i]
		w.Rank = i + 1
		if e != w {
			t.Fatalf("step %d: Each[%d]=%+v want %+v", step, i, e, w)
		}
		i++
		return true
	})
	ids := make([]string, 0, len(m.es)+10)
	for i, w := range m.es {
		w.Rank = i + 1
		if g, ok := r.Get(w.ID); !ok || g != w {
			t.Fatalf("step %d: Get(%s)=%+v,%v want %+v", step, w.ID, g, ok, w)
		}
		ids = append(ids, w.ID)
	}
	for k := 0; k < 10; k++ {
		ids = append(ids, fmt.Sprintf("nobody%d", k))
	}
	out := make([]int, len(ids))
	r.RankMany(ids, out)
	for i, id := range ids {
		want := 0
		if i < len(m.es) {
			want = i + 1
		}
		if out[i] != want || r.Rank(id) != want {
			t.Fatalf("step %d: RankMany/Rank(%s)=%d/%d want %d", step, id, out[i], r.Rank(id), want)
		}
	}
	// slot keys equal tree keys
	for si := range r.p.slots {
		s := &r.p.slots[si]
		if s.h == 0 {
			continue
		}
		id := r.p.id(s.h - 1)
		w := m.by[id]
		sc, at := unpackKey(s.k1, s.k2)
		if r.norm(sc) != w.Score || at != w.AchievedAt {
			t.Fatalf("slot key of %s wrong", id)
		}
		if s.tag != tagOf(r.p.hash(id)) {
			t.Fatalf("slot tag of %s wrong", id)
		}
	}
}

func stress(t *testing.T, order Order, policy Policy, seed uint64, pool, steps, checkEvery int, batch bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(order)*2+uint64(policy)))
	r := New(order)
	m := &model{order: order, by: map[string]Entry{}}
	scores := []uint64{0, 1, 2, 1000, MaxScore - 1, MaxScore}
	idOf := func() string {
		n := rng.IntN(pool)
		// vary id lengths to stress records and chunk boundaries
		return fmt.Sprintf("%0*d", 1+n%37, n)
	}
	mkScore := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return scores[rng.IntN(len(scores))]
		case 1:
			return uint64(rng.IntN(50))
		default:
			return rng.Uint64N(MaxScore + 1)
		}
	}
	for step := 0; step < steps; step++ {
		op := rng.IntN(100)
		switch {
		case batch && op < 10:
			subs := make([]Sub, rng.IntN(150))
			for i := range subs {
				subs[i] = Sub{ID: idOf(), Score: mkScore(), At: int64(rng.IntN(3))}
				if i > 0 && rng.IntN(4) == 0 {
					subs[i].ID = subs[rng.IntN(i)].ID
				}
			}
			out := make([]Change, len(subs))
			r.SubmitMany(subs, policy, out)
			for i, s := range subs {
				if w := m.submit(s.ID, s.Score, s.At, policy); out[i] != w {
					t.Fatalf("step %d: SubmitMany[%d] %+v = %+v want %+v", step, i, s, out[i], w)
				}
			}
		case op < 70:
			id := idOf()
			sc, at := mkScore(), int64(rng.IntN(3))
			if rng.IntN(3) == 0 {
				if e, ok := m.by[id]; ok { // small nudge: likely within leaf
					sc = e.Score + uint64(rng.IntN(3)) - 1
					if sc > MaxScore {
						sc = e.Score
					}
				}
			}
			g, w := r.Submit(id, sc, at, policy), m.submit(id, sc, at, policy)
			if g != w {
				t.Fatalf("step %d: Submit(%s,%d,%d)=%+v want %+v", step, id, sc, at, g, w)
			}
		default:
			id := idOf()
			g, gok := r.Remove(id)
			w, wok := m.remove(id)
			if g != w || gok != wok {
				t.Fatalf("step %d: Remove(%s)=%+v,%v want %+v,%v", step, id, g, gok, w, wok)
			}
		}
		if step%checkEvery == 0 {
			fullCheck(t, step, r, m)
		}
	}
	fullCheck(t, steps, r, m)
	for len(m.es) > 0 {
		id := m.es[rng.IntN(len(m.es))].ID
		g, _ := r.Remove(id)
		w, _ := m.remove(id)
		if g != w {
			t.Fatalf("drain Remove(%s)=%+v want %+v", id, g, w)
		}
		if len(m.es)%97 == 0 {
			fullCheck(t, -1, r, m)
		}
	}
	fullCheck(t, -1, r, m)
}

func setSizes(t *testing.T, lmax, imax int, cmd uint64) {
	lm, lmin, im, imin, c := leafMax, leafMin, innerMax, innerMin, compactMinDead
	leafMax, leafMin, innerMax, innerMin, compactMinDead = lmax, max(lmax/4, 1), imax, max(imax/4, 2), cmd
	t.Cleanup(func() { leafMax, leafMin, innerMax, innerMin, compactMinDead = lm, lmin, im, imin, c })
}

// TestRankingNodeSizesAgainstModel drives rankings with many node sizes (the
// tests' 4 up to the real 64, and lopsided pairs), full and one-bit tags, both
// orders and policies, through submissions (random, tied and small nudges),
// batches and removals (compaction and rehashes included), and compares every
// Change and, every ~1,000 steps, the whole ranking with a sorted-slice model.
func TestRankingNodeSizesAgainstModel(t *testing.T) {
	sizes := [][2]int{{4, 4}, {5, 5}, {8, 4}, {4, 8}, {16, 16}, {64, 64}, {64, 4}, {4, 64}}
	for _, sz := range sizes {
		for _, tags := range []bool{false, true} {
			for _, order := range []Order{Descending, Ascending} {
				for _, policy := range []Policy{PolicySet, PolicyBest} {
					name := fmt.Sprintf("l%d/i%d/tags%v/o%d/p%d", sz[0], sz[1], tags, order, policy)
					t.Run(name, func(t *testing.T) {
						setSizes(t, sz[0], sz[1], 512)
						if tags {
							withCollidingTags(t)
						}
						// Sized for CI, which runs it under -race (about 40 s); a
						// reviewer's run with 20,000 participants and 60,000 steps
						// per case passed too.
						pool, steps, every := 1000, 3000, 499
						if sz[0] >= 16 && sz[1] >= 16 {
							pool, steps, every = 3000, 6000, 1499
						}
						stress(t, order, policy, uint64(sz[0]*100+sz[1]), pool, steps, every, true)
					})
				}
			}
		}
	}
}
