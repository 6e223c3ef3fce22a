package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// recorder is a Sink that keeps every frame, parsed, and can refuse frames
// once it holds limit of them (a slow reader).
type recorder struct {
	mu     sync.Mutex
	frames []map[string]any
	limit  int
}

func (r *recorder) Send(f Frame) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit > 0 && len(r.frames) >= r.limit {
		return false
	}
	var m map[string]any
	if err := json.Unmarshal(f.AppendJSON(nil), &m); err != nil {
		panic(fmt.Sprintf("frame is not JSON: %v: %s", err, f.AppendJSON(nil)))
	}
	r.frames = append(r.frames, m)
	return true
}

func (r *recorder) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

// view is a client's copy of one subscription, built by the rules of docs/LIVE.md.
type view struct {
	version uint64
	offset  int64
	size    int64
	entries map[int64]store.Entry
	part    *store.Entry
	got     bool
}

func toEntry(m map[string]any) store.Entry {
	return store.Entry{Rank: num(m["rank"]), ParticipantID: m["participant_id"].(string), Score: uint64(num(m["score"])), AchievedAt: num(m["achieved_at"])}
}

// apply applies the frames for subscription id in order and fails on a broken chain.
func apply(t *testing.T, frames []map[string]any, id string) *view {
	t.Helper()
	v := &view{}
	for _, f := range frames {
		if f["id"] != id {
			continue
		}
		switch f["type"] {
		case "subscribed":
		case "snapshot":
			v.got, v.version = true, uint64(num(f["version"]))
			v.entries, v.part = map[int64]store.Entry{}, nil
			if p, ok := f["participant"]; ok {
				if p != nil {
					e := toEntry(p.(map[string]any))
					v.part = &e
				}
				continue
			}
			v.offset, v.size = num(f["offset"]), num(f["size"])
			for _, e := range f["entries"].([]any) {
				en := toEntry(e.(map[string]any))
				v.entries[en.Rank] = en
			}
		case "update":
			if !v.got || uint64(num(f["prev_version"])) != v.version {
				t.Fatalf("sub %s: update prev_version %v after version %d", id, f["prev_version"], v.version)
			}
			v.version = uint64(num(f["version"]))
			if p, ok := f["participant"]; ok {
				v.part = nil
				if p != nil {
					e := toEntry(p.(map[string]any))
					v.part = &e
				}
				continue
			}
			v.offset, v.size = num(f["offset"]), num(f["size"])
			for _, c := range f["changes"].([]any) {
				en := toEntry(c.(map[string]any))
				v.entries[en.Rank] = en
			}
			for r := range v.entries {
				if r <= v.offset || r > v.offset+v.size {
					delete(v.entries, r)
				}
			}
		case "resync":
			v.got = false
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
	return v
}

func (v *view) list() []store.Entry {
	var out []store.Entry
	for r := v.offset + 1; r <= v.offset+v.size; r++ {
		out = append(out, v.entries[r])
	}
	return out
}

type fixture struct {
	st  *memory.Store
	hub *Hub
	now time.Time
}

func newFixture(t *testing.T, history time.Duration) *fixture {
	f := &fixture{now: time.Unix(1000, 0)}
	var hub *Hub
	sink := sinkFunc(func(e store.Event) { hub.Publish(e) })
	f.st = memory.New(memory.Options{Epoch: "ep", Sink: sink})
	hub = New(f.st, Options{Epoch: "ep", History: history, Now: func() time.Time { return f.now }})
	f.hub = hub
	return f
}

type sinkFunc func(store.Event)

func (s sinkFunc) Publish(e store.Event) { s(e) }

// seedBoard creates board "b" with n participants p00, p01, ... scoring top,
// top-1, ... (so p00 leads).
func (f *fixture) seedBoard(t *testing.T, n int, top uint64) {
	t.Helper()
	f.st.CreateBoard(context.Background(), "b", store.BoardOptions{})
	for i := 0; i < n; i++ {
		f.submit(t, "b", fmt.Sprintf("p%02d", i), top-uint64(i), 0)
	}
}

func (f *fixture) submit(t *testing.T, board, pid string, score uint64, at int64) {
	t.Helper()
	res := make([]store.Result, 1)
	if err := f.st.Submit(context.Background(), board, []store.Submission{{ParticipantID: pid, Score: score, AchievedAt: at}}, res); err != nil {
		t.Fatal(err)
	}
}

// expected returns what the store says the subscription's window is now.
func expected(t *testing.T, st *memory.Store, board string, spec Spec) ([]store.Entry, *store.Entry) {
	t.Helper()
	ctx := context.Background()
	switch spec.Kind {
	case Top:
		p, _ := st.Page(ctx, board, 0, spec.Limit)
		return p.Entries, nil
	case Participant:
		v, err := st.Participant(ctx, board, spec.ParticipantID, 0)
		if err != nil {
			return nil, nil
		}
		return nil, &v.Entry
	}
	p, err := st.Around(ctx, board, spec.ParticipantID, 2*spec.Radius+1)
	if err != nil {
		return nil, nil
	}
	return p.Entries, nil
}

// TestSubscribersConvergeUnderConcurrentSubmissions: writers submit random
// scores (ties, big jumps, arrivals, removals) while flushes run; many
// subscriptions of every kind watch. After the last flush every
// subscription's reconstructed window equals the store's, and every
// prev_version chain is unbroken.
func TestSubscribersConvergeUnderConcurrentSubmissions(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	const board = "live"
	if err := f.st.CreateBoard(ctx, board, store.BoardOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		f.submit(t, board, fmt.Sprint("p", i), uint64(i*10), int64(i))
	}
	specs := []Spec{
		{Kind: Top, Limit: 1}, {Kind: Top, Limit: 5}, {Kind: Top, Limit: 10}, {Kind: Top, Limit: 100},
		{Kind: Participant, ParticipantID: "p3"}, {Kind: Participant, ParticipantID: "p30"}, {Kind: Participant, ParticipantID: "late"},
		{Kind: Around, ParticipantID: "p20", Radius: 2}, {Kind: Around, ParticipantID: "p0", Radius: 3}, {Kind: Around, ParticipantID: "late", Radius: 1},
	}
	type subscriber struct {
		rec  *recorder
		spec Spec
		id   string
	}
	var subs []subscriber
	for i, spec := range specs {
		for j := 0; j < 3; j++ { // several subscribers per segment, different ids
			rec := &recorder{}
			id := fmt.Sprintf("s%d-%d", i, j)
			if _, err := f.hub.Subscribe(ctx, board, id, spec, nil, "", rec, nil); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, subscriber{rec, spec, id})
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < 2000; i++ {
				pid := fmt.Sprint("p", rng.IntN(60))
				if rng.IntN(15) == 0 {
					pid = "late"
				}
				if rng.IntN(12) == 0 {
					f.st.Remove(ctx, board, pid)
					continue
				}
				score := uint64(rng.IntN(50)) * 10 // many ties
				if rng.IntN(5) == 0 {
					score = rng.Uint64N(1e6) // big jumps
				}
				res := make([]store.Result, 1)
				f.st.Submit(ctx, board, []store.Submission{{ParticipantID: pid, Score: score, AchievedAt: int64(rng.IntN(4))}}, res)
			}
		}(w)
	}
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for tick := 0; ; tick++ {
			select {
			case <-stop:
				return
			default:
				f.hub.flush(ctx, tick%f.hub.Phases()) // as Run does: the phases in turn
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-flushed
	f.hub.Flush(ctx) // the last window

	st, _ := f.st.Stats(ctx, board)
	for _, s := range subs {
		v := apply(t, s.rec.all(), s.id)
		if v.version > st.Version {
			t.Fatalf("%s: version %d ahead of the board's %d", s.id, v.version, st.Version)
		}
		wantList, wantPart := expected(t, f.st, board, s.spec)
		if s.spec.Kind == Participant {
			if (v.part == nil) != (wantPart == nil) || (v.part != nil && *v.part != *wantPart) {
				t.Fatalf("%s (%v): participant %v, store %v", s.id, s.spec, v.part, wantPart)
			}
			continue
		}
		if got := v.list(); !slices.Equal(got, wantList) && !(len(got) == 0 && len(wantList) == 0) {
			t.Fatalf("%s (%v): window\n got %v\nwant %v", s.id, s.spec, got, wantList)
		}
	}
}

// TestCoalescingAndSilence: many changes inside one flush window give one
// update; segments the changes cannot reach get nothing.
func TestCoalescingAndSilence(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 50, 1000)
	top, deep := &recorder{}, &recorder{}
	f.hub.Subscribe(ctx, "b", "top", Spec{Kind: Top, Limit: 3}, nil, "", top, nil)
	f.hub.Subscribe(ctx, "b", "deep", Spec{Kind: Participant, ParticipantID: "p05"}, nil, "", deep, nil)
	// Ten changes among ranks 20..40: nobody above rank 20 moves.
	for i := 20; i < 30; i++ {
		f.submit(t, "b", fmt.Sprintf("p%02d", i), uint64(1000-i-10), 1)
	}
	f.hub.Flush(ctx)
	if n := len(top.all()); n != 2 {
		t.Fatalf("top-3 got %d frames, want subscribed+snapshot only", n)
	}
	if n := len(deep.all()); n != 2 {
		t.Fatalf("p05 got %d frames, want none after its snapshot", n)
	}
	// Five changes at the top in one window: one update.
	for i := 0; i < 5; i++ {
		f.submit(t, "b", fmt.Sprintf("p%02d", 40+i), uint64(2000+i), 1)
	}
	f.hub.Flush(ctx)
	frames := top.all()
	if len(frames) != 3 || frames[2]["type"] != "update" {
		t.Fatalf("top-3 frames %v, want exactly one update", frames)
	}
	if num(frames[2]["version"]) != 65 || num(frames[2]["prev_version"]) != 50 {
		t.Fatalf("update versions %v", frames[2])
	}
	// A flush with no change sends nothing.
	f.hub.Flush(ctx)
	if len(top.all()) != 3 {
		t.Fatal("a flush without changes sent a frame")
	}
}

// TestResume: a subscriber that comes back with since_version inside the
// history gets one catch-up update and ends equal to the store; one whose
// version is older than the history, or of another epoch, gets a snapshot.
func TestResume(t *testing.T) {
	f := newFixture(t, 10*time.Second)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "r", store.BoardOptions{})
	for i := 0; i < 20; i++ {
		f.submit(t, "r", fmt.Sprint("p", i), uint64(i), 0)
	}
	specs := []Spec{{Kind: Top, Limit: 5}, {Kind: Participant, ParticipantID: "p7"}, {Kind: Around, ParticipantID: "p7", Radius: 2}}
	for _, spec := range specs {
		first := &recorder{}
		sub, err := f.hub.Subscribe(ctx, "r", "x", spec, nil, "", first, nil)
		if err != nil {
			t.Fatal(err)
		}
		since := uint64(num(first.all()[1]["version"]))
		f.hub.Unsubscribe(sub)
		// Changes while away: p7 climbs, others move.
		f.submit(t, "r", "p7", 100+since, 1)
		f.submit(t, "r", "p1", 200+since, 1)
		f.hub.Flush(ctx)
		again := &recorder{}
		if _, err := f.hub.Subscribe(ctx, "r", "x", spec, &since, "ep", again, nil); err != nil {
			t.Fatal(err)
		}
		frames := append(first.all(), again.all()[1:]...) // the client's view: old frames, then the catch-up
		if again.all()[1]["type"] != "update" || uint64(num(again.all()[1]["prev_version"])) != since {
			t.Fatalf("%v: resume gave %v, want an update from %d", spec, again.all()[1], since)
		}
		v := apply(t, frames, "x")
		wantList, wantPart := expected(t, f.st, "r", spec)
		if spec.Kind == Participant {
			if v.part == nil || *v.part != *wantPart {
				t.Fatalf("%v: participant %v, want %v", spec, v.part, wantPart)
			}
		} else if !slices.Equal(v.list(), wantList) {
			t.Fatalf("%v: after resume %v, want %v", spec, v.list(), wantList)
		}
	}
	// Another epoch, or a version before the history: snapshot.
	zero := uint64(0)
	for _, epoch := range []string{"other", "ep"} {
		if epoch == "ep" {
			f.now = f.now.Add(time.Minute) // history ages out
			f.submit(t, "r", "p2", 999, 2)
			f.hub.Flush(ctx)
		}
		rec := &recorder{}
		f.hub.Subscribe(ctx, "r", "y", Spec{Kind: Top, Limit: 5}, &zero, epoch, rec, nil)
		if rec.all()[1]["type"] != "snapshot" {
			t.Fatalf("epoch %s, since 0: got %v, want a snapshot", epoch, rec.all()[1])
		}
	}
}

// TestSlowSubscriberIsDropped: a sink that refuses frames is taken off the
// segment and told through onDrop; the others keep receiving.
func TestSlowSubscriberIsDropped(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "s", store.BoardOptions{})
	f.submit(t, "s", "a", 1, 0)
	slow, fast := &recorder{limit: 3}, &recorder{}
	var dropped []*Subscription
	f.hub.Subscribe(ctx, "s", "slow", Spec{Kind: Top, Limit: 10}, nil, "", slow, func(s *Subscription) { dropped = append(dropped, s) })
	f.hub.Subscribe(ctx, "s", "fast", Spec{Kind: Top, Limit: 10}, nil, "", fast, nil)
	for i := 0; i < 5; i++ {
		f.submit(t, "s", fmt.Sprint("q", i), uint64(10+i), 0)
		f.hub.Flush(ctx)
	}
	if len(dropped) != 1 || dropped[0].ID != "slow" {
		t.Fatalf("dropped %v, want the slow subscription once", dropped)
	}
	if n := len(fast.all()); n != 7 {
		t.Fatalf("fast subscriber got %d frames, want 7", n)
	}
	v := apply(t, fast.all(), "fast")
	want, _ := expected(t, f.st, "s", Spec{Kind: Top, Limit: 10})
	if !slices.Equal(v.list(), want) {
		t.Fatalf("fast subscriber %v, want %v", v.list(), want)
	}
}

