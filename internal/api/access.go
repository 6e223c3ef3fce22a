package api

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/ratelimit"
)

// access is who may call a route, and which limits it meets. Every entry of
// the route table (register) names one.
type access uint8

const (
	// accessOps: /healthz and /readyz. No token, no limit: probes must get
	// through an overload.
	accessOps access = iota
	// accessOpen: never needs a token, but counts against the per-IP limit and
	// --max-inflight (the web page, unknown routes, CORS preflights).
	accessOpen
	// accessRead: public reads; with --auth-reads any valid token.
	accessRead
	// accessUpgrade: WebSocket and SSE (accessRead, plus the per-IP upgrade
	// limit; a long-lived stream is not counted in --max-inflight).
	accessUpgrade
	// accessLongPoll: long polls (accessRead; not counted in --max-inflight).
	accessLongPoll
	// accessSubmit: score submissions: a participant token (its own
	// participant_id only, checked by the handler once the body is decoded),
	// a server token or an admin token.
	accessSubmit
	// accessAdmin: leaderboard management and removals: an admin token.
	accessAdmin
	// accessSelfOrAdmin: writes about one participant named by the path
	// parameter {pid}: that participant's own token, or an admin token.
	accessSelfOrAdmin
)

var accessNames = [...]string{"ops", "open", "read", "upgrade", "longpoll", "submit", "admin", "self-or-admin"}

func (acc access) String() string { return accessNames[acc] }

// read reports whether a route is a read (open unless --auth-reads).
func (acc access) read() bool {
	return acc == accessRead || acc == accessUpgrade || acc == accessLongPoll
}

// live reports whether a route holds its request open (not counted in
// --max-inflight).
func (acc access) live() bool { return acc == accessUpgrade || acc == accessLongPoll }

// Errors of the access checks.
const (
	codeUnauthenticated  = "unauthenticated"
	codePermissionDenied = "permission_denied"
)

// AccessOptions are authentication, per-IP limits, the concurrency cap and
// CORS. The zero value is open: no token needed, no limit, no CORS.
type AccessOptions struct {
	// Verifier checks bearer tokens; nil turns authentication off (every
	// route open: --auth=off).
	Verifier *auth.Verifier
	// Reads makes reads and live subscriptions need a valid token of any role
	// (--auth-reads).
	Reads bool
	// IPRate and IPBurst limit requests per client IP (0 rate: no limit).
	IPRate  float64
	IPBurst int
	// UpgradeRate and UpgradeBurst limit WebSocket upgrades and SSE streams
	// per client IP, on top of IPRate (0 rate: no limit).
	UpgradeRate  float64
	UpgradeBurst int
	// MaxInflight caps the requests being served at once (live streams
	// excepted); past it 503 unavailable with Retry-After (0: no cap).
	MaxInflight int
	// CORSOrigins are the origins browsers may call the API from: exact
	// origins such as https://example.com, or "*". Empty: no CORS headers.
	CORSOrigins []string
	// TrustedProxies are the addresses (load balancers, reverse proxies) whose
	// X-Forwarded-For is believed: for a request from one of them, the client
	// is the last address of that header that is not itself a trusted proxy.
	// Empty: the TCP peer is the client, whatever the headers say.
	TrustedProxies []netip.Prefix
	// Now is the clock of the rate limits (time.Now when nil).
	Now func() time.Time
}

// guard is the per-request access control, limits and CORS of an API.
type guard struct {
	opts     AccessOptions
	ip       *ratelimit.Limiter
	upgrade  *ratelimit.Limiter
	inflight atomic.Int64
	now      func() time.Time
	corsAny  bool
	cors     map[string]bool
}

func newGuard(o AccessOptions) *guard {
	g := &guard{opts: o, now: o.Now}
	if g.now == nil {
		g.now = time.Now
	}
	if o.IPRate > 0 {
		g.ip = ratelimit.New(o.IPRate, max(o.IPBurst, 1))
	}
	if o.UpgradeRate > 0 {
		g.upgrade = ratelimit.New(o.UpgradeRate, max(o.UpgradeBurst, 1))
	}
	for _, origin := range o.CORSOrigins {
		if origin == "*" {
			g.corsAny = true
			continue
		}
		if g.cors == nil {
			g.cors = map[string]bool{}
		}
		g.cors[strings.ToLower(strings.TrimRight(origin, "/"))] = true
	}
	return g
}

// sweep drops idle rate-limit buckets and expired cached tokens.
func (g *guard) sweep(now time.Time) {
	g.ip.Sweep(now)
	g.upgrade.Sweep(now)
	if g.opts.Verifier != nil {
		g.opts.Verifier.Sweep()
	}
}

