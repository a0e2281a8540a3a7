package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/internal/figures"
)

// TestAPIKeys: a key works as a bearer token within its scopes and
// projects, is shown once, acts in its own workspace only, and stops at
// once when revoked (RELIABILITY A9 on one node).
func TestAPIKeys(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	b := env.Signup("beta", "Beta", "owner@beta.test")
	p1 := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "One"})
	p2 := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Two"})
	bProject := env.Create("/api/v1/projects", b.Token, map[string]any{"name": "Beta"})

	r := env.Do("POST", "/api/v1/api-keys", a.Token, map[string]any{"name": "ci", "scopes": []string{"read"}, "projects": []string{p1}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	m := r.Map(t)
	readKey, readID := m["token"].(string), m["id"].(string)
	if !strings.HasPrefix(readKey, "tfk_") {
		t.Fatalf("token %q", readKey)
	}
	shownAgain := 0
	if l := env.Do("GET", "/api/v1/api-keys", a.Token, nil); strings.Contains(string(l.Body), readKey) || !strings.Contains(string(l.Body), readID) {
		shownAgain++
	}
	if r := env.Do("GET", "/api/v1/projects/"+p1+"/tasks", readKey, nil); r.Status != http.StatusOK {
		t.Fatalf("read with the key: %d %s", r.Status, r.Body)
	}
	if r := env.Do("GET", "/api/v1/projects/"+p2, readKey, nil); r.Status != http.StatusNotFound {
		t.Fatalf("a project outside the key's list: %d", r.Status)
	}
	if r := env.Do("POST", "/api/v1/projects/"+p1+"/tasks", readKey, map[string]any{"title": "x"}); r.Status != http.StatusForbidden || r.Map(t)["code"] != "insufficient_scope" {
		t.Fatalf("write with a read key: %d %s", r.Status, r.Body)
	}
	crossTenant := 0
	if r := env.Do("GET", "/api/v1/projects/"+bProject, readKey, nil); r.Status != http.StatusNotFound {
		crossTenant++
	}
	writeKey := env.Do("POST", "/api/v1/api-keys", a.Token, map[string]any{"name": "bot", "scopes": []string{"read", "write"}}).Map(t)["token"].(string)
	if r := env.Do("POST", "/api/v1/projects/"+p2+"/tasks", writeKey, map[string]any{"title": "from a bot"}); r.Status != http.StatusCreated {
		t.Fatalf("write with a write key: %d %s", r.Status, r.Body)
	}
	// A key cannot make keys.
	if r := env.Do("POST", "/api/v1/api-keys", writeKey, map[string]any{"name": "child", "scopes": []string{"read"}}); r.Status != http.StatusForbidden {
		t.Fatalf("a key made a key: %d", r.Status)
	}
	if r := env.Do("DELETE", "/api/v1/api-keys/"+readID, a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	revokedOK := 0
	if r := env.Do("GET", "/api/v1/projects/"+p1+"/tasks", readKey, nil); r.Status != http.StatusUnauthorized {
		revokedOK++
	}
	figures.Report(t, "A9", 0, []figures.Figure{
		figures.Eq("revoked_key_ok_after_apply", float64(revokedOK), 0),
		figures.Eq("key_shown_again", float64(shownAgain), 0),
		figures.Eq("cross_tenant_use", float64(crossTenant), 0),
	})
}

// TestMandatoryMFAForAdmins: past the grace period an Owner without a
// second factor can reach only enrolment; enrolling restores everything.
func TestMandatoryMFAForAdmins(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	_, member := env.Join(a, "Mel", "mel@alpha.test", "member")
	if r := env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"mfa_grace_days": 0}); r.Status != http.StatusOK {
		t.Fatalf("grace 0: %d %s", r.Status, r.Body)
	}
	if r := env.Do("GET", "/api/v1/projects", a.Token, nil); r.Status != http.StatusForbidden || r.Map(t)["code"] != "mfa_enrolment_required" {
		t.Fatalf("an Owner without a second factor reached projects: %d %s", r.Status, r.Body)
	}
	if r := env.Do("GET", "/api/v1/projects", member, nil); r.Status != http.StatusOK {
		t.Fatalf("a Member was held for enrolment: %d", r.Status)
	}
	me := env.Do("GET", "/api/v1/me", a.Token, nil).Map(t)
	if me["mfa_required_by"] == nil || me["mfa_enabled"] != false {
		t.Fatalf("me does not say enrolment is due: %v", me)
	}
	r := env.Do("POST", "/api/v1/me/mfa/totp", a.Token, map[string]any{"password": "password-alpha"})
	if r.Status != http.StatusOK {
		t.Fatalf("begin: %d %s", r.Status, r.Body)
	}
	secret := r.Map(t)["secret"].(string)
	code, err := totp.GenerateCodeCustom(secret, env.Clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	r = env.Do("POST", "/api/v1/me/mfa/totp/confirm", a.Token, map[string]any{"code": code})
	if r.Status != http.StatusOK || len(r.Map(t)["recovery_codes"].([]any)) != 10 {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	if r := env.Do("GET", "/api/v1/projects", a.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("after enrolment: %d %s", r.Status, r.Body)
	}
	// Sign-in now asks for the second factor, in the shape the core API reserved.
	env.Clock.Advance(time.Minute)
	r = env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "alpha", "email": "owner@alpha.test", "password": "password-alpha"})
	lm := r.Map(t)
	if lm["mfa_required"] != true || lm["mfa_token"] == nil || lm["access_token"] != nil {
		t.Fatalf("login with a second factor: %s", r.Body)
	}
	code, _ = totp.GenerateCodeCustom(secret, env.Clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	r = env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": lm["mfa_token"], "code": code})
	if r.Status != http.StatusOK || r.Map(t)["access_token"] == nil {
		t.Fatalf("complete: %d %s", r.Status, r.Body)
	}
}

// TestSessions: a user lists and ends sessions; an Admin signs a member out
// everywhere (RELIABILITY A3 for the cases this covers).
func TestSessions(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	memberID, member := env.Join(a, "Mel", "mel@alpha.test", "member")
	second := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "alpha", "email": "mel@alpha.test", "password": "password-Mel"}).Map(t)["access_token"].(string)
	var list struct {
		Items []struct {
			ID      string
			Current bool
		}
	}
	env.Do("GET", "/api/v1/me/sessions", member, nil).JSON(t, &list)
	if len(list.Items) != 2 {
		t.Fatalf("%d sessions listed, want 2", len(list.Items))
	}
	if r := env.Do("POST", "/api/v1/me/sessions/revoke-others", member, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke others: %d", r.Status)
	}
	alive := 0
	if env.Do("GET", "/api/v1/me", second, nil).Status == http.StatusOK {
		alive++
	}
	if env.Do("GET", "/api/v1/me", member, nil).Status != http.StatusOK {
		t.Fatal("revoking the others ended this session too")
	}
	if r := env.Do("DELETE", "/api/v1/members/"+memberID+"/sessions", a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("admin revoke: %d %s", r.Status, r.Body)
	}
	if env.Do("GET", "/api/v1/me", member, nil).Status == http.StatusOK {
		alive++
	}
	// Deactivation ends access at once (every request re-reads the account).
	_, other := env.Join(a, "Otto", "otto@alpha.test", "member")
	var members struct{ Items []struct{ ID, Email string } }
	env.Do("GET", "/api/v1/members", a.Token, nil).JSON(t, &members)
	for _, m := range members.Items {
		if m.Email == "otto@alpha.test" {
			env.Do("PATCH", "/api/v1/members/"+m.ID, a.Token, map[string]any{"status": "deactivated"})
		}
	}
	afterDeactivation := 0
	if env.Do("GET", "/api/v1/me", other, nil).Status == http.StatusOK {
		afterDeactivation++
	}
	figures.Report(t, "A3", 0, []figures.Figure{
		figures.Eq("other_sessions_alive_after_change", float64(alive), 0),
		figures.Eq("requests_ok_after_deactivation", float64(afterDeactivation), 0),
	})
}

