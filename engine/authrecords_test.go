package engine_test

import (
	"context"
	"testing"

	"github.com/teamflow/teamflow/engine"
)

// Authentication keeps a session's records between requests; every write
// that changes what it decides must show in the very next request. Each
// step authenticates first, so the cached records are the ones being
// tested, then writes, then authenticates again.
func TestAuthenticateSeesEveryWriteAtOnce(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "enterprise"); err != nil {
		t.Fatal(err)
	}
	inv, err := w.svc.Invite(ctx, w.owner, "mia@acme.test", engine.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.svc.AcceptInvitation(ctx, engine.AcceptInput{Token: inv.Token, Name: "Mia", Password: "password-mia"})
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Tokens.AccessToken
	auth := func(rctx context.Context) (engine.Principal, error) { return w.svc.Authenticate(rctx, tok) }
	mia, err := auth(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A role change.
	admin := engine.RoleAdmin
	if _, err := w.svc.UpdateMember(ctx, w.owner, mia.UserID, engine.MemberPatch{Role: &admin}); err != nil {
		t.Fatal(err)
	}
	if p, err := auth(ctx); err != nil || p.Role != engine.RoleAdmin {
		t.Fatalf("after promotion to Admin: %+v %v", p, err)
	}

	// The workspace's IP allowlist, from inside and outside it.
	inside := engine.WithRequestInfo(ctx, engine.RequestInfo{ID: "r1", IP: "10.1.2.3"})
	outside := engine.WithRequestInfo(ctx, engine.RequestInfo{ID: "r2", IP: "192.0.2.7"})
	if _, err := auth(outside); err != nil {
		t.Fatalf("before any allowlist: %v", err)
	}
	nets := []string{"10.0.0.0/8"}
	if _, err := w.svc.UpdateWorkspace(ctx, w.owner, engine.WorkspacePatch{IPAllowlist: &nets}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth(outside); err == nil {
		t.Fatal("a request from outside the new allowlist was let in")
	}
	if _, err := auth(inside); err != nil {
		t.Fatalf("inside the allowlist: %v", err)
	}

	// A grace period of zero days: an Admin without 2FA may only enrol.
	zero := 0
	if _, err := w.svc.UpdateWorkspace(ctx, w.owner, engine.WorkspacePatch{MFAGraceDays: &zero}); err != nil {
		t.Fatal(err)
	}
	if p, err := auth(inside); err != nil || !p.MFAEnrolmentOnly {
		t.Fatalf("after the grace period went to 0 days: %+v %v", p, err)
	}

	// Deactivation.
	off := engine.StatusDeactivated
	if _, err := w.svc.UpdateMember(ctx, w.owner, mia.UserID, engine.MemberPatch{Status: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth(inside); err == nil {
		t.Fatal("a deactivated account's token still authenticates")
	}
}

// A logged-out session's token is refused by the next request, though the
// session's records were cached a moment before.
func TestAuthenticateAfterLogout(t *testing.T) {
	w := newWorld(t)
	first, p := w.ownerLogin(t)
	second, _ := w.ownerLogin(t)
	if err := w.svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Authenticate(ctx, first.Tokens.AccessToken); err == nil {
		t.Fatal("a logged-out session's access token still authenticates")
	}
	if _, err := w.svc.Authenticate(ctx, second.Tokens.AccessToken); err != nil {
		t.Fatalf("another session of the same account: %v", err)
	}
}

// Project records are kept between requests too: a project's change, its
// deletion and its restoration show in the very next request that reads
// it, here task creation, which reads the project every time.
func TestProjectReadsSeeEveryWriteAtOnce(t *testing.T) {
	w := newWorld(t)
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "enterprise"); err != nil {
		t.Fatal(err)
	}
	pr, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Launch"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(status string) error {
		_, err := w.svc.CreateTask(ctx, w.owner, pr.ID, engine.CreateTaskInput{Title: "a task", Status: status})
		return err
	}
	if err := create(""); err != nil {
		t.Fatal(err)
	}
	if err := create("Review"); err == nil {
		t.Fatal("a status the project does not have was accepted")
	}
	statuses := append(pr.Statuses, engine.Status{Name: "Review", Category: "in_progress"})
	if _, err := w.svc.UpdateProject(ctx, w.owner, pr.ID, engine.ProjectPatch{Statuses: statuses}); err != nil {
		t.Fatal(err)
	}
	if err := create("Review"); err != nil {
		t.Fatalf("the status added a moment ago: %v", err)
	}
	if err := w.svc.DeleteProject(ctx, w.owner, pr.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := create(""); err == nil {
		t.Fatal("a task was added to the project just deleted")
	}
	if _, err := w.svc.RestoreProject(ctx, w.owner, pr.ID); err != nil {
		t.Fatal(err)
	}
	if err := create("Review"); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
}
