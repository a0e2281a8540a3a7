package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// activityRecord is one typed change: the status-update work computes facts
// from these, so they carry values, not prose.
type activityRecord struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	TargetKind string          `json:"target_kind"`
	TargetID   string          `json:"target_id"`
	ProjectID  string          `json:"project_id,omitempty"`
	TaskID     string          `json:"task_id,omitempty"`
	Field      string          `json:"field,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	Actor      string          `json:"actor"`
	At         int64           `json:"at"`
}

// Target names what an activity entry is about.
type Target struct {
	Kind string `json:"kind" doc:"workspace, member, project, task or comment"`
	ID   string `json:"id"`
}

// ActivityEntry is the API view of one change.
type ActivityEntry struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind" doc:"What happened, e.g. task.created, task.updated, comment.created"`
	Target    Target    `json:"target"`
	ProjectID string    `json:"project_id,omitempty"`
	TaskID    string    `json:"task_id,omitempty"`
	Field     string    `json:"field,omitempty" doc:"For updates, the field that changed"`
	Before    any       `json:"before,omitempty"`
	After     any       `json:"after,omitempty"`
	Actor     string    `json:"actor"`
	At        time.Time `json:"at"`
	// Names as they are now, so a feed reads without more requests.
	ProjectName string `json:"project_name,omitempty"`
	TaskKey     string `json:"task_key,omitempty"`
	TaskTitle   string `json:"task_title,omitempty"`
}

type activityInput struct {
	Kind       string
	TargetKind string
	TargetID   string
	ProjectID  string
	TaskID     string
	Field      string
	Before     any
	After      any
}

func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	return mustJSON(v)
}

// activity appends one entry to ch, in the same batch as the change itself.
func (s *Service) activity(ch *change, in activityInput) {
	rec := activityRecord{
		ID: newID(), Kind: in.Kind, TargetKind: in.TargetKind, TargetID: in.TargetID,
		ProjectID: in.ProjectID, TaskID: in.TaskID, Field: in.Field,
		Before: rawJSON(in.Before), After: rawJSON(in.After),
		Actor: ch.cmd.Actor, At: ch.cmd.At,
	}
	val := mustJSON(rec)
	ch.op(storage.Op{Type: storage.OpPut, Key: kActivity(rec.ID), Value: val, Version: 1})
	if rec.ProjectID != "" {
		// Activity never changes, so the project's index carries a copy of
		// the entry: feeds and status-update facts read it in one scan.
		ch.op(storage.Op{Type: storage.OpPut, Key: kProjActivity(rec.ProjectID).Add(rec.ID), Value: val, Version: 1})
	}
	if rec.TaskID != "" {
		ch.index(kTaskActivity(rec.TaskID).Add(rec.ID))
	}
	if e, ok := factEntryOf(&rec); ok {
		addFactEntry(ch, rec.ProjectID, e)
	}
}

// diffActivity appends one "<kind>.updated" entry per field whose value
// changed, in field-name order.
func (s *Service) diffActivity(ch *change, targetKind, targetID, projectID, taskID string, fields map[string][2]any) {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		ba := fields[f]
		if bytes.Equal(mustJSON(ba[0]), mustJSON(ba[1])) {
			continue
		}
		s.activity(ch, activityInput{
			Kind: targetKind + ".updated", TargetKind: targetKind, TargetID: targetID,
			ProjectID: projectID, TaskID: taskID, Field: f, Before: ba[0], After: ba[1],
		})
	}
}

func (a *activityRecord) view() ActivityEntry {
	e := ActivityEntry{
		ID: a.ID, Kind: a.Kind, Target: Target{Kind: a.TargetKind, ID: a.TargetID},
		ProjectID: a.ProjectID, TaskID: a.TaskID, Field: a.Field, Actor: a.Actor,
		At: time.UnixMilli(a.At).UTC(),
	}
	if len(a.Before) > 0 {
		e.Before = a.Before
	}
	if len(a.After) > 0 {
		e.After = a.After
	}
	return e
}