func TestStatusReachesEachConnectionOnce(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "st", store.BoardOptions{})
	conn := &recorder{}
	f.hub.Subscribe(ctx, "st", "a", Spec{Kind: Top, Limit: 3}, nil, "", conn, nil)
	f.hub.Subscribe(ctx, "st", "b", Spec{Kind: Top, Limit: 4}, nil, "", conn, nil)
	f.hub.Status("st", "paused", 0)
	var statuses int
	for _, fr := range conn.all() {
		if fr["type"] == "status" {
			statuses++
			if fr["status"] != "paused" {
				t.Fatalf("status frame %v", fr)
			}
		}
	}
	if statuses != 1 {
		t.Fatalf("%d status frames on one connection, want 1", statuses)
	}
}

func TestSubscribeUnknownBoard(t *testing.T) {
	f := newFixture(t, time.Minute)
	if _, err := f.hub.Subscribe(context.Background(), "nope", "a", Spec{Kind: Top, Limit: 1}, nil, "", &recorder{}, nil); err != ErrNotFound {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

// TestScoreChangeInPlace: a participant whose score changes but whose rank
// does not still appears in the update.
func TestScoreChangeInPlace(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "c", store.BoardOptions{})
	f.submit(t, "c", "a", 100, 0)
	f.submit(t, "c", "b", 50, 0)
	rec := &recorder{}
	f.hub.Subscribe(ctx, "c", "t", Spec{Kind: Top, Limit: 2}, nil, "", rec, nil)
	f.hub.Subscribe(ctx, "c", "p", Spec{Kind: Participant, ParticipantID: "a"}, nil, "", rec, nil)
	f.submit(t, "c", "a", 120, 1) // still first
	f.hub.Flush(ctx)
	frames := rec.all()
	vt, vp := apply(t, frames, "t"), apply(t, frames, "p")
	if got := vt.entries[1]; got.Score != 120 || got.ParticipantID != "a" {
		t.Fatalf("top window rank 1 = %+v, want a with 120", got)
	}
	if vp.part == nil || vp.part.Score != 120 || vp.part.Rank != 1 {
		t.Fatalf("participant = %+v, want rank 1 score 120", vp.part)
	}
}

// racingSource reads the window, then lets a change land and a flush run
// before handing the (now older) window to Subscribe: the interleaving in
// which a flush closes a bucket while a new segment is still being read.
type racingSource struct {
	*memory.Store
	during func()
}

func (r *racingSource) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	p, err := r.Store.Page(ctx, board, offset, limit)
	if r.during != nil {
		during := r.during
		r.during = nil
		during()
	}
	return p, err
}

