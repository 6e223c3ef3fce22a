package server

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lbhq/leaderboard/internal/redistest"
)

// startProcess runs the binary with args and returns its base URL.
func startProcess(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(leaderboardBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--auth", "off", "--ip-rate", "0", "--submit-rate", "0"}, args...)...)
	return runChild(t, cmd)
}

// liveViewer is a raw WebSocket viewer of one top-N window that records
// every message and keeps the window.
type liveViewer struct {
	gws.BuiltinEventHandler
	conn   *gws.Conn
	mu     sync.Mutex
	msgs   []map[string]any
	window map[float64]map[string]any // rank -> entry
	ver    uint64
	epoch  string
	broken []string
}

func (v *liveViewer) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg map[string]any
	if err := json.Unmarshal(m.Bytes(), &msg); err != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.msgs = append(v.msgs, msg)
	num := func(k string) uint64 { f, _ := msg[k].(float64); return uint64(f) }
	switch msg["type"] {
	case "subscribed":
		v.epoch, _ = msg["epoch"].(string)
	case "snapshot":
		v.window = map[float64]map[string]any{}
		for _, e := range msg["entries"].([]any) {
			en := e.(map[string]any)
			v.window[en["rank"].(float64)] = en
		}
		v.ver = num("version")
	case "update":
		if num("prev_version") != v.ver {
			v.broken = append(v.broken, fmt.Sprintf("update %d->%d after %d", num("prev_version"), num("version"), v.ver))
		}
		for _, e := range msg["changes"].([]any) {
			en := e.(map[string]any)
			v.window[en["rank"].(float64)] = en
		}
		size := msg["size"].(float64)
		for r := range v.window {
			if r > size {
				delete(v.window, r)
			}
		}
		v.ver = num("version")
	}
}

func (v *liveViewer) state() (uint64, string, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for r := 1.0; r <= float64(len(v.window)); r++ {
		e := v.window[r]
		out = append(out, fmt.Sprintf("%v:%v:%v", e["rank"], e["participant_id"], e["score"]))
	}
	return v.ver, v.epoch, out
}

// updates returns the update messages with a version above after, without ids.
func (v *liveViewer) updates(after uint64) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, m := range v.msgs {
		if m["type"] == "update" && uint64(m["version"].(float64)) > after {
			delete(m, "id")
			b, _ := json.Marshal(m)
			out = append(out, string(b))
		}
	}
	return out
}

// watchTop subscribes a new viewer; resuming from prev (not nil) it starts
// from prev's window and version, with since_version and epoch.
func watchTop(t *testing.T, gatewayURL, board string, limit int, prev *liveViewer) *liveViewer {
	t.Helper()
	v := &liveViewer{}
	var since uint64
	var epoch string
	if prev != nil {
		prev.mu.Lock()
		since, epoch = prev.ver, prev.epoch
		v.window = map[float64]map[string]any{}
		for r, e := range prev.window {
			v.window[r] = e
		}
		prev.mu.Unlock()
	}
	addr := strings.Replace(gatewayURL, "http://", "ws://", 1) + "/v1/leaderboards/" + board + "/subscribe"
	conn, _, err := gws.NewClient(v, &gws.ClientOption{Addr: addr})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	v.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { conn.NetConn().Close() })
	sub := fmt.Sprintf(`{"type":"subscribe","id":"w","kind":"top","limit":%d}`, limit)
	if since > 0 {
		sub = fmt.Sprintf(`{"type":"subscribe","id":"w","kind":"top","limit":%d,"since_version":%d,"epoch":%q}`, limit, since, epoch)
		v.ver, v.epoch = since, epoch
	}
	if err := conn.WriteString(sub); err != nil {
		t.Fatal(err)
	}
	return v
}

func topWindow(t *testing.T, api, board string, limit int) (uint64, []string) {
	t.Helper()
	var page rankingsBody
	if st := jsonCall(t, "GET", fmt.Sprintf("%s/v1/leaderboards/%s/rankings?limit=%d&offset=0", api, board, limit), "", &page); st != 200 {
		t.Fatalf("rankings: %d", st)
	}
	var out []string
	for _, e := range page.Entries {
		out = append(out, fmt.Sprintf("%v:%v:%v", float64(e.Rank), e.ParticipantID, float64(e.Score)))
	}
	return page.Version, out
}

