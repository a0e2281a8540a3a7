package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

// Status categories: reports, search and status updates reason by category
// so that custom statuses keep working.
const (
	CategoryTodo       = "todo"
	CategoryInProgress = "in_progress"
	CategoryDone       = "done"
)

// Status is one column of a project's workflow.
type Status struct {
	ID       string `json:"id"`
	Name     string `json:"name" maxLength:"50"`
	Category string `json:"category" enum:"todo,in_progress,done"`
}

type projectRecord struct {
	ID          string   `json:"id"`
	Key         string   `json:"key"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Visibility  string   `json:"visibility"`
	Statuses    []Status `json:"statuses"`
	CreatedBy   string   `json:"created_by"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedBy   string   `json:"updated_by"`
	UpdatedAt   int64    `json:"updated_at"`
	DeletedAt   int64    `json:"deleted_at,omitempty"`
	DeletedBy   string   `json:"deleted_by,omitempty"`
}

// Project is the API view of a project.
type Project struct {
	ID          string      `json:"id"`
	Key         string      `json:"key" doc:"Short key that prefixes task numbers, e.g. WEB in WEB-12"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Visibility  string      `json:"visibility" enum:"workspace,private"`
	Statuses    []Status    `json:"statuses"`
	Role        ProjectRole `json:"role" doc:"The caller's role in this project"`
	CreatedBy   string      `json:"created_by"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedBy   string      `json:"updated_by"`
	UpdatedAt   time.Time   `json:"updated_at"`
	DeletedAt   *time.Time  `json:"deleted_at,omitempty"`
	Version     uint64      `json:"version"`
}

func (pr *projectRecord) view(role ProjectRole, version uint64) *Project {
	out := &Project{
		ID: pr.ID, Key: pr.Key, Name: pr.Name, Description: pr.Description, Visibility: pr.Visibility,
		Statuses: pr.Statuses, Role: role, CreatedBy: pr.CreatedBy, CreatedAt: time.UnixMilli(pr.CreatedAt).UTC(),
		UpdatedBy: pr.UpdatedBy, UpdatedAt: time.UnixMilli(pr.UpdatedAt).UTC(), Version: version,
	}
	if pr.DeletedAt != 0 {
		t := time.UnixMilli(pr.DeletedAt).UTC()
		out.DeletedAt = &t
	}
	return out
}

func (pr *projectRecord) status(nameOrID string) (Status, bool) {
	for _, st := range pr.Statuses {
		if st.ID == nameOrID {
			return st, true
		}
	}
	for _, st := range pr.Statuses {
		if strings.EqualFold(st.Name, nameOrID) {
			return st, true
		}
	}
	return Status{}, false
}

func defaultStatuses() []Status {
	return []Status{
		{ID: "todo", Name: "To do", Category: CategoryTodo},
		{ID: "in_progress", Name: "In progress", Category: CategoryInProgress},
		{ID: "done", Name: "Done", Category: CategoryDone},
	}
}

var projectKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9]{1,9}$`)

// deriveKey makes a project key from a name: initials or the first letters.
func deriveKey(name string) string {
	var initials, letters []rune
	for _, w := range strings.FieldsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		for i, r := range w {
			r = unicode.ToUpper(r)
			if r > unicode.MaxASCII || !(unicode.IsUpper(r) || unicode.IsDigit(r)) {
				continue
			}
			if i == 0 {
				initials = append(initials, r)
			}
			letters = append(letters, r)
		}
	}
	key := string(initials)
	if len(key) < 2 {
		key = string(letters)
	}
	if len(key) > 4 {
		key = key[:4]
	}
	for len(key) > 0 && !unicode.IsLetter(rune(key[0])) {
		key = key[1:]
	}
	if len(key) < 2 {
		key = "PR" + key
	}
	return key
}

func validateStatuses(sts []Status) ([]Status, error) {
	if len(sts) == 0 || len(sts) > 20 {
		return nil, invalid("statuses", "invalid_statuses", "a project has between 1 and 20 statuses")
	}
	seenName, seenID := map[string]bool{}, map[string]bool{}
	out := make([]Status, len(sts))
	hasDone := false
	for i, st := range sts {
		name, err := validateName(fmt.Sprintf("statuses[%d].name", i), st.Name, 50)
		if err != nil {
			return nil, err
		}
		switch st.Category {
		case CategoryTodo, CategoryInProgress:
		case CategoryDone:
			hasDone = true
		default:
			return nil, invalid(fmt.Sprintf("statuses[%d].category", i), "invalid_category", "category is todo, in_progress or done")
		}
		id := st.ID
		if id == "" {
			id = newID()
		}
		if len(id) > 64 || strings.ContainsAny(id, "\x00/") {
			return nil, invalid(fmt.Sprintf("statuses[%d].id", i), "invalid_id", "status IDs are at most 64 characters")
		}
		if seenName[strings.ToLower(name)] || seenID[id] {
			return nil, invalid(fmt.Sprintf("statuses[%d]", i), "duplicate_status", "status names and IDs must be unique")
		}
		seenName[strings.ToLower(name)], seenID[id] = true, true
		out[i] = Status{ID: id, Name: name, Category: st.Category}
	}
	if !hasDone {
		return nil, invalid("statuses", "invalid_statuses", "a project needs at least one status in the done category")
	}
	return out, nil
}

func sameStatuses(a, b []Status) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// visibleProject loads a live project the caller may see. A project of
// another workspace, a deleted one, or a hidden one is simply not found.
func (s *Service) visibleProject(v storage.View, p Principal, id string) (*projectRecord, storage.Record, error) {
	if !validID(id) {
		return nil, storage.Record{}, notFound("project")
	}
	pr, rec, err := s.projectRecord(v, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, notFound("project")
		}
		return nil, rec, err
	}
	if pr.DeletedAt != 0 {
		return nil, rec, notFound("project")
	}
	_, ok, err := projectRole(v, p, pr)
	if err != nil {
		return nil, rec, err
	}
	if !ok {
		return nil, rec, notFound("project")
	}
	return pr, rec, nil
}

// projectWithRole loads a visible project and checks the caller holds at
// least min in it.
func (s *Service) projectWithRole(v storage.View, p Principal, id string, min ProjectRole, action string) (*projectRecord, storage.Record, ProjectRole, error) {
	pr, rec, err := s.visibleProject(v, p, id)
	if err != nil {
		return nil, rec, "", err
	}
	role, _, err := projectRole(v, p, pr)
	if err != nil {
		return nil, rec, "", err
	}
	if role.rank() < min.rank() {
		return nil, rec, role, forbidden("your role in this project (%s) does not allow you to %s", role, action)
	}
	return pr, rec, role, nil
}

// CreateProjectInput creates a project.
type CreateProjectInput struct {
	Name        string
	Key         string
	Description string
	Visibility  string
	Statuses    []Status
}

// CreateProject creates a project; its creator becomes its Lead. Guests
// cannot create projects; the plan bounds how many exist.
func (s *Service) CreateProject(ctx context.Context, p Principal, in CreateProjectInput) (*Project, error) {
	if p.Role == RoleGuest {
		return nil, forbidden("Guests cannot create projects")
	}
	name, err := validateName("name", in.Name, 120)
	if err != nil {
		return nil, err
	}
	if len(in.Description) > maxDescription {
		return nil, invalid("description", "too_long", "description may have at most %d bytes", maxDescription)
	}
	vis := in.Visibility
	if vis == "" {
		vis = VisibilityWorkspace
	}
	if vis != VisibilityWorkspace && vis != VisibilityPrivate {
		return nil, invalid("visibility", "invalid_visibility", "visibility is workspace or private")
	}
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	statuses := defaultStatuses()
	if in.Statuses != nil {
		if !plan.CustomWorkflows {
			return nil, planFeature("custom workflows (custom statuses)", plan.Name)
		}
		if statuses, err = validateStatuses(in.Statuses); err != nil {
			return nil, err
		}
	}
	key := strings.ToUpper(strings.TrimSpace(in.Key))
	explicitKey := key != ""
	if explicitKey && !projectKeyRE.MatchString(key) {
		return nil, invalid("key", "invalid_key", "a project key is 2–10 capital letters or digits, starting with a letter")
	}
	if !explicitKey {
		key = deriveKey(name)
	}
	log, v := s.tenant(p.Tenant)
	var out *Project
	_, err = s.commit(ctx, log, func() (*change, error) {
		k, err := s.freeProjectKey(v, key, explicitKey)
		if err != nil {
			return nil, err
		}
		now := s.now().UnixMilli()
		pr := projectRecord{
			ID: newID(), Key: k, Name: name, Description: in.Description, Visibility: vis, Statuses: statuses,
			CreatedBy: p.actor(), CreatedAt: now, UpdatedBy: p.actor(), UpdatedAt: now,
		}
		ch := s.newChange(p.Tenant, "project.create", p.actor())
		ch.plan = plan.Name
		ch.addBounded(kProjCnt, 1, licensing.Bound(plan.MaxProjects), "projects")
		ch.expect(kProjectKey(k), 0)
		ch.put(kProjectKey(k), map[string]string{"id": pr.ID}, 1)
		ch.put(kProject(pr.ID), pr, 1)
		markFactsReady(ch, pr.ID)
		if !p.Operator {
			ch.put(kProjMember(pr.ID, p.UserID), projectMemberRecord{Role: ProjectLead, AddedBy: p.actor(), AddedAt: now}, 1)
			ch.index(kUserProjects(p.UserID).Add(pr.ID))
		}
		s.activity(ch, activityInput{Kind: "project.created", TargetKind: "project", TargetID: pr.ID, ProjectID: pr.ID, After: name})
		role := ProjectLead
		out = pr.view(role, 1)
		return ch, nil
	})
	return out, err
}

// freeProjectKey returns key if unused, or (for a derived key) key with the
// smallest number appended that is unused.
func (s *Service) freeProjectKey(v storage.View, key string, explicit bool) (string, error) {
	for i := 1; i < 1000; i++ {
		k := key
		if i > 1 {
			k = fmt.Sprintf("%s%d", key, i)
		}
		_, err := v.Get(kProjectKey(k))
		if errors.Is(err, storage.ErrNotFound) {
			return k, nil
		}
		if err != nil {
			return "", err
		}
		if explicit {
			return "", &Error{Code: "project_key_taken", Field: "key", Message: fmt.Sprintf("the project key %q is taken", key), Err: ErrConflict}
		}
	}
	return "", conflict("project_key_taken", "no free project key derived from %q", key)
}

// ListProjects lists the live projects the caller may see, by creation.
func (s *Service) ListProjects(ctx context.Context, p Principal, pg PageRequest) (*Page[Project], error) {
	_, v := s.tenant(p.Tenant)
	return scanPage(v, storage.K("proj"), pg, false, func(_ storage.Key, r storage.Record) (*Project, error) {
		var pr projectRecord
		if err := jsonDecode(r.Value, &pr); err != nil {
			return nil, err
		}
		if pr.DeletedAt != 0 {
			return nil, nil
		}
		role, ok, err := projectRole(v, p, &pr)
		if err != nil || !ok {
			return nil, err
		}
		return pr.view(role, r.Version), nil
	})
}

// GetProject returns one visible project.
func (s *Service) GetProject(ctx context.Context, p Principal, id string) (*Project, error) {
	_, v := s.tenant(p.Tenant)
	pr, rec, err := s.visibleProject(v, p, id)
	if err != nil {
		return nil, err
	}
	role, _, err := projectRole(v, p, pr)
	if err != nil {
		return nil, err
	}
	return pr.view(role, rec.Version), nil
}

// ProjectPatch changes a project; nil fields stay.
type ProjectPatch struct {
	Name        *string
	Description *string
	Visibility  *string
	Statuses    []Status
	IfMatch     uint64
}

// UpdateProject changes a project (its Lead, Owners and Admins). Changing
// statuses is a custom workflow, gated by plan; a status still holding
// tasks cannot be removed.
func (s *Service) UpdateProject(ctx context.Context, p Principal, id string, in ProjectPatch) (*Project, error) {
	if in.Name != nil {
		n, err := validateName("name", *in.Name, 120)
		if err != nil {
			return nil, err
		}
		in.Name = &n
	}
	if in.Description != nil && len(*in.Description) > maxDescription {
		return nil, invalid("description", "too_long", "description may have at most %d bytes", maxDescription)
	}
	if in.Visibility != nil && *in.Visibility != VisibilityWorkspace && *in.Visibility != VisibilityPrivate {
		return nil, invalid("visibility", "invalid_visibility", "visibility is workspace or private")
	}
	var statuses []Status
	if in.Statuses != nil {
		var err error
		if statuses, err = validateStatuses(in.Statuses); err != nil {
			return nil, err
		}
	}
	log, v := s.tenant(p.Tenant)
	var out *Project
	_, err := s.commit(ctx, log, func() (*change, error) {
		pr, rec, role, err := s.projectWithRole(v, p, id, ProjectLead, "change the project")
		if err != nil {
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		ch := s.newChange(p.Tenant, "project.update", p.actor())
		ch.expect(kProject(id), rec.Version)
		before := *pr
		if statuses != nil && !sameStatuses(statuses, pr.Statuses) {
			plan, err := s.plan(p.Tenant)
			if err != nil {
				return nil, err
			}
			if !plan.CustomWorkflows {
				return nil, planFeature("custom workflows (custom statuses)", plan.Name)
			}
			for _, old := range pr.Statuses {
				if _, kept := statusByID(statuses, old.ID); kept {
					continue
				}
				inUse := false
				if err := v.Scan(kIxStatus(id, old.ID), storage.ScanOptions{}, func(storage.Key, storage.Record) error {
					inUse = true
					return storage.ErrStop
				}); err != nil {
					return nil, err
				}
				if inUse {
					return nil, conflict("status_in_use", "the status %q still holds tasks; move them before removing it", old.Name)
				}
			}
			pr.Statuses = statuses
		}
		pr.Name = deref(in.Name, pr.Name)
		pr.Description = deref(in.Description, pr.Description)
		pr.Visibility = deref(in.Visibility, pr.Visibility)
		pr.UpdatedBy, pr.UpdatedAt = p.actor(), s.now().UnixMilli()
		ch.put(kProject(id), pr, rec.Version+1)
		s.diffActivity(ch, "project", id, id, "", map[string][2]any{
			"name":        {before.Name, pr.Name},
			"description": {before.Description, pr.Description},
			"visibility":  {before.Visibility, pr.Visibility},
			"statuses":    {before.Statuses, pr.Statuses},
		})
		out = pr.view(role, rec.Version+1)
		return ch, nil
	})
	return out, err
}

func statusByID(sts []Status, id string) (Status, bool) {
	for _, st := range sts {
		if st.ID == id {
			return st, true
		}
	}
	return Status{}, false
}

// DeleteProject moves a project to the trash (Lead, Owner, Admin). It can
// be restored for TrashTTL, then the purge job removes it and its tasks.
func (s *Service) DeleteProject(ctx context.Context, p Principal, id string, ifMatch uint64) error {
	log, v := s.tenant(p.Tenant)
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return err
	}
	_, err = s.commit(ctx, log, func() (*change, error) {
		pr, rec, _, err := s.projectWithRole(v, p, id, ProjectLead, "delete the project")
		if err != nil {
			return nil, err
		}
		if ifMatch != 0 && ifMatch != rec.Version {
			return nil, errStale
		}
		now := s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "project.delete", p.actor())
		ch.plan = plan.Name
		ch.expect(kProject(id), rec.Version)
		pr.DeletedAt, pr.DeletedBy = now, p.actor()
		ch.put(kProject(id), pr, rec.Version+1)
		ch.addBounded(kProjCnt, -1, licensing.Bound(plan.MaxProjects), "projects")
		ch.put(kTrash("project", id), trashRecord{Kind: "project", ID: id, Title: pr.Name, DeletedAt: now, DeletedBy: p.actor()}, 1)
		s.activity(ch, activityInput{Kind: "project.deleted", TargetKind: "project", TargetID: id, ProjectID: id, Before: pr.Name})
		return ch, nil
	})
	return err
}

// RestoreProject brings a project back from the trash.
func (s *Service) RestoreProject(ctx context.Context, p Principal, id string) (*Project, error) {
	if !validID(id) {
		return nil, notFound("project")
	}
	log, v := s.tenant(p.Tenant)
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	var out *Project
	_, err = s.commit(ctx, log, func() (*change, error) {
		pr, rec, err := getRecord[projectRecord](v, kProject(id))
		if err != nil || pr.DeletedAt == 0 {
			return nil, notFound("deleted project")
		}
		role, ok, err := projectRole(v, p, pr)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound("deleted project")
		}
		if role.rank() < ProjectLead.rank() {
			return nil, forbidden("only the project's Lead, Owners and Admins restore it")
		}
		ch := s.newChange(p.Tenant, "project.restore", p.actor())
		ch.plan = plan.Name
		ch.expect(kProject(id), rec.Version)
		pr.DeletedAt, pr.DeletedBy = 0, ""
		pr.UpdatedBy, pr.UpdatedAt = p.actor(), s.now().UnixMilli()
		ch.put(kProject(id), pr, rec.Version+1)
		ch.addBounded(kProjCnt, 1, licensing.Bound(plan.MaxProjects), "projects")
		ch.del(kTrash("project", id))
		s.activity(ch, activityInput{Kind: "project.restored", TargetKind: "project", TargetID: id, ProjectID: id, After: pr.Name})
		out = pr.view(role, rec.Version+1)
		return ch, nil
	})
	return out, err
}

type projectMemberRecord struct {
	Role    ProjectRole `json:"role"`
	AddedBy string      `json:"added_by"`
	AddedAt int64       `json:"added_at"`
}

// ProjectMember is an explicit membership of a project.
type ProjectMember struct {
	UserID        string      `json:"user_id"`
	Name          string      `json:"name"`
	Email         string      `json:"email"`
	WorkspaceRole Role        `json:"workspace_role"`
	Role          ProjectRole `json:"role" enum:"lead,contributor,observer"`
	AddedAt       time.Time   `json:"added_at"`
}

// ListProjectMembers lists a project's explicit members.
func (s *Service) ListProjectMembers(ctx context.Context, p Principal, id string, pg PageRequest) (*Page[ProjectMember], error) {
	_, v := s.tenant(p.Tenant)
	if _, _, err := s.visibleProject(v, p, id); err != nil {
		return nil, err
	}
	return scanPage(v, storage.K("pm", id), pg, false, func(k storage.Key, r storage.Record) (*ProjectMember, error) {
		var m projectMemberRecord
		if err := jsonDecode(r.Value, &m); err != nil {
			return nil, err
		}
		uid := lastPart(k)
		u, _, err := getRecord[userRecord](v, kUser(uid))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &ProjectMember{UserID: uid, Name: u.Name, Email: u.Email, WorkspaceRole: u.Role, Role: m.Role, AddedAt: time.UnixMilli(m.AddedAt).UTC()}, nil
	})
}

// SetProjectMember adds a member to a project or changes their project role
// (the project's Lead, Owners and Admins).
func (s *Service) SetProjectMember(ctx context.Context, p Principal, projectID, userID string, role ProjectRole) (*ProjectMember, error) {
	if !role.valid() {
		return nil, invalid("role", "invalid_role", "role is lead, contributor or observer")
	}
	if !validID(userID) {
		return nil, notFound("member")
	}
	log, v := s.tenant(p.Tenant)
	var out *ProjectMember
	_, err := s.commit(ctx, log, func() (*change, error) {
		if _, _, _, err := s.projectWithRole(v, p, projectID, ProjectLead, "manage its members"); err != nil {
			return nil, err
		}
		u, _, err := getRecord[userRecord](v, kUser(userID))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("member")
			}
			return nil, err
		}
		if u.Status != StatusActive {
			return nil, invalid("user_id", "member_deactivated", "the member is deactivated")
		}
		if u.Role == RoleGuest && role == ProjectLead {
			return nil, invalid("role", "guest_cannot_lead", "a Guest can be a Contributor or Observer, not a Lead")
		}
		key := kProjMember(projectID, userID)
		old, rec, err := getRecord[projectMemberRecord](v, key)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		now := s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "project.member.set", p.actor())
		ch.expect(key, rec.Version)
		m := projectMemberRecord{Role: role, AddedBy: p.actor(), AddedAt: now}
		var before any
		if old != nil {
			m.AddedAt, m.AddedBy = old.AddedAt, old.AddedBy
			before = old.Role
		}
		ch.put(key, m, rec.Version+1)
		ch.index(kUserProjects(userID).Add(projectID))
		s.activity(ch, activityInput{Kind: "project.member_set", TargetKind: "member", TargetID: userID, ProjectID: projectID, Field: "role", Before: before, After: role})
		out = &ProjectMember{UserID: userID, Name: u.Name, Email: u.Email, WorkspaceRole: u.Role, Role: role, AddedAt: time.UnixMilli(m.AddedAt).UTC()}
		return ch, nil
	})
	return out, err
}

// RemoveProjectMember removes an explicit membership. A project keeps at
// least one explicit Lead.
func (s *Service) RemoveProjectMember(ctx context.Context, p Principal, projectID, userID string) error {
	if !validID(userID) {
		return notFound("member")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		if _, _, _, err := s.projectWithRole(v, p, projectID, ProjectLead, "manage its members"); err != nil {
			return nil, err
		}
		key := kProjMember(projectID, userID)
		m, rec, err := getRecord[projectMemberRecord](v, key)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, notFound("project member")
			}
			return nil, err
		}
		ch := s.newChange(p.Tenant, "project.member.remove", p.actor())
		ch.expect(key, rec.Version)
		if m.Role == ProjectLead {
			leads := 0
			err := v.Scan(storage.K("pm", projectID), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
				var o projectMemberRecord
				if err := jsonDecode(r.Value, &o); err != nil {
					return err
				}
				if o.Role == ProjectLead {
					leads++
					ch.expect(k, r.Version)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if leads <= 1 {
				return nil, conflict("last_lead", "a project keeps at least one Lead")
			}
		}
		ch.del(key)
		ch.del(kUserProjects(userID).Add(projectID))
		s.activity(ch, activityInput{Kind: "project.member_removed", TargetKind: "member", TargetID: userID, ProjectID: projectID, Field: "role", Before: m.Role})
		return ch, nil
	})
	return err
}
