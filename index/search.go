package index

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// Query is one search, as the engine asks it. Text is in the syntax Parse
// reads; the other filters come from the URL (GET /api/v1/search?project=
// &assignee=...) and are ANDed with the ones in Text. Within one filter the
// values are alternatives.
type Query struct {
	Text string

	// Allowed is the set of project IDs the caller may see. It is
	// mandatory: a hit outside it is never returned, and an empty set
	// returns nothing.
	Allowed []string

	Projects  []string // project IDs or keys
	Assignees []string // member IDs (or me and names, see Me and ResolveUser)
	Statuses  []string // categories (todo, in_progress, done), or status names or IDs
	Tags      []string
	DueBefore string // due strictly before (a date or an RFC 3339 date-time)
	DueAfter  string // due strictly after
	Kinds     []string

	// Me is the caller's member ID, which assignee:me stands for.
	Me string
	// ResolveUser maps an assignee value that is not a member ID (a name,
	// an email) to the member IDs it names; nil leaves values as they are.
	ResolveUser func(value string) []string

	Limit  int    // default 20, at most 100
	Cursor string // NextCursor of the previous page
	// Now anchors the recency boost (default: the index's clock). The
	// cursor keeps the first page's, so pages agree.
	Now time.Time
}

// Hit is one search result.
type Hit struct {
	ID        string  `json:"id"`
	Kind      string  `json:"kind"` // task, project or comment
	ProjectID string  `json:"project_id"`
	TaskID    string  `json:"task_id,omitempty"` // a comment's task
	Score     float64 `json:"score"`
	// Highlights holds, per field (title, body), fragments of the text
	// with the matches in <mark>; everything else is HTML-escaped.
	Highlights map[string][]string `json:"highlights,omitempty"`
}

// Result is one page of hits.
type Result struct {
	Hits       []Hit  `json:"items"`
	Total      uint64 `json:"total"`
	NextCursor string `json:"next_cursor,omitempty"`
}

const (
	defaultLimit = 20
	maxLimit     = 100
)

