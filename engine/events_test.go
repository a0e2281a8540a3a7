package engine_test

import (
	"encoding/json"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// sink records what the store's observer hands to live updates.
type sink struct {
	mu       sync.Mutex
	events   []engine.Event
	advances []uint64
}

func (s *sink) Publish(ev engine.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

func (s *sink) Advance(_ string, seq uint64) {
	s.mu.Lock()
	s.advances = append(s.advances, seq)
	s.mu.Unlock()
}

// take waits until the observer has seen the workspace's sequence reach seq
// (observers run after the write is acknowledged) and returns the events
// since the last take.
func (s *sink) take(t *testing.T, w *world) []engine.Event {
	t.Helper()
	want, err := w.svc.EventSeq(w.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []engine.Event
	eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var last uint64
		if n := len(s.events); n > 0 {
			last = s.events[n-1].Seq
		}
		if n := len(s.advances); n > 0 {
			last = max(last, s.advances[n-1])
		}
		if last < want {
			return false
		}
		out = s.events
		s.events, s.advances = nil, nil
		return true
	})
	return out
}

// eventually polls cond until it holds, within a deadline.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		runtime.Gosched()
	}
}

func TestEventsFromAppliedCommands(t *testing.T) {
	w := newWorld(t)
	sk := &sink{}
	w.env.Store.Observe(engine.ObserveEvents(sk))
	guest := w.join(t, "gus", engine.RoleGuest)
	member := w.join(t, "mia", engine.RoleMember)
	sk.take(t, w)

	proj, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Launch"})
	if err != nil {
		t.Fatal(err)
	}
	private, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Secret", Visibility: engine.VisibilityPrivate})
	if err != nil {
		t.Fatal(err)
	}
	task, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "Press release"})
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := w.svc.CreateTask(ctx, w.owner, private.ID, engine.CreateTaskInput{Title: "Hidden"})
	if err != nil {
		t.Fatal(err)
	}
	evs := sk.take(t, w)
	if len(evs) != 4 {
		t.Fatalf("want 4 events, got %d: %+v", len(evs), evs)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatalf("events out of order: %d after %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
	created := evs[2]
	if created.Kind != "task.create" || created.Tenant != w.ws.ID || created.Actor != w.owner.UserID ||
		len(created.Changes) == 0 || created.Changes[0].Kind != "task.created" || created.Changes[0].TaskID != task.ID || created.Changes[0].ProjectID != proj.ID {
		t.Fatalf("task event: %+v", created)
	}
	var title string
	if err := json.Unmarshal(created.Changes[0].After, &title); err != nil || title != "Press release" {
		t.Fatalf("after: %s", created.Changes[0].After)
	}

	// Visibility: the Guest sees nothing of a project it is not in; the
	// Member sees the workspace-visible project but not the private one.
	all := []engine.Topic{{Kind: engine.TopicWorkspace}}
	sees := func(p engine.Principal, ev engine.Event) bool {
		_, _, _, ok := w.svc.NewEventFilter(p).Select(&ev, all)
		return ok
	}
	if sees(guest, evs[2]) || sees(guest, evs[3]) || !sees(member, evs[2]) || sees(member, evs[3]) || !sees(w.owner, evs[3]) {
		t.Fatal("event visibility does not follow project visibility")
	}
	other := evs[2]
	other.Tenant = "01a2147d-0000-7000-8000-000000000000"
	if sees(w.owner, other) {
		t.Fatal("an event of another workspace passed the filter")
	}
	if _, _, _, ok := w.svc.NewEventFilter(w.owner).Select(&evs[2], []engine.Topic{{Kind: engine.TopicTask, ID: hidden.ID}}); ok {
		t.Fatal("a task topic matched another task's change")
	}

	// The Guest joins the project: its comment notifies the Owner (a
	// follower), for the Owner's user topic only.
	if _, err := w.svc.SetProjectMember(ctx, w.owner, proj.ID, guest.UserID, engine.ProjectContributor); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.CreateComment(ctx, guest, task.ID, "Looks good", ""); err != nil {
		t.Fatal(err)
	}
	evs = sk.take(t, w)
	if len(evs) != 2 || !evs[0].Access {
		t.Fatalf("membership change: %+v", evs)
	}
	comment := evs[1]
	if len(comment.Notifications) != 1 || comment.Notifications[0].UserID != w.owner.UserID || comment.Unread[w.owner.UserID] != 1 {
		t.Fatalf("comment notifications: %+v", comment)
	}
	mine := []engine.Topic{{Kind: engine.TopicUser, ID: w.owner.UserID}}
	if _, notes, unread, ok := w.svc.NewEventFilter(w.owner).Select(&comment, mine); !ok || len(notes) != 1 || unread == nil || *unread != 1 {
		t.Fatal("the recipient does not get its notification")
	}
	if _, notes, _, _ := w.svc.NewEventFilter(member).Select(&comment, []engine.Topic{{Kind: engine.TopicUser, ID: member.UserID}}); len(notes) != 0 {
		t.Fatal("another member got the Owner's notification")
	}
	if !sees(guest, comment) {
		t.Fatal("the Guest does not see its project's events after joining")
	}

	// A sign-in is no event, only an advance; a logout revokes.
	res, err := w.svc.Login(ctx, engine.LoginInput{Workspace: "acme", Email: "olive@acme.test", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if evs = sk.take(t, w); len(evs) != 0 {
		t.Fatalf("a sign-in made events: %+v", evs)
	}
	p, err := w.svc.Authenticate(ctx, res.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	evs = sk.take(t, w)
	if len(evs) != 1 || !slices.Contains(evs[0].Revoked, p.SessionID) || evs[0].Deliverable() {
		t.Fatalf("logout: %+v", evs)
	}
	if _, err := w.svc.Revalidate(ctx, p); err == nil {
		t.Fatal("a revoked session revalidated")
	}
	if np, err := w.svc.Revalidate(ctx, member); err != nil || np.Role != engine.RoleMember {
		t.Fatalf("revalidate: %+v %v", np, err)
	}

	// Platform commands are no workspace's events.
	if _, ok := engine.EventsFrom(storage.Applied{Command: &storage.Command{Kind: "platform.x"}, Result: storage.Result{}}); ok {
		t.Fatal("a platform command made an event")
	}
}

func TestAuthorizeTopic(t *testing.T) {
	w := newWorld(t)
	guest := w.join(t, "gus", engine.RoleGuest)
	proj, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Launch", Key: "LAU"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "Press release"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p     engine.Principal
		topic string
		want  string // canonical topic, or the error code
	}{
		{w.owner, "workspace", "workspace"},
		{w.owner, "project:" + proj.ID, "project:" + proj.ID},
		{w.owner, "task:" + task.Key, "task:" + task.ID},
		{w.owner, "user:me", "user:" + w.owner.UserID},
		{w.owner, "user:" + guest.UserID, "not_found"},
		{w.owner, "project:nope", "not_found"},
		{w.owner, "workspace:x", "invalid_topic"},
		{w.owner, "tenant:" + w.ws.ID, "invalid_topic"},
		{guest, "workspace", "workspace"},
		{guest, "project:" + proj.ID, "not_found"},
		{guest, "task:" + task.ID, "not_found"},
		{engine.Principal{Operator: true}, "workspace", "forbidden"},
	} {
		tp, err := w.svc.AuthorizeTopic(ctx, c.p, c.topic)
		got := tp.String()
		if err != nil {
			got = code(err)
		}
		if got != c.want {
			t.Errorf("%s as %s: %s, want %s", c.topic, c.p.Role, got, c.want)
		}
	}
}
