package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

// searchParams are the query parameters of GET /api/v1/search. The
// filters are ANDed with those in q; comma-separated values of one filter
// are alternatives.
type searchParams struct {
	Q         string `query:"q" maxLength:"4000" doc:"Words, \"phrases\", -negation and field filters (assignee:me, status:done, tag:x, project:WEB, due:<2026-12-01, kind:task); see docs/SEARCH.md"`
	Limit     int    `query:"limit" minimum:"1" maximum:"100" doc:"Page size (default 20, at most 100)"`
	Cursor    string `query:"cursor" maxLength:"2048" doc:"The next_cursor of the previous page (of the same query)"`
	Project   string `query:"project" maxLength:"2000" doc:"Project IDs or keys, comma-separated"`
	Assignee  string `query:"assignee" maxLength:"2000" doc:"Member IDs, emails or names, or me; comma-separated"`
	Status    string `query:"status" maxLength:"2000" doc:"Categories (todo, in_progress, done), status names or IDs; comma-separated"`
	Tag       string `query:"tag" maxLength:"2000" doc:"Tags, comma-separated"`
	DueBefore string `query:"due_before" maxLength:"40" doc:"Due strictly before this date or date-time"`
	DueAfter  string `query:"due_after" maxLength:"40" doc:"Due strictly after this date or date-time"`
	Kind      string `query:"kind" maxLength:"100" doc:"task, project or comment; comma-separated"`
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p searchParams) input() engine.SearchInput {
	return engine.SearchInput{
		Text: p.Q, Projects: splitList(p.Project), Assignees: splitList(p.Assignee), Statuses: splitList(p.Status),
		Tags: splitList(p.Tag), DueBefore: strings.TrimSpace(p.DueBefore), DueAfter: strings.TrimSpace(p.DueAfter),
		Kinds: splitList(p.Kind), Limit: p.Limit, Cursor: p.Cursor,
	}
}

type filterPage struct {
	Body *engine.Page[engine.SavedFilter]
}

func (s *Server) bindSearch() {
	huma.Register(s.api, huma.Operation{
		OperationID: "search", Method: http.MethodGet, Path: "/api/v1/search", Tags: []string{"Search"},
		Summary: "Full-text search over tasks, projects and comments",
		Description: "Searches the caller's workspace, in the projects the caller may see only. Hits are ranked by relevance and " +
			"recency (filter-only queries list the newest first) and carry highlights. A bad query is 400 (invalid_query, " +
			"invalid_cursor); while the workspace's index is being rebuilt the answer is 503 index_rebuilding with Retry-After.",
		Security: sessionSecurity,
		Errors:   []int{http.StatusBadRequest, http.StatusServiceUnavailable},
	}, func(ctx context.Context, in *searchParams) (*struct{ Body *engine.SearchPage }, error) {
		page, err := s.eng.Search(ctx, principal(ctx), in.input())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.SearchPage }{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-filters", Method: http.MethodGet, Path: "/api/v1/filters", Tags: []string{"Search"},
		Summary: "Your saved filters and the workspace's shared ones", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*filterPage, error) {
		page, err := s.eng.ListFilters(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &filterPage{Body: page}, nil
	})

	type filterBody struct {
		Name   string `json:"name" minLength:"1" maxLength:"100"`
		Query  string `json:"query" minLength:"1" maxLength:"1000" doc:"A search query, as q of GET /api/v1/search"`
		Shared bool   `json:"shared,omitempty" doc:"Share with the whole workspace (not for Guests); default private"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-filter", Method: http.MethodPost, Path: "/api/v1/filters", Tags: []string{"Search"},
		Summary: "Save a filter, private or shared with the workspace", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body filterBody }) (*struct{ Body *engine.SavedFilter }, error) {
		f, err := s.eng.CreateFilter(ctx, principal(ctx), engine.SavedFilterInput{Name: in.Body.Name, Query: in.Body.Query, Shared: in.Body.Shared})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.SavedFilter }{Body: f}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-filter", Method: http.MethodGet, Path: "/api/v1/filters/{id}", Tags: []string{"Search"},
		Summary: "A saved filter", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{ Body *engine.SavedFilter }, error) {
		f, err := s.eng.GetFilter(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.SavedFilter }{Body: f}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-filter", Method: http.MethodDelete, Path: "/api/v1/filters/{id}", Tags: []string{"Search"},
		Summary: "Delete a saved filter (its creator; a shared one also an Owner or Admin)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.DeleteFilter(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "platform-rebuild-index", Method: http.MethodPost, Path: "/api/v1/platform/index/rebuild", Tags: []string{"Platform"},
		Summary: "Rebuild this node's search index from its store (platform operator; teamflow index rebuild)",
		Description: "Rebuilds one workspace's index (workspace: its slug) or every workspace's. Searches keep being answered by the " +
			"previous index meanwhile. Each node keeps its own index: in a cluster, ask each node. Waits up to 50 s; a rebuild " +
			"still running then is reported as running and carries on in the background.",
		Security: operatorSecurity,
	}, func(ctx context.Context, in *struct {
		Body *struct {
			Workspace string `json:"workspace,omitempty" maxLength:"64" doc:"The workspace's slug; empty for every workspace"`
		}
	}) (*struct {
		Body struct {
			Items []engine.IndexRebuild `json:"items"`
		}
	}, error) {
		slug := ""
		if in.Body != nil {
			slug = in.Body.Workspace
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Second)
		defer cancel()
		items, err := s.eng.RebuildSearchIndex(wctx, principal(ctx), slug)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &struct {
			Body struct {
				Items []engine.IndexRebuild `json:"items"`
			}
		}{}
		out.Body.Items = items
		return out, nil
	})
}
