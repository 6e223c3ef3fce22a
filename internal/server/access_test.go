package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lbhq/leaderboard/internal/auth"
)

const testSecret = "server-test-secret-0123456789abcdef"

func token(t *testing.T, role auth.Role, sub string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), role, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call makes one request with an optional bearer token and returns the
// status, the error code (if any) and the body.
func call(t *testing.T, c *http.Client, method, url, tok, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if res.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" {
			t.Fatalf("%s %s: %d with a body that is not the contract's error: %s", method, url, res.StatusCode, b)
		}
	}
	return res.StatusCode, e.Error.Code, b
}

// TestProtectedRoutes: every protected route × {no token, bad signature,
// expired, wrong role, another participant's id} through the real server:
// the exact status and code, and nothing changed (every leaderboard, its
// version and participants, byte for byte). Then the right token works.
func TestProtectedRoutes(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth, cfg.AuthSecret, cfg.SubmitRate = "on", testSecret, 0
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	admin, server := token(t, auth.Admin, ""), token(t, auth.Server, "gs-1")
	if code, _, b := call(t, nil, "POST", base+"/v1/leaderboards", admin, `{"leaderboard_id":"t","name":"T"}`); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, p := range []string{"p1", "p2"} {
		if code, _, b := call(t, nil, "POST", base+"/v1/leaderboards/t/scores", server, `{"participant_id":"`+p+`","score":10}`); code != 200 {
			t.Fatalf("seed %s: %d %s", p, code, b)
		}
	}
	state := func() string {
		_, _, b := call(t, nil, "GET", base+"/v1/leaderboards", "", "")
		_, _, r := call(t, nil, "GET", base+"/v1/leaderboards/t/rankings", "", "")
		return string(b) + string(r)
	}
	before := state()
	if !strings.Contains(before, `"version":2`) {
		t.Fatalf("seeded state: %s", before)
	}

	otherSecret, _ := auth.Mint([]byte("another-secret-another-secret-0123"), auth.Admin, "", time.Hour)
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"role": "admin", "exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	// A role no route knows: refused as an invalid token (401), since every
	// known role may submit.
	unknownRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": "viewer", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testSecret))
	p2 := token(t, auth.Participant, "p2")

	type tc struct {
		name, tok string
		status    int
		code      string
	}
	unauth := func(name, tok string) tc { return tc{name, tok, 401, "unauthenticated"} }
	forbidden := func(name, tok string) tc { return tc{name, tok, 403, "permission_denied"} }
	common := []tc{unauth("no token", ""), unauth("bad signature", otherSecret), unauth("expired", expired)}
	adminCases := append(common[:3:3], forbidden("wrong role: server", server), forbidden("another participant's id", p2))
	submitCases := append(common[:3:3], unauth("wrong role: unknown", unknownRole), forbidden("another participant's id", p2))

	routes := []struct {
		method, path, body string
		cases              []tc
		okToken            string
		okStatus           int
	}{
		{"POST", "/v1/leaderboards", `{"leaderboard_id":"new","name":"N"}`, adminCases, admin, 201},
		{"PATCH", "/v1/leaderboards/t", `{"status":"paused","name":"Renamed"}`, adminCases, admin, 200},
		{"DELETE", "/v1/leaderboards/t/participants/p1", "", adminCases, admin, 204},
		{"POST", "/v1/leaderboards/t/scores", `{"participant_id":"p1","score":99}`, submitCases, token(t, auth.Participant, "p1"), 200},
		{"POST", "/v1/leaderboards/t/scores:batch", `{"scores":[{"participant_id":"p1","score":98},{"participant_id":"p2","score":97}]}`, submitCases, server, 200},
		{"PUT", "/v1/participants/p1", `{"display_name":"Not p1"}`, adminCases, token(t, auth.Participant, "p1"), 200},
		{"POST", "/v1/leaderboards/t/finalize", "", adminCases, admin, 200},
	}
	// The refusals first, every one against the same state.
	for _, rt := range routes {
		for _, c := range rt.cases {
			status, code, body := call(t, nil, rt.method, base+rt.path, c.tok, rt.body)
			if status != c.status || code != c.code {
				t.Errorf("%s %s, %s: %d %s, want %d %s (%s)", rt.method, rt.path, c.name, status, code, c.status, c.code, body)
			}
			if after := state(); after != before {
				t.Fatalf("%s %s, %s changed the state:\n%s\n%s", rt.method, rt.path, c.name, before, after)
			}
		}
	}
	// A participant may not delete itself either: removals are the admin's.
	if status, code, _ := call(t, nil, "DELETE", base+"/v1/leaderboards/t/participants/p1", token(t, auth.Participant, "p1"), ""); status != 403 || code != "permission_denied" {
		t.Errorf("participant deleting itself: %d %s", status, code)
	}
	// Then the right tokens, in an order that keeps each call meaningful.
	if status, _, b := call(t, nil, "PATCH", base+"/v1/leaderboards/t", admin, `{"status":"active"}`); status != 200 {
		t.Fatalf("reactivate: %d %s", status, b)
	}
	for _, rt := range routes {
		if rt.method == "PATCH" {
			continue
		}
		if status, _, b := call(t, nil, rt.method, base+rt.path, rt.okToken, rt.body); status != rt.okStatus {
			t.Errorf("%s %s with the right token: %d, want %d (%s)", rt.method, rt.path, status, rt.okStatus, b)
		}
	}
	// Reads are public.
	if status, _, _ := call(t, nil, "GET", base+"/v1/leaderboards/t/rankings", "", ""); status != 200 {
		t.Errorf("public read: %d", status)
	}
}

