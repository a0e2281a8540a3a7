package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// tenantA is a workspace full of canary data; the isolation tests look for
// the canary in everything another workspace can get back.
type tenantA struct {
	ws                               apitest.Workspace
	canary                           string
	project, task, subtask, comment  string
	guestID, invitationID, inviteTok string
	taskKey                          string
	sessionID, apiKeyID              string
	notificationID                   string
	team, update                     string
	attachment                       string
	filter                           string
}

func seedTenantA(t *testing.T, env *apitest.Env) tenantA {
	t.Helper()
	a := tenantA{canary: "CANARY-A-" + uuid.NewString()}
	a.ws = env.Signup("alpha", "Alpha "+a.canary, "owner@alpha.test")
	var guestToken string
	a.guestID, guestToken = env.Join(a.ws, "Guest "+a.canary, "guest."+strings.ToLower(a.canary)+"@alpha.test", "guest")
	a.project = env.Create("/api/v1/projects", a.ws.Token, map[string]any{"name": "Project " + a.canary, "description": a.canary})
	r := env.Do("POST", "/api/v1/projects/"+a.project+"/tasks", a.ws.Token, map[string]any{
		"title": "Task " + a.canary, "description": "secret " + a.canary, "tags": []string{strings.ToLower(a.canary)},
		"assignees": []string{a.ws.OwnerID}, "due": "2026-12-24",
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("task: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	a.task, a.taskKey = m["id"].(string), m["key"].(string)
	a.subtask = env.Create("/api/v1/projects/"+a.project+"/tasks", a.ws.Token, map[string]any{"title": "Sub " + a.canary, "parent_id": a.task})
	a.comment = env.Create("/api/v1/tasks/"+a.task+"/comments", a.ws.Token, map[string]any{"body": "comment " + a.canary})
	// A file on A's task: the canary is in its name and its content.
	r = env.Do("POST", "/api/v1/tasks/"+a.task+"/attachments?name=file-"+a.canary+".txt", a.ws.Token, "attachment "+a.canary, "Content-Type", "text/plain")
	if r.Status != http.StatusCreated {
		t.Fatalf("attachment: %d %s", r.Status, r.Body)
	}
	a.attachment = r.Map(t)["id"].(string)
	// The guest comments on the Owner's task, so the Owner (a follower) has
	// a notification in the inbox.
	env.Do("PUT", "/api/v1/projects/"+a.project+"/members/"+a.guestID, a.ws.Token, map[string]any{"role": "contributor"})
	env.Create("/api/v1/tasks/"+a.task+"/comments", guestToken, map[string]any{"body": "guest comment " + a.canary})
	var inbox struct {
		Items []struct{ ID string }
	}
	env.Do("GET", "/api/v1/notifications", a.ws.Token, nil).JSON(t, &inbox)
	if len(inbox.Items) == 0 {
		t.Fatal("no notification in A's inbox")
	}
	a.notificationID = inbox.Items[0].ID
	a.team = env.Create("/api/v1/teams", a.ws.Token, map[string]any{"name": "Team " + a.canary, "projects": []string{a.project}})
	a.update = env.Create("/api/v1/projects/"+a.project+"/status-updates", a.ws.Token, map[string]any{"period": "week"})
	r = env.Do("POST", "/api/v1/invitations", a.ws.Token, map[string]any{"email": "invitee." + strings.ToLower(a.canary) + "@alpha.test", "role": "member"})
	if r.Status != http.StatusCreated {
		t.Fatalf("invite: %d %s", r.Status, r.Body)
	}
	m = r.Map(t)
	a.invitationID, a.inviteTok = m["id"].(string), m["token"].(string)
	r = env.Do("POST", "/api/v1/api-keys", a.ws.Token, map[string]any{"name": "key " + a.canary, "scopes": []string{"read"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("api key: %d %s", r.Status, r.Body)
	}
	a.apiKeyID = r.Map(t)["id"].(string)
	var sessions struct {
		Items []struct{ ID string }
	}
	env.Do("GET", "/api/v1/me/sessions", a.ws.Token, nil).JSON(t, &sessions)
	a.sessionID = sessions.Items[0].ID
	// Something in A's trash too.
	trashed := env.Create("/api/v1/projects/"+a.project+"/tasks", a.ws.Token, map[string]any{"title": "Trashed " + a.canary})
	if r := env.Do("DELETE", "/api/v1/tasks/"+trashed, a.ws.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	a.filter = env.Create("/api/v1/filters", a.ws.Token, map[string]any{"name": "Filter " + a.canary, "query": a.canary, "shared": true})
	// A's text is in A's search index before B searches for it.
	env.WaitIndexed()
	return a
}

// call is one request of the matrix: as each of B's credentials, with A's
// identifiers wherever the route takes one.
type call struct {
	path   string
	body   any
	expect []int  // acceptable statuses for B; leaks are checked on every answer
	reason string // why a status other than 404 is right here
}

func TestTenantIsolationRouteMatrix(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := seedTenantA(t, env)
	b := env.Signup("beta", "Beta", "owner@beta.test")
	_, bMember := env.Join(b, "Bea Member", "member@beta.test", "member")
	_, bGuest := env.Join(b, "Ben Guest", "guest@beta.test", "guest")
	bProject := env.Create("/api/v1/projects", b.Token, map[string]any{"name": "Beta project"})
	bTask := env.Create("/api/v1/projects/"+bProject+"/tasks", b.Token, map[string]any{"title": "Beta task"})
	// The guest of B may work in B's project, so reference checks reach the engine.
	env.Do("PUT", "/api/v1/projects/"+bProject+"/members/"+mustMemberID(t, env, b.Token, "guest@beta.test"), b.Token, map[string]any{"role": "contributor"})

	nf := []int{http.StatusNotFound}
	own := func(codes ...int) []int { return codes }
	matrix := map[string][]call{
		"GET /healthz":                 {{path: "/healthz", expect: own(200), reason: "public liveness, no data"}},
		"GET /readyz":                  {{path: "/readyz", expect: own(200), reason: "public readiness, no data"}},
		"GET /metrics":                 {{path: "/metrics", expect: own(200), reason: "operational counters, no tenant data"}},
		"GET /api/v1/openapi.json":     {{path: "/api/v1/openapi.json", expect: own(200), reason: "the API's public description"}},
		"GET /api/v1/openapi.yaml":     {{path: "/api/v1/openapi.yaml", expect: own(200), reason: "the API's public description"}},
		"GET /api/v1/openapi-3.0.json": {{path: "/api/v1/openapi-3.0.json", expect: own(200), reason: "the API's public description"}},
		"GET /api/v1/openapi-3.0.yaml": {{path: "/api/v1/openapi-3.0.yaml", expect: own(200), reason: "the API's public description"}},
		"GET /api/v1/plans":            {{path: "/api/v1/plans", expect: own(200), reason: "the public plan catalogue"}},
		"GET /api/v1/setup":            {{path: "/api/v1/setup", expect: own(200), reason: "tells only whether setup is open"}},
		"POST /api/v1/setup": {{path: "/api/v1/setup", body: map[string]any{"token": "x", "workspace_name": "A", "workspace_slug": "alpha", "name": "x", "email": "x@x.test", "password": "x-Unlisted-passw0rd"},
			expect: own(403), reason: "setup is closed in cloud mode"}},
		"POST /api/v1/signup": {{path: "/api/v1/signup", body: map[string]any{"workspace_name": "A", "workspace_slug": "alpha", "name": "x", "email": "x@x.test", "password": "x-Unlisted-passw0rd"},
			expect: own(409), reason: "a taken slug is refused; nothing of A is returned"}},
		"POST /api/v1/auth/login": {{path: "/api/v1/auth/login", body: map[string]any{"workspace": "alpha", "email": "owner@beta.test", "password": "password-beta"},
			expect: own(401), reason: "B's account does not exist in A"}},
		"POST /api/v1/auth/refresh": {{path: "/api/v1/auth/refresh", body: map[string]any{"refresh_token": "tfr_" + strings.ReplaceAll(a.ws.ID, "-", "") + "_forged"},
			expect: own(401), reason: "a token naming A that A never issued"}},
		"POST /api/v1/auth/logout":   {{path: "/api/v1/auth/logout", expect: own(204), reason: "ends the caller's own session only"}},
		"GET /api/v1/me":             {{path: "/api/v1/me", expect: own(200), reason: "the caller's own account"}},
		"PATCH /api/v1/me":           {{path: "/api/v1/me", body: map[string]any{"timezone": "Europe/Berlin"}, expect: own(200), reason: "the caller's own account"}},
		"POST /api/v1/me/password":   {{path: "/api/v1/me/password", body: map[string]any{"current_password": "wrong-password", "new_password": "password-new-1"}, expect: own(403), reason: "wrong current password"}},
		"GET /api/v1/workspace":      {{path: "/api/v1/workspace", expect: own(200), reason: "the caller's own workspace"}},
		"PATCH /api/v1/workspace":    {{path: "/api/v1/workspace", body: map[string]any{"slug": "alpha"}, expect: own(409, 403), reason: "A's slug is taken (Owner), or not allowed (Member, Guest)"}},
		"GET /api/v1/workspace/plan": {{path: "/api/v1/workspace/plan", expect: own(200), reason: "the caller's own plan"}},
		"GET /api/v1/members":        {{path: "/api/v1/members", expect: own(200), reason: "B's members only"}},
		"GET /api/v1/members/:id":    {{path: "/api/v1/members/" + a.guestID, expect: nf}},
		"PATCH /api/v1/members/:id":  {{path: "/api/v1/members/" + a.guestID, body: map[string]any{"status": "deactivated"}, expect: own(404, 403), reason: "403 for roles that manage nobody"}},
		"POST /api/v1/invitations": {{path: "/api/v1/invitations", body: map[string]any{"email": "owner@alpha.test"}, expect: own(201, 403),
			reason: "an invitation into B (accounts belong to one workspace); 403 for Members and Guests"}},
		"GET /api/v1/invitations":             {{path: "/api/v1/invitations", expect: own(200, 403), reason: "B's invitations (403 for Members and Guests)"}},
		"DELETE /api/v1/invitations/:id":      {{path: "/api/v1/invitations/" + a.invitationID, expect: own(404, 403), reason: "403 for roles that manage nobody"}},
		"GET /api/v1/invitations/:id/preview": {{path: "/api/v1/invitations/" + a.invitationID + "/preview", expect: nf}},
		"POST /api/v1/invitations/:id/accept": {{path: "/api/v1/invitations/" + a.invitationID + "/accept", body: map[string]any{"name": "x", "password": "x-Unlisted-passw0rd"}, expect: nf}},
		"GET /api/v1/projects":                {{path: "/api/v1/projects", expect: own(200), reason: "B's projects only"}},
		"POST /api/v1/projects":               {{path: "/api/v1/projects", body: map[string]any{"name": "new"}, expect: own(201, 403), reason: "creates in B (403 for Guests)"}},
		"GET /api/v1/projects/:id":            {{path: "/api/v1/projects/" + a.project, expect: nf}},
		"PATCH /api/v1/projects/:id":          {{path: "/api/v1/projects/" + a.project, body: map[string]any{"name": "pwned"}, expect: nf}},
		"DELETE /api/v1/projects/:id":         {{path: "/api/v1/projects/" + a.project, expect: nf}},
		"POST /api/v1/projects/:id/restore":   {{path: "/api/v1/projects/" + a.project + "/restore", expect: nf}},
		"GET /api/v1/projects/:id/members":    {{path: "/api/v1/projects/" + a.project + "/members", expect: nf}},
		"PUT /api/v1/projects/:id/members/:user_id": {
			{path: "/api/v1/projects/" + a.project + "/members/" + a.guestID, body: map[string]any{"role": "lead"}, expect: nf},
			{path: "/api/v1/projects/" + bProject + "/members/" + a.guestID, body: map[string]any{"role": "observer"}, expect: own(404, 403), reason: "A's member is not a member of B (403 for non-Leads)"},
		},
		"DELETE /api/v1/projects/:id/members/:user_id": {{path: "/api/v1/projects/" + a.project + "/members/" + a.ws.OwnerID, expect: nf}},
		"GET /api/v1/projects/:id/tasks":               {{path: "/api/v1/projects/" + a.project + "/tasks", expect: nf}},
		"POST /api/v1/projects/:id/tasks": {
			{path: "/api/v1/projects/" + a.project + "/tasks", body: map[string]any{"title": "x"}, expect: nf},
			{path: "/api/v1/projects/" + bProject + "/tasks", body: map[string]any{"title": "x", "assignees": []string{a.ws.OwnerID}}, expect: own(422, 404), reason: "A's account cannot be assigned in B (404 when B's caller cannot see the project)"},
			{path: "/api/v1/projects/" + bProject + "/tasks", body: map[string]any{"title": "x", "parent_id": a.task}, expect: own(422, 404), reason: "A's task cannot be a parent in B"},
		},
		"GET /api/v1/projects/:id/activity": {{path: "/api/v1/projects/" + a.project + "/activity", expect: nf}},
		"GET /api/v1/tasks/:id/activity":    {{path: "/api/v1/tasks/" + a.task + "/activity", expect: nf}},
		"GET /api/v1/tasks": {
			{path: "/api/v1/tasks", expect: own(200), reason: "B's own tasks"},
			{path: "/api/v1/tasks?assignee=" + a.ws.OwnerID, expect: own(200), reason: "filters within B: finds nothing of A"},
		},
		"GET /api/v1/tasks/:id": {
			{path: "/api/v1/tasks/" + a.task, expect: nf},
			{path: "/api/v1/tasks/" + a.taskKey, expect: nf, reason: "a human key resolves within the caller's workspace"},
		},
		"PATCH /api/v1/tasks/:id": {
			{path: "/api/v1/tasks/" + a.task, body: map[string]any{"title": "pwned"}, expect: nf},
			{path: "/api/v1/tasks/" + bTask, body: map[string]any{"parent_id": a.task}, expect: own(422, 404), reason: "A's task cannot become a parent in B"},
			{path: "/api/v1/tasks/" + bTask, body: map[string]any{"move": map[string]any{"after_id": a.task}}, expect: own(422, 404), reason: "A's task is no neighbour in B"},
		},
		"DELETE /api/v1/tasks/:id":       {{path: "/api/v1/tasks/" + a.task, expect: nf}},
		"POST /api/v1/tasks/:id/restore": {{path: "/api/v1/tasks/" + a.subtask + "/restore", expect: nf}},
		"GET /api/v1/tasks/:id/comments": {{path: "/api/v1/tasks/" + a.task + "/comments", expect: nf}},
		"POST /api/v1/tasks/:id/comments": {
			{path: "/api/v1/tasks/" + a.task + "/comments", body: map[string]any{"body": "x"}, expect: nf},
			{path: "/api/v1/tasks/" + bTask + "/comments", body: map[string]any{"body": "x", "parent_id": a.comment}, expect: own(422, 404), reason: "A's comment cannot be replied to from B"},
		},
		"GET /api/v1/comments/:id":          {{path: "/api/v1/comments/" + a.comment, expect: nf}},
		"PATCH /api/v1/comments/:id":        {{path: "/api/v1/comments/" + a.comment, body: map[string]any{"body": "pwned"}, expect: nf}},
		"DELETE /api/v1/comments/:id":       {{path: "/api/v1/comments/" + a.comment, expect: nf}},
		"POST /api/v1/comments/:id/restore": {{path: "/api/v1/comments/" + a.comment + "/restore", expect: nf}},

		// Attachments: uploads name A's task or comment, reads A's file.
		"POST /api/v1/tasks/:id/attachments": {
			{path: "/api/v1/tasks/" + a.task + "/attachments", body: "x", expect: nf},
			{path: "/api/v1/tasks/" + a.taskKey + "/attachments", body: "x", expect: nf, reason: "a human key resolves within the caller's workspace"},
		},
		"GET /api/v1/tasks/:id/attachments":     {{path: "/api/v1/tasks/" + a.task + "/attachments", expect: nf}},
		"POST /api/v1/comments/:id/attachments": {{path: "/api/v1/comments/" + a.comment + "/attachments", body: "x", expect: nf}},
		"GET /api/v1/comments/:id/attachments":  {{path: "/api/v1/comments/" + a.comment + "/attachments", expect: nf}},
		"GET /api/v1/attachments/:id":           {{path: "/api/v1/attachments/" + a.attachment, expect: nf}},
		"GET /api/v1/attachments/:id/content":   {{path: "/api/v1/attachments/" + a.attachment + "/content", expect: nf}},
		"GET /api/v1/attachments/:id/thumbnail": {{path: "/api/v1/attachments/" + a.attachment + "/thumbnail", expect: nf}},
		"DELETE /api/v1/attachments/:id":        {{path: "/api/v1/attachments/" + a.attachment, expect: nf}},

		"GET /api/v1/activity": {{path: "/api/v1/activity", expect: own(200), reason: "B's activity only"}},
		"GET /api/v1/trash":    {{path: "/api/v1/trash", expect: own(200), reason: "B's trash only"}},
		"POST /api/v1/auth/mfa": {{path: "/api/v1/auth/mfa", body: map[string]any{"mfa_token": "tfm_" + strings.ReplaceAll(a.ws.ID, "-", "") + "_forged", "code": "123456"},
			expect: own(401), reason: "a challenge naming A that A never issued"}},
		"POST /api/v1/auth/verify-email": {{path: "/api/v1/auth/verify-email", body: map[string]any{"token": "tfv_" + strings.ReplaceAll(a.ws.ID, "-", "") + "_forged"}, expect: own(401), reason: "a forged link naming A"}},
		"POST /api/v1/auth/password-reset/confirm": {{path: "/api/v1/auth/password-reset/confirm", body: map[string]any{"token": "tfp_" + strings.ReplaceAll(a.ws.ID, "-", "") + "_forged", "password": "password-new-1"},
			expect: own(401), reason: "a forged link naming A"}},
		"POST /api/v1/auth/magic-link/verify": {{path: "/api/v1/auth/magic-link/verify", body: map[string]any{"token": "tfl_" + strings.ReplaceAll(a.ws.ID, "-", "") + "_forged"}, expect: own(401), reason: "a forged link naming A"}},
		"POST /api/v1/auth/password-reset": {{path: "/api/v1/auth/password-reset", body: map[string]any{"workspace": "alpha", "email": "owner@alpha.test"},
			expect: own(202, 409), reason: "the same answer whatever the account (409 when this installation sends no mail)"}},
		"POST /api/v1/auth/magic-link": {{path: "/api/v1/auth/magic-link", body: map[string]any{"workspace": "alpha", "email": "owner@alpha.test"},
			expect: own(202, 409), reason: "the same answer whatever the account (409 when this installation sends no mail)"}},
		"POST /api/v1/me/verify-email":           {{path: "/api/v1/me/verify-email", expect: own(202, 409), reason: "the caller's own address"}},
		"POST /api/v1/me/mfa/totp":               {{path: "/api/v1/me/mfa/totp", body: map[string]any{"password": "wrong-password"}, expect: own(403), reason: "wrong password"}},
		"POST /api/v1/me/mfa/totp/confirm":       {{path: "/api/v1/me/mfa/totp/confirm", body: map[string]any{"code": "123456"}, expect: own(422), reason: "no enrolment started"}},
		"POST /api/v1/me/mfa/disable":            {{path: "/api/v1/me/mfa/disable", body: map[string]any{"password": "wrong-password", "code": "123456"}, expect: own(403), reason: "wrong password"}},
		"GET /api/v1/me/sessions":                {{path: "/api/v1/me/sessions", expect: own(200), reason: "the caller's own sessions"}},
		"DELETE /api/v1/me/sessions/:id":         {{path: "/api/v1/me/sessions/" + a.sessionID, expect: nf}},
		"POST /api/v1/me/sessions/revoke-others": {{path: "/api/v1/me/sessions/revoke-others", expect: own(204), reason: "the caller's own other sessions"}},
		"DELETE /api/v1/members/:id/sessions":    {{path: "/api/v1/members/" + a.guestID + "/sessions", expect: own(404, 403), reason: "403 for roles that manage nobody"}},
		"GET /api/v1/api-keys":                   {{path: "/api/v1/api-keys", expect: own(200), reason: "the caller's own keys"}},
		"POST /api/v1/api-keys": {
			{path: "/api/v1/api-keys", body: map[string]any{"name": "k", "scopes": []string{"read"}}, expect: own(201), reason: "a key of the caller's own"},
			{path: "/api/v1/api-keys", body: map[string]any{"name": "k", "scopes": []string{"read"}, "projects": []string{a.project}}, expect: own(422), reason: "A's project cannot be named"},
		},
		"DELETE /api/v1/api-keys/:id":                 {{path: "/api/v1/api-keys/" + a.apiKeyID, expect: nf}},
		"GET /api/v1/audit":                           {{path: "/api/v1/audit", expect: own(403), reason: "the Free plan has no audit log (and Members and Guests never read it)"}},
		"GET /api/v1/platform/workspaces/:slug/audit": {{path: "/api/v1/platform/workspaces/alpha/audit", expect: own(403), reason: "operator only"}},
		"GET /api/v1/audit/export":                    {{path: "/api/v1/audit/export?format=csv", expect: own(403), reason: "the Free plan has no audit export (and Members and Guests never read the trail)"}},
		"GET /api/v1/audit/verify":                    {{path: "/api/v1/audit/verify", expect: own(200, 403), reason: "B's own chain (403 for Members and Guests)"}},
		"POST /api/v1/audit/erasures":                 {{path: "/api/v1/audit/erasures", body: map[string]any{"member_id": a.guestID}, expect: own(404, 403), reason: "A's member is not in B (403 for Members and Guests)"}},
		"POST /api/v1/me/mfa/recovery-codes":          {{path: "/api/v1/me/mfa/recovery-codes", body: map[string]any{"password": "wrong-password"}, expect: own(409), reason: "the caller has no second factor"}},
		"DELETE /api/v1/members/:id/mfa":              {{path: "/api/v1/members/" + a.guestID + "/mfa", expect: own(404, 403), reason: "403 for roles that manage nobody"}},
		"POST /api/v1/invitations/:id/resend":         {{path: "/api/v1/invitations/" + a.invitationID + "/resend", expect: own(404, 403), reason: "403 for roles that manage nobody"}},
		"GET /api/v1/notifications":                   {{path: "/api/v1/notifications", expect: own(200), reason: "the caller's own inbox"}},
		"POST /api/v1/notifications/read-all":         {{path: "/api/v1/notifications/read-all", expect: own(204), reason: "the caller's own inbox"}},
		"POST /api/v1/notifications/:id/read":         {{path: "/api/v1/notifications/" + a.notificationID + "/read", expect: nf}},
		"GET /api/v1/tasks/:id/follow":                {{path: "/api/v1/tasks/" + a.task + "/follow", expect: nf}},
		"PUT /api/v1/tasks/:id/follow":                {{path: "/api/v1/tasks/" + a.task + "/follow", expect: nf}},
		"DELETE /api/v1/tasks/:id/follow":             {{path: "/api/v1/tasks/" + a.task + "/follow", expect: nf}},
		"GET /api/v1/projects/:id/status-updates":     {{path: "/api/v1/projects/" + a.project + "/status-updates", expect: nf}},
		"POST /api/v1/projects/:id/status-updates": {
			{path: "/api/v1/projects/" + a.project + "/status-updates", body: map[string]any{"period": "week"}, expect: nf},
			{path: "/api/v1/projects/" + bProject + "/status-updates", body: map[string]any{"period": "day"}, expect: own(201, 404), reason: "an update of B's own project (404 where the caller cannot see it)"},
		},
		"POST /api/v1/projects/:id/status-updates/stream": {{path: "/api/v1/projects/" + a.project + "/status-updates/stream", body: map[string]any{"period": "week"},
			expect: own(200), reason: "a server-sent event stream: the refusal (not_found) is its only event"}},
		"GET /api/v1/status-updates/:id":          {{path: "/api/v1/status-updates/" + a.update, expect: nf}},
		"PATCH /api/v1/status-updates/:id":        {{path: "/api/v1/status-updates/" + a.update, body: map[string]any{"text": "pwned"}, expect: nf}},
		"POST /api/v1/status-updates/:id/publish": {{path: "/api/v1/status-updates/" + a.update + "/publish", expect: nf}},
		"GET /api/v1/workspace/status-usage":      {{path: "/api/v1/workspace/status-usage", expect: own(200), reason: "the caller's own workspace"}},
		"GET /api/v1/teams":                       {{path: "/api/v1/teams", expect: own(200), reason: "B's teams only"}},
		"POST /api/v1/teams": {
			{path: "/api/v1/teams", body: map[string]any{"name": "B team"}, expect: own(201, 403), reason: "a team of B (403 for Members and Guests)"},
			{path: "/api/v1/teams", body: map[string]any{"name": "B team", "projects": []string{a.project}}, expect: own(422, 403), reason: "A's project cannot join B's team"},
		},
		"GET /api/v1/teams/:id":                 {{path: "/api/v1/teams/" + a.team, expect: nf}},
		"PATCH /api/v1/teams/:id":               {{path: "/api/v1/teams/" + a.team, body: map[string]any{"name": "pwned"}, expect: own(404, 403), reason: "403 for roles that manage no teams"}},
		"DELETE /api/v1/teams/:id":              {{path: "/api/v1/teams/" + a.team, expect: own(404, 403), reason: "403 for roles that manage no teams"}},
		"GET /api/v1/teams/:id/status-updates":  {{path: "/api/v1/teams/" + a.team + "/status-updates", expect: nf}},
		"POST /api/v1/teams/:id/status-updates": {{path: "/api/v1/teams/" + a.team + "/status-updates", body: map[string]any{"period": "week"}, expect: nf}},
		// Live updates (realtime_test.go covers the websocket itself): a plain
		// GET is refused before any upgrade, a forged ticket is no credential,
		// a ticket is the caller's own, and A's topics are not found.
		"GET /api/v1/ws": {
			{path: "/api/v1/ws", expect: own(400), reason: "no upgrade headers: refused, nothing upgraded"},
			{path: "/api/v1/ws?ticket=tfw_forged", expect: own(401), reason: "a forged ticket"},
		},
		"POST /api/v1/ws/ticket": {{path: "/api/v1/ws/ticket", expect: own(201), reason: "a ticket bound to the caller's own session"}},
		"GET /api/v1/events": {
			{path: "/api/v1/events?topics=project:" + a.project, expect: nf},
			{path: "/api/v1/events?topics=task:" + a.task, expect: nf},
			{path: "/api/v1/events?topics=task:" + a.taskKey, expect: nf, reason: "a human key resolves within the caller's workspace"},
			{path: "/api/v1/events?topics=workspace,project:" + a.project, expect: nf, reason: "one foreign topic refuses the whole stream"},
			{path: "/api/v1/events?topics=user:" + a.ws.OwnerID, expect: nf, reason: "only the caller's own user topic"},
		},
		"GET /api/v1/search": {
			{path: "/api/v1/search?q=" + a.canary, expect: own(200), reason: "searches B's own index: finds nothing of A"},
			{path: "/api/v1/search?q=task&project=" + a.project, expect: own(200), reason: "A's project narrows B's allowed set to nothing"},
			{path: "/api/v1/search?assignee=" + a.ws.OwnerID, expect: own(200), reason: "filters within B: finds nothing of A"},
		},
		"GET /api/v1/filters":                             {{path: "/api/v1/filters", expect: own(200), reason: "B's own and shared filters only"}},
		"POST /api/v1/filters":                            {{path: "/api/v1/filters", body: map[string]any{"name": "mine", "query": "tag:x"}, expect: own(201), reason: "a private filter of B's caller"}},
		"GET /api/v1/filters/:id":                         {{path: "/api/v1/filters/" + a.filter, expect: nf}},
		"DELETE /api/v1/filters/:id":                      {{path: "/api/v1/filters/" + a.filter, expect: nf}},
		"POST /api/v1/platform/index/rebuild":             {{path: "/api/v1/platform/index/rebuild", body: map[string]any{"workspace": "alpha"}, expect: own(403), reason: "operator only"}},
		"GET /api/v1/platform/workspaces":                 {{path: "/api/v1/platform/workspaces", expect: own(403), reason: "operator only"}},
		"PUT /api/v1/platform/workspaces/:slug/plan":      {{path: "/api/v1/platform/workspaces/alpha/plan", body: map[string]any{"plan": "enterprise"}, expect: own(403), reason: "operator only"}},
		"GET /api/v1/platform/workspaces/:slug/hash":      {{path: "/api/v1/platform/workspaces/alpha/hash", expect: own(403), reason: "operator only"}},
		"POST /api/v1/platform/workspaces/:slug/dedicate": {{path: "/api/v1/platform/workspaces/alpha/dedicate", body: map[string]any{}, expect: own(403), reason: "operator only"}},
		"GET /api/v1/platform/cluster":                    {{path: "/api/v1/platform/cluster", expect: own(403), reason: "operator only"}},
		"POST /api/v1/platform/cluster/members": {{path: "/api/v1/platform/cluster/members", body: map[string]any{"id": 9, "raft_addr": "127.0.0.1:7009"},
			expect: own(403), reason: "operator only"}},
		"POST /api/v1/platform/cluster/members/:id/promote": {{path: "/api/v1/platform/cluster/members/9/promote", expect: own(403), reason: "operator only"}},
		"DELETE /api/v1/platform/cluster/members/:id":       {{path: "/api/v1/platform/cluster/members/9", expect: own(403), reason: "operator only"}},
		"POST /api/v1/platform/cluster/leader":              {{path: "/api/v1/platform/cluster/leader", body: map[string]any{"id": 9}, expect: own(403), reason: "operator only"}},
		"GET /api/v1/platform/backup":                       {{path: "/api/v1/platform/backup", expect: own(403), reason: "operator only: the whole store"}},
	}

	// The one exception to "A's keyspace does not change while only B
	// acts": a public sign-in that names a workspace by its slug acts on
	// that workspace by design. Anyone on the internet may try to sign in
	// to A, and a failed attempt is a security event of A's, recorded in
	// A's audit trail (issue 5; docs/AUDIT.md) whoever made it. For exactly
	// these routes A's keyspace may change, and only by new entries of the
	// listed actions made by these very requests, with their personal-data
	// records and the chain head; nothing else of A's may change, and the
	// answers carry nothing of A's (checked for every route below). Tokens
	// that merely spell A's ID (refresh, mfa, links) earn no entry in A: A
	// has no record of them, so those routes keep the strict check.
	signInTo := map[string][]string{"POST /api/v1/auth/login": {"auth.login_failed"}}
	signInRequests := map[string]string{} // X-Request-ID → route, for the exempted routes
	before := tenantKeyspace(t, env, a.ws.ID)
	seqBefore, err := env.Service.EventSeq(a.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{"owner": b.Token, "member": bMember, "guest": bGuest}
	routes := env.API.Routes()
	covered, leaks, wrongStatus, requests := 0, 0, 0, 0
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		calls, ok := matrix[key]
		if !ok {
			t.Errorf("route %s has no entry in the tenant-isolation matrix: add one", key)
			continue
		}
		covered++
		for _, c := range calls {
			for role, tok := range creds {
				if key == "POST /api/v1/auth/logout" {
					continue // run last, below: it ends the session the other calls use
				}
				r := env.Do(rt.Method, c.path, tok, c.body)
				requests++
				if _, ok := signInTo[key]; ok {
					signInRequests[r.Header.Get("X-Request-ID")] = key
				}
				if strings.Contains(strings.ToLower(string(r.Body)), strings.ToLower(a.canary)) {
					leaks++
					t.Errorf("LEAK %s as B %s: %d %s", key, role, r.Status, r.Body)
				}
				okStatus := false
				for _, s := range c.expect {
					okStatus = okStatus || r.Status == s
				}
				if !okStatus {
					wrongStatus++
					t.Errorf("%s %s as B %s: status %d, want %v (%s): %s", rt.Method, c.path, role, r.Status, c.expect, c.reason, r.Body)
				}
			}
		}
	}
	for role, tok := range creds {
		if r := env.Do("POST", "/api/v1/auth/logout", tok, nil); r.Status != http.StatusNoContent {
			t.Errorf("logout as B %s: %d", role, r.Status)
		}
	}
	after := tenantKeyspace(t, env, a.ws.ID)
	changed, signInEntries := 0, 0
	for _, problem := range foreignChanges(t, before, after, a.ws.ID, signInTo, signInRequests, &signInEntries) {
		changed = 1
		t.Errorf("A's keyspace changed while only B acted: %s", problem)
	}
	// Every exempted request left exactly its one entry, and A's chain
	// still verifies with them in it.
	if want := len(signInRequests); signInEntries != want {
		t.Errorf("%d failed sign-ins to A audited in A, want %d (one per request)", signInEntries, want)
	}
	if seqAfter, err := env.Service.EventSeq(a.ws.ID); err != nil || seqAfter-seqBefore != uint64(signInEntries) {
		t.Errorf("A's event sequence moved from %d to %d (%v): more commands applied in A than the %d audit entries", seqBefore, seqAfter, err, signInEntries)
	}
	if r := env.Do("GET", "/api/v1/audit/verify", a.ws.Token, nil); r.Status != http.StatusOK || r.Map(t)["ok"] != true {
		t.Errorf("A's audit chain after B's attempts: %d %s", r.Status, r.Body)
	}
	// A's data is all still there, seen from A.
	if r := env.Do("GET", "/api/v1/tasks/"+a.task, a.ws.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), a.canary) {
		t.Errorf("A lost its task: %d %s", r.Status, r.Body)
	}
	figures.Report(t, "T1", 0, []figures.Figure{
		figures.Eq("leaks", float64(leaks), 0),
		figures.Eq("status_not_expected", float64(wrongStatus), 0),
		figures.Eq("foreign_keyspace_changed", float64(changed), 0),
		figures.Eq("routes_covered_ratio", float64(covered)/float64(len(routes)), 1),
		figures.Guard("requests", float64(requests), float64(len(routes))),
	})
}

// tenantKeyspace reads every record of a tenant's keyspace: relative key →
// version and value.
func tenantKeyspace(t *testing.T, env *apitest.Env, tenant string) map[string]storage.Record {
	t.Helper()
	out := map[string]storage.Record{}
	err := env.Store.Tenant(tenant).Scan(nil, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		r.Value = bytes.Clone(r.Value)
		out[string(k)] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// foreignChanges lists every difference between two reads of a tenant's
// keyspace that is not a new audit entry (with its personal-data record,
// and the chain head moving) whose request is one of allowedBy's and whose
// action is one its route may cause; entries counts the allowed entries.
func foreignChanges(t *testing.T, before, after map[string]storage.Record, tenant string, actions map[string][]string, allowedBy map[string]string, entries *int) []string {
	t.Helper()
	var problems []string
	newIDs := map[string]bool{}
	var pii []string
	for k, r := range after {
		if old, ok := before[k]; ok && old.Version == r.Version && bytes.Equal(old.Value, r.Value) {
			continue
		}
		_, existed := before[k]
		parts, err := storage.Key(k).Parts()
		if err != nil || len(parts) == 0 {
			problems = append(problems, fmt.Sprintf("undecodable key %q", k))
			continue
		}
		switch kind := string(parts[0]); {
		case kind == "audithead", kind == "~seq":
			// The chain head moves with the entries appended, which are
			// checked; the workspace's event sequence advances once per
			// command applied in it (the caller checks by how much).
		case kind == "audit" && !existed:
			_, payload, err := storage.ChainEntry(r.Value)
			var e engine.AuditEntry
			if err == nil {
				err = json.Unmarshal(payload, &e)
			}
			route, ok := allowedBy[e.RequestID]
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("undecodable audit entry %s: %v", storage.Key(k), err))
			case !ok:
				problems = append(problems, fmt.Sprintf("audit entry %s (%s) by request %s, not a sign-in to A", storage.Key(k), e.Action, e.RequestID))
			case !slices.Contains(actions[route], e.Action) || e.Workspace != tenant:
				problems = append(problems, fmt.Sprintf("audit entry %s: %s in %s by %s, which may only record %v", storage.Key(k), e.Action, e.Workspace, route, actions[route]))
			default:
				*entries++
				newIDs[e.ID] = true
			}
		case kind == "auditpii" && !existed && len(parts) == 2:
			pii = append(pii, string(parts[1]))
		default:
			problems = append(problems, fmt.Sprintf("%s written", storage.Key(k)))
		}
	}
	for _, id := range pii {
		if !newIDs[id] {
			problems = append(problems, fmt.Sprintf("personal-data record %s belongs to no allowed new entry", id))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s deleted", storage.Key(k)))
		}
	}
	return problems
}

func mustMemberID(t *testing.T, env *apitest.Env, token, email string) string {
	t.Helper()
	var page struct {
		Items []struct{ ID, Email string }
	}
	env.Do("GET", "/api/v1/members", token, nil).JSON(t, &page)
	for _, m := range page.Items {
		if m.Email == email {
			return m.ID
		}
	}
	t.Fatalf("no member %s", email)
	return ""
}

// TestTenantContextInjection: B's credential plus every way a request could
// try to name another workspace; none may reach A (RELIABILITY T2).
func TestTenantContextInjection(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := seedTenantA(t, env)
	b := env.Signup("beta", "Beta", "owner@beta.test")
	headers := []string{
		"X-Tenant-ID", a.ws.ID, "X-Workspace", "alpha", "X-Forwarded-Host", "alpha.teamflow.test",
		"X-Forwarded-For", "10.0.0.1", "Host", "alpha.teamflow.test",
	}
	accepted := 0
	for _, path := range []string{"/api/v1/projects", "/api/v1/workspace", "/api/v1/members", "/api/v1/activity", "/api/v1/tasks", "/api/v1/trash"} {
		r := env.Do("GET", path+"?workspace=alpha&tenant_id="+a.ws.ID, b.Token, nil, headers...)
		if strings.Contains(strings.ToLower(string(r.Body)), strings.ToLower(a.canary)) {
			accepted++
			t.Errorf("GET %s with tenant overrides leaked A: %s", path, r.Body)
		}
	}
	r := env.Do("POST", "/api/v1/projects", b.Token, map[string]any{"name": "x", "tenant_id": a.ws.ID, "workspace": "alpha"}, headers...)
	if r.Status != http.StatusUnprocessableEntity {
		accepted++
		t.Errorf("a body naming a tenant was not refused: %d %s", r.Status, r.Body)
	}
	figures.Report(t, "T2", 0, []figures.Figure{figures.Eq("accepted_tenant_overrides", float64(accepted), 0)})
}
