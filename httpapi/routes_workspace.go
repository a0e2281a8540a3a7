package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

type workspaceOut struct {
	ETag string `header:"ETag"`
	Body *engine.Workspace
}

type memberOut struct {
	ETag string `header:"ETag"`
	Body *engine.Member
}

func (s *Server) bindWorkspace() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-workspace", Method: http.MethodGet, Path: "/api/v1/workspace", Tags: []string{"Workspace"},
		Summary: "Your workspace", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*workspaceOut, error) {
		ws, err := s.eng.GetWorkspace(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &workspaceOut{ETag: etag(ws.Version), Body: ws}, nil
	})

	type workspacePatchIn struct {
		IfMatchParam
		Body struct {
			Name         *string           `json:"name,omitempty" minLength:"1" maxLength:"100"`
			Slug         *string           `json:"slug,omitempty" minLength:"3" maxLength:"40"`
			Timezone     *string           `json:"timezone,omitempty" maxLength:"64"`
			WorkHours    *engine.WorkHours `json:"work_hours,omitempty"`
			Branding     *engine.Branding  `json:"branding,omitempty"`
			MFAGraceDays *int              `json:"mfa_grace_days,omitempty" minimum:"0" maximum:"90" doc:"Days Owners and Admins may work before a second factor is required (0: at once)"`
			CORSOrigins  *[]string         `json:"cors_origins,omitempty" maxItems:"20" doc:"Web origins (https://app.example.com) whose pages may call the API with this workspace's bearer tokens or API keys; [] allows none"`
			IPAllowlist  *[]string         `json:"ip_allowlist,omitempty" maxItems:"100" doc:"Networks (CIDRs or addresses) sign-in and API access may come from; [] allows every address. Plans with IP allowlisting only; must include your own address"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "update-workspace", Method: http.MethodPatch, Path: "/api/v1/workspace", Tags: []string{"Workspace"},
		Summary: "Change workspace settings (Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *workspacePatchIn) (*workspaceOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		ws, err := s.eng.UpdateWorkspace(ctx, principal(ctx), engine.WorkspacePatch{
			Name: in.Body.Name, Slug: in.Body.Slug, Timezone: in.Body.Timezone, WorkHours: in.Body.WorkHours,
			Branding: in.Body.Branding, MFAGraceDays: in.Body.MFAGraceDays, IPAllowlist: in.Body.IPAllowlist, CORSOrigins: in.Body.CORSOrigins, IfMatch: v,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &workspaceOut{ETag: etag(ws.Version), Body: ws}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-plan", Method: http.MethodGet, Path: "/api/v1/workspace/plan", Tags: []string{"Workspace"},
		Summary: "Your workspace's plan, limits and usage", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body *engine.PlanInfo }, error) {
		info, err := s.eng.GetPlan(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.PlanInfo }{Body: info}, nil
	})
}

func (s *Server) bindMembers() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-members", Method: http.MethodGet, Path: "/api/v1/members", Tags: []string{"People"},
		Summary: "List the workspace's members", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct{ Body *engine.Page[engine.Member] }, error) {
		page, err := s.eng.ListMembers(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Page[engine.Member] }{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-member", Method: http.MethodGet, Path: "/api/v1/members/{id}", Tags: []string{"People"},
		Summary: "One member", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*memberOut, error) {
		m, err := s.eng.GetMember(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &memberOut{ETag: etag(m.Version), Body: m}, nil
	})

	type memberPatchIn struct {
		IDParam
		IfMatchParam
		Body struct {
			Role   *engine.Role `json:"role,omitempty" enum:"owner,admin,member,guest"`
			Status *string      `json:"status,omitempty" enum:"active,deactivated" doc:"deactivated signs the member out everywhere at once"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "update-member", Method: http.MethodPatch, Path: "/api/v1/members/{id}", Tags: []string{"People"},
		Summary: "Change a member's role or deactivate them (Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *memberPatchIn) (*memberOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		m, err := s.eng.UpdateMember(ctx, principal(ctx), in.ID, engine.MemberPatch{Role: in.Body.Role, Status: in.Body.Status, IfMatch: v})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &memberOut{ETag: etag(m.Version), Body: m}, nil
	})

	type inviteIn struct {
		Body struct {
			Email string      `json:"email" minLength:"3" maxLength:"254"`
			Role  engine.Role `json:"role,omitempty" enum:"owner,admin,member,guest" doc:"Default member"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-invitation", Method: http.MethodPost, Path: "/api/v1/invitations", Tags: []string{"People"},
		Summary:     "Invite someone by email (Owners and Admins)",
		Description: "Until mail delivery is configured, the answer carries the invitation link (shown once) for the admin to hand over.",
		Security:    sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *inviteIn) (*struct{ Body *engine.Invitation }, error) {
		inv, err := s.eng.Invite(ctx, principal(ctx), in.Body.Email, in.Body.Role)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Invitation }{Body: inv}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-invitations", Method: http.MethodGet, Path: "/api/v1/invitations", Tags: []string{"People"},
		Summary: "List invitations, newest first (Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct {
		Body *engine.Page[engine.Invitation]
	}, error) {
		page, err := s.eng.ListInvitations(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.Invitation]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-invitation", Method: http.MethodDelete, Path: "/api/v1/invitations/{id}", Tags: []string{"People"},
		Summary: "Revoke a pending invitation", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.RevokeInvitation(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	type TokenParam struct {
		Token string `path:"id" maxLength:"256" doc:"The invitation token from the link (gin needs one wildcard name per position, hence id)"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "preview-invitation", Method: http.MethodGet, Path: "/api/v1/invitations/{id}/preview", Tags: []string{"People"},
		Summary: "What an invitation is for (no sign-in needed; the token is the credential)",
	}, func(ctx context.Context, in *TokenParam) (*struct{ Body *engine.InvitationPreview }, error) {
		pv, err := s.eng.PreviewInvitation(ctx, in.Token)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.InvitationPreview }{Body: pv}, nil
	})

	type acceptIn struct {
		TokenParam
		Body struct {
			Name          string `json:"name" minLength:"1" maxLength:"100"`
			Password      string `json:"password" minLength:"8" maxLength:"128"`
			Timezone      string `json:"timezone,omitempty" maxLength:"64"`
			SessionCookie bool   `json:"session_cookie,omitempty"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "accept-invitation", Method: http.MethodPost, Path: "/api/v1/invitations/{id}/accept", Tags: []string{"People"},
		Summary: "Accept an invitation: creates your account and signs you in", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *acceptIn) (*createdOut, error) {
		c, err := s.eng.AcceptInvitation(ctx, engine.AcceptInput{
			Token: in.Token, Name: in.Body.Name, Password: in.Body.Password, Timezone: in.Body.Timezone, Client: clientInfo(ctx),
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.created(c, in.Body.SessionCookie), nil
	})
}
