package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Live updates: every node applies every committed command (DESIGN rule 6:
// the log is the event bus), so every node can turn what it applies into
// events for its own websocket clients. EventsFrom does that, from the
// command alone, without reading the store: the typed activity records and
// the inbox items the command wrote are its payload. Who may see which part
// of an event is decided per connection by an EventFilter, with the same
// rules as the activity feeds.

// Event is one applied command of a workspace, as the realtime hub pushes
// it. Seq is the workspace's event sequence (advanced inside Apply for every
// command of the workspace, so events of one workspace are totally ordered
// and a client resumes from the last Seq it saw).
type Event struct {
	Tenant  string        `json:"-"`
	Seq     uint64        `json:"seq"`
	Kind    string        `json:"kind" doc:"The command, e.g. task.update"`
	Actor   string        `json:"actor"`
	At      time.Time     `json:"at"`
	Changes []EventChange `json:"changes,omitempty"`

	// Notifications are the inbox items the command wrote; each goes only
	// to its recipient's user topic.
	Notifications []EventNotification `json:"-"`
	// Unread is the new unread count of each recipient whose count moved.
	Unread map[string]int64 `json:"-"`
	// Revoked lists the sessions and API keys the command revoked: sockets
	// opened with them close at once.
	Revoked []string `json:"-"`
	// Access is set when the command changed who may see what (accounts,
	// roles, project membership or visibility): connections re-check their
	// principal and forget cached visibility.
	Access bool `json:"-"`
}

// EventChange is one typed change, as in the activity feed.
type EventChange struct {
	ID         string          `json:"id" doc:"The activity entry's ID"`
	Kind       string          `json:"kind" doc:"e.g. task.created, task.updated, comment.created"`
	TargetKind string          `json:"target_kind"`
	TargetID   string          `json:"target_id"`
	ProjectID  string          `json:"project_id,omitempty"`
	TaskID     string          `json:"task_id,omitempty"`
	Field      string          `json:"field,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}

// EventNotification is an inbox item written (or marked read) by the
// command, for UserID only.
type EventNotification struct {
	UserID string `json:"-"`
	Notification
}

// Deliverable reports whether the event carries anything for a client (as
// opposed to revocations only).
func (e *Event) Deliverable() bool { return len(e.Changes) > 0 || len(e.Notifications) > 0 }

var (
	pfxActivity = storage.K("act")
	pfxNotif    = storage.K("ntf")
	pfxUnread   = storage.K("cnt", "unread")
	pfxSession  = storage.K("sess")
	pfxAPIKey   = storage.K("apik")
	pfxUser     = storage.K("user")
	pfxProject  = storage.K("proj")
	pfxProjMem  = storage.K("pm")
)

// EventsFrom turns one applied command into the event of its workspace. It
// answers false for platform commands and for commands that wrote no
// activity, no inbox item and revoked nothing (sign-ins, token refreshes,
// last-use stamps): they advance the workspace's sequence but tell clients
// nothing. It reads nothing but the command and its result, so the store's
// observer can call it cheaply for every applied command.
func EventsFrom(a storage.Applied) (Event, bool) {
	cmd := a.Command
	if cmd == nil || cmd.Tenant == "" || a.Result.Seq == 0 {
		return Event{}, false
	}
	ev := Event{Tenant: cmd.Tenant, Seq: a.Result.Seq, Kind: cmd.Kind, Actor: cmd.Actor, At: time.UnixMilli(cmd.At).UTC()}
	for i, op := range cmd.Ops {
		if op.Space != storage.SpaceTenant {
			continue
		}
		key := op.Key
		switch op.Type {
		case storage.OpPut:
			switch {
			case bytes.HasPrefix(key, pfxActivity):
				var r activityRecord
				if json.Unmarshal(op.Value, &r) != nil || r.ID == "" {
					continue
				}
				ev.Changes = append(ev.Changes, EventChange{
					ID: r.ID, Kind: r.Kind, TargetKind: r.TargetKind, TargetID: r.TargetID,
					ProjectID: r.ProjectID, TaskID: r.TaskID, Field: r.Field, Before: r.Before, After: r.After,
				})
			case bytes.HasPrefix(key, pfxNotif):
				var r notificationRecord
				if json.Unmarshal(op.Value, &r) != nil || r.UserID == "" {
					continue
				}
				ev.Notifications = append(ev.Notifications, EventNotification{UserID: r.UserID, Notification: r.view()})
			case bytes.HasPrefix(key, pfxSession), bytes.HasPrefix(key, pfxAPIKey):
				var r struct {
					ID        string `json:"id"`
					RevokedAt int64  `json:"revoked_at"`
				}
				if json.Unmarshal(op.Value, &r) == nil && r.RevokedAt != 0 && r.ID != "" {
					ev.Revoked = append(ev.Revoked, r.ID)
				}
			case bytes.HasPrefix(key, pfxUser), bytes.HasPrefix(key, pfxProject), bytes.HasPrefix(key, pfxProjMem):
				ev.Access = true
			}
		case storage.OpDelete:
			switch {
			case bytes.HasPrefix(key, pfxSession), bytes.HasPrefix(key, pfxAPIKey):
				if id := lastPart(key); id != "" {
					ev.Revoked = append(ev.Revoked, id)
				}
			case bytes.HasPrefix(key, pfxUser), bytes.HasPrefix(key, pfxProject), bytes.HasPrefix(key, pfxProjMem):
				ev.Access = true
			}
		case storage.OpDeleteRange:
			ev.Access = true
		case storage.OpAdd:
			if bytes.HasPrefix(key, pfxUnread) && i < len(a.Result.Values) {
				if user := lastPart(key); user != "" {
					if ev.Unread == nil {
						ev.Unread = map[string]int64{}
					}
					ev.Unread[user] = a.Result.Values[i]
				}
			}
		}
	}
	if !ev.Deliverable() && len(ev.Revoked) == 0 {
		return Event{}, false
	}
	return ev, true
}

// Topic kinds.
const (
	TopicWorkspace = "workspace"
	TopicProject   = "project"
	TopicTask      = "task"
	TopicUser      = "user"
)

// Topic is what a live-update client subscribes to: the workspace, one
// project, one task, or the caller's own inbox.
type Topic struct {
	Kind string
	ID   string
}

func (t Topic) String() string {
	if t.Kind == TopicWorkspace {
		return TopicWorkspace
	}
	return t.Kind + ":" + t.ID
}

// AuthorizeTopic parses a topic ("workspace", "project:<id>",
// "task:<id or key>", "user:me") and checks that p may follow it. A project
// or task of another workspace, or one p may not see, is not found, exactly
// as on the REST routes; a user topic other than the caller's own is not
// found either. The answer is the canonical topic (task keys resolved to
// IDs, user:me to the caller's ID).
func (s *Service) AuthorizeTopic(ctx context.Context, p Principal, topic string) (Topic, error) {
	if p.Operator || p.Tenant == "" || p.UserID == "" {
		return Topic{}, forbidden("live updates are for workspace accounts")
	}
	kind, id, _ := strings.Cut(topic, ":")
	switch kind {
	case TopicWorkspace:
		if id != "" {
			break
		}
		return Topic{Kind: TopicWorkspace}, nil
	case TopicProject:
		_, v := s.tenant(p.Tenant)
		pr, _, err := s.visibleProject(v, p, id)
		if err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicProject, ID: pr.ID}, nil
	case TopicTask:
		_, v := s.tenant(p.Tenant)
		t, _, _, _, err := s.visibleTask(v, p, id)
		if err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicTask, ID: t.ID}, nil
	case TopicUser:
		if id != "me" && id != p.UserID {
			return Topic{}, notFound("user")
		}
		return Topic{Kind: TopicUser, ID: p.UserID}, nil
	}
	return Topic{}, invalid("topics", "invalid_topic", "a topic is workspace, project:<id>, task:<id> or user:me")
}

// Revalidate re-reads what a long-lived connection was opened with: the
// session (not revoked, not expired) or the API key (not revoked, not
// expired), and the account (still active; its role as it is now). A socket
// outlives its access token but never its session: the realtime hub calls
// this periodically and whenever a command revokes a session, so logout,
// revocation and deactivation close sockets too.
func (s *Service) Revalidate(ctx context.Context, p Principal) (Principal, error) {
	if p.Operator || !validID(p.Tenant) || !validID(p.UserID) {
		return Principal{}, errBadToken
	}
	if _, err := s.workspaceRecord(p.Tenant); err != nil {
		return Principal{}, errBadToken
	}
	// A ticket fetched inside the workspace's allowlist is no pass from
	// outside it.
	if err := s.ipAllowed(ctx, p.Tenant); err != nil {
		return Principal{}, err
	}
	_, v := s.tenant(p.Tenant)
	now := s.now().UnixMilli()
	if p.APIKeyID != "" {
		r, _, err := getRecord[apiKeyRecord](v, kAPIKey(p.APIKeyID))
		if err != nil || r.RevokedAt != 0 || r.UserID != p.UserID || (r.ExpiresAt != 0 && now >= r.ExpiresAt) {
			return Principal{}, errBadToken
		}
		u, _, err := getRecord[userRecord](v, kUser(r.UserID))
		if err != nil || u.Status != StatusActive {
			return Principal{}, errBadToken
		}
		return Principal{Tenant: p.Tenant, UserID: u.ID, Role: u.Role, APIKeyID: r.ID, Scopes: r.Scopes, Projects: r.Projects}, nil
	}
	if !validID(p.SessionID) {
		return Principal{}, errBadToken
	}
	sess, _, err := getRecord[sessionRecord](v, kSession(p.SessionID))
	if err != nil || sess.RevokedAt != 0 || sess.UserID != p.UserID || now >= sess.ExpiresAt {
		return Principal{}, errBadToken
	}
	u, _, err := getRecord[userRecord](v, kUser(p.UserID))
	if err != nil || u.Status != StatusActive {
		return Principal{}, errBadToken
	}
	enrolOnly, err := s.mfaEnrolmentOnly(p.Tenant, u)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Tenant: p.Tenant, UserID: u.ID, Role: u.Role, SessionID: sess.ID, MFAEnrolmentOnly: enrolOnly}, nil
}

// EventSeq is the workspace's event sequence as this node's store holds it
// now: the Seq of the last command applied in it.
func (s *Service) EventSeq(tenant string) (uint64, error) {
	if !validID(tenant) {
		return 0, notFound("workspace")
	}
	_, v := s.tenant(tenant)
	n, err := counterValue(v, storage.TenantSeqKey())
	if err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// EventFilter decides, for one principal, which parts of events it may see,
// with the rules of WorkspaceActivity: a change in a project only if the
// project is visible to the principal (a project in the trash stays visible
// to those who could see it, so its deletion reaches them; a purged one to
// nobody), a
// workspace-level change (people, settings) to everyone but Guests, an inbox
// item only to its recipient. It remembers its answers per project; Reset
// forgets them (after a change of access). It is not safe for concurrent
// use.
type EventFilter struct {
	s       *Service
	p       Principal
	visible map[string]bool
}

// NewEventFilter makes a filter for p.
func (s *Service) NewEventFilter(p Principal) *EventFilter {
	return &EventFilter{s: s, p: p, visible: map[string]bool{}}
}

// Reset forgets cached answers and, when p is set, changes the principal.
func (f *EventFilter) Reset(p *Principal) {
	if p != nil {
		f.p = *p
	}
	clear(f.visible)
}

// Principal is the principal the filter decides for.
func (f *EventFilter) Principal() Principal { return f.p }

// ProjectVisible reports whether the principal may see events of project id.
func (f *EventFilter) ProjectVisible(id string) bool {
	if ok, seen := f.visible[id]; seen {
		return ok
	}
	ok := f.projectVisible(id)
	if len(f.visible) >= 10_000 {
		clear(f.visible)
	}
	f.visible[id] = ok
	return ok
}

func (f *EventFilter) projectVisible(id string) bool {
	p := f.p
	if !validID(id) || p.Tenant == "" {
		return false
	}
	if len(p.Projects) > 0 && !slices.Contains(p.Projects, id) {
		return false
	}
	_, v := f.s.tenant(p.Tenant)
	pr, _, err := getRecord[projectRecord](v, kProject(id))
	if err != nil {
		// Not in this workspace (or purged since): nobody sees it.
		return false
	}
	_, ok, err := projectRole(v, p, pr)
	return err == nil && ok
}

// ChangeVisible reports whether the principal may see one change.
func (f *EventFilter) ChangeVisible(c *EventChange) bool {
	if c.ProjectID != "" {
		return f.ProjectVisible(c.ProjectID)
	}
	return f.p.Role != RoleGuest
}

// Matches reports whether a change belongs to topic t.
func (c *EventChange) Matches(t Topic) bool {
	switch t.Kind {
	case TopicWorkspace:
		return true
	case TopicProject:
		return c.ProjectID == t.ID
	case TopicTask:
		return c.TaskID == t.ID
	}
	return false
}

// Select returns the parts of ev that belong to one of topics and that the
// principal may see: the changes, the principal's own inbox items (when
// topics include its user topic) and its unread count. ok is false when
// nothing is left, and always for an event of another workspace.
func (f *EventFilter) Select(ev *Event, topics []Topic) (changes []EventChange, notes []Notification, unread *int64, ok bool) {
	if ev.Tenant == "" || ev.Tenant != f.p.Tenant || f.p.UserID == "" {
		return nil, nil, nil, false
	}
	userTopic := slices.ContainsFunc(topics, func(t Topic) bool { return t.Kind == TopicUser && t.ID == f.p.UserID })
	for i := range ev.Changes {
		c := &ev.Changes[i]
		if slices.ContainsFunc(topics, c.Matches) && f.ChangeVisible(c) {
			changes = append(changes, *c)
		}
	}
	if userTopic {
		for _, n := range ev.Notifications {
			if n.UserID == f.p.UserID {
				notes = append(notes, n.Notification)
			}
		}
		if n, has := ev.Unread[f.p.UserID]; has {
			unread = &n
		}
	}
	return changes, notes, unread, len(changes) > 0 || len(notes) > 0 || unread != nil
}

// EventSink receives the events of every workspace in log order: Publish
// for an event, Advance for a workspace command that moved the sequence
// without one (so the sink can tell a quiet stretch from a hole). Neither
// may block: they run on the store's observer goroutine.
type EventSink interface {
	Publish(Event)
	Advance(tenant string, seq uint64)
}

// ObserveEvents is the store observer that feeds sink: register it with
// storage.Store.Observe on every node.
func ObserveEvents(sink EventSink) storage.Observer {
	return func(batch []storage.Applied) {
		for _, a := range batch {
			if ev, ok := EventsFrom(a); ok {
				sink.Publish(ev)
			} else if a.Command != nil && a.Command.Tenant != "" && a.Result.Seq != 0 {
				sink.Advance(a.Command.Tenant, a.Result.Seq)
			}
		}
	}
}
