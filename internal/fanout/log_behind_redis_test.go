package fanout

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

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
	client := redisClient(t)
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
	submit := func(pid string, score uint64) { submitTo(t, st, pid, score) }
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

// TestViewerSeesAChangeMadeElsewhereBeforeItsProcessFollowedTheBoard: two
// processes over one Redis, the board written only through B. A viewer on A
// is served from a read; a change made through B after that read and before
// A's first look at the board's outbox (CatchUp, once per flush window) must
// still reach the viewer, not only the next change after it (on a quiet
// board, never).
func TestViewerSeesAChangeMadeElsewhereBeforeItsProcessFollowedTheBoard(t *testing.T) {
	ctx := context.Background()
	client := redisClient(t)
	prefix := redistest.Prefix(t, "fanout")
	var hub *Hub
	a, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: prefix, Epoch: "ep",
		Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: prefix, Epoch: "ep"})
	if err != nil {
		t.Fatal(err)
	}
	hub = New(a, Options{Epoch: "ep"})
	if err := b.CreateBoard(ctx, "b", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	submit := func(pid string, score uint64) { submitTo(t, b, pid, score) }
	for i := 0; i < 10; i++ {
		submit(fmt.Sprintf("p%02d", i), uint64(1000-10*i))
	}
	spec := Spec{Kind: Top, Limit: 5}
	viewer := &recorder{}
	if _, err := hub.Subscribe(ctx, "b", "v", spec, nil, "", viewer, nil); err != nil {
		t.Fatal(err)
	}
	submit("p09", 2000) // through B, before A follows the board
	for range 2 {       // A's follow loop, two windows
		if err := a.CatchUp(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		hub.Flush(ctx)
	}
	p, err := a.Page(ctx, "b", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	v := apply(t, viewer.all(), "v")
	if got := v.list(); v.version != p.Version || !slices.Equal(got, p.Entries) {
		t.Fatalf("viewer on A at version %d: %v\nwant version %d: %v", v.version, got, p.Version, p.Entries)
	}
}

// TestResumeWhileAnotherProcessesBacklogIsBeingPublished: a process whose
// place in a board's outbox is old (it wrote to the board long ago) and whose
// hub starts watching the board again publishes the other processes' changes
// since then one by one (CatchUp, reading the outbox in pages). Until the
// last of them is in, the hub's log does not hold the changes up to the
// version its windows were read at, and a resume from a version in that
// backlog must not be served from the part that arrived.
func TestResumeWhileAnotherProcessesBacklogIsBeingPublished(t *testing.T) {
	ctx := context.Background()
	client := redisClient(t)
	prefix := redistest.Prefix(t, "fanout")
	var hub *Hub
	arrived, release := make(chan struct{}), make(chan struct{})
	var holdAt atomic.Uint64
	a, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: prefix, Epoch: "ep",
		Sink: sinkFunc(func(e store.Event) {
			if e.Version == holdAt.Load() {
				close(arrived) // the rest of the backlog waits here
				<-release
			}
			hub.Publish(e)
		})})
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisstore.New(ctx, redisstore.Options{Client: client, Prefix: prefix, Epoch: "ep"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	hub = New(a, Options{Epoch: "ep", History: time.Second, Now: func() time.Time { return now }})
	if err := b.CreateBoard(ctx, "b", store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	submit := submitTo
	submit(t, a, "p00", 1000) // A follows the board from here
	for i := 1; i < 12; i++ {
		submit(t, b, fmt.Sprintf("p%02d", i), uint64(1000-10*i))
	}
	spec := Spec{Kind: Top, Limit: 5}
	first := &recorder{}
	sub, err := hub.Subscribe(ctx, "b", "a", spec, nil, "", first, nil)
	if err != nil {
		t.Fatal(err)
	}
	since := uint64(num(first.all()[1]["version"]))
	hub.Unsubscribe(sub)
	now = now.Add(2 * time.Second)
	hub.Flush(ctx) // the hub forgets the idle board

	submit(t, b, "p11", 905) // below the window
	submit(t, b, "p10", 915)
	for i := 9; i >= 5; i-- { // into the window
		submit(t, b, fmt.Sprintf("p%02d", i), uint64(2000+i))
	}
	if _, err := hub.Subscribe(ctx, "b", "v", spec, nil, "", &recorder{}, nil); err != nil {
		t.Fatal(err)
	}
	holdAt.Store(since + 3)
	done := make(chan error, 1)
	go func() { done <- a.CatchUp(ctx, "b") }() // A's follow loop
	<-arrived
	again := &recorder{}
	_, err = hub.Subscribe(ctx, "b", "a", spec, &since, "ep", again, nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Page(ctx, "b", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	v := apply(t, append(slices.Clone(first.all()[:2]), again.all()[1]), "a")
	if got := v.list(); v.version != p.Version || !slices.Equal(got, p.Entries) {
		t.Fatalf("resume from %d answered with %v: window at version %d\n got %v\nwant %v (version %d)", since, again.all()[1], v.version, got, p.Entries, p.Version)
	}
}

func redisClient(t *testing.T) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}

// submitTo submits one score to board "b" of st. Safe from another
// goroutine: a failure is reported with t.Error.
func submitTo(t *testing.T, st store.Store, pid string, score uint64) {
	t.Helper()
	res := make([]store.Result, 1)
	if err := st.Submit(context.Background(), "b", []store.Submission{{ParticipantID: pid, Score: score}}, res); err != nil {
		t.Error(err)
	}
}
