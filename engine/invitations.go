package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

type inviteRecord struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	Role       Role   `json:"role"`
	TokenHash  string `json:"token_hash"`
	InvitedBy  string `json:"invited_by"`
	CreatedAt  int64  `json:"created_at"`
	ExpiresAt  int64  `json:"expires_at"`
	AcceptedAt int64  `json:"accepted_at,omitempty"`
	AcceptedBy string `json:"accepted_by,omitempty"`
	RevokedAt  int64  `json:"revoked_at,omitempty"`
}

// Invitation is the API view of an invitation. Token and Link appear only in
// the answer to the admin who created it.
type Invitation struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role" enum:"owner,admin,member,guest"`
	Status    string    `json:"status" enum:"pending,accepted,revoked,expired"`
	InvitedBy string    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Token     string    `json:"token,omitempty" doc:"Shown once, to the inviting admin"`
	Link      string    `json:"link,omitempty" doc:"Shown once, to the inviting admin"`
	Version   uint64    `json:"version"`
}

func (r *inviteRecord) view(now time.Time, version uint64) *Invitation {
	st := "pending"
	switch {
	case r.AcceptedAt != 0:
		st = "accepted"
	case r.RevokedAt != 0:
		st = "revoked"
	case now.UnixMilli() >= r.ExpiresAt:
		st = "expired"
	}
	return &Invitation{
		ID: r.ID, Email: r.Email, Role: r.Role, Status: st, InvitedBy: r.InvitedBy,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), ExpiresAt: time.UnixMilli(r.ExpiresAt).UTC(), Version: version,
	}
}

// invitation tokens name their workspace, like refresh tokens.
func newInviteToken(tenant string) string {
	return "tfi_" + strings.ReplaceAll(tenant, "-", "") + "_" + randomToken(32)
}

func inviteTenant(tok string) (string, bool) {
	return refreshTenant(strings.Replace(tok, "tfi_", "tfr_", 1))
}

// Invite creates an invitation (Owners and Admins; only Owners invite
// Owners). Until mail delivery exists the link is returned to the admin and
// logged.
func (s *Service) Invite(ctx context.Context, p Principal, email string, role Role) (*Invitation, error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins invite people")
	}
	if role == "" {
		role = RoleMember
	}
	if !role.valid() {
		return nil, invalid("role", "invalid_role", "role is owner, admin, member or guest")
	}
	if role == RoleOwner && p.Role != RoleOwner {
		return nil, forbidden("only an Owner can invite an Owner")
	}
	email, err := normalizeEmail("email", email)
	if err != nil {
		return nil, err
	}
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(p.Tenant)
	if _, err := v.Get(kEmail(email)); err == nil {
		return nil, &Error{Code: "already_member", Field: "email", Message: "someone with this email is already a member of the workspace", Err: ErrConflict}
	}
	if n, err := counterValue(v, kUsersCnt); err != nil {
		return nil, err
	} else if plan.MaxUsers != licensing.Unlimited && n >= int64(plan.MaxUsers) {
		return nil, planLimit("users", plan.Name, int64(plan.MaxUsers))
	}
	inviter, _, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil {
		return nil, err
	}
	if s.MailEnabled() && inviter.EmailVerifiedAt == 0 {
		return nil, &Error{Code: "email_unverified", Message: "confirm your email address before inviting others (we sent you a link; POST /api/v1/me/verify-email sends another)", Err: ErrForbidden}
	}
	token := newInviteToken(p.Tenant)
	now := s.now()
	inv := inviteRecord{
		ID: newID(), Email: email, Role: role, TokenHash: hashToken(token), InvitedBy: p.actor(),
		CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(s.cfg.InviteTTL).UnixMilli(),
	}
	link := s.link("/invite/" + token)
	ch := s.newChange(p.Tenant, "invitation.create", p.actor())
	ch.put(kInvite(inv.ID), inv, 1)
	ch.put(kInviteToken(inv.TokenHash), map[string]string{"id": inv.ID}, 1)
	s.activity(ch, activityInput{Kind: "invitation.created", TargetKind: "invitation", TargetID: inv.ID, After: map[string]any{"email": email, "role": role}})
	s.audit(ctx, ch, auditInput{Action: "invitation.create", TargetKind: "invitation", TargetID: inv.ID, Detail: map[string]any{"role": role}})
	ws, err := s.mailWorkspace(v)
	if err != nil {
		return nil, err
	}
	ws.Inviter, ws.Role, ws.Link, ws.Expires = inviter.Name, string(role), link, humanDuration(int(s.cfg.InviteTTL.Hours()))
	if err := s.enqueueMail(ch, "invitation", email, ws); err != nil {
		return nil, err
	}
	if _, err := s.commit(ctx, log, func() (*change, error) { return ch, nil }); err != nil {
		return nil, err
	}
	out := inv.view(now, 1)
	if !s.MailEnabled() {
		// No mail on this installation: the admin hands the link over.
		out.Token, out.Link = token, link
		s.log.Info("invitation created; mail delivery is not configured, so the link goes to the inviting admin", "workspace", p.Tenant, "invitation", inv.ID)
	}
	return out, nil
}

