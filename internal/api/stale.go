package api

import (
	"errors"
	"net/http"
	"sync"

	"github.com/lbhq/leaderboard/internal/board"
)

// staleCache keeps the last body served for each ranking and participant
// read (by URL), so that while the ranking store is unreachable a read is
// answered with the last state this server saw, marked stale, rather than an
// error. Only a store that can be unreachable needs it (Options.StaleReads).
type staleCache struct {
	mu      sync.RWMutex
	entries map[string][]byte
	bytes   int // len of every key and body in entries
}

// staleMaxEntries and staleMaxBytes bound the cache: past either, it is
// dropped and refills. The entries alone do not bound it: a page of 1000
// entries is up to about 0.5 MB, and a client makes any number of distinct
// URLs with query parameters the read ignores.
const (
	staleMaxEntries = 10_000
	staleMaxBytes   = 64 << 20 // keys and bodies
)

func staleKey(r *http.Request) string { return r.URL.Path + "?" + r.URL.RawQuery }

func (c *staleCache) put(r *http.Request, body []byte) {
	k := staleKey(r)
	n := len(k) + len(body)
	if n > staleMaxBytes {
		return
	}
	b := append([]byte(nil), body...)
	c.mu.Lock()
	if old, ok := c.entries[k]; ok {
		c.bytes -= len(k) + len(old)
	}
	if c.entries == nil || len(c.entries) >= staleMaxEntries || c.bytes+n > staleMaxBytes {
		c.entries = make(map[string][]byte)
		c.bytes = 0
	}
	c.entries[k] = b
	c.bytes += n
	c.mu.Unlock()
}

func (c *staleCache) get(r *http.Request) []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.entries[staleKey(r)]
}

// writeStale answers a read that failed because the store is unreachable
// with the last body served for the same URL, marked stale; it reports
// whether it did.
func writeStale(w http.ResponseWriter, err error, body []byte) bool {
	var be *board.Error
	if body == nil || !errors.As(err, &be) || be.Code != board.CodeUnavailable {
		return false
	}
	w.Header().Set("X-Leaderboard-Stale", "true")
	w.Header().Set("Warning", `110 - "Response is Stale"`)
	writeJSONBytes(w, http.StatusOK, body)
	return true
}
