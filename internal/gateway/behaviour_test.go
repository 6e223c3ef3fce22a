package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/server"
)

func firstOfType(msgs []map[string]any, typ, id string) map[string]any {
	for _, m := range msgs {
		if m["type"] == typ && (id == "" || m["id"] == id) {
			return m
		}
	}
	return nil
}

// TestResumeAfterDisconnect: a viewer that drops and resubscribes with
// since_version and epoch gets one update from that version, and its window
// ends equal to REST with no gap or duplicate; a version older than the
// history gets a snapshot.
func TestResumeAfterDisconnect(t *testing.T) {
	addr := startServer(t, func(c *server.Config) { c.History = 2 * time.Second })
	seed(t, addr, "rs")
	c1, _, err := dial(t, addr, "rs", nil)
	if err != nil {
		t.Fatal(err)
	}
	c1.send(t, `{"type":"subscribe","id":"top","kind":"top","limit":10}`)
	waitFor(t, "snapshot", func() bool { return firstOfType(c1.all(), "snapshot", "top") != nil })
	submitRandom(t, addr, "rs", 2, 30)
	time.Sleep(100 * time.Millisecond)
	c1.conn.NetConn().Close() // forced disconnect
	before := c1.all()
	last := replay(t, before, "top")
	epoch := firstOfType(before, "subscribed", "top")["epoch"].(string)

	submitRandom(t, addr, "rs", 2, 30) // changes while away
	c2, _, err := dial(t, addr, "rs", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.send(t, fmt.Sprintf(`{"type":"subscribe","id":"top","kind":"top","limit":10,"since_version":%d,"epoch":%q}`, last.version, epoch))
	waitFor(t, "catch-up", func() bool { return len(c2.all()) >= 2 })
	catchUp := c2.all()[1]
	if catchUp["type"] != "update" || num(catchUp["prev_version"]) != last.version {
		t.Fatalf("resume answer %v, want an update from %d", catchUp, last.version)
	}
	time.Sleep(100 * time.Millisecond)
	w := replay(t, append(before, c2.all()...), "top")
	want, _ := restWindow(t, addr, "rs", "top", 10, "")
	if got := w.list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after resume %v, REST %v", got, want)
	}

	// Beyond the history: a snapshot.
	time.Sleep(2500 * time.Millisecond)
	submitRandom(t, addr, "rs", 1, 5)
	time.Sleep(100 * time.Millisecond)
	c3, _, _ := dial(t, addr, "rs", nil)
	c3.send(t, fmt.Sprintf(`{"type":"subscribe","id":"top","kind":"top","limit":10,"since_version":%d,"epoch":%q}`, last.version, epoch))
	waitFor(t, "answer", func() bool { return len(c3.all()) >= 2 })
	if typ := c3.all()[1]["type"]; typ != "snapshot" {
		t.Fatalf("resume from before the history: %v, want a snapshot", typ)
	}
	// Another epoch: a snapshot too.
	c3.send(t, `{"type":"subscribe","id":"e","kind":"top","limit":3,"since_version":1,"epoch":"another-life"}`)
	waitFor(t, "answer", func() bool { return firstOfType(c3.all(), "snapshot", "e") != nil })
}

// bigBoardPausedViewer fills leaderboard id with a thousand participants (a
// big window makes big frames) and subscribes a viewer with a tiny receive
// buffer to its top 1000 (subscription "big"); the viewer does not read until
// its pause channel is closed.
func bigBoardPausedViewer(t *testing.T, addr, id string) *wsClient {
	t.Helper()
	seed(t, addr, id)
	for i := 30; i < 1000; i++ {
		post(t, "http://"+addr+"/v1/leaderboards/"+id+"/scores", fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, i))
	}
	v := &wsClient{closed: make(chan error, 1), pause: make(chan struct{})}
	conn, _, err := gws.NewClient(v, &gws.ClientOption{Addr: "ws://" + addr + "/v1/leaderboards/" + id + "/subscribe", NewDialer: smallBufferDialer})
	if err != nil {
		t.Fatal(err)
	}
	v.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { conn.NetConn().Close() })
	v.send(t, `{"type":"subscribe","id":"big","kind":"top","limit":1000}`)
	return v
}

