package fanout

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
)

type nopSink struct{ n int }

func (s *nopSink) Send(Frame) bool { s.n++; return true }

// BenchmarkFlushTop100 measures the hub's own cost per delivered frame: 15,000
// subscribers of the top 100 of a 100,000-participant board, one change at the
// top per flush. ns/op is one flush; ns/frame divides by the subscribers.
func BenchmarkFlushTop100(b *testing.B) {
	f := newFixture(&testing.T{}, 0)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "b", store.BoardOptions{})
	subs := make([]store.Submission, 0, 1000)
	res := make([]store.Result, 1000)
	for i := 0; i < 100_000; i++ {
		subs = append(subs, store.Submission{ParticipantID: fmt.Sprintf("p%06d", i), Score: uint64(i), AchievedAt: 1})
		if len(subs) == 1000 {
			f.st.Submit(ctx, "b", subs, res)
			subs = subs[:0]
		}
	}
	const viewers = 15000
	sink := &nopSink{}
	for i := 0; i < viewers; i++ {
		f.hub.Subscribe(ctx, "b", "top", Spec{Kind: Top, Limit: 100}, nil, "", sink, nil)
	}
	score := uint64(1_000_000)
	one := make([]store.Result, 1)
	b.ResetTimer()
	for b.Loop() {
		score++
		f.st.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprintf("p%06d", score%100_000), Score: score, AchievedAt: 2}}, one)
		f.hub.Flush(ctx)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/viewers, "ns/frame")
}
