package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Notifications are written in the same command as the change that causes
// them: one inbox record per recipient, and, when the recipient wants mail
// for that kind, a pending mail item. A job gathers each person's pending
// items into one mail and sends it inside their work hours, in their
// timezone (a mention at 23:00 for someone in Tokyo goes out at their 09:00);
// urgent ones go at once. Mail leaves through the outbox like all mail.

// Notification kinds, matching NotificationPrefs.
const (
	NotifyMention  = "mention"
	NotifyAssigned = "assigned"
	NotifyComment  = "comment"
	NotifyDueSoon  = "due_soon"
	NotifyStatus   = "status"
)

type notificationRecord struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Kind      string `json:"kind"`
	Actor     string `json:"actor"`
	ProjectID string `json:"project_id,omitempty"`
	TaskID    string `json:"task_id,omitempty"`
	CommentID string `json:"comment_id,omitempty"`
	Title     string `json:"title"`
	Excerpt   string `json:"excerpt,omitempty"`
	Urgent    bool   `json:"urgent,omitempty"`
	CreatedAt int64  `json:"created_at"`
	ReadAt    int64  `json:"read_at,omitempty"`
}

// Notification is the API view of an inbox item.
type Notification struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind" enum:"mention,assigned,comment,due_soon,status"`
	Actor     string     `json:"actor" doc:"Who caused it (a member ID, or system)"`
	ProjectID string     `json:"project_id,omitempty"`
	TaskID    string     `json:"task_id,omitempty"`
	CommentID string     `json:"comment_id,omitempty"`
	Title     string     `json:"title" doc:"The task's title when it happened"`
	Excerpt   string     `json:"excerpt,omitempty"`
	Urgent    bool       `json:"urgent"`
	CreatedAt time.Time  `json:"created_at"`
	ReadAt    *time.Time `json:"read_at"`
}

func kNotification(user, id string) storage.Key { return storage.K("ntf", user, id) }
func kNotifications(user string) storage.Key    { return storage.K("ntf", user) }
func kUnread(user string) storage.Key           { return storage.K("cnt", "unread", user) }
func kPendingMail(user, id string) storage.Key  { return storage.K("nmail", user, id) }
func kPendingMails() storage.Key                { return storage.K("nmail") }
func kFollower(task, user string) storage.Key   { return storage.K("fol", task, user) }
func kFollowers(task string) storage.Key        { return storage.K("fol", task) }
func kDueSoonSent(task, due string) storage.Key { return storage.K("duesent", task, due) }

const maxUnread = 1 << 40

func (n *notificationRecord) view() Notification {
	out := Notification{ID: n.ID, Kind: n.Kind, Actor: n.Actor, ProjectID: n.ProjectID, TaskID: n.TaskID,
		CommentID: n.CommentID, Title: n.Title, Excerpt: n.Excerpt, Urgent: n.Urgent, CreatedAt: time.UnixMilli(n.CreatedAt).UTC()}
	if n.ReadAt != 0 {
		t := time.UnixMilli(n.ReadAt).UTC()
		out.ReadAt = &t
	}
	return out
}

func (p NotificationPrefs) channel(kind string) ChannelPrefs {
	switch kind {
	case NotifyMention:
		return p.Mentions
	case NotifyAssigned:
		return p.Assignments
	case NotifyComment:
		return p.Comments
	case NotifyDueSoon:
		return p.DueSoon
	case NotifyStatus:
		return p.StatusChanges
	}
	return ChannelPrefs{}
}

// notify adds a notification for each recipient to ch, leaving out the
// actor, duplicates and accounts that are gone or want neither channel.
func (s *Service) notify(ch *change, v storage.View, recipients []string, n notificationRecord) error {
	seen := map[string]bool{ch.cmd.Actor: true}
	for _, uid := range recipients {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		u, _, err := getRecord[userRecord](v, kUser(uid))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if u.Status != StatusActive {
			continue
		}
		pref := u.Notifications.channel(n.Kind)
		if !pref.InApp && !pref.Email {
			continue
		}
		rec := n
		rec.ID, rec.UserID, rec.Actor, rec.CreatedAt = newID(), uid, ch.cmd.Actor, ch.cmd.At
		if pref.InApp {
			ch.put(kNotification(uid, rec.ID), rec, 1)
			ch.addBounded(kUnread(uid), 1, maxUnread, "unread")
		}
		if pref.Email && s.MailEnabled() {
			ch.put(kPendingMail(uid, rec.ID), rec, 1)
		}
	}
	return nil
}

