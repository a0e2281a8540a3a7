package engine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/teamflow/teamflow/storage"
)

const (
	tokenIssuer   = "teamflow"
	tokenAudience = "teamflow-api"
)

// signingKey is a replicated platform record (DESIGN rule 9): every node
// verifies what any node issued.
type signingKey struct {
	KID       string `json:"kid"`
	Alg       string `json:"alg"`
	Seed      []byte `json:"seed"` // ed25519 private key seed; the record's key ID says how it is encrypted (0 = plaintext)
	CreatedAt int64  `json:"created_at"`
}

type sessionRecord struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	CreatedAt  int64  `json:"created_at"`
	LastSeenAt int64  `json:"last_seen_at"`
	ExpiresAt  int64  `json:"expires_at"`
	RevokedAt  int64  `json:"revoked_at,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
	IP         string `json:"ip,omitempty"`
	Method     string `json:"method"`
}

// refreshRecord is stored under the SHA-256 of the token: the store never
// holds a usable token.
type refreshRecord struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	ExpiresAt int64  `json:"expires_at"`
	UsedAt    int64  `json:"used_at,omitempty"`
}

// Tokens are the credentials of a session.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in" doc:"Seconds until the access token expires"`
	// RefreshExpiresAt tells cookie-based clients how long to keep the cookie.
	RefreshExpiresAt time.Time `json:"-"`
}

// ClientInfo describes where a sign-in comes from, for the session list.
type ClientInfo struct {
	UserAgent string
	IP        string
}