// link makes an absolute link into the web UI.
func (s *Service) link(path string) string { return strings.TrimRight(s.cfg.BaseURL, "/") + path }

// mailWorkspace fills the workspace part of a mail.
func (s *Service) mailWorkspace(v storage.View) (mailData, error) {
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return mailData{}, err
	}
	return mailData{Workspace: ws.Name, BrandColor: ws.Branding.PrimaryColor}, nil
}

// counterValue reads a counter written by OpAdd.
func counterValue(v storage.View, key storage.Key) (int64, error) {
	rec, err := v.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(rec.Value) != 8 {
		return 0, errors.New("engine: malformed counter")
	}
	var n int64
	for _, b := range rec.Value {
		n = n<<8 | int64(b)
	}
	return n, nil
}

// ListInvitations lists invitations, newest first (Owners and Admins).
func (s *Service) ListInvitations(ctx context.Context, p Principal, pg PageRequest) (*Page[Invitation], error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins see invitations")
	}
	_, v := s.tenant(p.Tenant)
	now := s.now()
	return scanPage(v, storage.K("inv"), pg, true, func(_ storage.Key, r storage.Record) (*Invitation, error) {
		var inv inviteRecord
		if err := jsonDecode(r.Value, &inv); err != nil {
			return nil, err
		}
		return inv.view(now, r.Version), nil
	})
}

// RevokeInvitation cancels a pending invitation.
func (s *Service) RevokeInvitation(ctx context.Context, p Principal, id string) error {
	if !p.Role.isAdmin() {
		return forbidden("only Owners and Admins manage invitations")
	}
	if !validID(id) {
		return notFound("invitation")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		inv, rec, err := getRecord[inviteRecord](v, kInvite(id))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("invitation")
			}
			return nil, err
		}
		if inv.AcceptedAt != 0 || inv.RevokedAt != 0 {
			return nil, conflict("invitation_closed", "the invitation was already accepted or revoked")
		}
		ch := s.newChange(p.Tenant, "invitation.revoke", p.actor())
		ch.expect(kInvite(id), rec.Version)
		inv.RevokedAt = s.now().UnixMilli()
		ch.put(kInvite(id), inv, rec.Version+1)
		// The token's index stays (as after acceptance and resending), so
		// a later use of the link is recognised and audited.
		s.activity(ch, activityInput{Kind: "invitation.revoked", TargetKind: "invitation", TargetID: id})
		s.audit(ctx, ch, auditInput{Action: "invitation.revoke", TargetKind: "invitation", TargetID: id})
		return ch, nil
	})
	return err
}

