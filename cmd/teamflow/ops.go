package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/storage"
)

// state adapts the node for httpapi: its StateSource, ReadBarrier and
// NodeOps.
type state struct{ n *node }

var (
	_ httpapi.StateSource    = state{}
	_ httpapi.ReadBarrier    = state{}
	_ httpapi.NodeOps        = state{}
	_ httpapi.WorkspaceMover = state{}
)

func (s state) AppliedIndex() uint64 { return s.n.store.AppliedIndex() }

// WaitApplied waits for the shared store to apply idx. The index a client
// holds (TeamFlow-Applied-Index) is the shared group's; a dedicated
// workspace's writes are in its group's log, so a node with dedicated
// groups also takes a read barrier on each of them: every write a client
// saw acknowledged, in any group, is then applied here.
func (s state) WaitApplied(ctx context.Context, idx uint64) error {
	if s.n.raft != nil {
		if err := s.n.raft.WaitApplied(ctx, idx); err != nil {
			return err
		}
		return s.n.ded.barrier(ctx)
	}
	return s.n.store.WaitApplied(ctx, idx)
}

func (s state) Ready() error { return s.n.Ready() }

// ReadBarrier: raft ReadIndex in a cluster; on one node every acknowledged
// write is applied already.
func (s state) ReadBarrier(ctx context.Context) error {
	if s.n.raft != nil {
		if err := s.n.raft.ReadBarrier(ctx); err != nil {
			return err
		}
		return s.n.ded.barrier(ctx)
	}
	return s.n.store.Healthy()
}

func (s state) ClusterStatus(context.Context) (*httpapi.ClusterStatus, error) {
	n := s.n
	// The operator sees why a node is not ready (a dedicated group not
	// open, a failed store), which the public /readyz keeps to a code.
	notReady := ""
	if err := n.Ready(); err != nil {
		notReady = err.Error()
	}
	if n.raft == nil {
		return &httpapi.ClusterStatus{Mode: "single", Applied: n.store.AppliedIndex(), Ready: notReady == "", NotReady: notReady}, nil
	}
	st := n.raft.Status()
	out := &httpapi.ClusterStatus{
		Mode: "cluster", NodeID: st.ID, State: st.State, Leader: st.Leader, Term: st.Term,
		Commit: st.Commit, Applied: st.Applied, FirstIndex: st.FirstIndex, LastIndex: st.LastIndex,
		SnapshotIndex: st.SnapshotIndex, Ready: notReady == "", NotReady: notReady, Removed: st.Removed, Error: st.Err,
	}
	out.Members = clusterMembers(st.Members)
	if n.ded != nil {
		out.Groups = n.ded.status()
	}
	stats := n.raft.Stats()
	out.Stats = map[string]uint64{
		"proposals":           stats.Proposals,
		"proposals_dropped":   stats.ProposalsDropped,
		"entries_applied":     stats.EntriesApplied,
		"read_barriers":       stats.ReadBarriers,
		"snapshots_sent":      stats.SnapshotsSent,
		"snapshots_received":  stats.SnapshotsReceived,
		"snapshots_refused":   stats.SnapshotsRefused,
		"snapshots_installed": stats.SnapshotsInstalled,
		"compactions":         stats.Compactions,
		"leader_changes":      stats.LeaderChanges,
	}
	return out, nil
}

func clusterMembers(ms []cluster.Member) []httpapi.ClusterMember {
	out := make([]httpapi.ClusterMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, httpapi.ClusterMember{ID: m.ID, RaftAddr: m.Addr, Learner: m.Learner, Match: m.Match, Active: m.Active})
	}
	return out
}

func (s state) AddLearner(ctx context.Context, id uint64, raftAddr string) error {
	if s.n.raft == nil {
		return errNotClustered
	}
	return s.clusterErr(s.n.raft.AddLearner(ctx, id, raftAddr))
}

func (s state) Promote(ctx context.Context, id uint64) error {
	if s.n.raft == nil {
		return errNotClustered
	}
	err := s.n.raft.Promote(ctx, id)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && s.n.raft.IsLeader() {
		return &httpapi.OpError{Status: http.StatusConflict, Code: "learner_behind", Detail: err.Error() + "; call promote again"}
	}
	return s.clusterErr(err)
}

func (s state) RemoveMember(ctx context.Context, id uint64) error {
	if s.n.raft == nil {
		return errNotClustered
	}
	if err := s.groupsFollowed(id); err != nil {
		return err
	}
	return s.clusterErr(s.n.raft.Remove(ctx, id))
}

// groupsFollowed refuses to remove a voter while a dedicated group has not
// followed the previous membership change yet (dedicated.behind): the
// group could lose its quorum. Removing a learner (an abandoned join)
// never costs one, and a change refused for another reason (not the
// leader, not a member) is left to Remove.
func (s state) groupsFollowed(id uint64) error {
	if s.n.ded == nil || !s.n.raft.IsLeader() {
		return nil
	}
	st := s.n.raft.Status()
	if !slices.ContainsFunc(st.Members, func(m cluster.Member) bool { return m.ID == id && !m.Learner }) {
		return nil
	}
	behind, err := s.n.ded.behind(st)
	if err != nil {
		return err
	}
	if len(behind) > 0 {
		return &httpapi.OpError{Status: http.StatusConflict, Code: "groups_following",
			Detail: fmt.Sprintf("dedicated group(s) %v have not followed the last membership change yet (on this node): removing a voter now "+
				"could cost them their quorum; teamflow cluster status shows their voters; retry once they match the cluster's", behind),
			Details: map[string]any{"groups": behind}}
	}
	return nil
}

