package engine

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// One-time tokens (email verification, password reset, magic links) are
// random, name their workspace in clear, and are stored only as a hash; each
// works once and expires.

type oneTimeToken struct {
	Purpose   string `json:"purpose"`
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	ExpiresAt int64  `json:"expires_at"`
	// UsedAt marks a spent token: it stays as a tombstone (without the
	// address) so a second use is recognised and audited.
	UsedAt int64 `json:"used_at,omitempty"`
}

const (
	purposeVerify = "verify_email"
	purposeReset  = "password_reset"
	purposeMagic  = "magic_link"

	verifyTTL = 24 * time.Hour
	resetTTL  = time.Hour
	magicTTL  = 15 * time.Minute

	// Sign-in throttling per account: this many failures within the window
	// pause password sign-in for the lock duration.
	maxLoginFailures = 10
	loginWindow      = 15 * time.Minute
	loginLock        = 15 * time.Minute
)

var tokenPrefix = map[string]string{purposeVerify: "tfv_", purposeReset: "tfp_", purposeMagic: "tfl_"}

func kOneTime(hash string) storage.Key { return storage.K("ott", hash) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("engine: crypto/rand: %v", err))
	}
	return b
}

func base32NoPad(b []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// putOneTime adds a one-time token for u to ch and returns it.
func (s *Service) putOneTime(ch *change, purpose string, u *userRecord, ttl time.Duration) string {
	tok := tokenPrefix[purpose] + strings.ReplaceAll(ch.cmd.Tenant, "-", "") + "_" + randomToken(32)
	ch.put(kOneTime(hashToken(tok)), oneTimeToken{Purpose: purpose, UserID: u.ID, Email: u.Email, ExpiresAt: s.now().Add(ttl).UnixMilli()}, 1)
	return tok
}

var errOneTime = &Error{Code: "invalid_token", Message: "the link is invalid, used or expired", Err: ErrUnauthenticated}

// spendOneTime replaces a token's record with its tombstone in ch.
func (s *Service) spendOneTime(ch *change, token string, ot *oneTimeToken, rec storage.Record) {
	key := kOneTime(hashToken(token))
	ch.expect(key, rec.Version)
	ch.put(key, oneTimeToken{Purpose: ot.Purpose, UserID: ot.UserID, ExpiresAt: ot.ExpiresAt, UsedAt: s.now().UnixMilli()}, rec.Version+1)
}

// oneTime resolves a token of purpose: its workspace, record and account.
// A token this workspace issued that is spent, expired, or for an account
// that can no longer use it is audited there; a malformed or unknown one
// names no record (its workspace is whatever the caller wrote, so it earns
// no entry there) and is logged and counted only (refusals.go).
func (s *Service) oneTime(ctx context.Context, token, purpose string) (string, *oneTimeToken, storage.Record, *userRecord, storage.Record, error) {
	fail := func(reason string) (string, *oneTimeToken, storage.Record, *userRecord, storage.Record, error) {
		if reason != "" {
			s.refusedUnaudited(ctx, purpose, reason)
		}
		return "", nil, storage.Record{}, nil, storage.Record{}, errOneTime
	}
	p := tokenPrefix[purpose]
	if !strings.HasPrefix(token, p) || len(token) > 256 {
		return fail("malformed")
	}
	tenant, ok := refreshTenant("tfr_" + strings.TrimPrefix(token, p))
	if !ok {
		return fail("malformed")
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		return fail("unknown_workspace")
	}
	_, v := s.tenant(tenant)
	ot, orec, err := getRecord[oneTimeToken](v, kOneTime(hashToken(token)))
	if err != nil || ot.Purpose != purpose {
		return fail("unknown_token")
	}
	refuse := func(reason string) (string, *oneTimeToken, storage.Record, *userRecord, storage.Record, error) {
		s.auditEvent(ctx, tenant, "anonymous", *tokenRefused(purpose, reason, ot.UserID))
		return fail("")
	}
	switch {
	case ot.UsedAt != 0:
		return refuse("reused")
	case s.now().UnixMilli() >= ot.ExpiresAt:
		return refuse("expired")
	}
	u, urec, err := getRecord[userRecord](v, kUser(ot.UserID))
	switch {
	case err != nil || u.Status != StatusActive:
		return refuse("account_inactive")
	case u.Email != ot.Email:
		// The address changed since the link was sent to the old one.
		return refuse("email_changed")
	}
	return tenant, ot, orec, u, urec, nil
}

// sendVerification adds a verification mail for u to ch.
func (s *Service) sendVerification(ctx context.Context, ch *change, v storage.View, u *userRecord) error {
	if !s.MailEnabled() {
		return nil
	}
	tok := s.putOneTime(ch, purposeVerify, u, verifyTTL)
	d, err := s.mailWorkspace(v)
	if err != nil {
		return err
	}
	d.Name, d.Link, d.Expires = u.Name, s.link("/verify-email?token="+tok), humanDuration(int(verifyTTL.Hours()))
	return s.enqueueMail(ch, "verify_email", u.Email, d)
}

// ResendVerification mails a new verification link to the caller.
func (s *Service) ResendVerification(ctx context.Context, p Principal) error {
	if !s.MailEnabled() {
		return &Error{Code: "mail_unavailable", Message: "this installation sends no mail; email addresses count as confirmed", Err: ErrConflict}
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, _, err := getRecord[userRecord](v, kUser(p.UserID))
		if err != nil {
			return nil, err
		}
		if u.EmailVerifiedAt != 0 {
			return nil, conflict("already_verified", "your email address is already confirmed")
		}
		ch := s.newChange(p.Tenant, "auth.verify_resend", p.actor())
		return ch, s.sendVerification(ctx, ch, v, u)
	})
	return err
}

