package engine

import (
	"sync"

	"github.com/teamflow/teamflow/storage"
)

// cachedTask is a decoded task as the list reads keep it in Service.tasks,
// keyed by workspace and task ID under the version an index entry names.
// Only list reads use it, and they never change what they get.
type cachedTask struct {
	rec  storage.Record // Version and Stamp; Value is not kept
	task *taskRecord
}

// versionCache maps a key to the value decoded from one version of it. A
// record never changes under a version (every write bumps it), so an entry
// found under the version just read is exact and needs no invalidation.
type versionCache struct {
	mu  sync.Mutex
	max int
	m   map[string]versioned
}

type versioned struct {
	version uint64
	v       any
}

func newVersionCache(max int) *versionCache {
	return &versionCache{max: max, m: make(map[string]versioned, max)}
}

func (c *versionCache) get(key string, version uint64) (any, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || e.version != version {
		return nil, false
	}
	return e.v, true
}

func (c *versionCache) put(key string, version uint64, v any) {
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
	c.m[key] = versioned{version: version, v: v}
}

// mirroredTask decodes the task a project list entry mirrors, once per
// version: list reads and status facts share the decoded tasks.
func (s *Service) mirroredTask(tenant, id string, entry storage.Record) (*taskRecord, storage.Record, error) {
	rec := storage.Record{Version: entry.Version, Stamp: entry.Stamp}
	if c, ok := s.tasks.get(tenant+id, entry.Version); ok {
		return c.(cachedTask).task, c.(cachedTask).rec, nil
	}
	t := new(taskRecord)
	if err := jsonDecode(entry.Value, t); err != nil {
		return nil, rec, err
	}
	s.tasks.put(tenant+id, rec.Version, cachedTask{rec: rec, task: t})
	return t, rec, nil
}
