package httpapi_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/mail"
	"github.com/teamflow/teamflow/engine/mail/mailtest"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/httpapi/apitest"
	"github.com/teamflow/teamflow/storage"
)

// mailEnv is the API over an engine whose outbox delivers through the real
// SMTP client to a real SMTP server in the test.
type mailEnv struct {
	*apitest.Env
	smtp *mailtest.Server
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	srv := mailtest.Start(t)
	m, err := mail.New(mail.Config{Host: srv.Host, Port: srv.Port, Security: "none", From: "TeamFlow <teamflow@acme.test>"})
	if err != nil {
		t.Fatal(err)
	}
	return &mailEnv{Env: apitest.NewWithMailer(t, engine.Config{Mode: engine.ModeCloud}, httpapi.Config{}, m), smtp: srv}
}

// deliver runs the outbox dispatcher once.
func (e *mailEnv) deliver(t *testing.T) {
	t.Helper()
	if _, err := e.Service.DeliverOutbox(t.Context()); err != nil {
		t.Fatal(err)
	}
}

var linkTokenRE = regexp.MustCompile(`(tf[a-z]_[0-9a-f]{32}_[A-Za-z0-9_-]+)`)

// lastMail delivers the outbox and returns the newest mail to addr whose
// subject contains subject, with the single-use token its link carries.
func (e *mailEnv) lastMail(t *testing.T, addr, subject string) (mailtest.Mail, string) {
	t.Helper()
	e.deliver(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms := e.smtp.To(addr)
		for i := len(ms) - 1; i >= 0; i-- {
			if strings.Contains(ms[i].Subject, subject) {
				return ms[i], linkTokenRE.FindString(ms[i].Text)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail %q to %s (got %d mails)", subject, addr, len(ms))
		}
		time.Sleep(10 * time.Millisecond) // the catcher receives asynchronously
	}
}

func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// auditActions reads the workspace's chain and returns its entries.
func auditEntries(t *testing.T, env *apitest.Env, ws string) []engine.AuditEntry {
	t.Helper()
	chain, err := env.Service.ReadAudit(ws)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]engine.AuditEntry, 0, len(chain.Entries))
	for _, r := range chain.Entries {
		var e engine.AuditEntry
		if err := json.Unmarshal(r.Payload, &e); err != nil {
			t.Fatal(err)
		}
		e.Seq = r.Seq
		out = append(out, e)
	}
	return out
}

func countAction(es []engine.AuditEntry, action string, match func(engine.AuditEntry) bool) int {
	n := 0
	for _, e := range es {
		if e.Action == action && (match == nil || match(e)) {
			n++
		}
	}
	return n
}

func wantProblem(t *testing.T, r *apitest.Response, status int, code, what string) {
	t.Helper()
	if r.Status != status || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("%s: %d %s %s, want %d problem+json", what, r.Status, r.Header.Get("Content-Type"), r.Body, status)
	}
	if code != "" && r.Map(t)["code"] != code {
		t.Fatalf("%s: code %v, want %s: %s", what, r.Map(t)["code"], code, r.Body)
	}
}

// setPlan moves a workspace to a plan as the platform operator.
func setPlan(t *testing.T, env *apitest.Env, slug, plan string) {
	t.Helper()
	op, err := env.Service.ResetOperatorToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := env.Do("PUT", "/api/v1/platform/workspaces/"+slug+"/plan", op, map[string]any{"plan": plan}); r.Status != http.StatusOK {
		t.Fatalf("set plan: %d %s", r.Status, r.Body)
	}
}

