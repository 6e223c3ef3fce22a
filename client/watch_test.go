package client_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
)

// newTestFake starts a fake with board "b" and five participants:
// p1 500, p2 400, p3 300, p4 200, p5 100.
func newTestFake(t *testing.T) *fake {
	t.Helper()
	f := newFake("b")
	t.Cleanup(f.Close)
	for i := 1; i <= 5; i++ {
		f.Set(fmt.Sprintf("p%d", i), uint64(600-100*i))
	}
	return f
}

// newTestClient is a client with short backoffs and polls, so that tests
// never wait long.
func newTestClient(f *fake, opts ...client.Option) *client.Client {
	base := []client.Option{
		client.WithBackoff(time.Millisecond, 20*time.Millisecond),
		client.WithWebSocketRetry(time.Hour),
		client.WithLongPollTimeout(time.Second),
	}
	return client.New(f.URL(), append(base, opts...)...)
}

func watch(t *testing.T, c *client.Client, win window, opts ...client.Option) *client.Watcher {
	t.Helper()
	var w *client.Watcher
	switch win.kind {
	case "top":
		w = c.WatchTop(context.Background(), "b", win.limit, opts...)
	case "participant":
		w = c.WatchParticipant(context.Background(), "b", win.pid, opts...)
	default:
		w = c.WatchAround(context.Background(), "b", win.pid, win.radius, opts...)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func within(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// matches reports whether s is exactly the fake's current window.
func matches(f *fake, win window, s client.State) bool {
	off, es, p := f.Window(win)
	if !s.Ready {
		return false
	}
	if win.kind == "participant" {
		if (p == nil) != (s.Participant == nil) {
			return false
		}
		return p == nil || (p.Rank == s.Participant.Rank && p.ParticipantID == s.Participant.ParticipantID &&
			p.Score == s.Participant.Score && p.AchievedAt == s.Participant.AchievedAt)
	}
	if len(es) == 0 && len(s.Entries) == 0 {
		return s.Size == 0
	}
	return s.Offset == off && s.Size == int64(len(es)) && reflect.DeepEqual(s.Entries, es)
}

// waitWindow waits until the watcher shows the fake's current window and
// checks that the state is well formed.
func waitWindow(t *testing.T, f *fake, w *client.Watcher, win window) client.State {
	t.Helper()
	s, err := w.WaitFor(within(t), func(s client.State) bool { return matches(f, win, s) })
	if err != nil {
		off, es, p := f.Window(win)
		t.Fatalf("%v: watcher has %+v, want offset %d entries %+v participant %+v", err, s, off, es, p)
	}
	seen := map[string]bool{}
	for i, e := range s.Entries {
		if e.Rank != s.Offset+int64(i)+1 || seen[e.ParticipantID] {
			t.Fatalf("entries not contiguous or duplicated: %+v", s)
		}
		seen[e.ParticipantID] = true
	}
	return s
}

func waitTransport(t *testing.T, w *client.Watcher, name string) {
	t.Helper()
	s, err := w.WaitFor(within(t), func(s client.State) bool { return s.Transport == name })
	if err != nil {
		t.Fatalf("%v: transport %q, want %q", err, s.Transport, name)
	}
}

func since(r request) string {
	if r.since == nil {
		return "none"
	}
	return fmt.Sprint(*r.since)
}

var top3 = window{kind: "top", limit: 3}

// The same scenario over each transport: the one apply path keeps each kind
// of window exact while scores change, participants leave and return.
func TestWatchEachTransportAndKind(t *testing.T) {
	windows := []window{top3, {kind: "participant", pid: "p3"}, {kind: "around", pid: "p3", radius: 1}}
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		for _, win := range windows {
			t.Run(transport+"/"+win.kind, func(t *testing.T) {
				f := newTestFake(t)
				w := watch(t, newTestClient(f), win, client.WithTransport(transport))
				waitWindow(t, f, w, win)
				if got := w.Transport(); got != transport {
					t.Fatalf("Transport() = %q, want %q", got, transport)
				}
				steps := []func(){
					func() { f.Set("p3", 1000) },  // p3 to the top
					func() { f.Set("p5", 2000) },  // p5 above it
					func() { f.Set("p9", 1) },     // a newcomer at the bottom
					func() { f.Remove("p3") },     // p3 leaves: windows around it empty
					func() { f.Set("p3", 250) },   // and comes back mid-table
					func() { f.Set("p1", 10) },    // p1 drops below it
					func() { f.Set("p2", 5000) },  // someone else moves: top changes
					func() { f.Set("p3", 5000) },  // a tie: p2 achieved it first
					func() { f.Set("p4", 99999) }, // and the window moves again
				}
				for i, step := range steps {
					step()
					s := waitWindow(t, f, w, win)
					if win.kind == "participant" && i == 0 && (s.Participant.PreviousRank == nil || *s.Participant.PreviousRank != 3) {
						t.Fatalf("participant update without previous_rank 3: %+v", s.Participant)
					}
				}
				for _, r := range f.Requests() {
					if r.transport != transport {
						t.Fatalf("request over %s, want only %s: %+v", r.transport, transport, r)
					}
				}
			})
		}
	}
}

func TestWatchResumesAfterDrop(t *testing.T) {
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE} {
		t.Run(transport, func(t *testing.T) {
			f := newTestFake(t)
			w := watch(t, newTestClient(f), top3, client.WithTransport(transport))
			waitWindow(t, f, w, top3)
			f.Set("p4", 450)
			v := waitWindow(t, f, w, top3).Version

			// Cut the connection; while the watcher is away the board changes.
			f.Drop(func() {
				f.setLocked("p5", 900, true)
				f.setLocked("p1", 50, true)
			})
			waitWindow(t, f, w, top3)

			reqs := f.Requests()
			if len(reqs) != 2 {
				t.Fatalf("requests %+v, want a subscription and one resume", reqs)
			}
			if r := reqs[1]; r.since == nil || *r.since != v || r.epoch != "e1" || r.answer != "update" {
				t.Fatalf("resume since_version=%s epoch=%q answered %s, want since_version=%d epoch=e1 answered update", since(r), r.epoch, r.answer, v)
			}
			f.Set("p2", 1000)
			waitWindow(t, f, w, top3)
		})
	}
}

func TestWatchBrokenChainResubscribes(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3)
	waitWindow(t, f, w, top3)

	f.BreakChain()
	f.Set("p3", 1000) // arrives with a wrong prev_version
	waitWindow(t, f, w, top3)

	reqs := f.Requests()
	if len(reqs) != 2 || reqs[1].since != nil || reqs[1].answer != "snapshot" {
		t.Fatalf("requests %+v, want a second subscribe without since_version, answered with a snapshot", reqs)
	}
	f.Set("p5", 2000)
	waitWindow(t, f, w, top3)
}