// TestAcrossProcesses: Redis, Kafka (kfake, in this test process, over TCP),
// two API processes, one fan-out process and two gateways, each a real
// process of the binary. Submissions go to both API processes; viewers on both
// gateways see identical update sequences and end with the window GET
// .../rankings returns; when a gateway is killed, its viewer resumes on the
// other from its last version with no missing or repeated version.
func TestAcrossProcesses(t *testing.T) {
	url := redisURLForTest(t)
	prefix := redistest.Prefix(t, "lbcluster")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, prefix+"leaderboard.events", prefix+"leaderboard.frames"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dir := t.TempDir()
	common := []string{"--redis-url", url, "--redis-prefix", prefix, "--kafka-brokers", strings.Join(kc.ListenAddrs(), ","),
		"--kafka-topic-prefix", prefix, "--kafka-partitions", "4", "--data-dir", dir, "--registry-ttl", "10s",
		"--flush-interval", "50ms", "--sweep-interval", "200ms"}
	with := func(roles string) []string { return append(slices.Clone(common), "--roles", roles) }
	api1 := startProcess(t, with("api")...)
	api2 := startProcess(t, with("api,history")...)
	startProcess(t, with("fanout")...)
	gw1 := startProcess(t, with("gateway")...)
	gw2 := startProcess(t, with("gateway")...)

	if st := jsonCall(t, "POST", api1.base+"/v1/leaderboards", `{"leaderboard_id":"c","name":"C"}`, nil); st != 201 {
		t.Fatalf("create: %d\n%s", st, api1.log())
	}
	// On the other API process, right after the create: it must know the board already.
	if st := jsonCall(t, "POST", api2.base+"/v1/leaderboards/c/scores", `{"participant_id":"first","score":1}`, nil); st != 200 {
		t.Fatalf("first submission on the other API process: %d\n%s", st, api2.log())
	}
	v1 := watchTop(t, gw1.base, "c", 10, nil)
	v2 := watchTop(t, gw2.base, "c", 10, nil)
	waitFor(t, "both viewers' snapshots", func() bool {
		a, _, _ := v1.state()
		b, _, _ := v2.state()
		return a > 0 && b > 0
	})
	start1, _, _ := v1.state()
	start2, _, _ := v2.state()

	submit := func(n int) {
		var wg sync.WaitGroup
		for g, api := range []string{api1.base, api2.base, api1.base, api2.base} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					body := fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, rand.IntN(40), rand.IntN(1000))
					if st := jsonCall(t, "POST", api+"/v1/leaderboards/c/scores", body, nil); st != 200 {
						t.Errorf("submitter %d: %d", g, st)
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
	settled := func(views ...*liveViewer) {
		t.Helper()
		waitFor(t, "the viewers to reach the final window", func() bool {
			_, want := topWindow(t, api1.base, "c", 10)
			for _, v := range views {
				if _, _, got := v.state(); !slices.Equal(got, want) {
					return false
				}
			}
			return true
		})
	}
	submit(150)
	settled(v1, v2)
	for _, v := range []*liveViewer{v1, v2} {
		if len(v.broken) > 0 {
			t.Fatalf("broken chain: %v", v.broken)
		}
	}
	after := max(start1, start2)
	u1, u2 := v1.updates(after), v2.updates(after)
	if len(u1) == 0 || !slices.Equal(u1, u2) {
		t.Fatalf("the two gateways' update sequences differ (%d and %d updates after version %d)", len(u1), len(u2), after)
	}

	// Kill gateway 1: its viewer resumes on gateway 2 from its last version.
	last, _, _ := v1.state()
	gw1.cmd.Process.Signal(syscall.SIGKILL)
	<-gw1.exit
	v3 := watchTop(t, gw2.base, "c", 10, v1)
	submit(100)
	settled(v2, v3)
	if len(v3.broken) > 0 {
		t.Fatalf("resumed viewer: broken chain %v", v3.broken)
	}
	v3.mu.Lock()
	for _, m := range v3.msgs {
		if m["type"] == "snapshot" {
			v3.mu.Unlock()
			t.Fatalf("the resumed viewer got a snapshot: its versions were not continued")
		}
	}
	v3.mu.Unlock()
	if a, b := v3.updates(last), v2.updates(last); !slices.Equal(a, b) {
		t.Fatalf("the resumed viewer's updates differ from gateway 2's own viewer's (%d vs %d)", len(a), len(b))
	}
	t.Logf("%d identical updates on both gateways; the resumed viewer continued from version %d with %d updates", len(u1), last, len(v3.updates(last)))
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