// ResendInvitation mails a pending (or expired) invitation again with a new
// link: the old link stops working and the expiry starts over (Owners and
// Admins; only Owners for an Owner invitation). Without mail on the
// installation the new link goes to the admin, as at creation.
func (s *Service) ResendInvitation(ctx context.Context, p Principal, id string) (*Invitation, error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins manage invitations")
	}
	if !validID(id) {
		return nil, notFound("invitation")
	}
	log, v := s.tenant(p.Tenant)
	inviter, _, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil {
		return nil, err
	}
	if s.MailEnabled() && inviter.EmailVerifiedAt == 0 {
		return nil, &Error{Code: "email_unverified", Message: "confirm your email address before inviting others", Err: ErrForbidden}
	}
	token := newInviteToken(p.Tenant)
	link := s.link("/invite/" + token)
	var out *Invitation
	_, err = s.commit(ctx, log, func() (*change, error) {
		inv, rec, err := getRecord[inviteRecord](v, kInvite(id))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("invitation")
			}
			return nil, err
		}
		if inv.Role == RoleOwner && p.Role != RoleOwner {
			return nil, forbidden("only an Owner can resend an Owner invitation")
		}
		if inv.AcceptedAt != 0 || inv.RevokedAt != 0 {
			return nil, conflict("invitation_closed", "the invitation was already accepted or revoked")
		}
		now := s.now()
		ch := s.newChange(p.Tenant, "invitation.resend", p.actor())
		ch.expect(kInvite(id), rec.Version)
		// The old link's index stays, pointing at the invitation whose
		// token hash no longer matches it: a later use is audited.
		inv.TokenHash = hashToken(token)
		inv.ExpiresAt = now.Add(s.cfg.InviteTTL).UnixMilli()
		ch.put(kInvite(id), inv, rec.Version+1)
		ch.put(kInviteToken(inv.TokenHash), map[string]string{"id": inv.ID}, 1)
		s.activity(ch, activityInput{Kind: "invitation.resent", TargetKind: "invitation", TargetID: id})
		s.audit(ctx, ch, auditInput{Action: "invitation.resend", TargetKind: "invitation", TargetID: id})
		d, err := s.mailWorkspace(v)
		if err != nil {
			return nil, err
		}
		d.Inviter, d.Role, d.Link, d.Expires = inviter.Name, string(inv.Role), link, humanDuration(int(s.cfg.InviteTTL.Hours()))
		if err := s.enqueueMail(ch, "invitation_resent", inv.Email, d); err != nil {
			return nil, err
		}
		out = inv.view(now, rec.Version+1)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	if !s.MailEnabled() {
		out.Token, out.Link = token, link
	}
	return out, nil
}

// InvitationPreview is what the accept page shows before sign-up.
type InvitationPreview struct {
	WorkspaceName string    `json:"workspace_name"`
	WorkspaceSlug string    `json:"workspace_slug"`
	Email         string    `json:"email"`
	Role          Role      `json:"role"`
	ExpiresAt     time.Time `json:"expires_at"`
}

func (s *Service) pendingInvite(token string) (string, *inviteRecord, storage.Record, error) {
	tenant, ok := inviteTenant(token)
	if !ok {
		return "", nil, storage.Record{}, notFound("invitation")
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		return "", nil, storage.Record{}, notFound("invitation")
	}
	_, v := s.tenant(tenant)
	ix, _, err := getRecord[struct {
		ID string `json:"id"`
	}](v, kInviteToken(hashToken(token)))
	if err != nil {
		return "", nil, storage.Record{}, notFound("invitation")
	}
	inv, rec, err := getRecord[inviteRecord](v, kInvite(ix.ID))
	if err != nil || inviteClosed(inv, token, s.now()) != "" {
		return "", nil, rec, notFound("invitation")
	}
	return tenant, inv, rec, nil
}

// inviteClosed says why token no longer opens inv ("" while it does).
func inviteClosed(inv *inviteRecord, token string, now time.Time) string {
	switch {
	case inv.AcceptedAt != 0:
		return "accepted"
	case inv.RevokedAt != 0:
		return "revoked"
	case inv.TokenHash != hashToken(token):
		return "superseded" // resent with a new link
	case now.UnixMilli() >= inv.ExpiresAt:
		return "expired"
	}
	return ""
}

// inviteRefused records why an invitation token was refused at
// acceptance: in its workspace's trail when the workspace issued it (used,
// revoked, resent or expired), else in the log and the refusal counters.
// Previews (GET, not limited per address) only read.
func (s *Service) inviteRefused(ctx context.Context, token string) {
	tenant, ok := inviteTenant(token)
	if !ok || !strings.HasPrefix(token, "tfi_") {
		s.refusedUnaudited(ctx, "invitation", "malformed")
		return
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		s.refusedUnaudited(ctx, "invitation", "unknown_workspace")
		return
	}
	_, v := s.tenant(tenant)
	ix, _, err := getRecord[struct {
		ID string `json:"id"`
	}](v, kInviteToken(hashToken(token)))
	if err != nil {
		s.refusedUnaudited(ctx, "invitation", "unknown_token")
		return
	}
	inv, _, err := getRecord[inviteRecord](v, kInvite(ix.ID))
	if err != nil {
		s.refusedUnaudited(ctx, "invitation", "unknown_token")
		return
	}
	reason := inviteClosed(inv, token, s.now())
	if reason == "" {
		return // refused for another reason (a concurrent acceptance)
	}
	s.auditEvent(ctx, tenant, "anonymous", auditInput{Action: "auth.token_refused", TargetKind: "invitation", TargetID: inv.ID, Outcome: "denied",
		Detail: map[string]any{"purpose": "invitation", "reason": reason}})
}

