package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/gateway"
	"github.com/lbhq/leaderboard/internal/registry"
)

// router is the connection router (GET /v1/leaderboards/{id}/connect) and
// this process's entry in the gateway registry. Without Redis there is no
// registry: the router answers this process's own address. With Redis every
// process registers itself as a gateway (its advertised URL, connection
// count, the leaderboards its viewers watch, heartbeated with expiry) and the
// router picks among all live ones: one that already serves the leaderboard,
// else the least loaded.
type router struct {
	reg *registry.Registry // nil without Redis
	gw  *gateway.Gateway   // set once made, before start
	log *slog.Logger
	// segments, when set, are synced into the registry every second (the
	// in-process hub's); a fanout.Remote registers its own instead.
	segments func() map[string][]string

	mu     sync.Mutex
	self   registry.Gateway // this process, once it listens
	member *registry.Member
	synced map[string]map[string]bool // board -> segment keys registered
}

func newRouter(client goredis.UniversalClient, cfg Config, log *slog.Logger) *router {
	r := &router{log: log, synced: map[string]map[string]bool{}}
	if client == nil {
		return r
	}
	r.reg = registry.New(client, registry.Options{Prefix: cfg.RedisPrefix, TTL: cfg.RegistryTTL, Breaker: newBreaker("redis-registry", func(err error) bool {
		return errors.Is(err, registry.ErrNoGateway) || errors.Is(err, registry.ErrBadID)
	}, log)})
	return r
}

func gatewayID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "gw-" + hex.EncodeToString(b[:])
}

// join records this process's advertised base URL (ws://host:port) and,
// with a registry, makes its member (nil without one).
func (r *router) join(url string, maxConns int) (*registry.Member, error) {
	self := registry.Gateway{ID: gatewayID(), URL: url, MaxConnections: maxConns}
	r.mu.Lock()
	r.self = self
	r.mu.Unlock()
	if r.reg == nil {
		return nil, nil
	}
	m, err := r.reg.NewMember(self, func() int {
		if r.gw == nil {
			return 0
		}
		s := r.gw.Snapshot()
		return int(s.WebSockets + s.SSE + s.LongPolls)
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.member = m
	r.mu.Unlock()
	return m, nil
}

// start keeps this process's registry entry (and, with segments, the
// segments its viewers watch) current until ctx ends.
func (r *router) start(ctx context.Context) {
	if r.member == nil {
		return
	}
	interval := r.reg.TTL() / 3
	if r.segments != nil {
		r.sync(ctx)
	}
	go r.member.Run(ctx, interval, func(err error) { r.log.Warn("gateway registry: heartbeat failed", "err", err) })
	if r.segments == nil {
		return
	}
	go func() {
		t := time.NewTicker(min(interval, time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.sync(ctx)
			}
		}
	}()
}

// sync registers the segments this process's viewers watch and unregisters
// those nobody watches any more. Polling the hub, rather than hooking every
// subscribe, keeps Redis off the subscription path; a new segment is known
// everywhere within a second.
func (r *router) sync(ctx context.Context) {
	now := r.segments()
	for board, keys := range now {
		for _, k := range keys {
			if !r.synced[board][k] {
				if err := r.member.Add(ctx, board, k); err != nil && ctx.Err() == nil {
					r.log.Warn("gateway registry: registering a segment failed (the next heartbeat retries)", "leaderboard", board, "err", err)
				}
				if r.synced[board] == nil {
					r.synced[board] = map[string]bool{}
				}
				r.synced[board][k] = true
			}
		}
	}
	for board, keys := range r.synced {
		for k := range keys {
			if !slices.Contains(now[board], k) {
				_ = r.member.Remove(ctx, board, k) // on failure the pair expires after one TTL
				delete(keys, k)
			}
		}
		if len(keys) == 0 {
			delete(r.synced, board)
		}
	}
}

// Connect answers the gateway a new viewer of board should use.
func (r *router) Connect(ctx context.Context, board string) (id, url string, err error) {
	r.mu.Lock()
	self := r.self
	r.mu.Unlock()
	if r.reg == nil {
		return self.ID, self.URL, nil
	}
	g, err := r.reg.Pick(ctx, board)
	if err != nil {
		return "", "", err
	}
	return g.ID, g.URL, nil
}

// drain marks this gateway as draining (the router sends nobody new here).
// It waits for Redis until ctx ends at most (see within).
func (r *router) drain(ctx context.Context) {
	r.mu.Lock()
	m := r.member
	r.mu.Unlock()
	if m != nil {
		m.SetDraining(true)
		within(ctx, func() { _ = m.Heartbeat(ctx) })
	}
}

// leave removes this gateway from the registry at once. It waits for Redis
// until ctx ends at most (see within).
func (r *router) leave(ctx context.Context) {
	r.mu.Lock()
	m := r.member
	r.mu.Unlock()
	if m != nil {
		within(ctx, func() { _ = m.Leave(ctx) })
	}
}

// within runs f and waits for it until ctx ends at most. The Redis client
// does not apply a context's deadline to a command already sent (go-redis
// without ContextTimeoutEnabled): a frozen Redis held the stop's registry
// calls for its read timeout and retries (10 s and more each), past
// --shutdown-timeout, and the drain's one before the listener even closed.
// What f has not done by then is left to the entry's expiry; f ends on its
// own once the client gives up, or when the client is closed.
func within(ctx context.Context, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
