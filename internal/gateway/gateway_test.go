package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/server"
)

// startServer runs the real service on a free port.
func startServer(t *testing.T, edit func(*server.Config)) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = "" // no persistence: this test is not about it
	cfg.Addr = "127.0.0.1:0"
	cfg.SubmitRate = 0
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", t.TempDir(), 0, 0 // the auth tests are in internal/server
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addrc:
		return a
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	return ""
}

func post(t *testing.T, url, body string) map[string]any {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	if res.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, res.StatusCode, m)
	}
	return m
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return m
}

// wsClient collects the messages of one WebSocket connection.
type wsClient struct {
	gws.BuiltinEventHandler
	conn   *gws.Conn
	mu     sync.Mutex
	msgs   []map[string]any
	closed chan error
	pause  chan struct{} // when not nil, OnMessage blocks on it (a reader that stops reading)
}

func (c *wsClient) OnMessage(socket *gws.Conn, m *gws.Message) {
	defer m.Close()
	if c.pause != nil {
		<-c.pause
	}
	var v map[string]any
	if err := json.Unmarshal(m.Bytes(), &v); err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, v)
	c.mu.Unlock()
}

func (c *wsClient) OnClose(socket *gws.Conn, err error) { c.closed <- err }

func (c *wsClient) all() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *wsClient) send(t *testing.T, msg string) {
	t.Helper()
	if err := c.conn.WriteString(msg); err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, addr, board string, header http.Header) (*wsClient, *http.Response, error) {
	c := &wsClient{closed: make(chan error, 1)}
	conn, res, err := gws.NewClient(c, &gws.ClientOption{Addr: "ws://" + addr + "/v1/leaderboards/" + board + "/subscribe", RequestHeader: header})
	if err != nil {
		return nil, res, err
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { conn.NetConn().Close() })
	return c, res, nil
}

// waitFor polls cond until it holds (or fails the test after 10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

// window is a client's copy of one list or participant subscription.
type window struct {
	version int64
	offset  int64
	size    int64
	entries map[int64]string // rank -> "pid:score"
	part    string
	got     bool
}

func entryKey(m map[string]any) string {
	return fmt.Sprintf("%s:%d", m["participant_id"], num(m["score"]))
}

// replay applies the messages of subscription id (docs/LIVE.md rules) and
// fails on a broken prev_version chain.
func replay(t *testing.T, msgs []map[string]any, id string) *window {
	t.Helper()
	w := &window{}
	for _, m := range msgs {
		if m["id"] != id {
			continue
		}
		switch m["type"] {
		case "snapshot":
			w.got, w.version, w.entries, w.part = true, num(m["version"]), map[int64]string{}, ""
			if p, ok := m["participant"]; ok {
				if p != nil {
					w.part = entryKey(p.(map[string]any))
				}
				continue
			}
			w.offset, w.size = num(m["offset"]), num(m["size"])
			for _, e := range m["entries"].([]any) {
				w.entries[num(e.(map[string]any)["rank"])] = entryKey(e.(map[string]any))
			}
		case "update":
			if !w.got || num(m["prev_version"]) != w.version {
				t.Fatalf("%s: update with prev_version %v after version %d (got=%v)", id, m["prev_version"], w.version, w.got)
			}
			w.version = num(m["version"])
			if p, ok := m["participant"]; ok {
				w.part = ""
				if p != nil {
					w.part = entryKey(p.(map[string]any))
				}
				continue
			}
			w.offset, w.size = num(m["offset"]), num(m["size"])
			for _, c := range m["changes"].([]any) {
				w.entries[num(c.(map[string]any)["rank"])] = entryKey(c.(map[string]any))
			}
			for r := range w.entries {
				if r <= w.offset || r > w.offset+w.size {
					delete(w.entries, r)
				}
			}
		case "resync":
			w.got = false
		}
	}
	return w
}

func (w *window) list() []string {
	var out []string
	for r := w.offset + 1; r <= w.offset+w.size; r++ {
		out = append(out, w.entries[r])
	}
	return out
}

// restWindow is what GET .../rankings says the window is now.
func restWindow(t *testing.T, addr, board, kind string, n int, pid string) ([]string, string) {
	t.Helper()
	base := "http://" + addr + "/v1/leaderboards/" + board
	switch kind {
	case "participant":
		m := getJSON(t, base+"/participants/"+pid+"?neighbors=0")
		if m["error"] != nil {
			return nil, ""
		}
		return nil, entryKey(m)
	case "around":
		m := getJSON(t, fmt.Sprintf("%s/rankings?around=%s&limit=%d", base, pid, 2*n+1))
		if m["error"] != nil {
			return nil, ""
		}
		var out []string
		for _, e := range m["entries"].([]any) {
			out = append(out, entryKey(e.(map[string]any)))
		}
		return out, ""
	}
	m := getJSON(t, fmt.Sprintf("%s/rankings?limit=%d", base, n))
	var out []string
	for _, e := range m["entries"].([]any) {
		out = append(out, entryKey(e.(map[string]any)))
	}
	return out, ""
}

