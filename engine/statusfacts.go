package engine

import (
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

// entryFacts is what the facts need of one activity entry.
type entryFacts struct {
	Kind, TaskID, Field, Actor string
	At                         int64
	Before, After              struct{ Category, Name string } // status changes
	Text                       string                          // comments
}

// gatherFacts reads the facts of the given projects for [from, to), as of
// now (overdue, due soon and stalled are judged at now).
func (s *Service) gatherFacts(tenant string, v storage.View, projects []*projectRecord, from, to, now time.Time) (*Facts, error) {
	f := &Facts{From: from.UTC(), To: to.UTC()}
	names := map[string]string{}
	name := func(uid string) string {
		if uid == "" || uid == "system" {
			return "TeamFlow"
		}
		if n, ok := names[uid]; ok {
			return n
		}
		n := "someone"
		if u, _, err := getRecord[userRecord](v, kUser(uid)); err == nil {
			n = u.Name
		}
		names[uid] = n
		return n
	}
	people := map[string]*PersonFact{}
	person := func(uid string) *PersonFact {
		if p, ok := people[uid]; ok {
			return p
		}
		p := &PersonFact{UserID: uid, Name: name(uid)}
		people[uid] = p
		return p
	}
	nowKey := now.UTC().Format(time.RFC3339)
	soonKey := now.Add(dueSoonDays * 24 * time.Hour).UTC().Format(time.RFC3339)
	stalledBefore := now.Add(-stalledDays * 24 * time.Hour).UnixMilli()
	for _, pr := range projects {
		f.Projects = append(f.Projects, ProjectRef{ID: pr.ID, Key: pr.Key, Name: pr.Name})
		// Current state of every live task (from the project list's mirror).
		// The API view of a task is built only for the few that become facts.
		type liveTask struct {
			rec  *taskRecord
			r    storage.Record
			view *Task
		}
		tasks := make(map[string]*liveTask, 1024)
		factOf := func(lt *liveTask) TaskFact {
			if lt.view == nil {
				lt.view = lt.rec.view(pr, lt.r)
			}
			return s.taskFact(lt.view, name)
		}
		err := v.Scan(kIxProjectTasks(pr.ID), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			t, rec, err := s.mirroredTask(tenant, lastPart(k), r)
			if err != nil {
				return err
			}
			lt := &liveTask{rec: t, r: rec}
			tasks[t.ID] = lt
			st, _ := pr.status(t.StatusID)
			if st.Category == CategoryDone {
				f.Totals.Done++
				return nil
			}
			f.Totals.Open++
			for _, a := range t.Assignees {
				person(a).Open++
			}
			due := mustDueKey(t.Due)
			if strings.Contains(strings.ToLower(st.Name), "block") || slices.Contains(t.Tags, "blocked") {
				f.Totals.Blocked++
				f.Blocked = appendCapped(f.Blocked, func() TaskFact { return factOf(lt) })
			}
			if due != "" && due < nowKey && !(len(due) == 10 && due == nowKey[:10]) {
				f.Totals.Overdue++
				f.Overdue = appendCapped(f.Overdue, func() TaskFact {
					fact := factOf(lt)
					fact.Days = daysBetween(due, now)
					return fact
				})
			} else if due != "" && due <= soonKey {
				f.Totals.DueSoon++
				f.DueSoon = appendCapped(f.DueSoon, func() TaskFact { return factOf(lt) })
			}
			if st.Category == CategoryInProgress && t.UpdatedAt < stalledBefore {
				f.Totals.Stalled++
				f.Stalled = appendCapped(f.Stalled, func() TaskFact {
					fact := factOf(lt)
					fact.Days = int(now.Sub(time.UnixMilli(t.UpdatedAt)).Hours() / 24)
					return fact
				})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// What happened in the period, newest first, from the project's
		// activity index (which carries each entry).
		comments := map[string]*CommentFact{}
		var commentOrder []string
		err = v.Scan(kProjActivity(pr.ID), storage.ScanOptions{Reverse: true}, func(k storage.Key, r storage.Record) error {
			a, err := s.entryFactsOf(tenant, lastPart(k), r)
			if err != nil {
				return err
			}
			at := time.UnixMilli(a.At)
			if at.Before(from) {
				return storage.ErrStop
			}
			if !at.Before(to) {
				return nil
			}
			t := tasks[a.TaskID]
			if t == nil {
				return nil
			}
			factBy := func() TaskFact {
				fact := factOf(t)
				fact.By, fact.At = name(a.Actor), at.UTC().Format(time.RFC3339)
				return fact
			}
			switch {
			case a.Kind == "task.created":
				f.Totals.Created++
				f.Created = appendCapped(f.Created, factBy)
			case a.Kind == "task.updated" && a.Field == "status":
				switch {
				case a.After.Category == CategoryDone && a.Before.Category != CategoryDone:
					f.Totals.Completed++
					person(a.Actor).Completed++
					f.Completed = appendCapped(f.Completed, factBy)
				case a.Before.Category == CategoryTodo && a.After.Category == CategoryInProgress:
					f.Totals.Started++
					person(a.Actor).Started++
					f.Started = appendCapped(f.Started, factBy)
				default:
					f.Moved = appendCapped(f.Moved, func() TaskFact {
						fact := factBy()
						fact.Status = a.Before.Name + " → " + a.After.Name
						return fact
					})
				}
			case a.Kind == "comment.created":
				f.Totals.Comments++
				person(a.Actor).Comments++
				c, ok := comments[a.TaskID]
				if !ok {
					c = &CommentFact{TaskID: t.rec.ID, Key: factOf(t).Key, Title: t.rec.Title}
					comments[a.TaskID] = c
					commentOrder = append(commentOrder, a.TaskID)
				}
				c.Count++
				if n := name(a.Actor); !slices.Contains(c.By, n) {
					c.By = append(c.By, n)
				}
				if len(c.Excerpts) < 2 && a.Text != "" {
					c.Excerpts = append(c.Excerpts, a.Text)
				}
				lower := strings.ToLower(a.Text)
				if slices.ContainsFunc(decisionWords, func(w string) bool { return strings.Contains(lower, w) }) {
					f.Decisions = appendCappedComment(f.Decisions, CommentFact{TaskID: t.rec.ID, Key: c.Key, Title: t.rec.Title, Count: 1, By: []string{name(a.Actor)}, Excerpts: []string{a.Text}})
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, id := range commentOrder {
			f.Comments = appendCappedComment(f.Comments, *comments[id])
		}
	}
	ids := make([]string, 0, len(people))
	for id := range people {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := people[ids[i]], people[ids[j]]
		if a.Completed != b.Completed {
			return a.Completed > b.Completed
		}
		return a.Name < b.Name
	})
	for _, id := range ids {
		if p := people[id]; p.Completed+p.Started+p.Comments+p.Open > 0 && id != "system" {
			f.People = append(f.People, *p)
		}
	}
	f.numberRefs()
	return f, nil
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
