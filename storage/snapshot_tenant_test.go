package storage_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

// A workspace's snapshot carries its keyspace and the platform records it
// names, and nothing of another workspace or of the platform's secrets;
// installed into an empty store it reads back as the same workspace (equal
// hash), and a damaged copy is refused.
func TestWriteTenantTo(t *testing.T) {
	src := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t: t, s: src}
	for _, tn := range []string{"acme", "acme2", "beta"} {
		a.apply(&storage.Command{RequestID: "w-" + tn, Tenant: tn, Kind: "test", Ops: []storage.Op{
			put(storage.K("task", "1"), "task of "+tn, 1),
			put(storage.K("task", "2"), "another task of "+tn, 1),
			add(storage.K("cnt", "tasks"), 2),
		}})
		a.apply(&storage.Command{RequestID: "sys-" + tn, Kind: "test", Ops: []storage.Op{
			{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("ws", tn), Value: []byte("registry " + tn), Version: 1},
		}})
	}
	a.apply(&storage.Command{RequestID: "secret", Kind: "test", Ops: []storage.Op{
		{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("signkey", "k1"), Value: []byte("platform secret"), Version: 1},
	}})

	sn, err := src.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var buf bytes.Buffer
	if _, err := sn.WriteTenantTo(&buf, "acme", storage.K("ws", "acme")); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"acme2", "beta", "platform secret"} {
		if bytes.Contains(buf.Bytes(), []byte(leak)) {
			t.Errorf("the workspace snapshot of acme carries %q", leak)
		}
	}
	idx, err := storage.VerifySnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil || idx != sn.Index() {
		t.Fatalf("verify: index %d (want %d), %v", idx, sn.Index(), err)
	}

	dst := openStore(t, t.TempDir(), storage.Options{})
	if err := dst.InstallSnapshot(bytes.NewReader(buf.Bytes()), idx); err != nil {
		t.Fatal(err)
	}
	want, _ := src.TenantHash("acme")
	got, _ := dst.TenantHash("acme")
	if !bytes.Equal(want, got) {
		t.Error("the restored workspace's hash differs from the source's")
	}
	if v, err := dst.Sys().Get(storage.K("ws", "acme")); err != nil || string(v.Value) != "registry acme" {
		t.Errorf("registry entry: %v %v", v, err)
	}
	for _, k := range []storage.Key{storage.K("ws", "beta"), storage.K("signkey", "k1")} {
		if _, err := dst.Sys().Get(k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s restored: %v", k, err)
		}
	}
	if keys := keysOf(t, dst.Tenant("beta"), nil); len(keys) != 0 {
		t.Errorf("beta restored: %v", keys)
	}

	damaged := bytes.Clone(buf.Bytes())
	damaged[len(damaged)/2] ^= 0x40
	if err := openStore(t, t.TempDir(), storage.Options{}).InstallSnapshot(bytes.NewReader(damaged), idx); !errors.Is(err, storage.ErrSnapshotCorrupt) {
		t.Errorf("a damaged workspace snapshot: %v", err)
	}
}