// loopbackClient sends its requests from a given loopback source address.
func loopbackClient(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestIPFlood: through the real server, a flood from 127.0.0.2 is limited
// (429 + Retry-After) while 127.0.0.3 is served normally.
func TestIPFlood(t *testing.T) {
	cfg := testConfig(t)
	cfg.IPRate, cfg.IPBurst = 1, 5
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	url := "http://" + addr + "/v1/leaderboards"
	flooder, other := loopbackClient("127.0.0.2"), loopbackClient("127.0.0.3")
	limited := 0
	for i := 0; i < 40; i++ {
		req, _ := http.NewRequest("GET", url, nil)
		res, err := flooder.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == 429 {
			limited++
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		} else if res.StatusCode != 200 {
			t.Fatalf("flood: %d", res.StatusCode)
		}
	}
	if limited == 0 {
		t.Fatal("a flood of 40 requests at 1/s (burst 5) was never limited")
	}
	for i := 0; i < 5; i++ {
		if status, _, b := call(t, other, "GET", url, "", ""); status != 200 {
			t.Fatalf("the other IP during the flood: %d %s", status, b)
		}
	}
}

// TestTrustedProxies: behind a trusted proxy (here 127.0.0.2), each client
// named in X-Forwarded-For has its own limit; from an untrusted address the
// header is ignored, so rotating it does not escape the limit.
func TestTrustedProxies(t *testing.T) {
	cfg := testConfig(t)
	cfg.IPRate, cfg.IPBurst = 0.01, 5 // no token refills during the test
	cfg.TrustedProxies = "127.0.0.2, 10.0.0.0/8"
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	url := "http://" + addr + "/v1/leaderboards"
	get := func(c *http.Client, xff string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Forwarded-For", xff)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	proxy, untrusted := loopbackClient("127.0.0.2"), loopbackClient("127.0.0.3")
	for i := range 5 {
		if status := get(proxy, "203.0.113.7"); status != 200 {
			t.Fatalf("request %d of 203.0.113.7 within its burst: %d", i+1, status)
		}
	}
	if status := get(proxy, "203.0.113.7"); status != 429 {
		t.Fatalf("203.0.113.7 past its burst: %d, want 429", status)
	}
	if status := get(proxy, "198.51.100.1, 203.0.113.8"); status != 200 {
		t.Fatalf("another client behind the proxy: %d, want 200", status)
	}
	for i := range 5 {
		get(untrusted, "203.0.113."+strconv.Itoa(100+i))
	}
	if status := get(untrusted, "203.0.113.200"); status != 429 {
		t.Fatalf("an untrusted peer rotating X-Forwarded-For: %d, want 429", status)
	}
}

// TestTrustedProxyPrefixInIPv4MappedForm: a proxy prefix written in the
// IPv4-mapped form some dual-stack tools log (::ffff:10.0.0.0/104) trusts the
// IPv4 peers it names, as an address in that form does; the limits compare
// peers unmapped, so a prefix left mapped would never match.
func TestTrustedProxyPrefixInIPv4MappedForm(t *testing.T) {
	peer := netip.MustParseAddr("10.1.2.3")
	for _, list := range []string{"::ffff:10.0.0.0/104", "::ffff:10.1.2.3/128", "::ffff:10.1.2.3", "10.0.0.0/8"} {
		prefixes, err := parseTrustedProxies(list)
		if err != nil || len(prefixes) != 1 {
			t.Fatalf("%s: %v %v", list, prefixes, err)
		}
		if !prefixes[0].Contains(peer) {
			t.Errorf("%s (parsed as %v) does not trust the peer %v", list, prefixes[0], peer)
		}
	}
	prefixes, _ := parseTrustedProxies("::ffff:10.0.0.0/104")
	if prefixes[0].Contains(netip.MustParseAddr("11.0.0.1")) {
		t.Errorf("::ffff:10.0.0.0/104 (parsed as %v) trusts 11.0.0.1", prefixes[0])
	}
}

// syncBuffer is a log destination the server and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startLogged(t *testing.T, cfg Config, log *syncBuffer) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(log, nil)), func(a string) { addrc <- a }) }()
	select {
	case a := <-addrc:
		return a, func() { cancel(); <-done }
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	}
	return "", nil
}

// TestFirstStartCreatesSecret: with auth on and no secret, the first start
// creates <data-dir>/auth-secret (0600) and prints a working admin token and
// a curl line; the next start reuses the secret and prints no token.
func TestFirstStartCreatesSecret(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth, cfg.DataDir = "on", filepath.Join(t.TempDir(), "data")
	var log, console syncBuffer
	cfg.Console = &console
	addr, stop := startLogged(t, cfg, &log)
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "auth-secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	// The directory holding the secret is the server's own (docs/API.md, "Secret"),
	// whichever of the database and the secret created it.
	if di, err := os.Stat(cfg.DataDir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v, want mode 0700", di.Mode().Perm(), err)
	}
	m := regexp.MustCompile(`TOKEN=(\S+)`).FindStringSubmatch(console.String())
	if m == nil || !strings.Contains(console.String(), "curl ") || !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), m[1]) {
		t.Fatalf("no admin token printed:\nconsole: %s\nlog: %s", console.String(), log.String())
	}
	tok := m[1]
	if status, _, b := call(t, nil, "POST", "http://"+addr+"/v1/leaderboards", tok, `{"leaderboard_id":"a","name":"a"}`); status != 201 {
		t.Fatalf("the printed token: %d %s", status, b)
	}
	if status, code, _ := call(t, nil, "POST", "http://"+addr+"/v1/leaderboards", "", `{"leaderboard_id":"b","name":"b"}`); status != 401 || code != "unauthenticated" {
		t.Fatalf("without a token: %d %s", status, code)
	}
	stop()

	var log2, console2 syncBuffer
	cfg.Console = &console2
	addr, stop = startLogged(t, cfg, &log2)
	defer stop()
	if strings.Contains(console2.String(), "TOKEN=") || strings.Contains(log2.String(), "token=") {
		t.Fatalf("a second start printed a token: %s %s", console2.String(), log2.String())
	}
	if status, _, b := call(t, nil, "POST", "http://"+addr+"/v1/leaderboards", tok, `{"leaderboard_id":"c","name":"c"}`); status != 201 {
		t.Fatalf("the first token after a restart: %d %s", status, b)
	}
}

