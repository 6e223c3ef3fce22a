package api

import "sync"

// topCache keeps the last encoded top-N response of each leaderboard and N.
// Viewers poll the top of a board far more often than it changes between two
// polls at the same version, and a cached body skips both the read of the
// ranking and the encoding. An entry is only served while the leaderboard's
// version still equals the version it was encoded at, so it is never stale.
type topCache struct {
	mu      sync.RWMutex
	entries map[topKey]*topEntry
}

type topKey struct {
	board string
	limit int
}

type topEntry struct {
	version uint64
	names   uint64 // the display names' generation it was encoded with
	body    []byte // immutable once stored
	// The response's header values, made once when the body is stored and
	// shared (read-only) by every response that serves it: building them per
	// read was most of a cache hit's allocations.
	epoch  string
	etag   []string
	length []string
}

// topCacheMaxLimit and topCacheMaxEntries bound the cache: only small pages are
// kept, and past the entry cap the whole cache is dropped and refills.
const (
	topCacheMaxLimit   = 100
	topCacheMaxEntries = 4096
)

// get returns the entry encoded at version with the names' generation, in
// epoch, or nil.
func (c *topCache) get(board string, limit int, epoch string, version, names uint64) *topEntry {
	c.mu.RLock()
	e := c.entries[topKey{board, limit}]
	c.mu.RUnlock()
	if e == nil || e.version != version || e.names != names || e.epoch != epoch {
		return nil
	}
	return e
}

func (c *topCache) put(board string, limit int, epoch string, version, names uint64, body []byte) {
	e := &topEntry{version: version, names: names, body: body, epoch: epoch, etag: []string{etag(epoch, version)}, length: contentLength(len(body))}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= topCacheMaxEntries {
		c.entries = make(map[topKey]*topEntry)
	}
	k := topKey{board, limit}
	if old := c.entries[k]; old != nil && (old.version > version || old.version == version && old.names > names) {
		return // a concurrent reader already stored a newer page
	}
	c.entries[k] = e
}

// latest returns the last body stored for a top-N read, whatever its version:
// what a read serves, marked stale, while the ranking store is unreachable.
func (c *topCache) latest(board string, limit int) []byte {
	c.mu.RLock()
	e := c.entries[topKey{board, limit}]
	c.mu.RUnlock()
	if e == nil {
		return nil
	}
	return e.body
}
