package engine

import "sync"

// boundedCache is a map with a size cap that forgets an arbitrary tenth
// when full. Its two uses hold entries that are cheap to rebuild and go
// stale on their own (access tokens live 15 minutes), so recency tracking
// would cost more than the occasional rebuild.
type boundedCache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[string]V
}

func newBoundedCache[V any](max int) *boundedCache[V] {
	return &boundedCache[V]{max: max, m: make(map[string]V, max)}
}

func (c *boundedCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *boundedCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		n := c.max / 10
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[k] = v
}
