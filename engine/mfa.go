package engine

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/teamflow/teamflow/storage"
)

// TOTP (RFC 6238): 30-second steps, 6 digits, SHA-1 (what authenticator
// apps accept), codes valid one step either side, each step usable once.
const (
	totpPeriod        = 30
	mfaTokenTTL       = 5 * time.Minute
	maxMFAFailures    = 5                // then the second factor pauses…
	mfaLockDuration   = 30 * time.Minute // …for this long: at most 240 guesses a day
	recoveryCodeCount = 10
	defaultGraceDays  = 7
)

type mfaConfig struct {
	Secret        string   `json:"secret,omitempty"`         // base32; the record's key ID says how it is stored
	PendingSecret string   `json:"pending_secret,omitempty"` // during enrolment
	EnabledAt     int64    `json:"enabled_at,omitempty"`
	LastStep      int64    `json:"last_step,omitempty"` // the last time step accepted: a code works once
	RecoveryHash  []string `json:"recovery_hashes,omitempty"`
}

// mfaChallenge is a password that checked out, waiting for its second
// factor. It is stored under the token's hash and used once: once used (or
// out of attempts) it stays as a tombstone, like a one-time token, so a
// replay is recognised and audited.
type mfaChallenge struct {
	UserID    string `json:"user_id"`
	Method    string `json:"method"`
	ExpiresAt int64  `json:"expires_at"`
	Attempts  int    `json:"attempts"`
	UsedAt    int64  `json:"used_at,omitempty"`
	Exhausted bool   `json:"exhausted,omitempty"` // spent by wrong codes, not by a sign-in
}

func kMFAChallenge(hash string) storage.Key { return storage.K("mfat", hash) }

// mfaDeadline says when an Owner or Admin without a second factor must
// have one; ok is false when none is required of this account.
func (s *Service) mfaDeadline(tenant string, u *userRecord) (time.Time, bool, error) {
	if !mfaRequired(u) {
		return time.Time{}, false, nil
	}
	_, v := s.tenant(tenant)
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return time.Time{}, false, err
	}
	d, ok := mfaDeadlineIn(ws, u)
	return d, ok, nil
}

// mfaRequired: Owners and Admins without a second factor must enrol one.
func mfaRequired(u *userRecord) bool { return u.Role.isAdmin() && u.MFA.EnabledAt == 0 }

// mfaDeadlineIn is mfaDeadline with the workspace record already read.
func mfaDeadlineIn(ws *workspaceRecord, u *userRecord) (time.Time, bool) {
	if !mfaRequired(u) {
		return time.Time{}, false
	}
	grace := defaultGraceDays
	if ws.MFAGraceDays != nil {
		grace = *ws.MFAGraceDays
	}
	since := u.MFASince
	if since == 0 {
		since = u.CreatedAt
	}
	return time.UnixMilli(since).UTC().Add(time.Duration(grace) * 24 * time.Hour), true
}

// mfaEnrolmentOnly reports whether the account may reach only enrolment.
func (s *Service) mfaEnrolmentOnly(tenant string, u *userRecord) (bool, error) {
	deadline, ok, err := s.mfaDeadline(tenant, u)
	if err != nil || !ok {
		return false, err
	}
	return !s.now().Before(deadline), nil
}

// mfaEnrolmentOnlyIn is mfaEnrolmentOnly with the workspace record read.
func (s *Service) mfaEnrolmentOnlyIn(ws *workspaceRecord, u *userRecord) bool {
	deadline, ok := mfaDeadlineIn(ws, u)
	return ok && !s.now().Before(deadline)
}

// TOTPEnrolment is what an authenticator app needs.
type TOTPEnrolment struct {
	Secret     string `json:"secret" doc:"Base32 secret, for apps that cannot scan"`
	OTPAuthURL string `json:"otpauth_url" doc:"otpauth:// URL to show as a QR code"`
}

