package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/licensing"
)

// WorkspaceMover is implemented by a StateSource that can move a workspace
// into a dedicated store of its own (a cluster member;
// cluster/DESIGN-dedicated-groups.md).
type WorkspaceMover interface {
	// DedicateWorkspace moves tenant into its own raft group and store,
	// resuming a move that stopped; with abort it undoes a move that has
	// not flipped yet.
	DedicateWorkspace(ctx context.Context, tenant string, abort bool) (*DedicateStatus, error)
}

// DedicateStatus reports a move.
type DedicateStatus struct {
	Workspace  string   `json:"workspace"`
	State      string   `json:"state" enum:"shared,fenced,seeding,dedicated" doc:"Where the workspace lives now"`
	Group      uint64   `json:"group,omitempty" doc:"Its raft group"`
	PingIndex  uint64   `json:"ping_index,omitempty" doc:"The group's index every member reaches before it serves the workspace"`
	Steps      []string `json:"steps" doc:"What this call did"`
	MoveMillis int64    `json:"move_ms"`
}

func (s *Server) bindDedicate() {
	huma.Register(s.api, huma.Operation{
		OperationID: "platform-dedicate-workspace", Method: http.MethodPost, Path: "/api/v1/platform/workspaces/{slug}/dedicate", Tags: []string{"Platform"},
		Summary: "Move a workspace into a dedicated store of its own (platform operator; Enterprise plan; `teamflow workspace dedicate`)",
		Description: "Fences the workspace (its writes answer 503 workspace_moving with Retry-After meanwhile), hashes it, seeds its raft group " +
			"on every member, checks the group, and flips the route. Running it again resumes a move that stopped; `abort` undoes one that has not flipped.",
		Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Slug string `path:"slug" maxLength:"64" doc:"Workspace slug or ID"`
		Body struct {
			Abort bool `json:"abort,omitempty" doc:"Undo a move that has not flipped"`
		}
	}) (*struct{ Body *DedicateStatus }, error) {
		if err := requireOperatorPrincipal(ctx); err != nil {
			return nil, err
		}
		mover, ok := s.state.(WorkspaceMover)
		if !ok {
			return nil, newProblem(http.StatusConflict, "not_clustered", "dedicated stores are raft groups of a cluster: this node runs alone")
		}
		ws, err := s.workspaceSummary(ctx, in.Slug)
		if err != nil {
			return nil, err
		}
		if !in.Body.Abort {
			plan, err := licensing.Lookup(ws.Plan)
			if err != nil || !plan.DedicatedStore {
				p := newProblem(http.StatusForbidden, "plan_feature_unavailable", "a dedicated store is not part of the "+ws.Plan+" plan (Enterprise only)")
				p.Details = map[string]any{"feature": "dedicated_store", "plan": ws.Plan}
				return nil, p
			}
		}
		// Audited in the workspace's own trail (DESIGN rule 8): the request
		// before the move (copied into the dedicated store with the rest),
		// the outcome after it (in the store the workspace then lives in).
		// While a move is under way the workspace takes no write: a resumed
		// move is recorded by its outcome only.
		if !in.Body.Abort {
			if err := s.eng.RecordOperatorAction(ctx, principal(ctx), ws.ID, "platform.workspace_dedicate", map[string]any{"phase": "requested"}); err != nil {
				var ee *engine.Error
				if !errors.As(err, &ee) || ee.Code != "workspace_moving" {
					return nil, s.fail(ctx, err)
				}
			}
		}
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		st, err := mover.DedicateWorkspace(mctx, ws.ID, in.Body.Abort)
		what := "dedicate"
		if in.Body.Abort {
			what = "abort dedicate"
		}
		if err != nil {
			s.log.Warn("platform operator's workspace move failed", "change", what, "workspace", ws.ID, "err", err.Error(), "audit", true, "request_id", requestIDFrom(ctx))
			return nil, s.opFail(ctx, err)
		}
		action, detail := "platform.workspace_dedicate", map[string]any{"phase": "done", "group": st.Group}
		if in.Body.Abort {
			action, detail = "platform.workspace_dedicate_abort", map[string]any{"steps": st.Steps}
		}
		if st.State == "dedicated" || st.State == "shared" {
			if err := s.eng.RecordOperatorAction(ctx, principal(ctx), ws.ID, action, detail); err != nil {
				s.log.Error("record the workspace move in its audit trail", "workspace", ws.ID, "err", err.Error(), "request_id", requestIDFrom(ctx))
			}
		}
		s.log.Info("platform operator moved a workspace", "change", what, "workspace", ws.ID, "slug", ws.Slug, "state", st.State, "group", st.Group,
			"steps", strings.Join(st.Steps, ","), "audit", true, "request_id", requestIDFrom(ctx))
		return &struct{ Body *DedicateStatus }{Body: st}, nil
	})
}

// workspaceSummary resolves a workspace slug (or ID) through the
// operator's workspace list.
func (s *Server) workspaceSummary(ctx context.Context, slugOrID string) (*engine.WorkspaceSummary, error) {
	want := strings.ToLower(strings.TrimSpace(slugOrID))
	cursor := ""
	for {
		page, err := s.eng.ListWorkspaces(ctx, principal(ctx), engine.PageRequest{Limit: 200, Cursor: cursor})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		for _, w := range page.Items {
			if w.Slug == want || w.ID == want {
				return &w, nil
			}
		}
		if page.NextCursor == "" {
			return nil, newProblem(http.StatusNotFound, "not_found", "no such workspace")
		}
		cursor = page.NextCursor
	}
}
