package engine

import (
	"errors"
	"slices"

	"github.com/teamflow/teamflow/storage"
)

// Role is a workspace role.
type Role string

// Workspace roles, from the most powerful.
const (
	RoleOwner  Role = "owner"  // everything, billing included
	RoleAdmin  Role = "admin"  // everything but billing
	RoleMember Role = "member" // their projects and workspace-visible projects
	RoleGuest  Role = "guest"  // only projects they are added to; no people management
)

func (r Role) valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleMember, RoleGuest:
		return true
	}
	return false
}

// isAdmin reports Owner or Admin.
func (r Role) isAdmin() bool { return r == RoleOwner || r == RoleAdmin }

// ProjectRole is a role inside one project.
type ProjectRole string

// Project roles, from the most powerful.
const (
	ProjectLead        ProjectRole = "lead"
	ProjectContributor ProjectRole = "contributor"
	ProjectObserver    ProjectRole = "observer"
)

func (r ProjectRole) valid() bool {
	switch r {
	case ProjectLead, ProjectContributor, ProjectObserver:
		return true
	}
	return false
}

func (r ProjectRole) rank() int {
	switch r {
	case ProjectLead:
		return 3
	case ProjectContributor:
		return 2
	case ProjectObserver:
		return 1
	}
	return 0
}

// Principal is who is acting: an account of one workspace (from a session
// or, later, an API key), or the platform operator.
type Principal struct {
	Tenant    string // the one workspace this credential acts in; "" for the operator
	UserID    string
	Role      Role
	SessionID string
	Operator  bool

	// An API key acts as its owner within its scopes ("read", "write")
	// and, when set, only in the listed projects.
	APIKeyID string
	Scopes   []string
	Projects []string
	// MFAEnrolmentOnly: an Owner or Admin past the grace period without a
	// second factor may reach only enrolment.
	MFAEnrolmentOnly bool
}

// CanWrite reports whether the credential may change anything.
func (p Principal) CanWrite() bool {
	return p.APIKeyID == "" || slices.Contains(p.Scopes, "write")
}

func (p Principal) actor() string {
	if p.Operator {
		return "operator"
	}
	return p.UserID
}

// Project visibility.
const (
	VisibilityWorkspace = "workspace" // every Member can see it
	VisibilityPrivate   = "private"   // only its members (and Owners/Admins)
)

// projectRole resolves the caller's role in a project: Owners and Admins
// lead every project; an explicit membership overrides the inherited role;
// Members contribute to workspace-visible projects; Guests see only the
// projects they were added to. ok is false when the caller may not see it.
func projectRole(v storage.View, p Principal, proj *projectRecord) (ProjectRole, bool, error) {
	if len(p.Projects) > 0 && !slices.Contains(p.Projects, proj.ID) {
		return "", false, nil // an API key limited to other projects
	}
	if p.Role.isAdmin() {
		return ProjectLead, true, nil
	}
	m, _, err := getRecord[projectMemberRecord](v, kProjMember(proj.ID, p.UserID))
	switch {
	case err == nil:
		role := m.Role
		if p.Role == RoleGuest && role == ProjectLead {
			role = ProjectContributor
		}
		return role, true, nil
	case !errors.Is(err, storage.ErrNotFound):
		return "", false, err
	}
	if p.Role == RoleMember && proj.Visibility == VisibilityWorkspace {
		return ProjectContributor, true, nil
	}
	return "", false, nil
}
