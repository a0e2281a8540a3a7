package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// backupState serves the store of an apitest environment with the one node
// operation the catalogue needs: a backup. Cluster membership does not
// exist in a single in-process node.
type backupState struct{ env *apitest.Env }

var errNoCluster = errors.New("no cluster in this test")

func (s backupState) AppliedIndex() uint64 { return s.env.Store.AppliedIndex() }
func (s backupState) WaitApplied(ctx context.Context, idx uint64) error {
	return s.env.Store.WaitApplied(ctx, idx)
}
func (s backupState) Ready() error { return s.env.Store.Healthy() }
func (s backupState) ClusterStatus(context.Context) (*httpapi.ClusterStatus, error) {
	return nil, errNoCluster
}
func (s backupState) AddLearner(context.Context, uint64, string) error { return errNoCluster }
func (s backupState) Promote(context.Context, uint64) error            { return errNoCluster }
func (s backupState) RemoveMember(context.Context, uint64) error       { return errNoCluster }
func (s backupState) TransferLeader(context.Context, uint64) error     { return errNoCluster }
func (s backupState) WorkspaceHash(context.Context, string) (*httpapi.WorkspaceHash, error) {
	return nil, errNoCluster
}
func (s backupState) OpenBackup(context.Context) (httpapi.Backup, error) {
	sn, err := s.env.Store.OpenSnapshot()
	if err != nil {
		return nil, err
	}
	return snapBackup{sn}, nil
}

type snapBackup struct{ *storage.Snapshot }

func (b snapBackup) WriteWorkspaceTo(w io.Writer, scope *engine.BackupScope) (int64, error) {
	return b.WriteTenantTo(w, scope.Tenant, scope.Sys...)
}

