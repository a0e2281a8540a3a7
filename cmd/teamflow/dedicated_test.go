package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
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
	seedRecords(t, leader, ten, 20)
	seedRecords(t, leader, other, 20)
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
		var same sameStore
		for id, d := range ds {
			g := d.get(group)
			if g == nil {
				return false, fmt.Sprintf("group not open on %d", id)
			}
			if ok, why := same.check(id, g.store, ten); !ok {
				return false, why
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
	startDed = func(m *clustertest.Member) { ds[m.ID] = runDedicated(t, m) }
	for _, m := range c.Members() {
		startDed(m)
	}
	return c, ds, startDed
}

// sameStore compares each member's copy of a group store with the first
// one checked: the tenant's hash and the applied index must be equal.
type sameStore struct {
	hash  []byte
	index uint64
}

func (r *sameStore) check(id uint64, st *storage.Store, tenant string) (bool, string) {
	h, err := st.TenantHash(tenant)
	if err != nil {
		return false, err.Error()
	}
	if r.hash == nil {
		r.hash, r.index = h, st.AppliedIndex()
		return true, ""
	}
	if !bytes.Equal(h, r.hash) || st.AppliedIndex() != r.index {
		return false, fmt.Sprintf("member %d's store differs (applied %d, first %d)", id, st.AppliedIndex(), r.index)
	}
	return true, ""
}

// runDedicated runs m's dedicated groups as node.go does, without search
// indexes; they are closed when the test ends, before the cluster.
func runDedicated(t *testing.T, m *clustertest.Member) *dedicated {
	return startDedicated(t, m, false)
}

// startDedicated is runDedicated, with a search index per group if search.
func startDedicated(t *testing.T, m *clustertest.Member, search bool) *dedicated {
	cfg := defaultConfig()
	cfg.Data, cfg.Cluster.NodeID = m.Dir, m.ID
	d := newDedicated(cfg, slog.New(slog.DiscardHandler), m.Node, m.Store, search)
	d.start()
	t.Cleanup(d.Close)
	return d
}

// seedRecords writes records rec/0 .. rec/n-1 of tenant through the shared
// group (a workspace to move).
func seedRecords(t *testing.T, leader *clustertest.Member, tenant string, n int) {
	t.Helper()
	for i := range n {
		clustertest.Propose(t, leader, &storage.Command{RequestID: fmt.Sprintf("seed-%s-%d", tenant, i), Tenant: tenant, Kind: "test.put",
			Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("rec", fmt.Sprint(i)), Value: []byte("v"), Version: 1}}}, 10*time.Second)
	}
}

