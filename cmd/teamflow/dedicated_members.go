package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/httpapi"
)

// Membership across groups (cluster/DESIGN-dedicated-groups.md). The
// operator changes the shared group's membership only (cluster join,
// promote, leave); every dedicated group follows it. Only a group's leader
// can change the group's membership, and it need not be the node that
// leads the shared group, so each node converges the groups it leads, one
// step at a time, from its applied shared membership: on every applied
// membership change (the observer in newDedicated), and every 2 s, which
// resumes a step a crash or a leader change interrupted.

// memberStepTimeout bounds one step: a promotion waits for the learner to
// catch up with the group, and the reconcile loop must not wait for ever.
const memberStepTimeout = 5 * time.Second

type memberOp string

const (
	memberAdd     memberOp = "add learner"
	memberPromote memberOp = "promote"
	memberRemove  memberOp = "remove"
)

// memberStep is one membership change of a group.
type memberStep struct {
	op   memberOp
	id   uint64
	addr string // memberAdd only
}

// nextMemberStep is the one change that moves group's membership towards
// shared's, if any. Changes run one at a time, and a group refuses any
// while a learner is joining it (cluster.joinInProgress), so a learner of
// the group is settled first: promoted once the shared group has promoted
// it, removed once the shared group has removed it. Then a shared member
// the group lacks is added as a learner (during the shared join already,
// so it catches up in both at once), and only then is a voter the shared
// group removed dropped: adding before removing keeps the group's fault
// tolerance, as the operator's own join-then-leave did.
//
// Only an ID in shared.Removed is removed from a group, never one merely
// absent: removal is for good (the ID is refused from then on), and this
// node's shared store may lag the node that led the group before, which
// may have added a member this node has not heard of yet.
func nextMemberStep(shared, group cluster.Status) (memberStep, bool) {
	removed := func(id uint64) bool { return slices.Contains(shared.Removed, id) }
	inShared := map[uint64]cluster.Member{}
	for _, m := range shared.Members {
		inShared[m.ID] = m
	}
	inGroup := map[uint64]bool{}
	for _, m := range group.Members {
		inGroup[m.ID] = true
	}
	for _, m := range group.Members {
		if !m.Learner {
			continue
		}
		sm, ok := inShared[m.ID]
		switch {
		case removed(m.ID):
			return memberStep{op: memberRemove, id: m.ID}, true
		case ok && !sm.Learner:
			return memberStep{op: memberPromote, id: m.ID}, true
		}
		return memberStep{}, false // still joining the shared group
	}
	for _, m := range shared.Members {
		if !inGroup[m.ID] && !slices.Contains(group.Removed, m.ID) && m.Addr != "" {
			return memberStep{op: memberAdd, id: m.ID, addr: m.Addr}, true
		}
	}
	for _, m := range group.Members {
		if removed(m.ID) {
			return memberStep{op: memberRemove, id: m.ID}, true
		}
	}
	return memberStep{}, false
}

// followMembership takes the next step in every group this node leads.
func (d *dedicated) followMembership(ctx context.Context) {
	shared := d.host.Status()
	if shared.State == "removed" {
		return
	}
	for _, g := range d.list() {
		if !g.raft.IsLeader() {
			continue
		}
		step, ok := nextMemberStep(shared, g.raft.Status())
		if !ok {
			continue
		}
		err := d.takeStep(ctx, g, step)
		switch {
		case err == nil:
			d.log.Info("group membership follows the cluster's", "group", g.id, "workspace", g.tenant, "step", string(step.op), "node", step.id, "audit", true)
			d.poke() // the next step at once, not at the next tick
		case retryLater(err):
			d.log.Info("group membership step postponed", "group", g.id, "step", string(step.op), "node", step.id, "reason", err)
		default:
			d.log.Error("group membership step", "group", g.id, "step", string(step.op), "node", step.id, "err", err)
		}
	}
}

func (d *dedicated) takeStep(ctx context.Context, g *groupRun, s memberStep) error {
	ctx, cancel := context.WithTimeout(ctx, memberStepTimeout)
	defer cancel()
	var err error
	switch s.op {
	case memberAdd:
		err = g.raft.AddLearner(ctx, s.id, s.addr)
	case memberPromote:
		err = g.raft.Promote(ctx, s.id)
	case memberRemove:
		err = g.raft.Remove(ctx, s.id)
	}
	if err != nil {
		return fmt.Errorf("group %d: %s node %d: %w", g.id, s.op, s.id, err)
	}
	return nil
}

// retryLater: the next pass decides again (on this node or on the
// group's new leader): the step is still wanted but cannot run now (a
// learner still catching up, another change applying, no leader), or the
// group's membership moved on since it was read (ErrMember, ErrNotMember).
func retryLater(err error) bool {
	for _, e := range []error{cluster.ErrNotLeader, cluster.ErrConfChangePending, cluster.ErrNoLeader, cluster.ErrClosed,
		cluster.ErrMember, cluster.ErrNotMember, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sharedPeers are the shared group's members and addresses as applied
// here: a group joined now starts with them.
func (d *dedicated) sharedPeers() map[uint64]string {
	peers := map[uint64]string{}
	for _, m := range d.host.Status().Members {
		if m.Addr != "" {
			peers[m.ID] = m.Addr
		}
	}
	return peers
}

// status describes the groups open here, with their membership, so an
// operator sees them converge after a membership change.
func (d *dedicated) status() []httpapi.ClusterGroup {
	gs := d.list()
	slices.SortFunc(gs, func(a, b *groupRun) int { return cmp.Compare(a.id, b.id) })
	out := make([]httpapi.ClusterGroup, 0, len(gs))
	for _, g := range gs {
		st := g.raft.Status()
		out = append(out, httpapi.ClusterGroup{ID: g.id, Workspace: g.tenant, State: st.State, Leader: st.Leader,
			Applied: st.Applied, Members: clusterMembers(st.Members), Removed: st.Removed})
	}
	return out
}

// behind lists the groups that have not caught up with the shared
// membership as this node has applied it: a group not open here, or whose
// voters differ from the shared voters, or that has a learner. Removing a
// voter from the cluster then could cost such a group its quorum: after a
// quick join-then-leave (or two leaves), a group still on the old voters
// would count the removed (stopped) nodes. A group's membership on this
// node may lag its leader's; that only reports it behind for longer.
func (d *dedicated) behind(shared cluster.Status) ([]uint64, error) {
	var want []uint64
	for _, m := range shared.Members {
		if !m.Learner {
			want = append(want, m.ID)
		}
	}
	slices.Sort(want)
	var out []uint64
	err := scanRoutes(d.shared.Sys(), func(_ string, rec *routeRecord) error {
		if rec.State != routeSeeding && rec.State != routeDedicated {
			return nil
		}
		if g := d.get(rec.Group); g == nil || !slices.Equal(groupVoters(g.raft.Status()), want) {
			out = append(out, rec.Group)
		}
		return nil
	})
	return out, err
}

// groupVoters are a group's voters, sorted; nil while it has a learner.
func groupVoters(st cluster.Status) []uint64 {
	var out []uint64
	for _, m := range st.Members {
		if m.Learner {
			return nil
		}
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}
