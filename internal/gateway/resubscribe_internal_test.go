package gateway

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/store"
)

// droppedConn returns a connection (queue owned by the test) whose
// subscription "a" (top 5) the hub dropped as slow: the connection waits
// for its queue to drain to resubscribe it. The queue is then emptied, as
// the writer would, so that resubscribe can run.
func droppedConn(t *testing.T, maxSubs int) (*wsConn, *fanout.Hub) {
	t.Helper()
	ctx := context.Background()
	hub, mem := seededHub(10, 1, nil)
	g := New(hub, Options{SendQueue: 3, MaxSubscriptions: maxSubs})
	c := ownedConn(g, 1)
	c.subscribe("a", fanout.Spec{Kind: fanout.Top, Limit: 5}, nil, "")
	res := make([]store.Result, 1)
	for i := 0; ; i++ {
		c.mu.Lock()
		dropped := c.subs["a"] != nil && !c.subs["a"].ready
		c.mu.Unlock()
		if dropped {
			break
		}
		if i > 100 {
			t.Fatal("subscription a was never dropped")
		}
		mem.Submit(ctx, "b", []store.Submission{{ParticipantID: "p0", Score: uint64(1000 + i)}}, res)
		hub.Flush(ctx)
	}
	c.qmu.Lock()
	c.queue = c.queue[:0] // the writer drained it (the client got the resync)
	c.qmu.Unlock()
	return c, hub
}

// TestUnsubscribeDuringResubscribe: a subscription dropped as slow is
// subscribed again by the connection (resubscribe, after its queue drains)
// while the client's unsubscribe of that id is being handled. resubscribe
// checks that the id is still current under c.mu but only takes subMu
// afterwards (inside subscribe): an unsubscribe that completes in between
// is undone, and the client gets `subscribed` and a snapshot (and updates
// from then on) for an id it unsubscribed, which also holds one of its
// --max-subscriptions places.
//
// The interleaving is made deterministic with subMu: the unsubscribe is
// queued on it first, then resubscribe does its check and queues behind it.
func TestUnsubscribeDuringResubscribe(t *testing.T) {
	c, _ := droppedConn(t, 1)

	c.subMu.Lock() // another subscribe in progress (any holder of subMu)
	unsubDone := make(chan struct{})
	go func() { c.unsubscribe("a"); close(unsubDone) }()
	time.Sleep(20 * time.Millisecond) // unsubscribe waits on subMu
	resubDone := make(chan struct{})
	go func() { c.resubscribe(); close(resubDone) }()
	time.Sleep(20 * time.Millisecond) // resubscribe has checked "a" (current) and waits on subMu
	c.subMu.Unlock()
	<-unsubDone
	<-resubDone

	c.mu.Lock()
	_, live := c.subs["a"]
	c.mu.Unlock()
	c.qmu.Lock()
	frames := parseFrames(t, slices.Clone(c.queue))
	c.qmu.Unlock()
	var after []string
	for _, m := range frames {
		after = append(after, fmt.Sprint(m["type"], ":", m["id"]))
	}
	// A further subscribe must find the place the unsubscribe freed.
	c.subscribe("b", fanout.Spec{Kind: fanout.Top, Limit: 1}, nil, "")
	c.qmu.Lock()
	frames = parseFrames(t, slices.Clone(c.queue))
	c.qmu.Unlock()
	var tooMany bool
	for _, m := range frames {
		tooMany = tooMany || (m["type"] == "error" && m["code"] == "too_many_subscriptions")
	}
	// Frames for a may be queued (a resubscribe that got subMu first, before
	// the unsubscribe, legitimately sent them); what must hold is that the
	// client's unsubscribe is the last word.
	if live || tooMany {
		t.Fatalf("after the client's unsubscribe of a: a still subscribed=%v (frames queued for the client %v), next subscribe refused as too many=%v", live, after, tooMany)
	}
}

// TestResubscribeOverridesNewKind: the same window, with the client
// subscribing the id again with another kind (participant) instead of
// unsubscribing: the connection's resubscribe then replaces the client's
// new subscription with the old spec (top), and the client, which asked
// for a participant window, is sent top-5 frames for that id from then on.
func TestResubscribeOverridesNewKind(t *testing.T) {
	c, _ := droppedConn(t, 4)

	c.subMu.Lock()
	subDone := make(chan struct{})
	go func() {
		c.subscribe("a", fanout.Spec{Kind: fanout.Participant, ParticipantID: "p3"}, nil, "")
		close(subDone)
	}()
	time.Sleep(20 * time.Millisecond)
	resubDone := make(chan struct{})
	go func() { c.resubscribe(); close(resubDone) }()
	time.Sleep(20 * time.Millisecond)
	c.subMu.Unlock()
	<-subDone
	<-resubDone

	c.mu.Lock()
	s := c.subs["a"]
	c.mu.Unlock()
	c.qmu.Lock()
	frames := parseFrames(t, slices.Clone(c.queue))
	c.qmu.Unlock()
	var kinds []any
	for _, m := range frames {
		if m["type"] == "subscribed" {
			kinds = append(kinds, m["kind"])
		}
	}
	if s == nil || s.spec.Kind != fanout.Participant {
		t.Fatalf("the client subscribed a as participant; the connection now holds %+v; subscribed frames sent: %v", s.spec, kinds)
	}
}
