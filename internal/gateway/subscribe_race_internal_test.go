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
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestSubscribesOfOneIDDoNotInterleave: a client's subscribe and the
// connection's own resubscribe (after a resync) can run at once for the same
// id. The frames the client gets for that id must still read as one
// subscription after another: while one is being made the other must not
// be live too, or a flush in between reaches both and the client sees the
// same update twice (a broken chain).
func TestSubscribesOfOneIDDoNotInterleave(t *testing.T) {
	ctx := context.Background()
	var hub *fanout.Hub
	mem := memory.New(memory.Options{Epoch: "ep", Sink: evSinkI(func(e store.Event) { hub.Publish(e) })})
	hub = fanout.New(mem, fanout.Options{Epoch: "ep", Phases: 1, History: time.Hour})
	mem.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	for i := range 10 {
		mem.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprint("p", i), Score: uint64(i)}}, res)
	}
	g := New(hub, Options{SendQueue: 1 << 20, MaxSubscriptions: 8})
	c := &wsConn{g: g, board: "b", subs: map[string]*wsSub{}, shard: 1}
	c.queue = c.first[:0]
	c.scheduled = true // the test owns the queue: nothing is handed to a writer
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
