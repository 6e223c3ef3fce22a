package api_test

import (
	"net/http"
	"testing"
)

// TestRouteAllocs bounds the heap allocations of a submission and of a top-100
// read through the whole API (see BenchmarkRoute), with authentication off and
// on: each allocation is GC work on the hottest paths, and the counts are
// deterministic, so one more fails here rather than going unnoticed. The
// bounds are the counts at the time of writing; lower them when you remove
// one, and raise them only with a reason.
func TestRouteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	// What is left:
	//   submit: net/http's match of the path's wildcards (its own slice); the
	//     participant id, a string made from the body (the ranking keeps it
	//     for a new participant); the submission and its result, which
	//     escape through the store interface (one allocation for both).
	//   top100: net/http's match of the path's wildcards; the body and its
	//     headers come from the top-N cache.
	bounds := map[string]float64{"submit": 3, "top100": 1}
	for _, authOn := range []bool{false, true} {
		token := routeToken(t, authOn)
		a := newRouteEnv(t, token)
		for _, c := range routeCases() {
			bound, ok := bounds[c.name]
			if !ok {
				continue
			}
			e := newRouteCase(t, a, c, token)
			e.do(t, http.StatusOK) // warm: the token cache, the top-N cache, the pools
			got := testing.AllocsPerRun(1000, func() { e.do(t, http.StatusOK) })
			if got > bound {
				t.Errorf("%s (auth %v): %v allocations per request, want at most %v", c.name, authOn, got, bound)
			}
		}
	}
}
