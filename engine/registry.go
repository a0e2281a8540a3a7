package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// The platform's records about a workspace — its registry entry, the slug
// index that sign-in resolves, the CORS origin index that answers
// preflights — are written by platform commands only, never by a command on
// the workspace's route (route.go), so that a workspace can move to its own
// store and raft group. The workspace's own record (kWorkspace) is the
// truth for its name, slug and origins; the platform records follow it:
//
//  1. A new slug is claimed first, on the platform route: the slug record
//     is created (precondition: absent, so a slug is never taken twice)
//     with a pending marker naming the workspace, plus a claim entry
//     sys/wsclaim/<tenant>/<slug> so the claim can be found again. A
//     pending slug resolves to nothing.
//  2. The workspace record is updated on the workspace's route.
//  3. reconcileWorkspace, on the platform route, makes the platform follow
//     the record: the record's slug becomes final (or is claimed now, if
//     free), the registry entry takes the record's name and slug, the old
//     slug and every other claim of the workspace are freed, and the CORS
//     index is brought to the record's origins. If step 2 failed, the same
//     step releases the claim.
//
// A crash between the steps leaves a pending claim or a registry behind its
// record; the workspace.reconcile job runs step 3 for every workspace (one
// with a claim younger than staleClaimAfter is mid-rename and left to its
// request). Should the record ever name a slug another workspace holds (a
// claim released under a request that stalled for longer than that), the
// record's slug is put back to the registry's, on the workspace's route, and
// the rename answers slug_taken.

// slugRecord is sys/slug/<slug>.
type slugRecord struct {
	ID      string `json:"id"`
	Pending bool   `json:"pending,omitempty"` // claimed by a rename not finished yet
	At      int64  `json:"at,omitempty"`      // when it was claimed (pending only)
}

func sysSlugClaim(tenant, slug string) storage.Key { return storage.K("wsclaim", tenant, slug) }
func sysSlugClaimsOf(tenant string) storage.Key    { return storage.K("wsclaim", tenant) }
func sysSlugClaims() storage.Key                   { return storage.K("wsclaim") }

// staleClaimAfter is how old a pending claim must be before the
// reconciliation job finishes or releases it instead of its request.
const staleClaimAfter = 2 * time.Minute

// errSlugLost: the slug a rename wrote into the workspace record belongs to
// another workspace (its claim was released under it); the record was put
// back.
var errSlugLost = errors.New("engine: slug lost")

func slugTaken(field, slug string) error {
	return &Error{Code: "slug_taken", Field: field, Message: fmt.Sprintf("the workspace slug %q is taken", slug), Err: ErrConflict}
}

// claimSlug is step 1: it claims slug for tenant on the platform route.
// A slug the workspace already holds or has claimed is fine.
func (s *Service) claimSlug(ctx context.Context, tenant, actor, slug string) error {
	log, sys := s.sys()
	_, err := s.commit(ctx, log, func() (*change, error) {
		cur, _, err := getRecord[slugRecord](sys, sysSlug(slug))
		switch {
		case err == nil && cur.ID == tenant:
			return nil, errAlreadyDone
		case err == nil:
			return nil, slugTaken("slug", slug)
		case !errors.Is(err, storage.ErrNotFound):
			return nil, err
		}
		at := s.now().UnixMilli()
		ch := s.newChange("", "workspace.slug_claim", actor)
		ch.expectSys(sysSlug(slug), 0)
		ch.putSys(sysSlug(slug), slugRecord{ID: tenant, Pending: true, At: at}, 1)
		ch.putSys(sysSlugClaim(tenant, slug), map[string]int64{"at": at}, 1)
		return ch, nil
	})
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	return err
}

