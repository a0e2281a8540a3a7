package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// TrashItem is a soft-deleted item that can still be restored.
type TrashItem struct {
	Kind      string    `json:"kind" enum:"project,task,comment"`
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	ProjectID string    `json:"project_id,omitempty"`
	DeletedAt time.Time `json:"deleted_at"`
	DeletedBy string    `json:"deleted_by"`
	PurgeAt   time.Time `json:"purge_at" doc:"When the item is removed for good"`
}

// ListTrash lists restorable items the caller could restore: projects they
// lead, tasks and comments of projects they can see.
func (s *Service) ListTrash(ctx context.Context, p Principal, pg PageRequest) (*Page[TrashItem], error) {
	_, v := s.tenant(p.Tenant)
	return scanPage(v, storage.K("trash"), pg, false, func(_ storage.Key, r storage.Record) (*TrashItem, error) {
		var tr trashRecord
		if err := jsonDecode(r.Value, &tr); err != nil {
			return nil, err
		}
		projectID := tr.ProjectID
		if tr.Kind == "project" {
			projectID = tr.ID
		}
		pr, _, err := getRecord[projectRecord](v, kProject(projectID))
		if err != nil {
			return nil, nil
		}
		role, ok, err := projectRole(v, p, pr)
		if err != nil || !ok {
			return nil, err
		}
		if tr.Kind == "project" && role != ProjectLead {
			return nil, nil
		}
		if tr.Kind != "project" && pr.DeletedAt != 0 {
			return nil, nil
		}
		deleted := time.UnixMilli(tr.DeletedAt).UTC()
		return &TrashItem{Kind: tr.Kind, ID: tr.ID, Title: tr.Title, ProjectID: tr.ProjectID,
			DeletedAt: deleted, DeletedBy: tr.DeletedBy, PurgeAt: deleted.Add(s.cfg.TrashTTL)}, nil
	})
}

// maxPurgeOps bounds one purge command, so purging a large project is a
// series of small commands rather than one huge log entry.
const maxPurgeOps = 2000

// PurgeExpired removes for good every trashed item older than TrashTTL, in
// every workspace. It is idempotent: a second run (or a run on a new leader
// after a failover) finds nothing left to do. It returns how many items it
// purged.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	cutoff := s.now().Add(-s.cfg.TrashTTL).UnixMilli()
	total := 0
	for _, tenant := range tenants {
		_, v := s.tenant(tenant)
		var due []trashRecord
		if err := v.Scan(storage.K("trash"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			var tr trashRecord
			if err := jsonDecode(r.Value, &tr); err != nil {
				return err
			}
			if tr.DeletedAt <= cutoff {
				due = append(due, tr)
			}
			return nil
		}); err != nil {
			return total, err
		}
		for _, tr := range due {
			if err := s.purge(ctx, tenant, tr); err != nil {
				return total, fmt.Errorf("engine: purge %s %s: %w", tr.Kind, tr.ID, err)
			}
			total++
		}
	}
	return total, nil
}

func (s *Service) purge(ctx context.Context, tenant string, tr trashRecord) error {
	log, v := s.tenant(tenant)
	switch tr.Kind {
	case "comment":
		_, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(tenant, "purge.comment", "system")
			c, _, err := getRecord[commentRecord](v, kComment(tr.ID))
			if err == nil {
				ch.del(kTaskComments(c.TaskID).Add(tr.ID))
			}
			if err := purgeAttachments(ch, v, kCommentAttachments(tr.ID)); err != nil {
				return nil, err
			}
			ch.del(kComment(tr.ID))
			ch.del(kTrash("comment", tr.ID))
			return ch, nil
		})
		return err
	case "task":
		ids := append([]string{tr.ID}, tr.Cascade...)
		if err := s.purgeTasks(ctx, tenant, ids); err != nil {
			return err
		}
		_, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(tenant, "purge.task", "system")
			ch.del(kTrash("task", tr.ID))
			return ch, nil
		})
		return err
	case "project":
		return s.purgeProject(ctx, tenant, tr.ID)
	}
	return fmt.Errorf("unknown trash kind %q", tr.Kind)
}

