package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// TestBackupDedicatedGroups: with one workspace in a dedicated group, one
// fenced mid-move and an aborted move's mark in the shared store, a backup
// taken on member 3 the way the API takes it (OpenBackup) holds every
// workspace as one shared store would: the dedicated one as its group
// holds it, a write acknowledged through member 1 just before included;
// the fenced and the shared one as the shared store holds them; no
// routing record. The file verifies and `teamflow restore` builds a node
// from it. A backup of the dedicated workspace alone holds it as its group
// does, with its scope's platform records and no other workspace.
func TestBackupDedicatedGroups(t *testing.T) {
	c, ds, _ := dedicatedCluster(t)
	ctx := context.Background()
	const ded, fenced, shared = "t-ded", "t-fenced", "t-shared"
	registry := storage.K("ws", ded)
	leader := c.Leader(10 * time.Second)
	for _, tn := range []string{ded, fenced, shared} {
		seedRecords(t, leader, tn, 5)
	}
	clustertest.Propose(t, leader, &storage.Command{RequestID: "registry", Kind: "test.put",
		Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: registry, Value: []byte("registry"), Version: 1}}}, 10*time.Second)

	// An aborted move's mark, then a move stopped after its fence.
	dedicate := func(tenant, stopAfter string, abort bool, want string) {
		t.Helper()
		ds[1].stopAfter = stopAfter
		if st, err := ds[1].Dedicate(ctx, tenant, abort); err != nil || st.State != want {
			t.Fatalf("dedicate %s (stop after %q, abort %v): %+v %v, want %s", tenant, stopAfter, abort, st, err, want)
		}
	}
	dedicate(fenced, "fenced", false, routeFenced)
	dedicate(fenced, "", true, "shared")
	dedicate(fenced, "fenced", false, routeFenced)
	dedicate(ded, "", false, routeDedicated)

	m1, m3 := c.Member(1), c.Member(3)
	router := groupRouter{d: ds[1], shared: engine.Route{Log: retryLog{m1.Node}, Store: m1.Store}}
	last := storage.K("rec", "after the move")
	for _, tn := range []string{ded, shared} {
		res, err := router.Workspace(tn).Log.Propose(ctx, &storage.Command{RequestID: "after-" + tn, Tenant: tn, Kind: "test.put",
			Ops: []storage.Op{{Type: storage.OpPut, Key: last, Value: []byte("v"), Version: 1}}})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("write to %s through member 1: %v", tn, err)
		}
	}

	b, err := state{&node{store: m3.Store, raft: m3.Node, ded: ds[3]}}.OpenBackup(ctx)
	if err != nil {
		t.Fatalf("open backup on member 3: %v", err)
	}
	dir := t.TempDir()
	whole := writeBackup(t, filepath.Join(dir, "whole"), b.WriteTo)
	one := writeBackup(t, filepath.Join(dir, "one"), func(w io.Writer) (int64, error) {
		return b.WriteWorkspaceTo(w, &engine.BackupScope{Tenant: ded, Sys: []storage.Key{registry}})
	})
	idx := b.Index()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Nothing is written from here on: once the stores converge, their
	// hashes are what the backup had to hold.
	rec, _, err := readRoute(m1.Store.Sys(), ded)
	if err != nil || rec == nil {
		t.Fatalf("route of %s: %+v %v", ded, rec, err)
	}
	c.WaitConverged(20 * time.Second)
	var want map[string][]byte
	clustertest.Poll(t, 20*time.Second, "group stores converge", func() (bool, string) {
		g1, g3 := ds[1].get(rec.Group), ds[3].get(rec.Group)
		if g1 == nil || g3 == nil {
			return false, "group not open"
		}
		h1, _ := g1.store.TenantHash(ded)
		h3, _ := g3.store.TenantHash(ded)
		want = map[string][]byte{ded: h1}
		return bytes.Equal(h1, h3) && g1.store.AppliedIndex() == g3.store.AppliedIndex(), "member 3 differs"
	})
	for _, tn := range []string{fenced, shared} {
		h, err := m3.Store.TenantHash(tn)
		if err != nil {
			t.Fatal(err)
		}
		want[tn] = h
	}

	// The whole backup, restored as the first node of a new cluster.
	if got, err := verifyBackupFile(whole, nil); err != nil || got != idx {
		t.Fatalf("verify the whole backup: index %d (want %d), %v", got, idx, err)
	}
	data := filepath.Join(dir, "restored")
	if _, err := restoreBackup(ctx, whole, data, 1, "127.0.0.1:1", nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	st := openRestored(t, data)
	for tn, h := range want {
		if got, _ := st.TenantHash(tn); !bytes.Equal(got, h) {
			t.Errorf("%s: restored hash %x, source %x", tn, got, h)
		}
	}
	if _, err := st.Tenant(ded).Get(last); err != nil {
		t.Errorf("the write acknowledged through member 1 before the backup: %v", err)
	}
	for _, k := range routingKeys {
		if countSys(t, m3.Store, k) == 0 {
			t.Errorf("the source holds no routing record under %s", k)
		}
		if n := countSys(t, st, k); n != 0 {
			t.Errorf("%d routing records under %s restored", n, k)
		}
	}

	// The dedicated workspace alone, restored as a single node.
	if got, err := verifyBackupFile(one, nil); err != nil || got != idx {
		t.Fatalf("verify the workspace backup: index %d (want %d), %v", got, idx, err)
	}
	data = filepath.Join(dir, "restored-one")
	if _, err := restoreBackup(ctx, one, data, 0, "", nil); err != nil {
		t.Fatalf("restore the workspace backup: %v", err)
	}
	st = openRestored(t, data)
	if got, _ := st.TenantHash(ded); !bytes.Equal(got, want[ded]) {
		t.Errorf("restored workspace hash %x, its group's %x", got, want[ded])
	}
	if _, err := st.Sys().Get(registry); err != nil {
		t.Errorf("the scope's platform record: %v", err)
	}
	for _, tn := range []string{fenced, shared} {
		if n := countKeys(t, st, tn); n != 0 {
			t.Errorf("%d keys of %s in the workspace backup", n, tn)
		}
	}

	// A leftover group directory would be reopened by a later move (group
	// IDs start over): restore refuses it.
	data = filepath.Join(dir, "leftover")
	if err := os.MkdirAll(filepath.Join(data, groupsDir, "1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreBackup(ctx, whole, data, 0, "", nil); err == nil {
		t.Error("restore into a data directory with a group directory succeeded")
	}
}

// writeBackup writes a backup stream to path.
func writeBackup(t *testing.T, path string, write func(io.Writer) (int64, error)) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

func openRestored(t *testing.T, data string) *storage.Store {
	t.Helper()
	st, err := openStore(data, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// countSys counts the platform records under prefix.
func countSys(t *testing.T, st *storage.Store, prefix storage.Key) int {
	t.Helper()
	n := 0
	if err := st.Sys().Scan(prefix, storage.ScanOptions{}, func(storage.Key, storage.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