// TestSegmentInstalledAfterAMissedFlush: a change that lands between a new
// segment's read and its installation still reaches its subscribers.
func TestSegmentInstalledAfterAMissedFlush(t *testing.T) {
	ctx := context.Background()
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	src := &racingSource{Store: st}
	hub = New(src, Options{Epoch: "ep"})
	st.CreateBoard(ctx, "m", store.BoardOptions{})
	res := make([]store.Result, 1)
	for i, score := range []uint64{10, 20, 30, 40} {
		st.Submit(ctx, "m", []store.Submission{{ParticipantID: fmt.Sprint("p", i), Score: score, AchievedAt: 1}}, res)
	}
	// Another subscriber makes the board known to the hub, so the change is recorded.
	hub.Subscribe(ctx, "m", "other", Spec{Kind: Participant, ParticipantID: "p0"}, nil, "", &recorder{}, nil)
	src.during = func() {
		st.Submit(ctx, "m", []store.Submission{{ParticipantID: "p9", Score: 99, AchievedAt: 2}}, res)
		hub.Flush(ctx)
	}
	rec := &recorder{}
	if _, err := hub.Subscribe(ctx, "m", "t", Spec{Kind: Top, Limit: 3}, nil, "", rec, nil); err != nil {
		t.Fatal(err)
	}
	hub.Flush(ctx) // nothing new happened, but the segment was read before p9 arrived
	want, _ := expected(t, st, "m", Spec{Kind: Top, Limit: 3})
	if got := apply(t, rec.all(), "t").list(); !slices.Equal(got, want) {
		t.Fatalf("window %v, store %v", got, want)
	}
}