// BeginTOTP starts enrolment: a new secret, pending until a code from it is
// confirmed. It asks for the password again (a second factor is a
// sensitive change).
func (s *Service) BeginTOTP(ctx context.Context, p Principal, password string) (*TOTPEnrolment, error) {
	u, err := s.reauthenticate(ctx, p, password)
	if err != nil {
		return nil, err
	}
	ws, err := s.GetWorkspace(ctx, p)
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "TeamFlow " + ws.Name, AccountName: u.Email, Period: totpPeriod, Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix})
	if err != nil {
		return nil, fmt.Errorf("engine: totp key: %w", err)
	}
	if err := s.updateUser(ctx, p, "mfa.begin", func(u *userRecord) error {
		u.MFA.PendingSecret = key.Secret()
		return nil
	}); err != nil {
		return nil, err
	}
	return &TOTPEnrolment{Secret: key.Secret(), OTPAuthURL: key.URL()}, nil
}

// ConfirmTOTP turns the pending secret on with a code from it, and returns
// one-time recovery codes (shown once; only their hashes are kept).
func (s *Service) ConfirmTOTP(ctx context.Context, p Principal, code string) ([]string, error) {
	codes, hashes := newRecoveryCodes()
	err := s.updateUser(ctx, p, "mfa.enrol", func(u *userRecord) error {
		if u.MFA.PendingSecret == "" {
			return invalid("code", "no_enrolment", "start enrolment first (POST /api/v1/me/mfa/totp)")
		}
		step, ok := s.totpStep(u.MFA.PendingSecret, code, 0)
		if !ok {
			return invalid("code", "invalid_code", "that code does not match; check the time on your device")
		}
		u.MFA = mfaConfig{Secret: u.MFA.PendingSecret, EnabledAt: s.now().UnixMilli(), LastStep: step, RecoveryHash: hashes}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DisableMFA turns the second factor off, after the password and a code.
// Both checks are throttled like sign-in.
func (s *Service) DisableMFA(ctx context.Context, p Principal, password, code string) error {
	u, err := s.reauthenticate(ctx, p, password)
	if err != nil {
		return err
	}
	if u.MFA.EnabledAt == 0 {
		return nil
	}
	if err := s.checkSecondFactor(ctx, p, u, code, "mfa.disable"); err != nil {
		return err
	}
	return s.updateUser(ctx, p, "mfa.disable", func(u *userRecord) error {
		if u.MFA.EnabledAt == 0 {
			return nil
		}
		if _, ok := s.totpStep(u.MFA.Secret, code, u.MFA.LastStep); !ok {
			return errInvalidCode // used meanwhile
		}
		u.MFA = mfaConfig{}
		u.MFASince = s.now().UnixMilli()
		return nil
	})
}

var (
	errInvalidCode     = &Error{Code: "invalid_code", Field: "code", Message: "that code does not match", Err: ErrForbidden}
	errTooManyAttempts = &Error{Code: "too_many_attempts", Message: "too many wrong passwords or codes; this check is paused, try again later", Err: ErrForbidden}
)

// checkSecondFactor checks a TOTP code of the caller's before a sensitive
// change, throttled like the sign-in's second step: wrong codes count
// toward the same pause, and a paused factor refuses even the right code.
// The caller consumes the code's step in its own write.
func (s *Service) checkSecondFactor(ctx context.Context, p Principal, u *userRecord, code, action string) error {
	if u.MFALockedTill > s.now().UnixMilli() {
		s.auditEvent(ctx, p.Tenant, p.actor(), auditInput{Action: action + "_refused", TargetKind: "member", TargetID: u.ID, Outcome: "denied", Detail: map[string]any{"reason": "locked"}})
		return errTooManyAttempts
	}
	if _, ok := s.totpStep(u.MFA.Secret, code, u.MFA.LastStep); ok {
		return nil
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(u.ID))
		if err != nil {
			return nil, err
		}
		ch := s.newChange(p.Tenant, "auth.mfa_failed", p.actor())
		ch.expect(kUser(u.ID), rec.Version)
		u.FailedMFA++
		s.audit(ctx, ch, auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: u.ID, Outcome: "failure", Detail: map[string]any{"during": action}})
		if u.FailedMFA >= maxMFAFailures {
			u.FailedMFA = 0
			u.MFALockedTill = s.now().Add(mfaLockDuration).UnixMilli()
			s.audit(ctx, ch, auditInput{Action: "auth.mfa_locked", TargetKind: "member", TargetID: u.ID, Outcome: "denied"})
		}
		ch.put(kUser(u.ID), u, rec.Version+1)
		return ch, nil
	})
	if err != nil {
		return err
	}
	return errInvalidCode
}

