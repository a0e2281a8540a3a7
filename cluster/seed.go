package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/teamflow/teamflow/storage"
)

// SeedGroup makes dir (a GroupConfig.Dir) the raft data of node id in a
// new group whose first state is store, just filled on this node
// (storage.Store.SeedTenant) exactly as on every other member: it applies
// a membership record with every peer a voter as the entry after the
// store's applied index, syncs the store, and writes a raft log that
// starts with a snapshot at that index (term 1) and a HardState committing
// it, as Restore does for one voter. Run on every member with the same
// store contents and peers, it gives each the same log and state at the
// same index, so StartGroup (without Join) restarts raft there and the
// members elect a leader with nothing to transfer. A member that could
// not seed (it no longer has the source) starts the group with Join and
// is sent a snapshot. It returns the index the group starts at.
func SeedGroup(dir string, id uint64, store *storage.Store, peers map[uint64]string) (uint64, error) {
	if _, ok := peers[id]; !ok || id == 0 {
		return 0, fmt.Errorf("cluster: seed group: peers must include this node (%d)", id)
	}
	m := &membership{}
	for pid, addr := range peers {
		if pid == 0 {
			return 0, errors.New("cluster: seed group: peer ID 0 is invalid")
		}
		m.Voters = append(m.Voters, pid)
		m.Addrs = append(m.Addrs, memberAddr{ID: pid, Addr: addr})
	}
	// Sorted, so every member writes the same bytes.
	slices.Sort(m.Voters)
	slices.SortFunc(m.Addrs, func(a, b memberAddr) int { return cmp.Compare(a.ID, b.ID) })
	return startLogAt(dir, id, store, m, "seed group")
}
