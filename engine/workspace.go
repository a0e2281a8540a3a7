package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

// workspaceEntry is the platform's registry record of a workspace.
type workspaceEntry struct {
	ID        string `json:"id"`
	Slug      string `json:"slug"`
	Name      string `json:"name"`
	Plan      string `json:"plan"`
	Status    string `json:"status"`
	CreatedAt int64  `json:"created_at"`
	// CORSIndexed are the origins the platform's CORS index holds for the
	// workspace (registry.go keeps them equal to the record's CORSOrigins);
	// nil in entries older than this field.
	CORSIndexed *[]string `json:"cors_indexed,omitempty"`
}

// WorkHours are the hours someone (or a workspace by default) works, in
// their timezone.
type WorkHours struct {
	Start string `json:"start" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]$" example:"09:00" doc:"Start of the working day, HH:MM"`
	End   string `json:"end" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]$" example:"17:00" doc:"End of the working day, HH:MM"`
	Days  []int  `json:"days" maxItems:"7" doc:"ISO weekdays worked, 1 = Monday … 7 = Sunday"`
}

// Branding is a workspace's look.
type Branding struct {
	LogoURL      string `json:"logo_url" maxLength:"2048" doc:"https URL of the logo, or empty"`
	PrimaryColor string `json:"primary_color" pattern:"^(#[0-9a-fA-F]{6})?$" example:"#4f46e5"`
	AccentColor  string `json:"accent_color" pattern:"^(#[0-9a-fA-F]{6})?$" example:"#f59e0b"`
}

// workspaceRecord is the tenant's own settings record.
type workspaceRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Timezone  string    `json:"timezone"`
	WorkHours WorkHours `json:"work_hours"`
	Branding  Branding  `json:"branding"`
	CreatedAt int64     `json:"created_at"`
	UpdatedAt int64     `json:"updated_at"`
	// MFAGraceDays is how long Owners and Admins may work without a second
	// factor (nil: the default 7; 0: at once).
	MFAGraceDays *int `json:"mfa_grace_days,omitempty"`
	// IPAllowlist limits sign-in and API access to these networks (CIDRs)
	// while the plan includes IP allowlisting; empty allows every address.
	IPAllowlist []string `json:"ip_allowlist,omitempty"`
	// CORSOrigins are the web origins whose pages may call the API with
	// this workspace's credentials (cors.go).
	CORSOrigins []string `json:"cors_origins,omitempty"`
}

// Workspace is the API view of a workspace.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Timezone  string    `json:"timezone"`
	WorkHours WorkHours `json:"work_hours"`
	Branding  Branding  `json:"branding"`
	Plan      string    `json:"plan"`
	// MFAGraceDays is how many days Owners and Admins may work before they
	// must enrol a second factor (0: at once).
	MFAGraceDays int `json:"mfa_grace_days"`
	// IPAllowlist is where sign-in and API access may come from (CIDRs;
	// empty: anywhere). Enforced on plans with IP allowlisting.
	IPAllowlist []string `json:"ip_allowlist"`
	// CORSOrigins may call the API from a browser with this workspace's
	// bearer tokens or API keys.
	CORSOrigins []string  `json:"cors_origins"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     uint64    `json:"version"`
}

var defaultWorkHours = WorkHours{Start: "09:00", End: "17:00", Days: []int{1, 2, 3, 4, 5}}

func jsonDecode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("engine: decode record: %w", err)
	}
	return nil
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$`)

var reservedSlugs = map[string]bool{
	"api": true, "admin": true, "www": true, "app": true, "setup": true, "signup": true,
	"login": true, "static": true, "assets": true, "platform": true, "teamflow": true,
}

func validateSlug(field, slug string) error {
	if !slugRE.MatchString(slug) || strings.Contains(slug, "--") {
		return invalid(field, "invalid_slug", "the slug must be 3–40 lowercase letters, digits or single hyphens, starting and ending with a letter or digit")
	}
	if reservedSlugs[slug] {
		return invalid(field, "slug_reserved", "the slug %q is reserved", slug)
	}
	return nil
}

