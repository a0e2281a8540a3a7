package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
)

var ctx = context.Background()

type world struct {
	env   *enginetest.Env
	svc   *engine.Service
	owner engine.Principal
	ws    *engine.Workspace
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := enginetest.New(t, engine.Config{Mode: engine.ModeCloud, BaseURL: "http://tf.test"})
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := env.Service.Signup(ctx, engine.CreateWorkspaceInput{
		WorkspaceName: "Acme", WorkspaceSlug: "acme", Name: "Olive Owner", Email: "olive@acme.test", Password: "correct horse battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.Service.Authenticate(ctx, c.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return &world{env: env, svc: env.Service, owner: p, ws: c.Workspace}
}

// ownerLogin signs the Owner in again: a new session.
func (w *world) ownerLogin(t *testing.T) (*engine.LoginResult, engine.Principal) {
	t.Helper()
	res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.svc.Authenticate(ctx, res.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return res, p
}

// join invites someone with role and accepts as them.
func (w *world) join(t *testing.T, name string, role engine.Role) engine.Principal {
	t.Helper()
	inv, err := w.svc.Invite(ctx, w.owner, name+"@acme.test", role)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.svc.AcceptInvitation(ctx, engine.AcceptInput{Token: inv.Token, Name: name, Password: "password-" + name})
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.svc.Authenticate(ctx, c.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func code(err error) string {
	var e *engine.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "untyped: " + err.Error()
}

func TestSignupLoginRefreshRotation(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "Other", WorkspaceSlug: "acme", Name: "X", Email: "x@x.test", Password: "x-Unlisted-passw0rd"}); code(err) != "slug_taken" {
		t.Fatalf("duplicate slug: %v", err)
	}
	res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "OLIVE@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	_, errWrongPw := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "wrong password"})
	_, errNoUser := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "nobody@acme.test", Password: "wrong password"})
	_, errNoWs := w.svc.Login(ctx, engine.LoginInput{Workspace: "nope", Email: "olive@acme.test", Password: "wrong password"})
	if code(errWrongPw) != "invalid_credentials" || code(errNoUser) != code(errWrongPw) || code(errNoWs) != code(errWrongPw) {
		t.Fatalf("login failures must look alike: %v / %v / %v", errWrongPw, errNoUser, errNoWs)
	}
	r2, err := w.svc.Refresh(ctx, res.Tokens.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Authenticate(ctx, r2.Tokens.AccessToken); err != nil {
		t.Fatal(err)
	}
	// Reusing the spent token revokes the family: the new pair dies too.
	if _, err := w.svc.Refresh(ctx, res.Tokens.RefreshToken); code(err) != "invalid_token" {
		t.Fatalf("reuse accepted: %v", err)
	}
	if _, err := w.svc.Refresh(ctx, r2.Tokens.RefreshToken); code(err) != "invalid_token" {
		t.Fatalf("family survived reuse: %v", err)
	}
	if _, err := w.svc.Authenticate(ctx, r2.Tokens.AccessToken); code(err) != "invalid_token" {
		t.Fatalf("access token of a revoked session still works: %v", err)
	}
	// Access tokens expire after 15 minutes on the injected clock.
	res, _ = w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
	w.env.Clock.Advance(15*time.Minute + time.Second)
	if _, err := w.svc.Authenticate(ctx, res.Tokens.AccessToken); code(err) != "invalid_token" {
		t.Fatalf("expired token accepted: %v", err)
	}
}

func TestParallelRefreshHasOneWinner(t *testing.T) {
	w := newWorld(t)
	res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := w.svc.Refresh(ctx, res.Tokens.RefreshToken)
			errs <- err
		}()
	}
	ok := 0
	for range 10 {
		if <-errs == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("parallel_successes=%d, want 1", ok)
	}
}

func TestTasksBoardAndPermissions(t *testing.T) {
	w := newWorld(t)
	proj, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Website Relaunch"})
	if err != nil {
		t.Fatal(err)
	}
	if proj.Key != "WR" {
		t.Fatalf("derived key %q", proj.Key)
	}
	var ids []string
	for i := range 5 {
		task, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: fmt.Sprintf("task %d", i), Tags: []string{"Web"}})
		if err != nil {
			t.Fatal(err)
		}
		if task.Key != fmt.Sprintf("WR-%d", i+1) {
			t.Fatalf("task key %q", task.Key)
		}
		ids = append(ids, task.ID)
	}
	// Move task 4 to the top of "In progress", then task 0 after it.
	top := ""
	if _, err := w.svc.UpdateTask(ctx, w.owner, ids[4], engine.TaskPatch{Status: ptr("In progress"), Move: &engine.TaskMove{AfterID: top}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, w.owner, ids[0], engine.TaskPatch{Status: ptr("in_progress"), Move: &engine.TaskMove{AfterID: ids[4]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, w.owner, ids[2], engine.TaskPatch{Status: ptr("In progress"), Move: &engine.TaskMove{AfterID: ids[4]}}); err != nil {
		t.Fatal(err)
	}
	col, err := w.svc.ListTasks(ctx, w.owner, proj.ID, engine.TaskFilter{Status: "In progress", Sort: "position"}, engine.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, tk := range col.Items {
		got = append(got, tk.Title)
	}
	if fmt.Sprint(got) != "[task 4 task 2 task 0]" {
		t.Fatalf("column order %v", got)
	}
	// A cycle is refused.
	if _, err := w.svc.UpdateTask(ctx, w.owner, ids[1], engine.TaskPatch{ParentID: &ids[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, w.owner, ids[0], engine.TaskPatch{ParentID: &ids[1]}); code(err) != "parent_cycle" {
		t.Fatalf("cycle: %v", err)
	}
	// A guest sees nothing until added, then only as allowed.
	guest := w.join(t, "gus", engine.RoleGuest)
	if _, err := w.svc.GetTask(ctx, guest, ids[0]); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("guest saw a task: %v", err)
	}
	if _, err := w.svc.SetProjectMember(ctx, w.owner, proj.ID, guest.UserID, engine.ProjectObserver); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.GetTask(ctx, guest, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.UpdateTask(ctx, guest, ids[0], engine.TaskPatch{Title: ptr("hijack")}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("observer edited: %v", err)
	}
	// Delete cascades to subtasks and restores them together.
	if err := w.svc.DeleteTask(ctx, w.owner, ids[0], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.GetTask(ctx, w.owner, ids[1]); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("subtask survived delete: %v", err)
	}
	if _, err := w.svc.RestoreTask(ctx, w.owner, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.GetTask(ctx, w.owner, ids[1]); err != nil {
		t.Fatalf("subtask not restored: %v", err)
	}
}

func TestPlanLimitsAreExactUnderConcurrency(t *testing.T) {
	w := newWorld(t)
	errs := make(chan error, 12)
	for i := range 12 {
		go func() {
			_, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: fmt.Sprintf("P%d", i), Key: fmt.Sprintf("P%d", i)})
			errs <- err
		}()
	}
	ok, limited := 0, 0
	for range 12 {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case code(err) == "plan_limit_reached":
			limited++
		default:
			t.Fatal(err)
		}
	}
	if ok != 5 || limited != 7 {
		t.Fatalf("free plan allowed %d projects (%d refused), want 5", ok, limited)
	}
}

func ptr[T any](v T) *T { return &v }
