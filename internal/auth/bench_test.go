package auth

import (
	"testing"
	"time"
)

// BenchmarkVerify: a token's first verification (HMAC-SHA256 and JSON) and
// every later one (a cache hit).
//
//	go test ./internal/auth -run '^$' -bench . -benchmem
func BenchmarkVerify(b *testing.B) {
	tok, _ := Mint(secret, Participant, "p456", time.Hour)
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Parse(secret, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v, _ := NewVerifier(secret, nil, 0)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
