package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

type projectOut struct {
	ETag string `header:"ETag"`
	Body *engine.Project
}

type statusBody struct {
	ID       string `json:"id,omitempty" maxLength:"64" doc:"Keep the ID of an existing status; omit for a new one"`
	Name     string `json:"name" minLength:"1" maxLength:"50"`
	Category string `json:"category" enum:"todo,in_progress,done"`
}

func statuses(in []statusBody) []engine.Status {
	if in == nil {
		return nil
	}
	out := make([]engine.Status, len(in))
	for i, st := range in {
		out[i] = engine.Status(st)
	}
	return out
}

func (s *Server) bindProjects() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-projects", Method: http.MethodGet, Path: "/api/v1/projects", Tags: []string{"Projects"},
		Summary: "List the projects you can see", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct{ Body *engine.Page[engine.Project] }, error) {
		page, err := s.eng.ListProjects(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Project] }{Body: page}, nil
	})

	type createProjectIn struct {
		Body struct {
			Name        string       `json:"name" minLength:"1" maxLength:"120"`
			Key         string       `json:"key,omitempty" maxLength:"10" doc:"2–10 capitals or digits; derived from the name when omitted"`
			Description string       `json:"description,omitempty" maxLength:"65536" doc:"Markdown"`
			Visibility  string       `json:"visibility,omitempty" enum:"workspace,private" doc:"Default workspace"`
			Statuses    []statusBody `json:"statuses,omitempty" maxItems:"20" doc:"Custom statuses (plans with custom workflows); default To do, In progress, Done"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-project", Method: http.MethodPost, Path: "/api/v1/projects", Tags: []string{"Projects"},
		Summary: "Create a project; you become its Lead", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createProjectIn) (*projectOut, error) {
		p, err := s.eng.CreateProject(ctx, principal(ctx), engine.CreateProjectInput{
			Name: in.Body.Name, Key: in.Body.Key, Description: in.Body.Description,
			Visibility: in.Body.Visibility, Statuses: statuses(in.Body.Statuses),
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &projectOut{ETag: etag(p.Version), Body: p}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-project", Method: http.MethodGet, Path: "/api/v1/projects/{id}", Tags: []string{"Projects"},
		Summary: "One project", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*projectOut, error) {
		p, err := s.eng.GetProject(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &projectOut{ETag: etag(p.Version), Body: p}, nil
	})

	type projectPatchIn struct {
		IDParam
		IfMatchParam
		Body struct {
			Name        *string      `json:"name,omitempty" minLength:"1" maxLength:"120"`
			Description *string      `json:"description,omitempty" maxLength:"65536"`
			Visibility  *string      `json:"visibility,omitempty" enum:"workspace,private"`
			Statuses    []statusBody `json:"statuses,omitempty" maxItems:"20" doc:"The whole ordered list; a status that still holds tasks cannot be removed"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "update-project", Method: http.MethodPatch, Path: "/api/v1/projects/{id}", Tags: []string{"Projects"},
		Summary: "Change a project (its Lead, Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *projectPatchIn) (*projectOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		p, err := s.eng.UpdateProject(ctx, principal(ctx), in.ID, engine.ProjectPatch{
			Name: in.Body.Name, Description: in.Body.Description, Visibility: in.Body.Visibility,
			Statuses: statuses(in.Body.Statuses), IfMatch: v,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &projectOut{ETag: etag(p.Version), Body: p}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-project", Method: http.MethodDelete, Path: "/api/v1/projects/{id}", Tags: []string{"Projects"},
		Summary: "Move a project to the trash (restorable for 30 days)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
	}) (*struct{}, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		if err := s.eng.DeleteProject(ctx, principal(ctx), in.ID, v); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "restore-project", Method: http.MethodPost, Path: "/api/v1/projects/{id}/restore", Tags: []string{"Projects"},
		Summary: "Bring a project back from the trash", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*projectOut, error) {
		p, err := s.eng.RestoreProject(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &projectOut{ETag: etag(p.Version), Body: p}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-project-members", Method: http.MethodGet, Path: "/api/v1/projects/{id}/members", Tags: []string{"Projects"},
		Summary: "A project's explicit members and their project roles", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct {
		Body *engine.Page[engine.ProjectMember]
	}, error) {
		page, err := s.eng.ListProjectMembers(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.ProjectMember]
		}{Body: page}, nil
	})

	type ProjectMemberParams struct {
		IDParam
		UserID string `path:"user_id" maxLength:"64"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "set-project-member", Method: http.MethodPut, Path: "/api/v1/projects/{id}/members/{user_id}", Tags: []string{"Projects"},
		Summary: "Add a member to a project or change their project role", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		ProjectMemberParams
		Body struct {
			Role engine.ProjectRole `json:"role" enum:"lead,contributor,observer"`
		}
	}) (*struct{ Body *engine.ProjectMember }, error) {
		m, err := s.eng.SetProjectMember(ctx, principal(ctx), in.ID, in.UserID, in.Body.Role)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.ProjectMember }{Body: m}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "remove-project-member", Method: http.MethodDelete, Path: "/api/v1/projects/{id}/members/{user_id}", Tags: []string{"Projects"},
		Summary: "Remove a member's explicit project role", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *ProjectMemberParams) (*struct{}, error) {
		if err := s.eng.RemoveProjectMember(ctx, principal(ctx), in.ID, in.UserID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})
}