// PreviewInvitation describes a pending invitation to whoever holds its token.
func (s *Service) PreviewInvitation(ctx context.Context, token string) (*InvitationPreview, error) {
	tenant, inv, _, err := s.pendingInvite(token)
	if err != nil {
		return nil, err
	}
	e, err := s.workspaceRecord(tenant)
	if err != nil {
		return nil, err
	}
	return &InvitationPreview{WorkspaceName: e.Name, WorkspaceSlug: e.Slug, Email: inv.Email, Role: inv.Role, ExpiresAt: time.UnixMilli(inv.ExpiresAt).UTC()}, nil
}

// AcceptInput completes an invitation.
type AcceptInput struct {
	Token    string
	Name     string
	Password string
	Timezone string
	Client   ClientInfo
}

// AcceptInvitation creates the invited account (counted against the plan's
// users) and signs it in.
func (s *Service) AcceptInvitation(ctx context.Context, in AcceptInput) (*Created, error) {
	name, err := validateName("name", in.Name, 100)
	if err != nil {
		return nil, err
	}
	if err := validatePassword("password", in.Password); err != nil {
		return nil, err
	}
	tz := in.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if err := validateTimezone("timezone", tz); err != nil {
		return nil, err
	}
	tenant, _, _, err := s.pendingInvite(in.Token)
	if err != nil {
		s.inviteRefused(ctx, in.Token)
		return nil, err
	}
	plan, err := s.plan(tenant)
	if err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(tenant)
	var out *Created
	_, err = s.commit(ctx, log, func() (*change, error) {
		_, inv, rec, err := s.pendingInvite(in.Token)
		if err != nil {
			return nil, err
		}
		if _, err := v.Get(kEmail(inv.Email)); err == nil {
			return nil, &Error{Code: "already_member", Message: "this email already belongs to a member of the workspace", Err: ErrConflict}
		}
		now := s.now().UnixMilli()
		u := userRecord{
			ID: newID(), Email: inv.Email, Name: name, PasswordHash: hash, Role: inv.Role, Status: StatusActive,
			Timezone: tz, WorkHours: defaultWorkHours, Notifications: defaultNotificationPrefs(), CreatedAt: now, UpdatedAt: now,
			// The invitation link reached this address (or the admin who
			// vouched for it handed it over): the email is confirmed.
			EmailVerifiedAt: now, MFASince: now,
		}
		ch := s.newChange(tenant, "invitation.accept", u.ID)
		ch.plan = plan.Name
		ch.expect(kInvite(inv.ID), rec.Version)
		ch.expect(kEmail(inv.Email), 0)
		inv.AcceptedAt, inv.AcceptedBy = now, u.ID
		ch.put(kInvite(inv.ID), inv, rec.Version+1)
		ch.put(kUser(u.ID), u, 1)
		ch.put(kEmail(u.Email), map[string]string{"id": u.ID}, 1)
		ch.addBounded(kUsersCnt, 1, licensing.Bound(plan.MaxUsers), "users")
		s.activity(ch, activityInput{Kind: "member.joined", TargetKind: "member", TargetID: u.ID, After: map[string]any{"name": name, "role": inv.Role}})
		s.audit(ctx, ch, auditInput{Action: "invitation.accept", TargetKind: "invitation", TargetID: inv.ID, Detail: map[string]any{"member": u.ID, "role": inv.Role}})
		toks, err := s.newSession(ch, tenant, u.ID, "password", in.Client)
		if err != nil {
			return nil, err
		}
		ws, wrec, err := getRecord[workspaceRecord](v, kWorkspace)
		if err != nil {
			return nil, err
		}
		out = &Created{Workspace: ws.view(plan.ID, wrec.Version), Owner: u.view(1), Tokens: toks}
		return ch, nil
	})
	return out, err
}
