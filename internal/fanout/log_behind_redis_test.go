package fanout

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/redistest"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// TestResumeWhileARedisChangeIsBeingPublished: the Redis store publishes a
// change after its script returned, so a flush can read a window that has a
// change the hub's log does not hold yet. A resume from before it meanwhile
// must still take the client exactly to the window it is told it has.
func TestResumeWhileARedisChangeIsBeingPublished(t *testing.T) {
	ctx := context.Background()
	opts, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewClient(opts)
	defer client.Close()
	var hub *Hub
	arrived, release := make(chan struct{}), make(chan struct{})
	var hold atomic.Bool
	st, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: redistest.Prefix(t, "fanout"), Epoch: "ep",
		Sink: sinkFunc(func(e store.Event) {
			if hold.Load() && e.ParticipantID == "p03" {
				close(arrived) // the script has returned; the event waits here
				<-release
			}
			hub.Publish(e)
		})})
	if err != nil {
		t.Fatal(err)
	}
	hub = New(st, Options{Epoch: "ep"})
	if err := st.CreateBoard(ctx, "b", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	submit := func(pid string, score uint64) {
		res := make([]store.Result, 1)
		if err := st.Submit(ctx, "b", []store.Submission{{ParticipantID: pid, Score: score}}, res); err != nil {
			t.Error(err)
		}
	}
	for i := 0; i < 10; i++ {
		submit(fmt.Sprintf("p%02d", i), uint64(1000-10*i))
	}
	spec := Spec{Kind: Top, Limit: 5}
	first := &recorder{}
	if _, err := hub.Subscribe(ctx, "b", "a", spec, nil, "", first, nil); err != nil {
		t.Fatal(err)
	}
	since := uint64(num(first.all()[1]["version"]))
	submit("p05", 965) // ranks 5 and 6 swap
	hold.Store(true)
	done := make(chan struct{})
	go func() { defer close(done); submit("p03", 975) }() // rank 4's score
	<-arrived
	hub.Flush(ctx)
	p, _ := st.Page(ctx, "b", 0, 5)
	again := &recorder{}
	hub.Subscribe(ctx, "b", "a", spec, &since, "ep", again, nil)
	close(release)
	<-done
	v := apply(t, append(slices.Clone(first.all()[:2]), again.all()[1]), "a")
	if got := v.list(); v.version != p.Version || !slices.Equal(got, p.Entries) {
		t.Fatalf("resume from %d answered with %v: window at version %d\n got %v\nwant %v (version %d)", since, again.all()[1], v.version, got, p.Entries, p.Version)
	}
}
