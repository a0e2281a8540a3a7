package httpapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/gin-gonic/gin"
	"github.com/teamflow/teamflow/engine"
)

// The node's own operations: linearizable reads, and the platform
// operator's cluster, backup and replica-check endpoints. httpapi knows
// nothing of raft: the StateSource may implement these optional
// interfaces (cmd's node does, on one node and in a cluster).

// ReadBarrier is implemented by a StateSource whose store can lag the
// writes acknowledged elsewhere (a cluster member): ReadBarrier returns
// once this node has applied every write acknowledged, on any node, before
// the call (raft ReadIndex). A StateSource without it is a single node,
// where every acknowledged write is already applied.
type ReadBarrier interface {
	ReadBarrier(ctx context.Context) error
}

// NodeOps are the platform operator's node and cluster operations.
type NodeOps interface {
	// ClusterStatus describes this node and, in a cluster, the membership.
	ClusterStatus(ctx context.Context) (*ClusterStatus, error)
	// AddLearner adds a node as a non-voting member (run on the leader).
	AddLearner(ctx context.Context, id uint64, raftAddr string) error
	// Promote makes a learner a voter once it has caught up (leader).
	Promote(ctx context.Context, id uint64) error
	// RemoveMember removes a member for good; its ID is never reused (leader).
	RemoveMember(ctx context.Context, id uint64) error
	// TransferLeader hands the leadership to a voter and returns once it
	// leads (leader).
	TransferLeader(ctx context.Context, id uint64) error
	// WorkspaceHash hashes a workspace's whole keyspace on this node and
	// reads its audit chain head, at one applied index.
	WorkspaceHash(ctx context.Context, tenant string) (*WorkspaceHash, error)
	// OpenBackup pins a consistent snapshot of the whole store that
	// includes every write acknowledged before the call.
	OpenBackup(ctx context.Context) (Backup, error)
}

// Backup is a pinned snapshot being streamed out: the whole store, or one
// workspace's part of it.
type Backup interface {
	Index() uint64
	WriteTo(w io.Writer) (int64, error)
	WriteWorkspaceTo(w io.Writer, scope *engine.BackupScope) (int64, error)
	Close() error
}

// OpError is a node operation's failure as the operator sees it: a status,
// a stable code and details (for example the leader to ask instead).
type OpError struct {
	Status  int
	Code    string
	Detail  string
	Details map[string]any
}

func (e *OpError) Error() string { return e.Detail }

// ClusterStatus is this node's view (GET /api/v1/platform/cluster).
type ClusterStatus struct {
	Mode          string            `json:"mode" enum:"single,cluster"`
	NodeID        uint64            `json:"node_id,omitempty"`
	State         string            `json:"state,omitempty" doc:"leader, follower, candidate, pre-candidate or removed"`
	Leader        uint64            `json:"leader,omitempty" doc:"0 while no leader is known"`
	Term          uint64            `json:"term,omitempty"`
	Commit        uint64            `json:"commit,omitempty"`
	Applied       uint64            `json:"applied"`
	FirstIndex    uint64            `json:"first_index,omitempty" doc:"The oldest raft log entry kept; a follower behind it catches up by snapshot"`
	LastIndex     uint64            `json:"last_index,omitempty"`
	SnapshotIndex uint64            `json:"snapshot_index,omitempty"`
	Ready         bool              `json:"ready"`
	NotReady      string            `json:"not_ready,omitempty" doc:"Why the node is not ready (what /readyz answers 503 for)"`
	Members       []ClusterMember   `json:"members,omitempty"`
	Removed       []uint64          `json:"removed,omitempty" doc:"IDs that may never be used again"`
	Error         string            `json:"error,omitempty"`
	Stats         map[string]uint64 `json:"stats,omitempty" doc:"Counters since this process started (proposals, snapshots_sent, leader_changes, ...)"`
	Groups        []ClusterGroup    `json:"groups,omitempty" doc:"The dedicated stores' raft groups open on this node; each group's membership follows the members above"`
}

