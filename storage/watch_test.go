package storage_test

import (
	"bytes"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

func TestWatchCountsWatchedWrites(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{Watch: []storage.Key{storage.K("sess")}})
	a := applier{t, s}
	w := s.Tenant("acme").Watch()
	other := s.Tenant("globex").Watch()
	if !w.Valid() || w.Same(other) {
		t.Fatal("each tenant of a watching store has its own watch")
	}
	stamp := w.Stamp()
	a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("task", "1"), "t", 1)}})
	if !w.Current(stamp) {
		t.Fatal("a write outside the watched prefixes raised the watch")
	}
	a.apply(&storage.Command{Tenant: "globex", Ops: []storage.Op{put(storage.K("sess", "1"), "s", 1)}})
	if !w.Current(stamp) {
		t.Fatal("another tenant's session write raised this tenant's watch")
	}
	a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("sess", "1"), "s", 1)}})
	if w.Current(stamp) {
		t.Fatal("a session write had not raised the watch when Apply returned")
	}
	stamp = w.Stamp()
	a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{del(storage.K("sess", "1"))}})
	if w.Current(stamp) {
		t.Fatal("a session delete did not raise the watch")
	}

	// Replacing the contents raises every watch.
	var buf bytes.Buffer
	idx, err := s.WriteSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	stamp, otherStamp := w.Stamp(), other.Stamp()
	if err := s.InstallSnapshot(bytes.NewReader(buf.Bytes()), idx); err != nil {
		t.Fatal(err)
	}
	if w.Current(stamp) || other.Current(otherStamp) {
		t.Fatal("installing a snapshot left a watch as it was")
	}

	if (openStore(t, t.TempDir(), storage.Options{}).Tenant("acme").Watch()).Valid() {
		t.Fatal("a store opened without Watch handed out a watch")
	}
}
