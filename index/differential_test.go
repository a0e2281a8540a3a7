package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// RELIABILITY F3: the index's answers against a brute-force scan of the
// same tenant's records in the store, for 1,000 random combinations of
// filters and words. The reference below shares no code with the index:
// its own tokenizer, its own filter semantics written from the query
// syntax's documentation.

var diffVocab = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "café", "Alpha", "Bravo"}

var diffTags = []string{"backend", "frontend", "ops", "design", "bug", "urgent"}

// refTokens: lower-case words of letters and digits, é folded.
func refTokens(s string) []string {
	s = strings.NewReplacer("é", "e", "É", "e").Replace(strings.ToLower(s))
	return strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	})
}

type refDoc struct {
	kind, id, project, status string
	tokens                    []string
	assignees, tags           []string
	due                       string
}

type refWorld struct {
	projects map[string]*engProject // every project record, deleted ones too
	docs     []*refDoc
}

// loadRef scans the tenant's records in the store.
func loadRef(t *testing.T, st *storage.Store, tenant string) *refWorld {
	t.Helper()
	v := st.Tenant(tenant)
	w := &refWorld{projects: map[string]*engProject{}}
	live := map[string]bool{}
	scan := func(prefix string, fn func([]byte)) {
		if err := v.Scan(storage.K(prefix), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			fn(r.Value)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	scan("proj", func(b []byte) {
		p := mustDecode[engProject](t, b)
		w.projects[p.ID] = p
		if p.DeletedAt == 0 {
			w.docs = append(w.docs, &refDoc{kind: "project", id: p.ID, project: p.ID, tokens: refTokens(p.Name + " " + p.Key + " " + p.Description)})
		}
	})
	scan("task", func(b []byte) {
		x := mustDecode[engTask](t, b)
		if x.DeletedAt != 0 {
			return
		}
		live[x.ID] = true
		var tags []string
		for _, tg := range x.Tags {
			tags = append(tags, strings.ToLower(strings.TrimSpace(tg)))
		}
		w.docs = append(w.docs, &refDoc{kind: "task", id: x.ID, project: x.ProjectID, status: x.StatusID,
			tokens: refTokens(x.Title + " " + x.Description), assignees: x.Assignees, tags: tags, due: refDue(x.Due)})
	})
	scan("cmt", func(b []byte) {
		c := mustDecode[engComment](t, b)
		if c.DeletedAt == 0 && live[c.TaskID] {
			w.docs = append(w.docs, &refDoc{kind: "comment", id: c.ID, project: c.ProjectID, tokens: refTokens(c.Body)})
		}
	})
	return w
}

func mustDecode[T any](t *testing.T, b []byte) *T {
	v, err := decode[T](b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// refDue: dates stay, date-times become UTC RFC 3339 (as the engine
// compares them).
func refDue(s string) string {
	if s == "" {
		return ""
	}
	if tm, err := time.Parse(time.DateOnly, s); err == nil && len(s) == 10 {
		return tm.Format(time.DateOnly)
	}
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return ""
	}
	return tm.UTC().Format(time.RFC3339)
}

// refQuery is one random query, as clauses the reference evaluates and as
// the text and fields the index gets.
type refQuery struct {
	allowed map[string]bool
	preds   []func(d *refDoc) bool
	text    []string
	q       Query
	// The URL-style fields hold alternatives: one predicate per field,
	// any of its values.
	anyOf map[string][]func(d *refDoc) bool
}

func (rq *refQuery) or(field string, f func(*refDoc) bool) {
	if rq.anyOf == nil {
		rq.anyOf = map[string][]func(*refDoc) bool{}
	}
	rq.anyOf[field] = append(rq.anyOf[field], f)
}

func (w *refWorld) expect(rq *refQuery) []string {
	var out []string
	for _, d := range w.docs {
		ok := rq.allowed[d.project]
		for _, p := range rq.preds {
			ok = ok && p(d)
		}
		for _, alts := range rq.anyOf {
			ok = ok && slices.ContainsFunc(alts, func(f func(*refDoc) bool) bool { return f(d) })
		}
		if ok {
			out = append(out, d.kind+":"+d.id)
		}
	}
	return out
}

func not(neg bool, f func(*refDoc) bool) func(*refDoc) bool {
	return func(d *refDoc) bool { return f(d) != neg }
}

func quote(v string) string {
	if strings.ContainsAny(v, " ,") {
		return `"` + v + `"`
	}
	return v
}

// randomQuery builds a query from the world's projects and vocabulary.
func (w *refWorld) randomQuery(r *rand.Rand, users []string) *refQuery {
	rq := &refQuery{allowed: map[string]bool{}}
	var ids []string
	for id := range w.projects {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if r.IntN(3) > 0 {
			rq.allowed[id] = true
			rq.q.Allowed = append(rq.q.Allowed, id)
		}
	}
	rq.q.Allowed = append(rq.q.Allowed, "no-such-project")
	neg := func() bool { return r.IntN(5) == 0 }
	structured := func() bool { return r.IntN(4) == 0 }
	for n := r.IntN(4); n > 0; n-- {
		switch r.IntN(7) {
		case 0: // project, by key or ID
			p := w.projects[ids[r.IntN(len(ids))]]
			val := p.ID
			if r.IntN(2) == 0 {
				val = strings.ToLower(p.Key)
			}
			match := func(d *refDoc) bool {
				if val == p.ID {
					return d.project == p.ID
				}
				return p.DeletedAt == 0 && d.project == p.ID
			}
			ng := neg()
			if !ng && structured() {
				rq.q.Projects = append(rq.q.Projects, val)
				rq.or("project", match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			rq.text = append(rq.text, prefixIf(ng)+"project:"+val)
		case 1: // status: category, name or ID, one or two values
			cands := []string{"todo", "in_progress", "done", "Done", "In progress", "Shipped", "doing", "closed", "Almost done", "in-progress"}
			vals := []string{cands[r.IntN(len(cands))]}
			if r.IntN(3) == 0 {
				vals = append(vals, cands[r.IntN(len(cands))])
			}
			match := func(d *refDoc) bool {
				if d.kind != "task" {
					return false
				}
				p := w.projects[d.project]
				if p == nil {
					return false
				}
				for _, st := range p.Statuses {
					if st.ID != d.status {
						continue
					}
					for _, v := range vals {
						// A category names its statuses; other values a
						// status by name or ID.
						cat := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(v))
						if cat == "todo" || cat == "inprogress" || cat == "done" {
							if cat == strings.ReplaceAll(st.Category, "_", "") {
								return true
							}
						} else if v == st.ID || strings.EqualFold(v, st.Name) {
							return true
						}
					}
				}
				return false
			}
			ng := neg()
			if !ng && structured() {
				rq.q.Statuses = append(rq.q.Statuses, vals...)
				rq.or("status", match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			if len(vals) == 2 && !strings.Contains(vals[0]+vals[1], " ") {
				rq.text = append(rq.text, prefixIf(ng)+"status:"+vals[0]+","+vals[1])
			} else {
				rq.text = append(rq.text, prefixIf(ng)+"status:"+quote(vals[0]))
				if len(vals) == 2 {
					rq.preds[len(rq.preds)-1] = not(ng, func(d *refDoc) bool {
						v := vals
						vals = v[:1]
						ok := match(d)
						vals = v
						return ok
					})
				}
			}
		case 2: // assignee
			u := users[r.IntN(len(users))]
			match := func(d *refDoc) bool { return slices.Contains(d.assignees, u) }
			ng := neg()
			if !ng && structured() {
				rq.q.Assignees = append(rq.q.Assignees, u)
				rq.or("assignee", match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			rq.text = append(rq.text, prefixIf(ng)+"assignee:"+u)
		case 3: // tag, any case
			tg := diffTags[r.IntN(len(diffTags))]
			match := func(d *refDoc) bool { return slices.Contains(d.tags, tg) }
			if r.IntN(3) == 0 {
				tg = strings.ToUpper(tg)
				lower := strings.ToLower(tg)
				match = func(d *refDoc) bool { return slices.Contains(d.tags, lower) }
			}
			ng := neg()
			if !ng && structured() {
				rq.q.Tags = append(rq.q.Tags, tg)
				rq.or("tag", match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			rq.text = append(rq.text, prefixIf(ng)+"tag:"+tg)
		case 4: // kind
			kinds := []string{"task", "project", "comment"}
			k := kinds[r.IntN(3)]
			match := func(d *refDoc) bool { return d.kind == k }
			ng := neg()
			if !ng && structured() {
				rq.q.Kinds = append(rq.q.Kinds, k)
				rq.or("kind", match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			rq.text = append(rq.text, prefixIf(ng)+"kind:"+k)
		case 5: // due
			day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(90))
			v := day.Format(time.DateOnly)
			if r.IntN(3) == 0 {
				v = day.Add(time.Duration(r.IntN(24)) * time.Hour).Format(time.RFC3339)
			}
			ops := []string{"<", "<=", ">", ">=", "="}
			op := ops[r.IntN(len(ops))]
			key := refDue(v)
			date := len(key) == 10
			next := day.AddDate(0, 0, 1).Format(time.DateOnly)
			match := func(d *refDoc) bool {
				if d.due == "" {
					return false
				}
				switch op {
				case "<":
					return d.due < key
				case ">":
					return d.due > key
				case "<=":
					if date {
						return d.due < next
					}
					return d.due <= key
				case ">=":
					return d.due >= key
				}
				if date {
					return d.due >= key && d.due < next
				}
				return d.due == key
			}
			ng := neg()
			// A second due_before (or due_after) would overwrite the first
			// field while both predicates stay: it goes into the text.
			free := (op == "<" && rq.q.DueBefore == "") || (op == ">" && rq.q.DueAfter == "")
			if !ng && free && structured() {
				if op == "<" {
					rq.q.DueBefore = v
				} else {
					rq.q.DueAfter = v
				}
				rq.preds = append(rq.preds, match)
				continue
			}
			rq.preds = append(rq.preds, not(ng, match))
			eq := op
			if op == "=" && r.IntN(2) == 0 {
				eq = ""
			}
			rq.text = append(rq.text, prefixIf(ng)+"due:"+eq+v)
		case 6: // words: a word, a phrase of two, or a negated word
			a, b := diffVocab[r.IntN(len(diffVocab))], diffVocab[r.IntN(len(diffVocab))]
			ta, tb := refTokens(a)[0], refTokens(b)[0]
			switch r.IntN(3) {
			case 0:
				rq.preds = append(rq.preds, func(d *refDoc) bool { return slices.Contains(d.tokens, ta) })
				rq.text = append(rq.text, a)
			case 1:
				rq.preds = append(rq.preds, func(d *refDoc) bool {
					for i := 0; i+1 < len(d.tokens); i++ {
						if d.tokens[i] == ta && d.tokens[i+1] == tb {
							return true
						}
					}
					return false
				})
				rq.text = append(rq.text, `"`+a+" "+b+`"`)
			default:
				rq.preds = append(rq.preds, func(d *refDoc) bool { return !slices.Contains(d.tokens, ta) })
				rq.text = append(rq.text, "-"+a)
			}
		}
	}
	// Sometimes the word being typed: a prefix, last in the text.
	if r.IntN(3) == 0 {
		w := refTokens(diffVocab[r.IntN(len(diffVocab))])[0]
		p := w[:2+r.IntN(len(w)-2)]
		rq.preds = append(rq.preds, func(d *refDoc) bool {
			return slices.ContainsFunc(d.tokens, func(tk string) bool { return strings.HasPrefix(tk, p) })
		})
		rq.text = append(rq.text, p)
	}
	rq.q.Text = strings.Join(rq.text, " ")
	return rq
}

func prefixIf(neg bool) string {
	if neg {
		return "-"
	}
	return ""
}

// buildDiffWorld writes projects (three workflows, one reusing the ID
// "done" for an in-progress status), tasks, comments, and then edits,
// deletes, restores and purges, as the engine would.
func buildDiffWorld(f *fixture, r *rand.Rand, tenant string) []string {
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	workflows := [][]engStatus{defaultStatuses(),
		{{"backlog", "Backlog", "todo"}, {"doing", "Doing", "in_progress"}, {"done", "Shipped", "done"}},
		{{"new", "New", "todo"}, {"done", "Almost done", "in_progress"}, {"closed", "Closed", "done"}}}
	text := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = diffVocab[r.IntN(len(diffVocab))]
		}
		return strings.Join(w, " ")
	}
	var projects []*engProject
	for i := range 8 {
		p := &engProject{ID: f.id("p"), Key: fmt.Sprintf("PR%d", i), Name: text(2), Description: text(5),
			Statuses: workflows[i%3], UpdatedAt: int64(1000 + i)}
		f.putProject(tenant, p)
		projects = append(projects, p)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	randomTask := func(t *engTask) {
		p := projects[r.IntN(len(projects))]
		if t.ProjectID != "" {
			for _, q := range projects {
				if q.ID == t.ProjectID {
					p = q
				}
			}
		}
		t.ProjectID = p.ID
		t.Title = text(2 + r.IntN(3))
		t.Description = text(r.IntN(12))
		t.StatusID = p.Statuses[r.IntN(len(p.Statuses))].ID
		t.Assignees = nil
		for _, u := range users {
			if r.IntN(4) == 0 {
				t.Assignees = append(t.Assignees, u)
			}
		}
		t.Tags = nil
		for _, tg := range diffTags {
			if r.IntN(4) == 0 {
				t.Tags = append(t.Tags, tg)
			}
		}
		switch r.IntN(3) {
		case 0:
			t.Due = ""
		case 1:
			t.Due = base.AddDate(0, 0, r.IntN(90)).Format(time.DateOnly)
		default:
			loc := time.FixedZone("x", (r.IntN(25)-12)*3600)
			t.Due = base.Add(time.Duration(r.IntN(90*24)) * time.Hour).In(loc).Format(time.RFC3339)
		}
		t.UpdatedAt = base.UnixMilli() - r.Int64N(400*24*3600*1000)
	}
	var tasks []*engTask
	for range 500 {
		t := &engTask{ID: f.id("t"), Priority: "none"}
		randomTask(t)
		f.putTask(tenant, t)
		tasks = append(tasks, t)
	}
	var comments []*engComment
	for range 250 {
		t := tasks[r.IntN(len(tasks))]
		c := &engComment{ID: f.id("c"), TaskID: t.ID, ProjectID: t.ProjectID, AuthorID: users[r.IntN(len(users))], Body: text(3 + r.IntN(8)), UpdatedAt: t.UpdatedAt + 1}
		f.putComment(tenant, c)
		comments = append(comments, c)
	}
	for range 150 {
		t := tasks[r.IntN(len(tasks))]
		if t.DeletedAt != 0 || t.ID == "" {
			continue
		}
		switch k := r.IntN(10); {
		case k < 6: // edit
			randomTask(t)
			f.putTask(tenant, t)
		case k < 8: // delete, with a second task in the same command (a cascade)
			u := tasks[r.IntN(len(tasks))]
			t.DeletedAt = 1
			if u != t && u.DeletedAt == 0 && u.ID != "" {
				u.DeletedAt = 1
				f.putTasks(tenant, []*engTask{t, u})
			} else {
				f.putTask(tenant, t)
			}
		default: // a comment is edited or deleted
			c := comments[r.IntN(len(comments))]
			if r.IntN(2) == 0 {
				c.Body = text(4)
			} else {
				c.DeletedAt = 1
			}
			f.putComment(tenant, c)
		}
		f.login(tenant)
	}
	// Restores bring comments back; purges remove records for good.
	n := 0
	for _, t := range tasks {
		if t.DeletedAt != 0 && t.ID != "" {
			if n%3 == 0 {
				t.DeletedAt = 0
				f.putTask(tenant, t)
			} else if n%3 == 1 {
				f.purge(tenant, storage.K("task", t.ID))
				t.ID = ""
			}
			n++
		}
	}
	// A deleted project leaves the index (its tasks stay, for callers
	// whose allowed set still names it).
	projects[7].DeletedAt = 5
	f.putProject(tenant, projects[7])
	return users
}

func TestDifferentialF3(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	f := newFixture(t, Options{})
	start := time.Now()
	users := buildDiffWorld(f, r, "t1")
	// A second tenant with the same shape: its records must never appear.
	buildDiffWorld(f, rand.New(rand.NewPCG(uint64(seed), 8)), "t2")
	t.Logf("wrote the worlds in %v", time.Since(start))
	f.settle()
	t.Logf("indexed in %v", time.Since(start))
	world := loadRef(t, f.st, "t1")
	start = time.Now()
	defer func() { t.Logf("searched in %v", time.Since(start)) }()

	mismatches, nonEmpty, pages, dups := 0, 0, 0, 0
	const combos = 1000
	for i := range combos {
		rq := world.randomQuery(r, users)
		want := world.expect(rq)
		var got []string
		q := rq.q
		q.Limit = 20 + r.IntN(81)
		for {
			res, err := f.ix.Search(context.Background(), "t1", q)
			if err != nil {
				t.Fatalf("combo %d %q: %v", i, q.Text, err)
			}
			pages++
			for _, h := range res.Hits {
				got = append(got, h.Kind+":"+h.ID)
			}
			if res.NextCursor == "" {
				break
			}
			q.Cursor = res.NextCursor
		}
		if len(want) > 0 {
			nonEmpty++
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			dups++
		}
		if !sameSorted(got, want) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("combo %d: %q (struct %v %v %v %v %v %q %q): index %d hits, store %d\nonly index: %v\nonly store: %v", i, rq.q.Text,
					rq.q.Projects, rq.q.Statuses, rq.q.Assignees, rq.q.Tags, rq.q.Kinds, rq.q.DueBefore, rq.q.DueAfter,
					len(got), len(want), minus(got, want), minus(want, got))
			}
		}
	}
	figures.Report(t, "F3", seed, []figures.Figure{
		figures.Eq("result_mismatches", float64(mismatches), 0),
		figures.Eq("duplicate_hits_across_pages", float64(dups), 0),
		figures.Guard("filter_combinations", combos, 1000),
		figures.Guard("non_empty_expectations", float64(nonEmpty), 300),
		figures.Guard("documents", float64(len(world.docs)), 600),
		figures.Guard("pages_read", float64(pages), combos),
	})
}

func sameSorted(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], "...")
	}
	return out
}
