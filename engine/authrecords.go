package engine

import (
	"github.com/teamflow/teamflow/storage"
)

// watchedKeys are the tenant keys authentication reads on every request:
// sessions, accounts and the workspace record. A store opened with them as
// storage.Options.Watch lets Authenticate keep the decoded records of a
// session between requests (three point reads fewer per request) and know,
// with one atomic load, that none has been written since.
var watchedKeys = []storage.Key{storage.K("sess"), storage.K("user"), kWorkspace}

// WatchedKeys is storage.Options.Watch for the stores engine reads.
func WatchedKeys() []storage.Key { return watchedKeys }

// authRecords are one session's records as authentication read them. The
// records are shared by every request of the session: read-only.
type authRecords struct {
	watch storage.Watch
	stamp uint64
	sess  *sessionRecord
	user  *userRecord
	ws    *workspaceRecord
}

// sessionRecords returns the session's, its account's and the workspace's
// records, from the cache while the tenant's watch shows no write to any
// of them since they were read. Without a watch (a store opened without
// WatchedKeys) it reads them every time.
func (s *Service) sessionRecords(v storage.View, tenant, sessionID, userID string) (*authRecords, error) {
	w := v.Watch()
	ck := tenant + "/" + sessionID
	if w.Valid() {
		if r, ok := s.authRecords.get(ck); ok && r.watch.Same(w) && w.Current(r.stamp) && r.user.ID == userID {
			return r, nil
		}
	}
	r := &authRecords{watch: w}
	if w.Valid() {
		// Taken before reading: a write that lands while we read leaves
		// the entry stale at once rather than current with old records.
		r.stamp = w.Stamp()
	}
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
	if w.Valid() {
		s.authRecords.put(ck, r)
	}
	return r, nil
}
