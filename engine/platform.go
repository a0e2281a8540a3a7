package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

const operatorTokenPrefix = "tfo_"

type setupRecord struct {
	TokenHash string `json:"token_hash"`
	ExpiresAt int64  `json:"expires_at"`
	DoneAt    int64  `json:"done_at,omitempty"`
}

type operatorRecord struct {
	TokenHash string `json:"token_hash"`
	CreatedAt int64  `json:"created_at"`
}

// BootstrapResult says what a first start created. Secrets appear only
// when just created, so they can be shown once.
type BootstrapResult struct {
	SetupToken    string // on-prem, while no workspace exists: the one-time setup token
	SetupExpires  time.Time
	OperatorToken string // the platform operator's credential, on the very first start
}

// BootstrapOptions tune Bootstrap.
type BootstrapOptions struct {
	// KeepSetupLink leaves a setup link that is still valid in place
	// instead of replacing it. In a cluster every node bootstraps at start
	// (all at once on a first start): with it, one node creates the link
	// and prints it, and a node that starts later does not invalidate it.
	KeepSetupLink bool
}

// Bootstrap prepares the platform on start: the token-signing key, the
// operator credential (first start only) and, in on-prem mode until the
// first workspace exists, a fresh one-time setup token (each start replaces
// the previous link).
func (s *Service) Bootstrap(ctx context.Context) (*BootstrapResult, error) {
	return s.BootstrapWith(ctx, BootstrapOptions{})
}

// BootstrapWith is Bootstrap with options. It is safe to run on several
// nodes of a cluster at once: every record is created under a precondition
// and re-read on a conflict, so the signing key and the operator token are
// created exactly once (the node whose command applied first gets the
// token; the others get none) and no node replaces what another created.
func (s *Service) BootstrapWith(ctx context.Context, opts BootstrapOptions) (*BootstrapResult, error) {
	if err := s.ensureSigningKey(ctx); err != nil {
		return nil, err
	}
	out := &BootstrapResult{}
	log, sys := s.sys()
	tok, err := s.createOperatorToken(ctx)
	if err != nil {
		return nil, err
	}
	out.OperatorToken = tok
	if s.cfg.Mode != ModeOnPrem {
		return out, nil
	}
	token := "tfs_" + randomToken(32)
	expires := s.now().Add(s.cfg.SetupTTL)
	_, err = s.commit(ctx, log, func() (*change, error) {
		// Re-read on every attempt: another node may have closed setup or
		// created a link meanwhile.
		st, rec, err := getRecord[setupRecord](sys, sysSetup)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if st != nil && (st.DoneAt != 0 || opts.KeepSetupLink && s.now().UnixMilli() < st.ExpiresAt) {
			return nil, errAlreadyDone
		}
		if st == nil {
			// A store that already holds a workspace (restored from a
			// cloud-mode backup, or first served in cloud mode) has been
			// set up: a link would let anyone holding it add another.
			found := false
			err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(storage.Key, storage.Record) error {
				found = true
				return storage.ErrStop
			})
			if err != nil {
				return nil, err
			}
			if found {
				return nil, errAlreadyDone
			}
		}
		ch := s.newChange("", "platform.setup_token", "system")
		ch.expectSys(sysSetup, rec.Version)
		ch.putSys(sysSetup, setupRecord{TokenHash: hashToken(token), ExpiresAt: expires.UnixMilli()}, rec.Version+1)
		return ch, nil
	})
	if errors.Is(err, errAlreadyDone) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.SetupToken, out.SetupExpires = token, expires
	return out, nil
}

