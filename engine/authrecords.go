package engine

import (
	"github.com/teamflow/teamflow/storage"
)

// watchedKeys are the tenant keys read on nearly every request and rarely
// written: sessions, accounts and the workspace record (authentication)
// and project records (every project and task route). A store opened with
// them as storage.Options.Watch lets the engine keep what it decoded from
// them between requests and know, with one atomic load, that none has been
// written since (watchedCache).
var watchedKeys = []storage.Key{storage.K("sess"), storage.K("user"), kWorkspace, storage.K("proj")}

// WatchedKeys is storage.Options.Watch for the stores engine reads.
func WatchedKeys() []storage.Key { return watchedKeys }

// watchedCache keeps values decoded from watched keys while their tenant's
// watch shows no write to any watched key since they were read. Values are
// shared by every reader: read-only.
type watchedCache[T any] struct {
	c *boundedCache[watchedEntry[T]]
}

type watchedEntry[T any] struct {
	watch storage.Watch
	stamp uint64
	v     T
}

func newWatchedCache[T any](max int) watchedCache[T] {
	return watchedCache[T]{c: newBoundedCache[watchedEntry[T]](max)}
}

// get returns key's value from the cache while it is current, or load's
// (cached when it succeeds). Without a watch (a store opened without
// WatchedKeys, a snapshot's view) it loads every time.
func (wc watchedCache[T]) get(v storage.View, key string, load func() (T, error)) (T, error) {
	w := v.Watch()
	if !w.Valid() {
		return load()
	}
	if e, ok := wc.c.get(key); ok && e.watch.Same(w) && w.Current(e.stamp) {
		return e.v, nil
	}
	// Taken before reading: a write that lands while we read leaves the
	// entry stale at once rather than current with old records.
	stamp := w.Stamp()
	val, err := load()
	if err != nil {
		return val, err
	}
	wc.c.put(key, watchedEntry[T]{watch: w, stamp: stamp, v: val})
	return val, nil
}

// authRecords are one session's records as authentication read them.
type authRecords struct {
	sess *sessionRecord
	user *userRecord
	ws   *workspaceRecord
}

// sessionRecords returns the session's, its account's and the workspace's
// records (three point reads fewer per request while they are cached).
func (s *Service) sessionRecords(v storage.View, tenant, sessionID, userID string) (*authRecords, error) {
	return s.authRecords.get(v, tenant+"/"+sessionID+"/"+userID, func() (*authRecords, error) {
		r := &authRecords{}
		var err error
		if r.sess, _, err = getRecord[sessionRecord](v, kSession(sessionID)); err != nil {
			return nil, err
		}
		if r.user, _, err = getRecord[userRecord](v, kUser(userID)); err != nil {
			return nil, err
		}
		if r.ws, _, err = getRecord[workspaceRecord](v, kWorkspace); err != nil {
			return nil, err
		}
		return r, nil
	})
}

// cachedProject is a project record as projectRecord read it.
type cachedProject struct {
	pr  *projectRecord
	rec storage.Record
}

// projectRecord reads project id, from the cache while no project (nor
// any other watched record) of the tenant was written since. The caller
// gets its own copy of the record's top level, as from getRecord.
func (s *Service) projectRecord(v storage.View, id string) (*projectRecord, storage.Record, error) {
	c, err := s.projects.get(v, string(v.Prefix())+id, func() (cachedProject, error) {
		pr, rec, err := getRecord[projectRecord](v, kProject(id))
		return cachedProject{pr: pr, rec: rec}, err
	})
	if err != nil {
		return nil, c.rec, err
	}
	cp := *c.pr
	return &cp, c.rec, nil
}
