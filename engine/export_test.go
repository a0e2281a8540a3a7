package engine

import "time"

// FactsOfLast gathers the facts of a project's last period, as a status
// update would, without writing one (for benchmarks).
func (s *Service) FactsOfLast(p Principal, projectID string, period time.Duration) (*Facts, error) {
	_, v := s.tenant(p.Tenant)
	pr, _, err := s.visibleProject(v, p, projectID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return s.gatherFacts(p.Tenant, v, []*projectRecord{pr}, now.Add(-period), now, now)
}

// WriteBuiltin exposes the built-in writer to benchmarks.
func WriteBuiltin(f *Facts) string { return writeBuiltin(f) }

// DropCaches forgets every decoded record, as after a restart (for
// benchmarks of the cold path).
func (s *Service) DropCaches() {
	s.tasks = newVersionCache(s.cfg.TaskCacheSize)
	s.acts = newVersionCache(s.cfg.TaskCacheSize)
}
