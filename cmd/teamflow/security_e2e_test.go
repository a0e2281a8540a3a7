//go:build e2e

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine/mail/mailtest"
)

var mailTokenRE = regexp.MustCompile(`(tf[a-z]_[0-9a-f]{32}_[A-Za-z0-9_-]+)`)

// TestMailFlowsAndAuditExport drives the real binary with a real SMTP
// server: the verification mail after signup, an invitation delivered by
// mail and accepted, a password reset by mail; then the audit trail is
// exported and verified with `teamflow audit verify`, and a rate-limited
// server answers 429 with its headers.
func TestMailFlowsAndAuditExport(t *testing.T) {
	smtp := mailtest.Start(t)
	dir := t.TempDir()
	anchors := filepath.Join(t.TempDir(), "audit-heads.jsonl")
	s := start(t, dir, "--mode", "cloud", "--mail-host", smtp.Host, "--mail-port", strconv.Itoa(smtp.Port),
		"--mail-security", "none", "--mail-from", "TeamFlow <teamflow@acme.test>", "--audit-export", anchors)
	c := signup(t, s, "acme")
	token := func(to string) string {
		t.Helper()
		m := smtp.WaitFor(t, to, 30*time.Second)
		tok := mailTokenRE.FindString(m.Text)
		if tok == "" {
			t.Fatalf("no link in %q", m.Text)
		}
		return tok
	}
	if p := want(t, c.do("POST", "/api/v1/invitations", map[string]any{"email": "bob@acme.test"}), 403, "invite before verifying"); p["code"] != "email_unverified" {
		t.Fatalf("unverified invite: %v", p)
	}
	want(t, c.do("POST", "/api/v1/auth/verify-email", map[string]any{"token": token("owner@acme.test")}), 204, "verify")
	inv := want(t, c.do("POST", "/api/v1/invitations", map[string]any{"email": "bob@acme.test"}), 201, "invite")
	if inv["token"] != nil {
		t.Fatal("the invitation token went to the admin although mail is configured")
	}
	bob := newClient(t, s.URL)
	accepted := want(t, bob.do("POST", "/api/v1/invitations/"+token("bob@acme.test")+"/accept", map[string]any{"name": "Bob", "password": "bob's own secret"}), 201, "accept")
	if accepted["owner"].(map[string]any)["email"] != "bob@acme.test" {
		t.Fatalf("accepted as %v", accepted["owner"])
	}
	// Password reset: the same answer for an unknown address, a mail for Bob.
	want(t, bob.do("POST", "/api/v1/auth/password-reset", map[string]any{"workspace": "acme", "email": "nobody@acme.test"}), 202, "reset unknown")
	want(t, bob.do("POST", "/api/v1/auth/password-reset", map[string]any{"workspace": "acme", "email": "bob@acme.test"}), 202, "reset")
	before := len(smtp.To("bob@acme.test"))
	deadline := time.Now().Add(30 * time.Second)
	for len(smtp.To("bob@acme.test")) == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the catcher
	}
	resets := smtp.To("bob@acme.test")
	resetTok := mailTokenRE.FindString(resets[len(resets)-1].Text)
	want(t, bob.do("POST", "/api/v1/auth/password-reset/confirm", map[string]any{"token": resetTok, "password": "bob's newer secret"}), 204, "confirm reset")
	want(t, bob.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "bob@acme.test", "password": "bob's newer secret"}), 200, "login with the new password")
	if n := len(smtp.To("nobody@acme.test")); n != 0 {
		t.Fatalf("mail went to an unknown address")
	}

	// The audit trail: export the heads (the job's work, run through the
	// test clock), then verify the chain against them.
	want(t, c.do("POST", "/_test/clock", map[string]any{"advance": "11m"}), 200, "advance clock")
	eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(anchors)
		return strings.Contains(string(b), `"seq"`)
	}, "audit heads exported")
	out, err := exec.Command(binary, "audit", "verify", "acme", "--server", s.URL, "--data", dir, "--anchors", anchors).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestRateLimitsOnTheRealServer: with limits on, an API client past the
// plan's hourly allowance gets 429 with Retry-After and RateLimit headers.
func TestRateLimitsOnTheRealServer(t *testing.T) {
	s := start(t, t.TempDir(), "--mode", "cloud", "--rate-limits", "on")
	c := signup(t, s, "acme")
	var last *resp
	for i := range 1001 {
		last = c.do("GET", "/api/v1/me", nil)
		if last.Status == 429 {
			if i < 999 {
				t.Fatalf("refused after %d requests", i)
			}
			break
		}
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" || last.Header.Get("RateLimit-Limit") != "1000" {
		t.Fatalf("after 1,001 requests: %d %v", last.Status, last.Header)
	}
}
