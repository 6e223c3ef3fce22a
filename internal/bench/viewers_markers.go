package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Where markers land in the top N (--marker-rank, N = --top-limit).
//
//   - top: rank 1. Every position of a top-N window shifts, so every update frame carries all N
//     entries: the worst case for the live protocol.
//   - bottom: near the bottom of the window, at the lowest rank from which a marker still stays in
//     the window for markerDwell (see lowestMarkerRank); update frames carry only the positions
//     from there down.
//   - random: a uniform rank in 1 .. that lowest rank.
//
// A marker cannot enter at rank N itself at a useful rate: an arrival anywhere in a full window
// pushes out whatever is at rank N, so a marker entering there is gone at the next arrival, and
// the server sends the window as it is at each flush (every 100 ms by default): at 100 markers/s
// only one marker in ten would ever reach a viewer. A marker entering D ranks above the bottom
// stays for the next D arrivals, so D = top-rate x markerDwell keeps it there long enough, and
// the frames carry about D changes instead of N.
//
// For bottom and random the run first submits N pads: markers (ids just below the run's marker
// base, not measured) whose scores lie above everything on the board, before the viewers connect.
// The top N then holds only pads and this run's markers, all far above the random scores, so the
// client knows the window exactly and can give each marker the score that puts it at the rank it
// wants without reading anything back. The rank each submission's response reports is recorded
// and shows where the markers actually landed.
const (
	placeTop    = "top"
	placeBottom = "bottom"
	placeRandom = "random"
)

var placements = []string{placeTop, placeBottom, placeRandom}

// markerDwell is how long a bottom or random marker stays in the window at least: three flush
// windows at the server's default --flush-interval (100 ms).
const markerDwell = 300 * time.Millisecond

// lowestMarkerRank is N - D + 1 with D = ceil(topRate x markerDwell) (at least 1): N itself at low
// rates, 71 of 100 at 100 markers/s.
func lowestMarkerRank(topLimit int, topRate float64) int {
	d := int(math.Ceil(topRate * markerDwell.Seconds()))
	return min(max(topLimit-d+1, 1), topLimit)
}

// markerPlan is where this run's markers go. Ids: pads are mk-<first> .. mk-<base-1>, measured
// markers mk-<base> and up. Every score is at least markerScore0 plus the largest id the run can
// use, so the next run (which starts its ids above the board's top score minus markerScore0, see
// runViewers) never reuses an id.
type markerPlan struct {
	placement string
	first     int64  // first id of this run
	base      int64  // first measured marker
	lowest    int    // markers aim at 1 (top), at lowest (bottom), at 1..lowest (random)
	maxScore  uint64 // the largest score the run can submit
	pads      []int64

	mu     sync.Mutex
	window []int64 // bottom, random: the scores at ranks 1..N, best first
}

func newMarkerPlan(cfg Config, first int64) *markerPlan {
	p := &markerPlan{placement: cfg.MarkerRank, first: first, base: first, lowest: 1}
	// An upper bound on this run's markers: one per 1/top-rate over warmup and duration.
	markers := int64(cfg.TopRate*(cfg.Warmup+cfg.Duration).Seconds()) + 1
	if p.placement == placeTop || cfg.Idle || cfg.TopRate == 0 {
		p.maxScore = uint64(markerScore0 + p.base + markers)
		return p
	}
	n := cfg.TopLimit
	p.base = first + int64(n)
	p.lowest = lowestMarkerRank(n, cfg.TopRate)
	// Pads gap-apart: a bottom marker enters one above the previous one, so the gap above the
	// lowest rank holds the whole run. Rank-1 random markers go one above the best score.
	gap := markers + 1
	floor := markerScore0 + p.base + markers
	p.pads = make([]int64, n)
	for j := range p.pads {
		p.pads[j] = floor + int64(n-j)*gap
	}
	p.window = slices.Clone(p.pads)
	p.maxScore = uint64(p.pads[0] + markers)
	return p
}

// score returns the score of marker k: markerScore0 + k at the top (above every earlier marker);
// otherwise one more than the score now at the rank aimed at, so the marker lands just above that
// entry, which (with everything below it) moves down one.
func (p *markerPlan) score(rng *rand.Rand, k int64) int64 {
	if p.window == nil {
		return markerScore0 + k
	}
	r := p.lowest
	if p.placement == placeRandom {
		r = 1 + rng.IntN(p.lowest)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.window
	s := w[r-1] + 1
	// The marker goes below the entries with an equal score (its achieved_at is later): its index
	// is that of the first lower score, r-1 unless the entry above ties with the one aimed at.
	i := r - 1
	for i > 0 && w[i-1] < s {
		i--
	}
	copy(w[i+1:], w[i:len(w)-1]) // the entry at rank N leaves the window
	w[i] = s
	return s
}

// submitPads fills the top N with the plan's pads in one scores:batch request.
func submitPads(ctx context.Context, client *fasthttp.HostClient, base string, cfg Config, p *markerPlan, logw io.Writer) error {
	if len(p.pads) == 0 {
		return nil
	}
	b := []byte(`{"scores":[`)
	for j, s := range p.pads {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"participant_id":"`+markerPrefix...)
		b = strconv.AppendInt(b, p.first+int64(j), 10)
		b = append(b, `","score":`...)
		b = strconv.AppendInt(b, s, 10)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	uri := base + "/v1/leaderboards/" + cfg.Leaderboard + "/scores:batch"
	code, resp, err := setupRequest(ctx, client, "POST", uri, cfg.Token, b)
	if err == nil && code != fasthttp.StatusOK {
		err = fmt.Errorf("HTTP %d: %s", code, snippet(resp))
	}
	if n := bytes.Count(resp, errorKey); err == nil && n > 0 {
		err = fmt.Errorf("%d of them rejected: %s", n, snippet(resp))
	}
	if err != nil {
		return fmt.Errorf("submitting the pads of --marker-rank %s: %w", p.placement, err)
	}
	fmt.Fprintf(logw, "bench: %d pads mk-%d..mk-%d fill the top %d; markers aim at rank %s\n",
		len(p.pads), p.first, p.base-1, len(p.pads), p.aim())
	return nil
}

// aim describes the rank markers aim at: "1", "71", "1..71".
func (p *markerPlan) aim() string {
	if p.placement == placeRandom {
		return "1.." + strconv.Itoa(p.lowest)
	}
	return strconv.Itoa(p.lowest)
}

// rankStats summarizes the ranks markers landed at, as their submissions' responses reported them.
func rankStats(ranks []int64, topLimit int) RankStats {
	if len(ranks) == 0 {
		return RankStats{}
	}
	slices.Sort(ranks)
	st := RankStats{
		Count: int64(len(ranks)),
		Min:   ranks[0],
		P50:   ranks[(len(ranks)-1)/2],
		Max:   ranks[len(ranks)-1],
	}
	for _, r := range ranks {
		if r > int64(topLimit) {
			st.OutsideWindow++
		}
	}
	return st
}