// VerifyEmail confirms an address with the token from the mail.
func (s *Service) VerifyEmail(ctx context.Context, token string) error {
	tenant, ot, orec, u, urec, err := s.oneTime(ctx, token, purposeVerify)
	if err != nil {
		return err
	}
	log, _ := s.tenant(tenant)
	ch := s.newChange(tenant, "auth.verify_email", u.ID)
	s.spendOneTime(ch, token, ot, orec)
	ch.expect(kUser(u.ID), urec.Version)
	u.EmailVerifiedAt, u.UpdatedAt = s.now().UnixMilli(), s.now().UnixMilli()
	ch.put(kUser(u.ID), u, urec.Version+1)
	s.audit(ctx, ch, auditInput{Action: "auth.verify_email", TargetKind: "member", TargetID: u.ID})
	return s.proposeOnce(ctx, log, ch, errOneTime)
}

// proposeOnce proposes a command that consumes a one-time token: a
// conflict means the token was used meanwhile.
func (s *Service) proposeOnce(ctx context.Context, log Log, ch *change, onConflict error) error {
	res, err := log.Propose(ctx, &ch.cmd)
	if err != nil {
		return fmt.Errorf("engine: propose %s: %w", ch.cmd.Kind, err)
	}
	if res.Err != nil {
		if errors.Is(res.Err, storage.ErrConflict) {
			return onConflict
		}
		return fmt.Errorf("engine: apply %s: %w", ch.cmd.Kind, res.Err)
	}
	return nil
}

// accountFor finds an active account by workspace slug and email; nil when
// there is none (callers answer the same either way).
func (s *Service) accountFor(workspace, email string) (string, *userRecord) {
	tenant, _ := s.workspaceBySlug(strings.ToLower(strings.TrimSpace(workspace)))
	if tenant == "" {
		return "", nil
	}
	_, v := s.tenant(tenant)
	u, err := s.userByEmail(v, email)
	if err != nil || u.Status != StatusActive {
		return tenant, nil
	}
	return tenant, u
}

// RequestPasswordReset mails a reset link if the account exists. The
// answer is the same whether it does or not.
func (s *Service) RequestPasswordReset(ctx context.Context, workspace, email string) error {
	return s.mailLink(ctx, workspace, email, purposeReset, "password_reset", "/reset-password?token=", resetTTL)
}

