package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/cluster/transport"
)

// Status is what an operator sees of a node (`teamflow cluster status`).
type Status struct {
	ID      uint64
	Leader  uint64 // 0 when none is known
	Term    uint64
	State   string // "leader", "follower", "candidate", "pre-candidate"; "removed" once removed
	Commit  uint64 // highest index known committed
	Applied uint64 // highest index applied to this node's store
	// The raft log this node keeps: entries (FirstIndex-1, LastIndex], and
	// the index of the latest snapshot it recorded.
	FirstIndex    uint64
	LastIndex     uint64
	SnapshotIndex uint64
	Members       []Member
	Removed       []uint64 // IDs that may never be reused
	Err           string   // why the node stopped serving, if it did
}

// Member is one node of the cluster as the applied membership records it.
type Member struct {
	ID      uint64
	Addr    string
	Learner bool
	// On the leader only: the highest index known to be replicated to the
	// member, and whether it was heard from recently.
	Match  uint64
	Active bool
}

// Status reports the node's view of the cluster.
func (n *Node) Status() Status {
	compact, last, snap, _ := n.logs.state()
	st := Status{
		ID:            n.id,
		Leader:        n.lead.Load(),
		Term:          n.term.Load(),
		Commit:        n.commit.Load(),
		Applied:       n.store.AppliedIndex(),
		FirstIndex:    compact + 1,
		LastIndex:     last,
		SnapshotIndex: snap.GetIndex(),
	}
	switch raft.StateType(n.raftState.Load()) {
	case raft.StateLeader:
		st.State = "leader"
	case raft.StateFollower:
		st.State = "follower"
	case raft.StateCandidate:
		st.State = "candidate"
	case raft.StatePreCandidate:
		st.State = "pre-candidate"
	}
	if n.removed.Load() {
		st.State = "removed"
	}
	if e := n.failed.Load(); e != nil {
		st.Err = (*e).Error()
	}
	var progress map[uint64]bool
	var match map[uint64]uint64
	if st.Leader == n.id && n.usable() == nil {
		rs := n.rn.Status()
		progress, match = map[uint64]bool{}, map[uint64]uint64{}
		for id, pr := range rs.Progress {
			progress[id] = pr.RecentActive || id == n.id
			match[id] = pr.Match
		}
	}
	m := n.view.Load()
	add := func(id uint64, learner bool) {
		st.Members = append(st.Members, Member{ID: id, Addr: m.addr(id), Learner: learner, Match: match[id], Active: progress[id]})
	}
	for _, id := range m.Voters {
		add(id, false)
	}
	for _, id := range m.Learners {
		add(id, true)
	}
	st.Removed = append([]uint64(nil), m.Removed...)
	return st
}

// Stats are counters for metrics (teamflow_raft_*).
type Stats struct {
	Proposals          uint64 // proposals handed to raft
	ProposalsDropped   uint64 // proposals answered with ErrProposalDropped
	EntriesApplied     uint64
	ReadBarriers       uint64
	SnapshotsSent      uint64
	SnapshotsReceived  uint64 // streams received and verified
	SnapshotsRefused   uint64 // streams refused (corrupt, truncated)
	SnapshotsInstalled uint64
	Compactions        uint64
	LeaderChanges      uint64
	Transport          transport.Stats
}

// Stats reports the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		Proposals:          n.st.proposals.Load(),
		ProposalsDropped:   n.st.dropped.Load(),
		EntriesApplied:     n.st.applied.Load(),
		ReadBarriers:       n.st.reads.Load(),
		SnapshotsSent:      n.st.snapSent.Load(),
		SnapshotsReceived:  n.st.snapReceived.Load(),
		SnapshotsRefused:   n.st.snapRefused.Load(),
		SnapshotsInstalled: n.st.snapInstalled.Load(),
		Compactions:        n.st.compactions.Load(),
		LeaderChanges:      n.st.leaderChanges.Load(),
		Transport:          n.tr.Stats(),
	}
}

// --- membership ---

// AddLearner adds node id, reachable at addr, as a learner: it receives the
// log (or a snapshot) but does not vote, so adding it cannot cost the
// cluster its quorum. Start the new node with Config.Join and Peers naming
// the current members. Like every membership change it runs on the leader
// (elsewhere: ErrNotLeader, with Status naming the leader), and returns
// once the change has applied there. While another learner is still
// joining it returns ErrConfChangePending (see joinInProgress).
func (n *Node) AddLearner(ctx context.Context, id uint64, addr string) error {
	if id == 0 {
		return errors.New("cluster: node ID 0 is invalid")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("cluster: address %q: %w", addr, err)
	}
	check := func(m *membership) error {
		switch {
		case m.isRemoved(id):
			return fmt.Errorf("cluster: node %d: %w", id, ErrIDRemoved)
		case m.isMember(id):
			return fmt.Errorf("cluster: node %d: %w", id, ErrMember)
		}
		return joinInProgress(m, id)
	}
	if err := check(n.view.Load()); err != nil {
		return err
	}
	return n.confChange(ctx, &pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(id), Context: []byte(addr)}, check)
}

