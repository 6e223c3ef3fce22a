package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// ownRedis starts a redis-server of the test's own on a free loopback port
// (so that freezing it disturbs no other test), and returns its URL and
// process.
func ownRedis(t *testing.T) (string, *os.Process) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c, _ := redisstore.NewClient(url)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, cmd.Process
}

// TestRedisOutage: Redis stops answering for a few seconds under a steady
// submission load (its process is frozen with SIGSTOP). Submissions are
// acknowledged 200 while it answers and 202 (queued) while it does not;
// top-N reads are served from the last state, marked stale; when Redis
// returns the queue is applied in order. Afterwards every acknowledged or
// queued submission is in the ranking, and each submitter's participants
// were applied in the order they were sent.
func TestRedisOutage(t *testing.T) {
	url, proc := ownRedis(t)
	cfg := testConfig(t)
	// Short timeouts and no retries (go-redis options in the URL), so that a
	// frozen Redis is an error within half a second rather than after retries.
	cfg.SubmitRate, cfg.RedisURL, cfg.RedisPrefix = 0, url+"?read_timeout=300ms&write_timeout=300ms&max_retries=0", "lb:"
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"o","name":"O"}`, nil); st != 201 {
		t.Fatal(st)
	}
	jsonCall(t, "POST", base+"/v1/leaderboards/o/scores", `{"participant_id":"seed","score":1}`, nil)
	readAll(t, base, "o")
	// The reads whose last answers are kept for an outage.
	reads := []string{"/v1/leaderboards/o/rankings?limit=10", "/v1/leaderboards/o/rankings?limit=5&offset=1",
		"/v1/leaderboards/o/rankings?around=seed&limit=3", "/v1/leaderboards/o/participants/seed"}
	for _, u := range reads {
		if st := jsonCall(t, "GET", base+u, "", nil); st != 200 {
			t.Fatalf("%s: %d", u, st)
		}
	}

	// A live viewer, connected through the outage.
	viewer := watchTop(t, base, "o", 10, nil)
	waitFor(t, "the viewer's snapshot", func() bool { v, _, _ := viewer.state(); return v > 0 })

	type sent struct {
		pid    string
		score  uint64
		status int
	}
	var (
		mu      sync.Mutex
		acks    [4][]sent
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		client  = &http.Client{Timeout: 30 * time.Second}
		ok, acc int
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pid, score := fmt.Sprintf("g%d-%05d", g, i), uint64(i*7+g)
				res, err := client.Post(base+"/v1/leaderboards/o/scores", "application/json", strings.NewReader(fmt.Sprintf(`{"participant_id":%q,"score":%d}`, pid, score)))
				if err != nil {
					t.Errorf("submit: %v", err)
					return
				}
				res.Body.Close()
				if res.StatusCode != 200 && res.StatusCode != 202 {
					continue // 503 past the queue bound: not acknowledged
				}
				mu.Lock()
				acks[g] = append(acks[g], sent{pid, score, res.StatusCode})
				if res.StatusCode == 200 {
					ok++
				} else {
					acc++
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// While Redis is frozen, each read is the last state, marked stale.
	staleSeen := false
	deadline := time.Now().Add(15 * time.Second)
	for !staleSeen && time.Now().Before(deadline) {
		staleSeen = true
		for _, u := range reads {
			res, err := client.Get(base + u)
			if err != nil {
				staleSeen = false
				continue
			}
			staleSeen = staleSeen && res.StatusCode == 200 && res.Header.Get("X-Leaderboard-Stale") == "true"
			res.Body.Close()
		}
		if !staleSeen {
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	proc.Signal(syscall.SIGCONT)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if !staleSeen {
		t.Fatal("reads were not all answered stale while Redis was frozen")
	}
	if acc == 0 {
		t.Fatalf("no submission was queued during the outage (%d acknowledged)", ok)
	}
	// The metrics count each 202 as queued (not as nothing at all).
	if q := metricValue(t, base, `leaderboard_submissions_total{result="queued"}`); q != float64(acc) {
		t.Fatalf("leaderboard_submissions_total{result=\"queued\"} = %v, %d answered 202", q, acc)
	}

	// The queue drains; then every acknowledged or queued submission is there.
	var got rankingsBody
	deadline = time.Now().Add(30 * time.Second)
	want := 1 + ok + acc
	for {
		// 503 until the breaker closes again (it probes every 5 s).
		var total rankingsBody
		if jsonCall(t, "GET", base+"/v1/leaderboards/o/rankings?limit=1", "", &total) == 200 && int(total.Total) == want {
			got = readAll(t, base, "o")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ranked after the outage, want %d", total.Total, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res, err := http.Get(base + "/metrics"); err == nil {
		b := make([]byte, 1<<20)
		n, _ := io.ReadFull(res.Body, b)
		res.Body.Close()
		for _, line := range strings.Split(string(b[:n]), "\n") {
			if strings.HasPrefix(line, "leaderboard_write_queue") {
				t.Log(line)
			}
		}
	}
	t.Logf("ranked %d, want %d", len(got.Entries), want)
	present := map[string]uint64{}
	for _, e := range got.Entries {
		present[e.ParticipantID] = e.Score
	}
	for g := range acks {
		for _, s := range acks[g] {
			if sc, ok := present[s.pid]; !ok || sc != s.score {
				t.Fatalf("%s (answered %d) missing after the outage: %v %v", s.pid, s.status, sc, ok)
			}
		}
	}
	if len(got.Entries) != want {
		t.Fatalf("%d participants ranked, %d acknowledged or queued", len(got.Entries), want)
	}
	// Order: each submitter's participants got increasing versions (read back
	// from the leaderboard's outbox, the store's own log of changes).
	c, _ := redisstore.NewClient(url)
	defer c.Close()
	st, err := redisstore.New(context.Background(), redisstore.Options{Client: c, Prefix: "lb:"})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ReadOutbox(context.Background(), "o", "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	version := map[string]uint64{}
	for _, e := range evs {
		version[e.ParticipantID] = e.Version
	}
	for g := range acks {
		for i := 1; i < len(acks[g]); i++ {
			if version[acks[g][i].pid] <= version[acks[g][i-1].pid] {
				t.Fatalf("%s applied before %s, sent after it", acks[g][i].pid, acks[g][i-1].pid)
			}
		}
	}
	// The viewer kept its connection and shows the final window.
	waitFor(t, "the viewer to show the final window", func() bool {
		_, want := topWindow(t, base, "o", 10)
		_, _, got := viewer.state()
		return slices.Equal(got, want)
	})
	if len(viewer.broken) > 0 {
		t.Fatalf("viewer's chain broke: %v", viewer.broken)
	}
	t.Logf("%d acknowledged, %d queued during the outage", ok, acc)
}

// TestStopDuringRedisOutage: a SIGTERM while submissions wait for an
// unreachable Redis (answered 202) gives them the stop's time to be applied:
// Redis returns during the stop, and every queued submission is in the
// ranking the next process reads.
func TestStopDuringRedisOutage(t *testing.T) {
	url, proc := ownRedis(t)
	cfg := testConfig(t)
	cfg.DataDir = "" // the ranking lives in Redis alone
	cfg.SubmitRate, cfg.RedisURL, cfg.RedisPrefix = 0, url+"?read_timeout=300ms&write_timeout=300ms&max_retries=0", "lb:"
	cfg.ShutdownTimeout = 10 * time.Second
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"q","name":"Q"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/q/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, i+1), nil); st != 202 {
			t.Fatalf("submission %d during the outage: %d, want 202", i, st)
		}
	}
	cancel()
	time.Sleep(500 * time.Millisecond) // the stop has begun; Redis is still away
	proc.Signal(syscall.SIGCONT)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	cfg2 := cfg
	cfg2.Addr = "127.0.0.1:0"
	addr2, cancel2, done2 := start(t, cfg2)
	defer func() { cancel2(); <-done2 }()
	got := readAll(t, "http://"+addr2, "q")
	if len(got.Entries) != n {
		t.Fatalf("%d participants ranked after the stop, %d were queued", len(got.Entries), n)
	}
}

// TestReadyzFollowsRedis: /readyz is the contract's "every configured
// backend reachable": 503 naming Redis while it does not answer (frozen
// with SIGSTOP; the probe answers within its own deadline instead of
// hanging), 200 again once it does.
func TestReadyzFollowsRedis(t *testing.T) {
	url, proc := ownRedis(t)
	cfg := testConfig(t)
	cfg.RedisURL, cfg.RedisPrefix = url+"?read_timeout=300ms&write_timeout=300ms&max_retries=0", "lb:"
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	ready := func() (int, string) {
		res, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if st, body := ready(); st != 200 {
		t.Fatalf("readyz with Redis up: %d %s", st, body)
	}
	proc.Signal(syscall.SIGSTOP)
	st, body := ready()
	proc.Signal(syscall.SIGCONT)
	if st != 503 || !strings.Contains(body, "redis") || !strings.Contains(body, `"unavailable"`) {
		t.Fatalf("readyz with Redis frozen: %d %s", st, body)
	}
	waitFor(t, "readyz 200 after Redis came back", func() bool { st, _ := ready(); return st == 200 })
}
