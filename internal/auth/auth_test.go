package auth

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	t0     = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

func mustMint(t *testing.T, role Role, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := mintAt(secret, role, sub, ttl, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign signs arbitrary claims with any method and key, for the tokens Mint
// would never make.
func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMintParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		role Role
		sub  string
	}{{Participant, "p456"}, {Server, "game-1"}, {Server, ""}, {Admin, ""}} {
		tok := mustMint(t, tc.role, tc.sub, time.Hour)
		c, err := parseAt(secret, tok, t0.Add(59*time.Minute))
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.role, tc.sub, err)
		}
		if c.Role != tc.role || c.Subject != tc.sub || !c.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("claims %+v", c)
		}
	}
}

func TestMintRefuses(t *testing.T) {
	for name, f := range map[string]func() error{
		"short secret":         func() error { _, err := mintAt([]byte("short"), Admin, "", time.Hour, t0); return err },
		"unknown role":         func() error { _, err := mintAt(secret, "root", "", time.Hour, t0); return err },
		"no expiry":            func() error { _, err := mintAt(secret, Admin, "", 0, t0); return err },
		"participant, no sub":  func() error { _, err := mintAt(secret, Participant, "", time.Hour, t0); return err },
		"participant, bad sub": func() error { _, err := mintAt(secret, Participant, "a b", time.Hour, t0); return err },
	} {
		if f() == nil {
			t.Errorf("%s: minted", name)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	exp := t0.Add(time.Hour).Unix()
	valid := mustMint(t, Participant, "p1", time.Hour)
	parts := strings.Split(valid, ".")
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"role":"admin","sub":"p1","exp":` + strconv.FormatInt(exp, 10) + `}`))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not-a-token", ErrMalformed},
		{"too long", strings.Repeat("a", MaxTokenBytes) + ".b.c", ErrMalformed},
		{"bad base64", "a.b.c", ErrMalformed},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), jwt.MapClaims{"role": "admin", "exp": exp}), ErrSignature},
		{"tampered payload", parts[0] + "." + otherPayload + "." + parts[2], ErrSignature},
		{"alg none", noneHeader + "." + parts[1] + ".", ErrSignature},
		{"alg none signed", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"role": "admin", "exp": exp}), ErrSignature},
		{"HS384", sign(t, jwt.SigningMethodHS384, secret, jwt.MapClaims{"role": "admin", "exp": exp}), ErrSignature},
		{"HS512", sign(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"role": "admin", "exp": exp}), ErrSignature},
		{"expired", mustMint(t, Admin, "", time.Minute), ErrExpired},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "admin"}), ErrClaims},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "admin", "exp": exp, "nbf": t0.Add(30 * time.Minute).Unix()}), ErrClaims},
		{"no role", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp}), ErrClaims},
		{"unknown role", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "root", "exp": exp}), ErrClaims},
		{"role not a string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": 1, "exp": exp}), ErrMalformed},
		{"participant without sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "participant", "exp": exp}), ErrClaims},
		{"participant with bad sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "participant", "sub": "a/b", "exp": exp}), ErrClaims},
	}
	now := t0.Add(2 * time.Minute) // the one-minute token is past its expiry and the leeway
	for _, tc := range cases {
		if _, err := parseAt(secret, tc.token, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestLeeway(t *testing.T) {
	tok := mustMint(t, Admin, "", time.Minute)
	if _, err := parseAt(secret, tok, t0.Add(time.Minute+Leeway/2)); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	if _, err := parseAt(secret, tok, t0.Add(time.Minute+Leeway+time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("past the leeway: %v", err)
	}
}

func TestVerifierCaches(t *testing.T) {
	now := t0
	v, err := NewVerifier(secret, func() time.Time { return now }, 2)
	if err != nil {
		t.Fatal(err)
	}
	tok := mustMint(t, Server, "gs", time.Minute)
	if _, ok := v.Cached(tok); ok {
		t.Fatal("cached before verification")
	}
	if c, err := v.Verify(tok); err != nil || c.Role != Server {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if c, ok := v.Cached(tok); !ok || c.Subject != "gs" {
		t.Fatal("not cached after verification")
	}
	if _, err := v.Verify(tok[:len(tok)-2] + "xx"); err == nil {
		t.Fatal("a tampered token verified")
	}
	if v.Len() != 1 {
		t.Fatalf("%d cached: an invalid token was cached", v.Len())
	}
	// Bounded: a third token evicts one.
	for _, sub := range []string{"a", "b", "c"} {
		if _, err := v.Verify(mustMint(t, Participant, sub, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if v.Len() != 2 {
		t.Fatalf("%d cached, max 2", v.Len())
	}
	// Expiry is honoured from the cache too.
	v2, _ := NewVerifier(secret, func() time.Time { return now }, 0)
	if _, err := v2.Verify(tok); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Minute + Leeway + time.Second)
	if _, ok := v2.Cached(tok); ok {
		t.Fatal("an expired token served from the cache")
	}
	if _, err := v2.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}
	v2.Sweep()
	if v2.Len() != 0 {
		t.Fatal("sweep kept an expired token")
	}
	if _, err := NewVerifier([]byte("short"), nil, 0); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	s, created, err := LoadOrCreateSecret(dir)
	if err != nil || !created || len(s) != 64 {
		t.Fatalf("create: %q %v %v", s, created, err)
	}
	fi, err := os.Stat(SecretPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	s2, created, err := LoadOrCreateSecret(dir)
	if err != nil || created || string(s2) != string(s) {
		t.Fatalf("reload: %q %v %v", s2, created, err)
	}
	if err := os.WriteFile(SecretPath(dir), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSecret(dir); err == nil {
		t.Fatal("a short secret file was accepted")
	}
	// A data directory that cannot be created: a clear error.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, err := LoadOrCreateSecret(filepath.Join(file, "sub")); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("data dir under a file: %v", err)
	}
}