// clientIP is the address the per-IP limits count a request against: the
// TCP peer, unless the peer is a trusted proxy (anyone can set
// X-Forwarded-For; only a proxy of the operator's is believed). Then the
// header is read from the right, the proxy nearest the server first, past
// every trusted proxy, to the first address that is not one: the addresses
// left of it were set by the client and prove nothing. An entry that is not
// an address ends the walk at the last trusted hop, so garbage in the header
// can neither escape the limits nor pin them on someone else.
func (g *guard) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(g.opts.TrustedProxies) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !g.trusted(peer) {
		return host
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			var hop string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				hop, list = list[j+1:], list[:j]
			} else {
				hop, list = list, ""
			}
			addr, err := parseHop(strings.TrimSpace(hop))
			if err != nil {
				return client.Unmap().String()
			}
			client = addr
			if !g.trusted(addr) {
				return addr.Unmap().String()
			}
		}
	}
	return client.Unmap().String() // every hop was a trusted proxy: the farthest one
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with a
// port ("203.0.113.7:41234", "[2001:db8::1]:41234"), as some load balancers
// write it. Read as garbage, such an entry stopped the walk at the proxy and
// put every client behind it under one limit, the proxy's.
func parseHop(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, err
		}
		a = ap.Addr()
	}
	return a, nil
}

func (g *guard) trusted(a netip.Addr) bool {
	// A prefix never contains an address with a zone: a link-local proxy's
	// peer address (fe80::1%eth0) would never be trusted.
	a = a.Unmap().WithZone("")
	for _, p := range g.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// bearer returns the request's token: "Authorization: Bearer <token>", or,
// for the live routes only (browsers cannot set headers on a WebSocket or an
// EventSource), the access_token query parameter.
func bearer(r *http.Request, acc access) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		if acc.live() {
			return r.URL.Query().Get("access_token")
		}
		return ""
	}
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return "\x00" // some other scheme: present, and never valid
}

// admit applies the limits, then the route's access rule. It writes the
// error and returns false when the request may not go on; when counted is
// true the request holds an in-flight slot, which guard.release gives back.
// For a submission, it leaves the verified claims in the route's writer (see
// submitter): the handler must go by what was checked here, not verify the
// token again later, when it may have expired. (The writer rather than the
// request's context: that cost a copy of the request and two more
// allocations per submission.)
func (a *API) admit(w http.ResponseWriter, r *http.Request, acc access) (ok, counted bool) {
	g := a.guard
	if acc == accessOps {
		return true, false
	}
	if g.opts.MaxInflight > 0 && !acc.live() {
		if g.inflight.Add(1) > int64(g.opts.MaxInflight) {
			g.inflight.Add(-1)
			a.fail(w, r, &board.Error{Code: board.CodeUnavailable, Message: "the server is serving too many requests at once; retry shortly", RetryAfter: time.Second})
			return false, false
		}
		counted = true
	}
	v := g.opts.Verifier
	var token string
	var claims auth.Claims
	verified := false
	if v != nil && acc != accessOpen {
		if token = bearer(r, acc); token != "" {
			claims, verified = v.Cached(token)
		}
	}
	// Game servers and admins whose token was verified before are not
	// limited per IP: many players' scores come from one server's address.
	if !(verified && claims.Trusted()) {
		if err := g.limit(r, acc); err != nil {
			a.fail(w, r, err)
			return false, counted
		}
	}
	if v == nil || acc == accessOpen || (!g.opts.Reads && acc.read()) {
		return true, counted
	}
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="leaderboard"`)
		a.fail(w, r, &board.Error{Code: codeUnauthenticated, Message: "this call needs a bearer token (header Authorization: Bearer TOKEN)"})
		return false, counted
	}
	if !verified {
		var err error
		if claims, err = v.Verify(token); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="leaderboard", error="invalid_token"`)
			a.fail(w, r, &board.Error{Code: codeUnauthenticated, Message: err.Error()})
			return false, counted
		}
	}
	if err := allowed(acc, claims, r); err != nil {
		a.fail(w, r, err)
		return false, counted
	}
	if sw, isRoute := w.(*statusWriter); acc == accessSubmit && isRoute {
		sw.claims, sw.verified = claims, true // only submissions ask for them
	}
	return true, counted
}

func (g *guard) release() { g.inflight.Add(-1) }

