package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

const maxCommentBody = 64 << 10

type commentRecord struct {
	ID        string   `json:"id"`
	TaskID    string   `json:"task_id"`
	ProjectID string   `json:"project_id"`
	ParentID  string   `json:"parent_id,omitempty"`
	AuthorID  string   `json:"author_id"`
	Body      string   `json:"body"`
	Mentions  []string `json:"mentions,omitempty"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Edited    bool     `json:"edited,omitempty"`
	DeletedAt int64    `json:"deleted_at,omitempty"`
	DeletedBy string   `json:"deleted_by,omitempty"`
}

// Comment is the API view of a comment.
type Comment struct {
	ID        string    `json:"id"`
	TaskID    string    `json:"task_id"`
	ParentID  *string   `json:"parent_id" doc:"The comment this one replies to"`
	AuthorID  string    `json:"author_id"`
	Body      string    `json:"body" doc:"Markdown; mentions are written @[Name](user:<id>)"`
	BodyHTML  string    `json:"body_html" doc:"The body rendered and sanitized"`
	Mentions  []string  `json:"mentions" doc:"IDs of the members mentioned"`
	Edited    bool      `json:"edited"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   uint64    `json:"version"`
}

func (c *commentRecord) view(version uint64) *Comment {
	out := &Comment{
		ID: c.ID, TaskID: c.TaskID, AuthorID: c.AuthorID, Body: c.Body, BodyHTML: RenderMarkdown(c.Body),
		Mentions: nonNil(c.Mentions), Edited: c.Edited, CreatedAt: time.UnixMilli(c.CreatedAt).UTC(),
		UpdatedAt: time.UnixMilli(c.UpdatedAt).UTC(), Version: version,
	}
	if c.ParentID != "" {
		p := c.ParentID
		out.ParentID = &p
	}
	return out
}

func validateBody(body string) (string, error) {
	if strings.TrimSpace(body) == "" {
		return "", invalid("body", "required", "the comment is empty")
	}
	if len(body) > maxCommentBody {
		return "", invalid("body", "too_long", "a comment may have at most %d bytes", maxCommentBody)
	}
	if strings.ContainsRune(body, 0) {
		return "", invalid("body", "invalid_characters", "the comment contains a NUL character")
	}
	return body, nil
}

// mentionedMembers keeps the mentions that name active members of the
// workspace; a mention of anyone else stays plain text.
func (s *Service) mentionedMembers(v storage.View, body string) ([]string, error) {
	var out []string
	for _, id := range Mentions(body) {
		u, _, err := getRecord[userRecord](v, kUser(id))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if u.Status == StatusActive {
			out = append(out, id)
		}
	}
	return out, nil
}

// ListComments lists a task's live comments, oldest first; replies carry
// their parent_id so clients can thread them.
func (s *Service) ListComments(ctx context.Context, p Principal, taskID string, pg PageRequest) (*Page[Comment], error) {
	_, v := s.tenant(p.Tenant)
	t, _, _, _, err := s.visibleTask(v, p, taskID)
	if err != nil {
		return nil, err
	}
	return scanPage(v, kTaskComments(t.ID), pg, false, func(k storage.Key, _ storage.Record) (*Comment, error) {
		c, rec, err := getRecord[commentRecord](v, kComment(lastPart(k)))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if c.DeletedAt != 0 {
			return nil, nil
		}
		return c.view(rec.Version), nil
	})
}

