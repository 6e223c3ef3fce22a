package gateway

import "testing"

// TestConnectionsSpreadOverPhasesAndWriters: consecutive connections take
// every (writer, phase) pair, so each phase's flush is shared by every
// writer; were the phase the shard modulo the phases, a phase would fall to
// one writer whenever the counts share a factor.
func TestConnectionsSpreadOverPhasesAndWriters(t *testing.T) {
	const writers, phases = 2, 4
	g := &Gateway{writers: &writerPool{chans: make([]chan *wsConn, writers)}}
	seen := map[[2]int]int{}
	for shard := 1; shard <= writers*phases*3; shard++ {
		c := &wsConn{g: g, shard: shard}
		seen[[2]int{shard % writers, int(c.Phase() % phases)}]++
	}
	if len(seen) != writers*phases {
		t.Fatalf("(writer, phase) pairs taken: %v, want all %d", seen, writers*phases)
	}
	for pair, n := range seen {
		if n != 3 {
			t.Fatalf("pair %v taken %d times, want 3: %v", pair, n, seen)
		}
	}
}
