package index

import (
	"context"
	"slices"
	"sync"

	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"
)

// Bleve queries of our own. Filters do not score and are built with
// Score "none", which lets scorch OR their posting bitmaps instead of
// merging postings one document at a time.

var unscored = search.SearcherOptions{Score: "none"}

// filterQuery matches documents holding any of terms in field.
type filterQuery struct {
	field string
	terms []string // sorted, distinct
}

func newFilter(field string, terms []string) *filterQuery {
	terms = slices.Clone(terms)
	slices.Sort(terms)
	return &filterQuery{field: field, terms: slices.Compact(terms)}
}

func (q *filterQuery) Searcher(ctx context.Context, r index.IndexReader, _ mapping.IndexMapping, _ search.SearcherOptions) (search.Searcher, error) {
	switch len(q.terms) {
	case 0:
		return searcher.NewMatchNoneSearcher(r)
	case 1:
		return searcher.NewTermSearcher(ctx, r, q.terms[0], q.field, 0, unscored)
	}
	return searcher.NewMultiTermSearcher(ctx, r, q.terms, q.field, 0, unscored, false)
}

// rangeFilter matches keyword terms in [min, max] (bounds optional, each
// inclusive or not), compared as byte strings.
type rangeFilter struct {
	field        string
	min, max     string // "" = unbounded
	minIn, maxIn bool
}

func (q *rangeFilter) Searcher(ctx context.Context, r index.IndexReader, _ mapping.IndexMapping, _ search.SearcherOptions) (search.Searcher, error) {
	var lo, hi []byte
	if q.min != "" {
		lo = []byte(q.min)
	}
	if q.max != "" {
		hi = []byte(q.max)
	}
	minIn, maxIn := q.minIn, q.maxIn
	return searcher.NewTermRangeSearcher(ctx, r, lo, hi, &minIn, &maxIn, q.field, 0, unscored)
}

// sinceFilter matches documents updated on or after the UTC day of a time
// (unix ms): a recency window is a whole number of days, give or take one.
func sinceFilter(ms int64) query.Query {
	return &rangeFilter{field: "day", min: dayKey(ms), minIn: true}
}

// scopedQuery is the whole query of a search: the clauses, restricted to
// the allowed projects. The projects of the index (a superset of those in
// any snapshot a search can read, see projectSet) are split into allowed
// and not allowed, and the query either requires one of the allowed (the
// usual case) or, when that is the longer list and another clause drives
// the search, excludes every known project that is not allowed. Both
// select exactly the documents of allowed projects. Every search goes
// through this type.
type scopedQuery struct {
	allowed []string // sorted, distinct
	known   *projectSet
	must    []query.Query
	mustNot []query.Query
}

func (q *scopedQuery) Searcher(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, o search.SearcherOptions) (search.Searcher, error) {
	in, out := q.known.split(q.allowed)
	must, mustNot := q.must, q.mustNot
	switch {
	case len(in) == 0:
		return searcher.NewMatchNoneSearcher(r)
	case len(out) == 0:
		// Every project of the index is allowed.
	case len(in) <= len(out) || len(must) == 0:
		must = append([]query.Query{&filterQuery{field: "project_id", terms: in}}, must...)
	default:
		mustNot = append(slices.Clone(mustNot), &filterQuery{field: "project_id", terms: out})
	}
	if len(must) == 0 {
		must = []query.Query{matchAll{}}
	}
	return query.NewBooleanQuery(must, nil, mustNot).Searcher(ctx, r, m, o)
}

// projectSet holds every project ID ever written into one Bleve index; it
// only grows. The worker adds a project before it commits the batch that
// writes its first document, so every snapshot a search reads holds no
// project outside the set, and excluding the set's disallowed projects
// excludes every disallowed document.
type projectSet struct {
	mu  sync.RWMutex
	ids map[string]struct{}
}

func newProjectSet() *projectSet { return &projectSet{ids: map[string]struct{}{}} }

// loadProjectSet reads the projects of an index that was just opened.
func loadProjectSet(r index.IndexReader) (*projectSet, error) {
	s := newProjectSet()
	fd, err := r.FieldDict("project_id")
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	for {
		e, err := fd.Next()
		if err != nil {
			return nil, err
		}
		if e == nil {
			return s, nil
		}
		s.ids[e.Term] = struct{}{}
	}
}

func (s *projectSet) add(id string) {
	s.mu.RLock()
	_, ok := s.ids[id]
	s.mu.RUnlock()
	if !ok {
		s.mu.Lock()
		s.ids[id] = struct{}{}
		s.mu.Unlock()
	}
}

// split returns the known projects that are allowed, and the others, both
// sorted.
func (s *projectSet) split(allowed []string) (in, out []string) {
	s.mu.RLock()
	for id := range s.ids {
		if _, ok := slices.BinarySearch(allowed, id); ok {
			in = append(in, id)
		} else {
			out = append(out, id)
		}
	}
	s.mu.RUnlock()
	slices.Sort(in)
	slices.Sort(out)
	return in, out
}

// matchAll matches every document without scoring.
type matchAll struct{}

func (matchAll) Searcher(ctx context.Context, r index.IndexReader, _ mapping.IndexMapping, _ search.SearcherOptions) (search.Searcher, error) {
	return searcher.NewMatchAllSearcher(ctx, r, 0, unscored)
}
