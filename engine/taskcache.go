package engine

import (
	"sync"

	"github.com/teamflow/teamflow/storage"
)

// taskCache keeps decoded task records by workspace, ID and version. A
// record never changes under a version (every write bumps it, and index
// entries carry the version they were written with), so an entry found
// under the version an index entry names is exactly the stored record, with
// no invalidation needed. Only list reads use it, and they never mutate
// what they get.
type taskCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedTask
}

type cachedTask struct {
	rec  storage.Record // Version and Stamp; Value is not kept
	task *taskRecord
}

func newTaskCache(max int) *taskCache {
	return &taskCache{max: max, m: make(map[string]cachedTask, max)}
}

func (c *taskCache) get(tenant, id string, version uint64) (*taskRecord, storage.Record, bool) {
	c.mu.Lock()
	e, ok := c.m[tenant+id]
	c.mu.Unlock()
	if !ok || e.rec.Version != version {
		return nil, storage.Record{}, false
	}
	return e.task, e.rec, true
}

func (c *taskCache) put(tenant, id string, rec storage.Record, t *taskRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Drop an arbitrary tenth: cheap, and the hot set comes back on the
		// next read.
		n := c.max / 10
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[tenant+id] = cachedTask{rec: storage.Record{Version: rec.Version, Stamp: rec.Stamp}, task: t}
}
