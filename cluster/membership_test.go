package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/clustertest"
)

func memberIDs(st cluster.Status) (voters, learners []uint64) {
	for _, m := range st.Members {
		if m.Learner {
			learners = append(learners, m.ID)
		} else {
			voters = append(voters, m.ID)
		}
	}
	return voters, learners
}

// A new node joins as a learner, catches up (by snapshot: the log no
// longer starts at 1), is promoted to voter and serves writes; a member is
// removed, its ID is recorded and refused when offered again; removing the
// leader makes it step down.
func TestMembershipLearnerPromoteRemove(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Configure: func(cfg *cluster.Config) {
		cfg.SnapshotEntries = 30
		cfg.CatchUpEntries = 5
	}})
	leader := c.Leader(long)
	for i := 0; i < 50; i++ {
		clustertest.Propose(t, leader, writeCmd("m"), long)
	}
	clustertest.Poll(t, long, "the leader compacted its log", func() (bool, string) {
		st := leader.Node.Status()
		return st.FirstIndex > 1, fmt.Sprint("first index ", st.FirstIndex)
	})
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()

	// Join node 4 as a learner. Membership changes run on the leader.
	m4 := c.AddMember(4)
	via := c.Followers(leader)[0]
	if err := via.Node.AddLearner(ctx, 4, m4.Addr); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("add learner on a follower: %v, want ErrNotLeader", err)
	}
	if err := leader.Node.AddLearner(ctx, 4, m4.Addr); err != nil {
		t.Fatalf("add learner: %v", err)
	}
	if err := leader.Node.AddLearner(ctx, 4, m4.Addr); !errors.Is(err, cluster.ErrMember) {
		t.Fatalf("adding node 4 twice: %v, want ErrMember", err)
	}
	// One change at a time: while 4 is joining, adding another node or
	// removing another member is refused.
	if err := leader.Node.AddLearner(ctx, 5, "127.0.0.1:1"); !errors.Is(err, cluster.ErrConfChangePending) {
		t.Fatalf("adding node 5 while 4 joins: %v, want ErrConfChangePending", err)
	}
	if err := leader.Node.Remove(ctx, via.ID); !errors.Is(err, cluster.ErrConfChangePending) {
		t.Fatalf("removing node %d while 4 joins: %v, want ErrConfChangePending", via.ID, err)
	}
	clustertest.Poll(t, long, "every member sees learner 4", func() (bool, string) {
		for _, m := range c.Running() {
			_, learners := memberIDs(m.Node.Status())
			if !slices.Contains(learners, 4) {
				return false, fmt.Sprintf("member %d: learners %v", m.ID, learners)
			}
		}
		return true, ""
	})
	waitSameHash(t, c) // the learner caught up
	if m4.Node.Stats().SnapshotsInstalled == 0 {
		t.Fatal("the new node caught up without a snapshot, though the log was compacted")
	}
	if v, _ := memberIDs(leader.Node.Status()); len(v) != 3 {
		t.Fatalf("voters %v while 4 is a learner", v)
	}

	// Promote: on a follower it is refused, on the leader it applies.
	if err := via.Node.Promote(ctx, 4); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("promote on a follower: %v, want ErrNotLeader", err)
	}
	leader = c.Leader(long)
	if err := leader.Node.Promote(ctx, 4); err != nil {
		t.Fatalf("promote: %v", err)
	}
	clustertest.Poll(t, long, "node 4 is a voter everywhere", func() (bool, string) {
		for _, m := range c.Running() {
			voters, _ := memberIDs(m.Node.Status())
			if !slices.Contains(voters, 4) || len(voters) != 4 {
				return false, fmt.Sprintf("member %d: voters %v", m.ID, voters)
			}
		}
		return true, ""
	})
	clustertest.Propose(t, m4, writeCmd("from4"), long)
	waitSameHash(t, c)

	// Hand the leadership to node 4: only the leader may, only to a voter.
	leader = c.Leader(long)
	if err := c.Followers(leader)[0].Node.TransferLeadership(ctx, 4); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("transfer on a follower: %v, want ErrNotLeader", err)
	}
	if err := leader.Node.TransferLeadership(ctx, 5); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("transfer to a non-member: %v, want ErrNotMember", err)
	}
	if err := leader.Node.TransferLeadership(ctx, 4); err != nil {
		t.Fatalf("transfer to node 4: %v", err)
	}
	if l := c.Leader(long); l.ID != 4 {
		t.Fatalf("node %d leads after the transfer to 4", l.ID)
	}
	clustertest.Propose(t, m4, writeCmd("led-by-4"), long)

	// Remove a follower other than 4.
	leader = c.Leader(long)
	var gone *clustertest.Member
	for _, m := range c.Followers(leader) {
		if m.ID != 4 {
			gone = m
			break
		}
	}
	if err := leader.Node.Remove(ctx, gone.ID); err != nil {
		t.Fatalf("remove %d: %v", gone.ID, err)
	}
	gone.Stop()
	clustertest.Poll(t, long, "removal recorded everywhere", func() (bool, string) {
		for _, m := range c.Running() {
			st := m.Node.Status()
			voters, _ := memberIDs(st)
			if slices.Contains(voters, gone.ID) || !slices.Contains(st.Removed, gone.ID) {
				return false, fmt.Sprintf("member %d: voters %v removed %v", m.ID, voters, st.Removed)
			}
		}
		return true, ""
	})
	// The ID is never accepted again, on any node.
	for _, m := range c.Running() {
		if err := m.Node.AddLearner(ctx, gone.ID, gone.Addr); !errors.Is(err, cluster.ErrIDRemoved) {
			t.Fatalf("re-adding removed %d via %d: %v, want ErrIDRemoved", gone.ID, m.ID, err)
		}
	}
	for i := 0; i < 10; i++ {
		clustertest.Propose(t, c.Running()[i%3], writeCmd("after-remove"), long)
	}
	waitSameHash(t, c)

	// Remove the leader itself: it steps down, the other two elect one.
	leader = c.Leader(long)
	if err := leader.Node.Remove(ctx, leader.ID); err != nil {
		t.Fatalf("remove the leader %d: %v", leader.ID, err)
	}
	clustertest.Poll(t, long, "the removed leader knows it", func() (bool, string) {
		st := leader.Node.Status()
		return st.State == "removed", st.State
	})
	if _, err := leader.Node.Propose(ctx, writeCmd("removed")); !errors.Is(err, cluster.ErrRemoved) {
		t.Fatalf("propose on a removed node: %v, want ErrRemoved", err)
	}
	leader.Stop()
	next := c.Leader(long)
	if next.ID == leader.ID {
		t.Fatal("removed node still leads")
	}
	clustertest.Propose(t, next, writeCmd("two-left"), long)
	waitSameHash(t, c)
	voters, _ := memberIDs(next.Node.Status())
	if len(voters) != 2 {
		t.Fatalf("voters %v, want 2", voters)
	}
	// The last voters cannot remove themselves into an empty cluster.
	if err := next.Node.Remove(ctx, 999); !errors.Is(err, cluster.ErrNotMember) {
		t.Fatalf("remove unknown: %v", err)
	}
}