// follow makes users followers of a task (assignees, the creator,
// commenters and people mentioned follow automatically).
func follow(ch *change, task string, users ...string) {
	for _, u := range users {
		ch.op(storage.Op{Type: storage.OpPut, Key: kFollower(task, u), Version: 1})
	}
}

func (s *Service) followers(v storage.View, task string) ([]string, error) {
	var out []string
	err := v.Scan(kFollowers(task), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		out = append(out, lastPart(k))
		return nil
	})
	return out, err
}

// NotificationList is a page of the inbox with the unread count.
type NotificationList struct {
	Page[Notification]
	Unread int64 `json:"unread"`
}

// ListNotifications pages through the caller's inbox, newest first.
func (s *Service) ListNotifications(ctx context.Context, p Principal, unreadOnly bool, pg PageRequest) (*NotificationList, error) {
	_, v := s.tenant(p.Tenant)
	page, err := scanPage(v, kNotifications(p.UserID), pg, true, func(_ storage.Key, r storage.Record) (*Notification, error) {
		var n notificationRecord
		if err := jsonDecode(r.Value, &n); err != nil {
			return nil, err
		}
		if unreadOnly && n.ReadAt != 0 {
			return nil, nil
		}
		out := n.view()
		return &out, nil
	})
	if err != nil {
		return nil, err
	}
	unread, err := counterValue(v, kUnread(p.UserID))
	if err != nil {
		return nil, err
	}
	return &NotificationList{Page: *page, Unread: unread}, nil
}

// MarkRead marks one notification (or all, with id "") read.
func (s *Service) MarkRead(ctx context.Context, p Principal, id string) error {
	if id != "" && !validID(id) {
		return notFound("notification")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, "notification.read", p.actor())
		now := s.now().UnixMilli()
		mark := func(k storage.Key, r storage.Record) error {
			var n notificationRecord
			if err := jsonDecode(r.Value, &n); err != nil {
				return err
			}
			if n.ReadAt != 0 {
				return nil
			}
			n.ReadAt = now
			ch.expect(k, r.Version)
			ch.put(k, n, r.Version+1)
			ch.addBounded(kUnread(p.UserID), -1, maxUnread, "unread")
			return nil
		}
		if id != "" {
			rec, err := v.Get(kNotification(p.UserID, id))
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return nil, notFound("notification")
				}
				return nil, err
			}
			return ch, mark(kNotification(p.UserID, id), rec)
		}
		return ch, v.Scan(kNotifications(p.UserID), storage.ScanOptions{}, mark)
	})
	return err
}

// SetFollowing follows or unfollows a task.
func (s *Service) SetFollowing(ctx context.Context, p Principal, taskID string, on bool) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		t, _, _, _, err := s.visibleTask(v, p, taskID)
		if err != nil {
			return nil, err
		}
		ch := s.newChange(p.Tenant, "task.follow", p.actor())
		if on {
			follow(ch, t.ID, p.UserID)
		} else {
			ch.del(kFollower(t.ID, p.UserID))
		}
		return ch, nil
	})
	return err
}

