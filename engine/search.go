package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Full-text search. The engine owns the Searcher interface; the index
// package implements it (cmd adapts *index.Index through
// index/searchadapter), fed from applied commands on every node. The
// engine decides who may see what: it resolves the projects the caller can
// see and hands them to the searcher as the mandatory allowed set, then
// checks every hit against the store once more before returning it.

// SearchQuery is one search as the engine asks it of the Searcher.
type SearchQuery struct {
	Text string
	// Allowed is the set of project IDs the caller may see; a hit outside
	// it must never be returned, and an empty set returns nothing.
	Allowed   []string
	Projects  []string
	Assignees []string
	Statuses  []string
	Tags      []string
	DueBefore string
	DueAfter  string
	Kinds     []string
	// Me is the caller's member ID (assignee:me).
	Me string
	// ResolveUser maps an assignee value (a member ID, name or email) to
	// member IDs.
	ResolveUser func(value string) []string
	Limit       int
	Cursor      string
}

// SearchHit is one hit as the Searcher returns it.
type SearchHit struct {
	ID         string
	Kind       string // task, project or comment
	ProjectID  string
	TaskID     string // a comment's task
	Score      float64
	Highlights map[string][]string
}

// SearchResult is one page of hits.
type SearchResult struct {
	Hits       []SearchHit
	Total      uint64
	NextCursor string
}

// Searcher searches one workspace's tasks, projects and comments. Errors
// it means to return carry Code() string and Unavailable() bool (and
// RetryAfter() time.Duration when unavailable), which Search maps to
// engine errors.
type Searcher interface {
	Search(ctx context.Context, tenant string, q SearchQuery) (SearchResult, error)
	// Check reports whether text parses in the query syntax.
	Check(text string) error
	// Rebuild builds the tenant's index again from the store and swaps it
	// in once complete; searches are answered meanwhile. It returns when
	// done or when ctx ends (the rebuild then carries on).
	Rebuild(ctx context.Context, tenant string) error
}

type searcherBox struct{ s Searcher }

// SetSearcher installs the search index (before the service serves; nil
// turns search off). Deps.Searcher does the same at construction.
func (s *Service) SetSearcher(x Searcher) {
	s.searcher.Store(&searcherBox{x})
}

func (s *Service) getSearcher() Searcher {
	if b := s.searcher.Load(); b != nil {
		return b.s
	}
	return nil
}

// SearchInput is a search request.
type SearchInput struct {
	Text      string
	Projects  []string
	Assignees []string
	Statuses  []string
	Tags      []string
	DueBefore string
	DueAfter  string
	Kinds     []string
	Limit     int
	Cursor    string
}

// SearchItem is one hit of the API.
type SearchItem struct {
	ID        string  `json:"id"`
	Kind      string  `json:"kind" enum:"task,project,comment"`
	ProjectID string  `json:"project_id"`
	TaskID    string  `json:"task_id,omitempty" doc:"The task a comment belongs to"`
	Key       string  `json:"key,omitempty" doc:"The task's human key (WEB-12), or the project's key"`
	Title     string  `json:"title" doc:"The task's title, the project's name, or for a comment its task's title"`
	Status    string  `json:"status,omitempty" doc:"A task's status name"`
	Score     float64 `json:"score" doc:"Relevance × recency; 0 for filter-only searches (newest first)"`
	// Highlights holds, per field (title, body), fragments with the matches
	// in <mark> and everything else HTML-escaped.
	Highlights map[string][]string `json:"highlights,omitempty" doc:"Per field (title, body): fragments with the matches in <mark>, everything else HTML-escaped"`
	UpdatedAt  time.Time           `json:"updated_at"`
}

