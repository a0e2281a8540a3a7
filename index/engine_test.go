package index_test

// Tests that drive the real engine (records exactly as it writes them)
// through a real store and LocalLog, with the index observing the store as
// cmd wires it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/internal/figures"
)

var ctx = context.Background()

type workspace struct {
	owner    engine.Principal
	guest    engine.Principal
	projects []*engine.Project // projects[0] is the guest's, projects[1] is private
	tasks    []string
	comments []string
}

type world struct {
	env *enginetest.Env
	svc *engine.Service
	ix  *index.Index
	dir string
	ws  map[string]*workspace // by tenant
	ops int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := enginetest.New(t, engine.Config{Mode: engine.ModeCloud, BaseURL: "http://tf.test"})
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	w := &world{env: env, svc: env.Service, dir: t.TempDir(), ws: map[string]*workspace{}}
	w.openIndex(t)
	return w
}

// openIndex opens the index and registers it as cmd does; the previous
// one, if any, was closed and ignores what it is still handed.
func (w *world) openIndex(t *testing.T) {
	t.Helper()
	ix, err := index.Open(w.dir, w.env.Store, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.env.Store.Observe(ix.Observe)
	w.ix = ix
	t.Cleanup(func() { ix.Close() })
}

// must stops the test on an error (a panic fails the test with its
// stack).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (w *world) addWorkspace(t *testing.T, slug string) *workspace {
	t.Helper()
	c := must(w.svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: slug, WorkspaceSlug: slug, Name: "Owner " + slug,
		Email: "owner@" + slug + ".test", Password: "correct horse battery"}))
	owner := must(w.svc.Authenticate(ctx, c.Tokens.AccessToken))
	inv := must(w.svc.Invite(ctx, owner, "guest@"+slug+".test", engine.RoleGuest))
	gc := must(w.svc.AcceptInvitation(ctx, engine.AcceptInput{Token: inv.Token, Name: "Guest " + slug, Password: "password-guest"}))
	guest := must(w.svc.Authenticate(ctx, gc.Tokens.AccessToken))
	ws := &workspace{owner: owner, guest: guest}
	for i, vis := range []string{"workspace", "private", "workspace"} {
		p := must(w.svc.CreateProject(ctx, owner, engine.CreateProjectInput{Name: fmt.Sprintf("%s project %d", slug, i),
			Key: fmt.Sprintf("%s%d", strings.ToUpper(slug[:2]), i), Description: "about " + slug, Visibility: vis}))
		ws.projects = append(ws.projects, p)
	}
	must(w.svc.SetProjectMember(ctx, owner, ws.projects[0].ID, guest.UserID, engine.ProjectContributor))
	w.ws[owner.Tenant] = ws
	return ws
}

var vocab = strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango")

func words(r *rand.Rand, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = vocab[r.IntN(len(vocab))]
	}
	return strings.Join(out, " ")
}

