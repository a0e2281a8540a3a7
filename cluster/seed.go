package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

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
	raftPath := filepath.Join(dir, "raft")
	if _, err := os.Stat(raftPath); err == nil {
		return 0, fmt.Errorf("cluster: seed group: %s already holds a raft log", raftPath)
	}
	if err := os.MkdirAll(filepath.Join(dir, "snap"), 0o755); err != nil {
		return 0, fmt.Errorf("cluster: seed group: %w", err)
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
	idx := store.AppliedIndex() + 1
	res, err := store.Apply([]storage.Entry{{Index: idx, Data: m.command(idx)}})
	if err != nil {
		return 0, fmt.Errorf("cluster: seed group: membership: %w", err)
	}
	if len(res) != 1 || res[0].Err != nil {
		return 0, fmt.Errorf("cluster: seed group: membership refused: %v", res)
	}
	if err := store.Sync(); err != nil {
		return 0, err
	}
	logs, err := openLogStore(raftPath, id, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     proto.Uint64(idx),
		Term:      proto.Uint64(1),
		ConfState: m.confState(),
	}}
	hs := &pb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(idx)}
	if err := logs.save(hs, nil, snap, true); err != nil {
		logs.close()
		return 0, fmt.Errorf("cluster: seed group: raft log: %w", err)
	}
	if err := logs.close(); err != nil {
		return 0, err
	}
	return idx, syncDir(dir)
}
