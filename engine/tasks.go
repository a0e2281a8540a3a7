package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teamflow/teamflow/storage"
)

const (
	maxTitle       = 500
	maxDescription = 64 << 10
	maxAssignees   = 20
	maxTags        = 20
	maxTagLen      = 50
	maxSubtasks    = 1000 // a delete cascades through at most this many descendants
)

// Priorities, from none up.
var priorities = []string{"none", "low", "medium", "high", "urgent"}

func priorityRank(p string) int { return slices.Index(priorities, p) }

type taskRecord struct {
	ID          string   `json:"id"`
	ProjectID   string   `json:"project_id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	StatusID    string   `json:"status_id"`
	Assignees   []string `json:"assignees"`
	Due         string   `json:"due,omitempty"`
	Priority    string   `json:"priority"`
	Tags        []string `json:"tags"`
	ParentID    string   `json:"parent_id,omitempty"`
	Position    string   `json:"position"`
	CreatedBy   string   `json:"created_by"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedBy   string   `json:"updated_by"`
	UpdatedAt   int64    `json:"updated_at"`
	DeletedAt   int64    `json:"deleted_at,omitempty"`
	DeletedBy   string   `json:"deleted_by,omitempty"`
	DeletedWith string   `json:"deleted_with,omitempty"` // the task whose deletion took this one along
}

// Task is the API view of a task.
type Task struct {
	ID              string    `json:"id"`
	ProjectID       string    `json:"project_id"`
	Number          uint64    `json:"number"`
	Key             string    `json:"key" doc:"Human key, e.g. WEB-12"`
	Title           string    `json:"title"`
	Description     string    `json:"description" doc:"Markdown"`
	DescriptionHTML string    `json:"description_html,omitempty" doc:"The description rendered and sanitized (single-task reads only)"`
	Status          string    `json:"status" doc:"Status name"`
	StatusID        string    `json:"status_id"`
	StatusCategory  string    `json:"status_category" enum:"todo,in_progress,done"`
	Assignees       []string  `json:"assignees"`
	Due             *string   `json:"due" doc:"A date (2026-12-01) or a date-time with zone (2026-12-01T17:00:00+09:00)"`
	Priority        string    `json:"priority" enum:"none,low,medium,high,urgent"`
	Tags            []string  `json:"tags"`
	ParentID        *string   `json:"parent_id"`
	Position        string    `json:"position" doc:"Kanban order within the status column"`
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedBy       string    `json:"updated_by"`
	UpdatedAt       time.Time `json:"updated_at"`
	Version         uint64    `json:"version"`
}

