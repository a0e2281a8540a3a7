package httpapi

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

type NewWorkspaceBody struct {
	WorkspaceName string `json:"workspace_name" minLength:"1" maxLength:"100"`
	WorkspaceSlug string `json:"workspace_slug" minLength:"3" maxLength:"40" doc:"Lowercase letters, digits and hyphens; names the workspace at sign-in"`
	Name          string `json:"name" minLength:"1" maxLength:"100" doc:"The Owner's name"`
	Email         string `json:"email" minLength:"3" maxLength:"254"`
	Password      string `json:"password" minLength:"8" maxLength:"128"`
	Timezone      string `json:"timezone,omitempty" maxLength:"64" doc:"IANA timezone, default UTC"`
	SessionCookie bool   `json:"session_cookie,omitempty" doc:"Set the session as httpOnly cookies (the web UI) instead of returning tokens"`
}

func (b NewWorkspaceBody) input(ci engine.ClientInfo) engine.CreateWorkspaceInput {
	return engine.CreateWorkspaceInput{
		WorkspaceName: b.WorkspaceName, WorkspaceSlug: b.WorkspaceSlug, Name: b.Name,
		Email: b.Email, Password: b.Password, Timezone: b.Timezone, Client: ci,
	}
}

type createdBody struct {
	Workspace *engine.Workspace `json:"workspace"`
	Owner     *engine.Member    `json:"owner" doc:"The account created (the Owner, or the invited member)"`
	SessionBody
}

type createdOut struct {
	SetCookie []http.Cookie `header:"Set-Cookie"`
	Body      createdBody
}

func (s *Server) created(c *engine.Created, cookies bool) *createdOut {
	sb, ck := s.session(c.Tokens, cookies)
	return &createdOut{SetCookie: ck, Body: createdBody{Workspace: c.Workspace, Owner: c.Owner, SessionBody: sb}}
}

type sessionOut struct {
	SetCookie []http.Cookie `header:"Set-Cookie"`
	Body      SessionBody
}