func TestWatchResyncWaitsForSnapshot(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3)
	waitWindow(t, f, w, top3)

	// The change reaches the watcher only through the snapshot after resync.
	f.Resync(func() { f.setLocked("p5", 1000, false) })
	s := waitWindow(t, f, w, top3)
	if s.Resyncing {
		t.Fatalf("still resyncing after the snapshot: %+v", s)
	}
	if reqs := f.Requests(); len(reqs) != 1 {
		t.Fatalf("requests %+v: the watcher must not resubscribe on resync", reqs)
	}
	f.Set("p4", 2000)
	waitWindow(t, f, w, top3)
}

func TestWatchSnapshotWhenSinceCannotBeServed(t *testing.T) {
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		t.Run(transport, func(t *testing.T) {
			f := newTestFake(t)
			w := watch(t, newTestClient(f), top3, client.WithTransport(transport))
			v := waitWindow(t, f, w, top3).Version

			// History forgotten: since_version is older than what is retained.
			f.Drop(func() {
				f.setLocked("p5", 1000, true)
				f.minRetained = f.version
			})
			waitWindow(t, f, w, top3)
			found := false
			for _, r := range f.Requests() {
				if r.since != nil && *r.since == v && r.answer == "snapshot" {
					found = true
				}
			}
			if !found {
				t.Fatalf("requests %+v, want one with since_version %d answered with a snapshot", f.Requests(), v)
			}

			// A restart: a new epoch whose versions start again at 0, so the
			// watcher's since_version is beyond its history.
			f.Drop(func() {
				f.restartLocked()
				f.setLocked("p4", 3000, true)
			})
			s, err := w.WaitFor(within(t), func(s client.State) bool { return s.Epoch == "e2" && matches(f, top3, s) })
			if err != nil {
				t.Fatalf("%v: %+v", err, s)
			}
			f.Set("p1", 4000)
			waitWindow(t, f, w, top3)
			if transport == client.TransportLongPoll {
				return // long polls resume on every request; checked above
			}
			// Resuming in the new epoch is served with an update.
			f.Drop(func() { f.setLocked("p2", 5000, true) })
			waitWindow(t, f, w, top3)
			reqs := f.Requests()
			last := reqs[len(reqs)-1]
			if last.epoch != "e2" || last.answer != "update" {
				t.Fatalf("last request %+v, want a resume in epoch e2 answered with an update", last)
			}
		})
	}
}

