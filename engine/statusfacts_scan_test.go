package engine

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// entryFacts is what the facts need of one activity entry.
type entryFacts struct {
	Kind, TaskID, Field, Actor string
	At                         int64
	Before, After              struct{ Category, Name string } // status changes
	Text                       string                          // comments
}

// gatherFactsByScan is the reference the roll-ups are checked against:
// the scan that gathered the facts before them. It reads the facts of the given projects for [from, to), as of
// now (overdue, due soon and stalled are judged at now).
func (s *Service) gatherFactsByScan(tenant string, v storage.View, projects []*projectRecord, from, to, now time.Time) (*Facts, error) {
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
			a, err := entryFactsOf(r)
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
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.UserID < b.UserID
	})
	for _, id := range ids {
		if p := people[id]; p.Completed+p.Started+p.Comments+p.Open > 0 && id != "system" {
			f.People = append(f.People, *p)
		}
	}
	f.numberRefs()
	return f, nil
}

// entryFactsOf decodes what the status facts need of an activity entry.
func entryFactsOf(r storage.Record) (*entryFacts, error) {
	var a activityRecord
	if err := jsonDecode(r.Value, &a); err != nil {
		return nil, err
	}
	e := &entryFacts{Kind: a.Kind, TaskID: a.TaskID, Field: a.Field, Actor: a.Actor, At: a.At}
	switch {
	case a.Kind == "task.updated" && a.Field == "status":
		_ = jsonDecode(a.Before, &e.Before)
		_ = jsonDecode(a.After, &e.After)
	case a.Kind == "comment.created":
		_ = jsonDecode(a.After, &e.Text)
	}
	return e, nil
}