func (s *Server) bindAuth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-setup", Method: http.MethodGet, Path: "/api/v1/setup", Tags: []string{"Setup"},
		Summary: "Whether first-run setup is open",
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Needed bool   `json:"needed"`
			Mode   string `json:"mode" enum:"onprem,cloud"`
			Mail   bool   `json:"mail" doc:"Whether this server sends mail. When false, the flows that need it (sign-in links, password resets, new confirmation links) answer 409 mail_unavailable, so a sign-in screen can leave them out."`
		}
	}, error) {
		needed, mode := s.eng.SetupStatus()
		out := &struct {
			Body struct {
				Needed bool   `json:"needed"`
				Mode   string `json:"mode" enum:"onprem,cloud"`
				Mail   bool   `json:"mail" doc:"Whether this server sends mail. When false, the flows that need it (sign-in links, password resets, new confirmation links) answer 409 mail_unavailable, so a sign-in screen can leave them out."`
			}
		}{}
		out.Body.Needed, out.Body.Mode, out.Body.Mail = needed, string(mode), s.eng.MailEnabled()
		return out, nil
	})

	type setupIn struct {
		Body struct {
			Token string `json:"token" minLength:"1" maxLength:"256" doc:"The one-time token from the setup link printed at start"`
			NewWorkspaceBody
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "setup", Method: http.MethodPost, Path: "/api/v1/setup", Tags: []string{"Setup"},
		Summary: "Create the first workspace and its Owner (on-prem first run)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *setupIn) (*createdOut, error) {
		c, err := s.eng.Setup(ctx, engine.SetupInput{Token: in.Body.Token, CreateWorkspaceInput: in.Body.input(clientInfo(ctx))})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.created(c, in.Body.SessionCookie), nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "signup", Method: http.MethodPost, Path: "/api/v1/signup", Tags: []string{"Auth"},
		Summary: "Create a workspace by self-service (cloud mode)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body NewWorkspaceBody }) (*createdOut, error) {
		c, err := s.eng.Signup(ctx, in.Body.input(clientInfo(ctx)))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.created(c, in.Body.SessionCookie), nil
	})

	type loginIn struct {
		Body struct {
			Workspace     string `json:"workspace" minLength:"1" maxLength:"64" doc:"The workspace slug"`
			Email         string `json:"email" minLength:"1" maxLength:"254"`
			Password      string `json:"password" minLength:"1" maxLength:"1024"`
			SessionCookie bool   `json:"session_cookie,omitempty"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "login", Method: http.MethodPost, Path: "/api/v1/auth/login", Tags: []string{"Auth"},
		Summary: "Sign in with a password",
		Description: "Answers tokens, or {mfa_required: true, mfa_token} for an account with a second factor. " +
			"Wrong workspace, email or password all answer the same 401.",
	}, func(ctx context.Context, in *loginIn) (*sessionOut, error) {
		res, err := s.eng.Login(ctx, engine.LoginInput{Workspace: in.Body.Workspace, Email: in.Body.Email, Password: in.Body.Password, Client: clientInfo(ctx)})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if res.MFARequired {
			return &sessionOut{Body: SessionBody{MFARequired: true, MFAToken: res.MFAToken}}, nil
		}
		sb, ck := s.session(res.Tokens, in.Body.SessionCookie)
		return &sessionOut{SetCookie: ck, Body: sb}, nil
	})

	type refreshIn struct {
		Cookie     string `cookie:"tf_refresh" doc:"The web UI's refresh cookie"`
		CSRFCookie string `cookie:"tf_csrf"`
		CSRFHeader string `header:"X-CSRF-Token" doc:"With the refresh cookie: the tf_csrf cookie's value"`
		Body       *struct {
			RefreshToken string `json:"refresh_token" maxLength:"512"`
		} `required:"false"`
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "refresh", Method: http.MethodPost, Path: "/api/v1/auth/refresh", Tags: []string{"Auth"},
		Summary:     "Rotate a refresh token for a new pair",
		Description: "Each refresh token works once. Presenting a used one again revokes the whole session.",
	}, func(ctx context.Context, in *refreshIn) (*sessionOut, error) {
		token, viaCookie := "", false
		if in.Body != nil {
			token = in.Body.RefreshToken
		}
		if token == "" && in.Cookie != "" {
			if in.CSRFCookie == "" || subtle.ConstantTimeCompare([]byte(in.CSRFCookie), []byte(in.CSRFHeader)) != 1 {
				return nil, newProblem(http.StatusForbidden, "csrf_failed", "a cookie refresh needs the X-CSRF-Token header matching the tf_csrf cookie")
			}
			token, viaCookie = in.Cookie, true
		}
		if token == "" {
			return nil, newProblem(http.StatusUnauthorized, "invalid_token", "send refresh_token, or the refresh cookie")
		}
		res, err := s.eng.Refresh(ctx, token)
		if err != nil {
			p := s.fail(ctx, err)
			if viaCookie {
				return nil, huma.ErrorWithHeaders(p, http.Header{"Set-Cookie": cookieStrings(s.clearCookies())})
			}
			return nil, p
		}
		sb, ck := s.session(res.Tokens, viaCookie)
		return &sessionOut{SetCookie: ck, Body: sb}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "logout", Method: http.MethodPost, Path: "/api/v1/auth/logout", Tags: []string{"Auth"},
		Summary: "End this session", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, _ *struct{}) (*struct {
		SetCookie []http.Cookie `header:"Set-Cookie"`
	}, error) {
		if err := s.eng.Logout(ctx, principal(ctx)); err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			SetCookie []http.Cookie `header:"Set-Cookie"`
		}{SetCookie: s.clearCookies()}, nil
	})

	type meOut struct {
		ETag string `header:"ETag"`
		Body *engine.Me
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/api/v1/me", Tags: []string{"People"},
		Summary: "Your account", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*meOut, error) {
		me, err := s.eng.GetMe(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &meOut{ETag: etag(me.Version), Body: me}, nil
	})

	type mePatch struct {
		IfMatchParam
		Body struct {
			Name          *string                   `json:"name,omitempty" minLength:"1" maxLength:"100"`
			Timezone      *string                   `json:"timezone,omitempty" maxLength:"64"`
			WorkHours     *engine.WorkHours         `json:"work_hours,omitempty"`
			Notifications *engine.NotificationPrefs `json:"notifications,omitempty"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "update-me", Method: http.MethodPatch, Path: "/api/v1/me", Tags: []string{"People"},
		Summary: "Change your name, timezone, work hours or notification preferences", Security: sessionSecurity,
	}, func(ctx context.Context, in *mePatch) (*meOut, error) {
		v, err := in.version()
		if err != nil {
			return nil, err
		}
		me, err := s.eng.UpdateMe(ctx, principal(ctx), engine.MePatch{
			Name: in.Body.Name, Timezone: in.Body.Timezone, WorkHours: in.Body.WorkHours, Notifications: in.Body.Notifications, IfMatch: v,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &meOut{ETag: etag(me.Version), Body: me}, nil
	})

	type passwordIn struct {
		Body struct {
			CurrentPassword string `json:"current_password" minLength:"1" maxLength:"1024"`
			NewPassword     string `json:"new_password" minLength:"8" maxLength:"128"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "change-password", Method: http.MethodPost, Path: "/api/v1/me/password", Tags: []string{"People"},
		Summary: "Change your password (ends your other sessions)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *passwordIn) (*struct{}, error) {
		if err := s.eng.ChangePassword(ctx, principal(ctx), in.Body.CurrentPassword, in.Body.NewPassword); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})
}

func cookieStrings(cs []http.Cookie) []string {
	out := make([]string, 0, len(cs))
	for i := range cs {
		out = append(out, cs[i].String())
	}
	return out
}
