package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

const (
	// cacheTTL bounds how long a credential stays valid without a bcrypt
	// check. Reload clears the cache, so removals take effect immediately
	// when the operator reloads; the TTL only matters for password changes
	// made without a reload, which nothing can observe anyway.
	cacheTTL = 5 * time.Minute
	// cacheMax bounds memory; a deployment has a handful of API users, so
	// this is far above the working set.
	cacheMax = 1024
)

// cacheKey is a digest of "user:password". The plain password is never
// stored. The digest is an HMAC under a per-cache random key rather than a
// bare SHA-256 so that a memory dump does not hand out fast-to-brute-force
// digests of passwords that are otherwise protected by bcrypt.
type cacheKey [sha256.Size]byte

// credCache remembers recently successful credentials until their expiry.
type credCache struct {
	secret []byte
	now    func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]time.Time // key -> expiry
}

func newCredCache() *credCache {
	secret := make([]byte, 32)
	// crypto/rand.Read never returns an error (it crashes the program
	// instead) since Go 1.24.
	_, _ = rand.Read(secret)
	return &credCache{
		secret:  secret,
		now:     time.Now,
		entries: make(map[cacheKey]time.Time),
	}
}

// key derives the cache key. A Basic user name cannot contain ':' (the
// header is split on the first one), so "user:password" is unambiguous.
func (c *credCache) key(user, password string) cacheKey {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(user))
	m.Write([]byte{':'})
	m.Write([]byte(password))
	var k cacheKey
	m.Sum(k[:0])
	return k
}

func (c *credCache) get(k cacheKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if !ok {
		return false
	}
	if !c.now().Before(exp) {
		delete(c.entries, k)
		return false
	}
	return true
}

func (c *credCache) put(k cacheKey) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= cacheMax {
		c.evictLocked(now)
	}
	c.entries[k] = now.Add(cacheTTL)
}

// evictLocked makes room for one entry: first by dropping expired entries,
// and if none have expired, by dropping an arbitrary one. Losing an entry
// only costs one extra bcrypt check, so precise LRU is not worth the code.
func (c *credCache) evictLocked(now time.Time) {
	for k, exp := range c.entries {
		if !now.Before(exp) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < cacheMax {
		return
	}
	for k := range c.entries {
		delete(c.entries, k)
		return
	}
}
