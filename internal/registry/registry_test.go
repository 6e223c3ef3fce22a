package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/registry"
)

// The tests run against a real Redis: LEADERBOARD_TEST_REDIS_ADDR, by default
// the machine's own at 127.0.0.1:6379. Each test uses a key prefix of its
// own and deletes its keys when it ends. Unreachable Redis skips the tests,
// or fails them in CI (CI set, and not false or 0).
func redisAddr() string {
	if a := os.Getenv("LEADERBOARD_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

func newRedis(t *testing.T, opts *redis.Options) (*redis.Client, string) {
	t.Helper()
	if opts == nil {
		opts = &redis.Options{}
	}
	opts.Addr = redisAddr()
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if inCI() {
			t.Fatalf("Redis at %s is unreachable: %v", redisAddr(), err)
		}
		t.Skipf("Redis at %s is unreachable (set LEADERBOARD_TEST_REDIS_ADDR): %v", redisAddr(), err)
	}
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}

func newRegistry(t *testing.T, ttl time.Duration) *registry.Registry {
	rdb, prefix := newRedis(t, nil)
	return registry.New(rdb, registry.Options{Prefix: prefix, TTL: ttl})
}

// waitFor polls cond; the bound only stops a broken run, nothing is timed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func segments(t *testing.T, r *registry.Registry, board string) registry.Segments {
	t.Helper()
	s, err := r.Segments(context.Background(), board)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSegmentsUnionAndVersions(t *testing.T) {
	r := newRegistry(t, time.Minute)
	ctx := context.Background()
	if s := segments(t, r, "b1"); s.Version != 0 || len(s.Keys) != 0 {
		t.Fatalf("empty board: %+v", s)
	}
	a, _ := r.NewMember(registry.Gateway{ID: "gw-a"}, nil)
	b, _ := r.NewMember(registry.Gateway{ID: "gw-b"}, nil)
	for _, x := range []struct {
		m   *registry.Member
		seg string
	}{{a, "top:100"}, {a, "top:100"}, {a, "participant:p1"}, {b, "top:100"}, {b, "around:p1:5"}} {
		if err := x.m.Add(ctx, "b1", x.seg); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Add(ctx, "b2", "top:10"); err != nil {
		t.Fatal(err)
	}
	s := segments(t, r, "b1")
	if want := []string{"around:p1:5", "participant:p1", "top:100"}; !slices.Equal(s.Keys, want) {
		t.Fatalf("segments %v, want %v", s.Keys, want)
	}
	if s.Gateways["top:100"] != 2 || s.Gateways["participant:p1"] != 1 {
		t.Fatalf("gateways per segment %v", s.Gateways)
	}
	v := s.Version
	if v != 4 { // four distinct pairs were added
		t.Fatalf("version %d after 4 new pairs", v)
	}
	// A heartbeat only extends the pairs: the version stays.
	if err := a.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, r, "b1"); s.Version != v {
		t.Fatalf("a heartbeat moved the version from %d to %d", v, s.Version)
	}
	// The first of a's two top:100 viewers leaves: nothing changes. The
	// second leaves: a's pair goes, b's stays.
	a.Remove(ctx, "b1", "top:100")
	if s := segments(t, r, "b1"); s.Version != v || s.Gateways["top:100"] != 2 {
		t.Fatalf("one viewer of two left: %+v", s)
	}
	a.Remove(ctx, "b1", "top:100")
	s = segments(t, r, "b1")
	if s.Version != v+1 || s.Gateways["top:100"] != 1 || !slices.Contains(s.Keys, "top:100") {
		t.Fatalf("a's last top:100 viewer left: %+v", s)
	}
	vs, err := r.SegmentVersions(ctx, "b1", "b2", "never")
	if err != nil {
		t.Fatal(err)
	}
	if vs["b1"] != v+1 || vs["b2"] != 1 || vs["never"] != 0 {
		t.Fatalf("SegmentVersions %v", vs)
	}
	// Leave removes everything of a at once.
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, r, "b1"); !slices.Equal(s.Keys, []string{"around:p1:5", "top:100"}) {
		t.Fatalf("after a left: %v", s.Keys)
	}
	if s := segments(t, r, "b2"); len(s.Keys) != 0 {
		t.Fatalf("after a left, b2 has %v", s.Keys)
	}
}

