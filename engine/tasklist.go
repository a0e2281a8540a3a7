package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"

	"github.com/teamflow/teamflow/storage"
)

// TaskFilter narrows a task list. Empty fields do not filter.
type TaskFilter struct {
	Status    string // name or ID
	Assignee  string // member ID, or "me"
	Tag       string
	DueBefore string // tasks due strictly before (date or date-time)
	DueAfter  string // tasks due strictly after
	ParentID  string // subtasks of this task, or "none" for top-level tasks
	Sort      string // created (default), updated, due, priority, title, position; "-" prefix for descending
}

// gatherCap bounds how many candidates an equality index may give before
// the planner prefers scanning the sort index instead.
const gatherCap = 5000

type taskQuery struct {
	projectID string // "" for a workspace-wide list
	statusID  string
	assignee  string
	tag       string
	dueBefore string
	dueAfter  string
	parent    string
	sort      sortSpec
}

func (q *taskQuery) match(t *taskRecord) bool {
	if t.DeletedAt != 0 || (q.projectID != "" && t.ProjectID != q.projectID) {
		return false
	}
	if q.statusID != "" && t.StatusID != q.statusID {
		return false
	}
	if q.assignee != "" && !slices.Contains(t.Assignees, q.assignee) {
		return false
	}
	if q.tag != "" && !slices.Contains(t.Tags, q.tag) {
		return false
	}
	if q.parent != "" {
		parent := t.ParentID
		if parent == "" {
			parent = rootKey(t.ProjectID)
		}
		if parent != q.parent {
			return false
		}
	}
	if q.dueBefore != "" || q.dueAfter != "" {
		due := mustDueKey(t.Due)
		if due == "" || (q.dueBefore != "" && due >= q.dueBefore) || (q.dueAfter != "" && due <= q.dueAfter) {
			return false
		}
	}
	return true
}

func compileTaskFilter(p Principal, pr *projectRecord, f TaskFilter) (*taskQuery, error) {
	spec, err := parseSort(f.Sort)
	if err != nil {
		return nil, err
	}
	q := &taskQuery{sort: spec}
	if pr != nil {
		q.projectID = pr.ID
	}
	if f.Status != "" {
		if pr == nil {
			return nil, invalid("status", "invalid_filter", "filter by status within a project")
		}
		st, ok := pr.status(f.Status)
		if !ok {
			return nil, invalid("status", "unknown_status", "the project has no status %q", f.Status)
		}
		q.statusID = st.ID
	}
	if f.Assignee != "" {
		q.assignee = f.Assignee
		if f.Assignee == "me" {
			q.assignee = p.UserID
		}
		if !validID(q.assignee) {
			return nil, invalid("assignee", "invalid_assignee", "assignee is a member ID or me")
		}
	}
	if f.Tag != "" {
		tags, err := normalizeTags([]string{f.Tag})
		if err != nil {
			return nil, invalid("tag", "invalid_tag", "not a valid tag")
		}
		q.tag = tags[0]
	}
	if q.dueBefore, err = dueKey("due_before", f.DueBefore); err != nil {
		return nil, err
	}
	if q.dueAfter, err = dueKey("due_after", f.DueAfter); err != nil {
		return nil, err
	}
	switch {
	case f.ParentID == "":
	case f.ParentID == "none" && pr != nil:
		q.parent = rootKey(pr.ID)
	case validID(f.ParentID):
		q.parent = f.ParentID
	default:
		return nil, invalid("parent_id", "invalid_parent", "parent_id is a task ID or none")
	}
	return q, nil
}

// driver returns the narrowest equality index for the query, or nil.
func (q *taskQuery) driver() storage.Key {
	switch {
	case q.parent != "":
		return kIxChildren(q.parent)
	case q.projectID == "" && q.assignee != "":
		return kIxUserTasks(q.assignee)
	case q.assignee != "":
		return kIxAssignee(q.projectID, q.assignee)
	case q.tag != "":
		return kIxTag(q.projectID, q.tag)
	case q.statusID != "":
		return kIxStatus(q.projectID, q.statusID)
	}
	return nil
}

func decodeTail(cursor string) (storage.Key, error) {
	if cursor == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 || len(b) > 2048 {
		return nil, invalid("cursor", "invalid_cursor", "the cursor is not valid for this list")
	}
	parts, err := storage.Key(b).Parts()
	if err != nil || len(parts) == 0 || !validID(string(parts[len(parts)-1])) {
		return nil, invalid("cursor", "invalid_cursor", "the cursor is not valid for this list")
	}
	return storage.Key(b), nil
}

type foundTask struct {
	t    *taskRecord
	rec  storage.Record
	tail storage.Key
}

