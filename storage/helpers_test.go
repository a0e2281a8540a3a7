package storage_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

func openStore(t testing.TB, dir string, opts storage.Options) *storage.Store {
	t.Helper()
	s, err := storage.Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// applier feeds commands to a store one entry at a time, numbering them.
type applier struct {
	t testing.TB
	s *storage.Store
}

func (a applier) next() uint64 { return a.s.AppliedIndex() + 1 }

// apply applies one command at the next index.
func (a applier) apply(c *storage.Command) storage.Result {
	a.t.Helper()
	return a.applyAt(a.next(), c)
}

func (a applier) applyAt(idx uint64, c *storage.Command) storage.Result {
	a.t.Helper()
	res, err := a.s.Apply([]storage.Entry{{Index: idx, Data: storage.EncodeCommand(c)}})
	if err != nil {
		a.t.Fatalf("apply %d: %v", idx, err)
	}
	return res[0]
}

func put(k storage.Key, v string, version uint64) storage.Op {
	return storage.Op{Type: storage.OpPut, Key: k, Value: []byte(v), Version: version}
}

func add(k storage.Key, delta int64) storage.Op {
	return storage.Op{Type: storage.OpAdd, Key: k, Delta: delta}
}

func bounded(k storage.Key, delta, lo, hi int64, limit string) storage.Op {
	return storage.Op{Type: storage.OpAdd, Key: k, Delta: delta, Bounded: true, Min: lo, Max: hi, Limit: limit}
}

func del(k storage.Key) storage.Op { return storage.Op{Type: storage.OpDelete, Key: k} }

// counter reads a counter written by OpAdd.
func counter(t testing.TB, v storage.View, k storage.Key) (int64, uint64) {
	t.Helper()
	rec, err := v.Get(k)
	if err != nil {
		t.Fatalf("counter %s: %v", k, err)
	}
	if len(rec.Value) != 8 {
		t.Fatalf("counter %s: %d bytes", k, len(rec.Value))
	}
	return int64(binary.BigEndian.Uint64(rec.Value)), rec.Version
}

// keysOf lists a view's relative keys under prefix.
func keysOf(t testing.TB, v storage.View, prefix storage.Key) []string {
	t.Helper()
	var out []string
	if err := v.Scan(prefix, storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		out = append(out, k.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// within polls cond until it holds or the deadline passes.
func within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
