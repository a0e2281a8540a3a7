package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/storage"
)

// A node that recorded a snapshot from the leader in its raft log but
// stopped before installing it in the state store installs it from the
// kept file when it starts again; then it serves as a one-node cluster.
func TestNewInstallsRecordedSnapshot(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := GenerateCerts(certs, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	cert, key := CertFiles(certs, "n1")
	tlsConf, err := LoadTLS(filepath.Join(certs, CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()

	// The leader's state at index 20: commands, and the membership record.
	src, err := storage.Open(filepath.Join(dir, "src"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var batch []storage.Entry
	for i := uint64(1); i < 20; i++ {
		batch = append(batch, storage.Entry{Index: i, Data: storage.EncodeCommand(&storage.Command{
			RequestID: "r" + string(rune('a'+i)), Tenant: "acme", Kind: "k",
			Ops: []storage.Op{{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt"), Delta: 1}},
		})})
	}
	m := &membership{Voters: []uint64{1}, Addrs: []memberAddr{{ID: 1, Addr: addr}}}
	batch = append(batch, storage.Entry{Index: 20, Data: m.command(20)})
	if _, err := src.Apply(batch); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := src.WriteSnapshot(&stream); err != nil {
		t.Fatal(err)
	}

	// The follower's disk as the crash left it: the raft log records the
	// snapshot, the file is there, the state store is empty.
	nodeDir := filepath.Join(dir, "node")
	logs, err := openLogStore(filepath.Join(nodeDir, "raft"), nil, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	meta := &pb.SnapshotMetadata{Index: proto.Uint64(20), Term: proto.Uint64(2), ConfState: &pb.ConfState{Voters: []uint64{1}}}
	if err := logs.save(&pb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(20)}, nil, &pb.Snapshot{Metadata: meta}, true); err != nil {
		t.Fatal(err)
	}
	logs.close()
	snapPath := filepath.Join(nodeDir, "snap")
	os.MkdirAll(snapPath, 0o755)
	if err := (snapDir{fs: vfs.Default, dir: snapPath}).receive(bytes.NewReader(stream.Bytes()), 20); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(filepath.Join(dir, "state"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	n, err := New(Config{NodeID: 1, Peers: map[uint64]string{1: addr}, Dir: nodeDir, Store: st, Listener: ln, TLS: tlsConf, TickInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if st.AppliedIndex() < 20 {
		t.Fatalf("applied %d after start, want the snapshot's 20", st.AppliedIndex())
	}
	h1, _ := src.TenantHash("acme")
	h2, _ := st.TenantHash("acme")
	if !bytes.Equal(h1, h2) {
		t.Fatal("installed state differs from the snapshot")
	}
	if files, _ := os.ReadDir(snapPath); len(files) != 0 {
		t.Fatalf("snapshot file kept after install: %v", files)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Propose(ctx, &storage.Command{RequestID: "after", Tenant: "acme", Kind: "k",
		Ops: []storage.Op{{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt"), Delta: 1}}})
	if err != nil || res.Values[0] != 20 || res.Index <= 20 {
		t.Fatalf("propose after recovery: %+v %v", res, err)
	}
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.Leader != 1 || len(st.Members) != 1 || st.Members[0].Addr != addr {
		t.Fatalf("status %+v", st)
	}
}
