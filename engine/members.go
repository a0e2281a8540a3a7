package engine

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

// Account statuses.
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
)

// ChannelPrefs say where one kind of notification goes.
type ChannelPrefs struct {
	InApp bool `json:"in_app"`
	Email bool `json:"email"`
}

// NotificationPrefs are a person's notification choices per event.
type NotificationPrefs struct {
	Mentions      ChannelPrefs `json:"mentions"`
	Assignments   ChannelPrefs `json:"assignments"`
	Comments      ChannelPrefs `json:"comments" doc:"Comments on tasks you follow"`
	DueSoon       ChannelPrefs `json:"due_soon"`
	StatusChanges ChannelPrefs `json:"status_changes"`
	Digest        bool         `json:"digest" doc:"Weekly digest email"`
}

func defaultNotificationPrefs() NotificationPrefs {
	on := ChannelPrefs{InApp: true, Email: true}
	return NotificationPrefs{
		Mentions: on, Assignments: on, Comments: ChannelPrefs{InApp: true},
		DueSoon: on, StatusChanges: ChannelPrefs{InApp: true}, Digest: true,
	}
}

// userRecord is an account of one workspace (DESIGN rule 8).
type userRecord struct {
	ID            string            `json:"id"`
	Email         string            `json:"email"`
	Name          string            `json:"name"`
	PasswordHash  string            `json:"password_hash,omitempty"`
	Role          Role              `json:"role"`
	Status        string            `json:"status"`
	Timezone      string            `json:"timezone"`
	WorkHours     WorkHours         `json:"work_hours"`
	Notifications NotificationPrefs `json:"notifications"`
	CreatedAt     int64             `json:"created_at"`
	UpdatedAt     int64             `json:"updated_at"`

	EmailVerifiedAt int64 `json:"email_verified_at,omitempty"`
	// MFASince is when a second factor became expected of this account
	// (its creation, or its promotion to Owner or Admin): the grace period
	// runs from it.
	MFASince int64     `json:"mfa_since,omitempty"`
	MFA      mfaConfig `json:"mfa"`
	// Sign-in throttling: failures in the current window, and the lock.
	FailedLogins  int   `json:"failed_logins,omitempty"`
	FailedSince   int64 `json:"failed_since,omitempty"`
	LockedUntil   int64 `json:"locked_until,omitempty"`
	FailedMFA     int   `json:"failed_mfa,omitempty"`
	MFALockedTill int64 `json:"mfa_locked_until,omitempty"`
}