// RegenerateRecoveryCodes replaces the caller's recovery codes with ten new
// ones (shown once; the old ones stop working). It asks for a current code
// from the authenticator app, or the password; both are throttled.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p Principal, password, code string) ([]string, error) {
	if p.Operator || p.UserID == "" || p.APIKeyID != "" {
		return nil, forbidden("recovery codes are managed from a signed-in session")
	}
	_, v := s.tenant(p.Tenant)
	u, _, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil {
		return nil, err
	}
	if u.MFA.EnabledAt == 0 {
		return nil, conflict("mfa_not_enabled", "turn the second factor on first")
	}
	switch {
	case code != "":
		if err := s.checkSecondFactor(ctx, p, u, code, "mfa.recovery_codes"); err != nil {
			return nil, err
		}
	case password != "":
		if _, err := s.reauthenticate(ctx, p, password); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("code", "required", "send a current code from your authenticator app, or your password")
	}
	codes, hashes := newRecoveryCodes()
	err = s.updateUser(ctx, p, "mfa.recovery_codes", func(u *userRecord) error {
		if u.MFA.EnabledAt == 0 {
			return conflict("mfa_not_enabled", "turn the second factor on first")
		}
		if code != "" {
			step, ok := s.totpStep(u.MFA.Secret, code, u.MFA.LastStep)
			if !ok {
				return errInvalidCode // used meanwhile
			}
			u.MFA.LastStep = step
		}
		u.MFA.RecoveryHash = hashes
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

func newRecoveryCodes() (codes, hashes []string) {
	codes = make([]string, recoveryCodeCount)
	hashes = make([]string, recoveryCodeCount)
	for i := range codes {
		codes[i] = recoveryCode()
		hashes[i] = hashToken(normalizeRecovery(codes[i]))
	}
	return codes, hashes
}

// ResetMemberMFA turns a member's second factor off for them (a lost
// device): Owners and Admins, only an Owner for an Owner, never oneself
// (that is DisableMFA). It ends every session of the member, restarts their
// enrolment grace period, tells them by mail and is audited.
func (s *Service) ResetMemberMFA(ctx context.Context, p Principal, userID string) error {
	if !p.Role.isAdmin() || p.Operator || p.APIKeyID != "" {
		return forbidden("only Owners and Admins reset another member's second factor")
	}
	if !validID(userID) {
		return notFound("member")
	}
	if userID == p.UserID {
		return forbidden("turn your own second factor off with POST /api/v1/me/mfa/disable")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(userID))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("member")
			}
			return nil, err
		}
		if u.Role == RoleOwner && p.Role != RoleOwner {
			return nil, forbidden("only an Owner can reset an Owner's second factor")
		}
		if u.MFA.EnabledAt == 0 && u.MFA.PendingSecret == "" {
			return nil, conflict("mfa_not_enabled", "this member has no second factor")
		}
		now := s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "member.mfa_reset", p.actor())
		ch.expect(kUser(u.ID), rec.Version)
		u.MFA = mfaConfig{}
		u.FailedMFA, u.MFALockedTill = 0, 0
		u.MFASince, u.UpdatedAt = now, now
		ch.put(kUser(u.ID), u, rec.Version+1)
		if err := s.revokeAllSessions(ch, v, u.ID, ""); err != nil {
			return nil, err
		}
		s.audit(ctx, ch, auditInput{Action: "member.mfa_reset", TargetKind: "member", TargetID: u.ID})
		if s.MailEnabled() && u.Status == StatusActive {
			d, err := s.mailWorkspace(v)
			if err != nil {
				return nil, err
			}
			admin, _, err := getRecord[userRecord](v, kUser(p.UserID))
			if err != nil {
				return nil, err
			}
			d.Name, d.Inviter, d.Link = u.Name, admin.Name, s.link("/login")
			if err := s.enqueueMail(ch, "mfa_reset", u.Email, d); err != nil {
				return nil, err
			}
		}
		return ch, nil
	})
	return err
}

