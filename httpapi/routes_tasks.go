package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

type taskOut struct {
	ETag string `header:"ETag"`
	Body *engine.Task
}

type TaskFilters struct {
	Status    string `query:"status" maxLength:"64" doc:"Status name or ID"`
	Assignee  string `query:"assignee" maxLength:"64" doc:"Member ID, or me"`
	Tag       string `query:"tag" maxLength:"50"`
	DueBefore string `query:"due_before" maxLength:"40" doc:"Due strictly before this date or date-time"`
	DueAfter  string `query:"due_after" maxLength:"40" doc:"Due strictly after this date or date-time"`
	ParentID  string `query:"parent_id" maxLength:"64" doc:"Subtasks of this task, or none for top-level tasks"`
	Sort      string `query:"sort" maxLength:"16" doc:"created (default), updated, due, priority, title or position; prefix - for descending"`
}

func (f TaskFilters) filter() engine.TaskFilter {
	return engine.TaskFilter{Status: f.Status, Assignee: f.Assignee, Tag: f.Tag, DueBefore: f.DueBefore,
		DueAfter: f.DueAfter, ParentID: f.ParentID, Sort: f.Sort}
}

func (s *Server) bindTasks() {
	type listTasksIn struct {
		IDParam
		TaskFilters
		PageParams
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-tasks", Method: http.MethodGet, Path: "/api/v1/projects/{id}/tasks", Tags: []string{"Tasks"},
		Summary: "List a project's tasks, filtered and sorted", Security: sessionSecurity,
	}, func(ctx context.Context, in *listTasksIn) (*struct{ Body *engine.Page[engine.Task] }, error) {
		page, err := s.eng.ListTasks(ctx, principal(ctx), in.ID, in.filter(), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Task] }{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-my-tasks", Method: http.MethodGet, Path: "/api/v1/tasks", Tags: []string{"Tasks"},
		Summary: "Tasks across your projects for one assignee (default: you)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		TaskFilters
		PageParams
	}) (*struct{ Body *engine.Page[engine.Task] }, error) {
		page, err := s.eng.ListTasks(ctx, principal(ctx), "", in.filter(), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Task] }{Body: page}, nil
	})

	type createTaskIn struct {
		IDParam
		Body struct {
			Title       string   `json:"title" minLength:"1" maxLength:"500"`
			Description string   `json:"description,omitempty" maxLength:"65536" doc:"Markdown"`
			Status      string   `json:"status,omitempty" maxLength:"64" doc:"Status name or ID; default the first status"`
			Assignees   []string `json:"assignees,omitempty" maxItems:"20"`
			Due         string   `json:"due,omitempty" maxLength:"40" doc:"YYYY-MM-DD, or an RFC 3339 date-time with zone"`
			Priority    string   `json:"priority,omitempty" enum:"none,low,medium,high,urgent"`
			Tags        []string `json:"tags,omitempty" maxItems:"20"`
			ParentID    string   `json:"parent_id,omitempty" maxLength:"64" doc:"Makes this a subtask"`
			AfterID     *string  `json:"after_id,omitempty" maxLength:"64" doc:"Place after this task in its column; empty string = top; omitted = bottom"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-task", Method: http.MethodPost, Path: "/api/v1/projects/{id}/tasks", Tags: []string{"Tasks"},
		Summary: "Create a task", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createTaskIn) (*taskOut, error) {
		t, err := s.eng.CreateTask(ctx, principal(ctx), in.ID, engine.CreateTaskInput{
			Title: in.Body.Title, Description: in.Body.Description, Status: in.Body.Status, Assignees: in.Body.Assignees,
			Due: in.Body.Due, Priority: in.Body.Priority, Tags: in.Body.Tags, ParentID: in.Body.ParentID, AfterID: in.Body.AfterID,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &taskOut{ETag: etag(t.Version), Body: t}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-task", Method: http.MethodGet, Path: "/api/v1/tasks/{id}", Tags: []string{"Tasks"},
		Summary: "One task (by ID or key such as WEB-12), with its description rendered", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*taskOut, error) {
		t, err := s.eng.GetTask(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &taskOut{ETag: etag(t.Version), Body: t}, nil
	})

	type taskPatchIn struct {
		IDParam
		IfMatchParam
		Body struct {
			Title       *string        `json:"title,omitempty" minLength:"1" maxLength:"500"`
			Description *string        `json:"description,omitempty" maxLength:"65536"`
			Status      *string        `json:"status,omitempty" maxLength:"64" doc:"Status name or ID"`
			Assignees   *[]string      `json:"assignees,omitempty" maxItems:"20"`
			Due         nullableString `json:"due,omitempty" doc:"A date, a date-time with zone, or null to clear"`
			Priority    *string        `json:"priority,omitempty" enum:"none,low,medium,high,urgent"`
			Tags        *[]string      `json:"tags,omitempty" maxItems:"20"`
			ParentID    nullableString `json:"parent_id,omitempty" doc:"A task of the same project, or null for top level"`
			Move        *struct {
				AfterID string `json:"after_id" maxLength:"64" doc:"The task to place this one after; empty for the top of the column"`
			} `json:"move,omitempty" doc:"Place the card in its (new) status column; one write, no other card changes"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "update-task", Method: http.MethodPatch, Path: "/api/v1/tasks/{id}", Tags: []string{"Tasks"},
		Summary: "Change a task, move a card, re-parent", Security: sessionSecurity,
	}, func(ctx context.Context, in *taskPatchIn) (*taskOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		b := in.Body
		patch := engine.TaskPatch{
			Title: b.Title, Description: b.Description, Status: b.Status, Assignees: b.Assignees,
			Priority: b.Priority, Tags: b.Tags, IfMatch: v,
			ClearDue: b.Due.Set && b.Due.Null, ClearParent: b.ParentID.Set && b.ParentID.Null,
		}
		if b.Due.Set && !b.Due.Null {
			patch.Due = &b.Due.Value
		}
		if b.ParentID.Set && !b.ParentID.Null {
			patch.ParentID = &b.ParentID.Value
		}
		if b.Move != nil {
			patch.Move = &engine.TaskMove{AfterID: b.Move.AfterID}
		}
		t, err := s.eng.UpdateTask(ctx, principal(ctx), in.ID, patch)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &taskOut{ETag: etag(t.Version), Body: t}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-task", Method: http.MethodDelete, Path: "/api/v1/tasks/{id}", Tags: []string{"Tasks"},
		Summary: "Move a task and its subtasks to the trash", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
	}) (*struct{}, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		if err := s.eng.DeleteTask(ctx, principal(ctx), in.ID, v); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "restore-task", Method: http.MethodPost, Path: "/api/v1/tasks/{id}/restore", Tags: []string{"Tasks"},
		Summary: "Bring a task (and the subtasks deleted with it) back", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*taskOut, error) {
		t, err := s.eng.RestoreTask(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &taskOut{ETag: etag(t.Version), Body: t}, nil
	})
}
