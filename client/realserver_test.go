package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/client"
	"github.com/lbhq/leaderboard/internal/server"
)

// realServer is an in-process server that can be stopped and started again.
type realServer struct {
	t      *testing.T
	cfg    server.Config
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startReal(t *testing.T, mutate func(*server.Config)) *realServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr, cfg.SubmitRate, cfg.FlushInterval = "127.0.0.1:0", 0, 20*time.Millisecond
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", "", 0, 0
	if mutate != nil {
		mutate(&cfg)
	}
	rs := &realServer{t: t, cfg: cfg}
	rs.start()
	t.Cleanup(rs.stop)
	return rs
}

func (rs *realServer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	cfg := rs.cfg
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	select {
	case rs.addr = <-addrc:
	case err := <-done:
		rs.t.Fatalf("server: %v", err)
	}
	rs.cancel, rs.done = cancel, done
}

func (rs *realServer) stop() {
	if rs.cancel != nil {
		rs.cancel()
		<-rs.done
		rs.cancel = nil
	}
}

// switchProxy forwards TCP connections to a target that can change, and can
// cut every connection.
type switchProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  []net.Conn
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *switchProxy) setTarget(t string) { p.mu.Lock(); p.target = t; p.mu.Unlock() }
func (p *switchProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
func (p *switchProxy) url() string { return "http://" + p.ln.Addr().String() }

func putName(t *testing.T, base, pid, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/participants/"+pid, bytes.NewBufferString(fmt.Sprintf(`{"display_name":%q}`, name)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT participant: %d %s", resp.StatusCode, b)
	}
}

type watchedWindow struct {
	name string
	kind string
	pid  string
	n    int
	w    *client.Watcher
}

// want reads the window from REST.
func restWindow(ctx context.Context, admin *client.Client, board string, rw watchedWindow) ([]client.Entry, *client.Entry, uint64) {
	switch rw.kind {
	case "top":
		p, err := admin.Rankings(ctx, board, 0, rw.n)
		if err != nil {
			return nil, nil, 0
		}
		return p.Entries, nil, p.Version
	case "participant":
		p, err := admin.Participant(ctx, board, rw.pid, 0)
		if err != nil {
			return nil, nil, 0
		}
		return nil, &client.Entry{Rank: p.Rank, ParticipantID: p.ParticipantID, Score: p.Score, AchievedAt: p.AchievedAt}, p.Version
	default:
		p, err := admin.Around(ctx, board, rw.pid, 2*rw.n+1)
		if err != nil {
			return nil, nil, 0
		}
		return p.Entries, nil, p.Version
	}
}

func windowMatchesREST(s client.State, kind string, wl []client.Entry, wp *client.Entry) bool {
	if !s.Ready || s.Resyncing {
		return false
	}
	if kind == "participant" {
		if s.Participant == nil || wp == nil {
			return s.Participant == nil && wp == nil
		}
		return s.Participant.Rank == wp.Rank && s.Participant.Score == wp.Score && s.Participant.ParticipantID == wp.ParticipantID && s.Participant.AchievedAt == wp.AchievedAt
	}
	if len(s.Entries) != len(wl) || s.Size != int64(len(wl)) {
		return false
	}
	for i := range wl {
		if s.Entries[i] != wl[i] {
			return false
		}
	}
	return true
}

func convergeWithREST(t *testing.T, ctx context.Context, admin *client.Client, board string, all []watchedWindow, step string) {
	t.Helper()
	for _, rw := range all {
		wl, wp, _ := restWindow(ctx, admin, board, rw)
		wctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		_, err := rw.w.WaitFor(wctx, func(s client.State) bool { return windowMatchesREST(s, rw.kind, wl, wp) })
		cancel()
		if err != nil {
			t.Fatalf("%s: %s did not converge: %v\nstate %+v\nwant %+v %+v", step, rw.name, err, rw.w.State(), wl, wp)
		}
	}
}

// TestRealServerScenario: watchers of every kind on every transport
// against the real server through ties, renames, removals and re-entries of
// the around participant, forced disconnects, and a restart with a new
// epoch.
func TestRealServerScenario(t *testing.T) {
	rs := startReal(t, func(c *server.Config) { c.DataDir = t.TempDir() })
	proxy := newSwitchProxy(t, rs.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admin := client.New("http://" + rs.addr)
	seed := func() {
		if _, err := admin.CreateLeaderboard(ctx, client.CreateLeaderboardRequest{LeaderboardID: "rv", Name: "rv"}); err != nil {
			t.Fatal(err)
		}
		var batch []client.Score
		for i := 0; i < 20; i++ {
			batch = append(batch, client.Score{ParticipantID: fmt.Sprint("p", i), Score: uint64((i % 5) * 10), Timestamp: time.Now().UnixMilli() - int64(1000*(i%3))})
		}
		if _, err := admin.SubmitScores(ctx, "rv", batch); err != nil {
			t.Fatal(err)
		}
	}
	seed()
	viewer := client.New(proxy.url(), client.WithBackoff(5*time.Millisecond, 100*time.Millisecond), client.WithLongPollTimeout(2*time.Second))
	var all []watchedWindow
	for _, tr := range []string{client.TransportWebSocket, client.TransportSSE, client.TransportLongPoll} {
		opt := client.WithTransport(tr)
		all = append(all,
			watchedWindow{tr + "/top", "top", "", 6, viewer.WatchTop(ctx, "rv", 6, opt)},
			watchedWindow{tr + "/participant", "participant", "p7", 0, viewer.WatchParticipant(ctx, "rv", "p7", opt)},
			watchedWindow{tr + "/around", "around", "p7", 2, viewer.WatchAround(ctx, "rv", "p7", 2, opt)},
		)
	}
	for _, rw := range all {
		defer rw.w.Close()
	}
	convergeWithREST(t, ctx, admin, "rv", all, "start")

	submit := func(pid string, score uint64) {
		t.Helper()
		if _, err := admin.SubmitScore(ctx, "rv", client.Score{ParticipantID: pid, Score: score}); err != nil {
			t.Fatal(err)
		}
	}
	// Ties at the top and the around participant moving up.
	submit("p3", 100)
	submit("p8", 100)
	submit("p7", 100)
	convergeWithREST(t, ctx, admin, "rv", all, "ties")
	// Renames show in the window's next ranked change.
	putName(t, "http://"+rs.addr, "p3", "Three")
	putName(t, "http://"+rs.addr, "p7", "Seven")
	submit("p19", 5)
	submit("p0", 200)
	convergeWithREST(t, ctx, admin, "rv", all, "renames")
	// The around participant is removed, then comes back low.
	if err := admin.RemoveParticipant(ctx, "rv", "p7"); err != nil {
		t.Fatal(err)
	}
	convergeWithREST(t, ctx, admin, "rv", all, "removed")
	submit("p7", 1)
	convergeWithREST(t, ctx, admin, "rv", all, "returned")
	// A forced disconnect with changes while away.
	proxy.cut()
	submit("p7", 150)
	submit("p1", 300)
	convergeWithREST(t, ctx, admin, "rv", all, "cut")
	// A restart with a new epoch (no persistence): versions start again.
	rs.stop()
	rs.cfg.DataDir = t.TempDir() // a new store: a new epoch
	rs.start()
	admin = client.New("http://" + rs.addr)
	seed()
	proxy.setTarget(rs.addr)
	proxy.cut()
	submit("p7", 45)
	convergeWithREST(t, ctx, admin, "rv", all, "restart")
	submit("p2", 500)
	submit("p7", 400)
	convergeWithREST(t, ctx, admin, "rv", all, "after restart")
}