// Member is the API view of an account.
type Member struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      Role      `json:"role" enum:"owner,admin,member,guest"`
	Status    string    `json:"status" enum:"active,deactivated"`
	Timezone  string    `json:"timezone"`
	WorkHours WorkHours `json:"work_hours"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   uint64    `json:"version"`
	// MFAEnabled says whether two-factor authentication is on. Only Owners
	// and Admins see it for other members (they are the ones who reset it);
	// for everyone else it is left out. GET /me always carries it.
	MFAEnabled *bool `json:"mfa_enabled,omitempty" doc:"Whether two-factor authentication is on. In member views it is present only when the caller is an Owner or Admin (left out for everyone else); GET /me always carries it for the caller's own account."`
}

// Me is the caller's own account, with private preferences.
type Me struct {
	Member
	WorkspaceID   string            `json:"workspace_id"`
	Notifications NotificationPrefs `json:"notifications"`
	EmailVerified bool              `json:"email_verified"`
	// RecoveryCodesRemaining is how many unused recovery codes are left.
	RecoveryCodesRemaining int `json:"recovery_codes_remaining"`
	// MFARequiredBy is set for Owners and Admins without a second factor:
	// after it, they can reach nothing but enrolment.
	MFARequiredBy *time.Time `json:"mfa_required_by,omitempty"`
}

func (u *userRecord) view(version uint64) *Member {
	return &Member{
		ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, Status: u.Status,
		Timezone: u.Timezone, WorkHours: u.WorkHours,
		CreatedAt: time.UnixMilli(u.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(u.UpdatedAt).UTC(),
		Version: version,
	}
}

// viewFor is the member view as p may see it: Owners and Admins also see
// whether two-factor authentication is on.
func (u *userRecord) viewFor(p Principal, version uint64) *Member {
	m := u.view(version)
	if p.Role.isAdmin() {
		on := u.MFA.EnabledAt != 0
		m.MFAEnabled = &on
	}
	return m
}

func normalizeEmail(field, email string) (string, error) {
	email = strings.TrimSpace(email)
	if len(email) > 254 {
		return "", invalid(field, "invalid_email", "the email address is too long")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email, "@") {
		return "", invalid(field, "invalid_email", "%q is not an email address", email)
	}
	return strings.ToLower(email), nil
}

func (s *Service) userByEmail(v storage.View, email string) (*userRecord, error) {
	e, err := normalizeEmail("email", email)
	if err != nil {
		return nil, err
	}
	ix, _, err := getRecord[struct {
		ID string `json:"id"`
	}](v, kEmail(e))
	if err != nil {
		return nil, err
	}
	u, _, err := getRecord[userRecord](v, kUser(ix.ID))
	return u, err
}

// ListMembers lists the workspace's accounts, by creation.
func (s *Service) ListMembers(ctx context.Context, p Principal, pg PageRequest) (*Page[Member], error) {
	_, v := s.tenant(p.Tenant)
	return scanPage(v, storage.K("user"), pg, false, func(k storage.Key, r storage.Record) (*Member, error) {
		var u userRecord
		if err := jsonDecode(r.Value, &u); err != nil {
			return nil, err
		}
		return u.viewFor(p, r.Version), nil
	})
}

// GetMember returns one account of the caller's workspace.
func (s *Service) GetMember(ctx context.Context, p Principal, id string) (*Member, error) {
	if !validID(id) {
		return nil, notFound("member")
	}
	_, v := s.tenant(p.Tenant)
	u, rec, err := getRecord[userRecord](v, kUser(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, notFound("member")
		}
		return nil, err
	}
	return u.viewFor(p, rec.Version), nil
}

// MemberPatch changes a member's role or status.
type MemberPatch struct {
	Role    *Role
	Status  *string
	IfMatch uint64
}

// UpdateMember changes another member's role or deactivates them. Admins
// manage Members and Guests; only Owners touch Owners or make new ones; the
// last active Owner cannot be demoted or deactivated; nobody changes their
// own role here.
func (s *Service) UpdateMember(ctx context.Context, p Principal, id string, in MemberPatch) (*Member, error) {
	if !validID(id) {
		return nil, notFound("member")
	}
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins manage people")
	}
	if in.Role != nil && !in.Role.valid() {
		return nil, invalid("role", "invalid_role", "role is owner, admin, member or guest")
	}
	if in.Status != nil && *in.Status != StatusActive && *in.Status != StatusDeactivated {
		return nil, invalid("status", "invalid_status", "status is active or deactivated")
	}
	if id == p.UserID {
		return nil, forbidden("you cannot change your own role or status")
	}
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(p.Tenant)
	var out *Member
	_, err = s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(id))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("member")
			}
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		newRole, newStatus := u.Role, u.Status
		if in.Role != nil {
			newRole = *in.Role
		}
		if in.Status != nil {
			newStatus = *in.Status
		}
		if (u.Role == RoleOwner || newRole == RoleOwner) && p.Role != RoleOwner && newRole != u.Role {
			return nil, forbidden("only an Owner can grant or remove the Owner role")
		}
		if u.Role == RoleOwner && p.Role != RoleOwner {
			return nil, forbidden("only an Owner can change another Owner")
		}
		ch := s.newChange(p.Tenant, "member.update", p.actor())
		ch.plan = plan.Name
		ch.expect(kUser(id), rec.Version)
		if u.Role == RoleOwner && u.Status == StatusActive && (newRole != RoleOwner || newStatus != StatusActive) {
			owners, err := s.activeOwners(v)
			if err != nil {
				return nil, err
			}
			if len(owners) <= 1 {
				return nil, conflict("last_owner", "a workspace needs at least one active Owner")
			}
			// Other owners might be demoted concurrently: pin them.
			for _, o := range owners {
				if o.id != id {
					ch.expect(kUser(o.id), o.version)
				}
			}
		}
		if u.Status != newStatus {
			if newStatus == StatusActive {
				ch.addBounded(kUsersCnt, 1, licensing.Bound(plan.MaxUsers), "users")
			} else {
				ch.addBounded(kUsersCnt, -1, licensing.Bound(plan.MaxUsers), "users")
			}
		}
		s.diffActivity(ch, "member", id, "", "", map[string][2]any{
			"role":   {u.Role, newRole},
			"status": {u.Status, newStatus},
		})
		if newRole.isAdmin() && !u.Role.isAdmin() {
			// A second factor is now expected: the grace period starts.
			u.MFASince = s.now().UnixMilli()
		}
		s.audit(ctx, ch, auditInput{Action: "member.update", TargetKind: "member", TargetID: id,
			Detail: map[string]any{"role": [2]Role{u.Role, newRole}, "status": [2]string{u.Status, newStatus}}})
		u.Role, u.Status = newRole, newStatus
		u.UpdatedAt = s.now().UnixMilli()
		ch.put(kUser(id), u, rec.Version+1)
		out = u.viewFor(p, rec.Version+1)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type ownerRef struct {
	id      string
	version uint64
}

func (s *Service) activeOwners(v storage.View) ([]ownerRef, error) {
	var owners []ownerRef
	err := v.Scan(storage.K("user"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var u userRecord
		if err := jsonDecode(r.Value, &u); err != nil {
			return err
		}
		if u.Role == RoleOwner && u.Status == StatusActive {
			owners = append(owners, ownerRef{id: u.ID, version: r.Version})
		}
		return nil
	})
	return owners, err
}

// GetMe returns the caller's account.
func (s *Service) GetMe(ctx context.Context, p Principal) (*Me, error) {
	_, v := s.tenant(p.Tenant)
	u, rec, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil {
		return nil, err
	}
	return s.me(p, u, rec.Version)
}

func (s *Service) me(p Principal, u *userRecord, version uint64) (*Me, error) {
	mfaOn := u.MFA.EnabledAt != 0
	m := u.view(version)
	m.MFAEnabled = &mfaOn // one's own, always
	out := &Me{Member: *m, WorkspaceID: p.Tenant, Notifications: u.Notifications,
		EmailVerified:          u.EmailVerifiedAt != 0 || !s.MailEnabled(),
		RecoveryCodesRemaining: len(u.MFA.RecoveryHash)}
	if deadline, ok, err := s.mfaDeadline(p.Tenant, u); err != nil {
		return nil, err
	} else if ok {
		out.MFARequiredBy = &deadline
	}
	return out, nil
}

// MePatch changes the caller's own profile.
type MePatch struct {
	Name          *string
	Timezone      *string
	WorkHours     *WorkHours
	Notifications *NotificationPrefs
	IfMatch       uint64
}

// UpdateMe changes the caller's profile.
func (s *Service) UpdateMe(ctx context.Context, p Principal, in MePatch) (*Me, error) {
	if in.Name != nil {
		n, err := validateName("name", *in.Name, 100)
		if err != nil {
			return nil, err
		}
		in.Name = &n
	}
	if in.Timezone != nil {
		if err := validateTimezone("timezone", *in.Timezone); err != nil {
			return nil, err
		}
	}
	if in.WorkHours != nil {
		if err := validateWorkHours("work_hours", *in.WorkHours); err != nil {
			return nil, err
		}
	}
	log, v := s.tenant(p.Tenant)
	var out *Me
	_, err := s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(p.UserID))
		if err != nil {
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		ch := s.newChange(p.Tenant, "me.update", p.actor())
		ch.expect(kUser(u.ID), rec.Version)
		s.diffActivity(ch, "member", u.ID, "", "", map[string][2]any{
			"name":     {u.Name, deref(in.Name, u.Name)},
			"timezone": {u.Timezone, deref(in.Timezone, u.Timezone)},
		})
		u.Name = deref(in.Name, u.Name)
		u.Timezone = deref(in.Timezone, u.Timezone)
		if in.WorkHours != nil {
			u.WorkHours = *in.WorkHours
		}
		if in.Notifications != nil {
			u.Notifications = *in.Notifications
		}
		u.UpdatedAt = s.now().UnixMilli()
		ch.put(kUser(u.ID), u, rec.Version+1)
		out, err = s.me(p, u, rec.Version+1)
		if err != nil {
			return nil, err
		}
		return ch, nil
	})
	return out, err
}

// ChangePassword sets a new password after checking the current one, and
// ends the caller's other sessions.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string) error {
	if err := validatePassword("new_password", next); err != nil {
		return err
	}
	if p.Operator || p.UserID == "" {
		return forbidden("this is an account action")
	}
	_, v := s.tenant(p.Tenant)
	// Throttled and counted like sign-in failures.
	if _, err := s.reauthenticate(ctx, p, current); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == "invalid_credentials" {
			return &Error{Code: "invalid_credentials", Field: "current_password", Message: "the current password is not correct", Err: ErrForbidden}
		}
		return err
	}
	hash, err := s.hashPassword(ctx, next)
	if err != nil {
		return err
	}
	log, _ := s.tenant(p.Tenant)
	_, err = s.commit(ctx, log, func() (*change, error) {
		u, rec, err := getRecord[userRecord](v, kUser(p.UserID))
		if err != nil {
			return nil, err
		}
		ch := s.newChange(p.Tenant, "me.password", p.actor())
		ch.expect(kUser(u.ID), rec.Version)
		s.audit(ctx, ch, auditInput{Action: "auth.password_changed", TargetKind: "member", TargetID: u.ID})
		u.PasswordHash = hash
		u.UpdatedAt = s.now().UnixMilli()
		ch.put(kUser(u.ID), u, rec.Version+1)
		now := s.now().UnixMilli()
		err = v.Scan(kUserSessions(u.ID), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			sid := lastPart(k)
			if sid == p.SessionID {
				return nil
			}
			sess, srec, err := getRecord[sessionRecord](v, kSession(sid))
			if err != nil || sess.RevokedAt != 0 {
				return nil
			}
			sess.RevokedAt = now
			ch.expect(kSession(sid), srec.Version)
			ch.put(kSession(sid), sess, srec.Version+1)
			return nil
		})
		return ch, err
	})
	return err
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