// ListTasks lists a project's tasks (projectID set), or tasks across the
// workspace's visible projects for an assignee (projectID empty: "my
// tasks"). Filters combine; sort and cursor pagination are stable.
func (s *Service) ListTasks(ctx context.Context, p Principal, projectID string, f TaskFilter, pg PageRequest) (*Page[Task], error) {
	limit, err := pg.limit()
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	var pr *projectRecord
	if projectID != "" {
		if pr, _, err = s.visibleProject(v, p, projectID); err != nil {
			return nil, err
		}
	} else if f.Assignee == "" {
		f.Assignee = "me"
	}
	q, err := compileTaskFilter(p, pr, f)
	if err != nil {
		return nil, err
	}
	after, err := decodeTail(pg.Cursor)
	if err != nil {
		return nil, err
	}
	projects := map[string]*projectRecord{}
	if pr != nil {
		projects[pr.ID] = pr
	}
	// visible filters tasks of projects the caller cannot see (workspace-wide lists).
	visible := func(t *taskRecord) bool {
		if _, ok := projects[t.ProjectID]; ok {
			return projects[t.ProjectID] != nil
		}
		vp, _, err := s.visibleProject(v, p, t.ProjectID)
		if err != nil {
			vp = nil
		}
		projects[t.ProjectID] = vp
		return vp != nil
	}
	load := func(id string, entry storage.Record) (*taskRecord, storage.Record, bool, error) {
		var t *taskRecord
		var rec storage.Record
		var err error
		if c, ok := s.tasks.get(p.Tenant+id, entry.Version); ok {
			t, rec = c.(cachedTask).task, c.(cachedTask).rec
		} else if len(entry.Value) > 0 {
			// The project list entry mirrors the record: no second read.
			t, rec, err = s.mirroredTask(p.Tenant, id, entry)
		} else {
			t, rec, err = getRecord[taskRecord](v, kTask(id))
			if err == nil {
				s.tasks.put(p.Tenant+id, rec.Version, cachedTask{rec: storage.Record{Version: rec.Version, Stamp: rec.Stamp}, task: t})
			}
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, false, nil
		}
		if err != nil {
			return nil, rec, false, err
		}
		return t, rec, q.match(t) && visible(t), nil
	}

	var found []foundTask
	var next storage.Key
	drv := q.driver()
	switch {
	case q.sort.name == "created" || (drv == nil && q.projectID != ""):
		// Scan an index already in the requested order.
		base := drv
		if q.sort.name != "created" {
			base = kIxSort(q.projectID, q.sort.name)
		} else if base == nil {
			base = kIxProjectTasks(q.projectID)
		}
		found, next, err = scanTasks(v, base, base, after, q.sort.reverse, limit, load)
	case q.sort.name == "position" && q.statusID != "":
		base := kIxSort(q.projectID, "position")
		found, next, err = scanTasks(v, append(base, storage.K(q.statusID)...), base, after, q.sort.reverse, limit, load)
	default:
		found, next, err = gatherTasks(v, drv, q, after, limit, load)
		if errors.Is(err, errTooMany) && q.projectID != "" {
			base := kIxSort(q.projectID, q.sort.name)
			found, next, err = scanTasks(v, base, base, after, q.sort.reverse, limit, load)
		}
	}
	if err != nil {
		if errors.Is(err, errTooMany) {
			return nil, invalid("sort", "too_many_results", "narrow the filter to sort more than %d tasks", gatherCap)
		}
		return nil, err
	}
	out := &Page[Task]{Items: make([]Task, 0, len(found))}
	for _, ft := range found {
		out.Items = append(out.Items, *ft.t.view(projects[ft.t.ProjectID], ft.rec))
	}
	if next != nil {
		out.NextCursor = base64.RawURLEncoding.EncodeToString(next)
	}
	return out, nil
}

// loadFunc reads the task an index entry points at: from the cache when the
// entry's version is cached, from the entry itself when it mirrors the
// record, else from the store. ok says whether it passes the query.
type loadFunc func(id string, entry storage.Record) (t *taskRecord, rec storage.Record, ok bool, err error)

// scanTasks walks index keys under prefix; each key is base + tail with the
// task ID last. It returns up to limit matches and, when more may follow,
// the tail to continue after.
func scanTasks(v storage.View, prefix, base, after storage.Key, reverse bool, limit int, load loadFunc) ([]foundTask, storage.Key, error) {
	var found []foundTask
	var last, next storage.Key
	opts := storage.ScanOptions{Reverse: reverse}
	if after != nil {
		opts.After = append(append(storage.Key{}, base...), after...)
	}
	err := v.Scan(prefix, opts, func(k storage.Key, r storage.Record) error {
		if len(found) == limit {
			next = last
			return storage.ErrStop
		}
		tail := append(storage.Key{}, k[len(base):]...)
		last = tail
		t, rec, ok, err := load(lastPart(k), r)
		if err != nil || !ok {
			return err
		}
		found = append(found, foundTask{t: t, rec: rec, tail: tail})
		return nil
	})
	return found, next, err
}

var errTooMany = errors.New("too many candidates")

// gatherTasks reads every candidate of an equality index, sorts them in
// memory by their sort tail and pages by cursor: the same order and cursors
// as scanning the sort index, without walking the whole project.
func gatherTasks(v storage.View, drv storage.Key, q *taskQuery, after storage.Key, limit int, load loadFunc) ([]foundTask, storage.Key, error) {
	if drv == nil {
		return nil, nil, errTooMany
	}
	type candidate struct {
		id      string
		version uint64
	}
	var cands []candidate
	err := v.Scan(drv, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		if len(cands) == gatherCap {
			return errTooMany
		}
		cands = append(cands, candidate{lastPart(k), r.Version})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var all []foundTask
	for _, c := range cands {
		t, rec, ok, err := load(c.id, storage.Record{Version: c.version})
		if err != nil {
			return nil, nil, err
		}
		if ok {
			all = append(all, foundTask{t: t, rec: rec, tail: sortTail(t, q.sort.name)})
		}
	}
	slices.SortFunc(all, func(a, b foundTask) int {
		c := bytes.Compare(a.tail, b.tail)
		if q.sort.reverse {
			return -c
		}
		return c
	})
	start := 0
	if after != nil {
		start = len(all)
		for i, ft := range all {
			c := bytes.Compare(ft.tail, after)
			if (!q.sort.reverse && c > 0) || (q.sort.reverse && c < 0) {
				start = i
				break
			}
		}
	}
	all = all[start:]
	if len(all) > limit {
		return all[:limit], all[limit-1].tail, nil
	}
	return all, nil, nil
}
