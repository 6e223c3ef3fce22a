// Package registry keeps, in Redis, what the scaled-out tiers must know about
// each other: which segments of each leaderboard have viewers anywhere (the
// design's subscription registry, read by fan-out) and which gateways are
// alive, how loaded they are and which leaderboards they serve (read by the
// connection router). Everything written here expires unless its writer
// heartbeats it, so a gateway that dies disappears by itself within one TTL.
//
// # Keys (Prefix defaults to "lb:")
//
//	<prefix>reg:{B}:seg   sorted set: member "<gateway>|<segment>", score = expiry (Unix ms, Redis's clock)
//	<prefix>reg:{B}:ver   counter, bumped whenever B's set of (gateway, segment) pairs changes
//	<prefix>reg:changes   pub/sub channel: the leaderboard id, published with every bump
//	<prefix>{gw}:info     hash: gateway id -> JSON {id, url, connections, max_connections, boards, draining}
//	<prefix>{gw}:exp      sorted set: gateway id, score = expiry (Unix ms)
//
// A leaderboard's keys share its hash tag {B}, and the gateway keys the tag
// {gw}, so every script touches one Redis Cluster slot. Times come from the
// Redis server (TIME inside the scripts): gateways' clocks need not agree.
// Expired entries are removed by whoever reads or writes the leaderboard
// next (Segments and AddSegments sweep), which also bumps the counter and
// publishes the change, so a fan-out learns of a dead gateway's segments
// going away the next time it looks. Pub/sub is a hint (a subscriber that
// reconnects may miss messages): the counter is the truth, and
// SegmentVersions reads many of them in one round trip for polling.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Breaker guards calls to Redis (bus.Breaker implements it).
type Breaker interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// Options configure a Registry.
type Options struct {
	// Prefix goes before every key and channel (default "lb:"); tests use a
	// prefix of their own.
	Prefix string
	// TTL is how long an entry lives without a heartbeat (default 30 s).
	// Members heartbeat every TTL/3 by default.
	TTL time.Duration
	// Breaker, when set, wraps every call to Redis.
	Breaker Breaker
}

// Registry reads and writes both registries. It is safe for concurrent use.
type Registry struct {
	rdb redis.UniversalClient
	o   Options

	mu     sync.Mutex
	picked map[string]pickCount // gateway id -> picks since its last heartbeat seen
}

type pickCount struct {
	expires int64 // the heartbeat the picks were made against
	n       int
}

// Errors.
var (
	ErrNoGateway = errors.New("registry: no live gateway with room")
	ErrBadID     = errors.New("registry: id empty, too long, or with '|' or braces")
)

// New returns a registry over rdb.
func New(rdb redis.UniversalClient, o Options) *Registry {
	if o.Prefix == "" {
		o.Prefix = "lb:"
	}
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	return &Registry{rdb: rdb, o: o, picked: map[string]pickCount{}}
}

// TTL is how long an entry lives without a heartbeat.
func (r *Registry) TTL() time.Duration { return r.o.TTL }

func (r *Registry) segKey(board string) string { return r.o.Prefix + "reg:{" + board + "}:seg" }
func (r *Registry) verKey(board string) string { return r.o.Prefix + "reg:{" + board + "}:ver" }
func (r *Registry) channel() string            { return r.o.Prefix + "reg:changes" }
func (r *Registry) infoKey() string            { return r.o.Prefix + "{gw}:info" }
func (r *Registry) expKey() string             { return r.o.Prefix + "{gw}:exp" }

func (r *Registry) do(ctx context.Context, fn func(context.Context) error) error {
	if r.o.Breaker != nil {
		return r.o.Breaker.Do(ctx, fn)
	}
	return fn(ctx)
}

func validID(s string) bool {
	return s != "" && len(s) <= 256 && !strings.ContainsAny(s, "|{}")
}

// nowLua sets `now` to the Redis server's clock in Unix milliseconds.
const nowLua = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// changedLua bumps the version and publishes the leaderboard. The counter
// lives a week past its last change, long after any cache of it.
const changedLua = `local function changed()
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 604800000)
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
`

// KEYS: seg, ver. ARGV: ttl ms, channel, board, members...
// Returns the number of pairs that were new.
var addScript = redis.NewScript(nowLua + changedLua + `
local exp = now + tonumber(ARGV[1])
local added = 0
for i = 4, #ARGV do
  added = added + redis.call('ZADD', KEYS[1], exp, ARGV[i])
end
local swept = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if added > 0 or swept > 0 then changed() end
-- The set expires with its last pair: expired pairs are only swept when
-- someone reads or writes the leaderboard again, which after a gateway's
-- crash on a leaderboard that ended may never happen.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return added`)

