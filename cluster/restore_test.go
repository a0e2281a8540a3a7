package cluster

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// A backup of a three-node cluster's store, restored with Restore, starts
// as a one-voter cluster at the next index: the data is the backup's, the
// old members and removed IDs are gone, and it takes writes and a new
// member (which catches up by snapshot).
func TestRestoreStartsNewCluster(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := GenerateCerts(certs, []string{"n1", "n2"}); err != nil {
		t.Fatal(err)
	}
	tlsFor := func(name string) (net.Listener, Config) {
		cert, key := CertFiles(certs, name)
		tlsConf, err := LoadTLS(filepath.Join(certs, CAFile), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln, Config{TLS: tlsConf, Listener: ln, TickInterval: 20 * time.Millisecond}
	}

	// The source: an old cluster's state at index 30, membership included.
	src, err := storage.Open(filepath.Join(dir, "src"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var batch []storage.Entry
	for i := uint64(1); i < 30; i++ {
		batch = append(batch, storage.Entry{Index: i, Data: storage.EncodeCommand(&storage.Command{
			RequestID: "r" + string(rune('a'+i)), Tenant: "acme", Kind: "k",
			Ops: []storage.Op{{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt"), Delta: 1}},
		})})
	}
	old := &membership{Voters: []uint64{1, 2, 3}, Addrs: []memberAddr{{1, "10.0.0.1:7000"}, {2, "10.0.0.2:7000"}, {3, "10.0.0.3:7000"}}, Removed: []uint64{7}}
	batch = append(batch, storage.Entry{Index: 30, Data: old.command(30)})
	if _, err := src.Apply(batch); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := src.WriteSnapshot(&backup); err != nil {
		t.Fatal(err)
	}

	st, err := storage.Open(filepath.Join(dir, "n1", "state"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.InstallSnapshot(bytes.NewReader(backup.Bytes()), 30); err != nil {
		t.Fatal(err)
	}
	ln1, cfg1 := tlsFor("n1")
	nodeDir := filepath.Join(dir, "n1", "cluster")
	start, err := Restore(nodeDir, 1, ln1.Addr().String(), st)
	if err != nil || start != 31 {
		t.Fatalf("restore: %d %v", start, err)
	}
	if _, err := Restore(nodeDir, 1, ln1.Addr().String(), st); err == nil {
		t.Fatal("a second Restore over the same raft log was accepted")
	}
	cfg1.NodeID, cfg1.Peers, cfg1.Dir, cfg1.Store = 1, map[uint64]string{1: ln1.Addr().String()}, nodeDir, st
	n1, err := New(cfg1)
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n1.Propose(ctx, &storage.Command{RequestID: "after", Tenant: "acme", Kind: "k",
		Ops: []storage.Op{{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt"), Delta: 1}}})
	if err != nil || res.Values[0] != 30 || res.Index <= 31 {
		t.Fatalf("propose after restore: %+v %v", res, err)
	}
	s := n1.Status()
	if s.Leader != 1 || len(s.Members) != 1 || s.Members[0].ID != 1 || len(s.Removed) != 0 {
		t.Fatalf("status after restore %+v", s)
	}

	// A second member joins and catches up by snapshot.
	st2, err := storage.Open(filepath.Join(dir, "n2", "state"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ln2, cfg2 := tlsFor("n2")
	cfg2.NodeID, cfg2.Join, cfg2.Dir, cfg2.Store = 2, true, filepath.Join(dir, "n2", "cluster"), st2
	cfg2.Peers = map[uint64]string{1: ln1.Addr().String(), 2: ln2.Addr().String()}
	n2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if err := n1.AddLearner(ctx, 2, ln2.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := n1.Promote(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := n2.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	h1, _ := st.TenantHash("acme")
	h2, _ := st2.TenantHash("acme")
	if !bytes.Equal(h1, h2) {
		t.Fatal("the joined member's workspace differs from the restored node's")
	}
	if n2.Stats().SnapshotsInstalled == 0 {
		t.Fatal("the new member did not catch up by snapshot")
	}
}
