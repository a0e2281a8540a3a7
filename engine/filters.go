package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Saved filters: a named search query (docs/SEARCH.md syntax), private to
// its creator or shared with the workspace. Running one is a search as the
// caller, so a shared filter never shows anyone more than they may see.

type filterRecord struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Query     string `json:"query"`
	Shared    bool   `json:"shared"`
	CreatedBy string `json:"created_by"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

// SavedFilter is the API view of a saved filter.
type SavedFilter struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Query     string    `json:"query" doc:"A search query (GET /api/v1/search?q=)"`
	Shared    bool      `json:"shared" doc:"Visible to the whole workspace; otherwise to its creator only"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Version   uint64    `json:"version"`
}

func (f *filterRecord) view(version uint64) *SavedFilter {
	return &SavedFilter{ID: f.ID, Name: f.Name, Query: f.Query, Shared: f.Shared, CreatedBy: f.CreatedBy,
		CreatedAt: time.UnixMilli(f.CreatedAt).UTC(), Version: version}
}

// SavedFilterInput creates a saved filter.
type SavedFilterInput struct {
	Name   string
	Query  string
	Shared bool
}

// maxFiltersPerUser bounds one member's saved filters.
const maxFiltersPerUser = 100

// CreateFilter saves a filter. Everyone may save private filters; Guests
// may not share one with the workspace.
func (s *Service) CreateFilter(ctx context.Context, p Principal, in SavedFilterInput) (*SavedFilter, error) {
	if p.Operator || p.UserID == "" {
		return nil, forbidden("only members of the workspace save filters")
	}
	name, err := validateName("name", in.Name, 100)
	if err != nil {
		return nil, err
	}
	query := strings.TrimSpace(in.Query)
	if query == "" {
		return nil, invalid("query", "required", "query must not be empty")
	}
	if len(query) > maxSearchQuery {
		return nil, invalid("query", "too_long", "query may have at most %d bytes", maxSearchQuery)
	}
	if sr := s.getSearcher(); sr != nil {
		if err := sr.Check(query); err != nil {
			var ie interface{ Code() string }
			if errors.As(err, &ie) {
				return nil, invalid("query", ie.Code(), "%s", strings.TrimPrefix(err.Error(), "index: "))
			}
			return nil, err
		}
	}
	if in.Shared && p.Role == RoleGuest {
		return nil, forbidden("Guests cannot share filters with the workspace")
	}
	log, v := s.tenant(p.Tenant)
	mine := 0
	if err := v.Scan(storage.K("filter"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var f filterRecord
		if err := jsonDecode(r.Value, &f); err != nil {
			return err
		}
		if f.CreatedBy == p.UserID {
			mine++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if mine >= maxFiltersPerUser {
		return nil, conflict("too_many_filters", "a member may save at most %d filters", maxFiltersPerUser)
	}
	now := s.now().UnixMilli()
	f := &filterRecord{ID: newID(), Name: name, Query: query, Shared: in.Shared, CreatedBy: p.UserID, CreatedAt: now, UpdatedAt: now}
	_, err = s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, "filter.create", p.actor())
		ch.expect(kFilter(f.ID), 0)
		ch.put(kFilter(f.ID), f, 1)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return f.view(1), nil
}

// filterVisible: shared filters are the workspace's; private ones their
// creator's.
func filterVisible(p Principal, f *filterRecord) bool {
	return f.Shared || f.CreatedBy == p.UserID
}

// ListFilters lists the caller's own filters and the workspace's shared
// ones, oldest first.
func (s *Service) ListFilters(ctx context.Context, p Principal, pg PageRequest) (*Page[SavedFilter], error) {
	_, v := s.tenant(p.Tenant)
	return scanPage(v, storage.K("filter"), pg, false, func(_ storage.Key, r storage.Record) (*SavedFilter, error) {
		var f filterRecord
		if err := jsonDecode(r.Value, &f); err != nil {
			return nil, err
		}
		if !filterVisible(p, &f) {
			return nil, nil
		}
		return f.view(r.Version), nil
	})
}

// GetFilter returns one saved filter the caller may see.
func (s *Service) GetFilter(ctx context.Context, p Principal, id string) (*SavedFilter, error) {
	_, v := s.tenant(p.Tenant)
	f, rec, err := s.filterRecord(v, p, id)
	if err != nil {
		return nil, err
	}
	return f.view(rec.Version), nil
}

func (s *Service) filterRecord(v storage.View, p Principal, id string) (*filterRecord, storage.Record, error) {
	if !validID(id) {
		return nil, storage.Record{}, notFound("filter")
	}
	f, rec, err := getRecord[filterRecord](v, kFilter(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, notFound("filter")
		}
		return nil, rec, err
	}
	if !filterVisible(p, f) {
		return nil, rec, notFound("filter")
	}
	return f, rec, nil
}

// DeleteFilter removes a saved filter: its creator, or for a shared one
// also an Owner or Admin.
func (s *Service) DeleteFilter(ctx context.Context, p Principal, id string) error {
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		f, rec, err := s.filterRecord(v, p, id)
		if err != nil {
			return nil, err
		}
		if f.CreatedBy != p.UserID && !p.Role.isAdmin() {
			return nil, forbidden("only its creator or an Owner or Admin deletes a shared filter")
		}
		ch := s.newChange(p.Tenant, "filter.delete", p.actor())
		ch.expect(kFilter(id), rec.Version)
		ch.del(kFilter(id))
		return ch, nil
	})
	return err
}
