package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestCatchUpWaitsForTheChangesItCovers: a store whose events reach the hub
// after its reads can see them (the Redis store publishes a change after its
// script returned, and a read may run in between) lets a flush install a
// window at a version whose changes the hub's log does not hold yet. A
// resume, or a merge of a connection's waiting updates, from an earlier
// version must not then be answered with an update built from the log alone:
// it would leave out the positions those changes moved, and the client's
// window would differ from the board at the version it claims. It gets a
// snapshot (or no merge) instead, and whatever it gets takes it exactly to
// the board's window.
func TestCatchUpWaitsForTheChangesItCovers(t *testing.T) {
	ctx := context.Background()
	var hub *Hub
	var held []store.Event
	hold := false
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) {
		if hold {
			held = append(held, e) // published later, as after a Redis script returned
			return
		}
		hub.Publish(e)
	})})
	hub = New(st, Options{Epoch: "ep"})
	st.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	submit := func(pid string, score uint64) {
		t.Helper()
		if err := st.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: score}}, res); err != nil || !res[0].Updated {
			t.Fatalf("submit %s %d: %v %+v", pid, score, err, res[0])
		}
	}
	for i := 0; i < 10; i++ {
		submit(fmt.Sprintf("p%02d", i), uint64(1000-10*i))
	}
	spec := Spec{Kind: Top, Limit: 5}
	first := &recorder{}
	sub, err := hub.Subscribe(ctx, "b", "a", spec, nil, "", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	since := uint64(num(first.all()[1]["version"]))
	submit("p05", 965) // ranks 5 and 6 swap: published at once
	hold = true
	submit("p03", 975) // rank 4's score changes; its event is still on its way
	hub.Flush(ctx)     // the first change makes the flush read the window, which has both
	if v := apply(t, first.all(), "a"); v.version != since+2 {
		t.Fatalf("the flush installed version %d, want %d (the read saw both changes)", v.version, since+2)
	}
	want, _ := expected(t, st, "b", spec)

	// A client at since resumes.
	again := &recorder{}
	if _, err := hub.Subscribe(ctx, "b", "a", spec, &since, "ep", again, nil); err != nil {
		t.Fatal(err)
	}
	snapshot := first.all()[:2]
	if got := apply(t, append(slices.Clone(snapshot), again.all()[1]), "a").list(); !slices.Equal(got, want) {
		t.Errorf("resume from %d answered with %v: window\n got %v\nwant %v", since, again.all()[1], got, want)
	}

	// A connection that did not write the update yet has it merged from since.
	if mf, ok := hub.Conflate(sub, since, since+2); ok {
		var m map[string]any
		if err := json.Unmarshal(mf.AppendJSON(nil), &m); err != nil {
			t.Fatal(err)
		}
		if got := apply(t, append(slices.Clone(snapshot), m), "a").list(); !slices.Equal(got, want) {
			t.Errorf("merged update from %d %v: window\n got %v\nwant %v", since, m, got, want)
		}
	}

	// Once the change has reached the hub, resumes are served by one update again.
	hold = false
	for _, e := range held {
		hub.Publish(e)
	}
	late := &recorder{}
	hub.Subscribe(ctx, "b", "a", spec, &since, "ep", late, nil)
	if late.all()[1]["type"] != "update" {
		t.Fatalf("resume from %d with the log complete: %v, want an update", since, late.all()[1])
	}
	if got := apply(t, append(slices.Clone(snapshot), late.all()[1]), "a").list(); !slices.Equal(got, want) {
		t.Fatalf("resume from %d with the log complete: window\n got %v\nwant %v", since, got, want)
	}
}