// purgeTasks deletes tasks for good with their comments and index entries,
// in commands of bounded size.
func (s *Service) purgeTasks(ctx context.Context, tenant string, ids []string) error {
	log, v := s.tenant(tenant)
	for len(ids) > 0 {
		var batch []string
		_, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(tenant, "purge.tasks", "system")
			batch = batch[:0]
			for _, id := range ids {
				if len(ch.cmd.Ops) >= maxPurgeOps {
					break
				}
				batch = append(batch, id)
				t, rec, err := getRecord[taskRecord](v, kTask(id))
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				ch.expect(kTask(id), rec.Version)
				if t.DeletedAt == 0 {
					writeTask(ch, t, nil, taskWrite{})
					if err := taskFactHistory(ch, v, t.ProjectID, id, -1); err != nil {
						return nil, err
					}
				}
				ch.delRange(kFactsTask(t.ProjectID, id))
				ch.del(kTaskNumber(t.ProjectID).AddUint(rec.Stamp))
				ch.del(kTask(id))
				if err := v.Scan(kTaskComments(id), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
					cid := lastPart(k)
					ch.del(kComment(cid))
					ch.del(kTrash("comment", cid))
					return nil
				}); err != nil {
					return nil, err
				}
				// Attachments (the task's and its comments') give their bytes back.
				if err := purgeAttachments(ch, v, kTaskAttachments(id)); err != nil {
					return nil, err
				}
				ch.delRange(kTaskComments(id))
				ch.delRange(kIxChildren(id))
				ch.delRange(kTaskActivity(id))
			}
			return ch, nil
		})
		if err != nil {
			return err
		}
		ids = ids[len(batch):]
	}
	return nil
}

func (s *Service) purgeProject(ctx context.Context, tenant, id string) error {
	_, v := s.tenant(tenant)
	// Every task of the project, live or trashed, goes first.
	var ids []string
	collect := func(prefix storage.Key) error {
		return v.Scan(prefix, storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			ids = append(ids, lastPart(k))
			return nil
		})
	}
	if err := collect(kIxProjectTasks(id)); err != nil {
		return err
	}
	if err := v.Scan(storage.K("trash", "task"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var tr trashRecord
		if err := jsonDecode(r.Value, &tr); err != nil {
			return err
		}
		if tr.ProjectID == id {
			ids = append(ids, tr.ID)
			ids = append(ids, tr.Cascade...)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := s.purgeTasks(ctx, tenant, ids); err != nil {
		return err
	}
	var acts []string
	if err := v.Scan(kProjActivity(id), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		acts = append(acts, lastPart(k))
		return nil
	}); err != nil {
		return err
	}
	log, _ := s.tenant(tenant)
	for len(acts) > 0 {
		n := min(len(acts), maxPurgeOps)
		chunk := acts[:n]
		if _, err := s.commit(ctx, log, func() (*change, error) {
			ch := s.newChange(tenant, "purge.activity", "system")
			for _, a := range chunk {
				ch.del(kActivity(a))
			}
			return ch, nil
		}); err != nil {
			return err
		}
		acts = acts[n:]
	}
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(tenant, "purge.project", "system")
		pr, _, err := getRecord[projectRecord](v, kProject(id))
		if err == nil {
			ch.del(kProjectKey(pr.Key))
		}
		if err := v.Scan(storage.K("pm", id), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			ch.del(kUserProjects(lastPart(k)).Add(id))
			return nil
		}); err != nil {
			return nil, err
		}
		for _, prefix := range []storage.Key{
			storage.K("pm", id), kProjActivity(id), kTaskNumber(id), kTaskNumCnt(id),
			storage.K("ix", "pt", id), storage.K("ix", "pts", id), storage.K("ix", "pta", id),
			storage.K("ix", "ptg", id), storage.K("ix", "pso", id), kIxChildren(rootKey(id)), kFacts(id),
		} {
			ch.delRange(prefix)
		}
		ch.del(kProject(id))
		ch.del(kTrash("project", id))
		return ch, nil
	})
	return err
}
