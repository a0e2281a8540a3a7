package engine

import (
	"context"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// FactsOfLast gathers the facts of a project's last period, as a status
// update would, without writing one (for benchmarks).
func (s *Service) FactsOfLast(p Principal, projectID string, period time.Duration) (*Facts, error) {
	_, v := s.tenant(p.Tenant)
	pr, _, err := s.visibleProject(v, p, projectID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return s.gatherFacts(context.Background(), p.Tenant, v, []*projectRecord{pr}, now.Add(-period), now, now)
}

// WriteBuiltin exposes the built-in writer to benchmarks.
func WriteBuiltin(f *Facts) string { return writeBuiltin(f) }

// DropCaches forgets every decoded record, as after a restart (for
// benchmarks of the cold path).
func (s *Service) DropCaches() {
	s.tasks = newVersionCache(s.cfg.TaskCacheSize)
}

// FactsBothWays gathers the facts of projects for [from, to) as of the
// clock's now from the roll-ups, and by the scan they replaced as the
// reference.
func (s *Service) FactsBothWays(p Principal, projectIDs []string, from, to time.Time) (rollup, scan *Facts, err error) {
	_, v := s.tenant(p.Tenant)
	var prs []*projectRecord
	for _, id := range projectIDs {
		pr, _, err := s.visibleProject(v, p, id)
		if err != nil {
			return nil, nil, err
		}
		prs = append(prs, pr)
	}
	now := s.now()
	if rollup, err = s.gatherFacts(context.Background(), p.Tenant, v, prs, from, to, now); err != nil {
		return nil, nil, err
	}
	scan, err = s.gatherFactsByScan(p.Tenant, v, prs, from, to, now)
	return rollup, scan, err
}

// ProposeOnRoute proposes cmd on workspace tenant's route, or on the
// platform route when tenant is "" (route guard tests).
func (s *Service) ProposeOnRoute(ctx context.Context, tenant string, cmd *storage.Command) (storage.Result, error) {
	if tenant == "" {
		return s.router.Platform().Log.Propose(ctx, cmd)
	}
	return s.router.Workspace(tenant).Log.Propose(ctx, cmd)
}

// SetRenameHooks stops a workspace update between its steps, as a crash
// would, when a hook returns an error (nil: no hook).
func (s *Service) SetRenameHooks(afterClaim, afterUpdate func() error) {
	s.hooks = testHooks{AfterClaim: afterClaim, AfterUpdate: afterUpdate}
}

// StaleClaimAfter is how old a pending slug claim must be for the
// reconciliation job to act on it.
const StaleClaimAfter = staleClaimAfter