// Promote makes learner id a voter, once it has caught up with the
// leader's commit index (as of the call). It must run on the leader, which
// alone knows the learner's progress: elsewhere it returns ErrNotLeader.
func (n *Node) Promote(ctx context.Context, id uint64) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	check := func(m *membership) error {
		if !m.isLearner(id) {
			return fmt.Errorf("cluster: node %d is not a learner: %w", id, ErrNotMember)
		}
		return nil
	}
	if err := check(n.view.Load()); err != nil {
		return err
	}
	if !n.IsLeader() {
		return fmt.Errorf("cluster: membership changes run on the leader: %w (leader is %d)", ErrNotLeader, n.Leader())
	}
	target := n.commit.Load()
	for {
		if err := n.usable(); err != nil {
			return err
		}
		if !n.IsLeader() {
			return fmt.Errorf("cluster: promote node %d: %w", id, ErrNotLeader)
		}
		if err := check(n.view.Load()); err != nil {
			return err // removed while it was catching up: its join is abandoned
		}
		if pr, ok := n.rn.Status().Progress[id]; ok && pr.Match >= target {
			break
		}
		select {
		case <-time.After(n.cfg.TickInterval):
		case <-ctx.Done():
			return fmt.Errorf("cluster: learner %d has not caught up to %d: %w", id, target, ctx.Err())
		case <-n.stop:
			return ErrClosed
		}
	}
	return n.confChange(ctx, &pb.ConfChange{Type: pb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id)}, check)
}

// Remove removes node id from the cluster for good: its ID is recorded and
// never accepted again, and its traffic is refused. Removing the leader
// makes it step down once the change applies. While a learner other than
// id is still joining it returns ErrConfChangePending (removing the learner
// itself abandons its join).
func (n *Node) Remove(ctx context.Context, id uint64) error {
	check := func(m *membership) error {
		if !m.isMember(id) {
			return fmt.Errorf("cluster: node %d: %w", id, ErrNotMember)
		}
		if m.isVoter(id) && len(m.Voters) == 1 {
			return fmt.Errorf("%w: node %d is the last voter", ErrConfChangeRefused, id)
		}
		return joinInProgress(m, id)
	}
	if err := check(n.view.Load()); err != nil {
		return err
	}
	return n.confChange(ctx, &pb.ConfChange{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}, check)
}

// joinInProgress refuses a membership change while a learner other than id
// is still joining: a join is one change from the learner's addition to its
// promotion (or removal), and changes run one at a time, like etcd with its
// default of one learner.
func joinInProgress(m *membership, id uint64) error {
	for _, l := range m.Learners {
		if l != id {
			return fmt.Errorf("%w: node %d is still joining as a learner; finish its join (cluster join %d again) or remove it first",
				ErrConfChangePending, l, l)
		}
	}
	return nil
}

// confChange proposes cc on the leader and waits until it has applied
// here. A change asked for while another is being proposed here is refused
// with ErrConfChangePending, never queued behind it: the operator who sent
// it decides again once the first has applied.
//
// Membership changes run on the leader only. raft takes one at a time: a
// leader silently turns a change into an empty entry while an earlier one
// is unapplied (or, just elected, until it has applied its whole log), and
// a follower could not tell. On the leader, confChange waits until raft has
// been told (Advance) that the last change in the log has applied, so raft
// never refuses the proposal, and its waiter always resolves.
func (n *Node) confChange(ctx context.Context, cc *pb.ConfChange, check func(*membership) error) error {
	if err := n.usable(); err != nil {
		return err
	}
	if !n.confMu.TryLock() {
		return fmt.Errorf("%w: a change proposed on this node has not applied yet", ErrConfChangePending)
	}
	defer n.confMu.Unlock()
	ctx, cancel := n.bound(ctx)
	defer cancel()
	for n.pendingConf.Load() > n.advanced.Load() {
		if !n.IsLeader() {
			break
		}
		select {
		case <-time.After(n.cfg.TickInterval / 4):
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrConfChangePending, ctx.Err())
		case <-n.stop:
			return ErrClosed
		}
	}
	if !n.IsLeader() {
		return fmt.Errorf("cluster: membership changes run on the leader: %w (leader is %d)", ErrNotLeader, n.Leader())
	}
	// Check again against the membership the earlier change left.
	if err := check(n.view.Load()); err != nil {
		return err
	}
	cc.Id = proto.Uint64(n.confSeq.Add(1))
	key := confChangeKey(cc.GetId())
	w := n.waiters.add(key, max(n.term.Load(), n.rn.Status().GetTerm()))
	if err := n.rn.ProposeConfChange(ctx, cc); err != nil {
		n.waiters.remove(w)
		if errors.Is(err, raft.ErrStopped) {
			return ErrClosed
		}
		return fmt.Errorf("cluster: %s node %d: %w", cc.GetType(), cc.GetNodeId(), err)
	}
	select {
	case o := <-w.ch:
		if o.err != nil {
			return fmt.Errorf("cluster: %s node %d: %w", cc.GetType(), cc.GetNodeId(), o.err)
		}
		return nil
	case <-ctx.Done():
		n.waiters.remove(w)
		return fmt.Errorf("cluster: %s node %d: %w", cc.GetType(), cc.GetNodeId(), ctx.Err())
	}
}
