package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// TestDedicateMoveAbortResume drives the move on three in-process members:
// the router's answers before, during and after it; a mover that stops
// after the hash (the group is seeded on every member, writes are refused,
// reads still served, a command routed before the fence fails into the
// refusal); --abort (groups closed and removed everywhere, writes accepted
// again); a full move (new group ID, the shared stores no longer hold the
// workspace, writes go to the group); and a restart that reopens the group.
func TestDedicateMoveAbortResume(t *testing.T) {
	c, ds, startDed := dedicatedCluster(t)
	ctx := context.Background()
	const ten, other = "t-ded", "t-other"
	leader := c.Leader(10 * time.Second)
	for i := range 20 {
		for _, tn := range []string{ten, other} {
			clustertest.Propose(t, leader, &storage.Command{RequestID: fmt.Sprintf("seed-%s-%d", tn, i), Tenant: tn, Kind: "test.put",
				Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("rec", fmt.Sprint(i)), Value: []byte("v"), Version: 1}}}, 10*time.Second)
		}
	}
	m2 := c.Member(2)
	router := groupRouter{d: ds[2], shared: engine.Route{Log: retryLog{m2.Node}, Store: m2.Store}}
	seq := 0
	put := func(r engine.Route, tn string) error {
		seq++
		res, err := r.Log.Propose(ctx, &storage.Command{RequestID: fmt.Sprintf("w-%d", seq), Tenant: tn, Kind: "test.put",
			Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("w", fmt.Sprint(seq)), Value: []byte("w"), Version: 1}}})
		if err == nil && res.Err != nil {
			err = res.Err
		}
		return err
	}
	moving := func(err error) bool {
		var ee *engine.Error
		return errors.As(err, &ee) && ee.Code == "workspace_moving" && errors.Is(err, engine.ErrUnavailable)
	}

	// Shared: writes go through.
	held := router.Workspace(ten)
	if err := put(router.Workspace(ten), ten); err != nil {
		t.Fatalf("shared write: %v", err)
	}

	// A mover that stops after the hash: the group is seeded everywhere.
	ds[1].stopAfter = "hashed"
	st, err := ds[1].Dedicate(ctx, ten, false)
	if err != nil || st.State != routeSeeding {
		t.Fatalf("dedicate (stopped after the hash): %+v %v", st, err)
	}
	first := st.Group
	clustertest.Poll(t, 20*time.Second, "group seeded on every member", func() (bool, string) {
		for id, d := range ds {
			if d.get(first) == nil {
				return false, fmt.Sprintf("not open on %d", id)
			}
		}
		return true, ""
	})
	if err := put(router.Workspace(ten), ten); !moving(err) {
		t.Errorf("write while seeding: %v, want workspace_moving", err)
	}
	if err := put(held, ten); !moving(err) {
		t.Errorf("write routed before the fence, applied after: %v, want workspace_moving", err)
	}
	if _, err := router.Workspace(ten).Store.Tenant(ten).Get(storage.K("rec", "3")); err != nil {
		t.Errorf("read while seeding: %v", err)
	}
	if err := put(router.Workspace(other), other); err != nil {
		t.Errorf("the other workspace's write: %v", err)
	}

	// Abort: the groups go, writes come back.
	if st, err := ds[3].Dedicate(ctx, ten, true); err != nil || st.State != "shared" {
		t.Fatalf("abort: %+v %v", st, err)
	}
	clustertest.Poll(t, 20*time.Second, "aborted group closed and removed", func() (bool, string) {
		for id, d := range ds {
			if d.get(first) != nil {
				return false, fmt.Sprintf("still open on %d", id)
			}
			if _, err := os.Stat(d.groupDir(first)); err == nil {
				return false, fmt.Sprintf("directory left on %d", id)
			}
		}
		return true, ""
	})
	if err := put(router.Workspace(ten), ten); err != nil {
		t.Fatalf("write after the abort: %v", err)
	}

	// The full move, resumed from nothing on another member.
	ds[1].stopAfter = ""
	st, err = ds[2].Dedicate(ctx, ten, false)
	if err != nil || st.State != routeDedicated || st.Group == first || st.Group == 0 {
		t.Fatalf("dedicate: %+v %v", st, err)
	}
	group := st.Group
	if st, err := ds[1].Dedicate(ctx, ten, false); err != nil || st.State != routeDedicated {
		t.Fatalf("dedicate again: %+v %v", st, err)
	}
	for range 5 {
		if err := put(router.Workspace(ten), ten); err != nil {
			t.Fatalf("write after the move: %v", err)
		}
	}
	if err := put(router.Workspace(other), other); err != nil {
		t.Errorf("the other workspace's write: %v", err)
	}
	c.WaitConverged(20 * time.Second)
	for _, m := range c.Members() {
		if n := countKeys(t, m.Store, ten); n != 0 {
			t.Errorf("member %d: %d keys of the workspace left in the shared store", m.ID, n)
		}
		if n := countKeys(t, m.Store, other); n == 0 {
			t.Errorf("member %d: the other workspace is gone", m.ID)
		}
	}
	groupHashes := func() (bool, string) {
		var ref []byte
		var refIdx uint64
		for id, d := range ds {
			g := d.get(group)
			if g == nil {
				return false, fmt.Sprintf("group not open on %d", id)
			}
			h, err := g.store.TenantHash(ten)
			if err != nil {
				return false, err.Error()
			}
			if ref == nil {
				ref, refIdx = h, g.store.AppliedIndex()
			} else if !bytes.Equal(h, ref) || g.store.AppliedIndex() != refIdx {
				return false, fmt.Sprintf("member %d differs", id)
			}
		}
		return true, ""
	}
	clustertest.Poll(t, 20*time.Second, "group stores converge", groupHashes)
	if n := countKeys(t, ds[1].get(group).store, ten); n < 20+1+5 {
		t.Errorf("group store holds %d records of the workspace", n)
	}

	// Restart member 3: it reopens the group and catches up.
	m3 := c.Member(3)
	ds[3].Close()
	m3.Stop()
	if err := put(router.Workspace(ten), ten); err != nil {
		t.Fatalf("write with member 3 down: %v", err)
	}
	m3.Start()
	startDed(m3)
	clustertest.Poll(t, 20*time.Second, "group stores converge after the restart", groupHashes)
}

// dedicatedCluster starts three in-process members, each running its
// dedicated groups (ds, by member ID); startDed starts them again on a
// restarted member.
func dedicatedCluster(t *testing.T) (c *clustertest.Cluster, ds map[uint64]*dedicated, startDed func(*clustertest.Member)) {
	c = clustertest.New(t, clustertest.Options{Nodes: 3})
	ds = map[uint64]*dedicated{}
	startDed = func(m *clustertest.Member) {
		cfg := defaultConfig()
		cfg.Data, cfg.Cluster.NodeID = m.Dir, m.ID
		d := newDedicated(cfg, slog.New(slog.DiscardHandler), m.Node, m.Store, false)
		d.start()
		ds[m.ID] = d
	}
	for _, m := range c.Members() {
		startDed(m)
	}
	t.Cleanup(func() {
		for _, d := range ds {
			d.Close()
		}
	})
	return c, ds, startDed
}

func countKeys(t *testing.T, st *storage.Store, tenant string) int {
	t.Helper()
	n := 0
	if err := st.Tenant(tenant).Scan(nil, storage.ScanOptions{}, func(storage.Key, storage.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