// CreateComment adds a comment (Contributors and Leads of the project).
func (s *Service) CreateComment(ctx context.Context, p Principal, taskID, body, parentID string) (*Comment, error) {
	body, err := validateBody(body)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(p.Tenant)
	var out *Comment
	_, err = s.commit(ctx, log, func() (*change, error) {
		t, trec, _, role, err := s.visibleTask(v, p, taskID)
		if err != nil {
			return nil, err
		}
		if role.rank() < ProjectContributor.rank() {
			return nil, forbidden("your role in this project (%s) does not allow commenting", role)
		}
		if parentID != "" {
			pc, _, err := s.liveComment(v, parentID)
			if err != nil || pc.TaskID != t.ID {
				return nil, invalid("parent_id", "invalid_parent", "no comment %s on this task", parentID)
			}
		}
		mentions, err := s.mentionedMembers(v, body)
		if err != nil {
			return nil, err
		}
		now := s.now().UnixMilli()
		c := commentRecord{
			ID: newID(), TaskID: t.ID, ProjectID: t.ProjectID, ParentID: parentID, AuthorID: p.actor(),
			Body: body, Mentions: mentions, CreatedAt: now, UpdatedAt: now,
		}
		ch := s.newChange(p.Tenant, "comment.create", p.actor())
		// The task's exact version, not just its existence: a comment that
		// landed after the task went to the trash would count in the status
		// facts' roll-ups of a task the delete had already taken out of them.
		ch.expect(kTask(t.ID), trec.Version)
		ch.put(kComment(c.ID), c, 1)
		ch.index(kTaskComments(t.ID).Add(c.ID))
		s.activity(ch, activityInput{Kind: "comment.created", TargetKind: "comment", TargetID: c.ID, ProjectID: t.ProjectID, TaskID: t.ID, After: excerpt(body)})
		for _, m := range mentions {
			s.activity(ch, activityInput{Kind: "comment.mentioned", TargetKind: "comment", TargetID: c.ID, ProjectID: t.ProjectID, TaskID: t.ID, Field: "mentions", After: m})
		}
		fol, err := s.followers(v, t.ID)
		if err != nil {
			return nil, err
		}
		urgent := t.Priority == "urgent"
		base := notificationRecord{ProjectID: t.ProjectID, TaskID: t.ID, CommentID: c.ID, Title: t.Title, Excerpt: excerpt(body), Urgent: urgent}
		mention, comment := base, base
		mention.Kind, comment.Kind = NotifyMention, NotifyComment
		if err := s.notify(ch, v, mentions, mention); err != nil {
			return nil, err
		}
		// Followers hear of the comment, except those it already mentioned.
		fol = slices.DeleteFunc(fol, func(u string) bool { return slices.Contains(mentions, u) })
		if err := s.notify(ch, v, fol, comment); err != nil {
			return nil, err
		}
		follow(ch, t.ID, p.actor())
		follow(ch, t.ID, mentions...)
		out = c.view(1)
		return ch, nil
	})
	return out, err
}

func excerpt(s string) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) > 140 {
		return string(r[:140]) + "…"
	}
	return string(r)
}

func (s *Service) liveComment(v storage.View, id string) (*commentRecord, storage.Record, error) {
	if !validID(id) {
		return nil, storage.Record{}, notFound("comment")
	}
	c, rec, err := getRecord[commentRecord](v, kComment(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, notFound("comment")
		}
		return nil, rec, err
	}
	if c.DeletedAt != 0 {
		return nil, rec, notFound("comment")
	}
	return c, rec, nil
}

// visibleComment loads a live comment on a task the caller can see.
func (s *Service) visibleComment(v storage.View, p Principal, id string) (*commentRecord, storage.Record, ProjectRole, error) {
	c, rec, err := s.liveComment(v, id)
	if err != nil {
		return nil, rec, "", err
	}
	_, _, _, role, err := s.visibleTask(v, p, c.TaskID)
	if err != nil {
		return nil, rec, "", notFound("comment")
	}
	return c, rec, role, nil
}

// GetComment returns one comment.
func (s *Service) GetComment(ctx context.Context, p Principal, id string) (*Comment, error) {
	_, v := s.tenant(p.Tenant)
	c, rec, _, err := s.visibleComment(v, p, id)
	if err != nil {
		return nil, err
	}
	return c.view(rec.Version), nil
}