// churn applies n random engine operations to a workspace: creates,
// edits, deletes and restores of tasks and comments, and logins (commands
// the index must skip).
func (w *world) churn(t *testing.T, r *rand.Rand, tenant string, n int) {
	t.Helper()
	ws := w.ws[tenant]
	statuses := []string{"To do", "In progress", "Done"}
	for range n {
		w.ops++
		switch k := r.IntN(20); {
		case k < 7 || len(ws.tasks) < 3:
			p := ws.projects[r.IntN(len(ws.projects))]
			in := engine.CreateTaskInput{Title: words(r, 3) + " " + tenant[:4], Description: words(r, 12), Status: statuses[r.IntN(3)],
				Tags: []string{vocab[r.IntN(5)]}}
			if r.IntN(2) == 0 {
				in.Assignees = []string{ws.owner.UserID}
			}
			if r.IntN(2) == 0 {
				in.Due = time.Date(2026, 11, 1+r.IntN(60), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			}
			task := must(w.svc.CreateTask(ctx, ws.owner, p.ID, in))
			ws.tasks = append(ws.tasks, task.ID)
		case k < 11:
			title, st := words(r, 4), statuses[r.IntN(3)]
			tags := []string{vocab[r.IntN(5)], vocab[5+r.IntN(5)]}
			_, err := w.svc.UpdateTask(ctx, ws.owner, ws.tasks[r.IntN(len(ws.tasks))], engine.TaskPatch{Title: &title, Status: &st, Tags: &tags})
			ignoreNotFound(t, err)
		case k < 15:
			c, err := w.svc.CreateComment(ctx, ws.owner, ws.tasks[r.IntN(len(ws.tasks))], words(r, 8), "")
			if ignoreNotFound(t, err) {
				ws.comments = append(ws.comments, c.ID)
			}
		case k < 16:
			ignoreNotFound(t, w.svc.DeleteTask(ctx, ws.owner, ws.tasks[r.IntN(len(ws.tasks))], 0))
		case k < 17:
			_, err := w.svc.RestoreTask(ctx, ws.owner, ws.tasks[r.IntN(len(ws.tasks))])
			ignoreNotFound(t, err)
		case k < 18 && len(ws.comments) > 0:
			ignoreNotFound(t, w.svc.DeleteComment(ctx, ws.owner, ws.comments[r.IntN(len(ws.comments))], 0))
		default:
			must(w.svc.Login(ctx, engine.LoginInput{Workspace: slugOf(w, tenant), Email: "guest@" + slugOf(w, tenant) + ".test", Password: "password-guest"}))
		}
	}
}

func slugOf(w *world, tenant string) string {
	for _, s := range []string{"acme", "globex", "initech"} {
		if ws, ok := w.ws[tenant]; ok && strings.HasPrefix(ws.projects[0].Name, s) {
			return s
		}
	}
	return ""
}

// ignoreNotFound accepts the answers a random operation may rightly get
// (the task is in the trash, nothing to restore).
func ignoreNotFound(t *testing.T, err error) bool {
	t.Helper()
	var e *engine.Error
	if err == nil {
		return true
	}
	if errors.As(err, &e) && (e.Code == "not_found" || strings.HasSuffix(e.Code, "_deleted") || e.Code == "invalid_task") {
		return false
	}
	t.Fatal(err)
	return false
}

func (w *world) allowed(t *testing.T, p engine.Principal) []string {
	t.Helper()
	page := must(w.svc.ListProjects(ctx, p, engine.PageRequest{Limit: 100}))
	var ids []string
	for _, pr := range page.Items {
		ids = append(ids, pr.ID)
	}
	return ids
}

// waitCaughtUp polls Verify until the tenant's index equals its store or
// the deadline passes; it returns the last difference.
func waitCaughtUp(t *testing.T, ix *index.Index, tenant string, deadline time.Time) index.Report {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		rep, err := ix.Verify(ctx, tenant)
		if err == nil && rep.Equal() {
			return rep
		}
		if err != nil && !errors.Is(err, index.ErrRebuilding) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			return rep
		}
		<-tick.C
	}
}

// searchAll pages through every hit of a query.
func searchAll(t *testing.T, ix *index.Index, tenant string, q index.Query) []string {
	t.Helper()
	var out []string
	q.Limit = 50
	for {
		res, err := ix.Search(ctx, tenant, q)
		if err != nil {
			t.Fatalf("search %q: %v", q.Text, err)
		}
		for _, h := range res.Hits {
			out = append(out, h.Kind+":"+h.ID)
		}
		if res.NextCursor == "" {
			return out
		}
		q.Cursor = res.NextCursor
	}
}

var fixedQueries = func() []string {
	q := []string{"", "alpha", "alp", "bravo charlie", "\"alpha bravo\"", "-alpha", "delta -echo", "status:done", "status:todo",
		`status:"In progress"`, "status:in_progress,done", "tag:alpha", "tag:bravo,charlie", "-tag:alpha", "assignee:me",
		"due:<2026-12-01", "due:>2026-12-15", "due:2026-11-20", "due:>=2026-12-31", "kind:task", "kind:comment", "kind:project",
		"kind:comment golf", "project", "acme", "glob", "echo status:done", "foxtrot tag:delta", "hotel kind:task assignee:me",
		"india juliet kilo", "-kind:task", "lima due:<2026-12-10", "mike -status:done", "nov", "\"oscar papa\" tag:alpha",
		"quebec romeo sierra tango", "about", "AC0-1", "AC1-2", "GL0-1", "tango kind:comment", "sierra status:todo tag:echo",
		"romeo,quebec", "papa*", "oscar -kind:comment", "november due:<=2026-11-30", "mike lima", "kilo tag:alpha -status:done",
		"juliet kind:task,comment", "india project:AC0"}
	return q
}()