// limit takes a token from the client IP's buckets.
func (g *guard) limit(r *http.Request, acc access) error {
	if g.ip == nil && (g.upgrade == nil || acc != accessUpgrade) {
		return nil
	}
	now := g.now()
	ip := limitKey(g.clientIP(r))
	if ok, wait := g.ip.Allow(ratelimit.Key{A: ip}, now); !ok {
		return &board.Error{Code: board.CodeRateLimited, Message: "too many requests from " + ip + "; retry after Retry-After seconds", RetryAfter: wait}
	}
	if acc == accessUpgrade {
		if ok, wait := g.upgrade.Allow(ratelimit.Key{A: ip}, now); !ok {
			return &board.Error{Code: board.CodeRateLimited, Message: "too many live connections opened from " + ip + "; retry after Retry-After seconds", RetryAfter: wait}
		}
	}
	return nil
}

// limitKey is what the per-IP limits count a client address against: an
// IPv4 address, or the /64 of an IPv6 one (one host or home network is
// given a whole /64, and could otherwise rotate through its addresses and
// never meet a limit).
func limitKey(ip string) string {
	if !strings.Contains(ip, ":") {
		return ip // IPv4 as the client address gives it: no parse, no allocation per request
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// allowed is the route-level rule for a verified token.
func allowed(acc access, c auth.Claims, r *http.Request) error {
	switch acc {
	case accessRead, accessUpgrade, accessLongPoll:
		return nil // any role
	case accessSubmit:
		return nil // any role; a participant's ids are checked by the handler
	case accessAdmin:
		if c.Role == auth.Admin {
			return nil
		}
		return denied("this call needs an admin token; this one is a " + string(c.Role) + " token")
	case accessSelfOrAdmin:
		if c.Role == auth.Admin || (c.Role == auth.Participant && c.Subject == r.PathValue("pid")) {
			return nil
		}
		if c.Role == auth.Participant {
			return denied("a participant token may change only its own participant (" + c.Subject + ")")
		}
		return denied("this call needs the participant's own token or an admin token; this one is a " + string(c.Role) + " token")
	}
	return denied("no token may make this call")
}

func denied(msg string) error { return &board.Error{Code: codePermissionDenied, Message: msg} }

// submitter returns the participant a request may submit for, or "" when it
// may submit for anyone (server and admin tokens, or authentication off). It
// goes by the claims admit verified, which it left in w, the route's
// statusWriter: verifying the token again after the body has been read could
// fail (the token expired meanwhile), and a failure must not read as
// "anyone". Without them (a submission route registered without its
// statusWriter) it refuses.
func (a *API) submitter(w http.ResponseWriter) (string, error) {
	if a.guard.opts.Verifier == nil {
		return "", nil
	}
	sw, ok := w.(*statusWriter)
	if !ok || !sw.verified {
		return "", &board.Error{Code: codeUnauthenticated, Message: "this call needs a bearer token (header Authorization: Bearer TOKEN)"}
	}
	if sw.claims.Role != auth.Participant {
		return "", nil
	}
	return sw.claims.Subject, nil
}

// ownScore refuses a participant token's submission for someone else.
func ownScore(self, pid string) error {
	if self == "" || self == pid {
		return nil
	}
	return denied("a participant token may submit only its own scores (" + self + "), not " + strconv.Quote(pid) + "'s")
}

// ---- CORS ----

func (g *guard) corsEnabled() bool { return g.corsAny || g.cors != nil }

// corsOrigin returns the Access-Control-Allow-Origin value for origin, or "".
func (g *guard) corsOrigin(origin string) string {
	if origin == "" {
		return ""
	}
	if g.corsAny {
		return "*"
	}
	if g.cors[strings.ToLower(origin)] {
		return origin
	}
	return ""
}

const (
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, If-None-Match, Last-Event-ID"
	corsExpose  = "ETag, Retry-After, WWW-Authenticate"
)

// cors sets the CORS headers of a response, and answers preflight requests
// (OPTIONS with Access-Control-Request-Method) itself; it returns true when
// the request has been answered.
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	g := a.guard
	origin := r.Header.Get("Origin")
	allow := g.corsOrigin(origin)
	h := w.Header()
	if !g.corsAny && origin != "" {
		h.Add("Vary", "Origin")
	}
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !preflight {
		if allow != "" {
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Expose-Headers", corsExpose)
		}
		return false
	}
	ok, counted := a.admit(w, r, accessOpen)
	if counted {
		defer g.release()
	}
	if !ok {
		return true
	}
	if allow == "" {
		a.fail(w, r, denied("origin "+strconv.Quote(origin)+" may not call this API (--cors-origins)"))
		return true
	}
	h.Set("Access-Control-Allow-Origin", allow)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}
