package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamflow/teamflow/httpapi"
)

// presenceInterval is how often a cluster member sends its presence table
// even when nothing changed; a peer silent for three intervals is taken to
// be gone and its viewers forgotten.
const presenceInterval = 2 * time.Second

// presenceRelay shares who is viewing what between the members of a
// cluster over their transport, never through the log: each node sends its
// own clients' table (on a change, and every presenceInterval) and hands
// the others' to its API. The raft node starts before the API exists, so
// what arrives before attach is dropped; the next interval resends it.
type presenceRelay struct {
	api   atomic.Pointer[httpapi.Server]
	log   *slog.Logger
	mu    sync.Mutex
	heard map[uint64]time.Time
}

func newPresenceRelay(log *slog.Logger) *presenceRelay {
	return &presenceRelay{log: log, heard: map[uint64]time.Time{}}
}

// receive is the cluster transport's gossip receiver.
func (r *presenceRelay) receive(from uint64, body []byte) {
	api, table, ok := decodeGossip[httpapi.PresenceTable](&r.api, r.log, from, body)
	if !ok {
		return
	}
	r.mu.Lock()
	r.heard[from] = time.Now()
	r.mu.Unlock()
	api.PeerPresence(from, table)
}

// run sends this node's table with send until ctx ends, and forgets peers
// that fell silent.
func (r *presenceRelay) run(ctx context.Context, api *httpapi.Server, send func([]byte)) {
	r.api.Store(api)
	t := time.NewTicker(presenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-api.PresenceChanged():
		case <-t.C:
			r.mu.Lock()
			for id, at := range r.heard {
				if time.Since(at) > 3*presenceInterval {
					delete(r.heard, id)
					api.PeerPresence(id, nil)
				}
			}
			r.mu.Unlock()
		}
		body, err := json.Marshal(api.LocalPresence())
		if err != nil {
			r.log.Error("encode presence", "err", err)
			continue
		}
		send(body)
	}
}
