package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/teamflow/teamflow/storage"
)

// Route guards (DESIGN rule 7). A workspace may later move to its own store
// and raft group; a command proposed on its route must then touch nothing
// but its own keyspace, and a command on the platform route nothing but
// platform records, or half of it would land in the wrong store. The engine
// wraps every route it gets from the Router in a guard that refuses, before
// proposing, any command that crosses over:
//
//   - on workspace T's route: Tenant must be T, and no op or precondition
//     may be in SpaceSys;
//   - on the platform route: Tenant must be "" (Apply advances the event
//     sequence of a command's tenant, a tenant write) and no op or
//     precondition may be in SpaceTenant. The one exception is the command
//     that creates a workspace, which writes the registry and the new
//     workspace's first records together: a workspace is always created on
//     the shared route, so both halves are in one store (createLog).
//
// A refusal is a programming error (ErrRouteViolation): every engine flow
// proposes through these guards, so the tests that run them catch a change
// that crosses over.

// ErrRouteViolation is a command proposed on a route it does not belong to.
var ErrRouteViolation = errors.New("engine: command crosses its route")

// guardedRouter wraps a Router's routes in guards.
type guardedRouter struct{ inner Router }

func (g guardedRouter) Workspace(tenant string) Route {
	r := g.inner.Workspace(tenant)
	r.Log = routeGuard{inner: r.Log, tenant: tenant}
	return r
}

func (g guardedRouter) Platform() Route {
	r := g.inner.Platform()
	r.Log = routeGuard{inner: r.Log, platform: true}
	return r
}

// routeGuard checks each command against its route before proposing it.
type routeGuard struct {
	inner     Log
	tenant    string // workspace route: its tenant
	platform  bool   // platform route
	newTenant string // platform route: the workspace this command creates
}

func (g routeGuard) Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error) {
	if err := g.check(cmd); err != nil {
		return storage.Result{}, err
	}
	return g.inner.Propose(ctx, cmd)
}

func (g routeGuard) check(cmd *storage.Command) error {
	if !g.platform {
		if cmd.Tenant != g.tenant || g.tenant == "" {
			return fmt.Errorf("%w: %s for workspace %q proposed on workspace %q's route", ErrRouteViolation, cmd.Kind, cmd.Tenant, g.tenant)
		}
		return spaceOnly(cmd, storage.SpaceTenant, "workspace "+g.tenant)
	}
	if g.newTenant != "" && cmd.Tenant == g.newTenant {
		return nil
	}
	if cmd.Tenant != "" {
		return fmt.Errorf("%w: %s names workspace %q on the platform route", ErrRouteViolation, cmd.Kind, cmd.Tenant)
	}
	return spaceOnly(cmd, storage.SpaceSys, "the platform")
}

func spaceOnly(cmd *storage.Command, want storage.Space, route string) error {
	for _, p := range cmd.Preconditions {
		if p.Space != want {
			return fmt.Errorf("%w: %s has a precondition on %s outside %s's keyspace", ErrRouteViolation, cmd.Kind, p.Key, route)
		}
	}
	for _, op := range cmd.Ops {
		if op.Space != want {
			return fmt.Errorf("%w: %s writes %s outside %s's keyspace", ErrRouteViolation, cmd.Kind, op.Key, route)
		}
	}
	return nil
}

// createLog is the platform route for the command that creates workspace
// tenant (its registry entry and first records in one batch).
func (s *Service) createLog(tenant string) Log {
	return routeGuard{inner: s.routes.Platform().Log, platform: true, newTenant: tenant}
}
