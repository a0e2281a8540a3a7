package storage_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

// TestDropTenantLeavesNoKey: a command that deletes its tenant's whole
// keyspace (a move's flip) leaves no key of the tenant behind, not even
// the event sequence, and writes its platform ops in the same batch; a
// snapshot taken before it still reads the platform as it was.
func TestDropTenantLeavesNoKey(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	for _, tn := range []string{"a", "b"} {
		for _, k := range []string{"x", "y", "z"} {
			if res := a.apply(&storage.Command{RequestID: tn + k, Tenant: tn, Kind: "put", Ops: []storage.Op{put(storage.K(k), "v", 1)}}); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	hashB := tenantHash(t, s, "b")
	if res := a.apply(&storage.Command{RequestID: "route", Kind: "route", Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("route", "a"), Value: []byte("seeding"), Version: 1}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	sn, err := s.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	res := a.apply(&storage.Command{RequestID: "flip", Tenant: "a", Kind: "flip",
		Preconditions: []storage.Precondition{{Space: storage.SpaceSys, Key: storage.K("route", "a"), Version: 1}},
		Ops: []storage.Op{
			{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("route", "a"), Value: []byte("dedicated"), Version: 2},
			{Type: storage.OpDeleteRange, Space: storage.SpaceTenant},
		}})
	if res.Err != nil || res.Seq != 0 {
		t.Fatalf("flip: %+v", res)
	}
	n := 0
	if err := s.Tenant("a").Scan(nil, storage.ScanOptions{}, func(storage.Key, storage.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d keys of tenant a left", n)
	}
	if !bytes.Equal(tenantHash(t, s, "b"), hashB) {
		t.Error("tenant b changed")
	}
	if rec, err := s.Sys().Get(storage.K("route", "a")); err != nil || string(rec.Value) != "dedicated" {
		t.Errorf("route after the flip: %q %v", rec.Value, err)
	}
	if rec, err := sn.Sys().Get(storage.K("route", "a")); err != nil || string(rec.Value) != "seeding" {
		t.Errorf("route in the snapshot: %q %v", rec.Value, err)
	}
	if _, err := sn.Sys().Get(storage.K("nothing")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("absent key in the snapshot: %v", err)
	}
	// An ordinary range delete still advances the sequence.
	if res := a.apply(&storage.Command{RequestID: "range", Tenant: "b", Kind: "del", Ops: []storage.Op{{Type: storage.OpDeleteRange, Key: storage.K("x"), End: storage.K("y")}}}); res.Err != nil || res.Seq != 4 {
		t.Errorf("range delete: %+v", res)
	}
}
