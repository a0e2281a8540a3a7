package httpapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
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

	type AuditQuery struct {
		Actor  string    `query:"actor" maxLength:"64" doc:"Only entries by this actor (an account ID, operator, system or anonymous)"`
		Action string    `query:"action" maxLength:"64" doc:"Only this action, or every action under a prefix ending in a dot (auth.)"`
		From   time.Time `query:"from" doc:"Only entries at or after this time (RFC 3339)"`
		To     time.Time `query:"to" doc:"Only entries before this time (RFC 3339)"`
	}
	filter := func(q AuditQuery) engine.AuditFilter {
		return engine.AuditFilter{Actor: q.Actor, Action: q.Action, From: q.From, To: q.To}
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: "/api/v1/audit", Tags: []string{"Workspace"},
		Summary:     "The workspace's audit trail, newest first (Owners and Admins)",
		Description: "Filter by actor, action (or action prefix such as auth.) and time range; pages with limit and cursor.",
		Security:    sessionSecurity,
	}, func(ctx context.Context, in *struct {
		PageParams
		AuditQuery
	}) (*struct {
		Body *engine.Page[engine.AuditEntry]
	}, error) {
		page, err := s.eng.ListAudit(ctx, principal(ctx), filter(in.AuditQuery), in.page())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct {
			Body *engine.Page[engine.AuditEntry]
		}{Body: page}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "export-audit", Method: http.MethodGet, Path: "/api/v1/audit/export", Tags: []string{"Workspace"},
		Summary: "Export the audit trail as CSV or JSON (Owners and Admins; Professional plan and above)",
		Description: "Streams every matching entry, oldest first, with the same filters as the list. " +
			"The export is itself recorded in the trail. Plans without audit export answer 403 plan_feature_unavailable.",
		Security: sessionSecurity,
		Responses: map[string]*huma.Response{"200": {Description: "The entries", Content: map[string]*huma.MediaType{
			"text/csv": {Schema: &huma.Schema{Type: huma.TypeString}}, "application/json": {Schema: &huma.Schema{Type: huma.TypeArray}},
		}}},
	}, func(ctx context.Context, in *struct {
		Format string `query:"format" enum:"csv,json" default:"json"`
		AuditQuery
	}) (*huma.StreamResponse, error) {
		if in.Format == "" {
			in.Format = "json"
		}
		each, err := s.eng.ExportAudit(ctx, principal(ctx), filter(in.AuditQuery), in.Format)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			name := "audit-" + s.now().UTC().Format("20060102T150405Z")
			if in.Format == "csv" {
				hc.SetHeader("Content-Type", "text/csv; charset=utf-8")
				hc.SetHeader("Content-Disposition", `attachment; filename="`+name+`.csv"`)
			} else {
				hc.SetHeader("Content-Type", "application/json")
				hc.SetHeader("Content-Disposition", `attachment; filename="`+name+`.json"`)
			}
			hc.SetHeader("Cache-Control", "no-store")
			hc.SetStatus(http.StatusOK)
			if err := writeAuditExport(hc.BodyWriter(), in.Format, each); err != nil {
				// The status is sent: the truncated body (no closing bracket,
				// or a short CSV) is all a client can be told.
				s.log.Error("audit export failed", "request_id", requestIDFrom(ctx), "err", err)
			}
		}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "verify-audit", Method: http.MethodGet, Path: "/api/v1/audit/verify", Tags: []string{"Workspace"},
		Summary:     "Check the audit chain (Owners and Admins)",
		Description: "Recomputes every link of the workspace's hash chain up to its stored head; answers ok, or the first entry that is altered, missing, reordered or inserted.",
		Security:    sessionSecurity,
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body *engine.AuditVerification }, error) {
		res, err := s.eng.VerifyWorkspaceAudit(ctx, principal(ctx))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.AuditVerification }{Body: res}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "erase-audit-personal-data", Method: http.MethodPost, Path: "/api/v1/audit/erasures", Tags: []string{"Workspace"},
		Summary: "Erase a member's personal data from the audit trail (Owners and Admins)",
		Description: "For a GDPR erasure request: deletes the IPs, user agents and names kept beside the entries about the member. " +
			"The entries stay, naming the member by account ID only, and the chain still verifies. The erasure is itself recorded.",
		Security: sessionSecurity,
	}, func(ctx context.Context, in *struct {
		Body struct {
			MemberID string `json:"member_id" maxLength:"36" doc:"The member's account ID"`
		}
	}) (*struct{ Body *engine.AuditErasure }, error) {
		res, err := s.eng.AnonymiseAudit(ctx, principal(ctx), in.Body.MemberID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.AuditErasure }{Body: res}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "regenerate-recovery-codes", Method: http.MethodPost, Path: "/api/v1/me/mfa/recovery-codes", Tags: []string{"Auth"},
		Summary:     "Replace your recovery codes (a current code, or your password)",
		Description: "The old codes stop working; the new ones are shown once. Wrong passwords and codes count toward the sign-in pause.",
		Security:    sessionSecurity,
	}, func(ctx context.Context, in *struct {
		Body struct {
			Code     string `json:"code,omitempty" maxLength:"6" doc:"A current code from the authenticator app"`
			Password string `json:"password,omitempty" maxLength:"1024" doc:"Or your password"`
		}
	}) (*recoveryOut, error) {
		codes, err := s.eng.RegenerateRecoveryCodes(ctx, principal(ctx), in.Body.Password, in.Body.Code)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := &recoveryOut{}
		out.Body.RecoveryCodes = codes
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "reset-member-mfa", Method: http.MethodDelete, Path: "/api/v1/members/{id}/mfa", Tags: []string{"People"},
		Summary:     "Reset a member's second factor (Owners and Admins; only Owners for an Owner)",
		Description: "For a lost device: turns the member's second factor off, signs them out everywhere and tells them by mail. Audited.",
		Security:    sessionSecurity, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{}, error) {
		if err := s.eng.ResetMemberMFA(ctx, principal(ctx), in.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "resend-invitation", Method: http.MethodPost, Path: "/api/v1/invitations/{id}/resend", Tags: []string{"People"},
		Summary:     "Mail an invitation again with a new link (Owners and Admins)",
		Description: "The earlier link stops working and the expiry starts over. Without mail on the installation the new link is in the answer.",
		Security:    sessionSecurity,
	}, func(ctx context.Context, in *struct{ IDParam }) (*struct{ Body *engine.Invitation }, error) {
		inv, err := s.eng.ResendInvitation(ctx, principal(ctx), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body *engine.Invitation }{Body: inv}, nil
	})
}

