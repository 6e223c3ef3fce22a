package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// namedSource fills display names into entries on the way out, as the board
// service's Reader does (board.Service.fillNames): a profile PUT changes an
// entry without a store event or a new version.
type namedSource struct {
	*memory.Store
	mu    sync.Mutex
	names map[string]string
}

func (s *namedSource) fill(es []store.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range es {
		es[i].DisplayName = s.names[es[i].ParticipantID]
	}
}

func (s *namedSource) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	p, err := s.Store.Page(ctx, board, offset, limit)
	s.fill(p.Entries)
	return p, err
}

func (s *namedSource) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	p, err := s.Store.Around(ctx, board, participant, limit)
	s.fill(p.Entries)
	return p, err
}

// namedView applies list frames by the rules of docs/LIVE.md, keeping each
// rank's participant and display name.
func namedView(t *testing.T, frames []map[string]any) map[float64]string {
	t.Helper()
	w := map[float64]string{}
	var size float64
	for _, f := range frames {
		var list []any
		switch f["type"] {
		case "snapshot":
			w = map[float64]string{}
			list = f["entries"].([]any)
		case "update":
			list = f["changes"].([]any)
		default:
			continue
		}
		size = f["size"].(float64)
		for _, e := range list {
			m := e.(map[string]any)
			w[m["rank"].(float64)] = fmt.Sprintf("%v/%v", m["participant_id"], m["display_name"])
		}
		for r := range w {
			if r > size {
				delete(w, r)
			}
		}
	}
	return w
}

// TestConflateKeepsDisplayNames: a renamed participant whose rank did not
// change reaches a top window's viewers in the next update the window gets
// (that update diffs whole entries). Merging the updates waiting for a
// connection that fell behind must leave its client where those updates
// would have: the merged update is built from the rank ranges the store's
// events touched, which a rename is not one of, so the renamed entry must
// still be in it.
func TestConflateKeepsDisplayNames(t *testing.T) {
	ctx := context.Background()
	var hub *Hub
	mem := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	src := &namedSource{Store: mem, names: map[string]string{}}
	hub = New(src, Options{Epoch: "ep", Phases: 1})
	mem.CreateBoard(ctx, "b", store.BoardOptions{})
	res := make([]store.Result, 1)
	submit := func(pid string, score uint64) {
		if err := mem.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: score}}, res); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		submit(fmt.Sprintf("p%02d", i), uint64(1000-10*i))
		src.names[fmt.Sprintf("p%02d", i)] = fmt.Sprintf("name%d", i)
	}
	rec := &recorder{}
	sub, err := hub.Subscribe(ctx, "b", "t", Spec{Kind: Top, Limit: 5}, nil, "", rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.names["p02"] = "renamed" // PUT /v1/participants/p02: rank 3, no event
	src.mu.Unlock()
	submit("p04", 965) // rank 5 stays rank 5
	hub.Flush(ctx)     // this update carries rank 3's new name (and rank 5)
	submit("p03", 975) // rank 4 stays rank 4
	hub.Flush(ctx)
	frames := rec.all()
	if len(frames) != 4 {
		t.Fatalf("want subscribed, snapshot and two updates, got %v", frames)
	}
	want := namedView(t, frames)
	if want[3] != "p02/renamed" {
		t.Fatalf("the updates did not carry the rename: %v", want)
	}
	from, to := uint64(num(frames[2]["prev_version"])), uint64(num(frames[3]["version"]))
	mf, ok := hub.Conflate(sub, from, to)
	if !ok {
		t.Fatal("Conflate refused")
	}
	var m map[string]any
	if err := json.Unmarshal(mf.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	got := namedView(t, []map[string]any{frames[1], m})
	for r := float64(1); r <= 5; r++ {
		if got[r] != want[r] {
			t.Fatalf("rank %v: after the merged update %q, after the updates it replaced %q\nmerged: %v", r, got[r], want[r], m)
		}
	}
}