// UpdateComment edits a comment; only its author may.
func (s *Service) UpdateComment(ctx context.Context, p Principal, id, body string, ifMatch uint64) (*Comment, error) {
	body, err := validateBody(body)
	if err != nil {
		return nil, err
	}
	log, v := s.tenant(p.Tenant)
	var out *Comment
	_, err = s.commit(ctx, log, func() (*change, error) {
		c, rec, _, err := s.visibleComment(v, p, id)
		if err != nil {
			return nil, err
		}
		if c.AuthorID != p.actor() {
			return nil, forbidden("only its author can edit a comment")
		}
		if ifMatch != 0 && ifMatch != rec.Version {
			return nil, errStale
		}
		mentions, err := s.mentionedMembers(v, body)
		if err != nil {
			return nil, err
		}
		ch := s.newChange(p.Tenant, "comment.update", p.actor())
		ch.expect(kComment(id), rec.Version)
		before := c.Body
		c.Body, c.Mentions, c.Edited, c.UpdatedAt = body, mentions, true, s.now().UnixMilli()
		ch.put(kComment(id), c, rec.Version+1)
		s.diffActivity(ch, "comment", id, c.ProjectID, c.TaskID, map[string][2]any{"body": {excerpt(before), excerpt(body)}})
		out = c.view(rec.Version + 1)
		return ch, nil
	})
	return out, err
}

// DeleteComment moves a comment to the trash: its author, or the
// project's Lead (Owners and Admins included) for moderation.
func (s *Service) DeleteComment(ctx context.Context, p Principal, id string, ifMatch uint64) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		c, rec, role, err := s.visibleComment(v, p, id)
		if err != nil {
			return nil, err
		}
		if c.AuthorID != p.actor() && role != ProjectLead {
			return nil, forbidden("only its author or the project's Lead can delete a comment")
		}
		if ifMatch != 0 && ifMatch != rec.Version {
			return nil, errStale
		}
		now := s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "comment.delete", p.actor())
		ch.expect(kComment(id), rec.Version)
		c.DeletedAt, c.DeletedBy = now, p.actor()
		ch.put(kComment(id), c, rec.Version+1)
		ch.put(kTrash("comment", id), trashRecord{Kind: "comment", ID: id, Title: excerpt(c.Body), ProjectID: c.ProjectID, DeletedAt: now, DeletedBy: p.actor()}, 1)
		s.activity(ch, activityInput{Kind: "comment.deleted", TargetKind: "comment", TargetID: id, ProjectID: c.ProjectID, TaskID: c.TaskID})
		return ch, nil
	})
	return err
}

// RestoreComment brings a deleted comment back (its author or the Lead).
func (s *Service) RestoreComment(ctx context.Context, p Principal, id string) (*Comment, error) {
	if !validID(id) {
		return nil, notFound("deleted comment")
	}
	log, v := s.tenant(p.Tenant)
	var out *Comment
	_, err := s.commit(ctx, log, func() (*change, error) {
		c, rec, err := getRecord[commentRecord](v, kComment(id))
		if err != nil || c.DeletedAt == 0 {
			return nil, notFound("deleted comment")
		}
		_, _, _, role, err := s.visibleTask(v, p, c.TaskID)
		if err != nil {
			return nil, notFound("deleted comment")
		}
		if c.AuthorID != p.actor() && role != ProjectLead {
			return nil, forbidden("only its author or the project's Lead can restore a comment")
		}
		ch := s.newChange(p.Tenant, "comment.restore", p.actor())
		ch.expect(kComment(id), rec.Version)
		c.DeletedAt, c.DeletedBy = 0, ""
		ch.put(kComment(id), c, rec.Version+1)
		ch.del(kTrash("comment", id))
		s.activity(ch, activityInput{Kind: "comment.restored", TargetKind: "comment", TargetID: id, ProjectID: c.ProjectID, TaskID: c.TaskID})
		out = c.view(rec.Version + 1)
		return ch, nil
	})
	return out, err
}