func TestWatchFallsBack(t *testing.T) {
	cases := []struct {
		name      string
		ws, sse   refusal
		transport string
	}{
		{"ws 404 to sse", refusal{404, "not_found"}, refusal{}, client.TransportSSE},
		{"ws 503 to sse", refusal{503, "unavailable"}, refusal{}, client.TransportSSE},
		{"ws hang-up on the first attempt to sse", refusal{hangUp, ""}, refusal{}, client.TransportSSE},
		{"ws and sse refused to long poll", refusal{503, "unavailable"}, refusal{404, "not_found"}, client.TransportLongPoll},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFake(t)
			f.Refuse("websocket", tc.ws.status, tc.ws.code)
			f.Refuse("sse", tc.sse.status, tc.sse.code)
			w := watch(t, newTestClient(f), top3)
			waitWindow(t, f, w, top3)
			waitTransport(t, w, tc.transport)
			f.Set("p5", 1000)
			v := waitWindow(t, f, w, top3).Version
			if tc.transport == client.TransportSSE {
				f.Drop(nil) // SSE resumes with Last-Event-ID and epoch
			}
			f.Set("p4", 2000)
			waitWindow(t, f, w, top3)
			found := false
			for _, r := range f.Requests() {
				if r.transport != tc.transport {
					t.Fatalf("request over %s: %+v", r.transport, r)
				}
				if r.since != nil && *r.since == v && r.epoch == "e1" && r.answer == "update" {
					found = true
				}
			}
			if !found {
				t.Fatalf("requests %+v, want a resume from version %d", f.Requests(), v)
			}
		})
	}
}

// Once WebSocket worked, failing to reconnect is retried with backoff rather
// than a reason to fall back.
func TestWatchRetriesWebSocketThatWorked(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3)
	v := waitWindow(t, f, w, top3).Version
	f.Drop(func() { f.refuse["websocket"] = refusal{hangUp, ""} })
	for ctx := within(t); f.Hits("websocket") < 4; { // three failed attempts
		select {
		case <-ctx.Done():
			t.Fatal("the watcher stopped trying WebSocket")
		case <-time.After(time.Millisecond):
		}
	}
	f.Refuse("websocket", 0, "")
	f.Set("p5", 1000)
	waitWindow(t, f, w, top3)
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[1].transport != "websocket" || reqs[1].since == nil || *reqs[1].since != v {
		t.Fatalf("requests %+v, want a WebSocket resume from version %d and nothing else", reqs, v)
	}
}

func TestWatchClimbsBackToWebSocket(t *testing.T) {
	f := newTestFake(t)
	f.Refuse("websocket", 503, "unavailable")
	w := watch(t, newTestClient(f, client.WithWebSocketRetry(20*time.Millisecond)), top3)
	waitTransport(t, w, client.TransportSSE)
	v := waitWindow(t, f, w, top3).Version

	f.Refuse("websocket", 0, "")
	waitTransport(t, w, client.TransportWebSocket)
	f.Set("p5", 1000) // reaches the watcher over WebSocket only
	waitWindow(t, f, w, top3)
	var ws []request
	for _, r := range f.Requests() {
		if r.transport == "websocket" {
			ws = append(ws, r)
		}
	}
	if len(ws) != 1 || ws[0].since == nil || *ws[0].since != v || ws[0].answer != "update" {
		t.Fatalf("WebSocket requests %+v, want one resume from version %d", ws, v)
	}
}