type subSpec struct {
	id, kind, pid string
	n             int
}

func (s subSpec) message() string {
	switch s.kind {
	case "participant":
		return fmt.Sprintf(`{"type":"subscribe","id":%q,"kind":"participant","participant_id":%q}`, s.id, s.pid)
	case "around":
		return fmt.Sprintf(`{"type":"subscribe","id":%q,"kind":"around","participant_id":%q,"radius":%d}`, s.id, s.pid, s.n)
	}
	return fmt.Sprintf(`{"type":"subscribe","id":%q,"kind":"top","limit":%d}`, s.id, s.n)
}

func (s subSpec) query() string {
	switch s.kind {
	case "participant":
		return "kind=participant&participant_id=" + s.pid
	case "around":
		return fmt.Sprintf("kind=around&participant_id=%s&radius=%d", s.pid, s.n)
	}
	return fmt.Sprintf("kind=top&limit=%d", s.n)
}

var specs = []subSpec{
	{"t1", "top", "", 1}, {"t3", "top", "", 3}, {"t10", "top", "", 10}, {"t50", "top", "", 50},
	{"pa", "participant", "p3", 0}, {"pb", "participant", "p27", 0}, {"pn", "participant", "newcomer", 0},
	{"a2", "around", "p10", 2}, {"a4", "around", "p0", 4},
}

// submitRandom drives concurrent random submissions (ties, big jumps,
// arrivals) and removals through the HTTP API.
func submitRandom(t *testing.T, addr, board string, workers, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 77))
			for i := 0; i < each; i++ {
				pid := fmt.Sprint("p", rng.IntN(40))
				if rng.IntN(20) == 0 {
					pid = "newcomer"
				}
				if rng.IntN(25) == 0 {
					req, _ := http.NewRequest("DELETE", "http://"+addr+"/v1/leaderboards/"+board+"/participants/"+pid, nil)
					if res, err := http.DefaultClient.Do(req); err == nil {
						res.Body.Close()
					}
					continue
				}
				score := rng.IntN(30) * 10
				if rng.IntN(6) == 0 {
					score = rng.IntN(1_000_000)
				}
				res, err := http.Post("http://"+addr+"/v1/leaderboards/"+board+"/scores", "application/json",
					strings.NewReader(fmt.Sprintf(`{"participant_id":%q,"score":%d,"timestamp":%d}`, pid, score, rng.IntN(3))))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}(w)
	}
	wg.Wait()
}

func seed(t *testing.T, addr, board string) {
	t.Helper()
	post(t, "http://"+addr+"/v1/leaderboards", fmt.Sprintf(`{"leaderboard_id":%q,"name":"x"}`, board))
	var items []string
	for i := 0; i < 30; i++ {
		items = append(items, fmt.Sprintf(`{"participant_id":"p%d","score":%d,"timestamp":1}`, i, i*10))
	}
	post(t, "http://"+addr+"/v1/leaderboards/"+board+"/scores:batch", `{"scores":[`+strings.Join(items, ",")+`]}`)
}

// checkConverged compares every subscription's reconstructed window with REST.
func checkConverged(t *testing.T, addr, board string, msgs func(id string) []map[string]any) {
	t.Helper()
	for _, s := range specs {
		w := replay(t, msgs(s.id), s.id)
		wantList, wantPart := restWindow(t, addr, board, s.kind, s.n, s.pid)
		if s.kind == "participant" {
			if w.part != wantPart {
				t.Fatalf("%s: participant %q, REST %q", s.id, w.part, wantPart)
			}
			continue
		}
		if got := w.list(); !slices.Equal(got, wantList) && !(len(got) == 0 && len(wantList) == 0) {
			t.Fatalf("%s: window\n got %v\nwant %v", s.id, got, wantList)
		}
	}
}

// TestWebSocketConvergence: many WebSocket subscribers of every kind and
// several N, concurrent random submissions; once submissions stop and the last
// window flushes, every reconstructed window equals GET .../rankings and every
// prev_version chain is unbroken.
func TestWebSocketConvergence(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "ws")
	var clients []*wsClient
	for i := 0; i < 3; i++ {
		c, _, err := dial(t, addr, "ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			c.send(t, s.message())
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		waitFor(t, "snapshots", func() bool { return len(c.all()) >= 2*len(specs) })
	}
	submitRandom(t, addr, "ws", 4, 150)
	time.Sleep(150 * time.Millisecond) // several flush windows: the last changes are out
	for _, c := range clients {
		checkConverged(t, addr, "ws", func(string) []map[string]any { return c.all() })
	}
}

