// Package searchadapter adapts *index.Index to the engine's Searcher
// interface. The engine must not import index (nor index the engine), so
// this small package, imported by cmd/teamflow and by the API tests, is the
// only place that knows both.
package searchadapter

import (
	"context"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/index"
)

// Searcher is an engine.Searcher over an index.
type Searcher struct{ ix *index.Index }

var _ engine.Searcher = Searcher{}

// New adapts ix.
func New(ix *index.Index) Searcher { return Searcher{ix: ix} }

// Search runs q over the tenant's index. Errors are *index.Error, which the
// engine recognises by their Code and Unavailable methods.
func (s Searcher) Search(ctx context.Context, tenant string, q engine.SearchQuery) (engine.SearchResult, error) {
	res, err := s.ix.Search(ctx, tenant, index.Query{
		Text: q.Text, Allowed: q.Allowed, Projects: q.Projects, Assignees: q.Assignees, Statuses: q.Statuses,
		Tags: q.Tags, DueBefore: q.DueBefore, DueAfter: q.DueAfter, Kinds: q.Kinds,
		Me: q.Me, ResolveUser: q.ResolveUser, Limit: q.Limit, Cursor: q.Cursor,
	})
	if err != nil {
		return engine.SearchResult{}, err
	}
	out := engine.SearchResult{Hits: make([]engine.SearchHit, len(res.Hits)), Total: res.Total, NextCursor: res.NextCursor}
	for i, h := range res.Hits {
		out.Hits[i] = engine.SearchHit{ID: h.ID, Kind: h.Kind, ProjectID: h.ProjectID, TaskID: h.TaskID, Score: h.Score, Highlights: h.Highlights}
	}
	return out, nil
}

// Check reports whether text parses in the query syntax.
func (Searcher) Check(text string) error {
	_, err := index.Parse(text)
	return err
}

// Rebuild builds the tenant's index again from the store.
func (s Searcher) Rebuild(ctx context.Context, tenant string) error {
	return s.ix.Rebuild(ctx, tenant)
}
