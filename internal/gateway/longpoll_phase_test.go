package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

type evSink func(store.Event)

func (s evSink) Publish(e store.Event) { s(e) }

// chSink hands the hub's frames to the test.
type chSink chan fanout.Frame

func (c chSink) Send(f fanout.Frame) bool {
	select {
	case c <- f:
	default:
	}
	return true
}

// TestLongPollIsNotAnsweredWithAnOlderState: a long poller asks for what
// changed after the version of its last answer. Each poll is a new
// subscription and sinks without a phase take phases in turn, so the poll
// lands in another phase than the one that answered it last time; when that
// phase has not ticked since the change, the poller must wait (nothing
// changed after its version), not be answered at once with a snapshot older
// than the state it holds.
func TestLongPollIsNotAnsweredWithAnOlderState(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hub *fanout.Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: evSink(func(e store.Event) { hub.Publish(e) })})
	// 4 phases, one tick every 500 ms: wide margins for the steps below.
	hub = fanout.New(st, fanout.Options{Epoch: "ep", FlushInterval: 2 * time.Second, Phases: 4})
	g := gateway.New(hub, gateway.Options{})
	st.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	for i := 0; i < 5; i++ {
		st.Submit(ctx, "b", []store.Submission{{ParticipantID: fmt.Sprint("p", i), Score: uint64(10 + i), AchievedAt: 1}}, res)
	}
	spec := fanout.Spec{Kind: fanout.Top, Limit: 3}
	// Two other viewers of the window keep phases 1 and 2 of it alive.
	x, y := make(chSink, 16), make(chSink, 16)
	hub.Subscribe(ctx, "b", "x", spec, nil, "", x, nil) // phase 1
	hub.Subscribe(ctx, "b", "y", spec, nil, "", y, nil) // phase 2
	for range 3 {                                       // other viewers come and go (of another window): the next subscription is in phase 2
		s, _ := hub.Subscribe(ctx, "b", "z", fanout.Spec{Kind: fanout.Top, Limit: 1}, nil, "", make(chSink, 4), nil)
		hub.Unsubscribe(s)
	}
	st.Submit(ctx, "b", []store.Submission{{ParticipantID: "p0", Score: 99, AchievedAt: 2}}, res) // a new leader
	go hub.Run(ctx)
	var v1 uint64
	for v1 == 0 { // phase 1's tick: the poller's last answer came from it
		select {
		case f := <-x:
			if f.Type == "update" {
				v1 = f.Version
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no update in phase 1")
		}
	}
	// The poller asks again at once (phase 2 ticks 500 ms later).
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", fmt.Sprintf("/v1/leaderboards/b/updates?kind=top&limit=3&since_version=%d&epoch=ep&timeout_ms=300", v1), nil)
	start := time.Now()
	if err := g.ServeLongPoll(w, r, "b"); err != nil {
		t.Fatal(err)
	}
	if w.Code != 204 {
		var m map[string]any
		json.Unmarshal(w.Body.Bytes(), &m)
		t.Fatalf("poll with since_version %d (current, nothing changed since) answered after %v with %d: %s %v at version %v",
			v1, time.Since(start).Round(time.Millisecond), w.Code, m["type"], m["entries"], m["version"])
	}
}
