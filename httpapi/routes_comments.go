package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

type commentOut struct {
	ETag string `header:"ETag"`
	Body *engine.Comment
}

func (s *Server) bindComments() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-comments", Method: http.MethodGet, Path: "/api/v1/tasks/{id}/comments", Tags: []string{"Comments"},
		Summary: "A task's comments, oldest first (replies carry parent_id)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct{ Body *engine.Page[engine.Comment] }, error) {
		page, err := s.eng.ListComments(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Comment] }{Body: page}, nil
	})

	type createCommentIn struct {
		IDParam
		Body struct {
			Body     string `json:"body" minLength:"1" maxLength:"65536" doc:"Markdown; mention someone with @[Name](user:<id>)"`
			ParentID string `json:"parent_id,omitempty" maxLength:"64" doc:"The comment this one replies to"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-comment", Method: http.MethodPost, Path: "/api/v1/tasks/{id}/comments", Tags: []string{"Comments"},
		Summary: "Comment on a task", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createCommentIn) (*commentOut, error) {
		c, err := s.eng.CreateComment(ctx, principal(ctx), in.ID, in.Body.Body, in.Body.ParentID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &commentOut{ETag: etag(c.Version), Body: c}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-comment", Method: http.MethodGet, Path: "/api/v1/comments/{id}", Tags: []string{"Comments"},
		Summary: "One comment", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*commentOut, error) {
		c, err := s.eng.GetComment(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &commentOut{ETag: etag(c.Version), Body: c}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "update-comment", Method: http.MethodPatch, Path: "/api/v1/comments/{id}", Tags: []string{"Comments"},
		Summary: "Edit your comment", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
		Body struct {
			Body string `json:"body" minLength:"1" maxLength:"65536"`
		}
	}) (*commentOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		c, err := s.eng.UpdateComment(ctx, principal(ctx), in.ID, in.Body.Body, v)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &commentOut{ETag: etag(c.Version), Body: c}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-comment", Method: http.MethodDelete, Path: "/api/v1/comments/{id}", Tags: []string{"Comments"},
		Summary: "Delete a comment (its author, or the project's Lead)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
	}) (*struct{}, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		if err := s.eng.DeleteComment(ctx, principal(ctx), in.ID, v); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "restore-comment", Method: http.MethodPost, Path: "/api/v1/comments/{id}/restore", Tags: []string{"Comments"},
		Summary: "Bring a deleted comment back", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*commentOut, error) {
		c, err := s.eng.RestoreComment(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &commentOut{ETag: etag(c.Version), Body: c}, nil
	})
}

func (s *Server) bindActivity() {
	huma.Register(s.api, huma.Operation{
		OperationID: "project-activity", Method: http.MethodGet, Path: "/api/v1/projects/{id}/activity", Tags: []string{"Activity"},
		Summary: "A project's changes, newest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct {
		Body *engine.Page[engine.ActivityEntry]
	}, error) {
		page, err := s.eng.ProjectActivity(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.ActivityEntry]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "task-activity", Method: http.MethodGet, Path: "/api/v1/tasks/{id}/activity", Tags: []string{"Activity"},
		Summary: "A task's changes and its comments', newest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct {
		Body *engine.Page[engine.ActivityEntry]
	}, error) {
		page, err := s.eng.TaskActivity(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.ActivityEntry]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "workspace-activity", Method: http.MethodGet, Path: "/api/v1/activity", Tags: []string{"Activity"},
		Summary: "Every change you can see, newest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct {
		Body *engine.Page[engine.ActivityEntry]
	}, error) {
		page, err := s.eng.WorkspaceActivity(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.ActivityEntry]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-trash", Method: http.MethodGet, Path: "/api/v1/trash", Tags: []string{"Activity"},
		Summary: "Deleted items you can restore, until they are purged", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct {
		Body *engine.Page[engine.TrashItem]
	}, error) {
		page, err := s.eng.ListTrash(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.TrashItem]
		}{Body: page}, nil
	})
}