func validateName(field, name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalid(field, "required", "%s must not be empty", field)
	}
	if len([]rune(name)) > max {
		return "", invalid(field, "too_long", "%s may have at most %d characters", field, max)
	}
	if strings.ContainsAny(name, "\x00\r\n") {
		return "", invalid(field, "invalid_characters", "%s must be one line of text", field)
	}
	return name, nil
}

func validateTimezone(field, tz string) error {
	if tz == "" || len(tz) > 64 {
		return invalid(field, "invalid_timezone", "unknown timezone %q (use an IANA name such as Europe/Berlin)", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		return invalid(field, "invalid_timezone", "unknown timezone %q (use an IANA name such as Europe/Berlin)", tz)
	}
	return nil
}

func validateWorkHours(field string, wh WorkHours) error {
	start, err1 := time.Parse("15:04", wh.Start)
	end, err2 := time.Parse("15:04", wh.End)
	if err1 != nil || err2 != nil {
		return invalid(field, "invalid_work_hours", "work hours are HH:MM")
	}
	if !end.After(start) {
		return invalid(field, "invalid_work_hours", "work hours must end after they start")
	}
	seen := map[int]bool{}
	for _, d := range wh.Days {
		if d < 1 || d > 7 || seen[d] {
			return invalid(field, "invalid_work_hours", "days are distinct ISO weekdays 1–7")
		}
		seen[d] = true
	}
	return nil
}

func validateBranding(b Branding) error {
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return invalid("branding.logo_url", "invalid_url", "the logo must be an https URL")
		}
	}
	for f, c := range map[string]string{"branding.primary_color": b.PrimaryColor, "branding.accent_color": b.AccentColor} {
		if c != "" && !hexColorRE.MatchString(c) {
			return invalid(f, "invalid_color", "colours are #RRGGBB")
		}
	}
	return nil
}

var hexColorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// workspaceIDs lists every workspace's ID, for the jobs that visit each.
func (s *Service) workspaceIDs() ([]string, error) {
	_, sys := s.sys()
	var ids []string
	err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		ids = append(ids, lastPart(k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: list workspaces: %w", err)
	}
	return ids, nil
}

// workspaceBySlug resolves a slug; "" when unknown.
func (s *Service) workspaceBySlug(slug string) (string, error) {
	if slug == "" || len(slug) > 64 {
		return "", notFound("workspace")
	}
	_, sys := s.sys()
	e, _, err := getRecord[slugRecord](sys, sysSlug(slug))
	if err != nil || e.Pending {
		// A pending slug is claimed by a rename that has not finished.
		return "", notFound("workspace")
	}
	return e.ID, nil
}

// workspaceRecord reads the registry entry of an active workspace.
func (s *Service) workspaceRecord(tenant string) (*workspaceEntry, error) {
	_, sys := s.sys()
	e, _, err := getRecord[workspaceEntry](sys, sysWorkspace(tenant))
	if err != nil {
		return nil, notFound("workspace")
	}
	if e.Status != "active" {
		return nil, notFound("workspace")
	}
	return e, nil
}

func (s *Service) plan(tenant string) (licensing.Plan, error) {
	e, err := s.workspaceRecord(tenant)
	if err != nil {
		return licensing.Plan{}, err
	}
	p, err := licensing.Lookup(e.Plan)
	if err != nil {
		return licensing.Plan{}, fmt.Errorf("engine: workspace %s: %w", tenant, err)
	}
	return p, nil
}

// RateLimits returns a workspace's hourly API allowances from its plan.
func (s *Service) RateLimits(ctx context.Context, tenant string) (perUser, perWorkspace int, err error) {
	p, err := s.plan(tenant)
	if err != nil {
		return 0, 0, err
	}
	return p.APIRequestsPerUserH, p.APIRequestsPerTenant, nil
}

// CreateWorkspaceInput creates a workspace and its first Owner.
type CreateWorkspaceInput struct {
	WorkspaceName string
	WorkspaceSlug string
	Name          string
	Email         string
	Password      string
	Timezone      string
	Client        ClientInfo
}

// Created is a new workspace with its Owner signed in.
type Created struct {
	Workspace *Workspace
	Owner     *Member
	Tokens    *Tokens
}

func (s *Service) createWorkspace(ctx context.Context, in CreateWorkspaceInput, kind string, extra func(ch *change)) (*Created, error) {
	wsName, err := validateName("workspace_name", in.WorkspaceName, 100)
	if err != nil {
		return nil, err
	}
	slug := strings.ToLower(strings.TrimSpace(in.WorkspaceSlug))
	if err := validateSlug("workspace_slug", slug); err != nil {
		return nil, err
	}
	name, err := validateName("name", in.Name, 100)
	if err != nil {
		return nil, err
	}
	email, err := normalizeEmail("email", in.Email)
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
	plan, err := licensing.Lookup(s.cfg.DefaultPlan)
	if err != nil {
		return nil, fmt.Errorf("engine: default plan: %w", err)
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	now := s.now()
	tenant := newID()
	owner := userRecord{
		ID: newID(), Email: email, Name: name, PasswordHash: hash, Role: RoleOwner, Status: StatusActive,
		Timezone: tz, WorkHours: defaultWorkHours, Notifications: defaultNotificationPrefs(),
		CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli(), MFASince: now.UnixMilli(),
	}
	ws := workspaceRecord{
		ID: tenant, Name: wsName, Slug: slug, Timezone: tz, WorkHours: defaultWorkHours,
		CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli(),
	}
	entry := workspaceEntry{ID: tenant, Slug: slug, Name: wsName, Plan: plan.ID, Status: "active", CreatedAt: now.UnixMilli(), CORSIndexed: &[]string{}}

	ch := s.newChange(tenant, kind, owner.ID)
	ch.plan = plan.Name
	ch.expectSys(sysSlug(slug), 0)
	ch.putSys(sysSlug(slug), slugRecord{ID: tenant}, 1)
	ch.putSys(sysWorkspace(tenant), entry, 1)
	ch.put(kWorkspace, ws, 1)
	ch.put(kUser(owner.ID), owner, 1)
	ch.put(kEmail(email), map[string]string{"id": owner.ID}, 1)
	ch.addBounded(kUsersCnt, 1, licensing.Bound(plan.MaxUsers), "users")
	s.activity(ch, activityInput{Kind: "workspace.created", TargetKind: "workspace", TargetID: tenant, After: wsName})
	if extra != nil {
		extra(ch)
	}
	if s.MailEnabled() {
		tok := s.putOneTime(ch, purposeVerify, &owner, verifyTTL)
		d := mailData{Workspace: wsName, Name: name, Link: s.link("/verify-email?token=" + tok), Expires: humanDuration(int(verifyTTL.Hours()))}
		if err := s.enqueueMail(ch, "verify_email", email, d); err != nil {
			return nil, err
		}
	}
	s.audit(ctx, ch, auditInput{Action: kind, TargetKind: "workspace", TargetID: tenant})
	toks, err := s.newSession(ch, tenant, owner.ID, "password", in.Client)
	if err != nil {
		return nil, err
	}
	res, err := s.createLog(tenant).Propose(ctx, &ch.cmd)
	if err != nil {
		return nil, fmt.Errorf("engine: create workspace: %w", err)
	}
	if res.Err != nil {
		var ce *storage.ConflictError
		var le *storage.LimitError
		switch {
		case errors.As(res.Err, &ce) && ce.Key == sysSlug(slug).String():
			return nil, &Error{Code: "slug_taken", Field: "workspace_slug", Message: fmt.Sprintf("the workspace slug %q is taken", slug), Err: ErrConflict}
		case errors.As(res.Err, &le):
			return nil, planLimit(le.Limit, plan.Name, le.Max)
		case errors.Is(res.Err, storage.ErrConflict):
			return nil, conflict("conflict", "the workspace could not be created; try again")
		}
		return nil, fmt.Errorf("engine: create workspace: %w", res.Err)
	}
	out := &Created{Workspace: ws.view(entry.Plan, 1), Owner: owner.view(1), Tokens: toks}
	s.log.Info("workspace created", "workspace", tenant, "slug", slug, "kind", kind)
	return out, nil
}

// Signup creates a workspace by self-service (cloud mode only).
func (s *Service) Signup(ctx context.Context, in CreateWorkspaceInput) (*Created, error) {
	if s.cfg.Mode != ModeCloud {
		return nil, &Error{Code: "signup_disabled", Message: "self-service signup is turned off on this installation; ask its administrator for an invitation", Err: ErrForbidden}
	}
	return s.createWorkspace(ctx, in, "workspace.signup", nil)
}

func (w *workspaceRecord) view(plan string, version uint64) *Workspace {
	return &Workspace{
		ID: w.ID, Name: w.Name, Slug: w.Slug, Timezone: w.Timezone, WorkHours: w.WorkHours,
		Branding: w.Branding, Plan: plan, MFAGraceDays: deref(w.MFAGraceDays, defaultGraceDays), IPAllowlist: nonNil(w.IPAllowlist), CORSOrigins: nonNil(w.CORSOrigins), CreatedAt: time.UnixMilli(w.CreatedAt).UTC(),
		UpdatedAt: time.UnixMilli(w.UpdatedAt).UTC(), Version: version,
	}
}

// GetWorkspace returns the caller's workspace.
func (s *Service) GetWorkspace(ctx context.Context, p Principal) (*Workspace, error) {
	entry, err := s.workspaceRecord(p.Tenant)
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	ws, rec, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return nil, err
	}
	return ws.view(entry.Plan, rec.Version), nil
}

// WorkspacePatch changes workspace settings; nil fields stay.
type WorkspacePatch struct {
	Name         *string
	Slug         *string
	Timezone     *string
	WorkHours    *WorkHours
	Branding     *Branding
	MFAGraceDays *int
	IPAllowlist  *[]string
	CORSOrigins  *[]string
	IfMatch      uint64
}

// UpdateWorkspace changes settings (Owners and Admins).
func (s *Service) UpdateWorkspace(ctx context.Context, p Principal, in WorkspacePatch) (*Workspace, error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins change workspace settings")
	}
	if in.Name != nil {
		n, err := validateName("name", *in.Name, 100)
		if err != nil {
			return nil, err
		}
		in.Name = &n
	}
	if in.Slug != nil {
		slug := strings.ToLower(strings.TrimSpace(*in.Slug))
		if err := validateSlug("slug", slug); err != nil {
			return nil, err
		}
		in.Slug = &slug
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
	if in.Branding != nil {
		if err := validateBranding(*in.Branding); err != nil {
			return nil, err
		}
	}
	if in.MFAGraceDays != nil && (*in.MFAGraceDays < 0 || *in.MFAGraceDays > 90) {
		return nil, invalid("mfa_grace_days", "invalid_grace", "the grace period is 0 to 90 days")
	}
	if in.IPAllowlist != nil {
		list, err := s.validateAllowlist(ctx, p.Tenant, *in.IPAllowlist)
		if err != nil {
			return nil, err
		}
		in.IPAllowlist = &list
	}
	if in.CORSOrigins != nil {
		list, err := validateCORSOrigins(*in.CORSOrigins)
		if err != nil {
			return nil, err
		}
		in.CORSOrigins = &list
	}
	log, v := s.tenant(p.Tenant)
	// A new slug is claimed on the platform route first, the workspace
	// record changes on the workspace's route, then the platform's records
	// follow the record (registry.go).
	claimed := ""
	if in.Slug != nil {
		ws, rec, err := getRecord[workspaceRecord](v, kWorkspace)
		if err != nil {
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		if *in.Slug != ws.Slug {
			if err := s.claimSlug(ctx, p.Tenant, p.actor(), *in.Slug); err != nil {
				return nil, err
			}
			claimed = *in.Slug
		}
	}
	if err := s.hooks.afterClaim(); err != nil {
		return nil, err
	}
	plan := ""
	if entry, err := s.workspaceRecord(p.Tenant); err == nil {
		plan = entry.Plan
	}
	var out *Workspace
	_, err := s.commit(ctx, log, func() (*change, error) {
		ws, rec, err := getRecord[workspaceRecord](v, kWorkspace)
		if err != nil {
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		ch := s.newChange(p.Tenant, "workspace.update", p.actor())
		ch.expect(kWorkspace, rec.Version)
		before := *ws
		if in.Name != nil {
			ws.Name = *in.Name
		}
		if in.Slug != nil && *in.Slug != ws.Slug {
			if *in.Slug != claimed {
				// Renamed to it by someone else meanwhile, then away again.
				return nil, conflict("write_contention", "the workspace is being changed by others; try again")
			}
			ws.Slug = *in.Slug
		}
		if in.Timezone != nil {
			ws.Timezone = *in.Timezone
		}
		if in.WorkHours != nil {
			ws.WorkHours = *in.WorkHours
		}
		if in.Branding != nil {
			ws.Branding = *in.Branding
		}
		if in.MFAGraceDays != nil {
			ws.MFAGraceDays = in.MFAGraceDays
		}
		if in.IPAllowlist != nil {
			ws.IPAllowlist = *in.IPAllowlist
		}
		if in.CORSOrigins != nil {
			ws.CORSOrigins = *in.CORSOrigins
		}
		ws.UpdatedAt = s.now().UnixMilli()
		ch.put(kWorkspace, ws, rec.Version+1)
		diff := map[string][2]any{
			"name":           {before.Name, ws.Name},
			"slug":           {before.Slug, ws.Slug},
			"timezone":       {before.Timezone, ws.Timezone},
			"work_hours":     {before.WorkHours, ws.WorkHours},
			"branding":       {before.Branding, ws.Branding},
			"mfa_grace_days": {deref(before.MFAGraceDays, defaultGraceDays), deref(ws.MFAGraceDays, defaultGraceDays)},
			"ip_allowlist":   {nonNil(before.IPAllowlist), nonNil(ws.IPAllowlist)},
			"cors_origins":   {nonNil(before.CORSOrigins), nonNil(ws.CORSOrigins)},
		}
		s.diffActivity(ch, "workspace", p.Tenant, "", "", diff)
		changed := map[string]any{}
		for f, d := range diff {
			if string(mustJSON(d[0])) != string(mustJSON(d[1])) {
				changed[f] = d
			}
		}
		s.audit(ctx, ch, auditInput{Action: "workspace.update", TargetKind: "workspace", TargetID: p.Tenant, Detail: changed})
		out = ws.view(plan, rec.Version+1)
		return ch, nil
	})
	if err == nil {
		if herr := s.hooks.afterUpdate(); herr != nil {
			return nil, herr
		}
	}
	// The platform follows the record: finish the rename (or release the
	// claim when the update failed), the registry's name, the CORS index.
	if rerr := s.reconcileWorkspace(ctx, p.Tenant, claimed); rerr != nil {
		switch {
		case err != nil:
			s.log.Warn("workspace registry sync after a failed update", "workspace", p.Tenant, "err", rerr)
		case errors.Is(rerr, errSlugLost):
			return nil, slugTaken("slug", claimed)
		default:
			return nil, rerr
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
