// Package segsnap keeps, in Redis, the latest snapshot of every live segment
// (a window: top-N, a participant, an around-window) as the fan-out computed
// it, so that a gateway in another process can start a new viewer from the
// exact state its update frames continue from.
//
// The fan-out stores a segment's snapshot at version V before it produces
// the update frame that leads to V. A gateway starts watching the frames
// first, then reads the snapshot (version S): every update with a version
// above S is then still to come, and the first one it forwards is the one
// whose prev_version is S.
//
// Keys: one hash per leaderboard, "<prefix>{<board>}:segsnap" (hash-tagged
// with the leaderboard like the ranking store's keys), field = segment key
// (fanout.Spec.Key), value = decimal version, "\n", snapshot body.
package segsnap

import (
	"context"
	"errors"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Store reads and writes segment snapshots.
type Store struct {
	c      goredis.UniversalClient
	prefix string
}

// New returns a store over c; prefix starts every key (e.g. "lb:").
func New(c goredis.UniversalClient, prefix string) *Store { return &Store{c: c, prefix: prefix} }

func (s *Store) key(board string) string { return s.prefix + "{" + board + "}:segsnap" }

// putScript stores the snapshot only when it is newer than the stored one, so
// a late writer never moves a segment back.
var putScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local nl = string.find(cur, '\n', 1, true)
  if nl and tonumber(string.sub(cur, 1, nl - 1)) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
return 1`)

// Put stores segment's snapshot body at version, unless a newer one is stored.
func (s *Store) Put(ctx context.Context, board, segment string, version uint64, body []byte) error {
	return putScript.Run(ctx, s.c, []string{s.key(board)}, segment, strconv.FormatUint(version, 10), body).Err()
}

// ErrNotFound: no snapshot of that segment is stored (yet).
var ErrNotFound = errors.New("segment snapshot not found")

// Get returns a segment's latest snapshot.
func (s *Store) Get(ctx context.Context, board, segment string) (version uint64, body []byte, err error) {
	v, err := s.c.HGet(ctx, s.key(board), segment).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil, ErrNotFound
	}
	if err != nil {
		return 0, nil, err
	}
	head, rest, ok := strings.Cut(v, "\n")
	version, perr := strconv.ParseUint(head, 10, 64)
	if !ok || perr != nil {
		return 0, nil, errors.New("segsnap: malformed snapshot of " + board + " " + segment)
	}
	return version, []byte(rest), nil
}

// Delete forgets a segment's snapshot (nobody watches it any more).
func (s *Store) Delete(ctx context.Context, board, segment string) error {
	return s.c.HDel(ctx, s.key(board), segment).Err()
}