var auditCSVHeader = []string{"seq", "at", "action", "outcome", "actor", "target_kind", "target_id", "ip", "user_agent", "request_id", "detail", "personal_data_erased", "hash"}

// writeAuditExport writes the entries as CSV or as one JSON array, flushing
// as it goes so a long trail streams.
func writeAuditExport(w io.Writer, format string, each func(func(*engine.AuditEntry) error) error) error {
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	n := 0
	if format == "csv" {
		cw := csv.NewWriter(w)
		if err := cw.Write(auditCSVHeader); err != nil {
			return err
		}
		err := each(func(e *engine.AuditEntry) error {
			detail := ""
			if len(e.Detail) > 0 {
				b, err := json.Marshal(e.Detail)
				if err != nil {
					return err
				}
				detail = string(b)
			}
			n++
			if err := cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), csvSafe(e.Action), e.Outcome, csvSafe(e.Actor),
				csvSafe(e.TargetKind), csvSafe(e.TargetID), csvSafe(e.IP), csvSafe(e.UserAgent), csvSafe(e.RequestID), csvSafe(detail), strconv.FormatBool(e.Erased), e.Hash}); err != nil {
				return err
			}
			if n%500 == 0 {
				cw.Flush()
				flush()
			}
			return cw.Error()
		})
		cw.Flush()
		if err != nil {
			return err
		}
		return cw.Error()
	}
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	err := each(func(e *engine.AuditEntry) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if n > 0 {
			if _, err := io.WriteString(w, ",\n"); err != nil {
				return err
			}
		}
		n++
		if _, err := w.Write(b); err != nil {
			return err
		}
		if n%500 == 0 {
			flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "]\n")
	return err
}

// csvSafe defuses spreadsheet formulas: a cell starting with =, +, - or @
// gets a leading apostrophe (values here come partly from clients).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
