package engine

import "sync"

// verifiedTokens remembers access tokens whose signature checked out, so a
// client's next request skips the Ed25519 verification (about a third of a
// small request's CPU). Only the signature is cached: expiry, the session and
// the account are checked on every request.
type verifiedTokens struct {
	mu  sync.Mutex
	max int
	m   map[string]accessClaims
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{max: max, m: make(map[string]accessClaims, max)}
}

func (c *verifiedTokens) get(tok string) (accessClaims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.m[tok]
	return cl, ok
}

func (c *verifiedTokens) put(tok string, cl accessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Evict an arbitrary tenth; tokens live 15 minutes, so a full cache
		// is mostly stale entries anyway.
		n := c.max / 10
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[tok] = cl
}
