package rank

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestRankingTiesOnLongIDs: two scores and two timestamps, so the order is
// decided by ids of 1..255 bytes with long shared prefixes, under one-bit tags,
// with removed ids coming back with the same key while separators still name
// them.
func TestRankingTiesOnLongIDs(t *testing.T) {
	for _, sz := range [][2]int{{4, 4}, {64, 64}, {8, 64}} {
		for _, order := range []Order{Descending, Ascending} {
			for _, policy := range []Policy{PolicySet, PolicyBest} {
				t.Run(fmt.Sprintf("%v/%d/%d", sz, order, policy), func(t *testing.T) {
					setSizes(t, sz[0], sz[1], 300)
					withCollidingTags(t)
					rng := rand.New(rand.NewPCG(uint64(sz[0]), uint64(order)*3+uint64(policy)))
					r := New(order)
					m := &model{order: order, by: map[string]Entry{}}
					pool := 3000
					ids := make([]string, pool)
					for i := range ids {
						l := 1 + rng.IntN(255)
						num := fmt.Sprint(i)
						ids[i] = strings.Repeat("x", max(l-len(num), 0)) + num
						if len(ids[i]) > 255 || len(ids[i]) == 0 {
							t.Fatal(len(ids[i]))
						}
					}
					for step := 0; step < 15000; step++ {
						id := ids[rng.IntN(pool)]
						if rng.IntN(10) < 3 {
							g, gok := r.Remove(id)
							w, wok := m.remove(id)
							if g != w || gok != wok {
								t.Fatalf("step %d remove %+v %+v", step, g, w)
							}
						} else {
							sc := uint64(5 + rng.IntN(2))
							at := int64(rng.IntN(2))
							g, w := r.Submit(id, sc, at, policy), m.submit(id, sc, at, policy)
							if g != w {
								t.Fatalf("step %d submit %+v %+v", step, g, w)
							}
						}
						if step%1999 == 0 {
							fullCheck(t, step, r, m)
						}
					}
					fullCheck(t, -1, r, m)
				})
			}
		}
	}
}