// RequestMagicLink mails a sign-in link if the account exists; the same
// answer either way.
func (s *Service) RequestMagicLink(ctx context.Context, workspace, email string) error {
	return s.mailLink(ctx, workspace, email, purposeMagic, "magic_link", "/magic-link?token=", magicTTL)
}

func (s *Service) mailLink(ctx context.Context, workspace, email, purpose, tmpl, path string, ttl time.Duration) error {
	if !s.MailEnabled() {
		return &Error{Code: "mail_unavailable", Message: "this installation sends no mail; ask an administrator", Err: ErrConflict}
	}
	tenant, u := s.accountFor(workspace, email)
	if u == nil {
		// Recorded in the workspace like a failed sign-in (loginTarget),
		// and one write, as a link for a real account is: neither the
		// answer nor its timing tells a registered email from another.
		s.log.Info("sign-in link requested for an unknown account", "purpose", purpose)
		if tenant == "" {
			s.refusedUnaudited(ctx, purpose, "unknown_workspace")
			return nil
		}
		ai := s.loginTarget(tenant, nil, email)
		ai.Action, ai.Outcome = "auth."+purpose+"_requested", "failure"
		s.auditEvent(ctx, tenant, "anonymous", ai)
		return nil
	}
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, "auth."+purpose+"_requested", u.ID)
		tok := s.putOneTime(ch, purpose, u, ttl)
		d, err := s.mailWorkspace(v)
		if err != nil {
			return nil, err
		}
		hours := int(ttl.Hours())
		d.Name, d.Link, d.Expires = u.Name, s.link(path+tok), humanDuration(hours)
		s.audit(ctx, ch, auditInput{Action: "auth." + purpose + "_requested", TargetKind: "member", TargetID: u.ID})
		return ch, s.enqueueMail(ch, tmpl, u.Email, d)
	})
	return err
}

// ResetPassword sets a new password with a reset token and ends every
// session of the account. A second factor stays required at the next
// sign-in: a reset never bypasses it.
func (s *Service) ResetPassword(ctx context.Context, token, password string) error {
	if err := validatePassword("password", password); err != nil {
		return err
	}
	tenant, _, _, u, _, err := s.oneTime(ctx, token, purposeReset)
	if err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	log, v := s.tenant(tenant)
	ch := s.newChange(tenant, "auth.password_reset", u.ID)
	ot, orec, err := getRecord[oneTimeToken](v, kOneTime(hashToken(token)))
	if err != nil || ot.UsedAt != 0 {
		return errOneTime
	}
	u, urec, err := getRecord[userRecord](v, kUser(u.ID))
	if err != nil {
		return errOneTime
	}
	s.spendOneTime(ch, token, ot, orec)
	ch.expect(kUser(u.ID), urec.Version)
	u.PasswordHash, u.UpdatedAt = hash, s.now().UnixMilli()
	u.FailedLogins, u.LockedUntil = 0, 0
	ch.put(kUser(u.ID), u, urec.Version+1)
	if err := s.revokeAllSessions(ch, v, u.ID, ""); err != nil {
		return err
	}
	s.audit(ctx, ch, auditInput{Action: "auth.password_reset", TargetKind: "member", TargetID: u.ID})
	return s.proposeOnce(ctx, log, ch, errOneTime)
}

// SignInWithMagicLink consumes a magic link: tokens, or a second-factor
// challenge for an account that has one.
func (s *Service) SignInWithMagicLink(ctx context.Context, token string, ci ClientInfo) (*LoginResult, error) {
	tenant, ot, orec, u, _, err := s.oneTime(ctx, token, purposeMagic)
	if err != nil {
		return nil, err
	}
	if err := s.ipAllowed(ctx, tenant); err != nil {
		return nil, err
	}
	log, _ := s.tenant(tenant)
	ch := s.newChange(tenant, "auth.magic_link", u.ID)
	s.spendOneTime(ch, token, ot, orec)
	s.audit(ctx, ch, auditInput{Action: "auth.magic_link", TargetKind: "member", TargetID: u.ID})
	if u.MFA.EnabledAt != 0 {
		if err := s.proposeOnce(ctx, log, ch, errOneTime); err != nil {
			return nil, err
		}
		return s.startMFA(ctx, tenant, u, "magic_link")
	}
	toks, err := s.newSession(ch, tenant, u.ID, "magic_link", ci)
	if err != nil {
		return nil, err
	}
	if err := s.proposeOnce(ctx, log, ch, errOneTime); err != nil {
		return nil, err
	}
	return &LoginResult{Tokens: toks, Tenant: tenant, UserID: u.ID}, nil
}