type accessClaims struct {
	jwt.RegisteredClaims
	Tenant  string `json:"tid"`
	Session string `json:"sid"`
	Use     string `json:"token_use"`
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("engine: crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// refresh tokens name their workspace so a refresh needs no other input:
// tfr_<tenant hex>_<32 random bytes>.
func newRefreshToken(tenant string) string {
	return "tfr_" + strings.ReplaceAll(tenant, "-", "") + "_" + randomToken(32)
}

func refreshTenant(tok string) (string, bool) {
	parts := strings.SplitN(tok, "_", 3)
	if len(parts) != 3 || parts[0] != "tfr" || len(parts[1]) != 32 {
		return "", false
	}
	h := parts[1]
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	if !validID(id) {
		return "", false
	}
	return id, true
}

// ensureSigningKey creates the first token-signing key through the log if
// none exists yet.
func (s *Service) ensureSigningKey(ctx context.Context) error {
	log, sys := s.sys()
	_, err := s.commit(ctx, log, func() (*change, error) {
		found := false
		if err := sys.Scan(sysSigningKeys(), storage.ScanOptions{}, func(storage.Key, storage.Record) error {
			found = true
			return storage.ErrStop
		}); err != nil {
			return nil, err
		}
		if found {
			return nil, errAlreadyDone
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("engine: generate signing key: %w", err)
		}
		k := signingKey{KID: newID(), Alg: "EdDSA", Seed: priv.Seed(), CreatedAt: s.now().UnixMilli()}
		ch := s.newChange("", "platform.signing_key", "system")
		ch.expectSys(sysInit, 0)
		ch.putSys(sysInit, map[string]any{"at": k.CreatedAt}, 1)
		ch.putSys(sysSigningKey(k.KID), k, 1)
		return ch, nil
	})
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	return err
}

var errAlreadyDone = errors.New("already done")

// currentKey returns the newest signing key.
func (s *Service) currentKey() (signingKey, error) {
	_, sys := s.sys()
	var newest signingKey
	err := sys.Scan(sysSigningKeys(), storage.ScanOptions{Reverse: true}, func(_ storage.Key, r storage.Record) error {
		return jsonDecode(r.Value, &newest)
	})
	if err != nil {
		return signingKey{}, err
	}
	if newest.KID == "" {
		return signingKey{}, errors.New("engine: no signing key (the platform is not initialised)")
	}
	return newest, nil
}

func (s *Service) keyByID(kid string) (signingKey, bool) {
	s.keysMu.RLock()
	k, ok := s.keys[kid]
	s.keysMu.RUnlock()
	if ok {
		return k, true
	}
	if !validID(kid) {
		return signingKey{}, false
	}
	_, sys := s.sys()
	rec, _, err := getRecord[signingKey](sys, sysSigningKey(kid))
	if err != nil {
		return signingKey{}, false
	}
	s.keysMu.Lock()
	s.keys[kid] = *rec
	s.keysMu.Unlock()
	return *rec, true
}

func (s *Service) issueAccess(tenant, user, session string) (string, error) {
	k, err := s.currentKey()
	if err != nil {
		return "", err
	}
	now := s.now()
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{tokenAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newID(),
		},
		Tenant:  tenant,
		Session: session,
		Use:     "access",
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.KID
	tok.Header["typ"] = "at+jwt"
	signed, err := tok.SignedString(ed25519.NewKeyFromSeed(k.Seed))
	if err != nil {
		return "", fmt.Errorf("engine: sign token: %w", err)
	}
	return signed, nil
}

// newSession adds a session and its first refresh token to ch, and returns
// the tokens to hand out once ch commits.
func (s *Service) newSession(ch *change, tenant, user, method string, ci ClientInfo) (*Tokens, error) {
	now := s.now()
	sess := sessionRecord{
		ID: newID(), UserID: user, CreatedAt: now.UnixMilli(), LastSeenAt: now.UnixMilli(),
		ExpiresAt: now.Add(s.cfg.RefreshTTL).UnixMilli(),
		UserAgent: truncate(ci.UserAgent, 256), IP: truncate(ci.IP, 64), Method: method,
	}
	refresh := newRefreshToken(tenant)
	ch.put(kSession(sess.ID), sess, 1)
	ch.index(kUserSessions(user).Add(sess.ID))
	ch.put(kRefresh(hashToken(refresh)), refreshRecord{SessionID: sess.ID, UserID: user, ExpiresAt: sess.ExpiresAt}, 1)
	access, err := s.issueAccess(tenant, user, sess.ID)
	if err != nil {
		return nil, err
	}
	return &Tokens{
		AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(s.cfg.AccessTTL / time.Second), RefreshExpiresAt: time.UnixMilli(sess.ExpiresAt),
	}, nil
}

// LoginInput is a password sign-in.
type LoginInput struct {
	Workspace string // slug
	Email     string
	Password  string
	Client    ClientInfo
}

// LoginResult is either tokens or, for an account with a second factor, a
// challenge to complete with the code (the shape is reserved now; 2FA lands
// with the account-security work).
type LoginResult struct {
	Tokens      *Tokens
	MFARequired bool
	MFAToken    string
	Tenant      string
	UserID      string
}

// Login signs in with a password. Unknown workspace, unknown email, wrong
// password, deactivated or paused account all answer the same error after
// the same work, so the answer reveals nothing. Repeated failures pause the
// account's password sign-in (its owner is told by mail); an account with a
// second factor gets a challenge instead of tokens.
func (s *Service) Login(ctx context.Context, in LoginInput) (*LoginResult, error) {
	tenant, user := s.accountFor(in.Workspace, in.Email)
	if tenant != "" {
		if err := s.ipAllowed(ctx, tenant); err != nil {
			s.log.Info("sign-in from outside the workspace's allowlist", "workspace", tenant, "ip", requestInfo(ctx).IP)
			ai := s.loginTarget(tenant, user, in.Email)
			ai.Action, ai.Outcome = "auth.ip_refused", "denied"
			ai.Detail["during"] = "sign-in"
			s.auditEvent(ctx, tenant, "anonymous", ai)
			return nil, err
		}
	}
	hash := ""
	now := s.now()
	locked := user != nil && user.LockedUntil > now.UnixMilli()
	if user != nil && !locked {
		hash = user.PasswordHash
	}
	ok, err := s.checkPassword(ctx, in.Password, hash)
	if err != nil {
		return nil, err
	}
	if user == nil || locked || !ok {
		// Every failure that reaches a workspace is recorded in it, after
		// the same password work and with one write each (so the answer's
		// timing does not tell a known email from an unknown one either).
		// The per-address limit on public writes (httpapi) bounds how many
		// an anonymous caller can cause; a refused request never gets here.
		switch {
		case tenant == "":
			s.refusedUnaudited(ctx, "login", "unknown_workspace")
		case locked:
			// The pause refuses even the right password; the attempt is
			// recorded like any other failure.
			s.auditEvent(ctx, tenant, "anonymous", auditInput{Action: "auth.login_failed", TargetKind: "member", TargetID: user.ID, Outcome: "denied",
				Detail: map[string]any{"reason": "account_locked"}})
			s.log.Info("login failed", "workspace", tenant)
		case user != nil:
			if err := s.loginFailed(ctx, tenant, user.ID, "auth.login_failed"); err != nil {
				return nil, err
			}
			s.log.Info("login failed", "workspace", tenant)
		default:
			ai := s.loginTarget(tenant, nil, in.Email)
			ai.Action, ai.Outcome = "auth.login_failed", "failure"
			s.auditEvent(ctx, tenant, "anonymous", ai)
			s.log.Info("login failed", "workspace", tenant)
		}
		return nil, errBadCredentials
	}
	log, v := s.tenant(tenant)
	if user.MFA.EnabledAt != 0 {
		if user.FailedLogins > 0 {
			_ = s.clearLoginFailures(ctx, tenant, user.ID)
		}
		return s.startMFA(ctx, tenant, user, "password")
	}
	var toks *Tokens
	if _, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(user.ID))
		if err != nil {
			return nil, err
		}
		ch := s.newChange(tenant, "auth.login", user.ID)
		if u.FailedLogins != 0 {
			u.FailedLogins, u.FailedSince = 0, 0
			ch.expect(kUser(u.ID), rec.Version)
			ch.put(kUser(u.ID), u, rec.Version+1)
		}
		s.audit(ctx, ch, auditInput{Action: "auth.login", TargetKind: "member", TargetID: u.ID, Detail: map[string]any{"method": "password"}})
		toks, err = s.newSession(ch, tenant, user.ID, "password", in.Client)
		return ch, err
	}); err != nil {
		return nil, err
	}
	return &LoginResult{Tokens: toks, Tenant: tenant, UserID: user.ID}, nil
}