// ClusterGroup is a dedicated store's raft group as this node runs it.
type ClusterGroup struct {
	ID        uint64          `json:"id"`
	Workspace string          `json:"workspace"`
	State     string          `json:"state" doc:"This node's state in the group: leader, follower, candidate, pre-candidate or removed"`
	Leader    uint64          `json:"leader,omitempty" doc:"0 while no leader is known"`
	Applied   uint64          `json:"applied"`
	Members   []ClusterMember `json:"members,omitempty" doc:"The group's applied membership; it converges on the cluster's"`
	Removed   []uint64        `json:"removed,omitempty"`
}

// ClusterMember is one member as the replicated membership records it.
type ClusterMember struct {
	ID       uint64 `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Learner  bool   `json:"learner"`
	Match    uint64 `json:"match,omitempty" doc:"On the leader: the highest index replicated to the member"`
	Active   bool   `json:"active,omitempty" doc:"On the leader: heard from recently"`
}

// WorkspaceHash is a SHA-256 over a workspace's keyspace at an applied
// index, with the head of its audit chain at the same index; replicas at
// the same index must agree on both.
type WorkspaceHash struct {
	Workspace     string `json:"workspace"`
	Applied       uint64 `json:"applied" doc:"Applied index when the hash was taken; compare hashes taken at equal indexes"`
	Hash          string `json:"hash"`
	AuditHeadSeq  uint64 `json:"audit_head_seq" doc:"Number of the last audit chain entry (0: none yet)"`
	AuditHeadHash string `json:"audit_head_hash,omitempty" doc:"Hash of the last audit chain entry"`
}

// consistency serves TeamFlow-Consistency: linearizable: the request
// (a read, or a conditional write whose precondition is checked against
// this node's store) first waits until this node has applied every write
// acknowledged anywhere before it arrived.
func (s *Server) consistency(c *gin.Context) {
	h := strings.TrimSpace(c.GetHeader("TeamFlow-Consistency"))
	if h == "" || strings.EqualFold(h, "local") {
		c.Next()
		return
	}
	if !strings.EqualFold(h, "linearizable") {
		writeProblem(c, newProblem(http.StatusBadRequest, "invalid_consistency", "TeamFlow-Consistency is linearizable or local"))
		c.Abort()
		return
	}
	if b, ok := s.state.(ReadBarrier); ok {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.MinIndexWait)
		defer cancel()
		if err := b.ReadBarrier(ctx); err != nil {
			c.Header("Retry-After", "1")
			writeProblem(c, newProblem(http.StatusServiceUnavailable, "read_barrier_failed", "this node could not confirm it is up to date (no leader, or catching up); retry"))
			c.Abort()
			return
		}
	}
	c.Next()
}

func (s *Server) nodeOps() (NodeOps, error) {
	if ops, ok := s.state.(NodeOps); ok {
		return ops, nil
	}
	return nil, newProblem(http.StatusNotImplemented, "not_available", "this server does not offer node operations")
}

// opFail maps a node operation's error to a problem.
func (s *Server) opFail(ctx context.Context, err error) error {
	var oe *OpError
	if errors.As(err, &oe) {
		p := newProblem(oe.Status, oe.Code, oe.Detail)
		p.Details = oe.Details
		p.RequestID = requestIDFrom(ctx)
		return p
	}
	return s.fail(ctx, err)
}

func requireOperatorPrincipal(ctx context.Context) error {
	if !principal(ctx).Operator {
		return newProblem(http.StatusForbidden, "forbidden", "this endpoint is for the platform operator")
	}
	return nil
}

func (s *Server) bindCluster() {
	huma.Register(s.api, huma.Operation{
		OperationID: "platform-cluster-status", Method: http.MethodGet, Path: "/api/v1/platform/cluster", Tags: []string{"Platform"},
		Summary: "This node and its cluster: leader, indexes, members (platform operator)", Security: operatorSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body *ClusterStatus }, error) {
		if err := requireOperatorPrincipal(ctx); err != nil {
			return nil, err
		}
		ops, err := s.nodeOps()
		if err != nil {
			return nil, err
		}
		st, err := ops.ClusterStatus(ctx)
		if err != nil {
			return nil, s.opFail(ctx, err)
		}
		return &struct{ Body *ClusterStatus }{Body: st}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-cluster-add-learner", Method: http.MethodPost, Path: "/api/v1/platform/cluster/members", Tags: []string{"Platform"},
		Summary:     "Add a node as a learner (platform operator; on the leader, else 409 not_leader naming it)",
		Description: "Start the new node with --join first. It receives the log or a snapshot without voting; promote it once it has caught up.",
		Security:    operatorSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		Body struct {
			ID       uint64 `json:"id" minimum:"1" doc:"The new node's ID (never one used before)"`
			RaftAddr string `json:"raft_addr" minLength:"3" maxLength:"255" doc:"host:port of its raft endpoint"`
		}
	}) (*struct{ Body *ClusterStatus }, error) {
		return s.memberChange(ctx, "add learner", in.Body.ID, func(ops NodeOps) error {
			return ops.AddLearner(ctx, in.Body.ID, in.Body.RaftAddr)
		})
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-cluster-promote", Method: http.MethodPost, Path: "/api/v1/platform/cluster/members/{id}/promote", Tags: []string{"Platform"},
		Summary:     "Make a learner a voter once it has caught up (platform operator; on the leader)",
		Description: "Waits up to about 20 s for the learner to reach the leader's commit index; 409 learner_behind if it has not (call again).",
		Security:    operatorSecurity,
	}, func(ctx context.Context, in *struct {
		ID uint64 `path:"id" minimum:"1"`
	}) (*struct{ Body *ClusterStatus }, error) {
		return s.memberChange(ctx, "promote", in.ID, func(ops NodeOps) error {
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return ops.Promote(pctx, in.ID)
		})
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-cluster-remove", Method: http.MethodDelete, Path: "/api/v1/platform/cluster/members/{id}", Tags: []string{"Platform"},
		Summary: "Remove a member for good; its ID is never accepted again (platform operator; on the leader)", Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		ID uint64 `path:"id" minimum:"1"`
	}) (*struct{ Body *ClusterStatus }, error) {
		return s.memberChange(ctx, "remove", in.ID, func(ops NodeOps) error { return ops.RemoveMember(ctx, in.ID) })
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-cluster-transfer-leader", Method: http.MethodPost, Path: "/api/v1/platform/cluster/leader", Tags: []string{"Platform"},
		Summary:     "Hand the leadership to another voter (platform operator; on the leader)",
		Description: "Returns once the voter leads, within about 20 s (else 503). Writes proposed during the handover are proposed again to the new leader: a delay, not an error.",
		Security:    operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Body struct {
			ID uint64 `json:"id" minimum:"1" doc:"The voter to lead"`
		}
	}) (*struct{ Body *ClusterStatus }, error) {
		return s.memberChange(ctx, "transfer leadership", in.Body.ID, func(ops NodeOps) error {
			tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return ops.TransferLeader(tctx, in.Body.ID)
		})
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-workspace-hash", Method: http.MethodGet, Path: "/api/v1/platform/workspaces/{slug}/hash", Tags: []string{"Platform"},
		Summary: "SHA-256 of a workspace's keyspace and its audit chain head on this node, with the applied index (platform operator; replica checks)", Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Slug string `path:"slug" maxLength:"64" doc:"Workspace slug or ID"`
	}) (*struct{ Body *WorkspaceHash }, error) {
		if err := requireOperatorPrincipal(ctx); err != nil {
			return nil, err
		}
		ops, err := s.nodeOps()
		if err != nil {
			return nil, err
		}
		id, err := s.workspaceID(ctx, in.Slug)
		if err != nil {
			return nil, err
		}
		h, err := ops.WorkspaceHash(ctx, id)
		if err != nil {
			return nil, s.opFail(ctx, err)
		}
		return &struct{ Body *WorkspaceHash }{Body: h}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-backup", Method: http.MethodGet, Path: "/api/v1/platform/backup", Tags: []string{"Platform"},
		Summary: "Stream a consistent snapshot of the whole store, or of one workspace (platform operator; `teamflow backup`)",
		Description: "The body is a self-checking snapshot stream (format, applied index, records, SHA-256 trailer) that includes every write " +
			"acknowledged before the request; TeamFlow-Backup-Index names its index. A stream cut short fails its checksum at restore. " +
			"With `workspace`, the stream holds that workspace alone (its records and registry entry; no other workspace and no platform secret).",
		Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Workspace string `query:"workspace" maxLength:"64" doc:"Slug of the one workspace to back up (default: the whole store)"`
	}) (*huma.StreamResponse, error) {
		if err := requireOperatorPrincipal(ctx); err != nil {
			return nil, err
		}
		ops, err := s.nodeOps()
		if err != nil {
			return nil, err
		}
		var scope *engine.BackupScope
		if in.Workspace != "" {
			if scope, err = s.eng.WorkspaceBackupScope(ctx, principal(ctx), in.Workspace); err != nil {
				return nil, s.fail(ctx, err)
			}
		}
		b, err := ops.OpenBackup(ctx)
		if err != nil {
			return nil, s.opFail(ctx, err)
		}
		s.log.Info("platform operator took a backup", "index", b.Index(), "workspace", in.Workspace, "audit", true, "request_id", requestIDFrom(ctx))
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			defer b.Close()
			hc.SetHeader("Content-Type", "application/octet-stream")
			hc.SetHeader("Content-Disposition", fmt.Sprintf(`attachment; filename="teamflow-%d.tfbackup"`, b.Index()))
			hc.SetHeader("TeamFlow-Backup-Index", strconv.FormatUint(b.Index(), 10))
			hc.SetStatus(http.StatusOK)
			write := b.WriteTo
			if scope != nil {
				write = func(w io.Writer) (int64, error) { return b.WriteWorkspaceTo(w, scope) }
			}
			if _, err := write(hc.BodyWriter()); err != nil {
				// The status is sent; the truncated stream fails its
				// checksum wherever it is restored.
				s.log.Error("backup stream failed", "err", err, "request_id", requestIDFrom(ctx))
			}
		}}, nil
	})
}

func (s *Server) memberChange(ctx context.Context, what string, id uint64, do func(NodeOps) error) (*struct{ Body *ClusterStatus }, error) {
	if err := requireOperatorPrincipal(ctx); err != nil {
		return nil, err
	}
	ops, err := s.nodeOps()
	if err != nil {
		return nil, err
	}
	if err := do(ops); err != nil {
		return nil, s.opFail(ctx, err)
	}
	s.log.Info("platform operator changed the cluster membership", "change", what, "node", id, "audit", true, "request_id", requestIDFrom(ctx))
	st, err := ops.ClusterStatus(ctx)
	if err != nil {
		return nil, s.opFail(ctx, err)
	}
	return &struct{ Body *ClusterStatus }{Body: st}, nil
}

// workspaceID resolves a workspace slug (or ID) through the operator's
// workspace list.
func (s *Server) workspaceID(ctx context.Context, slugOrID string) (string, error) {
	want := strings.ToLower(strings.TrimSpace(slugOrID))
	cursor := ""
	for {
		page, err := s.eng.ListWorkspaces(ctx, principal(ctx), engine.PageRequest{Limit: 200, Cursor: cursor})
		if err != nil {
			return "", s.fail(ctx, err)
		}
		for _, w := range page.Items {
			if w.Slug == want || w.ID == want {
				return w.ID, nil
			}
		}
		if page.NextCursor == "" {
			return "", newProblem(http.StatusNotFound, "not_found", "no such workspace")
		}
		cursor = page.NextCursor
	}
}

// HexHash renders a hash for WorkspaceHash.
func HexHash(b []byte) string { return hex.EncodeToString(b) }