// smallBufferDialer makes a client socket with a tiny receive buffer, so that a
// client that stops reading backs the server up quickly.
func smallBufferDialer() (gws.Dialer, error) {
	return &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}, nil
}

// TestSlowReaderResyncs: a viewer that stops reading is told to resync and
// taken off the hot path, while another viewer keeps getting every update;
// when the slow one reads again it gets a fresh snapshot and converges.
func TestSlowReaderResyncs(t *testing.T) {
	addr := startServer(t, func(c *server.Config) { c.SendQueue = 4 })
	slow := bigBoardPausedViewer(t, addr, "slow")
	fast, _, err := dial(t, addr, "slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	fast.send(t, `{"type":"subscribe","id":"big","kind":"top","limit":1000}`)

	// Everyone's score changes, flush after flush, until the server reports a resync.
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; ; round++ {
		var items []string
		for i := 0; i < 1000; i += 2 {
			items = append(items, fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, 5000+round*1000+i))
		}
		post(t, "http://"+addr+"/v1/leaderboards/slow/scores:batch", `{"scores":[`+strings.Join(items, ",")+`]}`)
		time.Sleep(25 * time.Millisecond)
		if strings.Contains(metrics(t, addr), "leaderboard_live_resyncs_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow reader was never told to resync")
		}
	}
	// The fast viewer was not held back: its window is current.
	time.Sleep(100 * time.Millisecond)
	want, _ := restWindow(t, addr, "slow", "top", 1000, "")
	if got := replay(t, fast.all(), "big").list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatal("the fast viewer fell behind while another viewer was slow")
	}
	close(slow.pause) // read again: resync, then a fresh snapshot, then current
	waitFor(t, "resync and snapshot", func() bool {
		msgs := slow.all()
		for i, m := range msgs {
			if m["type"] == "resync" {
				return firstOfType(msgs[i:], "snapshot", "big") != nil
			}
		}
		return false
	})
	time.Sleep(100 * time.Millisecond)
	if got := replay(t, slow.all(), "big").list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatal("the slow viewer did not converge after its resync")
	}
}

// TestBehindReaderGetsFramesTogether: a viewer that pauses for a few flushes,
// fewer than its send queue holds, is not resynced: when it reads again, the
// frames that waited reach it in order (an unbroken prev_version chain), and
// the server wrote several of them per write call.
func TestBehindReaderGetsFramesTogether(t *testing.T) {
	// Enough ~100 KB frames to be more than the kernel holds for a reader that
	// does not read: the sender's buffer grows up to tcp_wmem's maximum (4 MB
	// here, 16 MB on some hosts), so that many frames, twice over, and then
	// frames wait in the server's queue.
	rounds := 2*wmemMax(t)/(100<<10) + 20
	addr := startServer(t, func(c *server.Config) { c.SendQueue, c.Conflate = 2*rounds, false })
	v := bigBoardPausedViewer(t, addr, "behind")
	writes0, frames0 := writeCounters(t, addr)
	for round := range rounds {
		var items []string
		for i := 0; i < 1000; i += 2 {
			items = append(items, fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, 5000+round*1000+i))
		}
		post(t, "http://"+addr+"/v1/leaderboards/behind/scores:batch", `{"scores":[`+strings.Join(items, ",")+`]}`)
		time.Sleep(20 * time.Millisecond)
	}
	close(v.pause)
	want, _ := restWindow(t, addr, "behind", "top", 1000, "")
	waitFor(t, "the paused viewer to catch up", func() bool {
		return strings.Join(replay(t, v.all(), "big").list(), ",") == strings.Join(want, ",")
	})
	for _, m := range v.all() {
		if m["type"] == "resync" {
			t.Fatal("a viewer within its send queue was resynced")
		}
	}
	writes, frames := writeCounters(t, addr)
	if writes-writes0 == 0 || frames-frames0 <= writes-writes0 {
		t.Fatalf("%g frames in %g writes: waiting frames were not written together", frames-frames0, writes-writes0)
	}
}