// loginTarget is what an audit entry about a sign-in to tenant names: the
// active account user, or else the email typed. An email that names an
// inactive (deactivated) account is named by that account's ID, with the
// reason account_inactive; one that names no account at all goes into the
// entry's personal-data record beside the chain, never into the chain (the
// reason unknown_account is in the chain). Input that is not an email
// address (a password typed into the wrong field) is not kept at all.
func (s *Service) loginTarget(tenant string, user *userRecord, email string) auditInput {
	ai := auditInput{TargetKind: "member", Detail: map[string]any{}}
	if user != nil {
		ai.TargetID = user.ID
		return ai
	}
	_, v := s.tenant(tenant)
	if u, err := s.userByEmail(v, email); err == nil {
		ai.TargetID = u.ID
		ai.Detail["reason"] = "account_inactive"
		return ai
	}
	ai.TargetKind = "email"
	ai.Detail["reason"] = "unknown_account"
	if e, err := normalizeEmail("email", email); err == nil {
		ai.Personal = map[string]any{"email": e}
	} else {
		ai.Detail["email_malformed"] = true
	}
	return ai
}

// loginFailed counts a failed password for an account and pauses it after
// too many in the window, telling its owner by mail.
func (s *Service) loginFailed(ctx context.Context, tenant, userID, action string) error {
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(userID))
		if err != nil {
			return nil, err
		}
		now := s.now()
		if now.UnixMilli()-u.FailedSince > loginWindow.Milliseconds() {
			u.FailedLogins, u.FailedSince = 0, now.UnixMilli()
		}
		u.FailedLogins++
		actor := "anonymous"
		if action != "auth.login_failed" {
			actor = u.ID // a signed-in account checking its password again
		}
		ch := s.newChange(tenant, action, actor)
		ch.expect(kUser(u.ID), rec.Version)
		s.audit(ctx, ch, auditInput{Action: action, TargetKind: "member", TargetID: u.ID, Outcome: "failure"})
		if u.FailedLogins >= maxLoginFailures {
			u.FailedLogins, u.FailedSince = 0, 0
			u.LockedUntil = now.Add(loginLock).UnixMilli()
			s.audit(ctx, ch, auditInput{Action: "auth.account_locked", TargetKind: "member", TargetID: u.ID, Outcome: "denied"})
			if s.MailEnabled() {
				tok := s.putOneTime(ch, purposeReset, u, resetTTL)
				d, err := s.mailWorkspace(v)
				if err != nil {
					return nil, err
				}
				d.Name, d.Link, d.Expires = u.Name, s.link("/reset-password?token="+tok), humanDuration(0)
				if err := s.enqueueMail(ch, "account_locked", u.Email, d); err != nil {
					return nil, err
				}
			}
		}
		ch.put(kUser(u.ID), u, rec.Version+1)
		return ch, nil
	})
	return err
}