func countKeys(t *testing.T, st *storage.Store, tenant string) int {
	t.Helper()
	n := 0
	if err := st.Tenant(tenant).Scan(nil, storage.ScanOptions{}, func(storage.Key, storage.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDedicateMembershipFollows changes the cluster's membership while a
// workspace lives in a dedicated group: a fourth member joins the shared
// group (learner, then voter) and the group follows on every member (the
// new one opens it empty and gets the data by snapshot, then serves the
// workspace); then a member that leads both groups is removed from the
// shared group, closes its groups, and the group drops it and keeps
// taking writes.
func TestDedicateMembershipFollows(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	ds := map[uint64]*dedicated{}
	for _, m := range c.Members() {
		ds[m.ID] = runDedicated(t, m)
	}
	ctx := context.Background()
	const ten = "t-ded"
	leader := c.Leader(10 * time.Second)
	seedRecords(t, leader, ten, 20)
	st, err := ds[1].Dedicate(ctx, ten, false)
	if err != nil || st.State != routeDedicated {
		t.Fatalf("dedicate: %+v %v", st, err)
	}
	group := st.Group
	router := func(id uint64) groupRouter {
		m := c.Member(id)
		return groupRouter{d: ds[id], shared: engine.Route{Log: retryLog{m.Node}, Store: m.Store}}
	}
	// put writes key through member id's router, retrying (same request
	// ID) while the group elects a leader or the member opens it.
	put := func(id uint64, key string) {
		t.Helper()
		clustertest.Poll(t, 30*time.Second, "write "+key+" on member "+fmt.Sprint(id), func() (bool, string) {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := router(id).Workspace(ten).Log.Propose(rctx, &storage.Command{RequestID: "w-" + key, Tenant: ten, Kind: "test.put",
				Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("w", key), Value: []byte(key), Version: 1}}})
			if err == nil && res.Err != nil {
				err = res.Err
			}
			return err == nil, fmt.Sprint(err)
		})
	}
	readable := func(ids []uint64, key string) {
		t.Helper()
		clustertest.Poll(t, 30*time.Second, key+" readable", func() (bool, string) {
			for _, id := range ids {
				if _, err := router(id).Workspace(ten).Store.Tenant(ten).Get(storage.K("w", key)); err != nil {
					return false, fmt.Sprintf("member %d: %v", id, err)
				}
			}
			return true, ""
		})
	}
	// groupIs waits until the group on each of ids has exactly voters, no
	// learner, and the same store (hash and applied index).
	groupIs := func(ids []uint64, voters []uint64, removed []uint64) {
		t.Helper()
		clustertest.Poll(t, 60*time.Second, fmt.Sprintf("group %d with voters %v on members %v", group, voters, ids), func() (bool, string) {
			var same sameStore
			for _, id := range ids {
				g := ds[id].get(group)
				if g == nil {
					return false, fmt.Sprintf("not open on %d", id)
				}
				gs := g.raft.Status()
				var got []uint64
				for _, m := range gs.Members {
					if m.Learner {
						return false, fmt.Sprintf("member %d sees learner %d", id, m.ID)
					}
					got = append(got, m.ID)
				}
				slices.Sort(got)
				if !slices.Equal(got, voters) || !slices.Equal(gs.Removed, removed) {
					return false, fmt.Sprintf("member %d sees voters %v removed %v", id, got, gs.Removed)
				}
				if ok, why := same.check(id, g.store, ten); !ok {
					return false, why
				}
			}
			return true, ""
		})
	}
	put(1, "before-join")
	// lead is the shared group's leader (clustertest's Leader also waits
	// for every running member to know it, which a member not added yet
	// does not).
	lead := func() *clustertest.Member {
		t.Helper()
		var l *clustertest.Member
		clustertest.Poll(t, 10*time.Second, "a shared leader", func() (bool, string) {
			for _, m := range c.Running() {
				if m.Node.IsLeader() {
					l = m
					return true, ""
				}
			}
			return false, "none leads"
		})
		return l
	}

	// Join member 4: a learner of the shared group, then a voter.
	m4 := c.AddMember(4)
	ds[4] = runDedicated(t, m4)
	clustertest.Poll(t, 10*time.Second, "member 4 added as a learner", func() (bool, string) {
		err := lead().Node.AddLearner(ctx, 4, m4.Addr)
		return err == nil || errors.Is(err, cluster.ErrMember), fmt.Sprint(err)
	})
	clustertest.Poll(t, 60*time.Second, "member 4 promoted", func() (bool, string) {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := lead().Node.Promote(pctx, 4)
		if errors.Is(err, cluster.ErrNotMember) && slices.ContainsFunc(lead().Node.Status().Members,
			func(m cluster.Member) bool { return m.ID == 4 && !m.Learner }) {
			return true, "" // a retry after the promotion applied
		}
		return err == nil, fmt.Sprint(err)
	})
	all := []uint64{1, 2, 3, 4}
	groupIs(all, all, nil)
	if n := countKeys(t, ds[4].get(group).store, ten); n < 20+1 {
		t.Errorf("member 4's group store holds %d records of the workspace", n)
	}
	put(1, "after-join")
	put(4, "on-member-4")
	readable(all, "after-join")
	readable(all, "on-member-4")
	groupIs(all, all, nil)

	// Member 4 restarts: not a voter at the fence, it reopens the group
	// from its raft log (as a joiner, never bootstrapping) and catches up.
	ds[4].Close()
	m4.Stop()
	put(1, "while-4-down")
	m4.Start()
	ds[4] = runDedicated(t, m4)
	readable(all, "while-4-down")
	groupIs(all, all, nil)

	// A voter's removal waits for the groups (state.groupsFollowed): none
	// is behind now; against a fifth voter the group would be.
	sharedNow := lead().Node.Status()
	if b, err := ds[1].behind(sharedNow); err != nil || len(b) != 0 {
		t.Errorf("groups behind after they followed: %v %v", b, err)
	}
	sharedNow.Members = append(sharedNow.Members, cluster.Member{ID: 5, Addr: "127.0.0.1:1"})
	if b, err := ds[1].behind(sharedNow); err != nil || !slices.Equal(b, []uint64{group}) {
		t.Errorf("groups behind a fifth voter: %v %v, want [%d]", b, err, group)
	}

	// Remove member 2 while it leads the shared group: it applies its own
	// removal, so it knows, and closes its groups.
	clustertest.Poll(t, 30*time.Second, "member 2 removed while it leads", func() (bool, string) {
		if slices.Contains(c.Member(1).Node.Status().Removed, 2) {
			return true, ""
		}
		l := lead()
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if l.ID != 2 {
			return false, fmt.Sprint("transfer: ", l.Node.TransferLeadership(tctx, 2))
		}
		return false, fmt.Sprint("remove: ", l.Node.Remove(tctx, 2))
	})
	rest := []uint64{1, 3, 4}
	groupIs(rest, rest, []uint64{2})
	clustertest.Poll(t, 10*time.Second, "the removed member closes its groups", func() (bool, string) {
		return ds[2].get(group) == nil, "still open"
	})
	put(3, "after-remove")
	readable(rest, "after-remove")
	groupIs(rest, rest, []uint64{2})
}

// TestDedicatedNextMemberStep: the order in which a group follows the
// shared membership, and what it never does on a view that may lag.
func TestDedicatedNextMemberStep(t *testing.T) {
	mem := func(id uint64, learner bool) cluster.Member {
		return cluster.Member{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 7000+id), Learner: learner}
	}
	voters := func(ids ...uint64) []cluster.Member {
		var out []cluster.Member
		for _, id := range ids {
			out = append(out, mem(id, false))
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		shared, group cluster.Status
		want          memberStep
		ok            bool
	}{
		{"equal", cluster.Status{Members: voters(1, 2, 3)}, cluster.Status{Members: voters(1, 2, 3)}, memberStep{}, false},
		{"a shared learner is added as a learner", cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))}, cluster.Status{Members: voters(1, 2, 3)},
			memberStep{op: memberAdd, id: 4, addr: "127.0.0.1:7004"}, true},
		{"a learner waits for the shared promotion", cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))}, cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))},
			memberStep{}, false},
		{"promoted in the shared group", cluster.Status{Members: voters(1, 2, 3, 4)}, cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))},
			memberStep{op: memberPromote, id: 4}, true},
		{"a learner removed from the shared group", cluster.Status{Members: voters(1, 2, 3), Removed: []uint64{4}}, cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))},
			memberStep{op: memberRemove, id: 4}, true},
		{"add before remove", cluster.Status{Members: voters(1, 3, 4), Removed: []uint64{2}}, cluster.Status{Members: voters(1, 2, 3)},
			memberStep{op: memberAdd, id: 4, addr: "127.0.0.1:7004"}, true},
		{"remove once added", cluster.Status{Members: voters(1, 3, 4), Removed: []uint64{2}}, cluster.Status{Members: voters(1, 2, 3, 4)},
			memberStep{op: memberRemove, id: 2}, true},
		{"a member this view has not heard of is kept", cluster.Status{Members: voters(1, 2, 3)}, cluster.Status{Members: voters(1, 2, 3, 4)},
			memberStep{}, false},
		{"nor is its learner touched", cluster.Status{Members: voters(1, 2, 3)}, cluster.Status{Members: append(voters(1, 2, 3), mem(4, true))},
			memberStep{}, false},
		{"an ID the group removed is not added back", cluster.Status{Members: voters(1, 2, 3)}, cluster.Status{Members: voters(1, 3), Removed: []uint64{2}},
			memberStep{}, false},
	} {
		got, ok := nextMemberStep(tc.shared, tc.group)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestDedicatedStatusTable: cluster status lists each group's voters and
// learners, where an operator watches a membership change converge.
func TestDedicatedStatusTable(t *testing.T) {
	var out bytes.Buffer
	printGroups(&out, &httpapi.ClusterStatus{NodeID: 2, Groups: []httpapi.ClusterGroup{{ID: 7, Workspace: "t-ded", Leader: 3, Applied: 42,
		Members: []httpapi.ClusterMember{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4, Learner: true}}}}})
	got := strings.Join(strings.Fields(out.String()), " ")
	if want := "Dedicated groups (as node 2 sees them): GROUP WORKSPACE LEADER APPLIED VOTERS LEARNERS 7 t-ded 3 42 1,2,3 4"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	printGroups(&out, &httpapi.ClusterStatus{NodeID: 2})
	if out.Len() != 0 {
		t.Errorf("no groups: %q", out.String())
	}
}
