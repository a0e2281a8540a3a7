// Package index is TeamFlow's full-text search: one Bleve index per
// workspace (tenant) of its tasks, projects and comments, kept on each node
// from the commands that node applies, and queried by the engine through an
// interface the engine owns.
//
// Feeding. (*Index).Observe is a storage.Observer: register it with the
// store before the log applies anything (store.Observe(ix.Observe)). Every
// node applies every command, so every node indexes everything, leader or
// not; nothing is indexed from the request path. Observe only sorts the
// applied commands into per-tenant queues and returns; a worker per busy
// tenant applies its queue to Bleve in log order, one Bleve batch at a time,
// and the batch carries the tenant's watermark (the last log index and the
// tenant's event sequence it reflects), so the index and its watermark never
// disagree. Deleted (deleted_at set) and purged records leave the index; a
// comment is searchable only while its task is live.
//
// Lifecycle. Indexes open on first use (a search, or a command for the
// tenant) and close when idle or to make room under Options.MaxOpen, so
// start-up reads no index at all. When an index opens, its watermark is
// checked against what Observe has delivered and against the store: an
// index that missed commands (a crash, a node that ran without it, a
// snapshot install) is reconciled from the store, document by document, by
// record version, while it keeps answering. A missing or damaged index, or
// one of another format, is rebuilt from the store into a new generation in
// the background; until it is ready the tenant's searches answer
// ErrRebuilding (HTTP 503 with Retry-After), other tenants are unaffected.
// Rebuild does the same on demand (teamflow index rebuild).
//
// Searching. Search takes the tenant and a Query: the text in the syntax
// Parse reads (words, prefixes, "phrases", -negation, assignee:, status:,
// tag:, project:, due:, kind:), filters from the URL, the set of projects
// the caller may see (mandatory: no hit outside it is ever returned), a
// limit and a cursor. The text is parsed here, clause by clause, and never
// handed to Bleve's query-string syntax. Hits carry ID, kind, project, the
// task of a comment, a score, and highlights with the matches in <mark> and
// everything else HTML-escaped.
//
// Isolation. Each tenant has its own directory and Bleve index, and every
// call names its tenant; there is no query across tenants.
//
// See DESIGN.md in this folder for the invariants and what would break
// them.
package index