func (s *Service) clearLoginFailures(ctx context.Context, tenant, userID string) error {
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(userID))
		if err != nil {
			return nil, err
		}
		ch := s.newChange(tenant, "auth.login_reset", userID)
		u.FailedLogins, u.FailedSince = 0, 0
		ch.expect(kUser(u.ID), rec.Version)
		ch.put(kUser(u.ID), u, rec.Version+1)
		return ch, nil
	})
	return err
}

// Refresh rotates a refresh token: the old one is spent and a new pair is
// issued. Presenting a spent token again revokes the whole session (the
// token family), since either the client or a thief holds a copy.
func (s *Service) Refresh(ctx context.Context, token string) (*LoginResult, error) {
	tenant, ok := refreshTenant(token)
	if !ok {
		s.refusedUnaudited(ctx, "refresh", "malformed")
		return nil, errBadToken
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		s.refusedUnaudited(ctx, "refresh", "unknown_workspace")
		return nil, errBadToken
	}
	if err := s.ipAllowed(ctx, tenant); err != nil {
		return nil, err
	}
	log, v := s.tenant(tenant)
	key := kRefresh(hashToken(token))
	var out *Tokens
	var reused, unknown bool
	var refused *auditInput // a refusal that writes nothing else, audited on its own
	var userID string
	_, err := s.commit(ctx, log, func() (*change, error) {
		reused, unknown, refused = false, false, nil
		rt, rec, err := getRecord[refreshRecord](v, key)
		if errors.Is(err, storage.ErrNotFound) {
			unknown = true
			return nil, errBadToken
		}
		if err != nil {
			return nil, err
		}
		sess, srec, err := getRecord[sessionRecord](v, kSession(rt.SessionID))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if err != nil || sess.RevokedAt != 0 {
			// The session ended (logout, revocation, or an earlier reuse
			// of this very token).
			reason := "revoked"
			if rt.UsedAt != 0 {
				reason = "reused"
			}
			refused = tokenRefused("refresh", reason, rt.UserID)
			return nil, errBadToken
		}
		now := s.now()
		if rt.UsedAt != 0 {
			reused = true
			ch := s.newChange(tenant, "auth.refresh_reuse", rt.UserID)
			ch.expect(kSession(sess.ID), srec.Version)
			sess.RevokedAt = now.UnixMilli()
			ch.put(kSession(sess.ID), sess, srec.Version+1)
			s.audit(ctx, ch, auditInput{Action: "auth.refresh_reuse", TargetKind: "session", TargetID: sess.ID, Outcome: "denied"})
			return ch, nil
		}
		if now.UnixMilli() >= rt.ExpiresAt || now.UnixMilli() >= sess.ExpiresAt {
			refused = tokenRefused("refresh", "expired", rt.UserID)
			return nil, errBadToken
		}
		user, _, err := getRecord[userRecord](v, kUser(rt.UserID))
		if err != nil || user.Status != StatusActive {
			refused = tokenRefused("refresh", "account_inactive", rt.UserID)
			return nil, errBadToken
		}
		userID = user.ID
		ch := s.newChange(tenant, "auth.refresh", rt.UserID)
		ch.expect(key, rec.Version)
		rt.UsedAt = now.UnixMilli()
		ch.put(key, rt, rec.Version+1)
		sess.LastSeenAt = now.UnixMilli()
		ch.expect(kSession(sess.ID), srec.Version)
		ch.put(kSession(sess.ID), sess, srec.Version+1)
		refresh := newRefreshToken(tenant)
		ch.put(kRefresh(hashToken(refresh)), refreshRecord{SessionID: sess.ID, UserID: user.ID, ExpiresAt: sess.ExpiresAt}, 1)
		access, err := s.issueAccess(tenant, user.ID, sess.ID)
		if err != nil {
			return nil, err
		}
		out = &Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
			ExpiresIn: int(s.cfg.AccessTTL / time.Second), RefreshExpiresAt: time.UnixMilli(sess.ExpiresAt)}
		return ch, nil
	})
	switch {
	case refused != nil:
		s.auditEvent(ctx, tenant, "anonymous", *refused)
	case unknown:
		// A token that spells the workspace's ID but that it never issued
		// (or one whose session record is gone with its workspace).
		s.refusedUnaudited(ctx, "refresh", "unknown_token")
	}
	if err != nil {
		return nil, err
	}
	if reused {
		s.log.Warn("refresh token reused; session revoked", "tenant", tenant)
		return nil, errBadToken
	}
	return &LoginResult{Tokens: out, Tenant: tenant, UserID: userID}, nil
}