// revokeAllSessions ends every live session of a user in ch, except keep.
func (s *Service) revokeAllSessions(ch *change, v storage.View, userID, keep string) error {
	now := s.now().UnixMilli()
	return v.Scan(kUserSessions(userID), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		sid := lastPart(k)
		if sid == keep {
			return nil
		}
		sess, srec, err := getRecord[sessionRecord](v, kSession(sid))
		if err != nil || sess.RevokedAt != 0 || sess.ExpiresAt <= now {
			return nil
		}
		sess.RevokedAt = now
		ch.expect(kSession(sid), srec.Version)
		ch.put(kSession(sid), sess, srec.Version+1)
		return nil
	})
}

// Session is one sign-in, as its owner sees it.
type Session struct {
	ID         string    `json:"id"`
	Method     string    `json:"method" doc:"password, magic_link, with +totp when a second factor was used"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// ListSessions lists the caller's live sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, p Principal) ([]Session, error) {
	_, v := s.tenant(p.Tenant)
	now := s.now().UnixMilli()
	out := []Session{}
	err := v.Scan(kUserSessions(p.UserID), storage.ScanOptions{Reverse: true}, func(k storage.Key, _ storage.Record) error {
		sess, _, err := getRecord[sessionRecord](v, kSession(lastPart(k)))
		if err != nil || sess.RevokedAt != 0 || sess.ExpiresAt <= now {
			return nil
		}
		out = append(out, Session{ID: sess.ID, Method: sess.Method, UserAgent: sess.UserAgent, IP: sess.IP,
			CreatedAt: time.UnixMilli(sess.CreatedAt).UTC(), LastSeenAt: time.UnixMilli(sess.LastSeenAt).UTC(),
			ExpiresAt: time.UnixMilli(sess.ExpiresAt).UTC(), Current: sess.ID == p.SessionID})
		return nil
	})
	return out, err
}

// RevokeSession ends one of the caller's sessions.
func (s *Service) RevokeSession(ctx context.Context, p Principal, id string) error {
	if !validID(id) {
		return notFound("session")
	}
	_, v := s.tenant(p.Tenant)
	sess, _, err := getRecord[sessionRecord](v, kSession(id))
	if err != nil || sess.UserID != p.UserID {
		return notFound("session")
	}
	return s.revokeSessions(ctx, p.Tenant, p.actor(), []string{id})
}

// RevokeOtherSessions ends every session of the caller but this one.
func (s *Service) RevokeOtherSessions(ctx context.Context, p Principal) error {
	return s.revokeUserSessions(ctx, p, p.UserID, p.SessionID, "auth.sessions_revoked")
}

// RevokeMemberSessions signs a member out everywhere (Owners and Admins;
// only Owners for an Owner).
func (s *Service) RevokeMemberSessions(ctx context.Context, p Principal, userID string) error {
	if !p.Role.isAdmin() {
		return forbidden("only Owners and Admins end other people's sessions")
	}
	m, err := s.GetMember(ctx, p, userID)
	if err != nil {
		return err
	}
	if m.Role == RoleOwner && p.Role != RoleOwner {
		return forbidden("only an Owner can end an Owner's sessions")
	}
	return s.revokeUserSessions(ctx, p, userID, "", "member.sessions_revoked")
}

func (s *Service) revokeUserSessions(ctx context.Context, p Principal, userID, keep, kind string) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, kind, p.actor())
		if err := s.revokeAllSessions(ch, v, userID, keep); err != nil {
			return nil, err
		}
		s.audit(ctx, ch, auditInput{Action: kind, TargetKind: "member", TargetID: userID})
		return ch, nil
	})
	return err
}