// TestSSEAndLongPollConvergence: the same through the fallbacks.
func TestSSEAndLongPollConvergence(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "fb")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := map[string]*sseStream{}
	for _, s := range specs {
		streams[s.id] = openSSE(t, ctx, addr, "fb", s.query(), "")
	}
	polls := map[string]*poller{}
	for _, s := range specs {
		polls[s.id] = startPoller(t, ctx, addr, "fb", s.query())
	}
	for _, s := range specs {
		waitFor(t, "SSE snapshot", func() bool { return len(streams[s.id].all()) >= 1 })
	}
	submitRandom(t, addr, "fb", 4, 150)
	time.Sleep(200 * time.Millisecond)
	checkConverged(t, addr, "fb", func(id string) []map[string]any { return relabel(streams[id].all(), id) })
	for _, p := range polls { // let each poller catch up once more, then stop
		p.settle(t)
	}
	checkConverged(t, addr, "fb", func(id string) []map[string]any { return relabel(polls[id].all(), id) })
}

// relabel gives the frames of a stream (id "stream") the spec's id.
func relabel(msgs []map[string]any, id string) []map[string]any {
	for _, m := range msgs {
		if m["id"] == "stream" {
			m["id"] = id
		}
	}
	return msgs
}

type sseStream struct {
	mu     sync.Mutex
	msgs   []map[string]any
	lastID string
	done   chan struct{}
}

func (s *sseStream) all() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, len(s.msgs))
	for i, m := range s.msgs {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		out[i] = c
	}
	return out
}

func openSSE(t *testing.T, ctx context.Context, addr, board, query, lastID string) *sseStream {
	t.Helper()
	return openSSEWith(t, ctx, http.DefaultClient, nil, addr, board, query, lastID)
}

// openSSEWith opens a stream with client; the stream's reader starts reading
// once pause is closed (nil: at once).
func openSSEWith(t *testing.T, ctx context.Context, client *http.Client, pause chan struct{}, addr, board, query, lastID string) *sseStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/v1/leaderboards/"+board+"/stream?"+query, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sseStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		if pause != nil {
			<-pause
		}
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var event, id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				if err := json.Unmarshal([]byte(line[6:]), &m); err != nil {
					panic(err)
				}
				if m["type"] != event {
					panic("event name differs from the data's type")
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				if id != "" {
					s.lastID = id
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// poller long-polls in a loop, resuming from the version of the last answer.
type poller struct {
	mu      sync.Mutex
	msgs    []map[string]any
	version int64
	epoch   string
	addr    string
	url     string
	stop    chan struct{}
	done    chan struct{}
}

func (p *poller) all() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

func (p *poller) once(ctx context.Context, timeoutMS int) (int, error) {
	u := p.url + fmt.Sprintf("&timeout_ms=%d", timeoutMS)
	p.mu.Lock()
	if p.epoch != "" {
		u += fmt.Sprintf("&since_version=%d&epoch=%s", p.version, p.epoch)
	}
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode == 200 {
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		p.mu.Lock()
		p.msgs = append(p.msgs, m)
		p.version = num(m["version"])
		p.mu.Unlock()
	}
	return res.StatusCode, nil
}

func startPoller(t *testing.T, ctx context.Context, addr, board, query string) *poller {
	p := &poller{addr: addr, url: "http://" + addr + "/v1/leaderboards/" + board + "/updates?" + query, stop: make(chan struct{}), done: make(chan struct{})}
	p.epoch = ""
	// The first answer is a snapshot; learn the epoch from the leaderboard.
	p.epoch = getJSON(t, "http://"+addr+"/v1/leaderboards/"+board)["epoch"].(string)
	p.version = -1
	if code, err := p.onceFirst(ctx); err != nil || code != 200 {
		t.Fatalf("first poll: %d %v", code, err)
	}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			if _, err := p.once(ctx, 200); err != nil {
				return
			}
		}
	}()
	return p
}

func (p *poller) onceFirst(ctx context.Context) (int, error) {
	saved := p.epoch
	p.epoch = ""
	code, err := p.once(ctx, 1000)
	p.epoch = saved
	return code, err
}

// settle stops the loop and polls until the server has nothing newer.
func (p *poller) settle(t *testing.T) {
	close(p.stop)
	<-p.done
	for i := 0; i < 20; i++ {
		code, err := p.once(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		if code == 204 {
			return
		}
	}
	t.Fatal("long poll never settled")
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
