package engine_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
	"github.com/teamflow/teamflow/engine/mail"
	"github.com/teamflow/teamflow/engine/mail/mailtest"
	"github.com/teamflow/teamflow/internal/figures"
)

// mailWorld is a workspace on an engine whose outbox mail goes through the
// real SMTP client to a real SMTP server in the test.
type mailWorld struct {
	*world
	smtp *mailtest.Server
}

func newMailWorld(t *testing.T) *mailWorld {
	t.Helper()
	srv := mailtest.Start(t)
	m, err := mail.New(mail.Config{Host: srv.Host, Port: srv.Port, Security: "none", From: "TeamFlow <teamflow@acme.test>"})
	if err != nil {
		t.Fatal(err)
	}
	env := enginetest.NewWithMailer(t, engine.Config{Mode: engine.ModeCloud, BaseURL: "https://tf.acme.test"}, m)
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := env.Service.Signup(ctx, engine.CreateWorkspaceInput{
		WorkspaceName: "Acme", WorkspaceSlug: "acme", Name: "Olive Owner", Email: "olive@acme.test", Password: "correct horse battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.Service.Authenticate(ctx, c.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return &mailWorld{world: &world{env: env, svc: env.Service, owner: p, ws: c.Workspace}, smtp: srv}
}

// deliver runs the outbox dispatcher once.
func (w *mailWorld) deliver(t *testing.T) engine.DeliveryReport {
	t.Helper()
	rep, err := w.svc.DeliverOutbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var tokenRE = regexp.MustCompile(`token=(tf[a-z]_[0-9a-f]{32}_[A-Za-z0-9_-]+)|/invite/(tfi_[0-9a-f]{32}_[A-Za-z0-9_-]+)`)

// tokenIn finds the single-use token in a mail's text.
func tokenIn(t *testing.T, m mailtest.Mail) string {
	t.Helper()
	sm := tokenRE.FindStringSubmatch(m.Text)
	if sm == nil {
		t.Fatalf("no link in mail %q:\n%s", m.Subject, m.Text)
	}
	return sm[1] + sm[2]
}

func TestVerificationAndInvitationByMail(t *testing.T) {
	w := newMailWorld(t)
	if _, err := w.svc.Invite(ctx, w.owner, "bob@acme.test", engine.RoleMember); code(err) != "email_unverified" {
		t.Fatalf("an unverified Owner invited: %v", err)
	}
	w.deliver(t)
	verify := w.smtp.WaitFor(t, "olive@acme.test", 5*time.Second)
	if !strings.Contains(verify.Subject, "Confirm your email") || !strings.Contains(verify.HTML, "Confirm my email") {
		t.Fatalf("verification mail: %q", verify.Subject)
	}
	if err := w.svc.VerifyEmail(ctx, tokenIn(t, verify)); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.VerifyEmail(ctx, tokenIn(t, verify)); code(err) != "invalid_token" {
		t.Fatalf("verification link worked twice: %v", err)
	}
	inv, err := w.svc.Invite(ctx, w.owner, "bob@acme.test", engine.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Token != "" || inv.Link != "" {
		t.Fatal("with mail configured, the invitation link went to the admin too")
	}
	w.deliver(t)
	m := w.smtp.WaitFor(t, "bob@acme.test", 5*time.Second)
	if !strings.Contains(m.Subject, "Olive Owner invited you to Acme") {
		t.Fatalf("invitation subject %q", m.Subject)
	}
	if !strings.HasSuffix(m.MessageID, "@tf.acme.test>") {
		t.Fatalf("Message-ID %q is not the outbox row's", m.MessageID)
	}
	c, err := w.svc.AcceptInvitation(ctx, engine.AcceptInput{Token: tokenIn(t, m), Name: "Bob", Password: "bob's long password"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner.Email != "bob@acme.test" {
		t.Fatalf("accepted as %s", c.Owner.Email)
	}
	// Nothing is left to deliver; a second run sends nothing again.
	if rep := w.deliver(t); rep.Sent != 0 {
		t.Fatalf("outbox delivered again: %+v", rep)
	}
}

// TestOutboxRetriesKeepTheMessageID: a refused delivery is retried with
// backoff on the injected clock, and every attempt carries the same
// Message-ID (RELIABILITY D3: side_effects_with_new_idempotency_key=0).
func TestOutboxRetriesKeepTheMessageID(t *testing.T) {
	w := newMailWorld(t)
	w.smtp.FailNext(3)
	var retried int
	for range 3 {
		rep := w.deliver(t)
		retried += rep.Retried
		if rep.Sent != 0 {
			t.Fatalf("delivered while the server refused: %+v", rep)
		}
		// Not due yet: nothing happens until the backoff has passed.
		if rep := w.deliver(t); rep.Retried+rep.Sent != 0 {
			t.Fatalf("retried before its backoff: %+v", rep)
		}
		w.env.Clock.Advance(time.Hour)
	}
	if rep := w.deliver(t); rep.Sent != 1 {
		t.Fatalf("not delivered after the server recovered: %+v", rep)
	}
	mails := w.smtp.To("olive@acme.test")
	if len(mails) != 1 || retried != 3 {
		t.Fatalf("%d mails delivered after %d retries, want 1 after 3", len(mails), retried)
	}
	figures.Report(t, "D3", 0, []figures.Figure{
		figures.Eq("side_effects_lost", float64(1-len(mails)), 0),
		figures.Guard("retries", float64(retried), 3),
	})
}

func TestPasswordResetAndMagicLink(t *testing.T) {
	w := newMailWorld(t)
	// Same answer for an unknown account; mail only for the real one.
	if err := w.svc.RequestPasswordReset(ctx, "acme", "nobody@acme.test"); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.RequestPasswordReset(ctx, "acme", "olive@acme.test"); err != nil {
		t.Fatal(err)
	}
	other, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	w.deliver(t)
	if n := len(w.smtp.To("nobody@acme.test")); n != 0 {
		t.Fatalf("a reset mail went to an unknown address")
	}
	var reset mailtest.Mail
	for _, m := range w.smtp.To("olive@acme.test") {
		if strings.Contains(m.Subject, "Reset") {
			reset = m
		}
	}
	tok := tokenIn(t, reset)
	if err := w.svc.ResetPassword(ctx, tok, "a brand new secret"); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ResetPassword(ctx, tok, "another new secret"); code(err) != "invalid_token" {
		t.Fatalf("reset link worked twice: %v", err)
	}
	if _, err := w.svc.Authenticate(ctx, other.Tokens.AccessToken); err == nil {
		t.Fatal("a session survived the password reset")
	}
	if _, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "a brand new secret"}); err != nil {
		t.Fatal(err)
	}

	// Magic links: single use, 15 minutes.
	if err := w.svc.RequestMagicLink(ctx, "acme", "olive@acme.test"); err != nil {
		t.Fatal(err)
	}
	w.deliver(t)
	var magic mailtest.Mail
	for _, m := range w.smtp.To("olive@acme.test") {
		if strings.Contains(m.Subject, "sign-in link") {
			magic = m
		}
	}
	res, err := w.svc.SignInWithMagicLink(ctx, tokenIn(t, magic), engine.ClientInfo{})
	if err != nil || res.Tokens == nil {
		t.Fatalf("magic link: %v", err)
	}
	if _, err := w.svc.SignInWithMagicLink(ctx, tokenIn(t, magic), engine.ClientInfo{}); code(err) != "invalid_token" {
		t.Fatalf("magic link worked twice: %v", err)
	}
	if err := w.svc.RequestMagicLink(ctx, "acme", "olive@acme.test"); err != nil {
		t.Fatal(err)
	}
	w.deliver(t)
	mails := w.smtp.To("olive@acme.test")
	late := mails[len(mails)-1]
	w.env.Clock.Advance(16 * time.Minute)
	if _, err := w.svc.SignInWithMagicLink(ctx, tokenIn(t, late), engine.ClientInfo{}); code(err) != "invalid_token" {
		t.Fatalf("a 16-minute-old magic link worked: %v", err)
	}
}

// TestTOTP is RELIABILITY A5 on the injected clock.
func TestTOTP(t *testing.T) {
	w := newMailWorld(t)
	en, err := w.svc.BeginTOTP(ctx, w.owner, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	codeAt := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(en.Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := func() time.Time { return w.env.Clock.Now() }
	recovery, err := w.svc.ConfirmTOTP(ctx, w.owner, codeAt(now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes", len(recovery))
	}
	login := func() string {
		t.Helper()
		res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
		if err != nil || !res.MFARequired || res.Tokens != nil {
			t.Fatalf("login with a second factor: %+v %v", res, err)
		}
		return res.MFAToken
	}
	// The code used at enrolment is spent: the same step is refused.
	w.env.Clock.Advance(time.Second)
	reuse := 0
	if _, err := w.svc.CompleteMFA(ctx, login(), codeAt(now()), "", engine.ClientInfo{}); err == nil {
		reuse++
	}
	// Steps t−2 … t+2: only t−1, t, t+1 may pass; each step once.
	w.env.Clock.Advance(5 * time.Minute)
	outside := 0
	for _, d := range []int{-2, 2} {
		if _, err := w.svc.CompleteMFA(ctx, login(), codeAt(now().Add(time.Duration(d)*30*time.Second)), "", engine.ClientInfo{}); err == nil {
			outside++
		}
	}
	if _, err := w.svc.CompleteMFA(ctx, login(), codeAt(now()), "", engine.ClientInfo{}); err != nil {
		t.Fatalf("the current code: %v", err)
	}
	if _, err := w.svc.CompleteMFA(ctx, login(), codeAt(now()), "", engine.ClientInfo{}); err == nil {
		reuse++
	}
	// A recovery code works once.
	recoveryReuse := 0
	if _, err := w.svc.CompleteMFA(ctx, login(), "", recovery[0], engine.ClientInfo{}); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, err := w.svc.CompleteMFA(ctx, login(), "", recovery[0], engine.ClientInfo{}); err == nil {
		recoveryReuse++
	}
	// A password reset does not bypass the second factor.
	if err := w.svc.RequestPasswordReset(ctx, "acme", "olive@acme.test"); err != nil {
		t.Fatal(err)
	}
	w.deliver(t)
	mails := w.smtp.To("olive@acme.test")
	if err := w.svc.ResetPassword(ctx, tokenIn(t, mails[len(mails)-1]), "correct horse battery 2"); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery 2"})
	resetBypass := 0
	if err != nil || !res.MFARequired {
		resetBypass = 1
	}
	// Brute force: after 5 wrong codes the second factor pauses 30 minutes,
	// even for the right code.
	w.env.Clock.Advance(time.Minute)
	tok := res.MFAToken
	for range 5 {
		if _, err := w.svc.CompleteMFA(ctx, tok, "000000", "", engine.ClientInfo{}); err == nil {
			t.Fatal("a wrong code passed")
		}
		tok = func() string {
			r, _ := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery 2"})
			return r.MFAToken
		}()
	}
	if _, err := w.svc.CompleteMFA(ctx, tok, codeAt(now()), "", engine.ClientInfo{}); err == nil {
		t.Fatal("the second factor did not pause after 5 wrong codes")
	}
	attemptsPerDay := 5.0 * (24 * 60 / 30) // 5 guesses per 30-minute pause
	figures.Report(t, "A5", 0, []figures.Figure{
		figures.Eq("reuse_accepted", float64(reuse), 0),
		figures.Eq("accepted_outside_±1_step", float64(outside), 0),
		figures.Eq("reset_bypasses_mfa", float64(resetBypass), 0),
		figures.Eq("recovery_code_reuse_accepted", float64(recoveryReuse), 0),
		figures.Le("p_guess_24h", attemptsPerDay*3/1e6, 1e-3),
	})
}

// TestLoginThrottleAndEnumeration is RELIABILITY A6.
func TestLoginThrottleAndEnumeration(t *testing.T) {
	w := newMailWorld(t)
	good := engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"}
	before := w.svc.PasswordChecks()
	for i := range 1000 {
		bad := good
		bad.Password = "wrong guess " + string(rune('a'+i%26))
		if _, err := w.svc.Login(ctx, bad); code(err) != "invalid_credentials" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	evaluated := w.svc.PasswordChecks() - before
	// While paused, even the right password is refused, with the same answer.
	_, errLocked := w.svc.Login(ctx, good)
	_, errUnknown := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "nobody@acme.test", Password: "whatever it is"})
	_, errNoWS := w.svc.Login(ctx, engine.LoginInput{Workspace: "nope", Email: "olive@acme.test", Password: "whatever it is"})
	// Every failed sign-in to the workspace is in its trail: the 1,000
	// guesses (those during the pause too), the right password while
	// paused, and the unknown email. The unknown workspace has no trail:
	// it is counted.
	chain, err := w.svc.ReadAudit(w.owner.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range chain.Entries {
		if bytes.Contains(e.Payload, []byte(`"action":"auth.login_failed"`)) {
			failed++
		}
	}
	if failed != 1002 {
		t.Fatalf("%d failed sign-ins audited, want 1002", failed)
	}
	if got := w.svc.UnauditedRefusals(); len(got) != 1 || got[0] != (engine.RefusalCount{Purpose: "login", Reason: "unknown_workspace", Count: 1}) {
		t.Fatalf("unaudited refusals %+v, want the unknown workspace once", got)
	}
	signal := 0
	for _, e := range []error{errUnknown, errNoWS} {
		if code(e) != code(errLocked) || !errors.Is(e, engine.ErrUnauthenticated) {
			signal++
		}
	}
	w.deliver(t)
	locked := 0
	for _, m := range w.smtp.To("olive@acme.test") {
		if strings.Contains(m.Subject, "paused") {
			locked++
		}
	}
	if locked != 1 {
		t.Fatalf("%d lock mails to the account's owner, want 1", locked)
	}
	// The pause ends.
	w.env.Clock.Advance(16 * time.Minute)
	if _, err := w.svc.Login(ctx, good); err != nil {
		t.Fatalf("login after the pause: %v", err)
	}
	figures.Report(t, "A6", 0, []figures.Figure{
		figures.Le("attempts_evaluated", float64(evaluated), 10),
		figures.Eq("enumeration_signal", float64(signal), 0),
		figures.Guard("attempts", 1000, 1000),
	})
}

// TestPasswordRules is RELIABILITY A7.
func TestPasswordRules(t *testing.T) {
	w := newWorld(t)
	try := func(pw string) error {
		_, err := w.svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "P", WorkspaceSlug: "pw-" + strings.ToLower(strings.ReplaceAll(pw[:min(len(pw), 6)], " ", "x")), Name: "P", Email: "p@p.test", Password: pw})
		if err != nil && code(err) == "slug_taken" {
			return nil
		}
		return err
	}
	lengthOK := map[int]bool{7: false, 8: true, 15: true, 64: true, 128: true, 129: false}
	len64Rejected := 0
	for n, want := range lengthOK {
		pw := strings.Repeat("kq", n)[:n]
		err := try(pw)
		if (err == nil) != want {
			t.Errorf("length %d: %v", n, err)
			if n == 64 {
				len64Rejected++
			}
		}
	}
	common := 0
	for _, pw := range []string{"password", "12345678", "iloveyou", "sunshine", "qwertyuiop", "Password1", "baseball"} {
		if err := try(pw); code(err) != "password_too_common" {
			common++
			t.Errorf("common password %q accepted: %v", pw, err)
		}
	}
	// No composition rules: a long passphrase of lower-case words is fine.
	composition := 0
	if err := try("correct horse battery staple"); err != nil {
		composition++
	}
	// argon2id takes the whole password: two 100-byte passwords sharing
	// their first 72 bytes (the bcrypt truncation trap) are different.
	a, b := strings.Repeat("x", 72)+"first-tail-1234567890123456789", strings.Repeat("x", 72)+"other-tail-1234567890123456789"
	c, err := w.svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "T", WorkspaceSlug: "trunc", Name: "T", Email: "t@t.test", Password: a})
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	collision := 0
	if _, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "trunc", Email: "t@t.test", Password: b}); err == nil {
		collision++
	}
	figures.Report(t, "A7", 0, []figures.Figure{
		figures.Eq("len64_rejected", float64(len64Rejected), 0),
		figures.Eq("common_password_accepted", float64(common), 0),
		figures.Eq("composition_rule_enforced", float64(composition), 0),
		figures.Eq("truncation_collision", float64(collision), 0),
	})
}