// TestAuditQueryExportAndVerify: the trail is filtered by actor, action and
// time and paged; exported as CSV and JSON on Professional and above only
// (the export itself audited); verified by the API, which names the first
// entry altered or removed in the store.
func TestAuditQueryExportAndVerify(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	memberID, member := env.Join(a, "Mel", "mel@alpha.test", "member")

	// Free plan: no audit log, no export; a stable code says why.
	wantProblem(t, env.Do("GET", "/api/v1/audit", a.Token, nil), 403, "plan_feature_unavailable", "audit on Free")
	wantProblem(t, env.Do("GET", "/api/v1/audit/export?format=csv", a.Token, nil), 403, "plan_feature_unavailable", "export on Free")
	setPlan(t, env, "alpha", "professional")
	wantProblem(t, env.Do("GET", "/api/v1/audit", member, nil), 403, "forbidden", "audit as a Member")
	wantProblem(t, env.Do("GET", "/api/v1/audit/export", member, nil), 403, "forbidden", "export as a Member")
	wantProblem(t, env.Do("GET", "/api/v1/audit/verify", member, nil), 403, "forbidden", "verify as a Member")

	// Events at known times.
	t0 := env.Clock.Now()
	env.Clock.Advance(2 * time.Minute)
	for range 3 {
		wantProblem(t, env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "alpha", "email": "mel@alpha.test", "password": "wrong password"}), 401, "invalid_credentials", "bad login")
	}
	t1 := env.Clock.Now()
	env.Clock.Advance(2 * time.Minute)
	if r := env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"timezone": "Europe/Berlin", "mfa_grace_days": 3}); r.Status != http.StatusOK {
		t.Fatalf("settings: %d %s", r.Status, r.Body)
	}
	keyID := env.Create("/api/v1/api-keys", a.Token, map[string]any{"name": "ci", "scopes": []string{"read"}})
	if r := env.Do("DELETE", "/api/v1/api-keys/"+keyID, a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke key: %d", r.Status)
	}
	if r := env.Do("PATCH", "/api/v1/members/"+memberID, a.Token, map[string]any{"role": "admin"}); r.Status != http.StatusOK {
		t.Fatalf("role: %d %s", r.Status, r.Body)
	}

	type page struct {
		Items      []engine.AuditEntry `json:"items"`
		NextCursor string              `json:"next_cursor"`
	}
	list := func(q string) page {
		t.Helper()
		var p page
		r := env.Do("GET", "/api/v1/audit?"+q, a.Token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("audit %s: %d %s", q, r.Status, r.Body)
		}
		r.JSON(t, &p)
		return p
	}
	failed := list("action=auth.login_failed")
	if len(failed.Items) != 3 {
		t.Fatalf("%d failed sign-ins listed, want 3", len(failed.Items))
	}
	for _, e := range failed.Items {
		if e.TargetID != memberID || e.Outcome != "failure" {
			t.Fatalf("failed sign-in entry %+v", e)
		}
	}
	// Every security event this test caused is in the trail.
	for _, action := range []string{"platform.plan_change", "invitation.create", "invitation.accept", "workspace.update", "apikey.create", "apikey.revoke", "member.update"} {
		if n := len(list("action=" + action).Items); n == 0 {
			t.Errorf("no %s entry in the trail", action)
		}
	}
	ws := list("action=workspace.update").Items[0]
	if ws.Detail["timezone"] == nil || ws.Detail["mfa_grace_days"] == nil || ws.Detail["name"] != nil {
		t.Fatalf("settings entry names the wrong fields: %v", ws.Detail)
	}
	// A prefix, an actor, a time range.
	for _, e := range list("action=auth.").Items {
		if !strings.HasPrefix(e.Action, "auth.") {
			t.Fatalf("prefix filter let %s through", e.Action)
		}
	}
	for _, e := range list("actor=" + a.OwnerID).Items {
		if e.Actor != a.OwnerID {
			t.Fatalf("actor filter let %s through", e.Actor)
		}
	}
	ranged := list("from=" + url.QueryEscape(t0.Add(time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(t1.Add(time.Second).Format(time.RFC3339)))
	if len(ranged.Items) != 3 || countAction(ranged.Items, "auth.login_failed", nil) != 3 {
		t.Fatalf("time range gave %d entries, want the 3 failed sign-ins: %+v", len(ranged.Items), ranged.Items)
	}
	wantProblem(t, env.Do("GET", "/api/v1/audit?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", a.Token, nil), 422, "invalid_range", "inverted range")
	// Pages of 2 walk the whole trail, newest first, without gaps or repeats.
	all := list("limit=200").Items
	var walked []uint64
	for cur := ""; ; {
		p := list("limit=2&cursor=" + url.QueryEscape(cur))
		for _, e := range p.Items {
			walked = append(walked, e.Seq)
		}
		if p.NextCursor == "" {
			break
		}
		cur = p.NextCursor
	}
	if len(walked) < len(all) || !slices.IsSortedFunc(walked, func(x, y uint64) int { return int(y) - int(x) }) {
		t.Fatalf("paging walked %v for %d entries", walked, len(all))
	}

	// CSV export: a header, one row per entry, the export itself included.
	r := env.Do("GET", "/api/v1/audit/export?format=csv", a.Token, nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export: %d %s", r.Status, r.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "seq" || rows[len(rows)-1][2] != "audit.export" || len(rows)-1 < len(walked) {
		t.Fatalf("csv: header %v, last %v, %d rows for %d entries", rows[0], rows[len(rows)-1], len(rows)-1, len(walked))
	}
	// JSON export with a filter.
	r = env.Do("GET", "/api/v1/audit/export?format=json&action=auth.login_failed", a.Token, nil)
	var exported []engine.AuditEntry
	r.JSON(t, &exported)
	if r.Status != http.StatusOK || len(exported) != 3 || exported[0].Seq > exported[2].Seq {
		t.Fatalf("json export: %d, %d entries", r.Status, len(exported))
	}
	exports := list("action=audit.export").Items
	if len(exports) != 2 || exports[0].Detail["format"] != "json" || exports[0].Detail["action"] != "auth.login_failed" || exports[0].Actor != a.OwnerID {
		t.Fatalf("exports audited as %+v", exports)
	}
	// A Starter workspace has no export either.
	setPlan(t, env, "alpha", "starter")
	wantProblem(t, env.Do("GET", "/api/v1/audit/export", a.Token, nil), 403, "plan_feature_unavailable", "export on Starter")
	setPlan(t, env, "alpha", "enterprise")

	// Verify: ok; then an entry altered in the store, then one removed.
	type verification struct {
		OK       bool   `json:"ok"`
		Entries  int    `json:"entries"`
		FirstBad uint64 `json:"first_bad_seq"`
		Problem  string `json:"problem"`
	}
	verify := func() verification {
		t.Helper()
		var v verification
		r := env.Do("GET", "/api/v1/audit/verify", a.Token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &v)
		return v
	}
	if v := verify(); !v.OK || v.Entries < len(walked) {
		t.Fatalf("untouched chain: %+v", v)
	}
	chain, err := env.Service.ReadAudit(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw := chain.Entries
	victim := raw[4]
	storeEntry := func(e engine.RawAudit, payload []byte) {
		t.Helper()
		var h [32]byte
		b, _ := hexDecode(e.Hash)
		copy(h[:], b)
		val := append(h[:], payload...)
		res, err := env.Log.Propose(t.Context(), &storage.Command{RequestID: uuid.NewString(), Tenant: a.ID, Kind: "test.tamper", Actor: "attacker", At: env.Clock.Now().UnixMilli(),
			Ops: []storage.Op{{Type: storage.OpPut, Key: storage.K("audit").AddUint(e.Seq), Value: val, Version: 1, Stamp: e.Seq}}})
		if err != nil || res.Err != nil {
			t.Fatalf("tamper: %v %v", err, res.Err)
		}
	}
	storeEntry(victim, []byte(strings.Replace(string(victim.Payload), `"action":"`, `"action":"forged.`, 1)))
	if again, _ := env.Service.ReadAudit(a.ID); string(again.Entries[4].Payload) == string(victim.Payload) {
		t.Fatal("the tampering did not reach the store")
	}
	if v := verify(); v.OK || v.FirstBad != victim.Seq || v.Problem == "" {
		t.Fatalf("altered entry %d: %+v", victim.Seq, v)
	}
	if n := len(list("action=audit.verify").Items); n != 2 {
		t.Fatalf("%d verifications audited, want 2", n)
	}
	storeEntry(victim, victim.Payload) // put back: the chain holds again
	if v := verify(); !v.OK {
		t.Fatalf("restored chain: %+v", v)
	}
	gone := raw[7]
	if res, err := env.Log.Propose(t.Context(), &storage.Command{RequestID: uuid.NewString(), Tenant: a.ID, Kind: "test.tamper", Actor: "attacker", At: env.Clock.Now().UnixMilli(),
		Ops: []storage.Op{{Type: storage.OpDelete, Key: storage.K("audit").AddUint(gone.Seq)}}}); err != nil || res.Err != nil {
		t.Fatalf("delete: %v %v", err, res.Err)
	}
	if v := verify(); v.OK || v.FirstBad != gone.Seq {
		t.Fatalf("removed entry %d: %+v", gone.Seq, v)
	}
}

func hexDecode(s string) ([]byte, error) {
	out := make([]byte, len(s)/2)
	for i := range out {
		var b byte
		for _, c := range s[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				b |= byte(c-'a') + 10
			}
		}
		out[i] = b
	}
	return out, nil
}

// TestInvitationResendAndRevokeByMail: a resent invitation arrives by mail
// with a new link that replaces the old one; a revoked one cannot be
// resent or accepted; every step is audited.
func TestInvitationResendAndRevokeByMail(t *testing.T) {
	env := newMailEnv(t)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	_, verifyTok := env.lastMail(t, "olive@acme.test", "Confirm your email")
	if r := env.Do("POST", "/api/v1/auth/verify-email", "", map[string]any{"token": verifyTok}); r.Status != http.StatusNoContent {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	r := env.Do("POST", "/api/v1/invitations", a.Token, map[string]any{"email": "bob@acme.test", "role": "member"})
	if r.Status != http.StatusCreated || r.Map(t)["token"] != nil {
		t.Fatalf("invite: %d %s", r.Status, r.Body)
	}
	invID := r.Map(t)["id"].(string)
	_, first := env.lastMail(t, "bob@acme.test", "invited you")
	env.Clock.Advance(time.Minute)
	r = env.Do("POST", "/api/v1/invitations/"+invID+"/resend", a.Token, nil)
	if r.Status != http.StatusOK || r.Map(t)["status"] != "pending" || r.Map(t)["token"] != nil {
		t.Fatalf("resend: %d %s", r.Status, r.Body)
	}
	m, second := env.lastMail(t, "bob@acme.test", "Reminder")
	if first == second || !strings.Contains(m.HTML, "Accept the invitation") {
		t.Fatalf("the resent mail carries the old link or no button")
	}
	wantProblem(t, env.Do("POST", "/api/v1/invitations/"+first+"/accept", "", map[string]any{"name": "Bob", "password": "bob's long password"}), 404, "not_found", "the replaced link")
	if r := env.Do("POST", "/api/v1/invitations/"+second+"/accept", "", map[string]any{"name": "Bob", "password": "bob's long password"}); r.Status != http.StatusCreated {
		t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
	wantProblem(t, env.Do("POST", "/api/v1/invitations/"+invID+"/resend", a.Token, nil), 409, "invitation_closed", "resend an accepted invitation")

	carol := env.Create("/api/v1/invitations", a.Token, map[string]any{"email": "carol@acme.test"})
	_, carolTok := env.lastMail(t, "carol@acme.test", "invited you")
	if r := env.Do("DELETE", "/api/v1/invitations/"+carol, a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d", r.Status)
	}
	wantProblem(t, env.Do("POST", "/api/v1/invitations/"+carol+"/resend", a.Token, nil), 409, "invitation_closed", "resend a revoked invitation")
	wantProblem(t, env.Do("POST", "/api/v1/invitations/"+carolTok+"/accept", "", map[string]any{"name": "Carol", "password": "carol's long password"}), 404, "not_found", "a revoked link")

	es := auditEntries(t, env.Env, a.ID)
	for action, want := range map[string]int{"invitation.create": 2, "invitation.resend": 1, "invitation.accept": 1, "invitation.revoke": 1} {
		if n := countAction(es, action, nil); n != want {
			t.Errorf("%d %s entries, want %d", n, action, want)
		}
	}
	for _, e := range es {
		if strings.Contains(string(mustMarshal(t, e)), "bob@acme.test") {
			t.Fatalf("an audit entry carries the invitee's address: %+v", e)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecoveryCodesThrottleAndAdminReset: recovery codes are counted,
// sign a session in as recovery_code, are regenerated with a code or the
// password; wrong codes and passwords in these checks are throttled like
// sign-in (with the lock mail); an Owner resets a member's second factor,
// which ends their sessions and tells them by mail.
func TestRecoveryCodesThrottleAndAdminReset(t *testing.T) {
	env := newMailEnv(t)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	_, verifyTok := env.lastMail(t, "olive@acme.test", "Confirm your email")
	env.Do("POST", "/api/v1/auth/verify-email", "", map[string]any{"token": verifyTok})
	env.Create("/api/v1/invitations", a.Token, map[string]any{"email": "bob@acme.test", "role": "member"})
	_, inviteTok := env.lastMail(t, "bob@acme.test", "invited you")
	r := env.Do("POST", "/api/v1/invitations/"+inviteTok+"/accept", "", map[string]any{"name": "Bob", "password": "bob's long password"})
	if r.Status != http.StatusCreated {
		t.Fatalf("accept: %d %s", r.Status, r.Body)
	}
	bobID := r.Map(t)["owner"].(map[string]any)["id"].(string)
	bob := r.Map(t)["access_token"].(string)

	r = env.Do("POST", "/api/v1/me/mfa/totp", bob, map[string]any{"password": "bob's long password"})
	secret := r.Map(t)["secret"].(string)
	r = env.Do("POST", "/api/v1/me/mfa/totp/confirm", bob, map[string]any{"code": totpAt(t, secret, env.Clock.Now())})
	var codes []string
	for _, c := range r.Map(t)["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	remaining := func(tok string) float64 {
		t.Helper()
		return env.Do("GET", "/api/v1/me", tok, nil).Map(t)["recovery_codes_remaining"].(float64)
	}
	if n := remaining(bob); n != 10 {
		t.Fatalf("%v recovery codes remaining, want 10", n)
	}
	login := func() string {
		t.Helper()
		r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": "bob@acme.test", "password": "bob's long password"})
		if r.Map(t)["mfa_required"] != true {
			t.Fatalf("login: %s", r.Body)
		}
		return r.Map(t)["mfa_token"].(string)
	}
	// A wrong code: 401 problem, audited.
	wantProblem(t, env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": login(), "code": "000000"}), 401, "invalid_mfa", "a wrong code")
	// A recovery code signs in once, and the session says so.
	r = env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": login(), "recovery_code": codes[0]})
	if r.Status != http.StatusOK {
		t.Fatalf("recovery sign-in: %d %s", r.Status, r.Body)
	}
	viaRecovery := r.Map(t)["access_token"].(string)
	var sessions struct{ Items []struct{ Method string } }
	env.Do("GET", "/api/v1/me/sessions", viaRecovery, nil).JSON(t, &sessions)
	if sessions.Items[0].Method != "password+recovery_code" {
		t.Fatalf("session method %q", sessions.Items[0].Method)
	}
	if n := remaining(bob); n != 9 {
		t.Fatalf("%v recovery codes remaining, want 9", n)
	}
	// Regenerate: nothing, a wrong code, then the password.
	wantProblem(t, env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{}), 422, "required", "regenerate without proof")
	wantProblem(t, env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"code": "000000"}), 403, "invalid_code", "regenerate with a wrong code")
	r = env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"password": "bob's long password"})
	if r.Status != http.StatusOK || len(r.Map(t)["recovery_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", r.Status, r.Body)
	}
	fresh := r.Map(t)["recovery_codes"].([]any)[0].(string)
	wantProblem(t, env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": login(), "recovery_code": codes[1]}), 401, "invalid_mfa", "an old recovery code")
	env.Clock.Advance(time.Minute)
	r = env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"code": totpAt(t, secret, env.Clock.Now())})
	if r.Status != http.StatusOK {
		t.Fatalf("regenerate with a code: %d %s", r.Status, r.Body)
	}
	// The same code does not work twice.
	wantProblem(t, env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"code": totpAt(t, secret, env.Clock.Now())}), 403, "invalid_code", "a code used again")
	wantProblem(t, env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": login(), "recovery_code": fresh}), 401, "invalid_mfa", "a replaced recovery code")

	// A good sign-in clears the count of wrong codes so far.
	env.Clock.Advance(time.Minute)
	r = env.Do("POST", "/api/v1/auth/mfa", "", map[string]any{"mfa_token": login(), "code": totpAt(t, secret, env.Clock.Now())})
	if r.Status != http.StatusOK {
		t.Fatalf("sign-in: %d %s", r.Status, r.Body)
	}
	bob = r.Map(t)["access_token"].(string)
	// Throttling: five wrong codes in disable pause the second factor, even
	// for the right code; ten wrong passwords pause the password and mail
	// the account's owner.
	for range 5 {
		wantProblem(t, env.Do("POST", "/api/v1/me/mfa/disable", bob, map[string]any{"password": "bob's long password", "code": "000000"}), 403, "invalid_code", "disable with a wrong code")
	}
	wantProblem(t, env.Do("POST", "/api/v1/me/mfa/disable", bob, map[string]any{"password": "bob's long password", "code": totpAt(t, secret, env.Clock.Now())}), 403, "too_many_attempts", "disable while paused")
	for range 10 {
		wantProblem(t, env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"password": "not bob's password"}), 403, "invalid_credentials", "regenerate with a wrong password")
	}
	wantProblem(t, env.Do("POST", "/api/v1/me/mfa/recovery-codes", bob, map[string]any{"password": "bob's long password"}), 403, "too_many_attempts", "regenerate while the password is paused")
	if m, _ := env.lastMail(t, "bob@acme.test", "paused"); !strings.Contains(m.Text, "reset your password") {
		t.Fatalf("lock mail: %q", m.Text)
	}

	// The Owner resets Bob's second factor: his sessions end, he is told.
	wantProblem(t, env.Do("DELETE", "/api/v1/members/"+a.OwnerID+"/mfa", a.Token, nil), 403, "forbidden", "reset one's own")
	if r := env.Do("DELETE", "/api/v1/members/"+bobID+"/mfa", a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("admin reset: %d %s", r.Status, r.Body)
	}
	wantProblem(t, env.Do("GET", "/api/v1/me", bob, nil), 401, "invalid_token", "a session after the reset")
	if m, _ := env.lastMail(t, "bob@acme.test", "second factor"); !strings.Contains(m.Text, "Acme Owner") {
		t.Fatalf("reset mail: %q", m.Text)
	}
	wantProblem(t, env.Do("DELETE", "/api/v1/members/"+bobID+"/mfa", a.Token, nil), 409, "mfa_not_enabled", "reset twice")

	es := auditEntries(t, env.Env, a.ID)
	checks := map[string]int{
		"auth.mfa_failed":         countAction(es, "auth.mfa_failed", nil),
		"auth.mfa_locked":         countAction(es, "auth.mfa_locked", nil),
		"auth.reauth_failed":      countAction(es, "auth.reauth_failed", nil),
		"auth.account_locked":     countAction(es, "auth.account_locked", nil),
		"mfa.recovery_codes":      countAction(es, "mfa.recovery_codes", nil),
		"member.mfa_reset":        countAction(es, "member.mfa_reset", func(e engine.AuditEntry) bool { return e.TargetID == bobID && e.Actor == a.OwnerID }),
		"auth.login via recovery": countAction(es, "auth.login", func(e engine.AuditEntry) bool { return e.Detail["method"] == "password+recovery_code" }),
	}
	for what, n := range checks {
		if n == 0 {
			t.Errorf("no %s entry in the trail", what)
		}
	}
}