// KEYS: seg, ver. ARGV: unused, channel, board, members...
var removeScript = redis.NewScript(changedLua + `
local removed = 0
for i = 4, #ARGV do
  removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
end
if removed > 0 then changed() end
return removed`)

// KEYS: seg, ver. ARGV: unused, channel, board. Returns {version, members...}.
var segmentsScript = redis.NewScript(nowLua + changedLua + `
if redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) > 0 then changed() end
local out = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(out, 1, tonumber(redis.call('GET', KEYS[2]) or '0'))
return out`)

// AddSegments registers that gateway has viewers of segments of board, for
// one TTL. Adding a pair that exists only extends it.
func (r *Registry) AddSegments(ctx context.Context, gateway, board string, segments ...string) error {
	return r.segmentsCall(ctx, addScript, gateway, board, segments)
}

// RemoveSegments unregisters pairs at once (their expiry would do it later).
func (r *Registry) RemoveSegments(ctx context.Context, gateway, board string, segments ...string) error {
	return r.segmentsCall(ctx, removeScript, gateway, board, segments)
}

func (r *Registry) segmentsCall(ctx context.Context, s *redis.Script, gateway, board string, segments []string) error {
	if !validID(gateway) || !validID(board) {
		return ErrBadID
	}
	if len(segments) == 0 {
		return nil
	}
	args := make([]any, 0, 3+len(segments))
	args = append(args, r.o.TTL.Milliseconds(), r.channel(), board)
	for _, seg := range segments {
		args = append(args, gateway+"|"+seg)
	}
	return r.do(ctx, func(ctx context.Context) error {
		return s.Run(ctx, r.rdb, []string{r.segKey(board), r.verKey(board)}, args...).Err()
	})
}

// Segments is what Registry.Segments read.
type Segments struct {
	// Version is the leaderboard's change counter: equal versions, equal
	// sets (0 before any registration).
	Version int64
	// Keys are the segments with viewers on at least one live gateway,
	// sorted, each once.
	Keys []string
	// Gateways counts the gateways watching each segment.
	Gateways map[string]int
}

// Segments returns the segments of board that have viewers anywhere,
// sweeping expired registrations first.
func (r *Registry) Segments(ctx context.Context, board string) (Segments, error) {
	if !validID(board) {
		return Segments{}, ErrBadID
	}
	var raw []any
	err := r.do(ctx, func(ctx context.Context) error {
		var err error
		raw, err = segmentsScript.Run(ctx, r.rdb, []string{r.segKey(board), r.verKey(board)}, 0, r.channel(), board).Slice()
		return err
	})
	if err != nil {
		return Segments{}, err
	}
	out := Segments{Gateways: map[string]int{}}
	if len(raw) > 0 {
		out.Version, _ = raw[0].(int64)
	}
	for _, m := range raw[min(1, len(raw)):] {
		s, _ := m.(string)
		_, seg, ok := strings.Cut(s, "|")
		if !ok {
			continue
		}
		if out.Gateways[seg] == 0 {
			out.Keys = append(out.Keys, seg)
		}
		out.Gateways[seg]++
	}
	slices.Sort(out.Keys)
	return out, nil
}

// SegmentVersions reads the change counters of boards in one round trip (0
// for a board never registered), so that a fan-out can poll many
// leaderboards cheaply and read Segments only for those that changed. A
// counter does not move when registrations merely expire until someone
// sweeps them (Segments or AddSegments on that board).
func (r *Registry) SegmentVersions(ctx context.Context, boards ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(boards))
	err := r.do(ctx, func(ctx context.Context) error {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(boards))
		for i, b := range boards {
			cmds[i] = pipe.Get(ctx, r.verKey(b))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, b := range boards {
			v, err := cmds[i].Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			out[b] = v
		}
		return nil
	})
	return out, err
}

// Changes calls fn with the leaderboard id of every change published, until
// ctx ends (it then returns nil) or the subscription fails. Messages can be
// lost across a reconnection: treat them as hints and poll
// SegmentVersions as well.
func (r *Registry) Changes(ctx context.Context, fn func(board string)) error {
	ps := r.rdb.Subscribe(ctx, r.channel())
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return errors.New("registry: subscription closed")
			}
			fn(m.Payload)
		}
	}
}

