package api_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/lbhq/leaderboard/internal/board"
)

// TestConcurrentSubmissionsOverHTTP: parallel clients submit (single and
// batch) to shared leaderboards through the real HTTP server. The accepted
// changes carry versions 1..V with no gap or repeat, and replaying them in
// version order gives exactly what GET .../rankings returns.
func TestConcurrentSubmissionsOverHTTP(t *testing.T) {
	e := newEnv(t, board.Options{})
	boards := []string{"c0", "c1"}
	for i, id := range boards {
		e.create(map[string]any{"leaderboard_id": id, "name": id, "update_policy": []string{"set", "best"}[i]})
	}
	type accepted struct {
		pid     string
		score   int64
		at      int64
		version int64
	}
	var mu sync.Mutex
	log := map[string][]accepted{}
	record := func(id string, res map[string]any) {
		if res["updated"] != true {
			return
		}
		mu.Lock()
		log[id] = append(log[id], accepted{res["participant_id"].(string), num(res["score"]), num(res["achieved_at"]), num(res["version"])})
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := 0; i < 60; i++ {
				id := boards[rng.IntN(2)]
				item := func() map[string]any {
					return map[string]any{"participant_id": fmt.Sprint("p", rng.IntN(30)), "score": rng.IntN(50), "timestamp": 1000 + rng.IntN(3)}
				}
				if rng.IntN(4) == 0 {
					items := []any{item(), item(), item(), item()}
					r := e.do("POST", "/v1/leaderboards/"+id+"/scores:batch", map[string]any{"scores": items})
					var out struct{ Results []map[string]any }
					if err := json.Unmarshal(r.body, &out); err != nil || r.status != 200 {
						t.Errorf("batch: %d %s", r.status, r.body)
						return
					}
					for _, res := range out.Results {
						record(id, res)
					}
					continue
				}
				r := e.do("POST", "/v1/leaderboards/"+id+"/scores", item())
				if r.status != 200 {
					t.Errorf("submit: %d %s", r.status, r.body)
					return
				}
				record(id, r.json(t))
			}
		}(w)
	}
	wg.Wait()
	for i, id := range boards {
		acc := log[id]
		slices.SortFunc(acc, func(a, b accepted) int { return cmp.Compare(a.version, b.version) })
		// Replay into a sorted-slice model.
		type entry struct {
			pid       string
			score, at int64
		}
		var model []entry
		for k, a := range acc {
			if a.version != int64(k+1) {
				t.Fatalf("%s: accepted change %d has version %d", id, k, a.version)
			}
			j := slices.IndexFunc(model, func(e entry) bool { return e.pid == a.pid })
			if j < 0 {
				model = append(model, entry{a.pid, a.score, a.at})
			} else {
				if i == 1 && a.score <= model[j].score {
					t.Fatalf("%s: best policy accepted a worse score %d after %d", id, a.score, model[j].score)
				}
				model[j] = entry{a.pid, a.score, a.at}
			}
		}
		slices.SortFunc(model, func(a, b entry) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
			if c := cmp.Compare(a.at, b.at); c != 0 {
				return c
			}
			return cmp.Compare(a.pid, b.pid)
		})
		r := e.do("GET", "/v1/leaderboards/"+id+"/rankings?limit=1000", nil).json(t)
		if num(r["version"]) != int64(len(acc)) {
			t.Fatalf("%s: version %d, %d accepted changes", id, num(r["version"]), len(acc))
		}
		got := r["entries"].([]any)
		if len(got) != len(model) {
			t.Fatalf("%s: %d entries, replay gives %d", id, len(got), len(model))
		}
		for k, g := range got {
			g := g.(map[string]any)
			if g["participant_id"] != model[k].pid || num(g["score"]) != model[k].score || num(g["achieved_at"]) != model[k].at || num(g["rank"]) != int64(k+1) {
				t.Fatalf("%s rank %d: got %v, replay gives %+v", id, k+1, g, model[k])
			}
		}
	}
}