// TestIndexCatchUpAndRebuild is RELIABILITY D2: after random engine
// traffic in two workspaces, each tenant's index equals its store within
// the deadline; after the index is wiped, a rebuild from the store gives
// the same result sets for 50 fixed queries.
func TestIndexCatchUpAndRebuild(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 2))
	w := newWorld(t)
	var tenants []string
	for _, slug := range []string{"acme", "globex"} {
		ws := w.addWorkspace(t, slug)
		tenants = append(tenants, ws.owner.Tenant)
	}
	for range 4 {
		for _, tn := range tenants {
			w.churn(t, r, tn, 100)
		}
	}
	// Deleting a project keeps its tasks; the caller's allowed set (the
	// projects it can see) leaves them out of its searches.
	must(0, w.svc.DeleteProject(ctx, w.ws[tenants[1]].owner, w.ws[tenants[1]].projects[2].ID, 0))

	deadline := time.Now().Add(30 * time.Second)
	worst, docs := 0, 0
	for _, tn := range tenants {
		rep := waitCaughtUp(t, w.ix, tn, deadline)
		t.Logf("tenant %s: %v", tn, rep)
		worst = max(worst, rep.Diff())
		docs += rep.Index
	}

	before := map[string][]string{}
	hits := 0
	for _, tn := range tenants {
		ws := w.ws[tn]
		for _, q := range fixedQueries {
			got := searchAll(t, w.ix, tn, index.Query{Text: q, Allowed: w.allowed(t, ws.owner), Me: ws.owner.UserID, Now: time.Unix(1e9, 0)})
			before[tn+"\x00"+q] = got
			hits += len(got)
		}
	}

	// Wipe: the whole index directory goes, a new index opens on the same
	// store and rebuilds every tenant.
	if err := w.ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(w.dir); err != nil {
		t.Fatal(err)
	}
	w.openIndex(t)
	for _, tn := range tenants {
		if err := w.ix.Rebuild(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	mismatches, afterDiff := 0, 0
	for _, tn := range tenants {
		rep, err := w.ix.Verify(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		afterDiff = max(afterDiff, rep.Diff())
		ws := w.ws[tn]
		for _, q := range fixedQueries {
			got := searchAll(t, w.ix, tn, index.Query{Text: q, Allowed: w.allowed(t, ws.owner), Me: ws.owner.UserID, Now: time.Unix(1e9, 0)})
			want := before[tn+"\x00"+q]
			if !sameSet(got, want) {
				mismatches++
				t.Errorf("tenant %s query %q: %d hits before the wipe, %d after", tn, q, len(want), len(got))
			}
		}
	}
	figures.Report(t, "D2", seed, []figures.Figure{
		figures.Eq("index_minus_store_per_tenant", float64(worst), 0),
		figures.Eq("index_minus_store_after_rebuild", float64(afterDiff), 0),
		figures.Eq("rebuild_query_mismatches", float64(mismatches), 0),
		figures.Guard("fixed_queries", float64(len(fixedQueries)), 50),
		figures.Guard("engine_ops", float64(w.ops), 800),
		figures.Guard("documents_indexed", float64(docs), 300),
		figures.Guard("query_hits", float64(hits), 500),
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestPermissionCanaries: a Guest's searches never return a hit from a
// project they cannot see, and no search returns another workspace's
// records, whatever the query and whatever project IDs the caller names
// (RELIABILITY T4, search part).
func TestPermissionCanaries(t *testing.T) {
	seed := figures.Seed(t)
	r := rand.New(rand.NewPCG(uint64(seed), 3))
	w := newWorld(t)
	acme := w.addWorkspace(t, "acme")
	globex := w.addWorkspace(t, "globex")
	// Canaries: a word only the private project (acme) and only the other
	// workspace (globex) hold.
	hidden := must(w.svc.CreateTask(ctx, acme.owner, acme.projects[1].ID, engine.CreateTaskInput{Title: "zebracanary private plan", Tags: []string{"alpha"}}))
	must(w.svc.CreateComment(ctx, acme.owner, hidden.ID, "zebracanary in a comment", ""))
	foreignTask := must(w.svc.CreateTask(ctx, globex.owner, globex.projects[0].ID, engine.CreateTaskInput{Title: "yakcanary globex secret", Tags: []string{"alpha"}}))
	visible := must(w.svc.CreateTask(ctx, acme.owner, acme.projects[0].ID, engine.CreateTaskInput{Title: "shared alpha work", Tags: []string{"alpha"}}))
	for _, tn := range []string{acme.owner.Tenant, globex.owner.Tenant} {
		w.churn(t, r, tn, 250)
	}
	for _, tn := range []string{acme.owner.Tenant, globex.owner.Tenant} {
		if rep := waitCaughtUp(t, w.ix, tn, time.Now().Add(30*time.Second)); !rep.Equal() {
			t.Fatalf("index of %s did not catch up: %v", tn, rep)
		}
	}
	guestAllowed := w.allowed(t, acme.guest)
	if len(guestAllowed) != 1 || guestAllowed[0] != acme.projects[0].ID {
		t.Fatalf("guest sees %v", guestAllowed)
	}
	ownerAllowed := w.allowed(t, acme.owner)
	globexAllowed := w.allowed(t, globex.owner)
	acmeProjects, globexProjects := map[string]bool{}, map[string]bool{}
	for _, p := range acme.projects {
		acmeProjects[p.ID] = true
	}
	for _, p := range globex.projects {
		globexProjects[p.ID] = true
	}

	foreign, outside, checked, searches := 0, 0, 0, 0
	check := func(tenant string, q index.Query) []index.Hit {
		searches++
		res, err := w.ix.Search(ctx, tenant, q)
		if err != nil {
			if errors.Is(err, index.ErrBadQuery) {
				return nil
			}
			t.Fatal(err)
		}
		own := acmeProjects
		if tenant == globex.owner.Tenant {
			own = globexProjects
		}
		for _, h := range res.Hits {
			checked++
			if !own[h.ProjectID] {
				foreign++
				t.Errorf("foreign hit: %q in %s returned %s %s of project %s", q.Text, tenant, h.Kind, h.ID, h.ProjectID)
			} else if !slices.Contains(q.Allowed, h.ProjectID) {
				outside++
				t.Errorf("hit outside the allowed projects: %q returned %s %s of project %s", q.Text, h.Kind, h.ID, h.ProjectID)
			}
		}
		return res.Hits
	}
	// The canaries: the guest never finds the private task or its comment;
	// acme never finds globex's task, even when it names globex's projects.
	if hs := check(acme.owner.Tenant, index.Query{Text: "zebracanary", Allowed: guestAllowed}); len(hs) != 0 {
		t.Errorf("guest found the private canary: %v", hs)
	}
	if hs := check(acme.owner.Tenant, index.Query{Text: "zebracanary", Allowed: ownerAllowed}); len(hs) != 2 {
		t.Errorf("owner should find the private task and its comment, got %v", hs)
	}
	if hs := check(globex.owner.Tenant, index.Query{Text: "yakcanary", Allowed: globexAllowed}); len(hs) != 1 || hs[0].ID != foreignTask.ID {
		t.Errorf("globex should find its own canary: %v", hs)
	}
	if hs := check(acme.owner.Tenant, index.Query{Text: "yakcanary", Allowed: append(slices.Clone(ownerAllowed), globexAllowed...)}); len(hs) != 0 {
		t.Errorf("acme found globex's canary: %v", hs)
	}
	if hs := check(globex.owner.Tenant, index.Query{Text: "zebracanary", Allowed: append(slices.Clone(globexAllowed), ownerAllowed...)}); len(hs) != 0 {
		t.Errorf("globex found acme's canary: %v", hs)
	}
	if hs := check(acme.owner.Tenant, index.Query{Text: "shared alpha", Allowed: guestAllowed}); len(hs) == 0 || hs[0].ID != visible.ID {
		t.Errorf("guest should find the task of their project: %v", hs)
	}
	// Random queries from the guest and the owner.
	texts := append(slices.Clone(fixedQueries), "zebracanary", "yakcanary", "tag:alpha", "project:AC1", "project:GL0", "-project:AC0")
	for range 200 {
		text := texts[r.IntN(len(texts))]
		if r.IntN(2) == 0 {
			text += " " + words(r, 1)
		}
		check(acme.owner.Tenant, index.Query{Text: text, Allowed: guestAllowed, Me: acme.guest.UserID})
		check(acme.owner.Tenant, index.Query{Text: text, Allowed: ownerAllowed, Me: acme.owner.UserID})
		check(globex.owner.Tenant, index.Query{Text: text, Allowed: globexAllowed, Me: globex.owner.UserID})
	}
	// An empty allowed set sees nothing at all.
	if hs := check(acme.owner.Tenant, index.Query{Text: "", Allowed: nil}); len(hs) != 0 {
		t.Errorf("no allowed projects, yet hits: %v", hs)
	}
	// The index's share of RELIABILITY T4 (search canaries), with the
	// permission filter of a Guest.
	figures.Report(t, "T4-index", seed, []figures.Figure{
		figures.Eq("search_hits_foreign", float64(foreign), 0),
		figures.Eq("hits_outside_allowed_projects", float64(outside), 0),
		figures.Guard("searches", float64(searches), 600),
		figures.Guard("hits_checked", float64(checked), 1000),
	})
}
