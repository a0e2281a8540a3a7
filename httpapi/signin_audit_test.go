package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
)

// auditByRequest reads the workspace's trail as its Owner does (entries
// joined with their personal data) and returns the entries of one request.
func auditByRequest(t *testing.T, env *apitest.Env, token, requestID string) []engine.AuditEntry {
	t.Helper()
	var page struct{ Items []engine.AuditEntry }
	r := env.Do("GET", "/api/v1/audit?limit=200", token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("read the trail: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &page)
	var out []engine.AuditEntry
	for _, e := range page.Items {
		if e.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}

// oneEntry is the single entry a request left, or a failure.
func oneEntry(t *testing.T, env *apitest.Env, token string, r *apitest.Response, what string) engine.AuditEntry {
	t.Helper()
	es := auditByRequest(t, env, token, r.Header.Get("X-Request-ID"))
	if len(es) != 1 {
		t.Fatalf("%s: %d audit entries, want 1: %+v", what, len(es), es)
	}
	return es[0]
}

// TestFailedSignInToAWorkspaceIsAudited (issue 5): a sign-in to an existing
// workspace with an email none of its accounts has answers exactly what a
// wrong password for a real account answers, and is recorded in that
// workspace's trail as auth.login_failed, the email typed kept in the
// personal-data record beside the chain (never in the chain, never in the
// operator's copy). An inactive account is named by ID. The chain verifies.
func TestFailedSignInToAWorkspaceIsAudited(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	setPlan(t, env, "acme", "professional")
	bobID, _ := env.Join(a, "Bob", "bob@acme.test", "member")
	login := func(email string) *apitest.Response {
		return env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": email, "password": "wrong password"})
	}
	// The answer without its request ID (which every answer has its own of).
	answer := func(r *apitest.Response) string {
		return r.Header.Get("Content-Type") + " " + string(bytes.ReplaceAll(r.Body, []byte(r.Header.Get("X-Request-ID")), nil))
	}
	wrong := login("olive@acme.test")
	wantProblem(t, wrong, http.StatusUnauthorized, "invalid_credentials", "a wrong password")
	for _, email := range []string{"nobody@acme.test", "NoBody@Acme.test", "not an email at all"} {
		r := login(email)
		if r.Status != wrong.Status || answer(r) != answer(wrong) {
			t.Fatalf("unknown email %q answers %d %s; a wrong password answers %d %s", email, r.Status, answer(r), wrong.Status, answer(wrong))
		}
	}

	unknown := login("nobody@acme.test")
	e := oneEntry(t, env, a.Token, unknown, "an unknown email")
	if e.Action != "auth.login_failed" || e.Actor != "anonymous" || e.Outcome != "failure" || e.TargetKind != "email" || e.TargetID != "" ||
		e.Workspace != a.ID || e.IP == "" || e.Detail["reason"] != "unknown_account" || e.Detail["email"] != "nobody@acme.test" {
		t.Fatalf("unknown email audited as %+v", e)
	}
	// The email is personal data: beside the chain, not in it, and not in
	// the operator's copy of the chain.
	chain, err := env.Service.ReadAudit(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range chain.Entries {
		if bytes.Contains(raw.Payload, []byte("nobody@acme")) {
			t.Fatalf("the email typed is in the chained entry %d: %s", raw.Seq, raw.Payload)
		}
	}
	op, err := env.Service.ResetOperatorToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := env.Do("GET", "/api/v1/platform/workspaces/acme/audit", op, nil); r.Status != http.StatusOK || bytes.Contains(r.Body, []byte("nobody@acme")) {
		t.Fatalf("operator's copy: %d, holds the email: %v", r.Status, bytes.Contains(r.Body, []byte("nobody@acme")))
	}
	// What is not an email address (a password typed into the wrong field)
	// is not kept at all.
	e = oneEntry(t, env, a.Token, login("correct horse battery"), "not an email")
	if e.Detail["reason"] != "unknown_account" || e.Detail["email"] != nil || e.Detail["email_malformed"] != true {
		t.Fatalf("non-email audited as %+v", e)
	}
	// A deactivated account is named by its ID.
	if r := env.Do("PATCH", "/api/v1/members/"+bobID, a.Token, map[string]any{"status": "deactivated"}); r.Status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", r.Status, r.Body)
	}
	bob := login("bob@acme.test")
	if answer(bob) != answer(wrong) {
		t.Fatalf("a deactivated account answers %s", answer(bob))
	}
	e = oneEntry(t, env, a.Token, bob, "a deactivated account")
	if e.Action != "auth.login_failed" || e.TargetKind != "member" || e.TargetID != bobID || e.Detail["reason"] != "account_inactive" || e.Detail["email"] != nil {
		t.Fatalf("deactivated account audited as %+v", e)
	}
	// An unknown workspace has no trail to write into: logged and counted.
	if r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "nowhere", "email": "nobody@acme.test", "password": "wrong password"}); answer(r) != answer(wrong) {
		t.Fatalf("an unknown workspace answers %s", answer(r))
	}
	if !strings.Contains(scrapeMetrics(t, env), `teamflow_auth_refused_unaudited_total{purpose="login",reason="unknown_workspace"} 1`) {
		t.Fatalf("the unknown workspace was not counted:\n%s", scrapeMetrics(t, env))
	}
	if r := env.Do("GET", "/api/v1/audit/verify", a.Token, nil); r.Status != http.StatusOK || r.Map(t)["ok"] != true {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
}

func scrapeMetrics(t *testing.T, env *apitest.Env) string {
	t.Helper()
	r := env.Do("GET", "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("metrics: %d", r.Status)
	}
	return string(r.Body)
}

// TestFailedSignInsAreBoundedByTheAddressLimit: the per-address limit on
// public writes refuses before the engine, so an anonymous caller cannot
// write more entries into a workspace's trail than the limit lets through.
func TestFailedSignInsAreBoundedByTheAddressLimit(t *testing.T) {
	env := apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{RateLimits: true, PublicPerIPMinute: 3})
	a := env.Signup("acme", "Acme", "olive@acme.test") // one of the address's 3
	refused := 0
	for i := range 6 {
		r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": "nobody" + string(rune('a'+i)) + "@acme.test", "password": "wrong password"})
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if n := countAction(auditEntries(t, env, a.ID), "auth.login_failed", nil); refused != 4 || n != 2 {
		t.Fatalf("%d of 6 refused by the limit, %d audited; want 4 and 2", refused, n)
	}
	env.Clock.Advance(time.Minute)
	env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": "nobody@acme.test", "password": "wrong password"})
	if n := countAction(auditEntries(t, env, a.ID), "auth.login_failed", nil); n != 3 {
		t.Fatalf("after the window: %d audited, want 3", n)
	}
}

// TestRefusedTokensWhereTheyBelong (issue 5): a token its workspace issued
// that is refused (the session ended, a spent second-factor challenge, a
// revoked invitation) is audited in that workspace; a malformed token, or
// one naming a workspace that never issued it, answers the same problem,
// writes nothing into any workspace and is counted in /metrics.
func TestRefusedTokensWhereTheyBelong(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	setPlan(t, env, "acme", "professional")
	login := func(email, password string) map[string]any {
		t.Helper()
		r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": email, "password": password})
		if r.Status != http.StatusOK {
			t.Fatalf("sign-in %s: %d %s", email, r.Status, r.Body)
		}
		return r.Map(t)
	}
	refusal := func(r *apitest.Response, action, purpose, reason, what string) {
		t.Helper()
		e := oneEntry(t, env, a.Token, r, what)
		if e.Action != action || e.Outcome != "denied" || e.Workspace != a.ID || e.TargetID == "" || e.Detail["reason"] != reason || (purpose != "" && e.Detail["purpose"] != purpose) {
			t.Fatalf("%s audited as %+v", what, e)
		}
	}

	// A refresh token of a session that was signed out.
	s := login("olive@acme.test", "password-acme")
	if r := env.Do("POST", "/api/v1/auth/logout", s["access_token"].(string), nil); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.Status)
	}
	r := env.Do("POST", "/api/v1/auth/refresh", "", map[string]any{"refresh_token": s["refresh_token"]})
	wantProblem(t, r, http.StatusUnauthorized, "invalid_token", "the refresh token of an ended session")
	refusal(r, "auth.token_refused", "refresh", "revoked", "the refresh token of an ended session")

	// A second-factor challenge used twice.
	_, bobTok := env.Join(a, "Bob", "bob@acme.test", "member")
	secret := env.Do("POST", "/api/v1/me/mfa/totp", bobTok, map[string]any{"password": "password-Bob"}).Map(t)["secret"].(string)
	if r := env.Do("POST", "/api/v1/me/mfa/totp/confirm", bobTok, map[string]any{"code": totpAt(t, secret, env.Clock.Now())}); r.Status != http.StatusOK {
		t.Fatalf("enrol: %d %s", r.Status, r.Body)
	}
	env.Clock.Advance(time.Minute) // a code works once: the next window's
	mfa := login("bob@acme.test", "password-Bob")["mfa_token"].(string)
	code := totpAt(t, secret, env.Clock.Now())
	if r := env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": mfa, "code": code}); r.Status != http.StatusOK {
		t.Fatalf("second factor: %d %s", r.Status, r.Body)
	}
	r = env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": mfa, "code": code})
	wantProblem(t, r, http.StatusUnauthorized, "invalid_mfa", "a spent challenge")
	refusal(r, "auth.mfa_failed", "", "reused", "a spent challenge")

	// A revoked invitation.
	inv := env.Do("POST", "/api/v1/invitations", a.Token, map[string]any{"email": "carol@acme.test", "role": "member"}).Map(t)
	if r := env.Do("DELETE", "/api/v1/invitations/"+inv["id"].(string), a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	r = env.Do("POST", "/api/v1/invitations/"+inv["token"].(string)+"/accept", "", map[string]any{"name": "Carol", "password": "password-Carol"})
	wantProblem(t, r, http.StatusNotFound, "", "a revoked invitation")
	refusal(r, "auth.token_refused", "invitation", "revoked", "a revoked invitation")

	// Malformed tokens and tokens that only spell the workspace's ID: the
	// same problems, nothing written, counted.
	before := len(auditEntries(t, env, a.ID))
	hex := strings.ReplaceAll(a.ID, "-", "")
	for _, c := range []struct{ path, field, token, code string }{
		{"/api/v1/auth/refresh", "refresh_token", "garbage", "invalid_token"},
		{"/api/v1/auth/refresh", "refresh_token", "tfr_" + hex + "_forged", "invalid_token"},
		{"/api/v1/auth/refresh", "refresh_token", "tfr_0123456789abcdef0123456789abcdef_forged", "invalid_token"},
		{"/api/v1/auth/mfa", "mfa_token", "tfm_garbage", "invalid_mfa"},
		{"/api/v1/auth/mfa", "mfa_token", "tfm_" + hex + "_forged", "invalid_mfa"},
		{"/api/v1/auth/magic-link/verify", "token", "tfl_" + hex + "_forged", "invalid_token"},
	} {
		body := map[string]any{c.field: c.token}
		if c.field == "mfa_token" {
			body["code"] = "123456"
		}
		wantProblem(t, env.Do("POST", c.path, "", body), http.StatusUnauthorized, c.code, c.path+" "+c.token)
	}
	if after := len(auditEntries(t, env, a.ID)); after != before {
		t.Fatalf("malformed or unknown tokens wrote %d entries into the workspace they named", after-before)
	}
	m := scrapeMetrics(t, env)
	for _, want := range []string{
		`teamflow_auth_refused_unaudited_total{purpose="refresh",reason="malformed"} 1`,
		`teamflow_auth_refused_unaudited_total{purpose="refresh",reason="unknown_token"} 1`,
		`teamflow_auth_refused_unaudited_total{purpose="refresh",reason="unknown_workspace"} 1`,
		`teamflow_auth_refused_unaudited_total{purpose="mfa",reason="malformed"} 1`,
		`teamflow_auth_refused_unaudited_total{purpose="mfa",reason="unknown_token"} 1`,
		`teamflow_auth_refused_unaudited_total{purpose="magic_link",reason="unknown_token"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r := env.Do("GET", "/api/v1/audit/verify", a.Token, nil); r.Status != http.StatusOK || r.Map(t)["ok"] != true {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
}
