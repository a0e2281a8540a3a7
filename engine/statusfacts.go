package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Facts are what a status update may say: gathered from the typed activity
// entries and the tasks of one or more projects over a period, as a
// structured value that tests check directly. Every fact has a short
// reference ID (C1, S2, …) that the writers cite.
type Facts struct {
	Projects []ProjectRef `json:"projects"`
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`

	Completed []TaskFact     `json:"completed" doc:"Moved into a done status in the period"`
	Started   []TaskFact     `json:"started" doc:"Moved from a to-do into an in-progress status"`
	Moved     []TaskFact     `json:"moved" doc:"Other status changes"`
	Created   []TaskFact     `json:"created"`
	Blocked   []TaskFact     `json:"blocked" doc:"Open tasks in a blocked status or tagged blocked"`
	Overdue   []TaskFact     `json:"overdue"`
	DueSoon   []TaskFact     `json:"due_soon" doc:"Open tasks due in the next 7 days"`
	Stalled   []TaskFact     `json:"stalled" doc:"In progress without any change for StalledDays"`
	Comments  []CommentFact  `json:"comments" doc:"Tasks discussed in the period"`
	Decisions []CommentFact  `json:"decisions" doc:"Comments that record a decision"`
	People    []PersonFact   `json:"people" doc:"Who did what, and open workload"`
	Totals    FactTotals     `json:"totals"`
	Refs      map[string]any `json:"-"`
}

// ProjectRef names a project in the facts.
type ProjectRef struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// TaskFact is one task in a fact list.
type TaskFact struct {
	Ref       string   `json:"ref"`
	TaskID    string   `json:"task_id"`
	Key       string   `json:"key"`
	Title     string   `json:"title"`
	Status    string   `json:"status"`
	Assignees []string `json:"assignees" doc:"Names"`
	Due       string   `json:"due,omitempty"`
	By        string   `json:"by,omitempty" doc:"Who made the change, by name"`
	At        string   `json:"at,omitempty"`
	Days      int      `json:"days,omitempty" doc:"Days overdue, or days without change"`
}

// CommentFact is discussion on a task in the period.
type CommentFact struct {
	Ref      string   `json:"ref"`
	TaskID   string   `json:"task_id"`
	Key      string   `json:"key"`
	Title    string   `json:"title"`
	Count    int      `json:"count"`
	By       []string `json:"by" doc:"Names"`
	Excerpts []string `json:"excerpts,omitempty"`
}

// PersonFact is one person's share of the period.
type PersonFact struct {
	Ref       string `json:"ref"`
	UserID    string `json:"user_id"`
	Name      string `json:"name"`
	Completed int    `json:"completed"`
	Started   int    `json:"started"`
	Comments  int    `json:"comments"`
	Open      int    `json:"open" doc:"Open tasks assigned now"`
}

// FactTotals are the counts (lists above are capped, counts are not).
type FactTotals struct {
	Completed int `json:"completed"`
	Started   int `json:"started"`
	Created   int `json:"created"`
	Open      int `json:"open"`
	Done      int `json:"done"`
	Blocked   int `json:"blocked"`
	Overdue   int `json:"overdue"`
	DueSoon   int `json:"due_soon"`
	Stalled   int `json:"stalled"`
	Comments  int `json:"comments"`
}

const (
	factListCap = 20
	stalledDays = 5
	dueSoonDays = 7
)

var decisionWords = []string{"decided", "decision", "we agreed", "agreed to", "we will go with", "approved"}

// gatherFacts reads the facts of the given projects for [from, to), as of
// now (overdue, due soon and stalled are judged at now), from the roll-ups
// the writes keep (statusrollup.go): counters for the totals and each
// person's share, and the first entries of short indexes for the lists.
// What it reads grows with the days of the period and the length of the
// lists, not with the project's tasks or activity.
func (s *Service) gatherFacts(ctx context.Context, tenant string, v storage.View, projects []*projectRecord, from, to, now time.Time) (*Facts, error) {
	g := &factGatherer{s: s, tenant: tenant, v: v, now: now, names: map[string]string{}, people: map[string]*PersonFact{}}
	f := &Facts{From: from.UTC(), To: to.UTC()}
	for _, pr := range projects {
		if err := s.ensureFactRollups(ctx, tenant, pr); err != nil {
			return nil, err
		}
		f.Projects = append(f.Projects, ProjectRef{ID: pr.ID, Key: pr.Key, Name: pr.Name})
		g.pr, g.views = pr, map[string]*Task{}
		if err := g.state(f); err != nil {
			return nil, fmt.Errorf("engine: status facts of project %s: %w", pr.ID, err)
		}
		if err := g.period(f, from.UnixMilli(), to.UnixMilli()); err != nil {
			return nil, fmt.Errorf("engine: status facts of project %s: %w", pr.ID, err)
		}
	}
	ids := make([]string, 0, len(g.people))
	for id := range g.people {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := g.people[ids[i]], g.people[ids[j]]
		if a.Completed != b.Completed {
			return a.Completed > b.Completed
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.UserID < b.UserID
	})
	for _, id := range ids {
		if p := g.people[id]; p.Completed+p.Started+p.Comments+p.Open > 0 && id != "system" {
			f.People = append(f.People, *p)
		}
	}
	f.numberRefs()
	return f, nil
}

// factGatherer holds what one gathering has looked up: names, people, and
// the current view of each task that became a fact.
type factGatherer struct {
	s      *Service
	tenant string
	v      storage.View
	now    time.Time
	names  map[string]string
	people map[string]*PersonFact
	pr     *projectRecord
	views  map[string]*Task
}

func (g *factGatherer) name(uid string) string {
	if uid == "" || uid == "system" {
		return "TeamFlow"
	}
	if n, ok := g.names[uid]; ok {
		return n
	}
	n := "someone"
	if u, _, err := getRecord[userRecord](g.v, kUser(uid)); err == nil {
		n = u.Name
	}
	g.names[uid] = n
	return n
}

func (g *factGatherer) person(uid string) *PersonFact {
	if p, ok := g.people[uid]; ok {
		return p
	}
	p := &PersonFact{UserID: uid, Name: g.name(uid)}
	g.people[uid] = p
	return p
}

// task is the current view of a live task of the project, from the project
// list's mirror of its record.
func (g *factGatherer) task(id string) (*Task, error) {
	if t, ok := g.views[id]; ok {
		return t, nil
	}
	r, err := g.v.Get(kIxProjectTasks(g.pr.ID).Add(id))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	t, rec, err := g.s.mirroredTask(g.tenant, id, r)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	view := t.view(g.pr, rec)
	g.views[id] = view
	return view, nil
}

func (g *factGatherer) fact(id string) (TaskFact, error) {
	t, err := g.task(id)
	if err != nil {
		return TaskFact{}, err
	}
	return g.s.taskFact(t, g.name), nil
}

// dated is a task found in a state index, with the value it was found by.
type dated struct {
	id   string
	days int
}

// appendFirst adds the facts of the first tasks by ID (the order the scan
// of the project's task list gave) while the list has room.
func (g *factGatherer) appendFirst(list []TaskFact, found []dated) ([]TaskFact, error) {
	sort.Slice(found, func(i, j int) bool { return found[i].id < found[j].id })
	for _, d := range found {
		if len(list) >= factListCap {
			break
		}
		fact, err := g.fact(d.id)
		if err != nil {
			return nil, err
		}
		fact.Days = d.days
		list = append(list, fact)
	}
	return list, nil
}

// state gathers what holds now: open and done counts, each person's open
// workload, and the blocked, overdue, due-soon and stalled tasks.
func (g *factGatherer) state(f *Facts) error {
	p, v := g.pr.ID, g.v
	statusOf := func(k storage.Key, at int) (Status, string, error) {
		parts, err := k.Parts()
		if err != nil || len(parts) <= at {
			return Status{}, "", fmt.Errorf("roll-up key %s: malformed", k)
		}
		id := string(parts[at])
		st, _ := g.pr.status(id)
		return st, id, nil
	}
	const statusPart = 4 // sf/<project>/r/<kind>/<status>
	inStatus, tagged := map[string]int64{}, map[string]int64{}
	var open []string // open statuses holding tasks, in key order
	err := v.Scan(kFactsData(p).Add("n"), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		st, id, err := statusOf(k, statusPart)
		if err != nil {
			return err
		}
		n, err := counterOf(k, r)
		if err != nil || n == 0 {
			return err
		}
		inStatus[id] = n
		if st.Category == CategoryDone {
			f.Totals.Done += int(n)
		} else {
			f.Totals.Open += int(n)
			open = append(open, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = v.Scan(kFactsData(p).Add("nb"), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		_, id, err := statusOf(k, statusPart)
		if err != nil {
			return err
		}
		tagged[id], err = counterOf(k, r)
		return err
	})
	if err != nil {
		return err
	}
	err = v.Scan(kFactsAssigned(p), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		st, _, err := statusOf(k, statusPart)
		if err != nil {
			return err
		}
		n, err := counterOf(k, r)
		if err != nil || n == 0 || st.Category == CategoryDone {
			return err
		}
		user, err := k.Last()
		if err != nil {
			return fmt.Errorf("roll-up key %s: %w", k, err)
		}
		g.person(user).Open += int(n)
		return nil
	})
	if err != nil {
		return err
	}
	nowKey := g.now.UTC().Format(time.RFC3339)
	soonKey := g.now.Add(dueSoonDays * 24 * time.Hour).UTC().Format(time.RFC3339)
	stalledBefore := g.now.Add(-stalledDays * 24 * time.Hour).UnixMilli()
	var blocked, overdue, soon, stalled []dated
	// firstIDs collects the first task IDs under an ID-ordered index.
	firstIDs := func(prefix storage.Key) error {
		n := 0
		return v.Scan(prefix, storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			blocked = append(blocked, dated{id: lastPart(k)})
			if n++; n >= factListCap {
				return storage.ErrStop
			}
			return nil
		})
	}
	for _, id := range open {
		st, _ := g.pr.status(id)
		// A task in a blocked status counts once, tagged or not.
		if strings.Contains(strings.ToLower(st.Name), "block") {
			f.Totals.Blocked += int(inStatus[id])
			err = firstIDs(kIxStatus(p, id))
		} else {
			f.Totals.Blocked += int(tagged[id])
			err = firstIDs(kFactsBlockedTag(p, id))
		}
		if err != nil {
			return err
		}
		// Due dates up to the end of the due-soon window, earliest first.
		err = v.Scan(kFactsDue(p, id), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			parts, err := k.Parts()
			if err != nil || len(parts) < 2 {
				return fmt.Errorf("roll-up key %s: malformed", k)
			}
			due, task := string(parts[len(parts)-2]), string(parts[len(parts)-1])
			switch {
			case due > soonKey:
				return storage.ErrStop
			case due < nowKey && !(len(due) == 10 && due == nowKey[:10]):
				overdue = append(overdue, dated{id: task, days: daysBetween(due, g.now)})
			default:
				soon = append(soon, dated{id: task})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if st.Category != CategoryInProgress {
			continue
		}
		// In progress and unchanged since before the stalled cut-off, oldest first.
		err = v.Scan(kFactsUpdated(p, id), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			parts, err := k.Parts()
			if err != nil || len(parts) < 2 || len(parts[len(parts)-2]) != 8 {
				return fmt.Errorf("roll-up key %s: malformed", k)
			}
			at := int64(binary.BigEndian.Uint64(parts[len(parts)-2]))
			if at >= stalledBefore {
				return storage.ErrStop
			}
			stalled = append(stalled, dated{id: string(parts[len(parts)-1]), days: int(g.now.Sub(time.UnixMilli(at)).Hours() / 24)})
			return nil
		})
		if err != nil {
			return err
		}
	}
	f.Totals.Overdue += len(overdue)
	f.Totals.DueSoon += len(soon)
	f.Totals.Stalled += len(stalled)
	if f.Blocked, err = g.appendFirst(f.Blocked, blocked); err != nil {
		return err
	}
	if f.Overdue, err = g.appendFirst(f.Overdue, overdue); err != nil {
		return err
	}
	if f.DueSoon, err = g.appendFirst(f.DueSoon, soon); err != nil {
		return err
	}
	f.Stalled, err = g.appendFirst(f.Stalled, stalled)
	return err
}

// period gathers what happened in [from, to): the counts, and the lists
// newest first.
func (g *factGatherer) period(f *Facts, from, to int64) error {
	p := g.pr.ID
	count := func(kind, actor string, n int) {
		switch kind {
		case factCreated:
			f.Totals.Created += n
		case factCompleted:
			f.Totals.Completed += n
			g.person(actor).Completed += n
		case factStarted:
			f.Totals.Started += n
			g.person(actor).Started += n
		case factComment:
			f.Totals.Comments += n
			g.person(actor).Comments += n
		}
	}
	// countEntries counts the entries in [lo, hi) one by one.
	countEntries := func(lo, hi int64) error {
		for _, kind := range []string{factCreated, factCompleted, factStarted, factComment} {
			err := g.entries(kind, lo, hi, false, func(e factEntry) (bool, error) {
				count(e.Kind, e.Actor, 1)
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	// counters adds the counters of whole units (days or hours) in [lo, hi).
	counters := func(prefix storage.Key, unit func(int64) string, lo, hi int64) error {
		end := unit(hi)
		return g.v.Scan(prefix, storage.ScanOptions{After: prefix.Add(unit(lo))}, func(k storage.Key, r storage.Record) error {
			parts, err := k.Parts()
			if err != nil || len(parts) != 7 { // sf/<project>/r/<d|h>/<day|hour>/<kind>/<actor>
				return fmt.Errorf("roll-up key %s: malformed", k)
			}
			if string(parts[4]) >= end {
				return storage.ErrStop
			}
			n, err := counterOf(k, r)
			if err == nil && n != 0 {
				count(string(parts[5]), string(parts[6]), int(n))
			}
			return err
		})
	}
	// Whole days from day counters, whole hours at either end from hour
	// counters, and the entries themselves only for the partial hours at
	// the very ends (none for a period that starts and ends on the hour, as
	// scheduled updates do).
	const hour, day = int64(time.Hour / time.Millisecond), int64(24 * time.Hour / time.Millisecond)
	ceil := func(t, unit int64) int64 { return (t + unit - 1) / unit * unit }
	floor := func(t, unit int64) int64 { return t / unit * unit }
	h1, h2 := ceil(from, hour), floor(to, hour)
	if from < 0 || h1 >= h2 {
		if err := countEntries(from, to); err != nil {
			return err
		}
	} else {
		if err := countEntries(from, h1); err != nil {
			return err
		}
		if err := countEntries(h2, to); err != nil {
			return err
		}
		hours, days := kFactsHours(p), kFactsDays(p)
		d1, d2 := ceil(h1, day), floor(h2, day)
		if d1 >= d2 {
			if err := counters(hours, factHour, h1, h2); err != nil {
				return err
			}
		} else {
			if err := counters(hours, factHour, h1, d1); err != nil {
				return err
			}
			if err := counters(days, factDay, d1, d2); err != nil {
				return err
			}
			if err := counters(hours, factHour, d2, h2); err != nil {
				return err
			}
		}
	}
	lists := []struct {
		kind string
		list *[]TaskFact
	}{{factCreated, &f.Created}, {factCompleted, &f.Completed}, {factStarted, &f.Started}, {factMoved, &f.Moved}}
	for _, l := range lists {
		err := g.entries(l.kind, from, to, true, func(e factEntry) (bool, error) {
			if len(*l.list) >= factListCap {
				return false, nil
			}
			fact, err := g.fact(e.TaskID)
			if err != nil {
				return false, err
			}
			fact.By, fact.At = g.name(e.Actor), time.UnixMilli(e.At).UTC().Format(time.RFC3339)
			if e.Kind == factMoved {
				fact.Status = e.Text
			}
			*l.list = append(*l.list, fact)
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	err := g.entries(factDecision, from, to, true, func(e factEntry) (bool, error) {
		if len(f.Decisions) >= factListCap {
			return false, nil
		}
		t, err := g.task(e.TaskID)
		if err != nil {
			return false, err
		}
		f.Decisions = append(f.Decisions, CommentFact{TaskID: t.ID, Key: t.Key, Title: t.Title, Count: 1, By: []string{g.name(e.Actor)}, Excerpts: []string{e.Text}})
		return true, nil
	})
	if err != nil {
		return err
	}
	// Tasks discussed, by their newest comment; then each one's comments
	// in the period from the task's own entries.
	var discussed []string
	err = g.entries(factComment, from, to, true, func(e factEntry) (bool, error) {
		if len(f.Comments)+len(discussed) >= factListCap {
			return false, nil
		}
		if !slices.Contains(discussed, e.TaskID) {
			discussed = append(discussed, e.TaskID)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range discussed {
		t, err := g.task(id)
		if err != nil {
			return err
		}
		c := CommentFact{TaskID: t.ID, Key: t.Key, Title: t.Title}
		err = g.scanRange(kFactsTask(p, id), from, to, true, func(e factEntry) (bool, error) {
			if e.Kind != factComment {
				return true, nil
			}
			c.Count++
			if n := g.name(e.Actor); !slices.Contains(c.By, n) {
				c.By = append(c.By, n)
			}
			if len(c.Excerpts) < 2 && e.Text != "" {
				c.Excerpts = append(c.Excerpts, e.Text)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		f.Comments = append(f.Comments, c)
	}
	return nil
}

// entries calls fn for the fact entries of a kind in [from, to), oldest or
// newest first, while fn returns true.
func (g *factGatherer) entries(kind string, from, to int64, newest bool, fn func(factEntry) (bool, error)) error {
	return g.scanRange(kFactsList(g.pr.ID, kind), from, to, newest, fn)
}

// scanRange calls fn for the entries under prefix (keyed <at>/<entry>) in
// [from, to), while fn returns true.
func (g *factGatherer) scanRange(prefix storage.Key, from, to int64, newest bool, fn func(factEntry) (bool, error)) error {
	if from >= to {
		return nil
	}
	opts := storage.ScanOptions{Reverse: newest, After: prefix.AddUint(uint64(max(from, 0)))}
	if newest {
		opts.After = prefix.AddUint(uint64(max(to, 0)))
	}
	return g.v.Scan(prefix, opts, func(k storage.Key, r storage.Record) error {
		e, err := decodeFactEntry(k, r)
		if err != nil {
			return err
		}
		if e.At < from || e.At >= to {
			return storage.ErrStop
		}
		more, err := fn(e)
		if err != nil {
			return err
		}
		if !more {
			return storage.ErrStop
		}
		return nil
	})
}

func (s *Service) taskFact(t *Task, name func(string) string) TaskFact {
	fact := TaskFact{TaskID: t.ID, Key: t.Key, Title: t.Title, Status: t.Status}
	for _, a := range t.Assignees {
		fact.Assignees = append(fact.Assignees, name(a))
	}
	if t.Due != nil {
		fact.Due = *t.Due
	}
	return fact
}

// appendCapped adds the fact fact builds while the list has room: most
// tasks of a big project only count.
func appendCapped(list []TaskFact, fact func() TaskFact) []TaskFact {
	if len(list) >= factListCap {
		return list
	}
	return append(list, fact())
}

func appendCappedComment(list []CommentFact, f CommentFact) []CommentFact {
	if len(list) >= factListCap {
		return list
	}
	return append(list, f)
}

func daysBetween(due string, now time.Time) int {
	t, err := time.Parse(time.RFC3339, due)
	if err != nil {
		t, _ = time.Parse(time.DateOnly, due)
	}
	return max(1, int(now.Sub(t).Hours()/24))
}

// numberRefs gives every fact its reference ID and indexes them.
func (f *Facts) numberRefs() {
	f.Refs = map[string]any{}
	lists := []struct {
		prefix string
		items  []TaskFact
	}{{"C", f.Completed}, {"S", f.Started}, {"M", f.Moved}, {"N", f.Created}, {"B", f.Blocked}, {"O", f.Overdue}, {"D", f.DueSoon}, {"T", f.Stalled}}
	for _, l := range lists {
		for i := range l.items {
			l.items[i].Ref = fmt.Sprintf("%s%d", l.prefix, i+1)
			f.Refs[l.items[i].Ref] = l.items[i]
		}
	}
	for i := range f.Comments {
		f.Comments[i].Ref = fmt.Sprintf("K%d", i+1)
		f.Refs[f.Comments[i].Ref] = f.Comments[i]
	}
	for i := range f.Decisions {
		f.Decisions[i].Ref = fmt.Sprintf("X%d", i+1)
		f.Refs[f.Decisions[i].Ref] = f.Decisions[i]
	}
	for i := range f.People {
		f.People[i].Ref = fmt.Sprintf("P%d", i+1)
		f.Refs[f.People[i].Ref] = f.People[i]
	}
}
