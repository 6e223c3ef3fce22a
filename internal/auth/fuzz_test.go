package auth

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse: any text is either a valid token with a known role (and, for a
// participant, a valid id) or one of the four errors; nothing panics.
func FuzzParse(f *testing.F) {
	now := t0.Add(time.Minute)
	for _, role := range []Role{Participant, Server, Admin} {
		tok, err := mintAt(secret, role, "p1", time.Hour, t0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
	}
	for _, s := range []string{
		"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYWRtaW4iLCJleHAiOjF9.x",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjk5OTk5OTk5OTk5LCJyb2xlIjpbXX0.AAAA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := parseAt(secret, token, now)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrClaims) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if _, err := ParseRole(string(c.Role)); err != nil || (c.Role == Participant && !validID(c.Subject)) || c.ExpiresAt.IsZero() {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