// tokenRefused is the audit entry of a token its workspace issued (so the
// account it was for is known) that was refused: spent, expired, revoked,
// or for an account that can no longer use it.
func tokenRefused(purpose, reason, userID string) *auditInput {
	return &auditInput{Action: "auth.token_refused", TargetKind: "member", TargetID: userID, Outcome: "denied",
		Detail: map[string]any{"purpose": purpose, "reason": reason}}
}

// Logout revokes the caller's session.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.SessionID == "" {
		return nil
	}
	return s.revokeSessions(ctx, p.Tenant, p.actor(), []string{p.SessionID})
}

func (s *Service) revokeSessions(ctx context.Context, tenant, actor string, ids []string) error {
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, "auth.logout", actor)
		s.audit(ctx, ch, auditInput{Action: "auth.logout", TargetKind: "session", TargetID: strings.Join(ids, ",")})
		now := s.now().UnixMilli()
		for _, id := range ids {
			sess, rec, err := getRecord[sessionRecord](v, kSession(id))
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				return nil, err
			}
			if sess.RevokedAt != 0 {
				continue
			}
			sess.RevokedAt = now
			ch.expect(kSession(id), rec.Version)
			ch.put(kSession(id), sess, rec.Version+1)
		}
		return ch, nil
	})
	return err
}

// Authenticate turns a bearer credential into a Principal. Every request
// re-reads the session and the account, so logout, revocation, deactivation
// and role changes take effect at once, not when the access token expires.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	if strings.HasPrefix(token, operatorTokenPrefix) {
		return s.authenticateOperator(token)
	}
	if strings.HasPrefix(token, apiKeyPrefix) {
		return s.authenticateAPIKey(ctx, token)
	}
	claims, ok := s.verified.get(token)
	if !ok {
		parsed, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			k, ok := s.keyByID(kid)
			if !ok {
				return nil, errors.New("unknown key")
			}
			return ed25519.NewKeyFromSeed(k.Seed).Public(), nil
		},
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(tokenIssuer),
			jwt.WithAudience(tokenAudience),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(s.now),
		)
		if err != nil || !parsed.Valid || claims.Use != "access" || parsed.Header["typ"] != "at+jwt" {
			return Principal{}, errBadToken
		}
		if !validID(claims.Tenant) || !validID(claims.Session) || !validID(claims.Subject) {
			return Principal{}, errBadToken
		}
		s.verified.put(token, claims)
	}
	now := s.now()
	if claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Time) || (claims.NotBefore != nil && now.Before(claims.NotBefore.Time)) {
		return Principal{}, errBadToken
	}
	// A deleted workspace's keyspace is gone, so its sessions no longer resolve.
	_, v := s.tenant(claims.Tenant)
	recs, err := s.sessionRecords(v, claims.Tenant, claims.Session, claims.Subject)
	if err != nil {
		return Principal{}, errBadToken
	}
	sess, user := recs.sess, recs.user
	if sess.RevokedAt != 0 || sess.UserID != claims.Subject || s.now().UnixMilli() >= sess.ExpiresAt {
		return Principal{}, errBadToken
	}
	if user.Status != StatusActive {
		return Principal{}, errBadToken
	}
	if err := s.refuseOutsideAllowlist(ctx, claims.Tenant, user.ID, recs.ws); err != nil {
		return Principal{}, err
	}
	enrolOnly := s.mfaEnrolmentOnlyIn(recs.ws, user)
	return Principal{Tenant: claims.Tenant, UserID: user.ID, Role: user.Role, SessionID: sess.ID, MFAEnrolmentOnly: enrolOnly}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