// TestBehindReaderGetsUpdatesMerged: with conflation on (the default), a
// viewer whose updates wait in the server's queue gets them merged, one per
// subscription per write: it receives fewer updates than the server made
// for it, its prev_version chain is unbroken, it is not resynced, and it
// ends at the REST window.
func TestBehindReaderGetsUpdatesMerged(t *testing.T) {
	rounds := 2*wmemMax(t)/(100<<10) + 20
	addr := startServer(t, func(c *server.Config) { c.SendQueue = 2 * rounds })
	v := bigBoardPausedViewer(t, addr, "merged")
	for round := range rounds {
		var items []string
		for i := 0; i < 1000; i += 2 {
			items = append(items, fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, 5000+round*1000+i))
		}
		post(t, "http://"+addr+"/v1/leaderboards/merged/scores:batch", `{"scores":[`+strings.Join(items, ",")+`]}`)
		time.Sleep(20 * time.Millisecond)
	}
	close(v.pause)
	want, _ := restWindow(t, addr, "merged", "top", 1000, "")
	waitFor(t, "the paused viewer to catch up", func() bool {
		return strings.Join(replay(t, v.all(), "big").list(), ",") == strings.Join(want, ",")
	})
	for _, m := range v.all() {
		if m["type"] == "resync" {
			t.Fatal("a viewer within its send queue was resynced")
		}
	}
	var merged float64
	for _, line := range strings.Split(metrics(t, addr), "\n") {
		fmt.Sscanf(line, "leaderboard_live_updates_merged_total %g", &merged)
	}
	if merged == 0 {
		t.Fatal("no update was merged for a viewer whose updates waited in the server's queue")
	}
	t.Logf("%d rounds, %g updates merged away", rounds, merged)
}

// TestBehindSSEStreamGetsUpdatesMerged: an SSE stream whose updates wait
// in the server gets them merged like a WebSocket connection: unbroken
// chain, no resync, the REST window at the end, updates merged.
func TestBehindSSEStreamGetsUpdatesMerged(t *testing.T) {
	rounds := 2*wmemMax(t)/(100<<10) + 20
	addr := startServer(t, func(c *server.Config) { c.SendQueue = 2 * rounds })
	seed(t, addr, "ssebehind")
	for i := 30; i < 1000; i++ {
		post(t, "http://"+addr+"/v1/leaderboards/ssebehind/scores", fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, i))
	}
	dial := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dial.DialContext}}
	pause := make(chan struct{})
	s := openSSEWith(t, context.Background(), client, pause, addr, "ssebehind", "kind=top&limit=1000", "")
	for round := range rounds {
		var items []string
		for i := 0; i < 1000; i += 2 {
			items = append(items, fmt.Sprintf(`{"participant_id":"q%d","score":%d}`, i, 5000+round*1000+i))
		}
		post(t, "http://"+addr+"/v1/leaderboards/ssebehind/scores:batch", `{"scores":[`+strings.Join(items, ",")+`]}`)
		time.Sleep(20 * time.Millisecond)
	}
	close(pause)
	want, _ := restWindow(t, addr, "ssebehind", "top", 1000, "")
	waitFor(t, "the paused stream to catch up", func() bool {
		return strings.Join(replay(t, s.all(), "stream").list(), ",") == strings.Join(want, ",")
	})
	for _, m := range s.all() {
		if m["type"] == "resync" {
			t.Fatal("a stream within its send queue was resynced")
		}
	}
	var merged float64
	for _, line := range strings.Split(metrics(t, addr), "\n") {
		fmt.Sscanf(line, "leaderboard_live_updates_merged_total %g", &merged)
	}
	if merged == 0 {
		t.Fatal("no update was merged for a stream whose updates waited in the server")
	}
	t.Logf("%d rounds, %g updates merged away", rounds, merged)
}

