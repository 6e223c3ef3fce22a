package api

import (
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestStaleCacheBoundsTheBytesItHolds: every ranking and participant read is
// kept for stale answers, keyed by its URL, and any query parameter makes a
// new URL. A client reading one 1000-entry page (about 0.5 MB with long ids and
// display names) under 10,000 junk parameters made the server hold gigabytes;
// the cache holds at most staleMaxBytes whatever the reads.
func TestStaleCacheBoundsTheBytesItHolds(t *testing.T) {
	var c staleCache
	body := make([]byte, 256<<10)
	for i := 0; i < staleMaxBytes/len(body)+50; i++ {
		c.put(httptest.NewRequest("GET", "/v1/leaderboards/b/rankings?limit=1000&x="+strconv.Itoa(i), nil), body)
	}
	held := 0
	for k, v := range c.entries {
		held += len(k) + len(v)
	}
	if held > staleMaxBytes {
		t.Fatalf("the stale cache holds %d bytes in %d entries, more than %d", held, len(c.entries), staleMaxBytes)
	}
	// It still serves what it holds.
	r := httptest.NewRequest("GET", "/v1/leaderboards/b/rankings?limit=1000&x=small", nil)
	c.put(r, []byte(`{}`))
	if string(c.get(r)) != `{}` {
		t.Fatal("the last body put is not served")
	}
}