func waitEnd(t *testing.T, w *client.Watcher) error {
	t.Helper()
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not end")
	}
	for range w.Changes() { // drains, then sees it closed
	}
	return w.Err()
}

func TestWatchUnknownLeaderboardEnds(t *testing.T) {
	cases := []struct {
		name      string
		transport string
		refuseWS  bool
	}{
		{"websocket error message", client.TransportWebSocket, false},
		{"websocket upgrade 404", "", true},
		{"sse 404", client.TransportSSE, false},
		{"long poll 404", client.TransportLongPoll, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFake(t)
			if tc.refuseWS {
				f.Refuse("websocket", 404, "leaderboard_not_found")
			}
			c := newTestClient(f)
			w := c.WatchTop(context.Background(), "nope", 3, client.WithTransport(tc.transport))
			defer w.Close()
			err := waitEnd(t, w)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != client.CodeLeaderboardNotFound || ae.Status != 404 {
				t.Fatalf("Err() = %v, want an *APIError leaderboard_not_found", err)
			}
			if tc.refuseWS {
				for _, r := range f.Requests() {
					t.Fatalf("the watcher went on after a fatal refusal: %+v", r)
				}
			}
		})
	}
}

func TestWatchCloseAndArguments(t *testing.T) {
	f := newTestFake(t)
	c := newTestClient(f)
	w := c.WatchTop(context.Background(), "b", 3)
	waitWindow(t, f, w, top3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(t, w); err != nil {
		t.Fatalf("Err() after Close = %v, want nil", err)
	}
	if _, err := w.WaitFor(context.Background(), func(client.State) bool { return false }); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("WaitFor after Close: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	w = c.WatchTop(ctx, "b", 3)
	cancel()
	if err := waitEnd(t, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() after the context ended = %v", err)
	}

	for _, w := range []*client.Watcher{
		c.WatchTop(context.Background(), "b", 0),
		c.WatchAround(context.Background(), "b", "p1", 51),
		c.WatchParticipant(context.Background(), "b", ""),
		c.WatchTop(context.Background(), "b", 3, client.WithTransport("carrier-pigeon")),
	} {
		if err := waitEnd(t, w); err == nil {
			t.Fatal("a bad argument did not end the watcher")
		}
	}
}

// Notifications coalesce: a consumer that does not read never blocks the
// watcher, and finds one pending value and the latest state.
func TestWatchChangesCoalesce(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3)
	for i := range 20 {
		f.Set("p5", uint64(1000+i))
		waitWindow(t, f, w, top3)
	}
	if n := len(w.Changes()); n != 1 {
		t.Fatalf("%d pending notifications, want 1", n)
	}
	<-w.Changes()
	if s := w.State(); s.Entries[0].Score != 1019 {
		t.Fatalf("state %+v, want the latest", s)
	}
}

func TestWatchSendsToken(t *testing.T) {
	f := newTestFake(t)
	for _, transport := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		w := watch(t, newTestClient(f, client.WithToken("tok")), top3, client.WithTransport(transport))
		waitWindow(t, f, w, top3)
		_ = w.Close()
	}
	for _, route := range []string{"websocket", "sse", "longpoll", "rest"} {
		if got := f.Auth(route); got != "Bearer tok" {
			t.Errorf("%s got Authorization %q", route, got)
		}
	}
}

func TestWatchStatus(t *testing.T) {
	f := newTestFake(t)
	w := watch(t, newTestClient(f), top3)
	waitWindow(t, f, w, top3)
	f.mu.Lock()
	for s := range f.subs {
		f.sendLocked(s, msg{"type": "status", "status": "paused", "version": f.version})
	}
	f.mu.Unlock()
	s, err := w.WaitFor(within(t), func(s client.State) bool { return s.Status != nil })
	if err != nil || s.Status.Status != "paused" || s.Status.Version != 5 {
		t.Fatalf("%v: status %+v", err, s.Status)
	}
	if len(f.Requests()) != 1 {
		t.Fatal("the watcher answered a status")
	}
}
