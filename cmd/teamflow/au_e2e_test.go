//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/teamflow/teamflow/internal/figures"
)

// syncBuffer collects a server's log while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLogsAndAuditHoldNoSecrets is RELIABILITY AU3 and AU4 on the real
// binary at debug level. Every secret a user or the server handles in the
// account flows (passwords right and wrong, access, refresh and MFA
// tokens, an API key, an invitation token, a TOTP seed, recovery codes, a
// websocket ticket, a forged bearer token) is a canary: none may appear in
// the server's log or in the audit trail (AU3). Names carrying CR, LF and
// ANSI escapes (refused) or JSON breakers and line separators (accepted),
// and a path with the same, must leave the log one JSON object per line
// (AU4).
func TestLogsAndAuditHoldNoSecrets(t *testing.T) {
	logs := &syncBuffer{}
	dir := t.TempDir()
	s := startLogging(t, dir, logs, "--mode", "cloud", "--log-level", "debug")
	evil := "Eve\r\n{\"level\":\"ERROR\",\"msg\":\"forged\"}\x1b[31m red\x1b[0m"
	breaker := "Eve \"},{\"level\":\"ERROR\",\"msg\":\"forged\"} \u2028\u2029 \\"
	refused := func(r *resp, what string) {
		t.Helper()
		if r.Status < 400 || r.Status >= 500 {
			t.Fatalf("%s: %d %s", what, r.Status, r.Body)
		}
	}
	password := "Canary-Password-3f9a1c77"
	var canaries []string
	secret := func(v any) string {
		str, _ := v.(string)
		if str == "" {
			t.Fatalf("expected a secret, got %v", v)
		}
		canaries = append(canaries, str)
		return str
	}

	owner := newClient(t, s.URL)
	refused(owner.do("POST", "/api/v1/signup", map[string]any{"workspace_name": "Acme", "workspace_slug": "acme",
		"name": evil, "email": "owner@acme.test", "password": password}), "signup with control characters")
	m := want(t, owner.do("POST", "/api/v1/signup", map[string]any{"workspace_name": "Acme", "workspace_slug": "acme",
		"name": breaker, "email": "owner@acme.test", "password": password}), 201, "signup")
	secret(password)
	owner.token = secret(m["access_token"])
	secret(m["refresh_token"])

	// Sign-in failures and successes, refresh and its reuse.
	other := newClient(t, s.URL)
	wrong := secret("Canary-Wrong-Password-9d2e44")
	want(t, other.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": wrong}), 401, "wrong password")
	m = want(t, other.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": password}), 200, "login")
	secret(m["access_token"])
	refresh := secret(m["refresh_token"])
	m = want(t, other.do("POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": refresh}), 200, "refresh")
	secret(m["access_token"])
	secret(m["refresh_token"])
	want(t, other.do("POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": refresh}), 401, "refresh token reused")

	// An API key, an invitation, a websocket ticket; a forged bearer token.
	refused(owner.do("POST", "/api/v1/api-keys", map[string]any{"name": evil, "scopes": []string{"read"}}), "api key with control characters")
	secret(want(t, owner.do("POST", "/api/v1/api-keys", map[string]any{"name": breaker, "scopes": []string{"read"}}), 201, "api key")["token"])
	inv := want(t, owner.do("POST", "/api/v1/invitations", map[string]any{"email": "mia@acme.test", "role": "member"}), 201, "invitation")
	secret(inv["token"])
	secret(want(t, owner.do("POST", "/api/v1/ws/ticket", nil), 201, "ticket")["ticket"])
	forged := newClient(t, s.URL)
	forged.token = owner.token + "x"
	want(t, forged.do("GET", "/api/v1/me", nil), 401, "forged token")
	refused(owner.do("POST", "/api/v1/projects", map[string]any{"name": evil}), "project with control characters")
	want(t, owner.do("POST", "/api/v1/projects", map[string]any{"name": breaker}), 201, "project with JSON breakers")
	refused(owner.do("GET", "/api/v1/projects/"+url.PathEscape(evil), nil), "a path with control characters")

	// Two-factor enrolment, a wrong code, and a sign-in through the second factor.
	seed := secret(want(t, owner.do("POST", "/api/v1/me/mfa/totp", map[string]any{"password": password}), 200, "begin TOTP")["secret"])
	code := func() string {
		c, err := totp.GenerateCodeCustom(seed, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	codes := want(t, owner.do("POST", "/api/v1/me/mfa/totp/confirm", map[string]any{"code": code()}), 200, "confirm TOTP")["recovery_codes"].([]any)
	for _, c := range codes {
		secret(c)
	}
	m = want(t, other.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": password}), 200, "login with 2FA")
	mfaToken := secret(m["mfa_token"])
	bad := "000000"
	if code() == bad {
		bad = "111111"
	}
	want(t, other.do("POST", "/api/v1/auth/mfa", map[string]any{"mfa_token": mfaToken, "code": bad}), 401, "wrong code")
	m = want(t, other.do("POST", "/api/v1/auth/mfa", map[string]any{"mfa_token": mfaToken, "recovery_code": codes[0]}), 200, "recovery code")
	secret(m["access_token"])
	secret(m["refresh_token"])

	// The audit trail, as the Owner reads it on a plan that has it.
	tok, err := os.ReadFile(filepath.Join(dir, operatorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	op := newClient(t, s.URL)
	op.token = strings.TrimSpace(string(tok))
	want(t, op.do("PUT", "/api/v1/platform/workspaces/acme/plan", map[string]any{"plan": "professional"}), 200, "plan")
	var audit strings.Builder
	entries := 0
	for cursor := ""; ; {
		page := want(t, owner.do("GET", "/api/v1/audit?limit=200&cursor="+url.QueryEscape(cursor), nil), 200, "audit")
		items, _ := page["items"].([]any)
		entries += len(items)
		b, _ := json.Marshal(items)
		audit.Write(b)
		if cursor, _ = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// AU3: no canary in the log or the audit trail.
	log := logs.String()
	hits := 0
	for _, c := range canaries {
		if strings.Contains(log, c) {
			hits++
			t.Errorf("the server log contains the secret %q", c)
		}
		if strings.Contains(audit.String(), c) {
			hits++
			t.Errorf("the audit trail contains the secret %q", c)
		}
	}
	// AU4: every line the server wrote is one JSON object with a message.
	lines, parsed := 0, 0
	for _, line := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		if line == "" {
			continue
		}
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["msg"] != nil && rec["level"] != nil {
			parsed++
			continue
		}
		t.Errorf("a log line is not one JSON record: %q", line)
	}
	figures.Report(t, "AU3", 0, []figures.Figure{
		figures.Eq("secret_hits", float64(hits), 0),
		figures.Guard("canaries", float64(len(canaries)), 20),
		figures.Guard("log_lines", float64(lines), 20),
		figures.Guard("audit_entries", float64(entries), 5),
	})
	figures.Report(t, "AU4", 0, []figures.Figure{
		figures.Eq("unparsed_lines", float64(lines-parsed), 0),
		figures.Guard("parsed_lines", float64(parsed), 20),
	})
}
