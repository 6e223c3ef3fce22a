package api_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the server side only.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkAccess: one score submission through the whole API (routing,
// access, decoding, the ranking, the response), with access control off and
// on. The difference is the cost of authentication and the per-IP limit.
//
//	go test ./internal/api -run '^$' -bench BenchmarkAccess -benchmem
func BenchmarkAccess(b *testing.B) {
	server, _ := auth.Mint(testSecret, auth.Server, "gs", time.Hour)
	participant, _ := auth.Mint(testSecret, auth.Participant, "p1", time.Hour)
	for _, bc := range []struct {
		name  string
		token string
		on    bool
	}{
		{"off", "", false},
		{"server-token", server, true},
		{"participant-token", participant, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var o api.AccessOptions
			if bc.on {
				v, _ := auth.NewVerifier(testSecret, nil, 0)
				o = api.AccessOptions{Verifier: v, IPRate: 1e9, IPBurst: 1 << 30, UpgradeRate: 10, MaxInflight: 1024}
			}
			svc := board.New(memory.New(memory.Options{}), board.Options{})
			a := api.New(svc, api.Options{Access: o})
			admin, _ := auth.Mint(testSecret, auth.Admin, "", time.Hour)
			req, _ := http.NewRequest("POST", "/v1/leaderboards", bytes.NewReader([]byte(`{"leaderboard_id":"b","name":"b"}`)))
			req.Header.Set("Authorization", "Bearer "+admin)
			a.ServeHTTP(&discardWriter{h: http.Header{}}, req)
			body := []byte(`{"participant_id":"p1","score":15000}`)
			rd := bytes.NewReader(body)
			req, _ = http.NewRequest("POST", "/v1/leaderboards/b/scores", io.NopCloser(rd))
			req.RemoteAddr = "10.1.2.3:4567"
			if bc.token != "" {
				req.Header.Set("Authorization", "Bearer "+bc.token)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rd.Reset(body)
				clear(w.h)
				a.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
