package server

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// These tests run the real binary as a child process, so that it can be
// killed with SIGKILL (nothing flushed, nothing run on the way out) or stopped
// with SIGTERM, and restarted on the same data directory.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

func leaderboardBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "leaderboard-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "leaderboard")
		goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goCmd, "build", "-o", binaryPath, "github.com/lbhq/leaderboard/cmd/leaderboard").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

type child struct {
	cmd  *exec.Cmd
	base string
	logs *strings.Builder
	mu   *sync.Mutex
	exit chan error
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

const crashFlush = 100 * time.Millisecond

func startChild(t *testing.T, dataDir string) *child {
	t.Helper()
	cmd := exec.Command(leaderboardBinary(t), "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--auth", "off",
		"--submit-rate", "0", "--ip-rate", "0", "--history-flush-interval", crashFlush.String(), "--snapshot-interval", "300ms")
	return runChild(t, cmd)
}

// runChild starts cmd (a `leaderboard serve`) and waits until it listens.
func runChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, exit: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs.WriteString(line + "\n")
			c.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		c.exit <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		c.base = "http://" + a
	case err := <-c.exit:
		t.Fatalf("server exited before listening: %v\n%s", err, c.log())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start\n%s", c.log())
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return c
}

func (c *child) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

type ack struct {
	pid     string
	score   uint64
	version uint64
	at      time.Time
}

// load submits a new participant per request from 4 goroutines until stop
// closes, and returns the acknowledged submissions.
func load(t *testing.T, base string, stop chan struct{}) func() []ack {
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pid, score := fmt.Sprintf("g%d-%06d", g, i), rng.Uint64N(1_000_000)
				res, err := client.Post(base+"/v1/leaderboards/crash/scores", "application/json",
					strings.NewReader(fmt.Sprintf(`{"participant_id":%q,"score":%d}`, pid, score)))
				if err != nil {
					continue // the server is going away: not acknowledged
				}
				var body struct{ Version uint64 }
				ok := res.StatusCode == 200 && decodeJSON(res.Body, &body) == nil
				res.Body.Close()
				if ok {
					mu.Lock()
					acks = append(acks, ack{pid, score, body.Version, time.Now()})
					mu.Unlock()
				}
			}
		}()
	}
	return func() []ack {
		wg.Wait()
		return acks
	}
}

func decodeJSON(r io.Reader, v any) error {
	return json.NewDecoder(r).Decode(v)
}

// checkRecovered compares the recovered board with the acknowledgements:
// the recovered state must be exactly the state at its version V (every
// acknowledgement with a version up to V present with its score, none after),
// ranked in the total order, and hold at least versions 1..committed (what
// the server had committed before the stop).
func checkRecovered(t *testing.T, got rankingsBody, acks []ack, committed uint64) {
	t.Helper()
	present := map[string]uint64{}
	for i, e := range got.Entries {
		present[e.ParticipantID] = e.Score
		if e.Rank != int64(i+1) {
			t.Fatalf("entry %d has rank %d", i, e.Rank)
		}
		if i > 0 {
			p := got.Entries[i-1]
			if p.Score < e.Score || (p.Score == e.Score && (p.AchievedAt > e.AchievedAt || (p.AchievedAt == e.AchievedAt && p.ParticipantID > e.ParticipantID))) {
				t.Fatalf("entries %d and %d out of order: %+v, %+v", i-1, i, p, e)
			}
		}
	}
	if int64(len(got.Entries)) != got.Total || uint64(got.Total) != got.Version {
		t.Fatalf("recovered %d entries, total %d, version %d: each new participant is one version", len(got.Entries), got.Total, got.Version)
	}
	required := 0
	for _, a := range acks {
		s, ok := present[a.pid]
		switch {
		case a.version <= got.Version && (!ok || s != a.score):
			t.Fatalf("acknowledged %s=%d at version %d is missing from the recovered state at version %d", a.pid, a.score, a.version, got.Version)
		case a.version > got.Version && ok:
			t.Fatalf("%s (version %d) is present in the recovered state at version %d", a.pid, a.version, got.Version)
		}
		if a.version <= committed {
			required++
			if a.version > got.Version {
				t.Fatalf("%s (version %d, acknowledged at %v) was committed before the stop (%d events), and lost", a.pid, a.version, a.at, committed)
			}
		}
	}
	if required == 0 {
		t.Fatal("no acknowledgement old enough to be required: the load did not run long enough")
	}
	t.Logf("recovered version %d (%d acknowledged, %d required)", got.Version, len(acks), required)
}

