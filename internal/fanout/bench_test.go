package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
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

// manyParticipants: a board of n participants, each watched by one viewer
// of its own participant window (n segments of one subscriber each).
func manyParticipants(tb testing.TB, n, phases int) (*Hub, *memory.Store) {
	ctx := context.Background()
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	hub = New(st, Options{Epoch: "ep", Phases: phases, History: time.Minute})
	st.CreateBoard(ctx, "b", store.BoardOptions{})
	subs := make([]store.Submission, 0, 1000)
	res := make([]store.Result, 1000)
	for i := 0; i < n; i++ {
		subs = append(subs, store.Submission{ParticipantID: fmt.Sprintf("p%06d", i), Score: uint64(i), AchievedAt: 1})
		if len(subs) == 1000 {
			st.Submit(ctx, "b", subs, res)
			subs = subs[:0]
		}
	}
	sink := &nopSink{}
	for i := 0; i < n; i++ {
		hub.Subscribe(ctx, "b", "me", Spec{Kind: Participant, ParticipantID: fmt.Sprintf("p%06d", i)}, nil, "", sink, nil)
	}
	return hub, st
}

// BenchmarkWindowManySegments: one window's flushing (Phases ticks, as Run
// does), one change at the top before each tick; ns/op is one window.
func BenchmarkWindowManySegments(b *testing.B) {
	for _, phases := range []int{1, 4} {
		b.Run(fmt.Sprint("phases=", phases), func(b *testing.B) {
			hub, st := manyParticipants(b, 100_000, phases)
			ctx := context.Background()
			one := make([]store.Result, 1)
			score := uint64(1_000_000)
			b.ResetTimer()
			for b.Loop() {
				for p := 0; p < phases; p++ {
					score++
					st.Submit(ctx, "b", []store.Submission{{ParticipantID: "p099999", Score: score, AchievedAt: 2}}, one)
					hub.flush(ctx, p)
				}
			}
		})
	}
}

// TestPhaseIndex: each phase lists exactly the segments installed in it, so
// that a tick walks its own phase's segments, not every segment of the
// board (with 100,000 one-viewer windows, walking all of them at each of a
// window's four ticks cost six times the hub's CPU per window before
// phases: BenchmarkWindowManySegments).
func TestPhaseIndex(t *testing.T) {
	hub, _ := manyParticipants(t, 0, 4)
	ctx := context.Background()
	var subs []*Subscription
	for i := 0; i < 100; i++ {
		sub, err := hub.Subscribe(ctx, "b", "me", Spec{Kind: Participant, ParticipantID: fmt.Sprintf("p%06d", i)}, nil, "", &phased{phase: 0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	hub.Subscribe(ctx, "b", "me", Spec{Kind: Top, Limit: 10}, nil, "", &phased{phase: 1}, nil)
	bh := hub.boards["b"]
	check := func(want ...int) {
		t.Helper()
		for p, l := range bh.byPhase {
			if len(l) != want[p] {
				t.Fatalf("phase %d lists %d segments, want %d", p, len(l), want[p])
			}
			for i, s := range l {
				if s.at != i || s.phase != p || bh.segments[s.key] != s.group {
					t.Fatalf("phase %d, entry %d: a segment at %d of phase %d, installed %v", p, i, s.at, s.phase, bh.segments[s.key] == s.group)
				}
			}
		}
	}
	check(100, 1, 0, 0)
	for _, sub := range subs[:60] {
		hub.Unsubscribe(sub)
	}
	check(40, 1, 0, 0)
}
