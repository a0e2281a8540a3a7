package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

func tenantHash(t testing.TB, s *storage.Store, tenant string) []byte {
	t.Helper()
	h, err := s.TenantHash(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestApplyPreconditions(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	v := s.Tenant("acme")
	task := storage.K("task", "t1")

	// Version 0: the key must be absent.
	res := a.apply(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task}}, Ops: []storage.Op{put(task, "one", 1)}})
	if res.Err != nil {
		t.Fatalf("create: %v", res.Err)
	}
	if rec, err := v.Get(task); err != nil || rec.Version != 1 || string(rec.Value) != "one" {
		t.Fatalf("after create: %+v, %v", rec, err)
	}

	refused := func(name string, c *storage.Command, expected, actual uint64) {
		t.Helper()
		before := tenantHash(t, s, "acme")
		beforeSys := keysOf(t, s.Sys(), nil)
		res := a.apply(c)
		var ce *storage.ConflictError
		if !errors.As(res.Err, &ce) || !errors.Is(res.Err, storage.ErrConflict) {
			t.Fatalf("%s: result %v, want a conflict", name, res.Err)
		}
		if ce.Expected != expected || ce.Actual != actual {
			t.Fatalf("%s: conflict %+v, want expected %d actual %d", name, ce, expected, actual)
		}
		if res.Seq != 0 {
			t.Fatalf("%s: refused command has Seq %d", name, res.Seq)
		}
		if !bytes.Equal(before, tenantHash(t, s, "acme")) || !slices.Equal(beforeSys, keysOf(t, s.Sys(), nil)) {
			t.Fatalf("%s: a refused command wrote", name)
		}
	}
	many := []storage.Op{put(storage.K("other"), "x", 1), add(storage.K("ctr"), 1), del(task),
		{Type: storage.OpDeleteRange}, {Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("s"), Version: 1}}

	refused("absent expected", &storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task}}, Ops: many}, 0, 1)
	refused("stale version", &storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task, Version: 2}}, Ops: many}, 2, 1)
	refused("any version of an absent key", &storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: storage.K("nope"), Version: storage.AnyVersion}}, Ops: many}, storage.AnyVersion, 0)
	refused("second precondition fails", &storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{
		{Key: task, Version: 1}, {Key: storage.K("nope"), Version: 1}}, Ops: many}, 1, 0)
	refused("sys precondition", &storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{
		{Space: storage.SpaceSys, Key: task, Version: 1}}, Ops: many}, 1, 0)

	// Exact version and AnyVersion hold.
	res = a.apply(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task, Version: 1}}, Ops: []storage.Op{put(task, "two", 2)}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	res = a.apply(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task, Version: storage.AnyVersion}}, Ops: []storage.Op{put(task, "three", 3)}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var ce *storage.ConflictError
	res = a.apply(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: task, Version: 1}}, Ops: []storage.Op{put(task, "four", 4)}})
	if !errors.As(res.Err, &ce) || ce.Key != task.String() {
		t.Fatalf("conflict %v should name %s", res.Err, task)
	}

	// Preconditions see the entries before them in the same Apply batch.
	next := a.next()
	out, err := s.Apply([]storage.Entry{
		{Index: next, Data: storage.EncodeCommand(&storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("b"), "x", 5)}})},
		{Index: next + 1, Data: storage.EncodeCommand(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: storage.K("b"), Version: 5}}, Ops: []storage.Op{put(storage.K("b"), "y", 6)}})},
		{Index: next + 2, Data: storage.EncodeCommand(&storage.Command{Tenant: "acme", Preconditions: []storage.Precondition{{Key: storage.K("b"), Version: 5}}, Ops: []storage.Op{put(storage.K("b"), "z", 7)}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out[1].Err != nil || !errors.Is(out[2].Err, storage.ErrConflict) {
		t.Fatalf("in-batch preconditions: %v, %v", out[1].Err, out[2].Err)
	}
}

func TestApplyOpAddBounds(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	v := s.Tenant("acme")
	users := storage.K("ctr", "users")
	cmd := func(ops ...storage.Op) *storage.Command { return &storage.Command{Tenant: "acme", Ops: ops} }

	for i := int64(1); i <= 3; i++ {
		res := a.apply(cmd(bounded(users, 1, 0, 3, "users")))
		if res.Err != nil || res.Values[0] != i {
			t.Fatalf("add %d: %+v", i, res)
		}
	}
	if val, ver := counter(t, v, users); val != 3 || ver != 3 {
		t.Fatalf("counter %d version %d", val, ver)
	}
	limitRefusal := func(name string, res storage.Result, limit string) {
		t.Helper()
		var le *storage.LimitError
		if !errors.As(res.Err, &le) || !errors.Is(res.Err, storage.ErrLimit) || le.Limit != limit {
			t.Fatalf("%s: %v, want a LimitError naming %q", name, res.Err, limit)
		}
	}
	before := tenantHash(t, s, "acme")
	res := a.apply(cmd(put(storage.K("user", "u4"), "x", 1), bounded(users, 1, 0, 3, "users")))
	limitRefusal("over max", res, "users")
	if le := (*storage.LimitError)(nil); errors.As(res.Err, &le) && le.Max != 3 {
		t.Fatalf("LimitError.Max = %d", le.Max)
	}
	if !bytes.Equal(before, tenantHash(t, s, "acme")) {
		t.Fatal("a refused command wrote")
	}

	// The plan shrinks to 2: removing users is still allowed (direction of
	// motion), adding is not.
	res = a.apply(cmd(bounded(users, -1, 0, 2, "users")))
	if res.Err != nil || res.Values[0] != 2 {
		t.Fatalf("remove under a lowered max: %+v", res)
	}
	limitRefusal("add at lowered max", a.apply(cmd(bounded(users, 1, 0, 2, "users"))), "users")
	res = a.apply(cmd(bounded(users, 1, 0, 5, "users"), bounded(users, 1, 0, 5, "users")))
	if res.Err != nil || res.Values[0] != 3 || res.Values[1] != 4 {
		t.Fatalf("two adds in one command: %+v", res)
	}
	if val, _ := counter(t, v, users); val != 4 {
		t.Fatalf("counter %d", val)
	}
	limitRefusal("second add passes max", a.apply(cmd(bounded(users, 1, 0, 5, "users"), bounded(users, 1, 0, 5, "users"))), "users")

	// Min: never below, but moving up from below is allowed; delta 0 is
	// never refused.
	quota := storage.K("ctr", "quota")
	limitRefusal("below min", a.apply(cmd(bounded(quota, -1, 0, 10, "storage"))), "storage")
	if res := a.apply(cmd(add(quota, -5))); res.Err != nil || res.Values[0] != -5 {
		t.Fatalf("unbounded: %+v", res)
	}
	if res := a.apply(cmd(bounded(quota, 1, 0, 10, "storage"))); res.Err != nil || res.Values[0] != -4 {
		t.Fatalf("up from below min: %+v", res)
	}
	if res := a.apply(cmd(bounded(quota, 0, 0, 10, "storage"))); res.Err != nil || res.Values[0] != -4 {
		t.Fatalf("delta 0 out of bounds: %+v", res)
	}

	// A bound is a bound even at the edge of int64.
	edge := storage.K("ctr", "edge")
	if res := a.apply(cmd(add(edge, math.MaxInt64-1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	limitRefusal("overflow past max", a.apply(cmd(bounded(edge, 5, 0, math.MaxInt64, "edge"))), "edge")
	low := storage.K("ctr", "low")
	if res := a.apply(cmd(add(low, math.MinInt64+1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	limitRefusal("overflow past min", a.apply(cmd(bounded(low, -5, math.MinInt64, 0, "low"))), "low")
	if val, _ := counter(t, v, edge); val != math.MaxInt64-1 {
		t.Fatalf("edge counter %d", val)
	}
}

// TestApplyBadCounterIsRefusedNotFatal: commands that would break a counter
// are refused like any invalid command; they must not stop the store, since
// every replica (and every restart, replaying the entry) would stop on them.
func TestApplyBadCounterIsRefusedNotFatal(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{put(storage.K("title"), "not a counter", 1)}})
	for name, c := range map[string]*storage.Command{
		"add to a record":                          {Tenant: "acme", Ops: []storage.Op{add(storage.K("title"), 1)}},
		"bounded add to a record":                  {Tenant: "acme", Ops: []storage.Op{bounded(storage.K("title"), 1, 0, 9, "n")}},
		"record over the event sequence":           {Tenant: "acme", Ops: []storage.Op{put(storage.TenantSeqKey(), "x", 1)}},
		"record over the sequence of a new tenant": {Tenant: "fresh", Ops: []storage.Op{put(storage.TenantSeqKey(), "x", 1)}},
	} {
		before := tenantHash(t, s, c.Tenant)
		res, err := s.Apply([]storage.Entry{{Index: s.AppliedIndex() + 1, Data: storage.EncodeCommand(c)}})
		if err != nil {
			t.Fatalf("%s: Apply failed: %v", name, err)
		}
		if !errors.Is(res[0].Err, storage.ErrCorrupt) {
			t.Fatalf("%s: %+v, want an invalid-command result", name, res[0])
		}
		if !bytes.Equal(before, tenantHash(t, s, c.Tenant)) {
			t.Fatalf("%s: wrote", name)
		}
		if err := s.Healthy(); err != nil {
			t.Fatalf("%s: store unhealthy: %v", name, err)
		}
		if res := a.apply(&storage.Command{Tenant: c.Tenant, Ops: []storage.Op{add(storage.K("ok"), 1)}}); res.Err != nil {
			t.Fatalf("%s: next command: %v", name, res.Err)
		}
	}
}

func TestApplyRefs(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	v := s.Tenant("acme")
	create := func(id string) storage.Result {
		return a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{
			add(storage.K("ctr", "task"), 1),
			{Type: storage.OpPut, Key: storage.K("task", id), Value: []byte(id), Version: 1, StampRef: 1, Stamp: 99},
			{Type: storage.OpPut, Key: storage.K("ix", "num"), Value: []byte(id), Version: 1, KeyRef: 1},
			{Type: storage.OpPut, Key: storage.K("ix", "both"), Value: []byte(id), Version: 1, KeyRef: 1, StampRef: 1},
		}})
	}
	for i, id := range []string{"a", "b", "c"} {
		res := create(id)
		n := uint64(i + 1)
		if res.Err != nil || res.Values[0] != int64(n) || res.Values[1] != 0 {
			t.Fatalf("create %s: %+v", id, res)
		}
		rec, err := v.Get(storage.K("task", id))
		if err != nil || rec.Stamp != n {
			t.Fatalf("task %s: stamp %d (%v), want %d", id, rec.Stamp, err, n)
		}
		rec, err = v.Get(storage.K("ix", "num").AddUint(n))
		if err != nil || string(rec.Value) != id || rec.Stamp != 0 {
			t.Fatalf("index ix/num/%d: %+v, %v", n, rec, err)
		}
		if rec, err = v.Get(storage.K("ix", "both").AddUint(n)); err != nil || rec.Stamp != n {
			t.Fatalf("ix/both/%d: %+v, %v", n, rec, err)
		}
	}
	// Without StampRef the op's own Stamp is kept.
	a.apply(&storage.Command{Tenant: "acme", Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("plain"), Version: 1, Stamp: 42, KeyID: 9}}})
	if rec, err := v.Get(storage.K("plain")); err != nil || rec.Stamp != 42 || rec.KeyID != 9 || rec.Version != 1 {
		t.Fatalf("plain record: %+v, %v", rec, err)
	}

	invalid := map[string][]storage.Op{
		"stampref to a put":     {put(storage.K("x"), "", 1), {Type: storage.OpPut, Key: storage.K("y"), StampRef: 1}},
		"keyref to a delete":    {del(storage.K("x")), {Type: storage.OpPut, Key: storage.K("y"), KeyRef: 1}},
		"keyref to itself":      {{Type: storage.OpPut, Key: storage.K("y"), KeyRef: 1}},
		"keyref forward":        {{Type: storage.OpPut, Key: storage.K("y"), KeyRef: 2}, add(storage.K("c"), 1)},
		"stampref out of range": {add(storage.K("c"), 1), {Type: storage.OpPut, Key: storage.K("y"), StampRef: 9}},
		"empty key":             {put(nil, "x", 1)},
		"empty add key":         {add(nil, 1)},
	}
	other := openStore(t, t.TempDir(), storage.Options{})
	for name, ops := range invalid {
		before := tenantHash(t, s, "acme")
		c := &storage.Command{RequestID: "bad-" + name, Tenant: "acme", Ops: append([]storage.Op{put(storage.K("first"), "x", 1)}, ops...)}
		res := a.apply(c)
		if !errors.Is(res.Err, storage.ErrCorrupt) || res.Seq != 0 {
			t.Fatalf("%s: %+v, want an invalid-command result", name, res)
		}
		if !bytes.Equal(before, tenantHash(t, s, "acme")) {
			t.Fatalf("%s: an invalid command wrote", name)
		}
		// Deterministic: another store gives the same error, and the
		// remembered result replays it.
		res2 := applier{t, other}.apply(c)
		if res2.Err == nil || res2.Err.Error() != res.Err.Error() {
			t.Fatalf("%s: %v on one store, %v on another", name, res.Err, res2.Err)
		}
		dup := a.apply(c)
		if !dup.Duplicate || dup.Err == nil || dup.Err.Error() != res.Err.Error() || !errors.Is(dup.Err, storage.ErrCorrupt) {
			t.Fatalf("%s: replayed result %+v", name, dup)
		}
	}
}

func TestApplyDedupe(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	var observed []uint64
	done := make(chan struct{}, 100)
	s.Observe(func(batch []storage.Applied) {
		for _, ap := range batch {
			observed = append(observed, ap.Index)
		}
		done <- struct{}{}
	})
	c := &storage.Command{RequestID: "req-1", Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1), put(storage.K("task", "1"), "x", 1)}}
	first := a.apply(c)
	<-done
	if first.Err != nil || first.Index != 1 || first.Seq != 1 || first.Values[0] != 1 {
		t.Fatalf("first: %+v", first)
	}
	before := tenantHash(t, s, "acme")
	// Re-applied later (a re-proposal after a leader change).
	a.apply(&storage.Command{Tenant: "other", Ops: []storage.Op{put(storage.K("x"), "x", 1)}})
	<-done
	dup := a.apply(c)
	if !dup.Duplicate || dup.Index != first.Index || dup.Seq != first.Seq || !slices.Equal(dup.Values, first.Values) || dup.Err != nil {
		t.Fatalf("duplicate: %+v, first %+v", dup, first)
	}
	if !bytes.Equal(before, tenantHash(t, s, "acme")) {
		t.Fatal("a duplicate wrote")
	}
	if s.AppliedIndex() != 3 {
		t.Fatalf("applied index %d after a duplicate", s.AppliedIndex())
	}
	// Two copies in one batch: the second is the duplicate.
	idx := a.next()
	out, err := s.Apply([]storage.Entry{
		{Index: idx, Data: storage.EncodeCommand(&storage.Command{RequestID: "req-2", Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}})},
		{Index: idx + 1, Data: storage.EncodeCommand(&storage.Command{RequestID: "req-2", Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if out[0].Duplicate || !out[1].Duplicate || out[1].Values[0] != 2 || out[1].Index != idx {
		t.Fatalf("in-batch duplicate: %+v", out)
	}
	if val, _ := counter(t, s.Tenant("acme"), storage.K("ctr")); val != 2 {
		t.Fatalf("counter %d", val)
	}
	// A refused command is remembered with its refusal.
	conflict := &storage.Command{RequestID: "req-3", Tenant: "acme", Preconditions: []storage.Precondition{{Key: storage.K("task", "1"), Version: 7}}, Ops: []storage.Op{put(storage.K("task", "1"), "y", 8)}}
	r1 := a.apply(conflict)
	r2 := a.apply(conflict)
	var ce *storage.ConflictError
	if !errors.Is(r1.Err, storage.ErrConflict) || !r2.Duplicate || !errors.As(r2.Err, &ce) || ce.Expected != 7 || ce.Actual != 1 {
		t.Fatalf("refused then replayed: %+v / %+v", r1, r2)
	}
	if !slices.Equal(observed, []uint64{1, 2, idx}) {
		t.Fatalf("observers saw %v; want only applied, non-duplicate commands", observed)
	}
}

// TestApplyDedupeWindow: a request ID is remembered for DedupeWindow log
// entries, whatever those entries are, and the table stays bounded.
func TestApplyDedupeWindow(t *testing.T) {
	const window = 4
	cmdWithID := func(id string) *storage.Command {
		return &storage.Command{RequestID: id, Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}}
	}
	t.Run("request IDs only", func(t *testing.T) {
		s := openStore(t, t.TempDir(), storage.Options{DedupeWindow: window})
		a := applier{t, s}
		a.apply(cmdWithID("A")) // 1
		for _, id := range []string{"B", "C", "D"} {
			a.apply(cmdWithID(id)) // 2..4
		}
		if !a.apply(cmdWithID("A")).Duplicate { // 5: 4 entries later, still remembered
			t.Fatal("A forgotten within the window")
		}
		a.apply(cmdWithID("E"))                // 6
		if a.apply(cmdWithID("A")).Duplicate { // 7: 6 entries later
			t.Fatal("A remembered past the window")
		}
	})
	// The entry that closes A's window is not a command with a request ID.
	for name, fifth := range map[string]storage.Entry{
		"no request ID": {Data: storage.EncodeCommand(&storage.Command{Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}})},
		"raft no-op":    {},
		"undecodable":   {Data: []byte("garbage")},
		"duplicate":     {Data: storage.EncodeCommand(cmdWithID("B"))},
		"refused":       {Data: storage.EncodeCommand(&storage.Command{RequestID: "F", Tenant: "acme", Ops: []storage.Op{bounded(storage.K("c"), 1, 0, 0, "l")}})},
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), storage.Options{DedupeWindow: window})
			a := applier{t, s}
			for _, id := range []string{"A", "B", "C", "D"} {
				a.apply(cmdWithID(id)) // 1..4
			}
			fifth.Index = 5
			if _, err := s.Apply([]storage.Entry{fifth}); err != nil {
				t.Fatal(err)
			}
			if res := a.apply(cmdWithID("A")); res.Duplicate { // 6
				t.Fatalf("A (index 1) still remembered at index 6 with a window of %d", window)
			}
			if res := a.apply(cmdWithID("D")); !res.Duplicate { // 7: D (index 4) is within the window
				t.Fatal("D forgotten within the window")
			}
		})
	}
	t.Run("bounded table", func(t *testing.T) {
		s := openStore(t, "mem", storage.Options{FS: vfs.NewMem(), DedupeWindow: 10})
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 600; i++ {
			var e storage.Entry
			e.Index = s.AppliedIndex() + 1
			switch r.IntN(4) {
			case 0:
				e.Data = storage.EncodeCommand(cmdWithID(fmt.Sprint("r", i)))
			case 1:
				e.Data = storage.EncodeCommand(cmdWithID(fmt.Sprint("r", r.IntN(i+1)))) // maybe a duplicate
			case 2:
				e.Data = storage.EncodeCommand(&storage.Command{Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}})
			case 3: // a raft no-op
			}
			if _, err := s.Apply([]storage.Entry{e}); err != nil {
				t.Fatal(err)
			}
		}
		reqs, idx, err := s.DedupeEntries()
		if err != nil {
			t.Fatal(err)
		}
		if reqs > 10 || idx > 10 || reqs != idx {
			t.Fatalf("dedupe table holds %d request IDs and %d index rows; window is 10", reqs, idx)
		}
	})
}

