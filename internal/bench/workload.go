package bench

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// workload builds the requests of one mode. build runs once per request on the worker's own
// goroutine, so it must not allocate: it appends into the worker's reusable buffers.
type workload struct {
	method string
	ops    []string // request kinds; build returns an index into it
	// countItemErrors: 2xx bodies carry per-item results whose {"error":...} entries are counted.
	countItemErrors bool
	// build fills req (URI and body; method and headers are set once per worker) and returns the
	// request kind and the number of scores the request carries.
	build func(w *worker, req *fasthttp.Request) (op, items int)
	// after, when not nil, runs on the worker's goroutine as soon as the response (or the error)
	// of the request build made is in, warmup included.
	after func(w *worker, op int, resp *fasthttp.Response, err error)
}

// boardURIs precomputes per-leaderboard URIs so the hot path only copies bytes.
func boardURIs(base string, ids []string, suffix string) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = []byte(base + "/v1/leaderboards/" + id + suffix)
	}
	return out
}

func boardIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = leaderboardID(prefix, i)
	}
	return ids
}

// pickBoard draws a leaderboard uniformly; the common single-board case skips the random draw.
func pickBoard(w *worker, n int) int {
	if n == 1 {
		return 0
	}
	return w.rng.IntN(n)
}

// appendScoreItem appends {"participant_id":"p...","score":n} with a uniform participant and score.
func appendScoreItem(w *worker, dst []byte, participants int) []byte {
	dst = append(dst, `{"participant_id":"`...)
	dst = appendPID(dst, w.rng.IntN(participants))
	dst = append(dst, `","score":`...)
	dst = strconv.AppendInt(dst, w.rng.Int64N(1_000_000_000), 10)
	return append(dst, '}')
}

func submitWorkload(base string, ids []string, participants, batch int) workload {
	single := boardURIs(base, ids, "/scores")
	batched := boardURIs(base, ids, "/scores:batch")
	if batch == 0 {
		return workload{
			method: "POST",
			ops:    []string{"submit"},
			build: func(w *worker, req *fasthttp.Request) (int, int) {
				req.SetRequestURIBytes(single[pickBoard(w, len(ids))])
				w.body = appendScoreItem(w, w.body[:0], participants)
				// SetBodyRaw avoids a copy; the worker does not touch w.body until the request is done.
				req.SetBodyRaw(w.body)
				return 0, 1
			},
		}
	}
	return workload{
		method:          "POST",
		ops:             []string{"batch"},
		countItemErrors: true,
		build: func(w *worker, req *fasthttp.Request) (int, int) {
			req.SetRequestURIBytes(batched[pickBoard(w, len(ids))])
			b := append(w.body[:0], `{"scores":[`...)
			for i := 0; i < batch; i++ {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendScoreItem(w, b, participants)
			}
			w.body = append(b, "]}"...)
			req.SetBodyRaw(w.body)
			return 0, batch
		},
	}
}

// Read kinds, in the order of readWorkload's ops.
const (
	opTop    = 0
	opLookup = 1
)

func readWorkload(base string, ids []string, seeded int, topRatio float64) workload {
	top := boardURIs(base, ids, "/rankings?limit=100")
	lookup := boardURIs(base, ids, "/participants/")
	return workload{
		method: "GET",
		ops:    []string{"top", "lookup"},
		build: func(w *worker, req *fasthttp.Request) (int, int) {
			lb := pickBoard(w, len(ids))
			// Float64 is in [0, 1): ratio 1 always reads the top, ratio 0 never does.
			if topRatio >= 1 || w.rng.Float64() < topRatio {
				req.SetRequestURIBytes(top[lb])
				return opTop, 0
			}
			u := append(w.uri[:0], lookup[lb]...)
			u = appendPID(u, w.rng.IntN(seeded))
			w.uri = append(u, "?neighbors=2"...)
			req.SetRequestURIBytes(w.uri)
			return opLookup, 0
		},
	}
}

// floorWorkload sends requests shaped like the real ones (same URI length, a submission-sized
// body for POST) so the floor differs from a real run only by what the server does.
func floorWorkload(base, method string) workload {
	if method == "POST" {
		wl := submitWorkload(base, []string{"floor"}, 1_000_000, 0)
		wl.ops = []string{"floor"}
		return wl
	}
	uri := []byte(base + "/v1/leaderboards/floor/rankings?limit=100")
	return workload{
		method: "GET",
		ops:    []string{"floor"},
		build: func(w *worker, req *fasthttp.Request) (int, int) {
			req.SetRequestURIBytes(uri)
			return 0, 0
		},
	}
}
