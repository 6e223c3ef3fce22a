package auth

import (
	"sync"
	"time"
)

// Verifier checks tokens with one secret and remembers the ones it verified
// until they expire, so that a client sending the same token on every request
// pays for the signature once (a cache hit is a map lookup; a full parse is a
// few microseconds and a dozen allocations). Only valid tokens are cached, by
// their whole text, signature included: a different or tampered token is a
// different key. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	now    func() time.Time
	max    int

	mu    sync.RWMutex
	cache map[string]Claims
}

// DefaultCacheSize is the number of verified tokens a Verifier remembers.
const DefaultCacheSize = 8192

// NewVerifier returns a verifier for secret. now is time.Now when nil;
// cacheSize <= 0 means DefaultCacheSize.
func NewVerifier(secret []byte, now func() time.Time, cacheSize int) (*Verifier, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Verifier{secret: append([]byte(nil), secret...), now: now, max: cacheSize, cache: make(map[string]Claims)}, nil
}

// Verify returns the claims of a valid token, or one of Parse's errors.
func (v *Verifier) Verify(token string) (Claims, error) {
	now := v.now()
	if c, ok := v.cached(token, now); ok {
		return c, nil
	}
	c, err := parseAt(v.secret, token, now)
	if err != nil {
		return Claims{}, err
	}
	v.mu.Lock()
	if len(v.cache) >= v.max {
		for k := range v.cache { // full: drop an arbitrary entry
			delete(v.cache, k)
			break
		}
	}
	v.cache[token] = c
	v.mu.Unlock()
	return c, nil
}

// Cached returns the claims of token if it was verified before and has not
// expired since; it never parses.
func (v *Verifier) Cached(token string) (Claims, bool) { return v.cached(token, v.now()) }

func (v *Verifier) cached(token string, now time.Time) (Claims, bool) {
	v.mu.RLock()
	c, ok := v.cache[token]
	v.mu.RUnlock()
	if !ok || !now.Before(c.ExpiresAt.Add(Leeway)) {
		return Claims{}, false
	}
	return c, true
}

// Sweep forgets the tokens that have expired.
func (v *Verifier) Sweep() {
	now := v.now()
	v.mu.Lock()
	for k, c := range v.cache {
		if !now.Before(c.ExpiresAt.Add(Leeway)) {
			delete(v.cache, k)
		}
	}
	v.mu.Unlock()
}

// Len is the number of cached tokens.
func (v *Verifier) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.cache)
}