// Search runs q over the tenant's index.
//
// Ranking, for a query with words: BM25 relevance over title, project key,
// description and comment text, then, within each block of 100 hits by
// relevance, a rerank that multiplies the score by up to 1.5 for recently
// updated items and up to 1.5 when the words are in the title (blocks keep
// pages stable: a page is a slice of one fixed order). A query with only
// filters lists its matches most recently updated first.
func (ix *Index) Search(ctx context.Context, tenant string, q Query) (Result, error) {
	if tenant == "" {
		return Result{}, errors.New("index: search without a tenant")
	}
	parsed, err := Parse(q.Text)
	if err != nil {
		return Result{}, err
	}
	extra, err := q.filters()
	if err != nil {
		return Result{}, err
	}
	parsed.Filters = append(parsed.Filters, extra...)
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	now := q.Now
	if now.IsZero() {
		now = ix.opts.Now()
	}
	fp := fingerprint(tenant, &q)
	offset := 0
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor, fp)
		if err != nil {
			return Result{}, err
		}
		offset, now = c.Offset, time.UnixMilli(c.Now)
	}

	t, h, err := ix.acquire(ctx, tenant, false)
	if err != nil {
		return Result{}, err
	}
	defer ix.release(h)
	tbl, err := ix.projectTable(t)
	if err != nil {
		return Result{}, err
	}
	p, err := compile(parsed, &q, tbl)
	if err != nil {
		return Result{}, err
	}
	p.known = h.projects
	if p.none {
		return Result{Hits: []Hit{}}, nil
	}
	var page []*cand
	var total uint64
	var more bool
	if p.text {
		page, total, more, err = searchText(ctx, h, p, offset, limit, now)
	} else {
		page, total, more, err = searchRecent(ctx, h, p, offset, limit, now)
	}
	if err != nil {
		return Result{}, err
	}
	out := Result{Hits: make([]Hit, 0, len(page)), Total: total}
	if more && offset+limit < maxOffset {
		out.NextCursor = cursor{V: 1, F: fp, Now: now.UnixMilli(), Offset: offset + limit}.encode()
	}
	if p.text && len(page) > 0 {
		if err := highlightPage(ctx, h, page, p.hl); err != nil {
			return Result{}, err
		}
	}
	for _, c := range page {
		// The query is already confined to the allowed projects; this is a
		// second lock on the same door.
		if _, ok := p.allowed[c.project]; !ok {
			continue
		}
		hit := Hit{ID: c.id, Kind: c.kind, ProjectID: c.project, Score: c.final, Highlights: c.highlights}
		if c.kind == KindComment {
			hit.TaskID = c.task
		}
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

const (
	rerankBlock = 100
	// tieMargin more hits are read to see the end of a tie group at the
	// cut; exactTieLimit bounds the result sets Bleve sorts with the ID.
	tieMargin     = 100
	exactTieLimit = 5000
	// maxOffset bounds how deep pages go (a search, not an export).
	maxOffset = 1000
)

// cand is one candidate hit.
type cand struct {
	doc, id, kind, project, task, title string
	updated                             float64
	score, final                        float64
	highlights                          map[string][]string
}

var candFields = []string{"kind", "project_id", "task_id", "title", "updated"}

func toCand(dm *search.DocumentMatch) *cand {
	c := &cand{doc: dm.ID, score: dm.Score}
	c.kind, c.id, _ = splitDocID(dm.ID)
	c.project, _ = dm.Fields["project_id"].(string)
	c.task, _ = dm.Fields["task_id"].(string)
	c.title, _ = dm.Fields["title"].(string)
	c.updated, _ = dm.Fields["updated"].(float64)
	return c
}

// searchText ranks by relevance (Bleve's fast path: score only), then
// reranks each block of 100 with recency and title matches.
func searchText(ctx context.Context, h *handle, p plan, offset, limit int, now time.Time) ([]*cand, uint64, bool, error) {
	firstBlock, lastBlock := offset/rerankBlock, (offset+limit-1)/rerankBlock
	k := (lastBlock + 1) * rerankBlock
	// The k best by score alone (Bleve's fast path), and a margin: ties
	// are broken by document ID below, so the order does not depend on
	// doc numbers, which change when segments merge. That is exact when
	// the tie group at the cut ends inside the margin; when it does not, a
	// small result set is sorted by Bleve with the ID, and a large one
	// keeps Bleve's order within that group (it may change after writes).
	req := bleve.NewSearchRequestOptions(p.query(), k+tieMargin, 0, false)
	res, err := h.bi.SearchInContext(ctx, req)
	if err != nil {
		return nil, 0, false, fmt.Errorf("index: search: %w", err)
	}
	hits := res.Hits
	if len(hits) > k && hits[len(hits)-1].Score == hits[k-1].Score && res.Total <= exactTieLimit {
		req = bleve.NewSearchRequestOptions(p.query(), k, 0, false)
		req.Sort = search.SortOrder{&search.SortScore{Desc: true}, &search.SortDocID{}}
		r2, err := h.bi.SearchInContext(ctx, req)
		if err != nil {
			return nil, 0, false, fmt.Errorf("index: search: %w", err)
		}
		hits = r2.Hits
	}
	slices.SortStableFunc(hits, func(a, b *search.DocumentMatch) int {
		if a.Score != b.Score {
			return cmpDesc(a.Score, b.Score)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(hits) > k {
		hits = hits[:k]
	}
	res.Hits = hits
	if firstBlock*rerankBlock < len(res.Hits) {
		// Fields for the blocks being reranked only.
		if err := loadFields(ctx, h, res.Hits[firstBlock*rerankBlock:], candFields); err != nil {
			return nil, 0, false, err
		}
	}
	nowMs := float64(now.UnixMilli())
	var ranked []*cand
	for b := firstBlock; b <= lastBlock && b*rerankBlock < len(res.Hits); b++ {
		block := make([]*cand, 0, rerankBlock)
		for _, dm := range res.Hits[b*rerankBlock : min(len(res.Hits), (b+1)*rerankBlock)] {
			c := toCand(dm)
			c.final = c.score * recencyFactor(nowMs, c.updated) * (1 + 0.5*p.hl.titleShare(c.title))
			block = append(block, c)
		}
		slices.SortStableFunc(block, func(a, b *cand) int {
			switch {
			case a.final != b.final:
				return cmpDesc(a.final, b.final)
			case a.updated != b.updated:
				return cmpDesc(a.updated, b.updated)
			}
			return strings.Compare(a.doc, b.doc)
		})
		ranked = append(ranked, block...)
	}
	from := offset - firstBlock*rerankBlock
	if from >= len(ranked) {
		return nil, res.Total, false, nil
	}
	to := min(len(ranked), from+limit)
	return ranked[from:to], res.Total, uint64(offset+limit) < res.Total, nil
}

func cmpDesc(a, b float64) int {
	if a > b {
		return -1
	}
	return 1
}

// recencyFactor is 1.5 for an item updated now, 1.25 a week ago, about 1.1
// a month ago.
func recencyFactor(nowMs, updated float64) float64 {
	const week = float64(7 * 24 * time.Hour / time.Millisecond)
	age := math.Max(0, (nowMs-updated)/week)
	return 1 + 0.5/(1+age)
}

// recentWindows widen until they hold the page, so a listing by recency
// reads (and sorts) the newest matches only.
var recentWindows = []time.Duration{7 * 24 * time.Hour, 30 * 24 * time.Hour, 120 * 24 * time.Hour, 480 * 24 * time.Hour, 0}

// searchRecent lists a filter-only query's matches, most recently updated
// first.
func searchRecent(ctx context.Context, h *handle, p plan, offset, limit int, now time.Time) ([]*cand, uint64, bool, error) {
	need := offset + limit + 1
	creq := bleve.NewSearchRequestOptions(p.query(), 0, 0, false)
	creq.Score = "none"
	cres, err := h.bi.SearchInContext(ctx, creq)
	if err != nil {
		return nil, 0, false, fmt.Errorf("index: search: %w", err)
	}
	total := cres.Total
	windows := recentWindows
	if total <= uint64(8*need) {
		windows = []time.Duration{0} // few matches: sort them all
	}
	var res *bleve.SearchResult
	for _, w := range windows {
		sq := p.scoped()
		if w > 0 {
			sq.must = append(slices.Clone(sq.must), sinceFilter(now.Add(-w).UnixMilli()))
		}
		req := bleve.NewSearchRequestOptions(sq, need, 0, false)
		req.Score = "none"
		req.Sort = search.SortOrder{&search.SortField{Field: "recent", Type: search.SortFieldAsString, Desc: true}}
		if res, err = h.bi.SearchInContext(ctx, req); err != nil {
			return nil, 0, false, fmt.Errorf("index: search: %w", err)
		}
		if len(res.Hits) >= need {
			break
		}
	}
	var page []*cand
	if offset < len(res.Hits) {
		hits := res.Hits[offset:min(len(res.Hits), offset+limit)]
		if err := loadFields(ctx, h, hits, candFields); err != nil {
			return nil, 0, false, err
		}
		for _, dm := range hits {
			page = append(page, toCand(dm))
		}
	}
	return page, total, len(res.Hits) > offset+limit, nil
}

// loadFields loads stored fields into hits (only those a page needs, not
// every hit a query collected).
func loadFields(ctx context.Context, h *handle, hits []*search.DocumentMatch, fields []string) error {
	ids := make([]string, len(hits))
	for i, dm := range hits {
		ids[i] = dm.ID
	}
	req := bleve.NewSearchRequestOptions(query.NewDocIDQuery(ids), len(ids), 0, false)
	req.Fields = fields
	req.Score = "none"
	res, err := h.bi.SearchInContext(ctx, req)
	if err != nil {
		return fmt.Errorf("index: load fields: %w", err)
	}
	byID := make(map[string]map[string]any, len(res.Hits))
	for _, dm := range res.Hits {
		byID[dm.ID] = dm.Fields
	}
	for _, dm := range hits {
		dm.Fields = byID[dm.ID]
	}
	return nil
}

// highlightPage marks the query's words in the title and body of a page's
// hits. The bodies are loaded for the page only.
func highlightPage(ctx context.Context, h *handle, page []*cand, hl highlighter) error {
	ids := make([]string, len(page))
	for i, c := range page {
		ids[i] = c.doc
	}
	req := bleve.NewSearchRequestOptions(query.NewDocIDQuery(ids), len(ids), 0, false)
	req.Fields = []string{"body"}
	req.Score = "none"
	res, err := h.bi.SearchInContext(ctx, req)
	if err != nil {
		return fmt.Errorf("index: highlight: %w", err)
	}
	bodies := map[string]string{}
	for _, dm := range res.Hits {
		bodies[dm.ID], _ = dm.Fields["body"].(string)
	}
	for _, c := range page {
		if frag, ok := hl.mark(c.title, 0); ok {
			c.highlights = map[string][]string{"title": {frag}}
		}
		if frag, ok := hl.mark(bodies[c.doc], bodyFragment); ok {
			if c.highlights == nil {
				c.highlights = map[string][]string{}
			}
			c.highlights["body"] = []string{frag}
		}
	}
	return nil
}

// filters turns the URL filters into the filters of the syntax.
func (q *Query) filters() ([]Filter, error) {
	var out []Filter
	add := func(field string, vals []string) {
		var vs []string
		for _, v := range vals {
			if v = strings.TrimSpace(v); v != "" {
				vs = append(vs, v)
			}
		}
		if len(vs) > 0 {
			out = append(out, Filter{Field: field, Values: vs})
		}
	}
	add(FieldProject, q.Projects)
	add(FieldAssignee, q.Assignees)
	add(FieldStatus, q.Statuses)
	add(FieldTag, q.Tags)
	if len(q.Kinds) > 0 {
		var ks []string
		for _, k := range q.Kinds {
			kind, ok := kindNames[strings.ToLower(strings.TrimSpace(k))]
			if !ok {
				return nil, badQuery(fmt.Sprintf("kind: %q is not task, project or comment", k))
			}
			ks = append(ks, kind)
		}
		out = append(out, Filter{Field: FieldKind, Values: ks})
	}
	for _, d := range []struct{ op, v, name string }{{"<", q.DueBefore, "due_before"}, {">", q.DueAfter, "due_after"}} {
		if d.v == "" {
			continue
		}
		if dueKey(d.v) == "" {
			return nil, badQuery(fmt.Sprintf("%s: %q is not a date (YYYY-MM-DD) or an RFC 3339 date-time", d.name, d.v))
		}
		out = append(out, Filter{Field: FieldDue, Op: d.op, Values: []string{d.v}})
	}
	n := 0
	for _, f := range out {
		n += len(f.Values)
	}
	if n > maxValues {
		return nil, badQuery(fmt.Sprintf("at most %d filter values", maxValues))
	}
	return out, nil
}

// plan is a compiled query.
type plan struct {
	known       *projectSet
	allowedList []string            // Allowed narrowed by project filters, sorted
	allowed     map[string]struct{} // the same, as a set
	must        []query.Query
	mustNot     []query.Query
	text        bool // positive words: rank by relevance, highlight
	none        bool // nothing can match (no project left, an unknown status ...)
	hl          highlighter
}

// scoped is the Bleve query: every clause, confined to the allowed
// projects.
func (p plan) scoped() *scopedQuery {
	return &scopedQuery{allowed: p.allowedList, known: p.known, must: p.must, mustNot: p.mustNot}
}

func (p plan) query() query.Query { return p.scoped() }

var taskKeyRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]{1,9})-([0-9]{1,12})$`)

// compile turns a parsed query into clauses. The project restriction is
// not one of them: scopedQuery applies it to every search, from
// plan.allowedList, which only ever narrows q.Allowed. Filters do not
// score.
func compile(p Parsed, q *Query, tbl *projectTable) (plan, error) {
	eff := map[string]struct{}{}
	for _, id := range q.Allowed {
		if id != "" {
			eff[id] = struct{}{}
		}
	}
	for _, f := range p.Filters {
		if f.Field != FieldProject {
			continue
		}
		named := map[string]struct{}{}
		for _, v := range f.Values {
			if _, ok := tbl.byID[v]; ok {
				named[v] = struct{}{}
			} else if id, ok := tbl.byKey[strings.ToUpper(v)]; ok {
				named[id] = struct{}{}
			}
		}
		for id := range eff {
			if _, in := named[id]; in == f.Negated {
				delete(eff, id)
			}
		}
	}
	pl := plan{allowed: eff, hl: highlighter{exact: map[string]bool{}}}
	if len(eff) == 0 {
		pl.none = true
		return pl, nil
	}
	for id := range eff {
		pl.allowedList = append(pl.allowedList, id)
	}
	slices.Sort(pl.allowedList)
	clause := func(neg bool, qq query.Query) {
		if neg {
			pl.mustNot = append(pl.mustNot, qq)
		} else {
			pl.must = append(pl.must, qq)
		}
	}
	for _, f := range p.Filters {
		var terms []string
		field := ""
		switch f.Field {
		case FieldKind:
			field, terms = "kind", f.Values
		case FieldTag:
			field = "tags"
			for _, v := range f.Values {
				terms = append(terms, normTag(v))
			}
		case FieldAssignee:
			field = "assignees"
			for _, v := range f.Values {
				switch {
				case strings.EqualFold(v, "me"):
					if q.Me == "" {
						return plan{}, badQuery("assignee:me needs a signed-in member")
					}
					terms = append(terms, q.Me)
				case q.ResolveUser != nil:
					terms = append(terms, q.ResolveUser(v)...)
				default:
					terms = append(terms, v)
				}
			}
		case FieldStatus:
			field, terms = statusTerms(tbl, pl.allowedList, f.Values)
		case FieldDue:
			clause(f.Negated, dueQuery(f.Op, f.Values[0]))
			continue
		default: // project: applied above
			continue
		}
		if len(terms) == 0 {
			if f.Negated {
				continue // excludes nothing
			}
			pl.none = true
			return pl, nil
		}
		clause(f.Negated, newFilter(field, terms))
	}
	for _, tm := range p.Terms {
		tq := textQuery(tm, tbl, eff)
		if tq == nil {
			continue
		}
		if !tm.Negated {
			pl.text = true
			pl.hl.add(tm)
		}
		clause(tm.Negated, tq)
	}
	return pl, nil
}

// statusTerms resolves status values into terms: status IDs (field
// status) when they mean the same in every allowed project, which is the
// usual case (the default workflow), or project/status pairs (field
// pstatus) when some project uses a matching ID for another status.
func statusTerms(tbl *projectTable, projects []string, values []string) (string, []string) {
	var pairs, ids []string
	seen := map[string]bool{}
	for _, pid := range projects {
		pr := tbl.byID[pid]
		if pr == nil {
			continue
		}
		for _, st := range pr.Statuses {
			if statusMatches(st, values) {
				pairs = append(pairs, pid+"/"+st.ID)
				if !seen[st.ID] {
					seen[st.ID] = true
					ids = append(ids, st.ID)
				}
			}
		}
	}
	for _, pid := range projects {
		pr := tbl.byID[pid]
		if pr == nil {
			continue
		}
		for _, st := range pr.Statuses {
			if seen[st.ID] && !statusMatches(st, values) {
				return "pstatus", pairs
			}
		}
	}
	return "status", ids
}

// statusMatches: a value that is a category (todo, in_progress, done;
// case, spaces, dashes and underscores ignored) names the statuses of that
// category; any other value names a status by name (any case) or ID.
func statusMatches(st statusInfo, values []string) bool {
	for _, v := range values {
		if c := foldCategory(v); c == "todo" || c == "inprogress" || c == "done" {
			if c == foldCategory(st.Category) {
				return true
			}
			continue
		}
		if v == st.ID || strings.EqualFold(v, st.Name) {
			return true
		}
	}
	return false
}

func foldCategory(s string) string {
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
}

// dueQuery compares normalised due keys as strings, as the engine's task
// filters do: due:<d and due_before are strict, due:<=d includes the whole
// day d, due:d is that day (or that instant, for a date-time).
func dueQuery(op, value string) query.Query {
	v := dueKey(value)
	date := len(v) == 10
	r := &rangeFilter{field: "due"}
	switch op {
	case "<":
		r.max = v
	case "<=":
		if date {
			r.max = nextDay(v)
		} else {
			r.max, r.maxIn = v, true
		}
	case ">":
		// Strictly greater: v itself is not, every longer key that starts
		// with v (a date-time on that day) is.
		r.min, r.minIn = v+"\x00", true
	case ">=":
		r.min, r.minIn = v, true
	default: // "="
		if date {
			r.min, r.minIn, r.max = v, true, nextDay(v)
		} else {
			r.min, r.minIn, r.max, r.maxIn = v, true, v, true
		}
	}
	return r
}

func nextDay(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return d
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly)
}

// textQuery is one word or phrase: every token of it must be in the
// text; the word being typed matches its last token as a prefix (two
// characters at least); a word shaped like a task key (WEB-12) also finds
// that task.
func textQuery(tm Term, tbl *projectTable, eff map[string]struct{}) query.Query {
	toks := analyze(tm.Text)
	if len(toks) == 0 {
		return nil
	}
	if tm.Phrase && len(toks) > 1 {
		mp := query.NewMatchPhraseQuery(tm.Text)
		mp.SetField("text")
		mp.Analyzer = textAnalyzer
		return mp
	}
	parts := make([]query.Query, len(toks))
	for i, tok := range toks {
		var fq query.FieldableQuery
		if tm.Prefix && i == len(toks)-1 && utf8.RuneCountInString(tok) >= 2 {
			fq = query.NewPrefixQuery(tok)
		} else {
			fq = query.NewTermQuery(tok)
		}
		fq.SetField("text")
		parts[i] = fq
	}
	var tq query.Query = parts[0]
	if len(parts) > 1 {
		tq = query.NewConjunctionQuery(parts)
	}
	if m := taskKeyRE.FindStringSubmatch(tm.Text); m != nil && !tm.Phrase && !tm.Negated {
		if pid, ok := tbl.byKey[strings.ToUpper(m[1])]; ok {
			if _, ok := eff[pid]; ok {
				n, _ := strconv.ParseUint(m[2], 10, 64)
				pq := query.NewTermQuery(pid)
				pq.SetField("project_id")
				nq := query.NewTermQuery(strconv.FormatUint(n, 10))
				nq.SetField("num")
				kq := query.NewConjunctionQuery([]query.Query{pq, nq})
				kq.SetBoost(10)
				tq = query.NewDisjunctionQuery([]query.Query{tq, kq})
			}
		}
	}
	return tq
}

// textAnalyzerInstance is built on first use (after init registered the
// fold filter).
var textAnalyzerInstance = sync.OnceValue(func() analysis.Analyzer {
	m, err := newMapping()
	if err != nil {
		panic(err)
	}
	a := m.AnalyzerNamed(textAnalyzer)
	if a == nil {
		panic("index: text analyzer missing")
	}
	return a
})

// analyze splits text into index terms the way the text field is.
func analyze(text string) []string {
	ts := textAnalyzerInstance().Analyze([]byte(text))
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, string(t.Term))
	}
	return out
}

// cursor is the opaque position after one page: where the next page
// starts, the recency anchor, and a fingerprint of the query it belongs to.
type cursor struct {
	V      int    `json:"v"`
	F      string `json:"f"`
	Now    int64  `json:"n"`
	Offset int    `json:"o"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, fp string) (cursor, error) {
	var c cursor
	if len(s) > 512 {
		return c, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.V != 1 || c.F != fp || c.Offset <= 0 || c.Offset >= maxOffset {
		return cursor{}, ErrBadCursor
	}
	return c, nil
}

// fingerprint identifies a query (tenant, text and filters, not the
// caller's allowed projects or the page size) so that a cursor is only
// accepted for the query that issued it.
func fingerprint(tenant string, q *Query) string {
	h := sha256.New()
	w := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	w(tenant)
	w(q.Text)
	for _, l := range [][]string{q.Projects, q.Assignees, q.Statuses, q.Tags, q.Kinds, {q.DueBefore, q.DueAfter, q.Me}} {
		w(strconv.Itoa(len(l)))
		for _, s := range l {
			w(s)
		}
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}
