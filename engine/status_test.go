package engine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/assist/ollama"
	"github.com/teamflow/teamflow/engine/assist/ollama/ollamatest"
	"github.com/teamflow/teamflow/engine/enginetest"
)

// statusWorld is a workspace with a project whose week has a bit of
// everything: work done, started, blocked, overdue, due soon, stalled, a
// decision.
type statusWorld struct {
	*world
	project *engine.Project
	bob     engine.Principal
	tasks   map[string]*engine.Task
}

func newStatusWorld(t *testing.T, sum engine.Summarizer) *statusWorld {
	t.Helper()
	env := enginetest.NewWithSummarizer(t, engine.Config{Mode: engine.ModeCloud, BaseURL: "http://tf.test"}, sum)
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := env.Service.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "Acme", WorkspaceSlug: "acme", Name: "Olive Owner", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := env.Service.Authenticate(ctx, c.Tokens.AccessToken)
	w := &statusWorld{world: &world{env: env, svc: env.Service, owner: owner, ws: c.Workspace}, tasks: map[string]*engine.Task{}}
	w.bob = w.join(t, "Bob", engine.RoleMember)
	w.project, err = w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Website", Key: "WEB"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, in engine.CreateTaskInput) {
		in.Title = name
		task, err := w.svc.CreateTask(ctx, w.owner, w.project.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		w.tasks[name] = task
	}
	now := env.Clock.Now()
	mk("Stalled work", engine.CreateTaskInput{Status: "In progress", Assignees: []string{w.bob.UserID}})
	// Six days pass: the in-progress task above stalls.
	env.Clock.Advance(6 * 24 * time.Hour)
	mk("Write copy", engine.CreateTaskInput{Assignees: []string{w.bob.UserID}})
	mk("Pick fonts", engine.CreateTaskInput{})
	mk("Hosting contract", engine.CreateTaskInput{Tags: []string{"blocked"}, Assignees: []string{w.owner.UserID}})
	mk("Legal review", engine.CreateTaskInput{Due: now.Format(time.DateOnly)})
	mk("Launch email", engine.CreateTaskInput{Due: env.Clock.Now().Add(3 * 24 * time.Hour).Format(time.DateOnly), Assignees: []string{w.bob.UserID}})
	if _, err := w.svc.UpdateTask(ctx, w.bob, w.tasks["Write copy"].ID, engine.TaskPatch{Status: ptr("In progress")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, w.bob, w.tasks["Write copy"].ID, engine.TaskPatch{Status: ptr("Done")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, w.owner, w.tasks["Pick fonts"].ID, engine.TaskPatch{Status: ptr("In progress")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.CreateComment(ctx, w.bob, w.tasks["Pick fonts"].ID, "We decided on Inter for body text.", ""); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(time.Hour)
	return w
}

func (w *statusWorld) facts(t *testing.T, u *engine.StatusUpdate) engine.Facts {
	t.Helper()
	var f engine.Facts
	if err := json.Unmarshal(u.Facts, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func keys(ts []engine.TaskFact) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Title)
	}
	return out
}

func TestStatusFactsAndTheBuiltinWriter(t *testing.T) {
	w := newStatusWorld(t, nil)
	u, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID})
	if err != nil {
		t.Fatal(err)
	}
	f := w.facts(t, u)
	check := func(name string, got []string, want string) {
		t.Helper()
		if fmt.Sprint(got) != want {
			t.Errorf("%s: %v, want %s", name, got, want)
		}
	}
	check("completed", keys(f.Completed), "[Write copy]")
	check("started", keys(f.Started), "[Pick fonts Write copy]")
	check("blocked", keys(f.Blocked), "[Hosting contract]")
	check("overdue", keys(f.Overdue), "[Legal review]")
	check("due soon", keys(f.DueSoon), "[Launch email]")
	check("stalled", keys(f.Stalled), "[Stalled work]")
	if len(f.Decisions) != 1 || !strings.Contains(f.Decisions[0].Excerpts[0], "Inter") {
		t.Errorf("decisions %+v", f.Decisions)
	}
	if f.Completed[0].Ref != "C1" || f.Completed[0].By != "Bob" || f.Totals.Completed != 1 || f.Totals.Open != 5 {
		t.Errorf("completed fact %+v totals %+v", f.Completed[0], f.Totals)
	}
	var bob engine.PersonFact
	for _, p := range f.People {
		if p.Name == "Bob" {
			bob = p
		}
	}
	if bob.Completed != 1 || bob.Started != 1 || bob.Comments != 1 || bob.Open != 2 {
		t.Errorf("Bob's share %+v", bob)
	}
	if u.Writer != engine.WriterBuiltin || !strings.Contains(u.Text, "WEB-2 Write copy — by Bob [C1]") || !strings.Contains(u.Text, "is blocked") {
		t.Errorf("builtin text:\n%s", u.Text)
	}
	// Deterministic: the same facts give the same words.
	u2, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID})
	if err != nil {
		t.Fatal(err)
	}
	if u2.Text != u.Text {
		t.Errorf("the built-in writer is not deterministic")
	}
	// Observers read, Leads publish.
	observer := w.join(t, "Olga", engine.RoleGuest)
	if _, err := w.svc.SetProjectMember(ctx, w.owner, w.project.ID, observer.UserID, engine.ProjectObserver); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.CreateStatusUpdate(ctx, observer, engine.StatusRequest{ProjectID: w.project.ID}); code(err) != "forbidden" {
		t.Fatalf("an Observer asked for an update: %v", err)
	}
	if _, err := w.svc.PublishStatusUpdate(ctx, w.bob, u.ID); code(err) != "forbidden" {
		t.Fatalf("a Contributor published: %v", err)
	}
	if _, err := w.svc.EditStatusUpdate(ctx, w.owner, u.ID, u.Text+"\nEdited by hand.", 0); err != nil {
		t.Fatal(err)
	}
	pub, err := w.svc.PublishStatusUpdate(ctx, w.owner, u.ID)
	if err != nil || pub.Status != "published" || !pub.Edited {
		t.Fatalf("publish: %+v %v", pub, err)
	}
	act, err := w.svc.ProjectActivity(ctx, w.owner, w.project.ID, engine.PageRequest{})
	if err != nil || act.Items[0].Kind != "status_update.published" {
		t.Fatalf("no publication in the activity feed: %v", err)
	}
}

