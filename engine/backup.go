package engine

import (
	"context"
	"strings"

	"github.com/teamflow/teamflow/storage"
)

// BackupScope is what a backup of one workspace holds: the workspace's
// keyspace and the platform records named in Sys.
type BackupScope struct {
	Tenant string
	Sys    []storage.Key
}

// WorkspaceBackupScope answers the scope of a backup of one workspace:
// besides its keyspace, its registry entry and slug, and the setup record,
// so a node restored from it does not offer first-run setup again. Signing
// keys and the operator's token stay behind (a restored node makes its
// own): they are the platform's, and would let whoever holds the backup
// sign tokens for every other workspace of the source.
func (s *Service) WorkspaceBackupScope(ctx context.Context, p Principal, slug string) (*BackupScope, error) {
	if err := requireOperator(p); err != nil {
		return nil, err
	}
	tenant, err := s.workspaceBySlug(strings.ToLower(strings.TrimSpace(slug)))
	if err != nil {
		return nil, err
	}
	e, err := s.workspaceRecord(tenant)
	if err != nil {
		return nil, err
	}
	// A workspace's backup is the operator reading all of it: recorded in
	// its trail before the stream starts.
	if err := s.auditPlatformAccess(ctx, p, tenant, "platform.backup"); err != nil {
		return nil, err
	}
	return &BackupScope{Tenant: tenant, Sys: []storage.Key{sysWorkspace(tenant), sysSlug(e.Slug), sysSetup}}, nil
}