func auditLogDuplicates(t *testing.T, dataDir string) (rows, distinct, maxVersion int64) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "leaderboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version), COALESCE(MAX(version), 0) FROM score_events WHERE leaderboard_id = 'crash'`).Scan(&rows, &distinct, &maxVersion); err != nil {
		t.Fatal(err)
	}
	return rows, distinct, maxVersion
}

func runCrash(t *testing.T, stopWith os.Signal) {
	dataDir := t.TempDir()
	c := startChild(t, dataDir)
	if st := jsonCall(t, "POST", c.base+"/v1/leaderboards", `{"leaderboard_id":"crash","name":"Crash"}`, nil); st != 201 {
		t.Fatal(st)
	}
	var before rankingsBody
	jsonCall(t, "GET", c.base+"/v1/leaderboards/crash/rankings", "", &before)
	stop := make(chan struct{})
	wait := load(t, c.base, stop)
	time.Sleep(1500 * time.Millisecond) // a steady load, snapshots included
	// The events the server had committed just before the stop: one board,
	// one version per new participant, committed in version order, so
	// versions 1..committed are in the audit log and must survive anything.
	committed := uint64(metricValue(t, c.base, "leaderboard_history_events_written_total"))
	if err := c.cmd.Process.Signal(stopWith); err != nil {
		t.Fatal(err)
	}
	exitErr := <-c.exit
	close(stop)
	acks := wait()
	if stopWith == syscall.SIGTERM && exitErr != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", exitErr, c.log())
	}

	c2 := startChild(t, dataDir)
	got := readAll(t, c2.base, "crash")
	switch stopWith {
	case syscall.SIGKILL:
		if got.Epoch == before.Epoch {
			t.Fatalf("epoch %s kept after a kill", got.Epoch)
		}
		checkRecovered(t, got, acks, committed)
	case syscall.SIGTERM:
		if got.Epoch != before.Epoch {
			t.Fatalf("epoch changed from %s to %s after a clean stop", before.Epoch, got.Epoch)
		}
		checkRecovered(t, got, acks, math.MaxUint64) // every acknowledgement
	}
	// The recovered board continues without a gap.
	var res struct{ Version uint64 }
	jsonCall(t, "POST", c2.base+"/v1/leaderboards/crash/scores", `{"participant_id":"after","score":1}`, &res)
	if res.Version != got.Version+1 {
		t.Fatalf("first version after restart %d, want %d", res.Version, got.Version+1)
	}
	c2.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-c2.exit; err != nil {
		t.Fatalf("second run: %v\n%s", err, c2.log())
	}
	rows, distinct, maxVersion := auditLogDuplicates(t, dataDir)
	if rows != distinct || uint64(maxVersion) != got.Version+1 || uint64(rows) != got.Version+1 {
		t.Fatalf("audit log: %d rows, %d distinct versions, max %d; want %d of each", rows, distinct, maxVersion, got.Version+1)
	}
}

// TestKillUnderLoad: SIGKILL under a steady submission load, then restart.
func TestKillUnderLoad(t *testing.T) { runCrash(t, syscall.SIGKILL) }

// TestSIGTERMUnderLoad: SIGTERM under load, then restart: nothing lost, same epoch.
func TestSIGTERMUnderLoad(t *testing.T) { runCrash(t, syscall.SIGTERM) }

// metricValue reads one unlabelled metric from base's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