func (t *taskRecord) view(pr *projectRecord, rec storage.Record) *Task {
	st, _ := pr.status(t.StatusID)
	out := &Task{
		ID: t.ID, ProjectID: t.ProjectID, Number: rec.Stamp, Key: fmt.Sprintf("%s-%d", pr.Key, rec.Stamp),
		Title: t.Title, Description: t.Description, Status: st.Name, StatusID: t.StatusID, StatusCategory: st.Category,
		Assignees: nonNil(t.Assignees), Priority: t.Priority, Tags: nonNil(t.Tags), Position: t.Position,
		CreatedBy: t.CreatedBy, CreatedAt: time.UnixMilli(t.CreatedAt).UTC(),
		UpdatedBy: t.UpdatedBy, UpdatedAt: time.UnixMilli(t.UpdatedAt).UTC(), Version: rec.Version,
	}
	if t.Due != "" {
		d := t.Due
		out.Due = &d
	}
	if t.ParentID != "" {
		p := t.ParentID
		out.ParentID = &p
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// dueKey normalises a due value so that dates and date-times compare as
// strings: a date stays YYYY-MM-DD, a date-time becomes UTC RFC 3339.
func dueKey(field, due string) (string, error) {
	if due == "" {
		return "", nil
	}
	if len(due) == 10 {
		if _, err := time.Parse(time.DateOnly, due); err == nil {
			return due, nil
		}
	}
	t, err := time.Parse(time.RFC3339, due)
	if err != nil || len(due) > 40 {
		return "", invalid(field, "invalid_due", "a due date is YYYY-MM-DD or an RFC 3339 date-time with zone")
	}
	return t.UTC().Format(time.RFC3339), nil
}

func mustDueKey(due string) string {
	k, _ := dueKey("due", due)
	return k
}

var tagRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} _.:/+-]*$`)

func normalizeTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, invalid("tags", "too_many_tags", "a task has at most %d tags", maxTags)
	}
	out := []string{}
	for i, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || utf8.RuneCountInString(t) > maxTagLen || !tagRE.MatchString(t) {
			return nil, invalid(fmt.Sprintf("tags[%d]", i), "invalid_tag", "tags are 1–%d letters, digits, spaces or _.:/+-", maxTagLen)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func validateTitle(title string) (string, error) {
	return validateName("title", title, maxTitle)
}

// sortSpec is one supported order of a task list.
type sortSpec struct {
	name    string
	reverse bool
}

var sortNames = []string{"created", "updated", "due", "priority", "title", "position"}

func parseSort(s string) (sortSpec, error) {
	if s == "" {
		return sortSpec{name: "created"}, nil
	}
	spec := sortSpec{}
	if strings.HasPrefix(s, "-") {
		spec.reverse = true
		s = s[1:]
	}
	if !slices.Contains(sortNames, s) {
		return sortSpec{}, invalid("sort", "invalid_sort", "sort is one of %s, optionally prefixed with - for descending", strings.Join(sortNames, ", "))
	}
	spec.name = s
	return spec, nil
}

// sortTail is the part of a task's sort key after the sort's index prefix;
// it ends with the task ID so that equal values keep creation order. It is
// also the list cursor, so cursors mean the same whichever index serves a
// page.
func sortTail(t *taskRecord, sort string) storage.Key {
	switch sort {
	case "updated":
		return storage.Key(nil).AddUint(uint64(t.UpdatedAt)).Add(t.ID)
	case "due":
		due := mustDueKey(t.Due)
		if due == "" {
			due = "~" // no due date sorts last
		}
		return storage.K(due, t.ID)
	case "priority":
		return storage.K(strconv.Itoa(priorityRank(t.Priority)), t.ID)
	case "title":
		title := strings.ToLower(t.Title)
		if len(title) > 100 {
			title = strings.ToValidUTF8(title[:100], "")
		}
		return storage.K(title, t.ID)
	case "position":
		return storage.K(t.StatusID, t.Position, t.ID)
	}
	return storage.K(t.ID)
}

func rootKey(projectID string) string { return "~" + projectID }

// taskIndexKeys are the empty index entries a live task has. The project
// list entry is not among them: it mirrors the record (see writeTask).
func taskIndexKeys(t *taskRecord) []storage.Key {
	p := t.ProjectID
	keys := []storage.Key{kIxStatus(p, t.StatusID).Add(t.ID)}
	parent := t.ParentID
	if parent == "" {
		parent = rootKey(p)
	}
	keys = append(keys, kIxChildren(parent).Add(t.ID))
	for _, a := range t.Assignees {
		keys = append(keys, kIxAssignee(p, a).Add(t.ID), kIxUserTasks(a).Add(t.ID))
	}
	for _, tag := range t.Tags {
		keys = append(keys, kIxTag(p, tag).Add(t.ID))
	}
	for _, s := range sortNames[1:] {
		keys = append(keys, append(kIxSort(p, s), sortTail(t, s)...))
	}
	return keys
}

func kIxUserTasks(u string) storage.Key { return storage.K("ix", "ua", u) }

// taskWrite says how a task's record is stored: its new version, and its
// number (the stamp), either known or allocated by op stampRef of the same
// command.
type taskWrite struct {
	version  uint64
	stamp    uint64
	stampRef int // 1-based op index of the number counter; 0 = use stamp
}

// writeTask brings a task's indexes from before to after (either may be
// nil: just created, or no longer live); the caller writes the record.
// Index entries carry the record's version. The
// project's task list entry is a full mirror of the live record (same value,
// version and number), so the default list of a project reads no record
// behind its index.
func writeTask(ch *change, before, after *taskRecord, w taskWrite) {
	var old, cur []storage.Key
	if before != nil {
		old = taskIndexKeys(before)
	}
	if after != nil {
		cur = taskIndexKeys(after)
	}
	ch.delGone(old, cur)
	// Every entry is rewritten with the record's version, so a list that
	// walks an index knows which version each entry stands for and can take
	// the record from the node's cache instead of reading and decoding it.
	for _, k := range cur {
		ch.op(storage.Op{Type: storage.OpPut, Key: k, Version: w.version})
	}
	switch {
	case after != nil:
		ch.op(storage.Op{Type: storage.OpPut, Key: kIxProjectTasks(after.ProjectID).Add(after.ID), Value: mustJSON(after),
			Version: w.version, Stamp: w.stamp, StampRef: uint16(w.stampRef)})
	case before != nil:
		ch.del(kIxProjectTasks(before.ProjectID).Add(before.ID))
	}
	writeTaskFacts(ch, before, after)
}

// CreateTaskInput creates a task.
type CreateTaskInput struct {
	Title       string
	Description string
	Status      string // name or ID; default the first status
	Assignees   []string
	Due         string
	Priority    string
	Tags        []string
	ParentID    string
	AfterID     *string // place after this task in its column ("" = top); nil = at the end
}

// CreateTask adds a task to a project (Contributors and Leads).
func (s *Service) CreateTask(ctx context.Context, p Principal, projectID string, in CreateTaskInput) (*Task, error) {
	title, err := validateTitle(in.Title)
	if err != nil {
		return nil, err
	}
	if len(in.Description) > maxDescription {
		return nil, invalid("description", "too_long", "description may have at most %d bytes", maxDescription)
	}
	if _, err := dueKey("due", in.Due); err != nil {
		return nil, err
	}
	prio := in.Priority
	if prio == "" {
		prio = "none"
	}
	if priorityRank(prio) < 0 {
		return nil, invalid("priority", "invalid_priority", "priority is one of %s", strings.Join(priorities, ", "))
	}
	tags, err := normalizeTags(in.Tags)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(p.Tenant)
	var out *Task
	var prKey string
	var numOp int
	res, err := s.commit(ctx, log, func() (*change, error) {
		pr, _, _, err := s.projectWithRole(v, p, projectID, ProjectContributor, "add tasks")
		if err != nil {
			return nil, err
		}
		st := pr.Statuses[0]
		if in.Status != "" {
			var ok bool
			if st, ok = pr.status(in.Status); !ok {
				return nil, invalid("status", "unknown_status", "the project has no status %q", in.Status)
			}
		}
		assignees, err := s.checkAssignees(v, pr, in.Assignees)
		if err != nil {
			return nil, err
		}
		if in.ParentID != "" {
			if _, _, err := s.liveTaskIn(v, pr.ID, in.ParentID, "parent_id"); err != nil {
				return nil, err
			}
		}
		now := s.now().UnixMilli()
		t := &taskRecord{
			ID: newID(), ProjectID: pr.ID, Title: title, Description: in.Description, StatusID: st.ID,
			Assignees: assignees, Due: in.Due, Priority: prio, Tags: tags, ParentID: in.ParentID,
			CreatedBy: p.actor(), CreatedAt: now, UpdatedBy: p.actor(), UpdatedAt: now,
		}
		ch := s.newChange(p.Tenant, "task.create", p.actor())
		var preconds []storage.Precondition
		if t.Position, preconds, err = s.placeTask(v, pr.ID, st.ID, t.ID, in.AfterID); err != nil {
			return nil, err
		}
		ch.cmd.Preconditions = append(ch.cmd.Preconditions, preconds...)
		numOp = ch.add(kTaskNumCnt(pr.ID), 1)
		ch.putStamped(kTask(t.ID), t, 1, numOp)
		ch.indexRef(kTaskNumber(pr.ID), []byte(t.ID), numOp)
		prKey = pr.Key
		writeTask(ch, nil, t, taskWrite{version: 1, stampRef: numOp + 1})
		s.activity(ch, activityInput{Kind: "task.created", TargetKind: "task", TargetID: t.ID, ProjectID: pr.ID, TaskID: t.ID, After: title})
		for _, a := range assignees {
			s.activity(ch, activityInput{Kind: "task.assigned", TargetKind: "task", TargetID: t.ID, ProjectID: pr.ID, TaskID: t.ID, Field: "assignees", After: a})
		}
		if !p.Operator {
			follow(ch, t.ID, p.UserID)
		}
		follow(ch, t.ID, assignees...)
		if err := s.notify(ch, v, assignees, notificationRecord{Kind: NotifyAssigned, ProjectID: pr.ID, TaskID: t.ID, Title: title, Urgent: prio == "urgent"}); err != nil {
			return nil, err
		}
		out = t.view(pr, storage.Record{Version: 1})
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	// The number was allocated inside Apply, so the counter never conflicts.
	out.Number = uint64(res.Values[numOp])
	out.Key = fmt.Sprintf("%s-%d", prKey, out.Number)
	return out, nil
}

// placeTask picks the position of a task in a status column: after the
// task afterID ("" = at the top), or at the end when afterID is nil. It
// returns preconditions pinning the neighbours, so two cards dropped in the
// same slot at once do not silently interleave.
func (s *Service) placeTask(v storage.View, projectID, statusID, self string, afterID *string) (string, []storage.Precondition, error) {
	col := kIxSort(projectID, "position").Add(statusID)
	var lower, upper string
	var pins []storage.Precondition
	neighbour := func(k storage.Key, r storage.Record) (string, error) {
		parts, err := k[len(col):].Parts()
		if err != nil || len(parts) != 2 {
			return "", fmt.Errorf("engine: bad position index key %s", k)
		}
		// The scan's key is only valid during the callback: keep a copy.
		pins = append(pins, storage.Precondition{Key: slices.Clone(k), Version: r.Version})
		return string(parts[0]), nil
	}
	switch {
	case afterID == nil:
		err := v.Scan(col, storage.ScanOptions{Reverse: true}, func(k storage.Key, r storage.Record) error {
			if strings.HasSuffix(string(k), string(storage.K(self))) {
				return nil
			}
			var err error
			lower, err = neighbour(k, r)
			if err != nil {
				return err
			}
			return storage.ErrStop
		})
		if err != nil {
			return "", nil, err
		}
	default:
		var after storage.Key
		if *afterID != "" {
			if *afterID == self {
				return "", nil, invalid("move.after_id", "invalid_move", "a task cannot be placed after itself")
			}
			at, atRec, err := s.liveTaskIn(v, projectID, *afterID, "move.after_id")
			if err != nil {
				return "", nil, err
			}
			if at.StatusID != statusID {
				return "", nil, invalid("move.after_id", "invalid_move", "the task to place after is in another status")
			}
			after = col.Add(at.Position, at.ID)
			lower = at.Position
			pins = append(pins, storage.Precondition{Key: after, Version: atRec.Version})
		}
		err := v.Scan(col, storage.ScanOptions{After: after}, func(k storage.Key, r storage.Record) error {
			if strings.HasSuffix(string(k), string(storage.K(self))) {
				return nil
			}
			var err error
			upper, err = neighbour(k, r)
			if err != nil {
				return err
			}
			return storage.ErrStop
		})
		if err != nil {
			return "", nil, err
		}
	}
	return positionBetween(lower, upper), pins, nil
}

// checkAssignees validates assignee IDs: distinct active accounts of this
// workspace who can see the project.
func (s *Service) checkAssignees(v storage.View, pr *projectRecord, ids []string) ([]string, error) {
	if len(ids) > maxAssignees {
		return nil, invalid("assignees", "too_many_assignees", "a task has at most %d assignees", maxAssignees)
	}
	out := []string{}
	for i, id := range ids {
		field := fmt.Sprintf("assignees[%d]", i)
		if !validID(id) {
			return nil, invalid(field, "invalid_assignee", "%q is not a member ID", id)
		}
		if slices.Contains(out, id) {
			continue
		}
		u, _, err := getRecord[userRecord](v, kUser(id))
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil, invalid(field, "invalid_assignee", "no member %s in this workspace", id)
			}
			return nil, err
		}
		if u.Status != StatusActive {
			return nil, invalid(field, "invalid_assignee", "member %s is deactivated", id)
		}
		if _, ok, err := projectRole(v, Principal{UserID: u.ID, Role: u.Role}, pr); err != nil {
			return nil, err
		} else if !ok {
			return nil, invalid(field, "invalid_assignee", "member %s cannot see this project", id)
		}
		out = append(out, id)
	}
	return out, nil
}

// liveTaskIn loads a live task of the given project; field names the input
// that referred to it.
func (s *Service) liveTaskIn(v storage.View, projectID, id, field string) (*taskRecord, storage.Record, error) {
	if !validID(id) {
		return nil, storage.Record{}, invalid(field, "invalid_task", "%q is not a task ID", id)
	}
	t, rec, err := getRecord[taskRecord](v, kTask(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, invalid(field, "invalid_task", "no task %s in this project", id)
		}
		return nil, rec, err
	}
	if t.ProjectID != projectID || t.DeletedAt != 0 {
		return nil, rec, invalid(field, "invalid_task", "no task %s in this project", id)
	}
	return t, rec, nil
}

var taskKeyRE = regexp.MustCompile(`^([A-Z][A-Z0-9]{1,9})-([0-9]{1,12})$`)

// resolveTaskID accepts a task ID or a human key such as WEB-12.
func (s *Service) resolveTaskID(v storage.View, id string) (string, bool) {
	if validID(id) {
		return id, true
	}
	m := taskKeyRE.FindStringSubmatch(id)
	if m == nil {
		return "", false
	}
	pk, _, err := getRecord[struct {
		ID string `json:"id"`
	}](v, kProjectKey(m[1]))
	if err != nil {
		return "", false
	}
	n, _ := strconv.ParseUint(m[2], 10, 64)
	rec, err := v.Get(kTaskNumber(pk.ID).AddUint(n))
	if err != nil {
		return "", false
	}
	return string(rec.Value), true
}

// visibleTask loads a live task in a project the caller can see.
func (s *Service) visibleTask(v storage.View, p Principal, id string) (*taskRecord, storage.Record, *projectRecord, ProjectRole, error) {
	tid, ok := s.resolveTaskID(v, id)
	if !ok {
		return nil, storage.Record{}, nil, "", notFound("task")
	}
	t, rec, err := getRecord[taskRecord](v, kTask(tid))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, nil, "", notFound("task")
		}
		return nil, rec, nil, "", err
	}
	if t.DeletedAt != 0 {
		return nil, rec, nil, "", notFound("task")
	}
	pr, _, err := s.visibleProject(v, p, t.ProjectID)
	if err != nil {
		return nil, rec, nil, "", notFound("task")
	}
	role, _, err := projectRole(v, p, pr)
	if err != nil {
		return nil, rec, nil, "", err
	}
	return t, rec, pr, role, nil
}

// GetTask returns one task with its description rendered.
func (s *Service) GetTask(ctx context.Context, p Principal, id string) (*Task, error) {
	_, v := s.tenant(p.Tenant)
	t, rec, pr, _, err := s.visibleTask(v, p, id)
	if err != nil {
		return nil, err
	}
	out := t.view(pr, rec)
	out.DescriptionHTML = RenderMarkdown(t.Description)
	return out, nil
}

// TaskMove places a task in a column: after AfterID, or at the top when
// AfterID is empty.
type TaskMove struct {
	AfterID string
}

// TaskPatch changes a task. Nil fields stay; ClearDue and ClearParent
// remove those values.
type TaskPatch struct {
	Title       *string
	Description *string
	Status      *string
	Assignees   *[]string
	Due         *string
	ClearDue    bool
	Priority    *string
	Tags        *[]string
	ParentID    *string
	ClearParent bool
	Move        *TaskMove
	IfMatch     uint64
}

// UpdateTask changes a task (Contributors and Leads). Moving a card is one
// write of the card alone; re-parenting refuses cycles.
func (s *Service) UpdateTask(ctx context.Context, p Principal, id string, in TaskPatch) (*Task, error) {
	if in.Title != nil {
		t, err := validateTitle(*in.Title)
		if err != nil {
			return nil, err
		}
		in.Title = &t
	}
	if in.Description != nil && len(*in.Description) > maxDescription {
		return nil, invalid("description", "too_long", "description may have at most %d bytes", maxDescription)
	}
	if in.Due != nil {
		if _, err := dueKey("due", *in.Due); err != nil {
			return nil, err
		}
	}
	if in.Priority != nil && priorityRank(*in.Priority) < 0 {
		return nil, invalid("priority", "invalid_priority", "priority is one of %s", strings.Join(priorities, ", "))
	}
	if in.Tags != nil {
		tags, err := normalizeTags(*in.Tags)
		if err != nil {
			return nil, err
		}
		in.Tags = &tags
	}
	log, v := s.tenant(p.Tenant)
	var out *Task
	_, err := s.commit(ctx, log, func() (*change, error) {
		t, rec, pr, role, err := s.visibleTask(v, p, id)
		if err != nil {
			return nil, err
		}
		if role.rank() < ProjectContributor.rank() {
			return nil, forbidden("your role in this project (%s) does not allow changing tasks", role)
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		before := *t
		ch := s.newChange(p.Tenant, "task.update", p.actor())
		ch.expect(kTask(t.ID), rec.Version)
		t.Title = deref(in.Title, t.Title)
		t.Description = deref(in.Description, t.Description)
		if in.Status != nil {
			st, ok := pr.status(*in.Status)
			if !ok {
				return nil, invalid("status", "unknown_status", "the project has no status %q", *in.Status)
			}
			t.StatusID = st.ID
		}
		if in.Assignees != nil {
			if t.Assignees, err = s.checkAssignees(v, pr, *in.Assignees); err != nil {
				return nil, err
			}
		}
		if in.ClearDue {
			t.Due = ""
		} else if in.Due != nil {
			t.Due = *in.Due
		}
		t.Priority = deref(in.Priority, t.Priority)
		if in.Tags != nil {
			t.Tags = *in.Tags
		}
		if in.ClearParent {
			t.ParentID = ""
		} else if in.ParentID != nil && *in.ParentID != t.ParentID {
			if err := s.checkParent(v, t, *in.ParentID); err != nil {
				return nil, err
			}
			t.ParentID = *in.ParentID
		}
		if in.Move != nil || t.StatusID != before.StatusID {
			var after *string
			if in.Move != nil {
				after = &in.Move.AfterID
			}
			pos, pins, err := s.placeTask(v, pr.ID, t.StatusID, t.ID, after)
			if err != nil {
				return nil, err
			}
			t.Position = pos
			ch.cmd.Preconditions = append(ch.cmd.Preconditions, pins...)
		}
		t.UpdatedBy, t.UpdatedAt = p.actor(), s.now().UnixMilli()
		ch.putKeep(kTask(t.ID), t, rec.Version+1, rec.Stamp)
		writeTask(ch, &before, t, taskWrite{version: rec.Version + 1, stamp: rec.Stamp})
		s.taskActivity(ch, pr, &before, t)
		if err := s.notifyTaskChange(ch, v, pr, &before, t); err != nil {
			return nil, err
		}
		out = t.view(pr, storage.Record{Version: rec.Version + 1, Stamp: rec.Stamp})
		out.DescriptionHTML = RenderMarkdown(t.Description)
		return ch, nil
	})
	return out, err
}

func statusValue(pr *projectRecord, id string) map[string]string {
	st, _ := pr.status(id)
	return map[string]string{"id": st.ID, "name": st.Name, "category": st.Category}
}

// taskActivity records one typed entry per changed field.
func (s *Service) taskActivity(ch *change, pr *projectRecord, before, after *taskRecord) {
	fields := map[string][2]any{
		"title":       {before.Title, after.Title},
		"description": {before.Description, after.Description},
		"due":         {before.Due, after.Due},
		"priority":    {before.Priority, after.Priority},
		"tags":        {before.Tags, after.Tags},
		"parent_id":   {before.ParentID, after.ParentID},
	}
	if before.StatusID != after.StatusID {
		fields["status"] = [2]any{statusValue(pr, before.StatusID), statusValue(pr, after.StatusID)}
	} else if before.Position != after.Position {
		fields["position"] = [2]any{before.Position, after.Position}
	}
	s.diffActivity(ch, "task", after.ID, after.ProjectID, after.ID, fields)
	for _, a := range after.Assignees {
		if !slices.Contains(before.Assignees, a) {
			s.activity(ch, activityInput{Kind: "task.assigned", TargetKind: "task", TargetID: after.ID, ProjectID: after.ProjectID, TaskID: after.ID, Field: "assignees", After: a})
		}
	}
	for _, a := range before.Assignees {
		if !slices.Contains(after.Assignees, a) {
			s.activity(ch, activityInput{Kind: "task.unassigned", TargetKind: "task", TargetID: after.ID, ProjectID: after.ProjectID, TaskID: after.ID, Field: "assignees", Before: a})
		}
	}
}

// notifyTaskChange tells new assignees they were assigned, and followers
// that the status changed.
func (s *Service) notifyTaskChange(ch *change, v storage.View, pr *projectRecord, before, after *taskRecord) error {
	var added []string
	for _, a := range after.Assignees {
		if !slices.Contains(before.Assignees, a) {
			added = append(added, a)
		}
	}
	follow(ch, after.ID, added...)
	urgent := after.Priority == "urgent"
	if err := s.notify(ch, v, added, notificationRecord{Kind: NotifyAssigned, ProjectID: after.ProjectID, TaskID: after.ID, Title: after.Title, Urgent: urgent}); err != nil {
		return err
	}
	if before.StatusID == after.StatusID {
		return nil
	}
	fol, err := s.followers(v, after.ID)
	if err != nil {
		return err
	}
	st, _ := pr.status(after.StatusID)
	return s.notify(ch, v, fol, notificationRecord{Kind: NotifyStatus, ProjectID: after.ProjectID, TaskID: after.ID, Title: after.Title, Excerpt: "now " + st.Name, Urgent: urgent})
}

// checkParent refuses a parent outside the project and any cycle: walking
// up from the new parent must never reach the task itself.
func (s *Service) checkParent(v storage.View, t *taskRecord, parentID string) error {
	if parentID == t.ID {
		return invalid("parent_id", "parent_cycle", "a task cannot be its own parent")
	}
	cur := parentID
	for depth := 0; cur != ""; depth++ {
		if depth > 10_000 {
			return invalid("parent_id", "parent_cycle", "the task hierarchy is too deep")
		}
		pt, _, err := s.liveTaskIn(v, t.ProjectID, cur, "parent_id")
		if err != nil {
			return err
		}
		if pt.ID == t.ID {
			return invalid("parent_id", "parent_cycle", "that parent is a subtask of this task; a task cannot be its own ancestor")
		}
		cur = pt.ParentID
	}
	return nil
}

type trashRecord struct {
	Kind      string   `json:"kind"`
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	ProjectID string   `json:"project_id,omitempty"`
	DeletedAt int64    `json:"deleted_at"`
	DeletedBy string   `json:"deleted_by"`
	Cascade   []string `json:"cascade,omitempty"` // descendants deleted with it
}

// descendants lists the live subtasks of a task, depth first.
func (s *Service) descendants(v storage.View, id string) ([]string, error) {
	var out []string
	stack := []string{id}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		err := v.Scan(kIxChildren(cur), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			child := lastPart(k)
			out = append(out, child)
			stack = append(stack, child)
			if len(out) > maxSubtasks {
				return conflict("too_many_subtasks", "the task has more than %d subtasks; delete some of them first", maxSubtasks)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteTask moves a task and its subtasks to the trash.
func (s *Service) DeleteTask(ctx context.Context, p Principal, id string, ifMatch uint64) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		t, rec, _, role, err := s.visibleTask(v, p, id)
		if err != nil {
			return nil, err
		}
		if role.rank() < ProjectContributor.rank() {
			return nil, forbidden("your role in this project (%s) does not allow deleting tasks", role)
		}
		if ifMatch != 0 && ifMatch != rec.Version {
			return nil, errStale
		}
		desc, err := s.descendants(v, t.ID)
		if err != nil {
			return nil, err
		}
		now := s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "task.delete", p.actor())
		for _, tid := range append([]string{t.ID}, desc...) {
			dt, drec, err := getRecord[taskRecord](v, kTask(tid))
			if err != nil {
				return nil, err
			}
			ch.expect(kTask(tid), drec.Version)
			writeTask(ch, dt, nil, taskWrite{})
			if err := taskFactHistory(ch, v, dt.ProjectID, tid, -1); err != nil {
				return nil, err
			}
			dt.DeletedAt, dt.DeletedBy = now, p.actor()
			if tid != t.ID {
				dt.DeletedWith = t.ID
			}
			ch.putKeep(kTask(tid), dt, drec.Version+1, drec.Stamp)
		}
		ch.put(kTrash("task", t.ID), trashRecord{Kind: "task", ID: t.ID, Title: t.Title, ProjectID: t.ProjectID, DeletedAt: now, DeletedBy: p.actor(), Cascade: desc}, 1)
		s.activity(ch, activityInput{Kind: "task.deleted", TargetKind: "task", TargetID: t.ID, ProjectID: t.ProjectID, TaskID: t.ID, Before: t.Title})
		return ch, nil
	})
	return err
}

// RestoreTask brings a task (and the subtasks deleted with it) back.
func (s *Service) RestoreTask(ctx context.Context, p Principal, id string) (*Task, error) {
	if !validID(id) {
		return nil, notFound("deleted task")
	}
	log, v := s.tenant(p.Tenant)
	var out *Task
	_, err := s.commit(ctx, log, func() (*change, error) {
		t, _, err := getRecord[taskRecord](v, kTask(id))
		if err != nil || t.DeletedAt == 0 || t.DeletedWith != "" {
			return nil, notFound("deleted task")
		}
		pr, _, _, err := s.projectWithRole(v, p, t.ProjectID, ProjectContributor, "restore tasks")
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, notFound("deleted task")
			}
			return nil, err
		}
		if t.ParentID != "" {
			parent, _, err := getRecord[taskRecord](v, kTask(t.ParentID))
			if err != nil || parent.DeletedAt != 0 {
				return nil, conflict("parent_deleted", "the parent task is deleted; restore it first")
			}
		}
		tr, trec, err := getRecord[trashRecord](v, kTrash("task", id))
		if err != nil {
			return nil, notFound("deleted task")
		}
		ch := s.newChange(p.Tenant, "task.restore", p.actor())
		ch.expect(kTrash("task", id), trec.Version)
		ch.del(kTrash("task", id))
		for _, tid := range append([]string{id}, tr.Cascade...) {
			dt, drec, err := getRecord[taskRecord](v, kTask(tid))
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				return nil, err
			}
			if dt.DeletedAt == 0 || (tid != id && dt.DeletedWith != id) {
				continue
			}
			ch.expect(kTask(tid), drec.Version)
			dt.DeletedAt, dt.DeletedBy, dt.DeletedWith = 0, "", ""
			if _, ok := pr.status(dt.StatusID); !ok {
				dt.StatusID = pr.Statuses[0].ID
			}
			ch.putKeep(kTask(tid), dt, drec.Version+1, drec.Stamp)
			writeTask(ch, nil, dt, taskWrite{version: drec.Version + 1, stamp: drec.Stamp})
			if err := taskFactHistory(ch, v, dt.ProjectID, tid, 1); err != nil {
				return nil, err
			}
			if tid == id {
				out = dt.view(pr, storage.Record{Version: drec.Version + 1, Stamp: drec.Stamp})
			}
		}
		s.activity(ch, activityInput{Kind: "task.restored", TargetKind: "task", TargetID: id, ProjectID: t.ProjectID, TaskID: id, After: t.Title})
		return ch, nil
	})
	return out, err
}