// reconcileWorkspace is step 3: the platform's records about tenant are
// brought to what its workspace record says. It is idempotent and proposes
// nothing when they agree. A claim of a slug the record does not name is
// released when it is own (the caller's rename) or stale; a younger one
// belongs to another rename still running. It returns errSlugLost when the
// record's slug had to be put back.
func (s *Service) reconcileWorkspace(ctx context.Context, tenant, own string) error {
	lost := false
	for range 4 {
		revert := ""
		log, sys := s.sys()
		_, v := s.tenant(tenant)
		_, err := s.commit(ctx, log, func() (*change, error) {
			revert = ""
			ch := s.newChange("", "workspace.registry_sync", "system")
			ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			entry, erec, eerr := getRecord[workspaceEntry](sys, sysWorkspace(tenant))
			if eerr != nil && !errors.Is(eerr, storage.ErrNotFound) {
				return nil, eerr
			}
			want := ""
			if err == nil && eerr == nil {
				want = ws.Slug
			}
			// Claims other than the record's slug are released.
			var claims []string
			cutoff := s.now().Add(-staleClaimAfter).UnixMilli()
			if err := sys.Scan(sysSlugClaimsOf(tenant), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
				c := lastPart(k)
				var claim struct {
					At int64 `json:"at"`
				}
				if c == want || c == own || jsonDecode(r.Value, &claim) != nil || claim.At <= cutoff || want == "" {
					claims = append(claims, c)
				}
				return nil
			}); err != nil {
				return nil, err
			}
			for _, c := range claims {
				ch.delSys(sysSlugClaim(tenant, c))
				if c == want {
					continue
				}
				if cur, crec, err := getRecord[slugRecord](sys, sysSlug(c)); err == nil && cur.ID == tenant && cur.Pending {
					ch.expectSys(sysSlug(c), crec.Version)
					ch.delSys(sysSlug(c))
				}
			}
			if want == "" {
				// No workspace (or no registry entry): only the claims go.
				if len(ch.cmd.Ops) == 0 {
					return nil, errAlreadyDone
				}
				return ch, nil
			}
			cur, crec, err := getRecord[slugRecord](sys, sysSlug(want))
			switch {
			case errors.Is(err, storage.ErrNotFound):
				ch.expectSys(sysSlug(want), 0)
				ch.putSys(sysSlug(want), slugRecord{ID: tenant}, 1)
			case err != nil:
				return nil, err
			case cur.ID != tenant:
				revert = entry.Slug
				return nil, errSlugLost
			case cur.Pending:
				ch.expectSys(sysSlug(want), crec.Version)
				ch.putSys(sysSlug(want), slugRecord{ID: tenant}, crec.Version+1)
			}
			changed := false
			if entry.Slug != want {
				if old, orec, err := getRecord[slugRecord](sys, sysSlug(entry.Slug)); err == nil && old.ID == tenant {
					ch.expectSys(sysSlug(entry.Slug), orec.Version)
					ch.delSys(sysSlug(entry.Slug))
				}
				entry.Slug, changed = want, true
			}
			if entry.Name != ws.Name {
				entry.Name, changed = ws.Name, true
			}
			var indexed []string
			if entry.CORSIndexed != nil {
				indexed = *entry.CORSIndexed
			} else if indexed, err = s.legacyCORSIndexed(tenant); err != nil {
				return nil, err
			}
			origins := nonNil(ws.CORSOrigins)
			if entry.CORSIndexed == nil || !sameSet(indexed, origins) {
				indexCORS(ch, tenant, indexed, origins)
				entry.CORSIndexed, changed = &origins, true
			}
			if changed {
				ch.putSys(sysWorkspace(tenant), entry, erec.Version+1)
			}
			if len(ch.cmd.Ops) == 0 {
				return nil, errAlreadyDone
			}
			// Every sync of one workspace is ordered by its registry entry.
			ch.expectSys(sysWorkspace(tenant), erec.Version)
			return ch, nil
		})
		switch {
		case err == nil || errors.Is(err, errAlreadyDone):
			if lost {
				return errSlugLost
			}
			return nil
		case !errors.Is(err, errSlugLost):
			return err
		}
		lost = true
		if err := s.revertSlug(ctx, tenant, revert); err != nil {
			return err
		}
	}
	return conflict("write_contention", "the workspace is being changed by others; try again")
}

// revertSlug puts the workspace record's slug back to the registry's, on
// the workspace's route, when the record names a slug it does not hold.
func (s *Service) revertSlug(ctx context.Context, tenant, slug string) error {
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ws, rec, err := getRecord[workspaceRecord](v, kWorkspace)
		if err != nil {
			return nil, err
		}
		if ws.Slug == slug {
			return nil, errAlreadyDone
		}
		ch := s.newChange(tenant, "workspace.slug_revert", "system")
		ch.expect(kWorkspace, rec.Version)
		s.activity(ch, activityInput{Kind: "workspace.updated", TargetKind: "workspace", TargetID: tenant, Field: "slug", Before: ws.Slug, After: slug})
		s.audit(ctx, ch, auditInput{Action: "workspace.slug_revert", TargetKind: "workspace", TargetID: tenant, Outcome: "success",
			Detail: map[string]any{"slug": [2]string{ws.Slug, slug}}})
		ws.Slug = slug
		ch.put(kWorkspace, ws, rec.Version+1)
		return ch, nil
	})
	if errors.Is(err, errAlreadyDone) {
		return nil
	}
	return err
}

// legacyCORSIndexed finds the origins the CORS index holds for tenant, for
// a registry entry written before entries recorded them (once per such
// workspace: the sync records them).
func (s *Service) legacyCORSIndexed(tenant string) ([]string, error) {
	_, sys := s.sys()
	var out []string
	err := sys.Scan(storage.K("cors"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		parts, err := k.Parts()
		if err == nil && len(parts) == 3 && string(parts[2]) == tenant {
			out = append(out, string(parts[1]))
		}
		return nil
	})
	return out, err
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// ReconcileWorkspaces runs reconcileWorkspace for every workspace and every
// workspace with a stale claim (the workspace.reconcile job; leader only,
// idempotent). A workspace with a claim younger than staleClaimAfter is
// mid-rename and left to its request. It returns how many it visited.
func (s *Service) ReconcileWorkspaces(ctx context.Context) (int, error) {
	_, sys := s.sys()
	fresh := map[string]bool{}
	var claimed []string
	cutoff := s.now().Add(-staleClaimAfter).UnixMilli()
	if err := sys.Scan(sysSlugClaims(), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		parts, err := k.Parts()
		if err != nil || len(parts) != 3 {
			return nil
		}
		t := string(parts[1])
		var c struct {
			At int64 `json:"at"`
		}
		if jsonDecode(r.Value, &c) == nil && c.At > cutoff {
			fresh[t] = true
		}
		if !slices.Contains(claimed, t) {
			claimed = append(claimed, t)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	ids, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	for _, t := range claimed {
		if !slices.Contains(ids, t) {
			ids = append(ids, t)
		}
	}
	n := 0
	for _, t := range ids {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if fresh[t] {
			continue
		}
		if err := s.reconcileWorkspace(ctx, t, ""); err != nil && !errors.Is(err, errSlugLost) {
			return n, fmt.Errorf("engine: reconcile workspace %s: %w", t, err)
		}
		n++
	}
	return n, nil
}