// failingSource fails every read while down is set (a remote store that is
// unreachable).
type failingSource struct {
	*memory.Store
	down bool
}

func (f *failingSource) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	if f.down {
		return store.Page{}, fmt.Errorf("connection refused")
	}
	return f.Store.Page(ctx, board, offset, limit)
}

func (f *failingSource) Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error) {
	if f.down {
		return store.ParticipantView{}, fmt.Errorf("connection refused")
	}
	return f.Store.Participant(ctx, board, participant, neighbors)
}

// TestFailedReadIsRetried: a flush whose window reads fail (the store is
// unreachable) reads those windows again at the next flush, so the change it
// carried still reaches the subscribers once the store answers, with no new
// submission to trigger it.
func TestFailedReadIsRetried(t *testing.T) {
	ctx := context.Background()
	var hub *Hub
	st := memory.New(memory.Options{Epoch: "ep", Sink: sinkFunc(func(e store.Event) { hub.Publish(e) })})
	src := &failingSource{Store: st}
	hub = New(src, Options{Epoch: "ep"})
	st.CreateBoard(ctx, "f", store.BoardOptions{})
	res := make([]store.Result, 1)
	for i, score := range []uint64{10, 20, 30} {
		st.Submit(ctx, "f", []store.Submission{{ParticipantID: fmt.Sprint("p", i), Score: score, AchievedAt: 1}}, res)
	}
	top, me := &recorder{}, &recorder{}
	hub.Subscribe(ctx, "f", "t", Spec{Kind: Top, Limit: 3}, nil, "", top, nil)
	hub.Subscribe(ctx, "f", "m", Spec{Kind: Participant, ParticipantID: "p0"}, nil, "", me, nil)
	src.down = true
	st.Submit(ctx, "f", []store.Submission{{ParticipantID: "p0", Score: 99, AchievedAt: 2}}, res)
	hub.Flush(ctx) // fails: nothing sent
	hub.Flush(ctx) // still failing
	src.down = false
	hub.Flush(ctx) // no new change, but the failed windows are read again
	wantTop, _ := expected(t, st, "f", Spec{Kind: Top, Limit: 3})
	if got := apply(t, top.all(), "t").list(); !slices.Equal(got, wantTop) {
		t.Fatalf("top window %v, store %v", got, wantTop)
	}
	if v := apply(t, me.all(), "m"); v.part == nil || v.part.Score != 99 || v.part.Rank != 1 {
		t.Fatalf("participant window %+v", v.part)
	}
}

