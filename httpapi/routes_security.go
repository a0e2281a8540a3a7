package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/teamflow/teamflow/engine"
)

// accepted is the answer of requests whose outcome must not reveal whether
// an account exists (password reset, magic link).
type acceptedOut struct {
	Body struct {
		Message string `json:"message"`
	}
}

func accepted(msg string) *acceptedOut {
	out := &acceptedOut{}
	out.Body.Message = msg
	return out
}

func (s *Server) bindSecurity() {
	type mfaIn struct {
		Body struct {
			MFAToken      string `json:"mfa_token" minLength:"1" maxLength:"256"`
			Code          string `json:"code,omitempty" maxLength:"16" doc:"The 6-digit code from the authenticator app"`
			RecoveryCode  string `json:"recovery_code,omitempty" maxLength:"64" doc:"Or a one-time recovery code"`
			SessionCookie bool   `json:"session_cookie,omitempty"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "complete-mfa", Method: http.MethodPost, Path: "/api/v1/auth/mfa", Tags: []string{"Auth"},
		Summary: "Complete a sign-in with the second factor", Description: "A code is accepted once; repeated wrong codes pause the second factor for 30 minutes.",
	}, func(ctx context.Context, in *mfaIn) (*sessionOut, error) {
		res, err := s.eng.CompleteMFA(ctx, in.Body.MFAToken, in.Body.Code, in.Body.RecoveryCode, clientInfo(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		sb, ck := s.session(res.Tokens, in.Body.SessionCookie)
		return &sessionOut{SetCookie: ck, Body: sb}, nil
	})

	type tokenBody struct {
		Body struct {
			Token string `json:"token" minLength:"1" maxLength:"256"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "verify-email", Method: http.MethodPost, Path: "/api/v1/auth/verify-email", Tags: []string{"Auth"},
		Summary: "Confirm an email address with the token from the mail", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *tokenBody) (*struct{}, error) {
		if err := s.eng.VerifyEmail(ctx, in.Body.Token); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "resend-verification", Method: http.MethodPost, Path: "/api/v1/me/verify-email", Tags: []string{"Auth"},
		Summary: "Mail a new email-confirmation link", Security: sessionSecurity, DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, _ *struct{}) (*acceptedOut, error) {
		if err := s.eng.ResendVerification(ctx, principal(ctx)); err != nil {
			return nil, s.fail(ctx, err)
		}
		return accepted("a new confirmation link is on its way"), nil
	})

	type accountIn struct {
		Body struct {
			Workspace string `json:"workspace" minLength:"1" maxLength:"64"`
			Email     string `json:"email" minLength:"1" maxLength:"254"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "request-password-reset", Method: http.MethodPost, Path: "/api/v1/auth/password-reset", Tags: []string{"Auth"},
		Summary: "Mail a password-reset link", Description: "Answers the same whether or not the account exists.", DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *accountIn) (*acceptedOut, error) {
		if err := s.eng.RequestPasswordReset(ctx, in.Body.Workspace, in.Body.Email); err != nil {
			return nil, s.fail(ctx, err)
		}
		return accepted("if the account exists, a reset link is on its way"), nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "confirm-password-reset", Method: http.MethodPost, Path: "/api/v1/auth/password-reset/confirm", Tags: []string{"Auth"},
		Summary: "Set a new password with a reset token (ends every session)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Token    string `json:"token" minLength:"1" maxLength:"256"`
			Password string `json:"password" minLength:"8" maxLength:"128"`
		}
	}) (*struct{}, error) {
		if err := s.eng.ResetPassword(ctx, in.Body.Token, in.Body.Password); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "request-magic-link", Method: http.MethodPost, Path: "/api/v1/auth/magic-link", Tags: []string{"Auth"},
		Summary: "Mail a single-use sign-in link (valid 15 minutes)", Description: "Answers the same whether or not the account exists.", DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *accountIn) (*acceptedOut, error) {
		if err := s.eng.RequestMagicLink(ctx, in.Body.Workspace, in.Body.Email); err != nil {
			return nil, s.fail(ctx, err)
		}
		return accepted("if the account exists, a sign-in link is on its way"), nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "use-magic-link", Method: http.MethodPost, Path: "/api/v1/auth/magic-link/verify", Tags: []string{"Auth"},
		Summary: "Sign in with a magic link's token", Description: "Answers tokens, or {mfa_required, mfa_token} for an account with a second factor.",
	}, func(ctx context.Context, in *struct {
		Body struct {
			Token         string `json:"token" minLength:"1" maxLength:"256"`
			SessionCookie bool   `json:"session_cookie,omitempty"`
		}
	}) (*sessionOut, error) {
		res, err := s.eng.SignInWithMagicLink(ctx, in.Body.Token, clientInfo(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		if res.MFARequired {
			return &sessionOut{Body: SessionBody{MFARequired: true, MFAToken: res.MFAToken}}, nil
		}
		sb, ck := s.session(res.Tokens, in.Body.SessionCookie)
		return &sessionOut{SetCookie: ck, Body: sb}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "begin-totp", Method: http.MethodPost, Path: "/api/v1/me/mfa/totp", Tags: []string{"Auth"},
		Summary: "Start enrolling an authenticator app (asks for your password)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Password string `json:"password" minLength:"1" maxLength:"1024"`
		}
	}) (*struct{ Body *engine.TOTPEnrolment }, error) {
		e, err := s.eng.BeginTOTP(ctx, principal(ctx), in.Body.Password)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.TOTPEnrolment }{Body: e}, nil
	})

	type recoveryOut struct {
		Body struct {
			RecoveryCodes []string `json:"recovery_codes" doc:"One-time codes for when the device is lost; shown once"`
		}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "confirm-totp", Method: http.MethodPost, Path: "/api/v1/me/mfa/totp/confirm", Tags: []string{"Auth"},
		Summary: "Turn the second factor on with a code from the app", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Code string `json:"code" minLength:"6" maxLength:"6"`
		}
	}) (*recoveryOut, error) {
		codes, err := s.eng.ConfirmTOTP(ctx, principal(ctx), in.Body.Code)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &recoveryOut{}
		out.Body.RecoveryCodes = codes
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "disable-mfa", Method: http.MethodPost, Path: "/api/v1/me/mfa/disable", Tags: []string{"Auth"},
		Summary: "Turn the second factor off (password and a code)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Password string `json:"password" minLength:"1" maxLength:"1024"`
			Code     string `json:"code" minLength:"6" maxLength:"6"`
		}
	}) (*struct{}, error) {
		if err := s.eng.DisableMFA(ctx, principal(ctx), in.Body.Password, in.Body.Code); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-sessions", Method: http.MethodGet, Path: "/api/v1/me/sessions", Tags: []string{"Auth"},
		Summary: "Your live sessions (device, IP, last seen)", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Items []engine.Session `json:"items"`
		}
	}, error) {
		items, err := s.eng.ListSessions(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &struct {
			Body struct {
				Items []engine.Session `json:"items"`
			}
		}{}
		out.Body.Items = items
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-session", Method: http.MethodDelete, Path: "/api/v1/me/sessions/{id}", Tags: []string{"Auth"},
		Summary: "End one of your sessions", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.RevokeSession(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-other-sessions", Method: http.MethodPost, Path: "/api/v1/me/sessions/revoke-others", Tags: []string{"Auth"},
		Summary: "End every session but this one", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		if err := s.eng.RevokeOtherSessions(ctx, principal(ctx)); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-member-sessions", Method: http.MethodDelete, Path: "/api/v1/members/{id}/sessions", Tags: []string{"People"},
		Summary: "Sign a member out everywhere (Owners and Admins)", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.RevokeMemberSessions(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "create-api-key", Method: http.MethodPost, Path: "/api/v1/api-keys", Tags: []string{"API keys"},
		Summary: "Create a personal access token (shown once)", Security: sessionSecurity, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Name      string     `json:"name" minLength:"1" maxLength:"100"`
			Scopes    []string   `json:"scopes" minItems:"1" maxItems:"2" doc:"[\"read\"] or [\"read\",\"write\"]"`
			Projects  []string   `json:"projects,omitempty" maxItems:"100" doc:"Limit the key to these projects"`
			ExpiresAt *time.Time `json:"expires_at,omitempty"`
		}
	}) (*struct{ Body *engine.APIKey }, error) {
		k, err := s.eng.CreateAPIKey(ctx, principal(ctx), engine.CreateAPIKeyInput{
			Name: in.Body.Name, Scopes: in.Body.Scopes, Projects: in.Body.Projects, ExpiresAt: in.Body.ExpiresAt,
		})
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.APIKey }{Body: k}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-api-keys", Method: http.MethodGet, Path: "/api/v1/api-keys", Tags: []string{"API keys"},
		Summary: "Your API keys (never their tokens)", Security: sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Items []engine.APIKey `json:"items"`
		}
	}, error) {
		items, err := s.eng.ListAPIKeys(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &struct {
			Body struct {
				Items []engine.APIKey `json:"items"`
			}
		}{}
		out.Body.Items = items
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "revoke-api-key", Method: http.MethodDelete, Path: "/api/v1/api-keys/{id}", Tags: []string{"API keys"},
		Summary: "Revoke one of your API keys", Security: sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.RevokeAPIKey(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: "/api/v1/audit", Tags: []string{"Workspace"},
		Summary: "The workspace's audit trail, newest first (Owners and Admins)", Security: sessionSecurity,
	}, func(ctx context.Context, in *struct{ PageParams }) (*struct {
		Body *engine.Page[engine.AuditEntry]
	}, error) {
		page, err := s.eng.ListAudit(ctx, principal(ctx), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.AuditEntry]
		}{Body: page}, nil
	})
}
