package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/engine"
)

// TestNotificationsInTheRecipientsHours: a mention at 23:00 for someone in
// Tokyo is in their inbox at once and mailed at their 09:00; an urgent one
// goes out at once.
func TestNotificationsInTheRecipientsHours(t *testing.T) {
	w := newMailWorld(t)
	w.deliver(t) // the Owner's verification mail
	for _, m := range w.smtp.To("olive@acme.test") {
		if err := w.svc.VerifyEmail(ctx, tokenIn(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := w.svc.Invite(ctx, w.owner, "kenji@acme.test", engine.RoleMember)
	if err != nil {
		t.Fatal(err)
	}
	w.deliver(t)
	c, err := w.svc.AcceptInvitation(ctx, engine.AcceptInput{Token: tokenIn(t, w.smtp.WaitFor(t, "kenji@acme.test", 5*time.Second)), Name: "Kenji", Password: "a long tokyo secret", Timezone: "Asia/Tokyo"})
	_ = inv
	if err != nil {
		t.Fatal(err)
	}
	kenji, err := w.svc.Authenticate(ctx, c.Tokens.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	proj, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Launch"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "Press release"})
	if err != nil {
		t.Fatal(err)
	}
	// Monday 2026-11-02 14:00 UTC is 23:00 in Tokyo.
	w.env.Clock.Advance(5 * time.Hour)
	if _, err := w.svc.CreateComment(ctx, w.owner, task.ID, fmt.Sprintf("Can you check this @[Kenji](user:%s)?", kenji.UserID), ""); err != nil {
		t.Fatal(err)
	}
	inbox, err := w.svc.ListNotifications(ctx, kenji, false, engine.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if inbox.Unread != 1 || len(inbox.Items) != 1 || inbox.Items[0].Kind != engine.NotifyMention {
		t.Fatalf("inbox %+v", inbox)
	}
	mailsTo := func() int {
		n := 0
		for _, m := range w.smtp.To("kenji@acme.test") {
			if strings.Contains(m.Subject, "update") {
				n++
			}
		}
		return n
	}
	w.env.Clock.Advance(15 * time.Minute) // 23:15 in Tokyo
	if n, err := w.svc.SendNotificationMail(ctx); err != nil || n != 0 {
		t.Fatalf("mailed at night: %d %v", n, err)
	}
	w.env.Clock.Advance(9*time.Hour + 45*time.Minute) // Tuesday 09:00 in Tokyo
	if n, err := w.svc.SendNotificationMail(ctx); err != nil || n != 1 {
		t.Fatalf("not mailed in the morning: %d %v", n, err)
	}
	w.deliver(t)
	if n := mailsTo(); n != 1 {
		t.Fatalf("%d notification mails, want 1", n)
	}
	m := w.smtp.To("kenji@acme.test")
	if last := m[len(m)-1]; !strings.Contains(last.Text, "mentioned you on “Press release”") {
		t.Fatalf("notification mail %q", last.Text)
	}
	// An urgent task: assignment mailed at once, even at night.
	w.env.Clock.Advance(14 * time.Hour) // 23:00 in Tokyo again
	if _, err := w.svc.CreateTask(ctx, w.owner, proj.ID, engine.CreateTaskInput{Title: "Server down", Priority: "urgent", Assignees: []string{kenji.UserID}}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.svc.SendNotificationMail(ctx); err != nil || n != 1 {
		t.Fatalf("urgent not mailed at once: %d %v", n, err)
	}
	// Read state.
	if err := w.svc.MarkRead(ctx, kenji, ""); err != nil {
		t.Fatal(err)
	}
	if inbox, _ := w.svc.ListNotifications(ctx, kenji, true, engine.PageRequest{}); inbox.Unread != 0 || len(inbox.Items) != 0 {
		t.Fatalf("after read-all: %+v", inbox)
	}
}