// IsFollowing reports whether the caller follows a task.
func (s *Service) IsFollowing(ctx context.Context, p Principal, taskID string) (bool, error) {
	_, v := s.tenant(p.Tenant)
	t, _, _, _, err := s.visibleTask(v, p, taskID)
	if err != nil {
		return false, err
	}
	_, err = v.Get(kFollower(t.ID, p.UserID))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// inWorkHours reports whether t falls inside wh in timezone tz.
func inWorkHours(t time.Time, tz string, wh WorkHours) bool {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	day := int(lt.Weekday())
	if day == 0 {
		day = 7
	}
	if len(wh.Days) > 0 && !slices.Contains(wh.Days, day) {
		return false
	}
	hm := lt.Format("15:04")
	return hm >= wh.Start && hm < wh.End
}

// mailBatchDelay lets notifications gather into one mail.
const mailBatchDelay = 10 * time.Minute

// SendNotificationMail turns each person's pending mail items into one mail
// when the oldest has waited mailBatchDelay and it is inside their work
// hours (urgent items go at once). The mail goes through the outbox. Run it
// on the leader; it is idempotent.
func (s *Service) SendNotificationMail(ctx context.Context) (int, error) {
	if !s.MailEnabled() {
		return 0, nil
	}
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	sent := 0
	now := s.now()
	for _, tenant := range tenants {
		log, v := s.tenant(tenant)
		pending := map[string][]notificationRecord{}
		var users []string
		if err := v.Scan(kPendingMails(), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			var n notificationRecord
			if err := jsonDecode(r.Value, &n); err != nil {
				return err
			}
			if _, ok := pending[n.UserID]; !ok {
				users = append(users, n.UserID)
			}
			pending[n.UserID] = append(pending[n.UserID], n)
			return nil
		}); err != nil {
			return sent, err
		}
		for _, uid := range users {
			items := pending[uid]
			u, _, err := getRecord[userRecord](v, kUser(uid))
			if err != nil {
				continue
			}
			urgent := slices.ContainsFunc(items, func(n notificationRecord) bool { return n.Urgent })
			oldest := items[0].CreatedAt
			due := urgent || (now.UnixMilli()-oldest >= mailBatchDelay.Milliseconds() && inWorkHours(now, u.Timezone, u.WorkHours))
			if !due {
				continue
			}
			_, err = s.commit(ctx, log, func() (*change, error) {
				ch := s.newChange(tenant, "notification.mail", "system")
				d, err := s.mailWorkspace(v)
				if err != nil {
					return nil, err
				}
				d.Name, d.Link = u.Name, s.link("/notifications")
				for _, n := range items {
					ch.expect(kPendingMail(uid, n.ID), 1)
					ch.del(kPendingMail(uid, n.ID))
					d.Lines = append(d.Lines, describeNotification(n))
				}
				return ch, s.enqueueMail(ch, "notifications", u.Email, d)
			})
			if err != nil {
				return sent, err
			}
			sent++
		}
	}
	return sent, nil
}

func describeNotification(n notificationRecord) string {
	what := map[string]string{
		NotifyMention: "mentioned you on", NotifyAssigned: "assigned you", NotifyComment: "commented on",
		NotifyDueSoon: "is due soon:", NotifyStatus: "changed the status of",
	}[n.Kind]
	line := fmt.Sprintf("%s “%s”", what, n.Title)
	if n.Excerpt != "" {
		line += ": " + n.Excerpt
	}
	return strings.TrimSpace(line)
}

// NotifyDueSoon notifies the assignees of live tasks due within the next
// day, once per task and due date. Run it on the leader, hourly.
func (s *Service) NotifyDueSoon(ctx context.Context) (int, error) {
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	now := s.now()
	horizon := now.Add(24 * time.Hour).UTC().Format(time.RFC3339)
	today := now.UTC().Format(time.DateOnly)
	count := 0
	for _, tenant := range tenants {
		log, v := s.tenant(tenant)
		var projects []string
		if err := v.Scan(storage.K("proj"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
			projects = append(projects, lastPart(k))
			return nil
		}); err != nil {
			return count, err
		}
		for _, pid := range projects {
			// The due index sorts dates and date-times as strings; walk it
			// up to the horizon.
			var due []*taskRecord
			err := v.Scan(kIxSort(pid, "due"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
				t, _, err := getRecord[taskRecord](v, kTask(lastPart(k)))
				if err != nil || t.Due == "" {
					return storage.ErrStop
				}
				dk := mustDueKey(t.Due)
				if dk > horizon {
					return storage.ErrStop
				}
				if dk >= today && len(t.Assignees) > 0 {
					due = append(due, t)
				}
				return nil
			})
			if err != nil {
				return count, err
			}
			for _, t := range due {
				if _, err := v.Get(kDueSoonSent(t.ID, t.Due)); err == nil {
					continue
				}
				t := t
				_, err := s.commit(ctx, log, func() (*change, error) {
					ch := s.newChange(tenant, "notification.due_soon", "system")
					ch.expect(kDueSoonSent(t.ID, t.Due), 0)
					ch.put(kDueSoonSent(t.ID, t.Due), map[string]int64{"at": now.UnixMilli()}, 1)
					return ch, s.notify(ch, v, t.Assignees, notificationRecord{Kind: NotifyDueSoon, ProjectID: t.ProjectID, TaskID: t.ID, Title: t.Title, Excerpt: "due " + t.Due, Urgent: t.Priority == "urgent"})
				})
				if err != nil {
					return count, err
				}
				count++
			}
		}
	}
	return count, nil
}