func TestApplyTenantSeq(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	ok := func(tenant string) *storage.Command {
		return &storage.Command{Tenant: tenant, Ops: []storage.Op{put(storage.K("x"), "x", 1)}}
	}
	refused := func(tenant string) *storage.Command {
		return &storage.Command{Tenant: tenant, Preconditions: []storage.Precondition{{Key: storage.K("nope"), Version: 3}}, Ops: []storage.Op{put(storage.K("x"), "x", 1)}}
	}
	steps := []struct {
		c   *storage.Command
		seq uint64
	}{
		{ok("a"), 1}, {ok("a"), 2}, {refused("a"), 0}, {ok("b"), 1}, {ok("a"), 3},
		{&storage.Command{Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("p"), Version: 1}}}, 0},
		{&storage.Command{Tenant: "a", Ops: []storage.Op{bounded(storage.K("c"), 1, 0, 0, "l")}}, 0},
		{&storage.Command{Tenant: "a", Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("q"), Version: 1}}}, 4},
		{&storage.Command{Tenant: "ab"}, 1}, {ok("b"), 2}, {ok("a"), 5},
	}
	for i, st := range steps {
		if res := a.apply(st.c); res.Seq != st.seq {
			t.Fatalf("step %d: Seq %d, want %d (%+v)", i, res.Seq, st.seq, res)
		}
	}
	if val, _ := counter(t, s.Tenant("a"), storage.TenantSeqKey()); val != 5 {
		t.Fatalf("stored sequence of a: %d", val)
	}
	if val, _ := counter(t, s.Tenant("b"), storage.TenantSeqKey()); val != 2 {
		t.Fatalf("stored sequence of b: %d", val)
	}
}