// A gateway that stops heartbeating disappears from both registries within
// its TTL, and the fan-out is told; one that keeps heartbeating stays.
func TestExpiryWhenHeartbeatsStop(t *testing.T) {
	r := newRegistry(t, 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	notified := map[string]int{}
	subscribed := make(chan struct{})
	go r.Changes(ctx, func(b string) {
		mu.Lock()
		notified[b]++
		mu.Unlock()
	})
	// Changes has subscribed once a change made now is seen.
	go func() {
		defer close(subscribed)
		for ctx.Err() == nil {
			r.AddSegments(ctx, "probe", "probe-board", "x") // each add and remove publishes
			r.RemoveSegments(ctx, "probe", "probe-board", "x")
			mu.Lock()
			n := notified["probe-board"]
			mu.Unlock()
			if n > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	<-subscribed

	dying, _ := r.NewMember(registry.Gateway{ID: "dying", URL: "ws://10.0.0.1"}, func() int { return 7 })
	alive, _ := r.NewMember(registry.Gateway{ID: "alive", URL: "ws://10.0.0.2"}, func() int { return 3 })
	dying.Add(ctx, "b", "top:100")
	dying.Add(ctx, "b", "participant:p9")
	alive.Add(ctx, "b", "top:100")
	if err := dying.Heartbeat(ctx); err != nil { // its one and only heartbeat
		t.Fatal(err)
	}
	go alive.Run(ctx, 50*time.Millisecond, func(err error) { t.Errorf("heartbeat: %v", err) })
	waitFor(t, "both gateways", func() bool {
		gws, err := r.Gateways(ctx)
		return err == nil && len(gws) == 2
	})
	before := segments(t, r, "b")
	if !slices.Equal(before.Keys, []string{"participant:p9", "top:100"}) {
		t.Fatalf("segments %v", before.Keys)
	}
	mu.Lock()
	n0 := notified["b"]
	mu.Unlock()

	waitFor(t, "the dead gateway's segments to expire", func() bool {
		s := segments(t, r, "b")
		return slices.Equal(s.Keys, []string{"top:100"}) && s.Gateways["top:100"] == 1
	})
	waitFor(t, "the dead gateway to leave the gateway list", func() bool {
		gws, err := r.Gateways(ctx)
		return err == nil && len(gws) == 1 && gws[0].ID == "alive" && gws[0].Connections == 3 &&
			gws[0].URL == "ws://10.0.0.2" && slices.Equal(gws[0].Boards, []string{"b"})
	})
	if s := segments(t, r, "b"); s.Version <= before.Version {
		t.Fatalf("version %d did not move past %d when pairs expired", s.Version, before.Version)
	}
	waitFor(t, "a change notice for the expiry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return notified["b"] > n0
	})
	// The living gateway's pair outlives many TTLs.
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		if s := segments(t, r, "b"); s.Gateways["top:100"] != 1 {
			t.Fatalf("a heartbeating gateway's segment expired: %+v", s)
		}
	}
	// Run leaves when its context ends.
	cancel()
	waitFor(t, "the stopped gateway to leave", func() bool {
		gws, err := r.Gateways(context.Background())
		return err == nil && len(gws) == 0 && len(segments(t, r, "b").Keys) == 0
	})
}

func TestPick(t *testing.T) {
	r := newRegistry(t, time.Minute)
	ctx := context.Background()
	if _, err := r.Pick(ctx, "b"); !errors.Is(err, registry.ErrNoGateway) {
		t.Fatalf("Pick with no gateway: %v", err)
	}
	hb := func(g registry.Gateway) {
		t.Helper()
		if err := r.Heartbeat(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	hb(registry.Gateway{ID: "g1", Connections: 500, Boards: []string{"x", "b"}})
	hb(registry.Gateway{ID: "g2", Connections: 800, Boards: []string{"b"}})
	hb(registry.Gateway{ID: "g3", Connections: 10, Boards: []string{"y"}})
	hb(registry.Gateway{ID: "g4", Connections: 0, Draining: true, Boards: []string{"b"}})
	hb(registry.Gateway{ID: "g5", Connections: 100, MaxConnections: 100, Boards: []string{"b"}})

	pick := func(board string) string {
		t.Helper()
		g, err := r.Pick(ctx, board)
		if err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	// Serving b: g1, g2 (g4 draining, g5 full). Least loaded of them: g1,
	// although g3 has fewer connections.
	if id := pick("b"); id != "g1" {
		t.Fatalf("Pick(b) = %s, want g1", id)
	}
	// Nobody serves z: the least loaded of all with room.
	if id := pick("z"); id != "g3" {
		t.Fatalf("Pick(z) = %s, want g3", id)
	}
	// A full gateway that serves the board is passed over for one that does.
	hb(registry.Gateway{ID: "g1", Connections: 500, MaxConnections: 500, Boards: []string{"x", "b"}})
	if id := pick("b"); id != "g2" {
		t.Fatalf("Pick(b) with g1 full = %s, want g2", id)
	}
	// Ties are broken at random, and picks made since the last heartbeat
	// count as load: 40 viewers for w over two empty gateways split evenly.
	hb(registry.Gateway{ID: "t1", Boards: []string{"w"}})
	hb(registry.Gateway{ID: "t2", Boards: []string{"w"}})
	count := map[string]int{}
	for range 40 {
		count[pick("w")]++
	}
	if count["t1"] != 20 || count["t2"] != 20 {
		t.Fatalf("40 picks over two equal gateways: %v", count)
	}
	// A new heartbeat replaces the local count with the gateway's own.
	hb(registry.Gateway{ID: "t1", Connections: 0, Boards: []string{"w"}})
	if id := pick("w"); id != "t1" {
		t.Fatalf("after t1 reported 0 connections, Pick = %s", id)
	}
	// Random tie-breaking: over fresh registries both gateways come first.
	rdb, prefix := newRedis(t, nil)
	seen := map[string]bool{}
	for i := 0; i < 64 && len(seen) < 2; i++ {
		rr := registry.New(rdb, registry.Options{Prefix: prefix + "tie" + strconv.Itoa(i) + ":", TTL: time.Minute})
		for _, id := range []string{"u1", "u2"} {
			rr.Heartbeat(ctx, registry.Gateway{ID: id, Boards: []string{"v"}})
		}
		g, err := rr.Pick(ctx, "v")
		if err != nil {
			t.Fatal(err)
		}
		seen[g.ID] = true
	}
	if len(seen) != 2 {
		t.Fatalf("64 tie-breaks all chose %v", seen)
	}
}

// cutDialer dials Redis until cut; then every open connection is closed and
// new dials fail, until healed.
type cutDialer struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (d *cutDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, errors.New("test: Redis cut off")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) set(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
	if down {
		for _, c := range d.conns {
			c.Close()
		}
		d.conns = nil
	}
}

// With a breaker, calls stop going to an unreachable Redis after a few
// failures and fail at once; when Redis is back a probe closes the breaker.
func TestBreakerAroundRedis(t *testing.T) {
	d := &cutDialer{}
	rdb, prefix := newRedis(t, &redis.Options{Dialer: d.dial, MaxRetries: -1})
	br := bus.NewBreaker(bus.BreakerOptions{Name: "redis", Failures: 3, OpenFor: 100 * time.Millisecond})
	r := registry.New(rdb, registry.Options{Prefix: prefix, TTL: time.Minute, Breaker: br})
	ctx := context.Background()
	if err := r.AddSegments(ctx, "g", "b", "top:100"); err != nil {
		t.Fatal(err)
	}
	d.set(true)
	for range 3 {
		if _, err := r.Segments(ctx, "b"); err == nil || errors.Is(err, bus.ErrBreakerOpen) {
			t.Fatalf("Segments with Redis cut off: %v", err)
		}
	}
	if br.State() != "open" {
		t.Fatalf("breaker %s after 3 failures", br.State())
	}
	if _, err := r.Gateways(ctx); !errors.Is(err, bus.ErrBreakerOpen) {
		t.Fatalf("Gateways with the breaker open: %v", err)
	}
	d.set(false)
	waitFor(t, "the breaker to close after Redis came back", func() bool {
		s, err := r.Segments(ctx, "b")
		return err == nil && slices.Equal(s.Keys, []string{"top:100"})
	})
	if br.State() != "closed" {
		t.Fatalf("breaker %s", br.State())
	}
}

func TestBadIDs(t *testing.T) {
	r := newRegistry(t, time.Minute)
	ctx := context.Background()
	for _, id := range []string{"", "a|b", "a{b}"} {
		if err := r.AddSegments(ctx, id, "b", "s"); !errors.Is(err, registry.ErrBadID) {
			t.Errorf("gateway %q: %v", id, err)
		}
		if err := r.Heartbeat(ctx, registry.Gateway{ID: id}); !errors.Is(err, registry.ErrBadID) {
			t.Errorf("heartbeat of %q: %v", id, err)
		}
		if _, err := r.NewMember(registry.Gateway{ID: id}, nil); !errors.Is(err, registry.ErrBadID) {
			t.Errorf("member %q: %v", id, err)
		}
	}
	// Segment keys are opaque: '|' inside one is kept.
	if err := r.AddSegments(ctx, "g", "b", "odd|segment"); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, r, "b"); !slices.Equal(s.Keys, []string{"odd|segment"}) {
		t.Fatalf("segments %v", s.Keys)
	}
}
