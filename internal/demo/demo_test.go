package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/demo"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

func newService(rate float64, burst int) *board.Service {
	return board.New(memory.New(memory.Options{}), board.Options{SubmitRate: rate, SubmitBurst: burst})
}

// TestDemoSeedsAndMoves: Start creates the tournament with every participant
// ranked, the hot contenders on top; the bots then keep changing the top 10.
func TestDemoSeedsAndMoves(t *testing.T) {
	ctx := context.Background()
	svc := newService(10, 20)
	bots, err := demo.Start(ctx, svc, demo.Options{Participants: 400, Rate: 400, SubmitRate: 10, Tick: 10 * time.Millisecond, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer bots.Stop()
	lb, err := svc.Get(ctx, demo.DefaultBoard)
	if err != nil {
		t.Fatal(err)
	}
	if lb.Total != 400 || lb.Status != board.Active || lb.Name != "Demo Cup" || lb.Type != "tournament" {
		t.Fatalf("demo board: %+v", lb)
	}
	hot := map[string]bool{}
	for i := range demo.DefaultHot {
		hot[demo.Participant(i, demo.DefaultHot)] = true
	}
	top := func() []string {
		p, err := svc.Rankings(ctx, demo.DefaultBoard, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range p.Entries {
			ids = append(ids, e.ParticipantID)
		}
		return ids
	}
	first := top()
	for _, id := range first {
		if !hot[id] {
			t.Fatalf("%s in the top 10 at the start: %v", id, first)
		}
	}
	// The top 10 reshuffles: watch it change order several times.
	changes, last := 0, first
	deadline := time.Now().Add(10 * time.Second)
	for changes < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if cur := top(); !equal(cur, last) {
			changes++
			last = cur
		}
	}
	if changes < 3 {
		t.Fatalf("the top 10 changed %d times in 10 s", changes)
	}
	sent, rejected := bots.Stats()
	if sent == 0 || rejected != 0 {
		t.Fatalf("bots sent %d, %d rejected", sent, rejected)
	}
	// The hot pack still holds the top 10, and nobody else was added.
	for _, id := range top() {
		if !hot[id] {
			t.Fatalf("%s in the top 10: %v", id, last)
		}
	}
	if lb, _ = svc.Get(ctx, demo.DefaultBoard); lb.Total != 400 {
		t.Fatalf("total %d", lb.Total)
	}
}

// TestDemoRespectsRateLimit: asked for far more than the per-participant
// limit allows, the bots slow down instead of being rate limited.
func TestDemoRespectsRateLimit(t *testing.T) {
	svc := newService(10, 20)
	start := time.Now()
	bots, err := demo.Start(context.Background(), svc, demo.Options{Board: "tiny", Participants: 20, Hot: 4, Rate: 2000, SubmitRate: 10, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	bots.Stop()
	elapsed := time.Since(start).Seconds()
	sent, rejected := bots.Stats()
	if rejected != 0 {
		t.Fatalf("%d of %d submissions rejected", rejected, sent)
	}
	// At most 90% of 10/s per participant, plus the first submission each.
	if most := int64(0.9*10*20*elapsed) + 20; sent == 0 || sent > most {
		t.Fatalf("sent %d in %.2fs, want 1..%d", sent, elapsed, most)
	}
}

// TestDemoReusesBoardAndStops: a second Start on the same board reuses it;
// Stop returns once the bots are done, and may be called twice; a demo
// without bots (Rate < 0) only seeds.
func TestDemoReusesBoardAndStops(t *testing.T) {
	ctx := context.Background()
	svc := newService(0, 0)
	b1, err := demo.Start(ctx, svc, demo.Options{Participants: 50, Rate: -1})
	if err != nil {
		t.Fatal(err)
	}
	b1.Stop()
	v1, _ := svc.Version(ctx, demo.DefaultBoard)
	time.Sleep(100 * time.Millisecond)
	if v2, _ := svc.Version(ctx, demo.DefaultBoard); v2 != v1 {
		t.Fatalf("a demo without bots changed the board: %d -> %d", v1, v2)
	}
	b2, err := demo.Start(ctx, svc, demo.Options{Participants: 60, Rate: 100})
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	b2.Stop()
	b2.Stop()
	lb, _ := svc.Get(ctx, demo.DefaultBoard)
	if lb.Total != 60 {
		t.Fatalf("total %d after reseeding 60", lb.Total)
	}
	if demo.Participant(0, 12) != "nova" || demo.Participant(12, 12) == demo.Participant(13, 12) {
		t.Fatal("participant ids")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
