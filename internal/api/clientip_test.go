package api

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// Which address the per-IP limits count a request against, with and without trusted proxies.
func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.1/32")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies: the header is ignored", nil, "198.51.100.9:5000", []string{"203.0.113.7"}, "198.51.100.9"},
		{"an untrusted peer's header is ignored", proxies, "198.51.100.9:5000", []string{"203.0.113.7"}, "198.51.100.9"},
		{"a trusted peer without the header", proxies, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"a trusted peer names the client", proxies, "10.1.2.3:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"through two proxies", proxies, "10.1.2.3:5000", []string{"203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"addresses the client made up are left of the first untrusted one", proxies, "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"several header lines are one list", proxies, "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.7", "10.9.9.9"}, "203.0.113.7"},
		{"garbage ends the walk at the last trusted hop", proxies, "10.1.2.3:5000", []string{"203.0.113.7, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"an empty entry is garbage too", proxies, "10.1.2.3:5000", []string{"203.0.113.7,"}, "10.1.2.3"},
		{"every hop trusted: the farthest", proxies, "10.1.2.3:5000", []string{"10.0.0.1, 10.9.9.9"}, "10.0.0.1"},
		{"IPv6 proxy and client", proxies, "[2001:db8::1]:5000", []string{"2001:db8:ffff::1, 2a00::5"}, "2a00::5"},
		{"a single trusted host", proxies, "192.0.2.1:5000", []string{"203.0.113.8"}, "203.0.113.8"},
		{"its neighbour is not trusted", proxies, "192.0.2.2:5000", []string{"203.0.113.8"}, "192.0.2.2"},
		{"an IPv4-mapped client is written as IPv4", proxies, "10.1.2.3:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"a port after the address, as some load balancers write it", proxies, "10.1.2.3:5000", []string{"203.0.113.7:41234"}, "203.0.113.7"},
		{"a bracketed IPv6 address with a port", proxies, "10.1.2.3:5000", []string{"[2a00::5]:41234"}, "2a00::5"},
		{"a trusted hop with a port is passed like one without", proxies, "10.1.2.3:5000", []string{"203.0.113.7, 10.9.9.9:80"}, "203.0.113.7"},
		{"a port alone is garbage", proxies, "10.1.2.3:5000", []string{":41234"}, "10.1.2.3"},
		{"a link-local proxy, its zone in the peer address", []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, "[fe80::1%eth0]:5000", []string{"203.0.113.7"}, "203.0.113.7"},
	}
	for _, c := range cases {
		g := newGuard(AccessOptions{TrustedProxies: c.trusted})
		r := httptest.NewRequest("GET", "/v1/leaderboards", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := g.clientIP(r); got != c.want {
			t.Errorf("%s: client %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzClientIP: any X-Forwarded-For from a trusted proxy gives an address, and one that is either
// the peer or written in the header; nothing panics.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "1.1.1.1, 203.0.113.7, 10.9.9.9", "203.0.113.7:80, [2001:db8::1]:443", "bogus", ",,,", " ", "2001:db8::1, ::ffff:1.2.3.4", "10.0.0.1,10.0.0.2"} {
		f.Add(s)
	}
	g := newGuard(AccessOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}})
	f.Fuzz(func(t *testing.T, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.1.2.3:5000"
		r.Header.Set("X-Forwarded-For", xff)
		got := g.clientIP(r)
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client %q is not an address", got)
		}
		if got != "10.1.2.3" && !containsAddr(xff, a) {
			t.Fatalf("client %q is neither the peer nor in %q", got, xff)
		}
	})
}

func containsAddr(list string, a netip.Addr) bool {
	for _, hop := range strings.Split(list, ",") {
		hop = strings.TrimSpace(hop)
		if b, err := netip.ParseAddr(hop); err == nil && b.Unmap() == a {
			return true
		}
		if b, err := netip.ParseAddrPort(hop); err == nil && b.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
