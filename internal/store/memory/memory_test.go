package memory_test

import (
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
	"github.com/lbhq/leaderboard/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, sink store.EventSink) store.Store {
		return memory.New(memory.Options{Sink: sink})
	})
}

// The conformance suite again with every batch applied by rank.SubmitMany
// (the path of boards of 300,000 participants and more).
func TestConformanceLeafWarmPath(t *testing.T) {
	defer memory.SetLeafWarmMin(0)()
	storetest.Run(t, func(t *testing.T, sink store.EventSink) store.Store {
		return memory.New(memory.Options{Sink: sink})
	})
}
