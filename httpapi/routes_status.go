package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"
	"github.com/teamflow/teamflow/engine"
)

// statusOut is an update with its ETag.
type statusOut struct {
	ETag string `header:"ETag"`
	Body *engine.StatusUpdate
}

type statusRequestBody struct {
	Period string     `json:"period,omitempty" enum:"day,week" doc:"The period ending now (default week)"`
	From   *time.Time `json:"from,omitempty" doc:"Or an explicit period: from…"`
	To     *time.Time `json:"to,omitempty" doc:"…to"`
}

// request is the engine's request for the body; no body asks for the
// defaults (the week ending now).
func (b *statusRequestBody) request() engine.StatusRequest {
	if b == nil {
		return engine.StatusRequest{}
	}
	r := engine.StatusRequest{Period: b.Period}
	if b.From != nil {
		r.From = *b.From
	}
	if b.To != nil {
		r.To = *b.To
	}
	return r
}

// TextChunk is a piece of an update's text as the writer produces it.
type TextChunk struct {
	Text string `json:"text"`
}

// StreamError ends a stream that could not produce an update.
type StreamError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// statusAnswer turns the engine's answer about one update into the
// route's, with the update's version as its ETag.
func (s *Server) statusAnswer(ctx context.Context) func(*engine.StatusUpdate, error) (*statusOut, error) {
	return func(u *engine.StatusUpdate, err error) (*statusOut, error) {
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &statusOut{ETag: etag(u.Version), Body: u}, nil
	}
}