func TestStatusWriterWithAModel(t *testing.T) {
	stand := ollamatest.Start(t, ollamatest.Good)
	cl, err := ollama.New(ollama.Config{Endpoint: stand.URL, Model: "llama3.2", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w := newStatusWorld(t, cl)
	var streamed strings.Builder
	var mu sync.Mutex
	u, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID, OnText: func(c string) {
		mu.Lock()
		streamed.WriteString(c)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Writer != engine.WriterModel || u.Model != "llama3.2" || u.Fallback != "" || !strings.Contains(u.Text, "[C1]") {
		t.Fatalf("model update: %+v", u)
	}
	if streamed.String() != u.Text {
		t.Fatalf("streamed %q, stored %q", streamed.String(), u.Text)
	}
	// The same facts never call the model twice.
	before := stand.Requests.Load()
	u2, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID})
	if err != nil || u2.Text != u.Text || stand.Requests.Load() != before {
		t.Fatalf("cached answer: %v, %d more model calls", err, stand.Requests.Load()-before)
	}
	// Anything the facts do not support falls back to the built-in writer.
	for _, tc := range []struct{ mode, reason string }{
		{ollamatest.Inventor, "not a fact"},
		{ollamatest.Numbers, "number 4242"},
		{ollamatest.Failing, "could not be reached"},
		{ollamatest.Slow, "did not answer in time"},
	} {
		stand.Mode.Store(tc.mode)
		// A new period, so the facts (and the cache key) differ.
		w.env.Clock.Advance(time.Minute)
		u, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID})
		if err != nil {
			t.Fatal(err)
		}
		if u.Writer != engine.WriterBuiltin || !strings.Contains(u.Fallback, tc.reason) {
			t.Errorf("%s: writer %s, fallback %q", tc.mode, u.Writer, u.Fallback)
		}
	}
}

func TestStatusQuotaByPlan(t *testing.T) {
	w := newStatusWorld(t, nil)
	for i := range 10 {
		if _, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID, Period: "day"}); err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
	}
	_, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID})
	var e *engine.Error
	if code(err) != "plan_limit_reached" || !strings.Contains(err.Error(), "Free") {
		t.Fatalf("11th update on Free: %v", err)
	}
	_ = e
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "starter"); err != nil {
		t.Fatal(err)
	}
	for range 91 {
		if _, err := w.svc.CreateStatusUpdate(ctx, w.owner, engine.StatusRequest{ProjectID: w.project.ID}); err != nil {
			t.Fatal(err)
		}
	}
	usage, err := w.svc.StatusUsage(ctx, w.owner)
	if err != nil || usage.Used != 101 || usage.Included != 100 || usage.Overage != 1 {
		t.Fatalf("Starter usage %+v %v", usage, err)
	}
}

// TestTeamScheduleFiresOnceInItsTimezone: a daily 09:00 Tokyo schedule
// writes one update per day on the injected clock, and two runs racing (a
// failover) still write one.
func TestTeamScheduleFiresOnceInItsTimezone(t *testing.T) {
	w := newStatusWorld(t, nil)
	tz := "Asia/Tokyo"
	team, err := w.svc.CreateTeam(ctx, w.owner, engine.TeamInput{Name: ptr("Web team"), Projects: &[]string{w.project.ID}, Members: &[]string{w.bob.UserID},
		Timezone: &tz, Schedule: &engine.TeamSchedule{Frequency: "daily", Hour: 9}})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation(tz)
	if team.NextRun == nil || team.NextRun.In(loc).Hour() != 9 {
		t.Fatalf("next run %v", team.NextRun)
	}
	// Move to just past the next run: exactly one update, even with two
	// schedulers at once.
	w.env.Clock.Advance(team.NextRun.Sub(w.env.Clock.Now()) + time.Minute)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := w.svc.RunTeamSchedules(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if counts[0]+counts[1] != 1 {
		t.Fatalf("racing schedulers wrote %v updates, want 1 in all", counts)
	}
	if n, _ := w.svc.RunTeamSchedules(ctx); n != 0 {
		t.Fatalf("the same run wrote again")
	}
	w.env.Clock.Advance(24 * time.Hour)
	if n, _ := w.svc.RunTeamSchedules(ctx); n != 1 {
		t.Fatalf("the next day's run wrote %d", n)
	}
	page, err := w.svc.ListTeamUpdates(ctx, w.bob, team.ID, engine.PageRequest{})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("team updates: %v %v", page, err)
	}
}
