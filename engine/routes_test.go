package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/engine/enginetest"
	"github.com/teamflow/teamflow/storage"
)

// memMailer keeps what the outbox delivers.
type memMailer struct {
	mu   sync.Mutex
	sent []engine.Message
	fail int // refuse this many sends first
}

func (m *memMailer) Send(_ context.Context, msg engine.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		return errors.New("421 try later")
	}
	m.sent = append(m.sent, msg)
	return nil
}

func (m *memMailer) to(addr string) []engine.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []engine.Message
	for _, msg := range m.sent {
		if msg.To == addr {
			out = append(out, msg)
		}
	}
	return out
}

// splitRouter gives the platform and every workspace a route of its own
// (all over one store and log, as a shared installation), and checks every
// command proposed on them, independently of the engine's own guard: a
// workspace's route takes only that workspace's keys, the platform's only
// platform keys (workspace creation excepted). Any command that would have
// to be split between two stores once the workspace has its own is an
// error of the test.
type splitRouter struct {
	shared engine.Route
	mu     sync.Mutex
	kinds  map[string][]string // route ("platform", or the tenant) → kinds proposed
	errs   []string
}

type recordingLog struct {
	r      *splitRouter
	tenant string // "" for the platform route
	inner  engine.Log
}

func (l recordingLog) Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error) {
	l.r.record(l.tenant, cmd)
	return l.inner.Propose(ctx, cmd)
}

func (r *splitRouter) record(tenant string, cmd *storage.Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	route := tenant
	if route == "" {
		route = "platform"
	}
	r.kinds[route] = append(r.kinds[route], cmd.Kind)
	bad := func(format string, args ...any) {
		r.errs = append(r.errs, fmt.Sprintf("%s on %s's route: ", cmd.Kind, route)+fmt.Sprintf(format, args...))
	}
	want := storage.SpaceTenant
	if tenant == "" {
		want = storage.SpaceSys
		if cmd.Tenant != "" && cmd.Kind != "workspace.signup" && cmd.Kind != "workspace.setup" {
			bad("names workspace %s (Apply advances its event sequence)", cmd.Tenant)
			return
		}
		if cmd.Tenant != "" {
			return // creation: registry and first records together, on the shared route
		}
	} else if cmd.Tenant != tenant {
		bad("names workspace %q", cmd.Tenant)
	}
	for _, p := range cmd.Preconditions {
		if p.Space != want {
			bad("precondition on %s in space %d", p.Key, p.Space)
		}
	}
	for _, op := range cmd.Ops {
		if op.Space != want {
			bad("writes %s in space %d", op.Key, op.Space)
		}
	}
}

func (r *splitRouter) Workspace(tenant string) engine.Route {
	return engine.Route{Log: recordingLog{r: r, tenant: tenant, inner: r.shared.Log}, Store: r.shared.Store}
}

func (r *splitRouter) Platform() engine.Route {
	return engine.Route{Log: recordingLog{r: r, inner: r.shared.Log}, Store: r.shared.Store}
}

func newSplitEnv(t *testing.T, m engine.Mailer) (*enginetest.Env, *splitRouter) {
	t.Helper()
	var sr *splitRouter
	env := enginetest.NewWithRouter(t, engine.Config{Mode: engine.ModeCloud, BaseURL: "https://tf.acme.test"}, m, func(shared engine.Route) engine.Router {
		sr = &splitRouter{shared: shared, kinds: map[string][]string{}}
		return sr
	})
	if _, err := env.Service.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	return env, sr
}