// totpStep checks a code against secret at the current time ±1 step and
// returns the step it matched; a step at or before last is refused (a code
// works once, RFC 6238 §5.2).
func (s *Service) totpStep(secret, code string, last int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	now := s.now()
	cur := now.Unix() / totpPeriod
	for _, step := range []int64{cur - 1, cur, cur + 1} {
		if step <= last {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

func recoveryCode() string {
	// 10 random bytes in Crockford-like base32 groups: xxxxx-xxxxx-xxxxx-x.
	t := strings.ToLower(strings.TrimRight(base32NoPad(randomBytes(10)), "="))
	return t[:5] + "-" + t[5:10] + "-" + t[10:]
}

func normalizeRecovery(c string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))
}

// startMFA records a challenge for a user whose password (or magic link)
// checked out, and returns its token.
func (s *Service) startMFA(ctx context.Context, tenant string, u *userRecord, method string) (*LoginResult, error) {
	token := "tfm_" + strings.ReplaceAll(tenant, "-", "") + "_" + randomToken(32)
	log, _ := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, "auth.mfa_challenge", u.ID)
		ch.put(kMFAChallenge(hashToken(token)), mfaChallenge{UserID: u.ID, Method: method, ExpiresAt: s.now().Add(mfaTokenTTL).UnixMilli()}, 1)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return &LoginResult{MFARequired: true, MFAToken: token, Tenant: tenant, UserID: u.ID}, nil
}

var errMFA = &Error{Code: "invalid_mfa", Message: "the code is not valid, or the sign-in expired; sign in again", Err: ErrUnauthenticated}

// CompleteMFA finishes a sign-in with a TOTP code or a recovery code. A
// code is accepted once; after repeated wrong codes the second factor pauses.
func (s *Service) CompleteMFA(ctx context.Context, mfaToken, code, recovery string, ci ClientInfo) (*LoginResult, error) {
	tenant, ok := refreshTenant(strings.Replace(mfaToken, "tfm_", "tfr_", 1))
	if !ok || !strings.HasPrefix(mfaToken, "tfm_") {
		s.refusedUnaudited(ctx, "mfa", "malformed")
		return nil, errMFA
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		s.refusedUnaudited(ctx, "mfa", "unknown_workspace")
		return nil, errMFA
	}
	if err := s.ipAllowed(ctx, tenant); err != nil {
		return nil, err
	}
	log, v := s.tenant(tenant)
	key := kMFAChallenge(hashToken(mfaToken))
	var out *Tokens
	var userID string
	var failed, unknown bool
	var refused *auditInput // a refusal that writes nothing else, audited on its own
	_, err := s.commit(ctx, log, func() (*change, error) {
		failed, unknown, refused = false, false, nil
		chal, crec, err := getRecord[mfaChallenge](v, key)
		if errors.Is(err, storage.ErrNotFound) {
			unknown = true
			return nil, errMFA
		}
		if err != nil {
			return nil, err
		}
		if chal.UsedAt != 0 {
			reason := "reused"
			if chal.Exhausted {
				reason = "attempts_exhausted"
			}
			refused = &auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: chal.UserID, Outcome: "denied", Detail: map[string]any{"reason": reason}}
			return nil, errMFA
		}
		if s.now().UnixMilli() >= chal.ExpiresAt {
			refused = &auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: chal.UserID, Outcome: "failure", Detail: map[string]any{"reason": "challenge_expired"}}
			return nil, errMFA
		}
		u, urec, err := getRecord[userRecord](v, kUser(chal.UserID))
		if err != nil || u.Status != StatusActive || u.MFA.EnabledAt == 0 {
			reason := "account_inactive"
			if err == nil && u.Status == StatusActive {
				reason = "mfa_disabled" // turned off (or reset by an admin) since the first step
			}
			refused = &auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: chal.UserID, Outcome: "denied", Detail: map[string]any{"reason": reason}}
			return nil, errMFA
		}
		now := s.now()
		ch := s.newChange(tenant, "auth.mfa", u.ID)
		ch.expect(key, crec.Version)
		ch.expect(kUser(u.ID), urec.Version)
		if u.MFALockedTill > now.UnixMilli() {
			refused = &auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: u.ID, Outcome: "denied", Detail: map[string]any{"reason": "locked"}}
			return nil, errMFA
		}
		accepted, method := false, chal.Method+"+totp"
		switch {
		case recovery != "":
			method = chal.Method + "+recovery_code"
			h := hashToken(normalizeRecovery(recovery))
			for i, rh := range u.MFA.RecoveryHash {
				if subtle.ConstantTimeCompare([]byte(rh), []byte(h)) == 1 {
					u.MFA.RecoveryHash = append(append([]string{}, u.MFA.RecoveryHash[:i]...), u.MFA.RecoveryHash[i+1:]...)
					accepted = true
					break
				}
			}
		default:
			if step, ok := s.totpStep(u.MFA.Secret, code, u.MFA.LastStep); ok {
				u.MFA.LastStep = step
				accepted = true
			}
		}
		if !accepted {
			failed = true
			u.FailedMFA++
			s.audit(ctx, ch, auditInput{Action: "auth.mfa_failed", TargetKind: "member", TargetID: u.ID, Outcome: "failure",
				Detail: map[string]any{"method": method}})
			if u.FailedMFA >= maxMFAFailures {
				u.FailedMFA = 0
				u.MFALockedTill = now.Add(mfaLockDuration).UnixMilli()
				s.audit(ctx, ch, auditInput{Action: "auth.mfa_locked", TargetKind: "member", TargetID: u.ID, Outcome: "denied"})
			}
			chal.Attempts++
			if chal.Attempts >= maxMFAFailures {
				chal.UsedAt, chal.Exhausted = now.UnixMilli(), true
			}
			ch.put(key, chal, crec.Version+1)
			ch.put(kUser(u.ID), u, urec.Version+1)
			return ch, nil
		}
		u.FailedMFA = 0
		ch.put(kUser(u.ID), u, urec.Version+1)
		chal.UsedAt = now.UnixMilli()
		ch.put(key, chal, crec.Version+1)
		userID = u.ID
		detail := map[string]any{"method": method}
		if recovery != "" {
			detail["recovery_codes_remaining"] = len(u.MFA.RecoveryHash)
		}
		s.audit(ctx, ch, auditInput{Action: "auth.login", TargetKind: "member", TargetID: u.ID, Detail: detail})
		out, err = s.newSession(ch, tenant, u.ID, method, ci)
		return ch, err
	})
	switch {
	case refused != nil:
		actor := refused.TargetID // the account whose first factor checked out
		if r := refused.Detail["reason"]; r == "reused" || r == "attempts_exhausted" {
			actor = "anonymous" // whoever replays a spent challenge
		}
		s.auditEvent(ctx, tenant, actor, *refused)
	case unknown:
		s.refusedUnaudited(ctx, "mfa", "unknown_token")
	}
	if err != nil {
		return nil, err
	}
	if failed {
		return nil, errMFA
	}
	return &LoginResult{Tokens: out, Tenant: tenant, UserID: userID}, nil
}

