package index

import (
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/registry"
)

// formatVersion names the mapping and document layout. An index written
// with another version is rebuilt when it is opened.
const formatVersion = 5

// textAnalyzer splits on Unicode word boundaries, then lower-cases and
// folds accents token by token (so token offsets stay those of the
// original text, which highlighting relies on). No stemming: prefixes and
// highlights mean what the user typed.
const (
	textAnalyzer = "tf_text"
	foldFilter   = "tf_fold"
)

// foldTokens folds each token to ASCII (é → e) after tokenising.
type foldTokens struct {
	f *asciifolding.AsciiFoldingFilter
}

func (ft foldTokens) Filter(in analysis.TokenStream) analysis.TokenStream {
	for _, t := range in {
		t.Term = ft.f.Filter(t.Term)
	}
	return in
}

func init() {
	err := registry.RegisterTokenFilter(foldFilter, func(map[string]any, *registry.Cache) (analysis.TokenFilter, error) {
		return foldTokens{f: asciifolding.New()}, nil
	})
	if err != nil {
		panic(err)
	}
}

// newMapping is the one mapping every tenant index uses. Fields:
//
//	kind        keyword   task | project | comment (stored)
//	project_id  keyword   the project the hit belongs to, its own ID for a project (stored)
//	task_id     keyword   the task: its own ID, or a comment's task (stored)
//	text        text      title, project key and description or comment body; positions for phrases
//	title       stored    task title, project name (highlights, title bonus)
//	body        stored    description or comment body (highlights)
//	num         keyword   task number (the 12 of WEB-12)
//	status      keyword   status ID of a task
//	pstatus     keyword   project_id/status_id of a task
//	assignees   keyword   member IDs
//	tags        keyword   lower-cased tags
//	author      keyword   comment author
//	due         keyword   normalised due date (YYYY-MM-DD or UTC RFC 3339), compared as strings
//	updated     number    updated_at in unix ms (stored only: rerank)
//	day         keyword   updated_at's UTC day, zero padded (recency windows)
//	recent      keyword   zero-padded updated_at and the document ID (doc values: newest-first order)
//	ver         keyword   record version (doc values: reconcile and verify)
func newMapping() (*mapping.IndexMappingImpl, error) {
	m := mapping.NewIndexMapping()
	if err := m.AddCustomAnalyzer(textAnalyzer, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unicode.Name,
		"token_filters": []any{lowercase.Name, foldFilter},
	}); err != nil {
		return nil, err
	}
	m.DefaultAnalyzer = keyword.Name
	m.ScoringModel = "bm25"

	kw := func(store, docValues bool) *mapping.FieldMapping {
		f := mapping.NewKeywordFieldMapping()
		f.Store = store
		f.DocValues = docValues
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		return f
	}
	stored := func() *mapping.FieldMapping {
		f := mapping.NewTextFieldMapping()
		f.Index = false
		f.Store = true
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = false
		return f
	}
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("kind", kw(true, false))
	dm.AddFieldMappingsAt("project_id", kw(true, false))
	dm.AddFieldMappingsAt("task_id", kw(true, false))
	text := mapping.NewTextFieldMapping()
	text.Analyzer = textAnalyzer
	text.Store = false
	text.IncludeTermVectors = true
	text.IncludeInAll = false
	text.DocValues = false
	dm.AddFieldMappingsAt("text", text)
	dm.AddFieldMappingsAt("title", stored())
	dm.AddFieldMappingsAt("body", stored())
	dm.AddFieldMappingsAt("num", kw(false, false))
	dm.AddFieldMappingsAt("status", kw(false, false))
	dm.AddFieldMappingsAt("pstatus", kw(false, false))
	dm.AddFieldMappingsAt("assignees", kw(false, false))
	dm.AddFieldMappingsAt("tags", kw(false, false))
	dm.AddFieldMappingsAt("author", kw(false, false))
	dm.AddFieldMappingsAt("due", kw(false, false))
	upd := mapping.NewNumericFieldMapping()
	upd.Store = true
	upd.Index = false
	upd.DocValues = false
	upd.IncludeInAll = false
	dm.AddFieldMappingsAt("updated", upd)
	dm.AddFieldMappingsAt("day", kw(false, false))
	dm.AddFieldMappingsAt("recent", kw(false, true))
	dm.AddFieldMappingsAt("ver", kw(false, true))
	// No composite _all field: every query names its fields.
	dm.AddSubDocumentMapping("_all", mapping.NewDocumentDisabledMapping())
	m.DefaultMapping = dm
	m.StoreDynamic = false
	m.IndexDynamic = false
	m.DocValuesDynamic = false
	return m, nil
}