// TestRefusedTokensAreAuditedProblems: reused, expired and malformed links
// answer 4xx problem+json that names no account; the first two are audited
// in the workspace that issued them, the malformed one writes nothing.
func TestRefusedTokensAreAuditedProblems(t *testing.T) {
	env := newMailEnv(t)
	a := env.Signup("acme", "Acme", "olive@acme.test")
	magic := func() string {
		t.Helper()
		if r := env.Do("POST", "/api/v1/auth/magic-link", "", map[string]any{"workspace": "acme", "email": "olive@acme.test"}); r.Status != http.StatusAccepted {
			t.Fatalf("magic link: %d %s", r.Status, r.Body)
		}
		_, tok := env.lastMail(t, "olive@acme.test", "sign-in link")
		return tok
	}
	tok := magic()
	if r := env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": tok}); r.Status != http.StatusOK {
		t.Fatalf("magic link: %d %s", r.Status, r.Body)
	}
	refused := func(reason string) int {
		return countAction(auditEntries(t, env.Env, a.ID), "auth.token_refused", func(e engine.AuditEntry) bool { return e.Detail["reason"] == reason })
	}
	r := env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": tok})
	wantProblem(t, r, 401, "invalid_token", "a reused magic link")
	if strings.Contains(string(r.Body), "olive") || refused("reused") != 1 {
		t.Fatalf("reused link: %s, %d audited", r.Body, refused("reused"))
	}
	late := magic()
	env.Clock.Advance(16 * time.Minute)
	wantProblem(t, env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": late}), 401, "invalid_token", "an expired magic link")
	if refused("expired") != 1 {
		t.Fatal("the expired link was not audited")
	}
	// A reset link used twice.
	env.Do("POST", "/api/v1/auth/password-reset", "", map[string]any{"workspace": "acme", "email": "olive@acme.test"})
	_, reset := env.lastMail(t, "olive@acme.test", "Reset")
	if r := env.Do("POST", "/api/v1/auth/password-reset/confirm", "", map[string]any{"token": reset, "password": "a brand new secret"}); r.Status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
	wantProblem(t, env.Do("POST", "/api/v1/auth/password-reset/confirm", "", map[string]any{"token": reset, "password": "another new secret"}), 401, "invalid_token", "a reused reset link")
	if refused("reused") != 2 {
		t.Fatal("the reused reset link was not audited")
	}
	before := len(auditEntries(t, env.Env, a.ID))
	for _, bad := range []string{"tfl_" + strings.ReplaceAll(a.ID, "-", "") + "_forged", "garbage", strings.Repeat("x", 200)} {
		wantProblem(t, env.Do("POST", "/api/v1/auth/magic-link/verify", "", map[string]any{"token": bad}), 401, "invalid_token", "a malformed link")
	}
	if after := len(auditEntries(t, env.Env, a.ID)); after != before {
		t.Fatalf("malformed links wrote %d audit entries into the workspace they named", after-before)
	}
}