// createOperatorToken creates the operator's token if there is none, and
// returns it; "" when one exists (possibly just created by another node:
// the conflict retry re-reads and stops there, never replacing it).
func (s *Service) createOperatorToken(ctx context.Context) (string, error) {
	log, sys := s.sys()
	token := operatorTokenPrefix + randomToken(32)
	_, err := s.commit(ctx, log, func() (*change, error) {
		if _, err := sys.Get(sysOperator); err == nil {
			return nil, errAlreadyDone
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		ch := s.newChange("", "platform.operator_token", "system")
		ch.expectSys(sysOperator, 0)
		h := hashToken(token)
		ch.putSys(sysOperator, operatorRecord{TokenHash: h, CreatedAt: s.now().UnixMilli()}, 1)
		ch.putSys(sysOperatorToken(h), map[string]bool{"ok": true}, 1)
		return ch, nil
	})
	if errors.Is(err, errAlreadyDone) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return token, nil
}

// SetupStatus tells the first-run page whether setup is still open.
func (s *Service) SetupStatus() (needed bool, mode Mode) {
	if s.cfg.Mode != ModeOnPrem {
		return false, s.cfg.Mode
	}
	_, sys := s.sys()
	st, _, err := getRecord[setupRecord](sys, sysSetup)
	return err == nil && st.DoneAt == 0, s.cfg.Mode
}

// SetupInput completes the one-time setup.
type SetupInput struct {
	Token string
	CreateWorkspaceInput
}

var errSetupToken = &Error{Code: "invalid_setup_token", Message: "the setup link is invalid, used or expired; restart teamflow for a new one", Err: ErrUnauthenticated}

// Setup creates the first workspace and its Owner with the one-time token
// printed at start. It closes setup in the same command, so the token works
// once.
func (s *Service) Setup(ctx context.Context, in SetupInput) (*Created, error) {
	if s.cfg.Mode != ModeOnPrem {
		return nil, &Error{Code: "setup_unavailable", Message: "setup is for on-prem mode; use signup", Err: ErrForbidden}
	}
	_, sys := s.sys()
	st, rec, err := getRecord[setupRecord](sys, sysSetup)
	if err != nil || st.DoneAt != 0 || s.now().UnixMilli() >= st.ExpiresAt || hashToken(in.Token) != st.TokenHash {
		return nil, errSetupToken
	}
	created, err := s.createWorkspace(ctx, in.CreateWorkspaceInput, "workspace.setup", func(ch *change) {
		ch.expectSys(sysSetup, rec.Version)
		done := *st
		done.DoneAt = s.now().UnixMilli()
		ch.putSys(sysSetup, done, rec.Version+1)
	})
	var e *Error
	if errors.As(err, &e) && e.Code == "conflict" {
		// Another setup won the race for the one-time token.
		return nil, errSetupToken
	}
	return created, err
}

// CreateFirstWorkspace is the scripted-install path (`teamflow setup`): it
// needs no token because it runs with access to the data directory, and it
// closes the setup link like Setup does.
func (s *Service) CreateFirstWorkspace(ctx context.Context, in CreateWorkspaceInput) (*Created, error) {
	if err := s.ensureSigningKey(ctx); err != nil {
		return nil, err
	}
	_, sys := s.sys()
	st, rec, err := getRecord[setupRecord](sys, sysSetup)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if st != nil && st.DoneAt != 0 {
		return nil, &Error{Code: "setup_done", Message: "setup is already complete", Err: ErrConflict}
	}
	return s.createWorkspace(ctx, in, "workspace.setup", func(ch *change) {
		ch.expectSys(sysSetup, rec.Version)
		ch.putSys(sysSetup, setupRecord{DoneAt: s.now().UnixMilli()}, rec.Version+1)
	})
}

// ResetOperatorToken creates (or replaces) the platform operator's token
// and returns it; only its hash is stored.
func (s *Service) ResetOperatorToken(ctx context.Context) (string, error) {
	log, sys := s.sys()
	token := operatorTokenPrefix + randomToken(32)
	_, err := s.commit(ctx, log, func() (*change, error) {
		old, rec, err := getRecord[operatorRecord](sys, sysOperator)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		ch := s.newChange("", "platform.operator_token", "system")
		ch.expectSys(sysOperator, rec.Version)
		if old != nil {
			ch.delSys(sysOperatorToken(old.TokenHash))
		}
		h := hashToken(token)
		ch.putSys(sysOperator, operatorRecord{TokenHash: h, CreatedAt: s.now().UnixMilli()}, rec.Version+1)
		ch.putSys(sysOperatorToken(h), map[string]bool{"ok": true}, 1)
		return ch, nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

func (s *Service) authenticateOperator(token string) (Principal, error) {
	_, sys := s.sys()
	if len(token) > 128 {
		return Principal{}, errBadToken
	}
	if _, err := sys.Get(sysOperatorToken(hashToken(token))); err != nil {
		return Principal{}, errBadToken
	}
	return Principal{Operator: true}, nil
}

// WorkspaceSummary is the operator's view of a workspace.
type WorkspaceSummary struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`
	Status    string    `json:"status"`
	Users     int64     `json:"users"`
	Projects  int64     `json:"projects"`
	CreatedAt time.Time `json:"created_at"`
}

func requireOperator(p Principal) error {
	if !p.Operator {
		return forbidden("this is a platform operator action")
	}
	return nil
}

// ListWorkspaces lists every workspace (platform operator only).
func (s *Service) ListWorkspaces(ctx context.Context, p Principal, pg PageRequest) (*Page[WorkspaceSummary], error) {
	if err := requireOperator(p); err != nil {
		return nil, err
	}
	_, sys := s.sys()
	return scanPage(sys, sysWorkspaces(), pg, false, func(_ storage.Key, r storage.Record) (*WorkspaceSummary, error) {
		var e workspaceEntry
		if err := jsonDecode(r.Value, &e); err != nil {
			return nil, err
		}
		_, v := s.tenant(e.ID)
		users, err := counterValue(v, kUsersCnt)
		if err != nil {
			return nil, err
		}
		projects, err := counterValue(v, kProjCnt)
		if err != nil {
			return nil, err
		}
		return &WorkspaceSummary{ID: e.ID, Slug: e.Slug, Name: e.Name, Plan: e.Plan, Status: e.Status,
			Users: users, Projects: projects, CreatedAt: time.UnixMilli(e.CreatedAt).UTC()}, nil
	})
}

// SetPlan moves a workspace to another plan (platform operator, until
// billing exists). The change is recorded in the workspace's activity so
// the workspace sees what the operator did.
func (s *Service) SetPlan(ctx context.Context, p Principal, slug, planID string) (*WorkspaceSummary, error) {
	if err := requireOperator(p); err != nil {
		return nil, err
	}
	plan, err := licensing.Lookup(planID)
	if err != nil {
		ids := []string{}
		for _, pl := range licensing.Plans() {
			ids = append(ids, pl.ID)
		}
		return nil, invalid("plan", "unknown_plan", "unknown plan %q (one of %s)", planID, strings.Join(ids, ", "))
	}
	tenant, err := s.workspaceBySlug(strings.ToLower(slug))
	if err != nil {
		return nil, err
	}
	// The workspace records the operator's action on its own route first
	// (its activity and audit trail), then the platform's registry entry
	// takes the plan: a workspace's route carries no platform record
	// (route.go). A crash between the two leaves an audited attempt that
	// running the command again completes.
	_, sys := s.sys()
	cur, _, err := getRecord[workspaceEntry](sys, sysWorkspace(tenant))
	if err != nil {
		return nil, notFound("workspace")
	}
	before := cur.Plan
	tlog, _ := s.tenant(tenant)
	if _, err := s.commit(ctx, tlog, func() (*change, error) {
		ch := s.newChange(tenant, "platform.plan", p.actor())
		s.activity(ch, activityInput{Kind: "workspace.plan_changed", TargetKind: "workspace", TargetID: tenant, Field: "plan", Before: before, After: plan.ID})
		s.audit(ctx, ch, auditInput{Action: "platform.plan_change", TargetKind: "workspace", TargetID: tenant, Detail: map[string]any{"plan": [2]string{before, plan.ID}}})
		return ch, nil
	}); err != nil {
		return nil, err
	}
	var out *WorkspaceSummary
	_, err = s.commit(ctx, s.router.Platform().Log, func() (*change, error) {
		e, rec, err := getRecord[workspaceEntry](sys, sysWorkspace(tenant))
		if err != nil {
			return nil, notFound("workspace")
		}
		ch := s.newChange("", "platform.plan", p.actor())
		ch.expectSys(sysWorkspace(tenant), rec.Version)
		e.Plan = plan.ID
		ch.putSys(sysWorkspace(tenant), e, rec.Version+1)
		out = &WorkspaceSummary{ID: e.ID, Slug: e.Slug, Name: e.Name, Plan: e.Plan, Status: e.Status, CreatedAt: time.UnixMilli(e.CreatedAt).UTC()}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("platform operator changed a workspace plan", "workspace", tenant, "plan", plan.ID, "audit", true)
	return out, nil
}

// PlanInfo is a workspace's plan with its current usage.
type PlanInfo struct {
	Plan     licensing.Plan `json:"plan"`
	Users    int64          `json:"users"`
	Projects int64          `json:"projects"`
	// Storage is what attachments hold against the plan's storage_bytes
	// (StorageQuota may differ from the plan where the operator set one).
	StorageUsed  int64 `json:"storage_used" doc:"Bytes held by attachments and unfinished uploads"`
	StorageQuota int64 `json:"storage_quota" doc:"Bytes allowed; -1 when unlimited"`
}

// GetPlan returns the caller's plan and usage, so the UI can show limits.
func (s *Service) GetPlan(ctx context.Context, p Principal) (*PlanInfo, error) {
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	users, err := counterValue(v, kUsersCnt)
	if err != nil {
		return nil, err
	}
	projects, err := counterValue(v, kProjCnt)
	if err != nil {
		return nil, fmt.Errorf("engine: project count: %w", err)
	}
	used, quota, err := s.StorageUsed(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("engine: storage used: %w", err)
	}
	if quota == math.MaxInt64 {
		quota = licensing.Unlimited
	}
	return &PlanInfo{Plan: plan, Users: users, Projects: projects, StorageUsed: used, StorageQuota: quota}, nil
}

// RecordOperatorAction records, in a workspace's audit trail and on its
// route, a platform operator's action on the workspace that runs outside
// the engine (a move to a dedicated store: `teamflow workspace dedicate`).
// action is the audit action, detail facts that name no person.
func (s *Service) RecordOperatorAction(ctx context.Context, p Principal, tenant, action string, detail map[string]any) error {
	if err := requireOperator(p); err != nil {
		return err
	}
	tlog, _ := s.tenant(tenant)
	_, err := s.commit(ctx, tlog, func() (*change, error) {
		ch := s.newChange(tenant, action, p.actor())
		s.audit(ctx, ch, auditInput{Action: action, TargetKind: "workspace", TargetID: tenant, Detail: detail})
		return ch, nil
	})
	return err
}