func (s *Server) bindStatus() {
	huma.Register(s.api, huma.Operation{
		OperationID: "create-status-update", Method: http.MethodPost, Path: "/api/v1/projects/{id}/status-updates", Tags: []string{"Status updates"},
		Summary:     "Write a status update for a project from its activity and tasks",
		Description: "Written by the configured model (every cited fact, task, person and number checked against the facts) or by the built-in writer; the answer says which.",
		Security:    sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		IDParam
		Body *statusRequestBody `required:"false"`
	}) (*statusOut, error) {
		req := in.Body.request()
		req.ProjectID = in.ID
		return s.statusAnswer(ctx)(s.eng.CreateStatusUpdate(ctx, principal(ctx), req))
	})

	sse.Register(s.api, huma.Operation{
		OperationID: "stream-status-update", Method: http.MethodPost, Path: "/api/v1/projects/{id}/status-updates/stream", Tags: []string{"Status updates"},
		Summary:     "Write a status update and stream its text as it is written (server-sent events)",
		Description: "Events: text (chunks of the text as the writer produces them), then update (the stored update) or error.",
		Security:    sessionSecurity,
	}, map[string]any{"text": TextChunk{}, "update": engine.StatusUpdate{}, "error": StreamError{}}, func(ctx context.Context, in *struct {
		IDParam
		Body *statusRequestBody `required:"false"`
	}, send sse.Sender) {
		req := in.Body.request()
		req.ProjectID = in.ID
		req.OnText = func(chunk string) { _ = send.Data(TextChunk{Text: chunk}) }
		u, err := s.eng.CreateStatusUpdate(ctx, principal(ctx), req)
		if err != nil {
			p := s.fail(ctx, err).(*Problem)
			_ = send.Data(StreamError{Status: p.Status, Code: p.Code, Detail: p.Detail})
			return
		}
		_ = send.Data(u)
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-status-updates", Method: http.MethodGet, Path: "/api/v1/projects/{id}/status-updates", Tags: []string{"Status updates"},
		Summary: "A project's status updates, newest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct {
		Body *engine.Page[engine.StatusUpdate]
	}, error) {
		page, err := s.eng.ListStatusUpdates(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.StatusUpdate]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-status-update", Method: http.MethodGet, Path: "/api/v1/status-updates/{id}", Tags: []string{"Status updates"},
		Summary: "One status update", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*statusOut, error) {
		return s.statusAnswer(ctx)(s.eng.GetStatusUpdate(ctx, principal(ctx), in.ID))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "edit-status-update", Method: http.MethodPatch, Path: "/api/v1/status-updates/{id}", Tags: []string{"Status updates"},
		Summary: "Edit an update's text (the project's Lead)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
		Body struct {
			Text string `json:"text" minLength:"1" maxLength:"65536"`
		}
	}) (*statusOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		return s.statusAnswer(ctx)(s.eng.EditStatusUpdate(ctx, principal(ctx), in.ID, in.Body.Text, v))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "publish-status-update", Method: http.MethodPost, Path: "/api/v1/status-updates/{id}/publish", Tags: []string{"Status updates"},
		Summary: "Publish an update to the activity feed and the weekly digest (the project's Lead)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*statusOut, error) {
		return s.statusAnswer(ctx)(s.eng.PublishStatusUpdate(ctx, principal(ctx), in.ID))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "status-usage", Method: http.MethodGet, Path: "/api/v1/workspace/status-usage", Tags: []string{"Status updates"},
		Summary: "This month's status updates against the plan", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body *engine.AIUsage }, error) {
		u, err := s.eng.StatusUsage(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.AIUsage }{Body: u}, nil
	})

	type teamBody struct {
		Name     *string              `json:"name,omitempty" minLength:"1" maxLength:"100"`
		Members  *[]string            `json:"members,omitempty" maxItems:"500"`
		Projects *[]string            `json:"projects,omitempty" maxItems:"100"`
		Timezone *string              `json:"timezone,omitempty" maxLength:"64"`
		Schedule *engine.TeamSchedule `json:"schedule,omitempty"`
	}
	teamInput := func(b teamBody, ifMatch uint64) engine.TeamInput {
		return engine.TeamInput{Name: b.Name, Members: b.Members, Projects: b.Projects, Timezone: b.Timezone, Schedule: b.Schedule, IfMatch: ifMatch}
	}
	type teamOut struct {
		ETag string `header:"ETag"`
		Body *engine.Team
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-teams", Method: http.MethodGet, Path: "/api/v1/teams", Tags: []string{"Status updates"},
		Summary: "Teams you can see", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct{ Body *engine.Page[engine.Team] }, error) {
		page, err := s.eng.ListTeams(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Team] }{Body: page}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "create-team", Method: http.MethodPost, Path: "/api/v1/teams", Tags: []string{"Status updates"},
		Summary: "Create a team with a status-update schedule (Owners and Admins)", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body teamBody }) (*teamOut, error) {
		t, err := s.eng.CreateTeam(ctx, principal(ctx), teamInput(in.Body, 0))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &teamOut{ETag: etag(t.Version), Body: t}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-team", Method: http.MethodGet, Path: "/api/v1/teams/{id}", Tags: []string{"Status updates"},
		Summary: "One team", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*teamOut, error) {
		t, err := s.eng.GetTeam(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &teamOut{ETag: etag(t.Version), Body: t}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-team", Method: http.MethodPatch, Path: "/api/v1/teams/{id}", Tags: []string{"Status updates"},
		Summary: "Change a team (Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		IfMatchParam
		Body teamBody
	}) (*teamOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		t, err := s.eng.UpdateTeam(ctx, principal(ctx), in.ID, teamInput(in.Body, v))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &teamOut{ETag: etag(t.Version), Body: t}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-team", Method: http.MethodDelete, Path: "/api/v1/teams/{id}", Tags: []string{"Status updates"},
		Summary: "Delete a team (Owners and Admins)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.DeleteTeam(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "create-team-status-update", Method: http.MethodPost, Path: "/api/v1/teams/{id}/status-updates", Tags: []string{"Status updates"},
		Summary: "Write a status update over a team's projects", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		IDParam
		Body *statusRequestBody `required:"false"`
	}) (*statusOut, error) {
		req := in.Body.request()
		req.TeamID = in.ID
		return s.statusAnswer(ctx)(s.eng.CreateStatusUpdate(ctx, principal(ctx), req))
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-team-status-updates", Method: http.MethodGet, Path: "/api/v1/teams/{id}/status-updates", Tags: []string{"Status updates"},
		Summary: "A team's status updates, newest first", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		IDParam
		PageParams
	}) (*struct {
		Body *engine.Page[engine.StatusUpdate]
	}, error) {
		page, err := s.eng.ListTeamUpdates(ctx, principal(ctx), in.ID, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.StatusUpdate]
		}{Body: page}, nil
	})
}