// namer fills the project and task names of activity entries, reading each
// project and task once per page.
type namer struct {
	v        storage.View
	projects map[string]*projectRecord
	tasks    map[string]*Task
}

func newNamer(v storage.View) *namer {
	return &namer{v: v, projects: map[string]*projectRecord{}, tasks: map[string]*Task{}}
}

func (n *namer) project(id string) *projectRecord {
	if pr, ok := n.projects[id]; ok {
		return pr
	}
	pr, _, err := getRecord[projectRecord](n.v, kProject(id))
	if err != nil {
		pr = nil
	}
	n.projects[id] = pr
	return pr
}

func (n *namer) name(e *ActivityEntry) {
	pr := n.project(e.ProjectID)
	if pr == nil {
		return
	}
	e.ProjectName = pr.Name
	if e.TaskID == "" {
		return
	}
	t, ok := n.tasks[e.TaskID]
	if !ok {
		if tr, rec, err := getRecord[taskRecord](n.v, kTask(e.TaskID)); err == nil {
			t = tr.view(pr, rec)
		}
		n.tasks[e.TaskID] = t
	}
	if t != nil {
		e.TaskKey, e.TaskTitle = t.Key, t.Title
	}
}

// activityPage lists the entries named by an activity index, newest first.
// An entry that carries the record (the project index) is read in place.
func (s *Service) activityPage(v storage.View, index storage.Key, pg PageRequest) (*Page[ActivityEntry], error) {
	names := newNamer(v)
	return scanPage(v, index, pg, true, func(k storage.Key, r storage.Record) (*ActivityEntry, error) {
		var a activityRecord
		if len(r.Value) > 0 {
			if err := jsonDecode(r.Value, &a); err != nil {
				return nil, err
			}
		} else {
			rec, _, err := getRecord[activityRecord](v, kActivity(lastPart(k)))
			if errors.Is(err, storage.ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			a = *rec
		}
		e := a.view()
		names.name(&e)
		return &e, nil
	})
}

// ProjectActivity lists a project's changes, newest first.
func (s *Service) ProjectActivity(ctx context.Context, p Principal, projectID string, pg PageRequest) (*Page[ActivityEntry], error) {
	_, v := s.tenant(p.Tenant)
	if _, _, err := s.visibleProject(v, p, projectID); err != nil {
		return nil, err
	}
	return s.activityPage(v, kProjActivity(projectID), pg)
}

// TaskActivity lists one task's changes (and its comments'), newest first.
func (s *Service) TaskActivity(ctx context.Context, p Principal, taskID string, pg PageRequest) (*Page[ActivityEntry], error) {
	_, v := s.tenant(p.Tenant)
	t, _, _, _, err := s.visibleTask(v, p, taskID)
	if err != nil {
		return nil, err
	}
	return s.activityPage(v, kTaskActivity(t.ID), pg)
}

// WorkspaceActivity lists every change the caller may see, newest first.
// Entries of projects hidden from the caller are left out.
func (s *Service) WorkspaceActivity(ctx context.Context, p Principal, pg PageRequest) (*Page[ActivityEntry], error) {
	_, v := s.tenant(p.Tenant)
	visible := map[string]bool{}
	names := newNamer(v)
	return scanPage(v, storage.K("act"), pg, true, func(_ storage.Key, r storage.Record) (*ActivityEntry, error) {
		var a activityRecord
		if err := jsonDecode(r.Value, &a); err != nil {
			return nil, err
		}
		if a.ProjectID != "" {
			ok, seen := visible[a.ProjectID]
			if !seen {
				_, _, err := s.visibleProject(v, p, a.ProjectID)
				ok = err == nil
				visible[a.ProjectID] = ok
			}
			if !ok {
				return nil, nil
			}
		} else if p.Role == RoleGuest {
			// Workspace-level changes (people, settings) are not for Guests.
			return nil, nil
		}
		e := a.view()
		names.name(&e)
		return &e, nil
	})
}
