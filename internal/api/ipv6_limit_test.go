package api_test

import (
	"fmt"
	"testing"

	"github.com/lbhq/leaderboard/internal/api"
)

// TestIPv6LimitCountsTheSlash64: one IPv6 host (an ordinary home or cloud
// /64) holds 2^64 addresses; counting each /128 separately lets it rotate
// source addresses and never meet the per-IP limit.
func TestIPv6LimitCountsTheSlash64(t *testing.T) {
	g := newGuarded(t, api.AccessOptions{IPRate: 1, IPBurst: 3}, nil)
	ok := 0
	for i := 1; i <= 50; i++ {
		if g.do(fmt.Sprintf("[2001:db8:1:2::%x]", i), "GET", "/v1/leaderboards", "").Code == 200 {
			ok++
		}
	}
	if ok > 3 {
		t.Fatalf("one /64 got %d requests through a per-IP burst of 3", ok)
	}
	// Another /64 is another client.
	if w := g.do("[2001:db8:1:3::1]", "GET", "/v1/leaderboards", ""); w.Code != 200 {
		t.Fatalf("another /64: %d", w.Code)
	}
}