// wmemMax is the largest send buffer the kernel grows a TCP socket to
// (net.ipv4.tcp_wmem's third field), 4 MB where it cannot be read.
func wmemMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n
		}
	}
	t.Logf("tcp_wmem unreadable (%v): assuming 4 MB", err)
	return 4 << 20
}

// writeCounters reads the gateway's write calls and the frames they carried from /metrics.
func writeCounters(t *testing.T, addr string) (writes, frames float64) {
	t.Helper()
	for _, line := range strings.Split(metrics(t, addr), "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, "leaderboard_live_websocket_writes_total %g", &v); err == nil {
			writes = v
		}
		if _, err := fmt.Sscanf(line, "leaderboard_live_websocket_frames_written_total %g", &v); err == nil {
			frames = v
		}
	}
	return writes, frames
}

func metrics(t *testing.T, addr string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// TestLimitsAndBadMessages: each gets the documented error and the server
// keeps serving the others.
func TestLimitsAndBadMessages(t *testing.T) {
	addr := startServer(t, func(c *server.Config) {
		c.MaxConnections, c.MaxSubscriptions = 2, 2
		c.AllowedOrigins = "https://good.example"
	})
	seed(t, addr, "lim")
	c, _, err := dial(t, addr, "lim", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{
		`{"type":"subscribe",`,                                    // malformed JSON
		`{"type":"shout","id":"x"}`,                               // unknown type
		`{"type":"subscribe","id":"k","kind":"bottom"}`,           // unknown kind
		`{"type":"subscribe","id":"l","kind":"top","limit":5000}`, // bad limit
		`{"type":"subscribe","id":"bad id","kind":"top"}`,         // bad id
		`{"type":"subscribe","id":"p","kind":"participant"}`,      // missing participant
		`{"type":"subscribe","id":"s1","kind":"top","limit":1}`,   // ok
		`{"type":"subscribe","id":"s2","kind":"top","limit":2}`,   // ok
		`{"type":"subscribe","id":"s3","kind":"top","limit":3}`,   // one too many
		`{"type":"ping"}`, // pong
		`{"type":"subscribe","id":"s2","kind":"top","limit":4}`, // replaces s2: allowed
	} {
		c.send(t, msg)
	}
	waitFor(t, "answers", func() bool {
		return firstOfType(c.all(), "pong", "") != nil && firstOfType(c.all(), "error", "s3") != nil
	})
	time.Sleep(50 * time.Millisecond)
	msgs := c.all()
	codes := map[string]string{}
	for _, m := range msgs {
		if m["type"] == "error" {
			id, _ := m["id"].(string)
			codes[id+"|"+m["code"].(string)] = m["message"].(string)
		}
	}
	for _, want := range []string{"|invalid_argument", "x|invalid_argument", "k|invalid_argument", "l|invalid_argument", "p|invalid_argument", "s3|too_many_subscriptions"} {
		if _, ok := codes[want]; !ok {
			t.Errorf("no error %s among %v", want, codes)
		}
	}
	if firstOfType(msgs, "snapshot", "s1") == nil || firstOfType(msgs, "snapshot", "s2") == nil {
		t.Fatal("valid subscriptions got no snapshot")
	}

	// Unknown leaderboard: 404 before the upgrade. Origin not allowed: 403.
	_, res, err := dial(t, addr, "nope", nil)
	if err == nil || res == nil || res.StatusCode != 404 {
		t.Fatalf("unknown leaderboard: %v %v", res, err)
	}
	_, res, err = dial(t, addr, "lim", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("bad origin: %v %v", res, err)
	}
	// Connection cap: the second connection is fine, the third gets 503 + Retry-After.
	if _, _, err := dial(t, addr, "lim", http.Header{"Origin": {"https://good.example"}}); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	_, res, err = dial(t, addr, "lim", nil)
	if err == nil || res == nil || res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %v %v", res, err)
	}
	// An oversized frame closes that connection with 1009; the other still works.
	big := `{"type":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`
	c.send(t, big)
	select {
	case err := <-c.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 1009 {
			t.Fatalf("oversized frame closed with %v, want 1009", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("oversized frame did not close the connection")
	}
	post(t, "http://"+addr+"/v1/leaderboards/lim/scores", `{"participant_id":"zz","score":999999}`)
	// The closed one frees a place: gws sends the close frame before it
	// calls the handler that releases the place, so the client may see the
	// close a moment before the place is free.
	var c2 *wsClient
	waitFor(t, "a place after the close", func() bool {
		var err error
		c2, _, err = dial(t, addr, "lim", nil)
		return err == nil
	})
	c2.send(t, `{"type":"subscribe","id":"t","kind":"top","limit":1}`)
	waitFor(t, "snapshot", func() bool { return firstOfType(c2.all(), "snapshot", "t") != nil })
}

// TestHeartbeatAndShutdown: a silent connection is closed after the heartbeat
// timeout; on shutdown every connection gets 1001 going away.
func TestHeartbeatAndShutdown(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = "" // no persistence: this test is not about it
	cfg.Addr, cfg.HeartbeatTimeout, cfg.PingInterval = "127.0.0.1:0", 300*time.Millisecond, time.Hour
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", t.TempDir(), 0, 0
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, discard(), func(a string) { addrc <- a }) }()
	addr := <-addrc
	seed(t, addr, "hb")
	silent, _, err := dial(t, addr, "hb", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-silent.closed:
		// The close says why, and not the server's own address (gws used to
		// send the read error: "read tcp 127.0.0.1:...: i/o timeout").
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 1000 || !strings.HasPrefix(string(ce.Reason), "heartbeat timeout") ||
			strings.Contains(string(ce.Reason), "127.0.0.1") {
			t.Fatalf("a silent connection closed with %v, want 1000 and a heartbeat timeout as the reason", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent connection was not closed")
	}
	talker, _, err := dial(t, addr, "hb", nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() { // keeps itself alive
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				talker.conn.WriteString(`{"type":"ping"}`)
			}
		}
	}()
	time.Sleep(600 * time.Millisecond)
	select {
	case err := <-talker.closed:
		t.Fatalf("an active connection was closed: %v", err)
	default:
	}
	close(stop)
	cancel()
	select {
	case err := <-talker.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 1001 {
			t.Fatalf("shutdown closed with %v, want 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no going-away close on shutdown")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestShutdownEndsStreams: SSE streams and long polls end on shutdown, so the
// server stops promptly instead of waiting for its shutdown timeout.
func TestShutdownEndsStreams(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = "" // no persistence: this test is not about it
	cfg.Addr, cfg.ShutdownTimeout = "127.0.0.1:0", 30*time.Second
	cfg.Auth, cfg.DataDir, cfg.IPRate, cfg.UpgradeRate = "off", t.TempDir(), 0, 0
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, discard(), func(a string) { addrc <- a }) }()
	addr := <-addrc
	seed(t, addr, "sd")
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	s := openSSE(t, streamCtx, addr, "sd", "kind=top&limit=3", "")
	waitFor(t, "snapshot", func() bool { return len(s.all()) > 0 })
	pollDone := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + addr + "/v1/leaderboards/sd/updates?kind=top&limit=3&since_version=30&epoch=" +
			getJSON(t, "http://"+addr+"/v1/leaderboards/sd")["epoch"].(string) + "&timeout_ms=60000")
		if err != nil {
			pollDone <- 0
			return
		}
		res.Body.Close()
		pollDone <- res.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown waited on open streams")
	}
	<-s.done
	if code := <-pollDone; code != 204 {
		t.Fatalf("long poll during shutdown: %d, want 204", code)
	}
	t.Logf("shutdown took %v", time.Since(start))
}

// TestPingsAfterBurstsKeepConnectionsOpen: server pings that follow update
// bursts are written (a write deadline left over from a burst would fail
// them and close the connection), and a client that answers stays connected.
func TestPingsAfterBurstsKeepConnectionsOpen(t *testing.T) {
	addr := startServer(t, func(c *server.Config) {
		c.PingInterval, c.HeartbeatTimeout = 1200*time.Millisecond, 3*time.Second
	})
	seed(t, addr, "pg")
	c, _, err := dial(t, addr, "pg", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"type":"subscribe","id":"t","kind":"top","limit":5}`)
	for i := 0; i < 3; i++ {
		post(t, "http://"+addr+"/v1/leaderboards/pg/scores", fmt.Sprintf(`{"participant_id":"burst%d","score":%d}`, i, 5000+i))
		time.Sleep(1500 * time.Millisecond) // past the pool writers' 1 s deadline, across a ping
	}
	select {
	case err := <-c.closed:
		t.Fatalf("connection closed: %v", err)
	default:
	}
	w := replay(t, c.all(), "t")
	if w.entries[1] != "burst2:5002" {
		t.Fatalf("window %v, want burst2 first", w.entries)
	}
}

// TestMessageRateLimit: past its budget a client's messages are answered rate_limited and not acted
// on, other connections are served as before, and a client that keeps sending is closed with 1008.
func TestMessageRateLimit(t *testing.T) {
	const burst = 5
	addr := startServer(t, func(c *server.Config) {
		c.WSMessageRate, c.WSMessageBurst = 0.01, burst // one token per 100 s: none refills during the test
	})
	seed(t, addr, "flood")
	c, _, err := dial(t, addr, "flood", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range burst - 1 {
		c.send(t, `{"type":"ping"}`)
	}
	c.send(t, `{"type":"subscribe","id":"ok","kind":"top","limit":3}`) // the last token
	waitFor(t, "the snapshot of the last message within the burst", func() bool { return firstOfType(c.all(), "snapshot", "ok") != nil })
	c.send(t, `{"type":"subscribe","id":"late","kind":"top","limit":3}`)
	waitFor(t, "rate_limited", func() bool {
		for _, m := range c.all() {
			if m["type"] == "error" && m["code"] == "rate_limited" {
				return true
			}
		}
		return false
	})
	pongs := 0
	for _, m := range c.all() {
		if m["type"] == "pong" {
			pongs++
		}
	}
	if pongs != burst-1 {
		t.Errorf("%d pongs, want %d", pongs, burst-1)
	}
	// The refused subscribe was not acted on, and the one before it still gets its updates.
	post(t, "http://"+addr+"/v1/leaderboards/flood/scores", `{"participant_id":"top-of-all","score":999999999}`)
	waitFor(t, "an update for the subscription made within the burst", func() bool { return firstOfType(c.all(), "update", "ok") != nil })
	for _, m := range c.all() {
		if m["id"] == "late" && m["type"] != "error" {
			t.Fatalf("the refused subscribe was acted on: %v", m)
		}
	}

	// Another connection is not affected.
	other, _, err := dial(t, addr, "flood", nil)
	if err != nil {
		t.Fatal(err)
	}
	other.send(t, `{"type":"subscribe","id":"t","kind":"top","limit":1}`)
	waitFor(t, "the other connection's snapshot", func() bool { return firstOfType(other.all(), "snapshot", "t") != nil })

	// burst refusals in a row close the flooding connection with 1008 (one was refused above).
	for range burst - 1 {
		c.send(t, `{"type":"ping"}`)
	}
	select {
	case err := <-c.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 1008 {
			t.Fatalf("flooding connection closed with %v, want 1008", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection refused burst times in a row was not closed")
	}
	other.send(t, `{"type":"ping"}`)
	waitFor(t, "the other connection's pong", func() bool { return firstOfType(other.all(), "pong", "") != nil })
}