func (s state) TransferLeader(ctx context.Context, id uint64) error {
	if s.n.raft == nil {
		return errNotClustered
	}
	return s.clusterErr(s.n.raft.TransferLeadership(ctx, id))
}

func (s state) WorkspaceHash(_ context.Context, tenant string) (*httpapi.WorkspaceHash, error) {
	// A dedicated workspace is hashed in its group's store, at its index.
	st := s.n.store
	if s.n.ded != nil {
		rec, _, err := readRoute(s.n.store.Sys(), tenant)
		if err != nil {
			return nil, err
		}
		if rec != nil && rec.State == routeDedicated {
			g := s.n.ded.get(rec.Group)
			if g == nil {
				return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "group_not_open",
					Detail: fmt.Sprintf("the workspace's group %d is not open on this node yet", rec.Group)}
			}
			st = g.store
		}
	}
	// The applied index is read on both sides of the hash and the audit
	// head; equal values mean no entry applied meanwhile, so both are the
	// state at it.
	for {
		before := st.AppliedIndex()
		h, err := st.TenantHash(tenant)
		if err != nil {
			return nil, err
		}
		head, _, err := s.n.eng.AuditHead(tenant)
		if err != nil {
			return nil, err
		}
		if after := st.AppliedIndex(); after == before {
			return &httpapi.WorkspaceHash{Workspace: tenant, Applied: before, Hash: httpapi.HexHash(h),
				AuditHeadSeq: head.Seq, AuditHeadHash: head.Hash}, nil
		}
	}
}

// OpenBackup pins a snapshot of the shared store after a read barrier, and
// one of each dedicated group's store after a barrier on that group, so
// the backup holds every write acknowledged (on any node, in any group)
// before the request.
func (s state) OpenBackup(ctx context.Context) (httpapi.Backup, error) {
	// The shared group's barrier only: pin takes each group's own, for the
	// groups the pinned shared state routes to.
	err := s.n.store.Healthy()
	if s.n.raft != nil {
		err = s.n.raft.ReadBarrier(ctx)
	}
	if err != nil {
		return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "read_barrier_failed", Detail: "this node could not confirm it is up to date: " + err.Error()}
	}
	sn, err := s.n.store.OpenSnapshot()
	if err != nil {
		return nil, err
	}
	b := &backup{shared: sn}
	if s.n.ded != nil {
		if b.groups, err = s.n.ded.pin(ctx, sn); err != nil {
			sn.Close()
			return nil, err
		}
	}
	return b, nil
}

// backup is a pinned snapshot of the shared store and of every dedicated
// group's store it routes to, streamed whole or for one workspace as one
// store would hold it: every workspace in its place in the shared
// keyspace, no routing record (restore builds an installation without
// groups; `teamflow workspace dedicate` moves a workspace again). The
// stream's index is the shared store's.
type backup struct {
	shared *storage.Snapshot
	groups map[string]*storage.Snapshot // dedicated workspace → its group's store
}

func (b *backup) Index() uint64 { return b.shared.Index() }

func (b *backup) WriteTo(w io.Writer) (int64, error) {
	return b.shared.WriteMergedTo(w, b.groups, routingKeys...)
}

func (b *backup) WriteWorkspaceTo(w io.Writer, scope *engine.BackupScope) (int64, error) {
	src := b.shared
	if g, ok := b.groups[scope.Tenant]; ok {
		src = g
	}
	return b.shared.WriteTenantFrom(w, src, scope.Tenant, scope.Sys...)
}

func (b *backup) Close() error {
	errs := []error{b.shared.Close()}
	for _, g := range b.groups {
		errs = append(errs, g.Close())
	}
	return errors.Join(errs...)
}

var errNotClustered = &httpapi.OpError{Status: http.StatusConflict, Code: "not_clustered",
	Detail: "this node runs alone (no --node-id): there is no membership to change"}

// clusterErr maps the cluster's errors to what the operator sees.
func (s state) clusterErr(err error) error {
	if err == nil {
		return nil
	}
	conflict := func(code string) error {
		return &httpapi.OpError{Status: http.StatusConflict, Code: code, Detail: err.Error()}
	}
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		st := s.n.raft.Status()
		d := map[string]any{"leader": st.Leader}
		for _, m := range st.Members {
			if m.ID == st.Leader {
				d["leader_raft_addr"] = m.Addr
			}
		}
		return &httpapi.OpError{Status: http.StatusConflict, Code: "not_leader",
			Detail: "membership changes run on the leader; send this to the leader's HTTP address", Details: d}
	case errors.Is(err, cluster.ErrIDRemoved):
		return conflict("node_id_removed")
	case errors.Is(err, cluster.ErrMember):
		return conflict("already_member")
	case errors.Is(err, cluster.ErrNotMember):
		return conflict("not_member")
	case errors.Is(err, cluster.ErrConfChangeRefused):
		return conflict("membership_change_refused")
	case errors.Is(err, cluster.ErrConfChangePending):
		return conflict("membership_change_pending")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, cluster.ErrNoLeader):
		return &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "unavailable", Detail: err.Error()}
	}
	var oe *httpapi.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &httpapi.OpError{Status: http.StatusBadRequest, Code: "membership_change_failed", Detail: err.Error()}
}

// DedicateWorkspace moves a workspace into a dedicated group (dedicated.go).
func (s state) DedicateWorkspace(ctx context.Context, tenant string, abort bool) (*httpapi.DedicateStatus, error) {
	if s.n.ded == nil {
		return nil, &httpapi.OpError{Status: http.StatusConflict, Code: "not_clustered",
			Detail: "dedicated stores are raft groups of a cluster: this node runs alone (no --node-id)"}
	}
	return s.n.ded.Dedicate(ctx, tenant, abort)
}
