// Package auth is the service's access control: HS256 bearer tokens (JWT,
// through github.com/golang-jwt/jwt/v5) carrying a role and a subject, the
// server's secret (given, or created once in the data directory), and a
// Verifier that caches verified tokens until they expire.
//
// Roles: participant (may submit only its own participant_id), server (a game
// server: may submit for anyone), admin (everything). Every token must carry
// an expiry ("exp"); a token whose signature, algorithm, expiry, role or
// subject is wrong is refused as a whole.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token may do.
type Role string

// The roles of API.md's "Access".
const (
	Participant Role = "participant"
	Server      Role = "server"
	Admin       Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Participant, Server, Admin:
		return r, nil
	}
	return "", fmt.Errorf("role must be participant, server or admin, not %q", s)
}

// Claims are what a verified token says.
type Claims struct {
	Role      Role
	Subject   string    // the participant id for participant tokens; a free name for the others
	ExpiresAt time.Time // always set: tokens without expiry are refused
}

// Trusted reports whether the token is a server's or an admin's.
func (c Claims) Trusted() bool { return c.Role == Server || c.Role == Admin }

const (
	// Leeway is the clock skew tolerated on "exp" and "nbf".
	Leeway = 10 * time.Second
	// MaxTokenBytes bounds the tokens parsed at all: a longer one is refused
	// before any decoding (real tokens are about 200 bytes).
	MaxTokenBytes = 4096
	// MinSecretBytes is the shortest secret accepted: HS256 keys shorter than
	// the hash are weak.
	MinSecretBytes = 32
	// maxSubjectBytes bounds "sub" (participant ids are at most 128).
	maxSubjectBytes = 128
)

// Errors of Parse. All of them mean 401 unauthenticated.
var (
	ErrMalformed = errors.New("the bearer token is malformed")
	ErrSignature = errors.New("the bearer token's signature is not valid (it was signed with another secret or algorithm)")
	ErrExpired   = errors.New("the bearer token has expired")
	ErrClaims    = errors.New("the bearer token's claims are not valid")
)

// tokenClaims is the JSON of a token's payload.
type tokenClaims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// CheckSecret refuses secrets too short to be safe.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("the auth secret must be at least %d bytes, not %d", MinSecretBytes, len(secret))
	}
	return nil
}

// Mint returns a token for role and sub, valid for ttl from now, signed with
// secret. A participant token needs sub, a valid participant id.
func Mint(secret []byte, role Role, sub string, ttl time.Duration) (string, error) {
	return mintAt(secret, role, sub, ttl, time.Now())
}

func mintAt(secret []byte, role Role, sub string, ttl time.Duration, now time.Time) (string, error) {
	if err := CheckSecret(secret); err != nil {
		return "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", errors.New("ttl must be positive: every token expires")
	}
	if err := checkSubject(role, sub); err != nil {
		return "", err
	}
	c := tokenClaims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

func checkSubject(role Role, sub string) error {
	if role == Participant && sub == "" {
		return errors.New("a participant token needs a subject: the participant id")
	}
	if sub != "" && !validID(sub) {
		return fmt.Errorf("subject %q is not a valid id (1 to %d characters of A-Z a-z 0-9 _ . : -)", sub, maxSubjectBytes)
	}
	return nil
}

// validID is API.md's identifier rule (kept here so that auth depends on no
// other package of the service).
func validID(s string) bool {
	if s == "" || len(s) > maxSubjectBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// Parse verifies token with secret at the current time: HS256 only (the
// header's "alg" must be HS256; "none" and every other algorithm are refused),
// a valid signature, an "exp" not past (with Leeway), a known role, and for
// participant tokens a valid participant id as "sub".
func Parse(secret []byte, token string) (Claims, error) {
	return parseAt(secret, token, time.Now())
}

var hs256Only = []string{jwt.SigningMethodHS256.Alg()}

func parseAt(secret []byte, token string, now time.Time) (Claims, error) {
	if token == "" || len(token) > MaxTokenBytes || strings.Count(token, ".") != 2 {
		return Claims{}, ErrMalformed
	}
	var c tokenClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods(hs256Only),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrExpired
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, ErrSignature
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, ErrMalformed
	default: // a required claim missing, "nbf" in the future, ...
		return Claims{}, ErrClaims
	}
	if _, err := ParseRole(string(c.Role)); err != nil {
		return Claims{}, ErrClaims
	}
	if checkSubject(c.Role, c.Subject) != nil {
		return Claims{}, ErrClaims
	}
	return Claims{Role: c.Role, Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time}, nil
}
