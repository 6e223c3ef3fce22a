package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/store"
	lbredis "github.com/lbhq/leaderboard/internal/store/redis"
	"github.com/lbhq/leaderboard/internal/store/storetest"
)

// TestCluster runs the conformance suite and the multi-process tests against a
// 3-master Redis Cluster that it starts on loopback ports (redis-server
// --cluster-enabled yes, then redis-cli --cluster create) and stops at the end.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	addrs := startCluster(t, 3)
	clusterClient := func(t *testing.T) goredis.UniversalClient {
		c, err := lbredis.NewClient("redis+cluster://" + addrs[0] + "?addr=" + addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, ok := c.(*goredis.ClusterClient); !ok {
			t.Fatalf("NewClient gave a %T for a cluster URL", c)
		}
		return c
	}
	c := clusterClient(t)
	t.Run("Conformance", func(t *testing.T) { storetest.Run(t, factory(c)) })
	t.Run("ExactOrder", func(t *testing.T) { testExactOrder(t, c) })
	t.Run("TwoProcesses", func(t *testing.T) { testTwoProcesses(t, c, clusterClient(t)) })
	t.Run("OutboxTrimmed", func(t *testing.T) { testOutboxTrimmed(t, c) })
	t.Run("RestoreDuplicate", func(t *testing.T) { testRestoreDuplicate(t, c) })
	t.Run("EmptyBoardID", func(t *testing.T) { testEmptyBoardID(t, c) })
	t.Run("Paused", func(t *testing.T) { testPaused(t, c) })
	t.Run("Spread", func(t *testing.T) {
		// Leaderboards land on every master, each whole on one.
		ctx := context.Background()
		prefix := newPrefix(t, c)
		s := newStore(t, c, prefix, nil, 0)
		for i := 0; i < 40; i++ {
			id := fmt.Sprint("spread-", i)
			if err := s.CreateBoard(ctx, id, store.BoardOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := s.Submit(ctx, id, []store.Submission{{ParticipantID: "a", Score: 1, AchievedAt: 1}}, make([]store.Result, 1)); err != nil {
				t.Fatal(err)
			}
		}
		for _, addr := range addrs {
			n := goredis.NewClient(&goredis.Options{Addr: addr})
			keys, err := n.Keys(ctx, prefix+"{*").Result()
			n.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) == 0 {
				t.Errorf("master %s holds no leaderboard", addr)
			}
			if len(keys)%4 != 0 {
				t.Errorf("master %s holds %d keys: a leaderboard is split (%v)", addr, len(keys), keys)
			}
		}
	})
}

// startCluster starts n cluster-enabled redis-servers on free loopback ports,
// joins them as n masters, waits until every node says cluster_state:ok, and
// kills them when the test ends. Without redis-server and redis-cli it skips
// (fails in CI).
func startCluster(t *testing.T, n int) []string {
	t.Helper()
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		unavailable(t, "redis-server and redis-cli are needed for the cluster test (apt-get install redis-server)")
	}
	dir := t.TempDir()
	var addrs []string
	for _, port := range freePorts(t, n) {
		p := strconv.Itoa(port)
		cmd := exec.Command(server, "--port", p, "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+p+".conf"),
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis-"+p+".log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		addrs = append(addrs, "127.0.0.1:"+p)
	}
	ctx := context.Background()
	waitFor(t, func() error {
		for _, a := range addrs {
			c := goredis.NewClient(&goredis.Options{Addr: a})
			err := c.Ping(ctx).Err()
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}, "cluster nodes to answer", dir)
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	var out bytes.Buffer
	create := exec.Command(cli, args...)
	create.Stdout, create.Stderr = &out, &out
	if err := create.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	waitFor(t, func() error {
		for _, a := range addrs {
			c := goredis.NewClient(&goredis.Options{Addr: a})
			info, err := c.ClusterInfo(ctx).Result()
			c.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster not ok", a)
			}
		}
		return nil
	}, "cluster_state:ok", dir)
	return addrs
}

// waitFor polls cond until it holds, for up to a minute (a generous bound for
// a busy machine, not a timing assertion).
func waitFor(t *testing.T, cond func() error, what, dir string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			t.Fatalf("waiting for %s: %v (logs: %v)", what, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n loopback ports that are free, each with its cluster bus
// port (+10000) free too.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var hold []net.Listener
	defer func() {
		for _, l := range hold {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, l)
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		if err != nil {
			continue
		}
		hold = append(hold, bus)
		ports = append(ports, port)
	}
	return ports
}