// Gateway is one gateway as the router sees it.
type Gateway struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"` // advertised WebSocket base URL
	Connections    int      `json:"connections"`
	MaxConnections int      `json:"max_connections"` // 0: no limit
	Boards         []string `json:"boards"`          // leaderboards it serves viewers of
	Draining       bool     `json:"draining"`        // shutting down: no new viewers
	// ExpiresAt is when the entry expires without another heartbeat (set by
	// Gateways; ignored by Heartbeat).
	ExpiresAt time.Time `json:"-"`
}

// KEYS: info, exp. ARGV: id, json, ttl ms.
var heartbeatScript = redis.NewScript(nowLua + `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return now + tonumber(ARGV[3])`)

// KEYS: info, exp. Returns {id, expiry, json, ...} of the live gateways.
var gatewaysScript = redis.NewScript(nowLua + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
  redis.call('HDEL', KEYS[1], unpack(dead))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
local live = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  local info = redis.call('HGET', KEYS[1], live[i])
  if info then
    table.insert(out, live[i]); table.insert(out, live[i+1]); table.insert(out, info)
  end
end
return out`)

// Heartbeat registers or refreshes a gateway for one TTL.
func (r *Registry) Heartbeat(ctx context.Context, g Gateway) error {
	if !validID(g.ID) {
		return ErrBadID
	}
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return r.do(ctx, func(ctx context.Context) error {
		return heartbeatScript.Run(ctx, r.rdb, []string{r.infoKey(), r.expKey()}, g.ID, b, r.o.TTL.Milliseconds()).Err()
	})
}

// Deregister removes a gateway at once.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	return r.do(ctx, func(ctx context.Context) error {
		pipe := r.rdb.TxPipeline()
		pipe.HDel(ctx, r.infoKey(), id)
		pipe.ZRem(ctx, r.expKey(), id)
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Gateways lists the live gateways, by id.
func (r *Registry) Gateways(ctx context.Context) ([]Gateway, error) {
	var raw []any
	err := r.do(ctx, func(ctx context.Context) error {
		var err error
		raw, err = gatewaysScript.Run(ctx, r.rdb, []string{r.infoKey(), r.expKey()}).Slice()
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Gateway
	for i := 0; i+2 < len(raw); i += 3 {
		js, _ := raw[i+2].(string)
		var g Gateway
		if err := json.Unmarshal([]byte(js), &g); err != nil {
			continue
		}
		exp, _ := raw[i+1].(string)
		ms, _ := strconv.ParseFloat(exp, 64)
		g.ExpiresAt = time.UnixMilli(int64(ms))
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Gateway) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Pick chooses the gateway for a new viewer of board: among live gateways
// that are not draining and have room, one that already serves board if
// there is any (its frames already flow there), else any; the least loaded
// of those; ties broken at random. Load is the connection count of the last
// heartbeat plus what this Registry picked for that gateway since, so that
// a burst of viewers between two heartbeats spreads out instead of all going
// to the one that looked emptiest.
func (r *Registry) Pick(ctx context.Context, board string) (Gateway, error) {
	gws, err := r.Gateways(ctx)
	if err != nil {
		return Gateway{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	load := func(g *Gateway) int {
		if p, ok := r.picked[g.ID]; ok && p.expires == g.ExpiresAt.UnixMilli() {
			return g.Connections + p.n
		}
		return g.Connections
	}
	var open, serving []*Gateway
	for i := range gws {
		g := &gws[i]
		if g.Draining || (g.MaxConnections > 0 && load(g) >= g.MaxConnections) {
			continue
		}
		open = append(open, g)
		if slices.Contains(g.Boards, board) {
			serving = append(serving, g)
		}
	}
	pool := serving
	if len(pool) == 0 {
		pool = open
	}
	if len(pool) == 0 {
		return Gateway{}, ErrNoGateway
	}
	var best *Gateway
	ties := 0
	for _, g := range pool {
		switch {
		case best == nil || load(g) < load(best):
			best, ties = g, 1
		case load(g) == load(best):
			ties++
			if rand.IntN(ties) == 0 { // reservoir sampling: each tie equally likely
				best = g
			}
		}
	}
	p := r.picked[best.ID]
	if p.expires != best.ExpiresAt.UnixMilli() {
		p = pickCount{expires: best.ExpiresAt.UnixMilli()}
	}
	p.n++
	r.picked[best.ID] = p
	if len(r.picked) > 2*len(gws)+16 { // forget gateways that went away
		for id := range r.picked {
			if !slices.ContainsFunc(gws, func(g Gateway) bool { return g.ID == id }) {
				delete(r.picked, id)
			}
		}
	}
	return *best, nil
}

// Member is a gateway's side of both registries: it counts its viewers per
// (leaderboard, segment), writes a pair when its first viewer arrives and
// removes it when its last one leaves, and heartbeats the gateway and all
// its pairs.
type Member struct {
	r     *Registry
	conns func() int

	writeMu sync.Mutex // orders writes, so a heartbeat never re-adds a pair removed meanwhile

	mu       sync.Mutex
	info     Gateway
	segs     map[string]map[string]int // board -> segment -> viewers
	draining bool
}

// NewMember returns the member for gateway g (ID, URL, MaxConnections);
// conns reports its current connection count at each heartbeat.
func (r *Registry) NewMember(g Gateway, conns func() int) (*Member, error) {
	if !validID(g.ID) {
		return nil, ErrBadID
	}
	if conns == nil {
		conns = func() int { return 0 }
	}
	return &Member{r: r, conns: conns, info: g, segs: map[string]map[string]int{}}, nil
}

// Add counts one more viewer of segment of board; the first one registers
// the pair. On a Redis error the viewer is still counted, and the next
// heartbeat registers the pair.
func (m *Member) Add(ctx context.Context, board, segment string) error {
	if !validID(board) {
		return ErrBadID
	}
	m.mu.Lock()
	if m.segs[board] == nil {
		m.segs[board] = map[string]int{}
	}
	m.segs[board][segment]++
	first := m.segs[board][segment] == 1
	m.mu.Unlock()
	if !first {
		return nil
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	if !m.has(board, segment) {
		return nil // removed again meanwhile
	}
	return m.r.AddSegments(ctx, m.info.ID, board, segment)
}

// Remove counts one viewer less; the last one unregisters the pair (on a
// Redis error the pair expires after one TTL instead).
func (m *Member) Remove(ctx context.Context, board, segment string) error {
	m.mu.Lock()
	n, ok := m.segs[board][segment]
	if !ok {
		m.mu.Unlock()
		return nil
	}
	last := n <= 1
	if last {
		delete(m.segs[board], segment)
		if len(m.segs[board]) == 0 {
			delete(m.segs, board)
		}
	} else {
		m.segs[board][segment] = n - 1
	}
	m.mu.Unlock()
	if !last {
		return nil
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	if m.has(board, segment) {
		return nil // added again meanwhile
	}
	return m.r.RemoveSegments(ctx, m.info.ID, board, segment)
}

func (m *Member) has(board, segment string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.segs[board][segment] > 0
}

// SetDraining marks the gateway as shutting down (Pick skips it) from the
// next heartbeat on.
func (m *Member) SetDraining(d bool) {
	m.mu.Lock()
	m.draining = d
	m.mu.Unlock()
}

// Heartbeat refreshes the gateway's entry (connections, leaderboards
// served) and every pair it holds, for one TTL.
func (m *Member) Heartbeat(ctx context.Context) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	g := m.info
	g.Draining = m.draining
	g.Boards = make([]string, 0, len(m.segs))
	segs := make(map[string][]string, len(m.segs))
	for b, ss := range m.segs {
		g.Boards = append(g.Boards, b)
		for s := range ss {
			segs[b] = append(segs[b], s)
		}
	}
	m.mu.Unlock()
	slices.Sort(g.Boards)
	g.Connections = m.conns()
	var errs []error
	for b, ss := range segs {
		if err := m.r.AddSegments(ctx, g.ID, b, ss...); err != nil {
			errs = append(errs, fmt.Errorf("segments of %s: %w", b, err))
		}
	}
	if err := m.r.Heartbeat(ctx, g); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run heartbeats every interval (TTL/3 when 0) until ctx ends, then leaves
// (removes the gateway and its pairs). onErr, if set, is told each failed
// heartbeat.
func (m *Member) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = m.r.o.TTL / 3
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := m.Heartbeat(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := m.Leave(lctx); err != nil && onErr != nil {
				onErr(err)
			}
			return
		case <-t.C:
		}
	}
}

// Leave removes the gateway and all its pairs from Redis now (the local
// counts stay, so a later Heartbeat registers them again).
func (m *Member) Leave(ctx context.Context) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	segs := make(map[string][]string, len(m.segs))
	for b, ss := range m.segs {
		for s := range ss {
			segs[b] = append(segs[b], s)
		}
	}
	m.mu.Unlock()
	var errs []error
	for b, ss := range segs {
		if err := m.r.RemoveSegments(ctx, m.info.ID, b, ss...); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.r.Deregister(ctx, m.info.ID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
