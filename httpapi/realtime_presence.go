package httpapi

import (
	"maps"
	"slices"
)

// Presence across the nodes of a cluster. Each node keeps its own clients'
// presence in memory (never in the log); cmd sends this node's table to the
// other nodes over the cluster transport and hands theirs to PeerPresence.
// A client then sees every viewer of a topic, wherever it is connected.

// PresenceTable is who is viewing what on one node: workspace → topic →
// the distinct user IDs viewing it, sorted.
type PresenceTable map[string]map[string][]string

// LocalPresence is the table of this node's own connections.
func (s *Server) LocalPresence() PresenceTable {
	out := PresenceTable{}
	s.rt.do(func() {
		for tenant, sp := range s.rt.spaces {
			for topic, viewers := range sp.presence {
				if len(viewers) == 0 {
					continue
				}
				if out[tenant] == nil {
					out[tenant] = map[string][]string{}
				}
				out[tenant][topic] = viewerList(viewers, nil)
			}
		}
	})
	return out
}

// PeerPresence replaces what node reported its clients view (nil: the node
// is gone) and tells this node's clients of every topic whose viewers
// changed.
func (s *Server) PeerPresence(node uint64, table PresenceTable) {
	h := s.rt
	h.do(func() {
		old := h.remote[node]
		if len(table) == 0 {
			delete(h.remote, node)
		} else {
			h.remote[node] = table
		}
		for _, tenant := range unionKeys(old, table) {
			sp := h.spaces[tenant]
			if sp == nil {
				continue // nobody here follows that workspace
			}
			for _, topic := range unionKeys(old[tenant], table[tenant]) {
				if !slices.Equal(old[tenant][topic], table[tenant][topic]) {
					h.broadcastPresence(sp, topic)
				}
			}
		}
	})
}

// PresenceChanged is signalled (without blocking, coalesced) when this
// node's own presence changes, so cmd can send the new table at once
// rather than at its next interval.
func (s *Server) PresenceChanged() <-chan struct{} { return s.rt.presenceChanged }

// localPresenceChanged signals PresenceChanged.
func (h *hub) localPresenceChanged() {
	select {
	case h.presenceChanged <- struct{}{}:
	default:
	}
}

// viewers is everyone viewing topic in sp's workspace: this node's
// connections and the other nodes' reports.
func (h *hub) viewers(sp *space, topic string) []string {
	var remote []string
	for _, table := range h.remote {
		remote = append(remote, table[sp.tenant][topic]...)
	}
	return viewerList(sp.presence[topic], remote)
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}