// TestAuditCompleteness is RELIABILITY AU2: every security event the
// product has, driven through the HTTP API, leaves an entry in the
// workspace's trail with who, tenant, action, target, outcome, UTC time,
// request ID and source IP. The entry is found by the request ID the
// answer carried.
//
// Not in the catalogue because the product does not have them: LDAP, SAML
// and OIDC sign-in (no SSO yet), webhook endpoints (no webhooks yet),
// workspace deletion (none; a churned workspace is not deleted through the
// API), restore (offline, `teamflow restore` into a stopped node's data
// directory: no workspace trail is running to record it), and a backup of
// the whole store (it belongs to no workspace; the server log records it).
// A failed sign-in naming no account of the workspace is in its trail, the
// email typed in the entry's personal data (the target of an entry whose
// target kind is "email"). A token that names no record of any workspace
// (malformed, or never issued) has no trail to go into: it is logged and
// counted in /metrics (TestRefusedTokensWhereTheyBelong).
func TestAuditCompleteness(t *testing.T) {
	env := newMailEnv(t)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	_, verifyTok := env.lastMail(t, "olive@acme.test", "Confirm your email")
	env.Do("POST", "/api/v1/auth/verify-email", "", map[string]any{"token": verifyTok})
	setPlan(t, env.Env, "acme", "enterprise")
	join := func(name, email string) string {
		t.Helper()
		env.Create("/api/v1/invitations", a.Token, map[string]any{"email": email, "role": "member"})
		_, tok := env.lastMail(t, email, "invited you")
		r := env.Do("POST", "/api/v1/invitations/"+tok+"/accept", "", map[string]any{"name": name, "password": "password-" + name})
		if r.Status != http.StatusCreated {
			t.Fatalf("accept: %d %s", r.Status, r.Body)
		}
		return r.Map(t)["owner"].(map[string]any)["id"].(string)
	}
	bobID := join("Bob", "bob@acme.test")
	carolID := join("Carol", "carol@acme.test")
	daveID := join("Dave", "dave@acme.test")
	op, err := env.Service.ResetOperatorToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	backupAPI := httpapi.New(httpapi.Deps{Engine: env.Service, State: backupState{env.Env}}, httpapi.Config{Version: "test", Now: env.Clock.Now})
	backupSrv := httptest.NewServer(backupAPI.Handler())
	t.Cleanup(backupSrv.Close)

	login := func(email, password string) *apitest.Response {
		return env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": email, "password": password})
	}
	want := func(r *apitest.Response, status int, what string) *apitest.Response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: %d %s, want %d", what, r.Status, r.Body, status)
		}
		return r
	}
	var bobSecret, bobToken, keyID, magicTok, bobMFA, bobCode, invID string

	type event struct {
		name, action, outcome string
		target                func() string // the entry's target ID
		do                    func() *apitest.Response
	}
	fixed := func(id string) func() string { return func() string { return id } }
	catalogue := []event{
		{"password sign-in", "auth.login", "success", fixed(a.OwnerID), func() *apitest.Response {
			return want(login("olive@acme.test", "password-acme"), 200, "sign-in")
		}},
		{"password sign-in failure", "auth.login_failed", "failure", fixed(a.OwnerID), func() *apitest.Response {
			return want(login("olive@acme.test", "wrong password"), 401, "wrong password")
		}},
		{"password sign-in failure, unknown email", "auth.login_failed", "failure", fixed("mallory@acme.test"), func() *apitest.Response {
			return want(login("mallory@acme.test", "wrong password"), 401, "unknown email")
		}},
		{"magic-link sign-in", "auth.magic_link", "success", fixed(carolID), func() *apitest.Response {
			want(env.Do("POST", "/api/v1/auth/magic-link", "", map[string]any{"workspace": "acme", "email": "carol@acme.test"}), 202, "ask for a link")
			_, magicTok = env.lastMail(t, "carol@acme.test", "sign-in link")
			return want(env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": magicTok}), 200, "use the link")
		}},
		{"reused sign-in link", "auth.token_refused", "denied", fixed(carolID), func() *apitest.Response {
			return want(env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": magicTok}), 401, "use the link again")
		}},
		{"MFA enrolment", "mfa.enrol", "success", fixed(bobID), func() *apitest.Response {
			bob := want(login("bob@acme.test", "password-Bob"), 200, "bob signs in").Map(t)["access_token"].(string)
			bobSecret = want(env.Do("POST", "/api/v1/me/mfa/totp", bob, map[string]any{"password": "password-Bob"}), 200, "begin enrolment").Map(t)["secret"].(string)
			return want(env.Do("POST", "/api/v1/me/mfa/totp/confirm", bob, map[string]any{"code": totpAt(t, bobSecret, env.Clock.Now())}), 200, "confirm enrolment")
		}},
		{"MFA verification", "auth.login", "success", fixed(bobID), func() *apitest.Response {
			env.Clock.Advance(time.Minute) // a code is accepted once: the next window's
			bobMFA = want(login("bob@acme.test", "password-Bob"), 200, "bob's first factor").Map(t)["mfa_token"].(string)
			bobCode = totpAt(t, bobSecret, env.Clock.Now())
			r := want(env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": bobMFA, "code": bobCode}), 200, "second factor")
			bobToken = r.Map(t)["access_token"].(string)
			return r
		}},
		{"second-factor challenge used again", "auth.mfa_failed", "denied", fixed(bobID), func() *apitest.Response {
			return want(env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": bobMFA, "code": bobCode}), 401, "the same challenge again")
		}},
		{"MFA failure", "auth.mfa_failed", "failure", fixed(bobID), func() *apitest.Response {
			mfa := want(login("bob@acme.test", "password-Bob"), 200, "bob's first factor").Map(t)["mfa_token"].(string)
			return want(env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": mfa, "code": "000000"}), 401, "wrong code")
		}},
		{"refresh token reuse", "auth.refresh_reuse", "denied", nil, func() *apitest.Response {
			refresh := want(login("olive@acme.test", "password-acme"), 200, "sign-in").Map(t)["refresh_token"].(string)
			want(env.Do("POST", "/api/v1/auth/refresh", "", map[string]any{"refresh_token": refresh}), 200, "refresh")
			return want(env.Do("POST", "/api/v1/auth/refresh", "", map[string]any{"refresh_token": refresh}), 401, "refresh again")
		}},
		{"logout", "auth.logout", "success", nil, func() *apitest.Response {
			tok := want(login("olive@acme.test", "password-acme"), 200, "sign-in").Map(t)["access_token"].(string)
			return want(env.Do("POST", "/api/v1/auth/logout", tok, nil), 204, "logout")
		}},
		{"refresh token of an ended session", "auth.token_refused", "denied", fixed(a.OwnerID), func() *apitest.Response {
			s := want(login("olive@acme.test", "password-acme"), 200, "sign-in").Map(t)
			want(env.Do("POST", "/api/v1/auth/logout", s["access_token"].(string), nil), 204, "logout")
			return want(env.Do("POST", "/api/v1/auth/refresh", "", map[string]any{"refresh_token": s["refresh_token"]}), 401, "refresh after logout")
		}},
		{"authorisation denied", "authz.denied", "denied", fixed("GET /api/v1/audit"), func() *apitest.Response {
			return want(env.Do("GET", "/api/v1/audit", bobToken, nil), 403, "a member reads the trail")
		}},
		{"authorisation denied (operator route)", "authz.denied", "denied", fixed("GET /api/v1/platform/workspaces"), func() *apitest.Response {
			return want(env.Do("GET", "/api/v1/platform/workspaces", bobToken, nil), 403, "a member lists workspaces")
		}},
		{"role change", "member.update", "success", fixed(carolID), func() *apitest.Response {
			return want(env.Do("PATCH", "/api/v1/members/"+carolID, a.Token, map[string]any{"role": "admin"}), 200, "promote")
		}},
		{"member deactivation", "member.update", "success", fixed(carolID), func() *apitest.Response {
			return want(env.Do("PATCH", "/api/v1/members/"+carolID, a.Token, map[string]any{"status": "deactivated"}), 200, "deactivate")
		}},
		{"sessions revoked by an admin", "member.sessions_revoked", "success", fixed(bobID), func() *apitest.Response {
			return want(env.Do("DELETE", "/api/v1/members/"+bobID+"/sessions", a.Token, nil), 204, "revoke bob's sessions")
		}},
		{"invitation", "invitation.create", "success", nil, func() *apitest.Response {
			r := want(env.Do("POST", "/api/v1/invitations", a.Token, map[string]any{"email": "erin@acme.test", "role": "member"}), 201, "invite")
			invID = r.Map(t)["id"].(string)
			return r
		}},
		{"revoked invitation used", "auth.token_refused", "denied", func() string { return invID }, func() *apitest.Response {
			want(env.Do("DELETE", "/api/v1/invitations/"+invID, a.Token, nil), 204, "revoke")
			_, tok := env.lastMail(t, "erin@acme.test", "invited you")
			return want(env.Do("POST", "/api/v1/invitations/"+tok+"/accept", "", map[string]any{"name": "Erin", "password": "password-Erin"}), 404, "accept a revoked invitation")
		}},
		{"settings change", "workspace.update", "success", fixed(a.ID), func() *apitest.Response {
			return want(env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"timezone": "Europe/Berlin"}), 200, "settings")
		}},
		{"API key creation", "apikey.create", "success", func() string { return keyID }, func() *apitest.Response {
			r := want(env.Do("POST", "/api/v1/api-keys", a.Token, map[string]any{"name": "ci", "scopes": []string{"read"}}), 201, "create key")
			keyID = r.Map(t)["id"].(string)
			return r
		}},
		{"API key revocation", "apikey.revoke", "success", func() string { return keyID }, func() *apitest.Response {
			return want(env.Do("DELETE", "/api/v1/api-keys/"+keyID, a.Token, nil), 204, "revoke key")
		}},
		{"audit export", "audit.export", "success", fixed(a.ID), func() *apitest.Response {
			return want(env.Do("GET", "/api/v1/audit/export?format=json", a.Token, nil), 200, "export")
		}},
		{"erasure", "audit.anonymise", "success", fixed(daveID), func() *apitest.Response {
			return want(env.Do("POST", "/api/v1/audit/erasures", a.Token, map[string]any{"member_id": daveID}), 200, "erase dave")
		}},
		{"plan change by the operator", "platform.plan_change", "success", fixed(a.ID), func() *apitest.Response {
			return want(env.Do("PUT", "/api/v1/platform/workspaces/acme/plan", op, map[string]any{"plan": "professional"}), 200, "plan change")
		}},
		{"workspace backup by the operator", "platform.backup", "success", fixed(a.ID), func() *apitest.Response {
			req, _ := http.NewRequest("GET", backupSrv.URL+"/api/v1/platform/backup?workspace=acme", nil)
			req.Header.Set("Authorization", "Bearer "+op)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return want(&apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, 200, "backup")
		}},
		{"operator reads the workspace's trail", "platform.audit_read", "success", fixed(a.ID), func() *apitest.Response {
			return want(env.Do("GET", "/api/v1/platform/workspaces/acme/audit", op, nil), 200, "operator read")
		}},
	}

	type done struct {
		event
		requestID string
	}
	var ran []done
	for _, ev := range catalogue {
		r := ev.do()
		id := r.Header.Get("X-Request-ID")
		if id == "" {
			t.Fatalf("%s: no X-Request-ID", ev.name)
		}
		ran = append(ran, done{ev, id})
	}

	// The trail as an Owner reads it (entries joined with their personal
	// data), keeping each entry's raw JSON to check the time is UTC.
	type item struct {
		engine.AuditEntry
		raw json.RawMessage
	}
	var trail []item
	for cursor := ""; ; {
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		want(env.Do("GET", "/api/v1/audit?limit=200&cursor="+url.QueryEscape(cursor), a.Token, nil), 200, "read the trail").JSON(t, &page)
		for _, raw := range page.Items {
			var e engine.AuditEntry
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			trail = append(trail, item{e, raw})
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	withoutAudit, missingFields := 0, 0
	for _, ev := range ran {
		var found *item
		for i := range trail {
			if trail[i].RequestID == ev.requestID && trail[i].Action == ev.action {
				found = &trail[i]
				break
			}
		}
		if found == nil {
			withoutAudit++
			t.Errorf("%s: no %s entry for request %s", ev.name, ev.action, ev.requestID)
			continue
		}
		e := found.AuditEntry
		var at struct {
			At string `json:"at"`
		}
		_ = json.Unmarshal(found.raw, &at)
		var problems []string
		if e.Actor == "" {
			problems = append(problems, "who")
		}
		if e.Workspace != a.ID {
			problems = append(problems, "tenant")
		}
		target := e.TargetID
		if e.TargetKind == "email" {
			// An email that names no account is personal data: the
			// entry's target is in the record beside the chain.
			target, _ = e.Detail["email"].(string)
		}
		if target == "" || e.TargetKind == "" || (ev.target != nil && target != ev.target()) {
			problems = append(problems, "target "+e.TargetKind+" "+e.TargetID)
		}
		if e.Outcome != ev.outcome {
			problems = append(problems, "outcome "+e.Outcome)
		}
		if e.At.IsZero() || !strings.HasSuffix(at.At, "Z") {
			problems = append(problems, "UTC time "+at.At)
		}
		if e.IP == "" {
			problems = append(problems, "source IP")
		}
		if len(problems) > 0 {
			missingFields++
			t.Errorf("%s: entry %d lacks %s: %s", ev.name, e.Seq, strings.Join(problems, ", "), found.raw)
		}
	}
	figures.Report(t, "AU2", figures.Seed(t), []figures.Figure{
		figures.Eq("events_without_audit", float64(withoutAudit), 0),
		figures.Eq("entries_missing_fields", float64(missingFields), 0),
		figures.Guard("events", float64(len(ran)), float64(len(catalogue))),
	})
}