// TestAccessStartupErrors: mistakes in the access flags stop the start with
// a clear error; --auth=off logs a loud warning.
func TestAccessStartupErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"data dir under a file": {func(c *Config) { c.Auth, c.DataDir = "on", filepath.Join(file, "data") }, "data directory"},
		"short secret":          {func(c *Config) { c.Auth, c.AuthSecret = "on", "short" }, "at least 32 bytes"},
		"bad --auth":            {func(c *Config) { c.Auth = "maybe" }, "--auth must be on or off"},
		"half TLS":              {func(c *Config) { c.TLSCert = "cert.pem" }, "--tls-cert and --tls-key"},
		"missing TLS files":     {func(c *Config) { c.TLSCert, c.TLSKey = "/nonexistent/c", "/nonexistent/k" }, "--tls-cert"},
		"bad CORS origin":       {func(c *Config) { c.CORSOrigins = "example.com" }, "--cors-origins"},
		"bad trusted proxy":     {func(c *Config) { c.TrustedProxies = "10.0.0.0/8, lb.internal" }, "--trusted-proxies"},
		"bad trusted prefix":    {func(c *Config) { c.TrustedProxies = "10.0.0.0/33" }, "--trusted-proxies"},
	} {
		cfg := testConfig(t)
		tc.edit(&cfg)
		err := Run(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	var log syncBuffer
	_, stop := startLogged(t, testConfig(t), &log)
	stop()
	if !strings.Contains(log.String(), "AUTHENTICATION IS OFF") || !strings.Contains(log.String(), "level=WARN") {
		t.Fatalf("--auth=off without a warning: %s", log.String())
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leaderboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: with --tls-cert and --tls-key the server speaks HTTPS (HTTP/2 and
// HTTP/1.1, SSE included), and a plain HTTP request is refused.
func TestTLS(t *testing.T) {
	cfg := testConfig(t)
	certFile, keyFile, pool := selfSigned(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	addr, cancel, done := start(t, cfg)
	defer func() { cancel(); <-done }()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	res, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("https: %d %v", res.StatusCode, res.TLS)
	}
	if status, _, b := call(t, c, "POST", "https://"+addr+"/v1/leaderboards", "", `{"leaderboard_id":"s","name":"s"}`); status != 201 {
		t.Fatalf("create over https: %d %s", status, b)
	}
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/v1/leaderboards/s/stream?kind=top&limit=3", nil)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(res.Body, buf, 15)
	stop()
	res.Body.Close()
	if !strings.Contains(string(buf[:n]), "event: snapshot") {
		t.Fatalf("SSE over https: %q", buf[:n])
	}
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
}
