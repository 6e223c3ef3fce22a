package server

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
)

// FirstTokenTTL is how long the admin token printed when the secret is
// created stays valid; `leaderboard token` mints others.
const FirstTokenTTL = 24 * time.Hour

// accessFlags registers the flags of authentication, per-IP limits, the
// concurrency cap, CORS and TLS.
func (c *Config) accessFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Auth, "auth", "on", "on: writes need a bearer token (roles participant, server, admin); off: no authentication at all, for local experiments only")
	fs.StringVar(&c.AuthSecret, "auth-secret", "", "HS256 secret tokens are signed with (at least 32 bytes); empty: the one in <data-dir>/auth-secret, created on first start")
	fs.BoolVar(&c.AuthReads, "auth-reads", false, "reads and live subscriptions need a valid token of any role too (default: they are public)")
	fs.Float64Var(&c.IPRate, "ip-rate", 200, "requests per second per client IP (0 = unlimited); over it: 429 + Retry-After; server and admin tokens are exempt")
	fs.IntVar(&c.IPBurst, "ip-burst", 400, "burst of requests allowed per client IP")
	fs.Float64Var(&c.UpgradeRate, "upgrade-rate", 10, "WebSocket upgrades and SSE streams opened per second per client IP (0 = unlimited); over it: 429 + Retry-After")
	fs.IntVar(&c.UpgradeBurst, "upgrade-burst", 50, "burst of WebSocket upgrades and SSE streams per client IP")
	fs.IntVar(&c.MaxInflight, "max-inflight", 2048, "requests served at once (live streams excepted; 0 = no cap); past it: 503 unavailable + Retry-After")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins browsers may call the API from (https://example.com, or *); empty: no CORS headers")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the load balancers in front of the server: for requests from them, the per-IP limits count the client named in X-Forwarded-For; empty: the TCP peer, headers ignored")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: with --tls-key, serve HTTPS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
}

// access is what Run needs from the access configuration.
type access struct {
	options    api.AccessOptions
	tls        *tls.Config
	authOff    bool
	secretPath string // set when the secret was created by this start
	firstToken string
}

// setupAccess checks the access flags, loads (or creates) the secret and the
// TLS certificate: every mistake is a start-up error.
func setupAccess(cfg Config) (access, error) {
	var acc access
	acc.options = api.AccessOptions{
		Reads:  cfg.AuthReads,
		IPRate: cfg.IPRate, IPBurst: cfg.IPBurst,
		UpgradeRate: cfg.UpgradeRate, UpgradeBurst: cfg.UpgradeBurst,
		MaxInflight: cfg.MaxInflight,
		CORSOrigins: splitList(cfg.CORSOrigins),
	}
	proxies, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return acc, err
	}
	acc.options.TrustedProxies = proxies
	if err := checkCORSOrigins(acc.options.CORSOrigins); err != nil {
		return acc, err
	}
	switch strings.ToLower(cfg.Auth) {
	case "off", "false", "0":
		acc.authOff = true
	case "on", "true", "1", "":
		secret := []byte(cfg.AuthSecret)
		if cfg.AuthSecret == "" {
			if cfg.DataDir == "" {
				return acc, errors.New("--auth=on needs --auth-secret or a --data-dir to keep its secret in")
			}
			var created bool
			var err error
			if secret, created, err = auth.LoadOrCreateSecret(cfg.DataDir); err != nil {
				return acc, fmt.Errorf("auth secret: %w", err)
			}
			if created {
				acc.secretPath = auth.SecretPath(cfg.DataDir)
				if acc.firstToken, err = auth.Mint(secret, auth.Admin, "first-admin", FirstTokenTTL); err != nil {
					return acc, err
				}
			}
		}
		v, err := auth.NewVerifier(secret, nil, 0)
		if err != nil {
			return acc, fmt.Errorf("--auth-secret: %w", err)
		}
		acc.options.Verifier = v
	default:
		return acc, fmt.Errorf("--auth must be on or off, not %q", cfg.Auth)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return acc, errors.New("--tls-cert and --tls-key go together: give both, or neither")
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return acc, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		acc.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return acc, nil
}

// checkCORSOrigins refuses a --cors-origins entry that is not an origin.
func checkCORSOrigins(origins []string) error {
	for _, o := range origins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("--cors-origins: %q is not an origin such as https://example.com (or *)", o)
		}
	}
	return nil
}

// announce logs how access is set up: a loud warning with --auth=off, and on
// the first start the new admin token with a curl line to try it.
func (acc access) announce(cfg Config, log *slog.Logger, base string) {
	if acc.authOff {
		log.Warn("AUTHENTICATION IS OFF (--auth=off): anyone who can reach " + base + " may create, change and delete leaderboards and submit any score. Use it only for local experiments.")
	}
	if acc.firstToken == "" {
		return
	}
	curl := `curl -s -H "Authorization: Bearer $TOKEN" ` + base + `/v1/leaderboards -d '{"leaderboard_id":"first","name":"First"}'`
	log.Warn("created the auth secret; here is an admin token, valid "+FirstTokenTTL.String()+" (mint more with: leaderboard token --role admin --data-dir "+cfg.DataDir+")",
		"secret_file", acc.secretPath, "token", acc.firstToken, "try", "TOKEN="+acc.firstToken+"; "+curl)
	if cfg.Console != nil {
		fmt.Fprintf(cfg.Console, "\nCreated the auth secret %s. An admin token, valid %s:\n\n  TOKEN=%s\n  %s\n\nMint more with: leaderboard token --role admin|server|participant [--sub ID] --data-dir %s\n\n",
			acc.secretPath, FirstTokenTTL, acc.firstToken, curl, cfg.DataDir)
	}
}

// ReadSecret returns the secret `leaderboard token` signs with: secret when
// given, else the one in dataDir.
func ReadSecret(secret, dataDir string) ([]byte, error) {
	if secret != "" {
		return []byte(secret), nil
	}
	if dataDir == "" {
		return nil, errors.New("give --secret, or --data-dir of a server that created its secret")
	}
	s, err := auth.ReadSecret(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no secret: --secret is not given and %s does not exist (start the server once, or pass --secret)", auth.SecretPath(dataDir))
	}
	return s, err
}

// parseTrustedProxies reads --trusted-proxies: addresses (a single host) and
// CIDR prefixes.
func parseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(list) {
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR prefix such as 10.0.0.0/8", item)
			}
			p = p.Masked()
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// The limits compare peers unmapped (as for a single address
				// below): ::ffff:10.0.0.0/104 left mapped would never match.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither an IP address nor a CIDR prefix", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
