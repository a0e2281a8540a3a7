package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/storage"
)

// Restore makes dir (a node's Config.Dir) the raft data of the first node
// of a new cluster, over a state store that was just filled from a backup
// (storage.Store.InstallSnapshot). The node, id at raftAddr, is the only
// voter; add the others with AddLearner and Promote (they start with
// Join and catch up by snapshot).
//
// The backup's membership belongs to the cluster it was taken from, so it
// is replaced: Restore applies a membership record naming this node alone
// (no removed IDs: it is a new cluster) as the entry after the store's
// applied index, syncs the store, and writes a raft log that starts with a
// snapshot at that index (term 1, this node the only voter) and a
// HardState committing it. New then finds the store and the log agreeing
// (DESIGN.md invariant 3) and restarts raft from there. It returns the
// index the new cluster starts at.
//
// Starting several restored nodes as one cluster is not supported: their
// logs would agree only by accident. Restore one, join the others.
func Restore(dir string, id uint64, raftAddr string, store *storage.Store) (uint64, error) {
	if id == 0 {
		return 0, errors.New("cluster: restore: node ID must be non-zero")
	}
	if _, _, err := net.SplitHostPort(raftAddr); err != nil {
		return 0, fmt.Errorf("cluster: restore: raft address %q: %w", raftAddr, err)
	}
	m := &membership{Voters: []uint64{id}, Addrs: []memberAddr{{ID: id, Addr: raftAddr}}}
	return startLogAt(dir, id, store, m, "restore")
}

// startLogAt lays out dir as node id's raft data starting at the entry
// after store's applied index: it applies m there (the membership the log
// starts with), syncs the store, and writes a raft log that starts with a
// snapshot at that index (term 1) and a HardState committing it. what
// names the caller in errors. It returns the index.
func startLogAt(dir string, id uint64, store *storage.Store, m *membership, what string) (uint64, error) {
	raftPath := filepath.Join(dir, "raft")
	if _, err := os.Stat(raftPath); err == nil {
		return 0, fmt.Errorf("cluster: %s: %s already holds a raft log", what, raftPath)
	}
	if err := storage.MkdirAllSynced(nil, filepath.Join(dir, "snap"), 0o755); err != nil {
		return 0, fmt.Errorf("cluster: %s: %w", what, err)
	}
	idx := store.AppliedIndex() + 1
	res, err := store.Apply([]storage.Entry{{Index: idx, Data: m.command(idx)}})
	if err != nil {
		return 0, fmt.Errorf("cluster: %s: membership: %w", what, err)
	}
	if len(res) != 1 || res[0].Err != nil {
		return 0, fmt.Errorf("cluster: %s: membership refused: %v", what, res)
	}
	if err := store.Sync(); err != nil {
		return 0, err
	}
	logs, err := openLogStore(raftPath, nil, id, slog.New(slog.DiscardHandler))
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
		return 0, fmt.Errorf("cluster: %s: raft log: %w", what, err)
	}
	if err := logs.close(); err != nil {
		return 0, err
	}
	return idx, storage.SyncDir(vfs.Default, dir)
}
