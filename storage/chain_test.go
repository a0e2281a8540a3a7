package storage_test

import (
	"fmt"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

func chainOp(payload string) storage.Op {
	return storage.Op{Type: storage.OpChain, Key: storage.K("audithead"), End: storage.K("audit"), Value: []byte(payload)}
}

// TestChainAppendsAndVerifies: each OpChain entry is numbered in order, its
// stored hash links to the previous one, the head names the last, and two
// stores given the same log agree byte for byte.
func TestChainAppendsAndVerifies(t *testing.T) {
	var hashes [2][]byte
	for n := range 2 {
		s := openStore(t, t.TempDir(), storage.Options{})
		var entries []storage.Entry
		for i := range 20 {
			cmd := &storage.Command{RequestID: fmt.Sprint("r", i), Tenant: "acme", Ops: []storage.Op{chainOp(fmt.Sprint("event ", i))}}
			if i%5 == 0 { // two entries in one command
				cmd.Ops = append(cmd.Ops, chainOp(fmt.Sprint("event ", i, "b")))
			}
			entries = append(entries, storage.Entry{Index: uint64(i + 1), Data: storage.EncodeCommand(cmd)})
		}
		res, err := s.Apply(entries)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Values[0] != 1 || res[0].Values[1] != 2 || res[1].Values[0] != 3 {
			t.Fatalf("chain numbers %v %v", res[0].Values, res[1].Values)
		}
		v := s.Tenant("acme")
		var prev [32]byte
		var seq uint64
		err = v.Scan(storage.K("audit"), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			seq++
			h, payload, err := storage.ChainEntry(r.Value)
			if err != nil {
				return err
			}
			if r.Stamp != seq || storage.ChainHash(prev, seq, payload) != h {
				return fmt.Errorf("entry %d does not link", seq)
			}
			prev = h
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		head, err := v.Get(storage.K("audithead"))
		if err != nil {
			t.Fatal(err)
		}
		hs, hh, err := storage.ChainHead(head.Value)
		if err != nil || hs != 24 || hh != prev {
			t.Fatalf("head %d %x, want 24 %x (%v)", hs, hh, prev, err)
		}
		if hashes[n], err = s.TenantHash("acme"); err != nil {
			t.Fatal(err)
		}
	}
	if string(hashes[0]) != string(hashes[1]) {
		t.Fatal("two stores given the same chain log differ")
	}
}

func TestChainRefusesBadOps(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	apply := func(c *storage.Command) storage.Result {
		t.Helper()
		res, err := s.Apply([]storage.Entry{{Index: s.AppliedIndex() + 1, Data: storage.EncodeCommand(c)}})
		if err != nil {
			t.Fatalf("a bad command stopped the store: %v", err)
		}
		return res[0]
	}
	if r := apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{{Type: storage.OpChain, Key: storage.K("h"), Value: []byte("no entry prefix")}}}); r.Err == nil {
		t.Fatal("a chain op without an entry prefix applied")
	}
	if r := apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("plain"), "x", 1)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{{Type: storage.OpChain, Key: storage.K("plain"), End: storage.K("e"), Value: []byte("x")}}}); r.Err == nil {
		t.Fatal("a chain over a plain record applied")
	}
	// The store still works.
	if r := apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{chainOp("fine")}}); r.Err != nil || r.Values[0] != 1 {
		t.Fatalf("a good chain op after bad ones: %+v", r)
	}
}
