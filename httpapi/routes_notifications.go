package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

func (s *Server) bindNotifications() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-notifications", Method: http.MethodGet, Path: "/api/v1/notifications", Tags: []string{"Notifications"},
		Summary: "Your inbox, newest first, with the unread count", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		PageParams
		Unread bool `query:"unread" doc:"Only unread notifications"`
	}) (*struct{ Body *engine.NotificationList }, error) {
		list, err := s.eng.ListNotifications(ctx, principal(ctx), in.Unread, in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.NotificationList }{Body: list}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "read-notification", Method: http.MethodPost, Path: "/api/v1/notifications/{id}/read", Tags: []string{"Notifications"},
		Summary: "Mark a notification read", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.MarkRead(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "read-all-notifications", Method: http.MethodPost, Path: "/api/v1/notifications/read-all", Tags: []string{"Notifications"},
		Summary: "Mark every notification read", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		if err := s.eng.MarkRead(ctx, principal(ctx), ""); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	type followOut struct {
		Body struct {
			Following bool `json:"following"`
		}
	}
	following := func(v bool) *followOut {
		out := &followOut{}
		out.Body.Following = v
		return out
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "get-follow", Method: http.MethodGet, Path: "/api/v1/tasks/{id}/follow", Tags: []string{"Notifications"},
		Summary: "Whether you follow a task (its comments and status changes notify you)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*followOut, error) {
		on, err := s.eng.IsFollowing(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return following(on), nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "follow-task", Method: http.MethodPut, Path: "/api/v1/tasks/{id}/follow", Tags: []string{"Notifications"},
		Summary: "Follow a task", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*followOut, error) {
		if err := s.eng.SetFollowing(ctx, principal(ctx), in.ID, true); err != nil {
			return nil, s.fail(ctx, err)
		}
		return following(true), nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "unfollow-task", Method: http.MethodDelete, Path: "/api/v1/tasks/{id}/follow", Tags: []string{"Notifications"},
		Summary: "Stop following a task", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*followOut, error) {
		if err := s.eng.SetFollowing(ctx, principal(ctx), in.ID, false); err != nil {
			return nil, s.fail(ctx, err)
		}
		return following(false), nil
	})
}