func TestApplyDeleteRange(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	tenants := []string{"a", "ab", "abc", "ab\x00", "ab/", "b"}
	for _, tn := range tenants {
		a.apply(&storage.Command{Tenant: tn, Ops: []storage.Op{
			put(storage.K("task", "1"), tn, 1), put(storage.K("task", "2"), tn, 1), put(storage.K("task2"), tn, 1),
			put(storage.K("tas"), tn, 1), put(storage.K("ix", "a"), tn, 1), put(storage.K("ix", "b"), tn, 1), put(storage.K("ix", "c"), tn, 1),
		}})
	}
	a.apply(&storage.Command{Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("ws", "ab"), Version: 1}}})
	hashes := map[string][]byte{}
	for _, tn := range tenants {
		hashes[tn] = tenantHash(t, s, tn)
	}
	sys := keysOf(t, s.Sys(), nil)

	// Under a key: exactly the keys under it, not task2 or tas.
	a.apply(&storage.Command{Tenant: "ab", Ops: []storage.Op{{Type: storage.OpDeleteRange, Key: storage.K("task")}}})
	// [Key, End).
	a.apply(&storage.Command{Tenant: "ab", Ops: []storage.Op{{Type: storage.OpDeleteRange, Key: storage.K("ix", "a"), End: storage.K("ix", "c")}}})
	// End before Key: nothing.
	a.apply(&storage.Command{Tenant: "ab", Ops: []storage.Op{{Type: storage.OpDeleteRange, Key: storage.K("z"), End: storage.K("a")}}})
	got := keysOf(t, s.Tenant("ab"), nil)
	want := []string{"ix/c", "tas", "task2", "~seq"}
	if !slices.Equal(got, want) {
		t.Fatalf("after range deletes: %q, want %q", got, want)
	}
	for _, tn := range tenants {
		if tn != "ab" && !bytes.Equal(hashes[tn], tenantHash(t, s, tn)) {
			t.Fatalf("tenant %q changed by a delete in tenant ab", tn)
		}
	}

	// Empty key: the whole tenant, and nothing else.
	res := a.apply(&storage.Command{Tenant: "ab", Ops: []storage.Op{{Type: storage.OpDeleteRange}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, k := range keysOf(t, s.Tenant("ab"), nil) {
		if k != storage.TenantSeqKey().String() {
			t.Fatalf("tenant ab still holds %s after its range delete", k)
		}
	}
	for _, tn := range tenants {
		if tn != "ab" && !bytes.Equal(hashes[tn], tenantHash(t, s, tn)) {
			t.Fatalf("tenant %q changed by deleting tenant ab", tn)
		}
	}
	if !slices.Equal(sys, keysOf(t, s.Sys(), nil)) {
		t.Fatal("platform records changed by deleting tenant ab")
	}
}

func TestApplyEmptyTenantRefusesTenantSpace(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	for name, c := range map[string]*storage.Command{
		"op":           {Ops: []storage.Op{put(storage.K("x"), "x", 1)}},
		"delete range": {Ops: []storage.Op{{Type: storage.OpDeleteRange}}},
		"add":          {Ops: []storage.Op{add(storage.K("c"), 1)}},
		"precondition": {Preconditions: []storage.Precondition{{Key: storage.K("x")}}, Ops: []storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("x"), Version: 1}}},
	} {
		keys, _ := s.RawKeys()
		res := a.apply(c)
		if !errors.Is(res.Err, storage.ErrCorrupt) {
			t.Fatalf("%s: %v, want an invalid-command result", name, res.Err)
		}
		after, _ := s.RawKeys()
		// Only the applied index may change.
		if len(after) != max(len(keys), 1) {
			t.Fatalf("%s: wrote %d keys", name, len(after)-len(keys))
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Tenant(\"\") did not panic")
			}
		}()
		s.Tenant("")
	}()
}