func signup(t *testing.T, svc *engine.Service, slug, email string) (engine.Principal, *engine.Created) {
	t.Helper()
	c, err := svc.Signup(ctx, engine.CreateWorkspaceInput{
		WorkspaceName: strings.ToUpper(slug[:1]) + slug[1:], WorkspaceSlug: slug, Name: "Owner of " + slug, Email: email, Password: "correct horse battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, c.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func login(svc *engine.Service, slug, email string) error {
	_, err := svc.Login(ctx, engine.LoginInput{Workspace: slug, Email: email, Password: "correct horse battery"})
	return err
}

// TestRouteGuardRefusesCrossingCommands: the engine's own guard refuses a
// command that would cross between a workspace's keyspace and the
// platform's, before it is proposed.
func TestRouteGuardRefusesCrossingCommands(t *testing.T) {
	w := newWorld(t)
	tenant := w.ws.ID
	put := func(space storage.Space, key string) storage.Op {
		return storage.Op{Type: storage.OpPut, Space: space, Key: storage.K("guardtest", key), Value: []byte(`{}`), Version: 1}
	}
	cases := []struct {
		name   string
		route  string
		cmd    storage.Command
		refuse bool
	}{
		{"tenant op on the workspace route", tenant, storage.Command{Tenant: tenant, Ops: []storage.Op{put(storage.SpaceTenant, "a")}}, false},
		{"platform op on the workspace route", tenant, storage.Command{Tenant: tenant, Ops: []storage.Op{put(storage.SpaceTenant, "b"), put(storage.SpaceSys, "b")}}, true},
		{"platform precondition on the workspace route", tenant, storage.Command{Tenant: tenant,
			Preconditions: []storage.Precondition{{Space: storage.SpaceSys, Key: storage.K("guardtest", "c")}}, Ops: []storage.Op{put(storage.SpaceTenant, "c")}}, true},
		{"another workspace's command on the route", tenant, storage.Command{Tenant: "0190a3f4-0000-7000-8000-000000000000", Ops: []storage.Op{put(storage.SpaceTenant, "d")}}, true},
		{"platform command on the workspace route", tenant, storage.Command{Ops: []storage.Op{put(storage.SpaceSys, "e")}}, true},
		{"platform op on the platform route", "", storage.Command{Ops: []storage.Op{put(storage.SpaceSys, "f")}}, false},
		{"workspace command on the platform route", "", storage.Command{Tenant: tenant, Ops: []storage.Op{put(storage.SpaceSys, "g")}}, true},
		{"tenant op on the platform route", "", storage.Command{Ops: []storage.Op{put(storage.SpaceTenant, "h")}}, true},
	}
	for i, c := range cases {
		c.cmd.RequestID = fmt.Sprintf("guard-test-%d", i)
		c.cmd.Kind = "test.guard"
		res, err := w.svc.ProposeOnRoute(ctx, c.route, &c.cmd)
		switch {
		case c.refuse && !errors.Is(err, engine.ErrRouteViolation):
			t.Errorf("%s: not refused: %v %v", c.name, err, res.Err)
		case !c.refuse && (err != nil || res.Err != nil):
			t.Errorf("%s: refused: %v %v", c.name, err, res.Err)
		}
	}
	// Nothing of a refused command was written.
	if _, err := w.env.Store.Sys().Get(storage.K("guardtest", "b")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused command wrote: %v", err)
	}
}

// TestEngineFlowsStayOnTheirRoutes walks the engine's flows that touch
// both a workspace and the platform (signup, invitation and its mail,
// delivery, rename, CORS, plan change, the reconciliation job) and the
// everyday ones (projects, tasks, comments), on a router that gives every
// workspace a route of its own: no command may need two stores. The
// engine's guard is on as well; this router checks on its own.
func TestEngineFlowsStayOnTheirRoutes(t *testing.T) {
	m := &memMailer{}
	env, sr := newSplitEnv(t, m)
	svc := env.Service
	owner, c := signup(t, svc, "acme", "olive@acme.test")
	other, _ := signup(t, svc, "globex", "gail@globex.test")

	if _, err := svc.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	verify := m.to("olive@acme.test")
	if len(verify) != 1 {
		t.Fatalf("verification mails: %d", len(verify))
	}
	if err := svc.VerifyEmail(ctx, tokenFrom(t, verify[0].Text)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Invite(ctx, owner, "bob@acme.test", engine.RoleMember); err != nil {
		t.Fatal(err)
	}
	m.fail = 1
	if rep, err := svc.DeliverOutbox(ctx); err != nil || rep.Retried != 1 {
		t.Fatalf("delivery with a refusal: %+v %v", rep, err)
	}
	env.Clock.Advance(time.Hour)
	if _, err := svc.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	inv := m.to("bob@acme.test")
	if len(inv) != 1 {
		t.Fatalf("invitation mails: %d", len(inv))
	}
	if _, err := svc.AcceptInvitation(ctx, engine.AcceptInput{Token: tokenFrom(t, inv[0].Text), Name: "Bob", Password: "bob's long password"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.RequestPasswordReset(ctx, "globex", "gail@globex.test"); err != nil {
		t.Fatal(err)
	}

	pr, err := svc.CreateProject(ctx, owner, engine.CreateProjectInput{Name: "Web", Key: "WEB"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := svc.CreateTask(ctx, owner, pr.ID, engine.CreateTaskInput{Title: "Ship it"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateComment(ctx, owner, task.ID, "on it", ""); err != nil {
		t.Fatal(err)
	}

	slug, name := "acme-corp", "Acme Corp"
	origins := []string{"https://app.acme.test", "https://acme.test"}
	if _, err := svc.UpdateWorkspace(ctx, owner, engine.WorkspacePatch{Slug: &slug, Name: &name, CORSOrigins: &origins}); err != nil {
		t.Fatal(err)
	}
	taken := "globex"
	if _, err := svc.UpdateWorkspace(ctx, owner, engine.WorkspacePatch{Slug: &taken}); code(err) != "slug_taken" {
		t.Fatalf("renamed onto a taken slug: %v", err)
	}
	if err := login(svc, "acme-corp", "olive@acme.test"); err != nil {
		t.Fatalf("sign-in by the new slug: %v", err)
	}
	if !svc.CORSOriginKnown("https://app.acme.test") || !svc.CORSAllowed(c.Workspace.ID, "https://app.acme.test") {
		t.Fatal("CORS origin not indexed")
	}
	if _, err := svc.SetPlan(ctx, engine.Principal{Operator: true}, "globex", "professional"); err != nil {
		t.Fatal(err)
	}
	if p, err := svc.GetPlan(ctx, other); err != nil || p.Plan.ID != "professional" {
		t.Fatalf("plan after SetPlan: %+v %v", p, err)
	}
	env.Clock.Advance(engine.StaleClaimAfter + time.Minute)
	if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}

	sr.mu.Lock()
	defer sr.mu.Unlock()
	for _, e := range sr.errs {
		t.Error(e)
	}
	for route, want := range map[string][]string{
		"platform":         {"workspace.signup", "workspace.slug_claim", "workspace.registry_sync", "platform.plan"},
		c.Workspace.ID:     {"outbox.delivered", "outbox.retry", "workspace.update", "task.create"},
		other.Tenant:       {"platform.plan"},
		"not-a-workspace?": nil,
	} {
		for _, k := range want {
			if !slices.Contains(sr.kinds[route], k) {
				t.Errorf("route %s never saw %s (saw %v)", route, k, sr.kinds[route])
			}
		}
	}
}

func tokenFrom(t *testing.T, text string) string {
	t.Helper()
	sm := tokenRE.FindStringSubmatch(text)
	if sm == nil {
		t.Fatalf("no link in %q", text)
	}
	return sm[1] + sm[2]
}

// TestRenameProtocol: a rename claims the slug on the platform, changes
// the record on the workspace's route, then finalizes; a crash after any
// step is finished or undone by the reconciliation job from the record.
func TestRenameProtocol(t *testing.T) {
	env, _ := newSplitEnv(t, nil)
	svc := env.Service
	owner, c := signup(t, svc, "acme", "olive@acme.test")
	tenant := c.Workspace.ID
	rename := func(slug string) error {
		_, err := svc.UpdateWorkspace(ctx, owner, engine.WorkspacePatch{Slug: &slug})
		return err
	}
	slugOf := func() string {
		ws, err := svc.GetWorkspace(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		return ws.Slug
	}
	crash := errors.New("crash")

	// The plain rename: the old slug is free at once, the new one signs in.
	if err := rename("acme-two"); err != nil {
		t.Fatal(err)
	}
	if err := login(svc, "acme-two", "olive@acme.test"); err != nil {
		t.Fatalf("sign-in by the new slug: %v", err)
	}
	if err := login(svc, "acme", "olive@acme.test"); err == nil {
		t.Fatal("the old slug still signs in")
	}
	signup(t, svc, "acme", "other@acme.test") // the old slug is free for another workspace
	if err := rename("acme"); code(err) != "slug_taken" {
		t.Fatalf("renamed onto a taken slug: %v", err)
	}

	// Crash after the claim: the claim holds the slug (a pending claim
	// signs nobody in) until the job releases it, since the record never
	// changed.
	svc.SetRenameHooks(func() error { return crash }, nil)
	if err := rename("acme-three"); !errors.Is(err, crash) {
		t.Fatalf("rename with a crash after the claim: %v", err)
	}
	svc.SetRenameHooks(nil, nil)
	if _, err := svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "X", WorkspaceSlug: "acme-three", Name: "X", Email: "x@x.test", Password: "correct horse battery"}); code(err) != "slug_taken" {
		t.Fatalf("a claimed slug was given away: %v", err)
	}
	if err := login(svc, "acme-three", "olive@acme.test"); err == nil {
		t.Fatal("a pending claim signs in")
	}
	if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "X", WorkspaceSlug: "acme-three", Name: "X", Email: "x@x.test", Password: "correct horse battery"}); code(err) != "slug_taken" {
		t.Fatalf("a fresh claim was released by the job: %v", err)
	}
	env.Clock.Advance(engine.StaleClaimAfter + time.Second)
	if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	if slugOf() != "acme-two" || login(svc, "acme-two", "olive@acme.test") != nil {
		t.Fatalf("after the release: slug %q", slugOf())
	}
	signup(t, svc, "acme-three", "x@x.test") // released

	// Crash after the record changed: the job finishes the rename.
	svc.SetRenameHooks(nil, func() error { return crash })
	if err := rename("acme-four"); !errors.Is(err, crash) {
		t.Fatalf("rename with a crash after the update: %v", err)
	}
	svc.SetRenameHooks(nil, nil)
	if slugOf() != "acme-four" || login(svc, "acme-four", "olive@acme.test") == nil {
		t.Fatalf("before the job: slug %q, or the pending claim signs in", slugOf())
	}
	env.Clock.Advance(engine.StaleClaimAfter + time.Second)
	if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	if err := login(svc, "acme-four", "olive@acme.test"); err != nil {
		t.Fatalf("the job did not finish the rename: %v", err)
	}
	if err := login(svc, "acme-two", "olive@acme.test"); err == nil {
		t.Fatal("the job left the old slug signing in")
	}
	list, err := svc.ListWorkspaces(ctx, engine.Principal{Operator: true}, engine.PageRequest{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if s.ID == tenant && s.Slug != "acme-four" {
			t.Fatalf("registry slug %q", s.Slug)
		}
	}

	// A claim released under a stalled request, and the slug taken by
	// another workspace before the record changes: the record is put back
	// and the rename answers slug_taken.
	svc.SetRenameHooks(func() error {
		env.Clock.Advance(engine.StaleClaimAfter + time.Second)
		if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
			return err
		}
		_, err := svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "Y", WorkspaceSlug: "acme-five", Name: "Y", Email: "y@y.test", Password: "correct horse battery"})
		return err
	}, nil)
	if err := rename("acme-five"); code(err) != "slug_taken" {
		t.Fatalf("a rename onto a slug lost meanwhile: %v", err)
	}
	svc.SetRenameHooks(nil, nil)
	if slugOf() != "acme-four" || login(svc, "acme-four", "olive@acme.test") != nil {
		t.Fatalf("after the lost slug: %q", slugOf())
	}

	// Another update of the workspace while a rename is between its claim
	// and its record leaves that rename's claim alone.
	svc.SetRenameHooks(func() error {
		svc.SetRenameHooks(nil, nil)
		tz := "Europe/Berlin"
		if _, err := svc.UpdateWorkspace(ctx, owner, engine.WorkspacePatch{Timezone: &tz}); err != nil {
			return err
		}
		if _, err := svc.Signup(ctx, engine.CreateWorkspaceInput{WorkspaceName: "Z", WorkspaceSlug: "acme-six", Name: "Z", Email: "z@z.test", Password: "correct horse battery"}); code(err) != "slug_taken" {
			return fmt.Errorf("a running rename's claim was released: %v", err)
		}
		return nil
	}, nil)
	if err := rename("acme-six"); err != nil {
		t.Fatal(err)
	}
	if slugOf() != "acme-six" || login(svc, "acme-six", "olive@acme.test") != nil {
		t.Fatalf("after a concurrent update: %q", slugOf())
	}
}

// TestCORSIndexFollowsTheRecord: the origin index is written on the
// platform after the record; a stale entry answers a preflight only, and
// the actual request is decided by the workspace's own record.
func TestCORSIndexFollowsTheRecord(t *testing.T) {
	env, _ := newSplitEnv(t, nil)
	svc := env.Service
	owner, c := signup(t, svc, "acme", "olive@acme.test")
	set := func(list ...string) error {
		_, err := svc.UpdateWorkspace(ctx, owner, engine.WorkspacePatch{CORSOrigins: &list})
		return err
	}
	const a, b = "https://a.acme.test", "https://b.acme.test"
	if err := set(a, b); err != nil {
		t.Fatal(err)
	}
	if !svc.CORSOriginKnown(a) || !svc.CORSOriginKnown(b) || !svc.CORSAllowed(c.Workspace.ID, b) {
		t.Fatal("origins not indexed")
	}
	if err := set(a); err != nil {
		t.Fatal(err)
	}
	if svc.CORSOriginKnown(b) || svc.CORSAllowed(c.Workspace.ID, b) {
		t.Fatal("a removed origin is still known")
	}
	crash := errors.New("crash")
	svc.SetRenameHooks(nil, func() error { return crash })
	if err := set(); !errors.Is(err, crash) {
		t.Fatalf("update with a crash: %v", err)
	}
	svc.SetRenameHooks(nil, nil)
	if !svc.CORSOriginKnown(a) {
		t.Fatal("the index was written with the record")
	}
	if svc.CORSAllowed(c.Workspace.ID, a) {
		t.Fatal("a stale index entry allowed a request")
	}
	if _, err := svc.ReconcileWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	if svc.CORSOriginKnown(a) {
		t.Fatal("the job left a stale index entry")
	}
}

// TestOutboxIsPerWorkspace: each workspace's mail is queued in its own
// keyspace and delivered from there; a platform queue entry of older data
// is drained into its workspace's queue and delivered once.
func TestOutboxIsPerWorkspace(t *testing.T) {
	m := &memMailer{}
	env, _ := newSplitEnv(t, m)
	svc := env.Service
	_, a := signup(t, svc, "acme", "olive@acme.test")
	signup(t, svc, "globex", "gail@globex.test")

	// Make the first workspace's verification mail look like older data:
	// no due index entry, a platform queue entry instead (written straight
	// to the log, past the engine's guard).
	var rowID string
	tv := env.Store.Tenant(a.Workspace.ID)
	if err := tv.Scan(storage.K("outbox"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		rowID, _ = k.Last()
		return nil
	}); err != nil || rowID == "" {
		t.Fatalf("no outbox row: %v", err)
	}
	var due storage.Key
	if err := tv.Scan(storage.K("ix", "obdue"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		due = k
		return nil
	}); err != nil || due == nil {
		t.Fatalf("no due entry: %v", err)
	}
	legacy := storage.Command{RequestID: "legacy-outq", Tenant: a.Workspace.ID, Kind: "test.legacy", Ops: []storage.Op{
		{Type: storage.OpDelete, Key: due},
		{Type: storage.OpPut, Space: storage.SpaceSys, Key: storage.K("outq", a.Workspace.ID, rowID), Version: 1},
	}}
	if res, err := env.Log.Propose(ctx, &legacy); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}

	rep, err := svc.DeliverOutbox(ctx)
	if err != nil || rep.Sent != 2 {
		t.Fatalf("first run: %+v %v", rep, err)
	}
	if len(m.to("olive@acme.test")) != 1 || len(m.to("gail@globex.test")) != 1 {
		t.Fatal("each workspace's mail once")
	}
	if rep, err := svc.DeliverOutbox(ctx); err != nil || rep != (engine.DeliveryReport{}) {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	left := 0
	for _, p := range []storage.Key{storage.K("outq"), storage.K("outbox"), storage.K("ix", "obdue")} {
		views := []storage.View{env.Store.Sys(), tv}
		for _, v := range views {
			_ = v.Scan(p, storage.ScanOptions{}, func(storage.Key, storage.Record) error { left++; return nil })
		}
	}
	if left != 0 {
		t.Fatalf("%d queue entries or rows left after delivery", left)
	}
}
