package fanout

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestResumeIntoALaggingPhase: a client resumes with the version its last
// message carried, but its new connection (a WebSocket's new shard, a long
// poll's or SSE stream's round-robin phase) lands in a phase that has not
// ticked since the change. The version is within the history, so the API
// promises one update whose prev_version is since_version; it must never be
// sent a state older than the one it already holds.
func TestResumeIntoALaggingPhase(t *testing.T) {
	for _, spec := range []Spec{{Kind: Top, Limit: 3}, {Kind: Participant, ParticipantID: "p05"}, {Kind: Around, ParticipantID: "p05", Radius: 1}} {
		t.Run(spec.Key(), func(t *testing.T) {
			f := newFixture(t, time.Minute)
			ctx := context.Background()
			f.seedBoard(t, 10, 100)
			// Phase 1 has a viewer of the same window (another connection).
			other := &phased{phase: 1}
			f.hub.Subscribe(ctx, "b", "o", spec, nil, "", other, nil)
			client := &phased{phase: 0}
			sub, _ := f.hub.Subscribe(ctx, "b", "c", spec, nil, "", client, nil)
			f.submit(t, "b", "p05", 500, 1) // p05 to the top: every window changes
			f.hub.flush(ctx, 0)             // phase 0's tick; phase 1's comes 25 ms later
			v := apply(t, client.all(), "c")
			if updates(&client.recorder) != 1 {
				t.Fatalf("phase 0 got %d updates", updates(&client.recorder))
			}
			since := v.version
			f.hub.Unsubscribe(sub) // the connection drops; the client reconnects at once
			again := &phased{phase: 1}
			if _, err := f.hub.Subscribe(ctx, "b", "c", spec, &since, "ep", again, nil); err != nil {
				t.Fatal(err)
			}
			got := again.all()[1]
			if got["type"] != "update" || uint64(num(got["prev_version"])) != since {
				t.Fatalf("resume with since_version %d (within history) answered with %s at version %d, want an update from %d",
					since, got["type"], num(got["version"]), since)
			}
			// And the client's view, old frames then the new ones, is the store's after the next window.
			for p := 0; p < f.hub.Phases(); p++ {
				f.hub.flush(ctx, p)
			}
			frames := append(client.all(), again.all()[1:]...)
			view := apply(t, frames, "c")
			wantList, wantPart := expected(t, f.st, "b", spec)
			if spec.Kind == Participant {
				if view.part == nil || *view.part != *wantPart {
					t.Fatalf("participant %v, want %v", view.part, wantPart)
				}
			} else if !slices.Equal(view.list(), wantList) {
				t.Fatalf("window %v, want %v", view.list(), wantList)
			}
		})
	}
}