// SearchPage is one page of search results.
type SearchPage struct {
	Items      []SearchItem `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// Search limits.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
	maxSearchQuery     = 1000
)

var errSearchOff = &Error{Code: "search_unavailable", Message: "search is not available on this server", Err: ErrUnavailable}

// searchError maps a Searcher error to an engine error.
func searchError(err error) error {
	var ie interface {
		Code() string
		Unavailable() bool
	}
	if !errors.As(err, &ie) {
		return err
	}
	if ie.Unavailable() {
		e := &Error{Code: ie.Code(), Message: strings.TrimPrefix(err.Error(), "index: "), Err: ErrUnavailable}
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			e.Details = map[string]any{"retry_after": int((ra.RetryAfter() + time.Second - 1) / time.Second)}
		}
		return e
	}
	field := "q"
	if ie.Code() == "invalid_cursor" {
		field = "cursor"
	}
	return &Error{Code: ie.Code(), Field: field, Message: strings.TrimPrefix(err.Error(), "index: "), Err: ErrBadRequest}
}

// visibleProjects returns the live projects the caller may see, by ID.
func (s *Service) visibleProjects(v storage.View, p Principal) (map[string]*projectRecord, error) {
	out := map[string]*projectRecord{}
	err := v.Scan(storage.K("proj"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var pr projectRecord
		if err := jsonDecode(r.Value, &pr); err != nil {
			return err
		}
		if pr.DeletedAt != 0 {
			return nil
		}
		_, ok, err := projectRole(v, p, &pr)
		if err != nil || !ok {
			return err
		}
		out[pr.ID] = &pr
		return nil
	})
	return out, err
}

// userResolver maps an assignee value to member IDs: an ID stands for
// itself; otherwise members whose email or name equals it (ignoring case).
func userResolver(v storage.View) func(string) []string {
	var users []userRecord
	loaded := false
	return func(value string) []string {
		value = strings.TrimSpace(value)
		if validID(value) {
			return []string{value}
		}
		if !loaded {
			loaded = true
			_ = v.Scan(storage.K("user"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
				var u userRecord
				if err := jsonDecode(r.Value, &u); err == nil {
					users = append(users, u)
				}
				return nil
			})
		}
		var ids []string
		for _, u := range users {
			if strings.EqualFold(u.Email, value) || strings.EqualFold(u.Name, value) {
				ids = append(ids, u.ID)
			}
		}
		return ids
	}
}

// Search runs a full-text search over the caller's workspace: tasks,
// projects and comments in the projects the caller may see, and nothing
// else. See docs/SEARCH.md for the query syntax.
func (s *Service) Search(ctx context.Context, p Principal, in SearchInput) (*SearchPage, error) {
	if p.Tenant == "" {
		return nil, forbidden("search runs inside a workspace, as one of its members")
	}
	sr := s.getSearcher()
	if sr == nil {
		return nil, errSearchOff
	}
	switch {
	case in.Limit == 0:
		in.Limit = DefaultSearchLimit
	case in.Limit < 1 || in.Limit > MaxSearchLimit:
		return nil, &Error{Code: "invalid_limit", Field: "limit", Message: fmt.Sprintf("limit must be between 1 and %d", MaxSearchLimit), Err: ErrBadRequest}
	}
	if len(in.Text) > maxSearchQuery {
		return nil, &Error{Code: "invalid_query", Field: "q", Message: fmt.Sprintf("the query is longer than %d bytes", maxSearchQuery), Err: ErrBadRequest}
	}
	_, v := s.tenant(p.Tenant)
	projects, err := s.visibleProjects(v, p)
	if err != nil {
		return nil, err
	}
	allowed := make([]string, 0, len(projects))
	for id := range projects {
		allowed = append(allowed, id)
	}
	q := SearchQuery{
		Text: in.Text, Allowed: allowed, Projects: in.Projects, Assignees: in.Assignees, Statuses: in.Statuses,
		Tags: in.Tags, DueBefore: in.DueBefore, DueAfter: in.DueAfter, Kinds: in.Kinds,
		Me: p.UserID, ResolveUser: userResolver(v), Limit: in.Limit, Cursor: in.Cursor,
	}
	res, err := sr.Search(ctx, p.Tenant, q)
	if err != nil {
		return nil, searchError(err)
	}
	out := &SearchPage{Items: make([]SearchItem, 0, len(res.Hits)), NextCursor: res.NextCursor}
	for _, h := range res.Hits {
		// The index confines hits to the allowed projects; the store has
		// the last word (the index may lag a delete or a move).
		item, ok := s.searchItem(v, projects, h)
		if ok {
			out.Items = append(out.Items, item)
		}
	}
	return out, nil
}

// searchItem reads a hit's record as it is now; ok is false when it is
// gone or outside the caller's projects.
func (s *Service) searchItem(v storage.View, projects map[string]*projectRecord, h SearchHit) (SearchItem, bool) {
	item := SearchItem{ID: h.ID, Kind: h.Kind, Score: h.Score, Highlights: h.Highlights}
	task := func(id string) (*taskRecord, *projectRecord, storage.Record, bool) {
		t, rec, err := getRecord[taskRecord](v, kTask(id))
		if err != nil || t.DeletedAt != 0 {
			return nil, nil, rec, false
		}
		pr, ok := projects[t.ProjectID]
		return t, pr, rec, ok
	}
	switch h.Kind {
	case "task":
		t, pr, rec, ok := task(h.ID)
		if !ok {
			return item, false
		}
		st, _ := pr.status(t.StatusID)
		item.ProjectID, item.Key, item.Title, item.Status = pr.ID, fmt.Sprintf("%s-%d", pr.Key, rec.Stamp), t.Title, st.Name
		item.UpdatedAt = time.UnixMilli(t.UpdatedAt).UTC()
	case "project":
		pr, ok := projects[h.ID]
		if !ok {
			return item, false
		}
		item.ProjectID, item.Key, item.Title = pr.ID, pr.Key, pr.Name
		item.UpdatedAt = time.UnixMilli(pr.UpdatedAt).UTC()
	case "comment":
		c, _, err := getRecord[commentRecord](v, kComment(h.ID))
		if err != nil || c.DeletedAt != 0 {
			return item, false
		}
		t, pr, rec, ok := task(c.TaskID)
		if !ok {
			return item, false
		}
		item.ProjectID, item.TaskID, item.Key, item.Title = pr.ID, t.ID, fmt.Sprintf("%s-%d", pr.Key, rec.Stamp), t.Title
		item.UpdatedAt = time.UnixMilli(c.UpdatedAt).UTC()
	default:
		return item, false
	}
	return item, true
}

// IndexRebuild is the outcome of one workspace's index rebuild.
type IndexRebuild struct {
	Workspace string `json:"workspace" doc:"The workspace's slug"`
	ID        string `json:"id"`
	Status    string `json:"status" enum:"rebuilt,running,failed" doc:"running: still going when the request ended; it carries on in the background"`
	Error     string `json:"error,omitempty"`
}

// RebuildSearchIndex rebuilds this node's search index of one workspace
// (by slug) or of every workspace (slug ""), from this node's store.
// Searches keep being answered meanwhile, by the previous generation of
// the index. Each node keeps its own index: in a cluster, ask every node.
// Platform operator only.
func (s *Service) RebuildSearchIndex(ctx context.Context, p Principal, slug string) ([]IndexRebuild, error) {
	if err := requireOperator(p); err != nil {
		return nil, err
	}
	sr := s.getSearcher()
	if sr == nil {
		return nil, errSearchOff
	}
	var targets []IndexRebuild
	_, sys := s.sys()
	if slug != "" {
		id, err := s.workspaceBySlug(slug)
		if err != nil {
			return nil, err
		}
		targets = append(targets, IndexRebuild{Workspace: slug, ID: id})
	} else if err := sys.Scan(sysWorkspaces(), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var e workspaceEntry
		if err := jsonDecode(r.Value, &e); err != nil {
			return err
		}
		targets = append(targets, IndexRebuild{Workspace: e.Slug, ID: e.ID})
		return nil
	}); err != nil {
		return nil, err
	}
	// Every rebuild is asked at once; the index bounds how many run at a
	// time, and those still running when ctx ends carry on.
	done := make(chan int, len(targets))
	for i := range targets {
		go func() {
			err := sr.Rebuild(ctx, targets[i].ID)
			switch {
			case err == nil:
				targets[i].Status = "rebuilt"
			case ctx.Err() != nil:
				targets[i].Status = "running"
			default:
				targets[i].Status, targets[i].Error = "failed", strings.TrimPrefix(err.Error(), "index: ")
			}
			done <- i
		}()
	}
	for range targets {
		<-done
	}
	return targets, nil
}
