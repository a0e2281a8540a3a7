package storage_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

// A merged stream reads a tenant from another store's snapshot, in its
// place in key order and instead of what the main snapshot holds there,
// and leaves out the skipped platform records: it verifies, installs into
// a store that holds every tenant as its source did (the overlaid one as
// the other store holds it), and is byte for byte the stream that store
// writes (so its records were in key order). A workspace's stream read
// from another store is the same stream as one from a store holding both.
func TestBackupMergedStream(t *testing.T) {
	shared := openStore(t, t.TempDir(), storage.Options{})
	group := openStore(t, t.TempDir(), storage.Options{})
	a, g := applier{t: t, s: shared}, applier{t: t, s: group}
	for _, tn := range []string{"acme", "beta", "beta2", "gamma"} {
		a.apply(&storage.Command{RequestID: "w-" + tn, Tenant: tn, Kind: "test", Ops: []storage.Op{
			put(storage.K("task", "1"), "shared copy of "+tn+".", 1),
			add(storage.K("cnt", "tasks"), 1),
		}})
		a.apply(&storage.Command{RequestID: "sys-" + tn, Kind: "test", Ops: []storage.Op{
			{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("ws", tn), Value: []byte("registry " + tn), Version: 1},
		}})
	}
	a.apply(&storage.Command{RequestID: "route", Kind: "test", Ops: []storage.Op{
		{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("route", "beta"), Value: []byte("dedicated"), Version: 1},
		{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("route-seq"), Value: []byte("1"), Version: 1},
	}})
	for i, v := range []string{"group copy of beta", "beta, written in its group"} {
		g.apply(&storage.Command{RequestID: "g" + v, Tenant: "beta", Kind: "test", Ops: []storage.Op{
			put(storage.K("task", "1"), v, uint64(i+1)),
			put(storage.K("task", v), v, 1),
		}})
	}
	// The group also holds a tenant the merge does not take from it.
	g.apply(&storage.Command{RequestID: "stray", Tenant: "gamma", Kind: "test", Ops: []storage.Op{put(storage.K("task", "9"), "stray", 1)}})

	sn, err := shared.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	gsn, err := group.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer gsn.Close()
	var buf bytes.Buffer
	if _, err := sn.WriteMergedTo(&buf, map[string]*storage.Snapshot{"beta": gsn}, storage.K("route"), storage.K("route-seq")); err != nil {
		t.Fatal(err)
	}
	idx, err := storage.VerifySnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil || idx != sn.Index() {
		t.Fatalf("verify: index %d (want the main snapshot's %d), %v", idx, sn.Index(), err)
	}
	for _, gone := range []string{"shared copy of beta.", "stray"} {
		if bytes.Contains(buf.Bytes(), []byte(gone)) {
			t.Errorf("the merged stream carries %q", gone)
		}
	}

	dst := openStore(t, t.TempDir(), storage.Options{})
	if err := dst.InstallSnapshot(bytes.NewReader(buf.Bytes()), idx); err != nil {
		t.Fatal(err)
	}
	for tn, src := range map[string]*storage.Store{"acme": shared, "beta": group, "beta2": shared, "gamma": shared} {
		if want, got := tenantHash(t, src, tn), tenantHash(t, dst, tn); !bytes.Equal(want, got) {
			t.Errorf("%s: restored hash differs from its source store's", tn)
		}
	}
	for _, k := range []storage.Key{storage.K("route", "beta"), storage.K("route-seq")} {
		if _, err := dst.Sys().Get(k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s restored: %v", k, err)
		}
	}
	if v, err := dst.Sys().Get(storage.K("ws", "beta")); err != nil || string(v.Value) != "registry beta" {
		t.Errorf("registry entry: %v %v", v, err)
	}
	var again bytes.Buffer
	if _, err := dst.WriteSnapshot(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("the restored store's own stream differs from the merged one (records out of key order?)")
	}

	// One workspace, its keyspace from the group: the same stream as the
	// restored store (which holds both) writes.
	var one, want bytes.Buffer
	if _, err := sn.WriteTenantFrom(&one, gsn, "beta", storage.K("ws", "beta")); err != nil {
		t.Fatal(err)
	}
	dsn, err := dst.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer dsn.Close()
	if _, err := dsn.WriteTenantTo(&want, "beta", storage.K("ws", "beta")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), want.Bytes()) {
		t.Error("the workspace stream read from its group differs from one of a store holding it")
	}

	if _, err := sn.WriteMergedTo(&bytes.Buffer{}, nil, storage.K("route"), storage.K("route")); err == nil {
		t.Error("overlapping skipped ranges accepted")
	}
}