// reauthenticate checks the caller's password again before a sensitive
// change (a second factor, an email).
func (s *Service) reauthenticate(ctx context.Context, p Principal, password string) (*userRecord, error) {
	_, v := s.tenant(p.Tenant)
	u, _, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil {
		return nil, err
	}
	if u.LockedUntil > s.now().UnixMilli() {
		// Paused by failed sign-ins (or failed checks here): no guessing
		// through a session either.
		s.auditEvent(ctx, p.Tenant, p.actor(), auditInput{Action: "auth.reauth_failed", TargetKind: "member", TargetID: u.ID, Outcome: "denied", Detail: map[string]any{"reason": "locked"}})
		return nil, errTooManyAttempts
	}
	ok, err := s.checkPassword(ctx, password, u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Counted with failed sign-ins: the same pause and the same mail.
		if err := s.loginFailed(ctx, p.Tenant, u.ID, "auth.reauth_failed"); err != nil {
			return nil, err
		}
		return nil, &Error{Code: "invalid_credentials", Field: "password", Message: "the password is not correct", Err: ErrForbidden}
	}
	return u, nil
}

// updateUser changes the caller's own account record under a precondition.
func (s *Service) updateUser(ctx context.Context, p Principal, kind string, fn func(*userRecord) error) error {
	if p.Operator || p.UserID == "" {
		return forbidden("this is an account action")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(p.UserID))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("account")
			}
			return nil, err
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		u.UpdatedAt = s.now().UnixMilli()
		ch := s.newChange(p.Tenant, kind, p.actor())
		ch.expect(kUser(u.ID), rec.Version)
		ch.put(kUser(u.ID), u, rec.Version+1)
		s.audit(ctx, ch, auditInput{Action: kind, TargetKind: "member", TargetID: u.ID})
		return ch, nil
	})
	return err
}