func TestApplyEntriesAndIndex(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inc := storage.EncodeCommand(&storage.Command{Tenant: "acme", Ops: []storage.Op{add(storage.K("ctr"), 1)}})
	res, err := s.Apply([]storage.Entry{{Index: 1, Data: inc}, {Index: 2}, {Index: 3, Data: []byte{1, 2, 3}}, {Index: 4, Data: inc}})
	if err != nil {
		t.Fatal(err)
	}
	if res[1].Err != nil || res[1].Index != 2 {
		t.Fatalf("empty entry: %+v", res[1])
	}
	if !errors.Is(res[2].Err, storage.ErrCorrupt) || res[2].Seq != 0 || res[2].Values != nil {
		t.Fatalf("undecodable entry: %+v", res[2])
	}
	if s.AppliedIndex() != 4 {
		t.Fatalf("applied %d", s.AppliedIndex())
	}
	// A gap is refused and writes nothing.
	if _, err := s.Apply([]storage.Entry{{Index: 5, Data: inc}, {Index: 7, Data: inc}}); err == nil {
		t.Fatal("gap accepted")
	}
	if s.AppliedIndex() != 4 {
		t.Fatalf("applied %d after a refused gap", s.AppliedIndex())
	}
	if val, _ := counter(t, s.Tenant("acme"), storage.K("ctr")); val != 2 {
		t.Fatalf("counter %d", val)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]storage.Entry{{Index: 5}}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}

	// Reopen: the index survived; a restart replays entries 3..6 and only
	// 5 and 6 apply.
	s = openStore(t, dir, storage.Options{})
	if s.AppliedIndex() != 4 {
		t.Fatalf("applied index after reopen: %d", s.AppliedIndex())
	}
	res, err = s.Apply([]storage.Entry{{Index: 3, Data: inc}, {Index: 4, Data: inc}, {Index: 5, Data: inc}, {Index: 6, Data: inc}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || !res[1].Duplicate || res[2].Duplicate || res[3].Values[0] != 4 {
		t.Fatalf("replay: %+v", res)
	}
	if val, _ := counter(t, s.Tenant("acme"), storage.K("ctr")); val != 4 {
		t.Fatalf("counter %d after replay", val)
	}
	// Entirely old entries change nothing.
	h := tenantHash(t, s, "acme")
	if _, err := s.Apply([]storage.Entry{{Index: 1, Data: inc}, {Index: 2, Data: inc}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, tenantHash(t, s, "acme")) || s.AppliedIndex() != 6 {
		t.Fatal("old entries applied again")
	}
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
}

func TestViewGetAndScan(t *testing.T) {
	s := openStore(t, t.TempDir(), storage.Options{})
	a := applier{t, s}
	v := s.Tenant("acme")
	if _, err := v.Get(storage.K("nope")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	var ops []storage.Op
	for i := 0; i < 10; i++ {
		ops = append(ops, storage.Op{Type: storage.OpPut, Key: storage.K("t").AddUint(uint64(i)), Value: []byte{byte(i)}, Version: uint64(i + 1), Stamp: uint64(100 + i), KeyID: uint32(i)})
	}
	a.apply(&storage.Command{Tenant: "acme", Ops: ops})
	rec, err := v.Get(storage.K("t").AddUint(3))
	if err != nil || rec.Version != 4 || rec.Stamp != 103 || rec.KeyID != 3 || !bytes.Equal(rec.Value, []byte{3}) {
		t.Fatalf("get: %+v, %v", rec, err)
	}
	var got []uint64
	err = v.Scan(storage.K("t"), storage.ScanOptions{After: storage.K("t").AddUint(2)}, func(k storage.Key, r storage.Record) error {
		p, _ := k.Parts()
		n, _ := storage.Uint(p[1])
		got = append(got, n)
		if n == 5 {
			return storage.ErrStop
		}
		return nil
	})
	if err != nil || !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("scan after 2: %v, %v", got, err)
	}
	got = nil
	_ = v.Scan(storage.K("t"), storage.ScanOptions{After: storage.K("t").AddUint(2), Reverse: true}, func(k storage.Key, r storage.Record) error {
		p, _ := k.Parts()
		n, _ := storage.Uint(p[1])
		got = append(got, n)
		return nil
	})
	if !slices.Equal(got, []uint64{1, 0}) {
		t.Fatalf("reverse scan before 2: %v", got)
	}
	boom := errors.New("boom")
	if err := v.Scan(nil, storage.ScanOptions{}, func(storage.Key, storage.Record) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
}

// randomCommand draws a command from a stream that exercises every op,
// preconditions that hold or not, references, bounds and duplicates.
func randomCommand(r *rand.Rand, tenants []string, i int) *storage.Command {
	tn := tenants[r.IntN(len(tenants))]
	key := func() storage.Key {
		return storage.K([]string{"task", "ix", "ctr", "x"}[r.IntN(4)], fmt.Sprint(r.IntN(8)))
	}
	c := &storage.Command{Tenant: tn, Kind: "rand", At: int64(i)}
	if r.IntN(3) == 0 {
		c.RequestID = fmt.Sprint("rq", max(0, i-r.IntN(80))) // repeats, within the window of 50 and past it
	}
	if r.IntN(4) == 0 {
		c.Preconditions = append(c.Preconditions, storage.Precondition{Key: key(), Version: []uint64{0, 1, 2, storage.AnyVersion}[r.IntN(4)]})
	}
	for n := 1 + r.IntN(6); n > 0; n-- {
		switch r.IntN(10) {
		case 0, 1, 2:
			c.Ops = append(c.Ops, storage.Op{Type: storage.OpPut, Key: key(), Value: []byte(fmt.Sprint(r.Int())), Version: uint64(r.IntN(3) + 1)})
		case 3:
			c.Ops = append(c.Ops, del(key()))
		case 4:
			if r.IntN(5) == 0 {
				c.Ops = append(c.Ops, storage.Op{Type: storage.OpDeleteRange, Key: storage.K("x")})
			} else {
				c.Ops = append(c.Ops, storage.Op{Type: storage.OpDeleteRange, Key: key(), End: key()})
			}
		case 5, 6:
			c.Ops = append(c.Ops, bounded(storage.K("ctr", fmt.Sprint(r.IntN(3))), int64(r.IntN(5)-2), -3, 6, "lim"))
		case 7:
			c.Ops = append(c.Ops, add(storage.K("seqs"), 1))
		case 8, 9:
			// A reference to the last op: valid when that op is an OpAdd;
			// now and then one past it, which is never valid.
			ref := uint16(len(c.Ops) + r.IntN(8)/7)
			c.Ops = append(c.Ops, storage.Op{Type: storage.OpPut, Key: storage.K("ix", "n"), Version: 1, KeyRef: ref, StampRef: ref * uint16(r.IntN(2))})
		}
	}
	if r.IntN(20) == 0 {
		c.Tenant = "" // mostly refused; sys ops apply
		c.Ops = append(c.Ops, storage.Op{Type: storage.OpPut, Space: storage.SpaceSys, Key: key(), Version: 1})
	}
	return c
}

func sameResult(a, b storage.Result) bool {
	ea, eb := "", ""
	if a.Err != nil {
		ea = a.Err.Error()
	}
	if b.Err != nil {
		eb = b.Err.Error()
	}
	return a.Index == b.Index && a.Seq == b.Seq && slices.Equal(a.Values, b.Values) && ea == eb && a.Duplicate == b.Duplicate
}

// TestApplyDeterminism applies one random log to stores that batch it
// differently (and one that restarts) and compares every result and every
// tenant's hash.
func TestApplyDeterminism(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 5))
	tenants := []string{"a", "ab", "abc", "a\x00"}
	var entries []storage.Entry
	for i := 1; i <= 3000; i++ {
		e := storage.Entry{Index: uint64(i)}
		switch r.IntN(40) {
		case 0: // raft no-op
		case 1:
			e.Data = []byte{1, byte(r.IntN(256))}
		default:
			e.Data = storage.EncodeCommand(randomCommand(r, tenants, i))
		}
		entries = append(entries, e)
	}
	opts := storage.Options{DedupeWindow: 50}
	one := openStore(t, "one", storage.Options{FS: vfs.NewMem(), DedupeWindow: 50})
	many := openStore(t, t.TempDir(), opts)
	restartDir, restartOpts := "restarted", storage.Options{FS: vfs.NewMem(), DedupeWindow: 50}
	restarted, err := storage.Open(restartDir, restartOpts)
	if err != nil {
		t.Fatal(err)
	}
	var resOne, resMany, resRestart []storage.Result
	for _, e := range entries {
		out, err := one.Apply([]storage.Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		resOne = append(resOne, out...)
	}
	for rest := entries; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(64))
		out, err := many.Apply(rest[:n])
		if err != nil {
			t.Fatal(err)
		}
		resMany = append(resMany, out...)
		rest = rest[n:]
	}
	for i, e := range entries {
		if i%700 == 699 {
			if err := restarted.Close(); err != nil {
				t.Fatal(err)
			}
			if restarted, err = storage.Open(restartDir, restartOpts); err != nil {
				t.Fatal(err)
			}
		}
		out, err := restarted.Apply([]storage.Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		resRestart = append(resRestart, out...)
	}
	defer restarted.Close()

	applied, refused, dups := 0, 0, 0
	for i := range entries {
		if !sameResult(resOne[i], resMany[i]) || !sameResult(resOne[i], resRestart[i]) {
			t.Fatalf("entry %d: results differ:\n%+v\n%+v\n%+v", i+1, resOne[i], resMany[i], resRestart[i])
		}
		switch {
		case resOne[i].Duplicate:
			dups++
		case resOne[i].Err != nil:
			refused++
		default:
			applied++
		}
	}
	if applied < 800 || refused < 100 || dups < 50 {
		t.Fatalf("the stream is too tame: %d applied, %d refused, %d duplicates", applied, refused, dups)
	}
	for _, tn := range tenants {
		h := tenantHash(t, one, tn)
		if !bytes.Equal(h, tenantHash(t, many, tn)) || !bytes.Equal(h, tenantHash(t, restarted, tn)) {
			t.Fatalf("tenant %q: hashes differ", tn)
		}
	}
	if !slices.Equal(keysOf(t, one.Sys(), nil), keysOf(t, many.Sys(), nil)) {
		t.Fatal("platform keys differ")
	}
	t.Logf("%d entries: %d applied, %d refused, %d duplicates", len(entries), applied, refused, dups)
}