// TestForwardedForNeedsATrustedProxy: X-Forwarded-For names the client only
// when the connection comes from a configured proxy; otherwise a client
// could pick a new address for every guess and never meet the per-address
// sign-in limit (and write any address into the audit trail).
func TestForwardedForNeedsATrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		trusted []string
		refused int
	}{{nil, 3}, {[]string{"127.0.0.1"}, 0}} {
		env := apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{RateLimits: true, PublicPerIPMinute: 3, TrustedProxies: tc.trusted})
		env.Signup("acme", "Acme", "olive@acme.test")
		refused := 0
		for i := range 5 {
			r := env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": "acme", "email": "olive@acme.test", "password": "wrong password"},
				"X-Forwarded-For", "10.0.0."+string(rune('1'+i)))
			if r.Status == http.StatusTooManyRequests {
				refused++
			}
		}
		// Signup used one of the address's 3 public writes.
		if refused != tc.refused {
			t.Errorf("trusted proxies %v: %d of 5 sign-ins with changing X-Forwarded-For refused, want %d", tc.trusted, refused, tc.refused)
		}
	}
}

// TestIPAllowlist: an Enterprise workspace limits sign-in and API access to
// its networks; the list must include the address that sets it; other plans
// cannot set one, and a downgraded workspace's list is not enforced.
func TestIPAllowlist(t *testing.T) {
	// The test's requests come from 127.0.0.1, a trusted proxy here, so
	// X-Forwarded-For plays the client's address.
	env := apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{TrustedProxies: []string{"127.0.0.1"}})
	a := env.Signup("acme", "Acme", "olive@acme.test")
	inside, outside := []string{"X-Forwarded-For", "10.1.2.3"}, []string{"X-Forwarded-For", "192.0.2.7"}
	set := func(list []string, hdr []string) *apitest.Response {
		return env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"ip_allowlist": list}, hdr...)
	}
	wantProblem(t, set([]string{"10.0.0.0/8"}, inside), 403, "plan_feature_unavailable", "allowlist on Free")
	setPlan(t, env, "acme", "enterprise")
	wantProblem(t, set([]string{"10.0.0.0/8"}, outside), 422, "ip_allowlist_excludes_you", "a list without the caller")
	wantProblem(t, set([]string{"10.0.0.0/33"}, inside), 422, "invalid_network", "a bad CIDR")
	r := set([]string{"10.0.0.0/8", "2001:db8::1"}, inside)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"ip_allowlist":["10.0.0.0/8","2001:db8::1/128"]`) {
		t.Fatalf("set: %d %s", r.Status, r.Body)
	}
	key := env.Do("POST", "/api/v1/api-keys", a.Token, map[string]any{"name": "ci", "scopes": []string{"read"}}, inside...).Map(t)["token"].(string)
	for _, tok := range []string{a.Token, key} {
		if r := env.Do("GET", "/api/v1/projects", tok, nil, inside...); r.Status != http.StatusOK {
			t.Fatalf("from inside: %d %s", r.Status, r.Body)
		}
		wantProblem(t, env.Do("GET", "/api/v1/projects", tok, nil, outside...), 403, "ip_not_allowed", "a request from outside")
	}
	login := map[string]any{"workspace": "acme", "email": "olive@acme.test", "password": "password-acme"}
	wantProblem(t, env.Do("POST", "/api/v1/auth/login", "", login, outside...), 403, "ip_not_allowed", "sign-in from outside")
	if r := env.Do("POST", "/api/v1/auth/login", "", login, inside...); r.Status != http.StatusOK {
		t.Fatalf("sign-in from inside: %d %s", r.Status, r.Body)
	}
	// One per credential, and the sign-in from outside (in the workspace
	// it named, like any failed sign-in to it).
	if n := countAction(auditEntries(t, env, a.ID), "auth.ip_refused", nil); n != 3 {
		t.Fatalf("%d refusals audited, want 3 (one per credential, one for the sign-in)", n)
	}
	if n := countAction(auditEntries(t, env, a.ID), "auth.ip_refused", func(e engine.AuditEntry) bool {
		return e.Detail["during"] == "sign-in" && e.TargetID == a.OwnerID && e.Actor == "anonymous"
	}); n != 1 {
		t.Fatalf("the sign-in from outside: %d entries naming the account", n)
	}
	// Downgraded: the list stays but is not enforced.
	setPlan(t, env, "acme", "professional")
	if r := env.Do("GET", "/api/v1/projects", a.Token, nil, outside...); r.Status != http.StatusOK {
		t.Fatalf("after a downgrade: %d %s", r.Status, r.Body)
	}
	// Clearing is allowed on any plan.
	if r := set([]string{}, outside); r.Status != http.StatusOK {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}
}

// TestHSTSUnderTLS: answers over https (or with Secure cookies, behind a
// TLS proxy) carry Strict-Transport-Security; plain http does not.
func TestHSTSUnderTLS(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	if h := env.Do("GET", "/healthz", "", nil).Header.Get("Strict-Transport-Security"); h != "" {
		t.Fatalf("HSTS over plain http: %q", h)
	}
	srv := httptest.NewTLSServer(env.API.Handler())
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
		t.Fatalf("HSTS over https: %q", h)
	}
	proxied := apitest.NewWithConfig(t, engine.ModeCloud, httpapi.Config{SecureCookies: true})
	if h := proxied.Do("GET", "/healthz", "", nil).Header.Get("Strict-Transport-Security"); h == "" {
		t.Fatal("no HSTS behind a TLS proxy (secure cookies)")
	}
}

// TestCORSPerWorkspace: a workspace lists its own web origins; a preflight
// from a listed origin is answered, an unlisted one is not; an actual
// request gets Access-Control-Allow-Origin only for the caller's own
// workspace's origins.
func TestCORSPerWorkspace(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	b := env.Signup("beta", "Beta", "owner@beta.test")
	wantProblem(t, env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"cors_origins": []string{"ftp://app.alpha.test"}}), 422, "invalid_origin", "a bad origin")
	wantProblem(t, env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"cors_origins": []string{"https://app.alpha.test/path"}}), 422, "invalid_origin", "an origin with a path")
	r := env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"cors_origins": []string{"https://APP.alpha.test"}})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"cors_origins":["https://app.alpha.test"]`) {
		t.Fatalf("set: %d %s", r.Status, r.Body)
	}
	pre := func(origin string) *apitest.Response {
		return env.Do("OPTIONS", "/api/v1/projects", "", nil, "Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	}
	if r := pre("https://app.alpha.test"); r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "https://app.alpha.test" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from a listed origin: %d %v", r.Status, r.Header)
	}
	if r := pre("https://evil.test"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from an unlisted origin allowed: %v", r.Header)
	}
	get := func(tok, origin string) string {
		r := env.Do("GET", "/api/v1/projects", tok, nil, "Origin", origin)
		if r.Status != http.StatusOK {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		return r.Header.Get("Access-Control-Allow-Origin")
	}
	if got := get(a.Token, "https://app.alpha.test"); got != "https://app.alpha.test" {
		t.Fatalf("alpha's own origin: %q", got)
	}
	if got := get(b.Token, "https://app.alpha.test"); got != "" {
		t.Fatalf("beta's credential from alpha's origin allowed: %q", got)
	}
	if got := get(a.Token, "https://evil.test"); got != "" {
		t.Fatalf("an unlisted origin allowed: %q", got)
	}
	// Removing the origin closes it again.
	env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"cors_origins": []string{}})
	if r := pre("https://app.alpha.test"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight after removal: %v", r.Header)
	}
}

// TestRenameSignsInByTheNewSlug: a slug change answers once the platform
// follows it (the engine claims the slug on the platform, changes the
// workspace record on its own route, then finalizes): sign-in by the new
// slug works at once, the old one is free, a taken slug is a 409.
func TestRenameSignsInByTheNewSlug(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("alpha", "Alpha", "owner@alpha.test")
	env.Signup("beta", "Beta", "owner@beta.test")
	wantProblem(t, env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"slug": "beta"}), 409, "slug_taken", "a taken slug")
	r := env.Do("PATCH", "/api/v1/workspace", a.Token, map[string]any{"slug": "alpha-two", "name": "Alpha Two"})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"slug":"alpha-two"`) {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	login := func(slug string) int {
		return env.Do("POST", "/api/v1/auth/login", "", map[string]any{"workspace": slug, "email": "owner@alpha.test", "password": "password-alpha"}).Status
	}
	if s := login("alpha-two"); s != http.StatusOK {
		t.Fatalf("sign-in by the new slug: %d", s)
	}
	if s := login("alpha"); s == http.StatusOK {
		t.Fatal("sign-in by the old slug")
	}
	env.Signup("alpha", "Alpha Again", "owner@alpha-again.test") // the old slug is free
}