// TestMemberMFAVisibility: the member views say whether two-factor
// authentication is on to Owners and Admins only; a Member's views leave
// mfa_enabled out, and GET /me always carries the caller's own.
func TestMemberMFAVisibility(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	_, admin := env.Join(a, "Ada", "ada@alpha.test", "admin")
	melID, mel := env.Join(a, "Mel", "mel@alpha.test", "member")
	// Mel turns two-factor authentication on.
	r := env.Do("POST", "/api/v1/me/mfa/totp", mel, map[string]any{"password": "password-Mel"})
	if r.Status != http.StatusOK {
		t.Fatalf("begin: %d %s", r.Status, r.Body)
	}
	code, err := totp.GenerateCodeCustom(r.Map(t)["secret"].(string), env.Clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if r := env.Do("POST", "/api/v1/me/mfa/totp/confirm", mel, map[string]any{"code": code}); r.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	type member struct {
		ID         string `json:"id"`
		Email      string `json:"email"`
		MFAEnabled *bool  `json:"mfa_enabled"`
	}
	list := func(token string) map[string]member {
		var page struct{ Items []member }
		env.Do("GET", "/api/v1/members", token, nil).JSON(t, &page)
		out := map[string]member{}
		for _, m := range page.Items {
			out[m.Email] = m
		}
		if len(out) != 3 {
			t.Fatalf("%d members listed, want 3", len(out))
		}
		return out
	}
	for name, token := range map[string]string{"owner": a.Token, "admin": admin} {
		ms := list(token)
		if m := ms["mel@alpha.test"]; m.MFAEnabled == nil || !*m.MFAEnabled {
			t.Fatalf("%s: Mel's mfa_enabled = %v, want true", name, m.MFAEnabled)
		}
		if m := ms["owner@alpha.test"]; m.MFAEnabled == nil || *m.MFAEnabled {
			t.Fatalf("%s: the Owner's mfa_enabled = %v, want false", name, m.MFAEnabled)
		}
		var one member
		env.Do("GET", "/api/v1/members/"+melID, token, nil).JSON(t, &one)
		if one.MFAEnabled == nil || !*one.MFAEnabled {
			t.Fatalf("%s: GET member: mfa_enabled = %v, want true", name, one.MFAEnabled)
		}
	}
	// A Member sees nobody's, their own included, in the member views.
	for email, m := range list(mel) {
		if m.MFAEnabled != nil {
			t.Fatalf("a Member sees mfa_enabled of %s", email)
		}
	}
	if r := env.Do("GET", "/api/v1/members/"+melID, mel, nil); strings.Contains(string(r.Body), "mfa_enabled") {
		t.Fatalf("a Member's GET member carries mfa_enabled: %s", r.Body)
	}
	if r := env.Do("GET", "/api/v1/members", mel, nil); strings.Contains(string(r.Body), "mfa_enabled") {
		t.Fatalf("a Member's member list carries mfa_enabled: %s", r.Body)
	}
	// GET /me keeps its own.
	if me := env.Do("GET", "/api/v1/me", mel, nil).Map(t); me["mfa_enabled"] != true {
		t.Fatalf("me: mfa_enabled = %v", me["mfa_enabled"])
	}
	// The public setup answer says whether the server sends mail (this one does not).
	if s := env.Do("GET", "/api/v1/setup", "", nil).Map(t); s["mail"] != false {
		t.Fatalf("setup without a mailer: %v", s)
	}
}
