package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// The hot routes driven through the whole API (routing, metrics, access,
// decoding, the board service over a memory store of 10,000 participants,
// encoding) with a ResponseWriter that keeps nothing: what these count is the
// project's own allocations per request, not net/http's or the kernel's.
// Allocation counts are deterministic; do not read the ns/op on a shared box.
//
//	go test ./internal/api -run '^$' -bench BenchmarkRoute -benchmem

const (
	routeBoard        = "bench"
	routeParticipants = 10_000
)

// routeEnv is one API over a filled leaderboard, and one request reused for
// every call (the way a keep-alive connection hands the handler a new request
// each time, minus net/http's own allocations).
type routeEnv struct {
	a      *api.API
	w      *discardWriter
	req    *http.Request
	body   *bytes.Reader
	bodies [][]byte // for POSTs: cycled through, so that every submission moves someone
	next   int
}

// newRouteEnv builds the API, with access control off, or on with token sent
// as the bearer (a server token: exempt from the per-IP limit, as game
// servers are).
func newRouteEnv(tb testing.TB, token string) *api.API {
	tb.Helper()
	var o api.AccessOptions
	if token != "" {
		v, err := auth.NewVerifier(testSecret, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		o = api.AccessOptions{Verifier: v, IPRate: 1e9, IPBurst: 1 << 30, UpgradeRate: 10, MaxInflight: 1024}
	}
	svc := board.New(memory.New(memory.Options{Epoch: "e1"}), board.Options{})
	ctx := context.Background()
	if _, err := svc.Create(ctx, board.CreateRequest{ID: routeBoard, Name: "bench"}); err != nil {
		tb.Fatal(err)
	}
	ins := make([]board.ScoreInput, 0, board.MaxBatch)
	for i := range routeParticipants {
		ins = append(ins, board.ScoreInput{ParticipantID: fmt.Sprintf("p%05d", i), Score: uint64(i*7919) % 1_000_003})
		if len(ins) == board.MaxBatch {
			if _, _, err := svc.SubmitBatch(ctx, routeBoard, ins, nil); err != nil {
				tb.Fatal(err)
			}
			ins = ins[:0]
		}
	}
	return api.New(svc, api.Options{Access: o})
}

func (e *routeEnv) do(tb testing.TB, want int) {
	if e.bodies != nil {
		b := e.bodies[e.next%len(e.bodies)]
		e.next++
		e.body.Reset(b)
		e.req.ContentLength = int64(len(b))
	}
	clear(e.w.h)
	e.a.ServeHTTP(e.w, e.req)
	if e.w.code != want {
		tb.Fatalf("%s %s: status %d, want %d", e.req.Method, e.req.URL, e.w.code, want)
	}
}

// routeCase is one hot route: its request and, for POSTs, the bodies it
// cycles through.
type routeCase struct {
	name   string
	method string
	target string
	bodies [][]byte
}

func routeCases() []routeCase {
	// Submissions alternate each participant between two scores, so every
	// one changes the ranking (updated: true) and the board stays the same
	// size: the counts do not drift with the number of iterations.
	var scores, batches [][]byte
	for round := range 2 {
		for i := range 256 {
			scores = append(scores, fmt.Appendf(nil, `{"participant_id":"p%05d","score":%d}`, i*37, 2_000_000+i*2+round))
		}
		var b strings.Builder
		b.WriteString(`{"scores":[`)
		for i := range 100 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"participant_id":"p%05d","score":%d}`, 5000+i*41, 3_000_000+i*2+round)
		}
		b.WriteString(`]}`)
		batches = append(batches, []byte(b.String()))
	}
	return []routeCase{
		{"submit", "POST", "/v1/leaderboards/bench/scores", scores},
		{"batch100", "POST", "/v1/leaderboards/bench/scores:batch", batches},
		{"top100", "GET", "/v1/leaderboards/bench/rankings?limit=100", nil},
		{"page100", "GET", "/v1/leaderboards/bench/rankings?limit=100&offset=100", nil},
		{"participant", "GET", "/v1/leaderboards/bench/participants/p04242?neighbors=2", nil},
		{"around", "GET", "/v1/leaderboards/bench/rankings?around=p04242&limit=11", nil},
	}
}

// newRouteCase returns the reusable request of c over a.
func newRouteCase(tb testing.TB, a *api.API, c routeCase, token string) *routeEnv {
	tb.Helper()
	e := &routeEnv{a: a, w: &discardWriter{h: http.Header{}}, body: bytes.NewReader(nil), bodies: c.bodies}
	var body io.Reader = http.NoBody
	if c.bodies != nil {
		body = io.NopCloser(e.body)
	}
	req, err := http.NewRequest(c.method, c.target, body)
	if err != nil {
		tb.Fatal(err)
	}
	req.RemoteAddr = "10.1.2.3:4567"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	e.req = req
	return e
}

func routeToken(tb testing.TB, on bool) string {
	if !on {
		return ""
	}
	tok, err := auth.Mint(testSecret, auth.Server, "gs", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func BenchmarkRoute(b *testing.B) {
	for _, authOn := range []bool{false, true} {
		token := routeToken(b, authOn)
		a := newRouteEnv(b, token)
		mode := "auth-off"
		if authOn {
			mode = "auth-server-token"
		}
		for _, c := range routeCases() {
			b.Run(mode+"/"+c.name, func(b *testing.B) {
				e := newRouteCase(b, a, c, token)
				e.do(b, http.StatusOK) // warm: the token cache, the top-N cache, the pools
				b.ReportAllocs()
				for b.Loop() {
					e.do(b, http.StatusOK)
				}
			})
		}
	}
}