// phased is a recorder that chooses its phase, as a WebSocket connection does.
type phased struct {
	recorder
	phase uint32
}

func (p *phased) Phase() uint32 { return p.phase }

// updates counts the update frames a recorder holds.
func updates(r *recorder) int {
	n := 0
	for _, f := range r.all() {
		if f["type"] == "update" {
			n++
		}
	}
	return n
}

// TestPhasesTakeTurns: each tick flushes one phase, so a subscriber gets
// updates only at its phase's ticks (at most one per window), and after a
// window every subscriber, whatever its phase, is at the store's state with
// an unbroken chain.
func TestPhasesTakeTurns(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 20, 1000)
	phases := f.hub.Phases()
	if phases < 2 {
		t.Fatalf("default phases %d", phases)
	}
	subs := make([]*phased, 2*phases)
	for i := range subs {
		subs[i] = &phased{phase: uint32(i)}
		if _, err := f.hub.Subscribe(ctx, "b", "top", Spec{Kind: Top, Limit: 3}, nil, "", subs[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	score := uint64(5000)
	for window := 0; window < 3; window++ {
		for p := 0; p < phases; p++ {
			before := make([]int, len(subs))
			for i, s := range subs {
				before[i] = updates(&s.recorder)
			}
			score++ // a new leader before every tick
			f.submit(t, "b", fmt.Sprintf("p%02d", 10+p), score, 1)
			f.hub.flush(ctx, p)
			for i, s := range subs {
				got := updates(&s.recorder) - before[i]
				want := 0
				if i%phases == p {
					want = 1
				}
				if got != want {
					t.Fatalf("window %d, tick of phase %d: subscriber of phase %d got %d updates, want %d", window, p, i%phases, got, want)
				}
			}
		}
		// The last phase ticked after the last change: its subscribers are current.
		want, _ := expected(t, f.st, "b", Spec{Kind: Top, Limit: 3})
		for i := phases - 1; i < len(subs); i += phases {
			if got := apply(t, subs[i].all(), "top").list(); !slices.Equal(got, want) {
				t.Fatalf("window %d: the last phase's subscriber has %v, store %v", window, got, want)
			}
		}
	}
	f.hub.Flush(ctx) // every phase: all at the store's state
	want, _ := expected(t, f.st, "b", Spec{Kind: Top, Limit: 3})
	for i, s := range subs {
		if got := apply(t, s.all(), "top").list(); !slices.Equal(got, want) {
			t.Fatalf("subscriber %d: %v, store %v", i, got, want)
		}
	}
}

// TestPhaseJoinedFromAnOlderPhase: the first subscriber of a phase starts
// from another phase's state, which can be older than changes the new
// phase's own last tick let pass (it had nobody to send them to). Its next
// tick must read the window again rather than wait for a new change.
func TestPhaseJoinedFromAnOlderPhase(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 10, 100)
	spec := Spec{Kind: Top, Limit: 3}
	early := &phased{phase: 0}
	f.hub.Subscribe(ctx, "b", "a", spec, nil, "", early, nil)
	f.hub.flush(ctx, 0)
	f.submit(t, "b", "p09", 500, 1) // a new leader, after phase 0's tick
	for p := 1; p < f.hub.Phases(); p++ {
		f.hub.flush(ctx, p) // phase 1 has nobody: the change passes it by
	}
	late := &phased{phase: 1}
	f.hub.Subscribe(ctx, "b", "b", spec, nil, "", late, nil) // starts from phase 0's state, before the change
	if v := apply(t, late.all(), "b"); v.list()[0].ParticipantID != "p00" {
		t.Fatalf("the late subscriber's snapshot %v: expected phase 0's state", v.list())
	}
	for p := 0; p < f.hub.Phases(); p++ {
		f.hub.flush(ctx, p) // no change in this window
	}
	want, _ := expected(t, f.st, "b", spec)
	for _, s := range []*phased{early, late} {
		id := "a"
		if s == late {
			id = "b"
		}
		if got := apply(t, s.all(), id).list(); !slices.Equal(got, want) {
			t.Fatalf("subscriber of phase %d: %v, store %v", s.phase, got, want)
		}
	}
}

// TestPhaserKeepsASinkTogether: every subscription of a sink that names
// its phase is flushed at that phase's tick, so a connection's frames leave
// together; sinks that do not name one are given phases in turn.
func TestPhaserKeepsASinkTogether(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.seedBoard(t, 10, 100)
	conn := &phased{phase: 2}
	f.hub.Subscribe(ctx, "b", "t", Spec{Kind: Top, Limit: 3}, nil, "", conn, nil)
	f.hub.Subscribe(ctx, "b", "p", Spec{Kind: Participant, ParticipantID: "p05"}, nil, "", conn, nil)
	f.hub.Subscribe(ctx, "b", "a", Spec{Kind: Around, ParticipantID: "p03", Radius: 1}, nil, "", conn, nil)
	f.submit(t, "b", "p05", 1000, 1) // moves to the top: all three windows change
	for p := 0; p < f.hub.Phases(); p++ {
		f.hub.flush(ctx, p)
		want := 0
		if p >= 2 {
			want = 3 // all at phase 2's tick, none after it
		}
		if got := updates(&conn.recorder); got != want {
			t.Fatalf("after phase %d's tick: %d updates, want %d", p, got, want)
		}
	}
	seen := map[int]bool{}
	for range f.hub.Phases() {
		seen[f.hub.phaseOf(&recorder{})] = true
	}
	if len(seen) != f.hub.Phases() {
		t.Fatalf("sinks without a phase got phases %v", seen)
	}
}

// TestConflate: the updates a sink has not written yet can be replaced by
// one from the first one's prev_version to the last one's version, which
// takes a client at that prev_version to the store's window (for every
// kind); it is refused when the last version is no longer the current one
// (an update after it is on its way), for a subscription that left, and
// beyond the history. The body is shared by the subscribers of a phase.
func TestConflate(t *testing.T) {
	f := newFixture(t, 10*time.Second)
	ctx := context.Background()
	f.seedBoard(t, 30, 1000)
	specs := map[string]Spec{
		"top": {Kind: Top, Limit: 10}, "part": {Kind: Participant, ParticipantID: "p07"},
		"around": {Kind: Around, ParticipantID: "p12", Radius: 2},
	}
	type held struct {
		rec *phased
		sub *Subscription
	}
	subs := map[string][]held{}
	for id, spec := range specs {
		for range 2 {
			rec := &phased{phase: 1}
			sub, err := f.hub.Subscribe(ctx, "b", id, spec, nil, "", rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			subs[id] = append(subs[id], held{rec, sub})
		}
	}
	// Three flushes with changes; the clients "read" only the snapshot.
	for round := 0; round < 3; round++ {
		for i := 0; i < 5; i++ {
			f.submit(t, "b", fmt.Sprintf("p%02d", 10+5*round+i), uint64(2000+10*round+i), 1)
		}
		f.hub.Flush(ctx)
	}
	for id, hs := range subs {
		frames := hs[0].rec.all()
		var first, last map[string]any
		n := 0
		for _, m := range frames {
			if m["type"] == "update" {
				if first == nil {
					first = m
				}
				last, n = m, n+1
			}
		}
		if n < 2 {
			t.Fatalf("%s: want several updates to merge, got %v", id, frames)
		}
		from, to := uint64(num(first["prev_version"])), uint64(num(last["version"]))
		mf, ok := f.hub.Conflate(hs[0].sub, from, to)
		if !ok {
			t.Fatalf("%s: Conflate(%d, %d) refused", id, from, to)
		}
		var m map[string]any
		if err := json.Unmarshal(mf.AppendJSON(nil), &m); err != nil {
			t.Fatal(err)
		}
		// The client's copy: everything up to the first update, then the merged one.
		var kept []map[string]any
		for _, fr := range frames {
			if fr["type"] == "update" {
				break
			}
			kept = append(kept, fr)
		}
		v := apply(t, append(kept, m), id)
		wantList, wantPart := expected(t, f.st, "b", specs[id])
		if specs[id].Kind == Participant {
			if v.part == nil || wantPart == nil || *v.part != *wantPart {
				t.Fatalf("%s: merged participant %v, store %v", id, v.part, wantPart)
			}
		} else if got := v.list(); !slices.Equal(got, wantList) {
			t.Fatalf("%s: merged window\n got %v\nwant %v", id, got, wantList)
		}
		other, ok := f.hub.Conflate(hs[1].sub, from, to)
		if !ok || &other.Body[0] != &mf.Body[0] {
			t.Fatalf("%s: a second subscriber of the phase did not share the merged body", id)
		}
		if _, ok := f.hub.Conflate(hs[0].sub, from, to-1); ok {
			t.Fatalf("%s: merged up to a version that is not the current one", id)
		}
	}
	// Gone, and beyond the history.
	h := subs["top"][0]
	f.hub.Unsubscribe(h.sub)
	if _, ok := f.hub.Conflate(h.sub, 0, 100); ok {
		t.Fatal("merged for a subscription that left")
	}
	h = subs["top"][1]
	cur := h.sub.seg.version
	f.now = f.now.Add(time.Minute)
	f.submit(t, "b", "p29", 5000, 2)
	f.hub.Flush(ctx) // forgets the older history
	if _, ok := f.hub.Conflate(h.sub, cur-5, h.sub.seg.version); ok {
		t.Fatal("merged from a version older than the history")
	}
}

// TestHistoryKeepsABucketPerWindow: the change log closes a bucket at every
// tick, but keeps one per flush interval, so the history a resume walks is
// as long as before phases; resumes from versions inside a merged bucket
// still converge.
func TestHistoryKeepsABucketPerWindow(t *testing.T) {
	f := newFixture(t, time.Minute)
	ctx := context.Background()
	f.st.CreateBoard(ctx, "b", store.BoardOptions{})
	rec := &recorder{}
	f.hub.Subscribe(ctx, "b", "top", Spec{Kind: Top, Limit: 5}, nil, "", rec, nil)
	phases, tick := f.hub.Phases(), f.hub.FlushInterval()/time.Duration(f.hub.Phases())
	for i := 0; i < 10*phases; i++ { // ten windows, a change before every tick
		f.submit(t, "b", fmt.Sprintf("p%02d", i%7), uint64(100+i), int64(i))
		f.now = f.now.Add(tick)
		f.hub.flush(ctx, i%phases)
	}
	bh := f.hub.boards["b"]
	if n := len(bh.hist); n < 9 || n > 11 {
		t.Fatalf("%d buckets for ten windows", n)
	}
	f.hub.Flush(ctx) // every phase at the store's state
	want, _ := expected(t, f.st, "b", Spec{Kind: Top, Limit: 5})
	// A resume from every version the subscriber was sent, replayed on the
	// state it had then.
	frames := rec.all()
	for i, fr := range frames {
		if fr["type"] != "update" && fr["type"] != "snapshot" {
			continue
		}
		since := uint64(num(fr["version"]))
		r := &recorder{}
		f.hub.Subscribe(ctx, "b", "top", Spec{Kind: Top, Limit: 5}, &since, "ep", r, nil)
		got := r.all()
		if len(got) != 2 || got[1]["type"] != "update" {
			t.Fatalf("resume from %d: %v, want one catch-up update", since, got)
		}
		v := apply(t, append(slices.Clone(frames[:i+1]), got[1]), "top")
		if !slices.Equal(v.list(), want) {
			t.Fatalf("resume from %d: %v, store %v", since, v.list(), want)
		}
	}
}
