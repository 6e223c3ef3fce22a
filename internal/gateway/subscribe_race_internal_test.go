package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/store"
)

// TestSubscribesOfOneIDDoNotInterleave: a client's subscribe and the
// connection's own resubscribe (after a resync) can run at once for the same
// id. The frames the client gets for that id must still read as one
// subscription after another: while one is being made the other must not
// be live too, or a flush in between reaches both and the client sees the
// same update twice (a broken chain).
func TestSubscribesOfOneIDDoNotInterleave(t *testing.T) {
	ctx := context.Background()
	hub, mem := seededHub(10, 1, nil)
	res := make([]store.Result, 1)
	g := New(hub, Options{SendQueue: 1 << 20, MaxSubscriptions: 8})
	c := ownedConn(g, 1)
	spec := fanout.Spec{Kind: fanout.Top, Limit: 5}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w == 0 {
					mem.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprint("p", i%10), Score: uint64(100 + i)}}, res)
					hub.Flush(ctx)
					continue
				}
				c.subscribe("a", spec, nil, "")
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	c.qmu.Lock()
	frames := parseFrames(t, slices.Clone(c.queue))
	c.qmu.Unlock()
	if _, err := ireplay(frames, "a"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames", len(frames))
}
