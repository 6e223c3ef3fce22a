package gateway

import (
	"runtime"
	"testing"
)

// TestUnsubscribeDuringResubscribeNatural: the same race as
// TestUnsubscribeDuringResubscribe with no help from the test: the
// client's unsubscribe and the connection's resubscribe simply run at once.
func TestUnsubscribeDuringResubscribeNatural(t *testing.T) {
	hits := 0
	const rounds = 300
	for range rounds {
		c, _ := droppedConn(t, 1)
		done := make(chan struct{})
		go func() { c.resubscribe(); close(done) }()
		runtime.Gosched()
		c.unsubscribe("a")
		<-done
		c.mu.Lock()
		if c.subs["a"] != nil {
			hits++
		}
		c.mu.Unlock()
	}
	if hits > 0 {
		t.Fatalf("%d of %d rounds: a is subscribed again after the client's unsubscribe", hits, rounds)
	}
}
