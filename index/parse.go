package index

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of a query, so that no input can build an unbounded Bleve query.
const (
	MaxQueryBytes = 1000 // of the query text
	maxClauses    = 32   // terms and filters
	maxValues     = 100  // filter values in one query
)

// Parsed is a query after parsing: text terms and field filters. Parse
// never passes user text to Bleve's query-string syntax; Search turns a
// Parsed into Bleve queries clause by clause.
type Parsed struct {
	Terms   []Term
	Filters []Filter
}

// Term is a bare word or a "quoted phrase".
type Term struct {
	Text    string
	Phrase  bool
	Prefix  bool // the word the user is still typing: matched as a prefix
	Negated bool // -word: hits must not contain it
}

// Filter is a field filter. Values are alternatives (status:todo,done);
// several filters on one field must all hold.
type Filter struct {
	Field   string // one of FilterFields
	Op      string // due only: "<", "<=", ">", ">=" or "=" (the whole day)
	Values  []string
	Negated bool
}

// Filter fields of the query syntax.
const (
	FieldAssignee = "assignee" // member ID, a name the caller resolves, or me
	FieldStatus   = "status"   // status name, ID or category (todo, in_progress, done)
	FieldTag      = "tag"
	FieldProject  = "project" // project key (WEB) or ID
	FieldDue      = "due"     // due:<2026-12-01, due:>=2026-12-01, due:2026-12-01
	FieldKind     = "kind"    // task, project, comment
)

var filterFields = map[string]string{
	"assignee": FieldAssignee, "assignees": FieldAssignee,
	"status": FieldStatus,
	"tag":    FieldTag, "tags": FieldTag,
	"project": FieldProject,
	"due":     FieldDue,
	"kind":    FieldKind, "type": FieldKind,
}

var kindNames = map[string]string{
	"task": KindTask, "tasks": KindTask,
	"project": KindProject, "projects": KindProject,
	"comment": KindComment, "comments": KindComment,
}

// Parse reads the search syntax:
//
//	design review          words; every word must match (title, description, comment, project key);
//	                       the last word, while being typed, matches as a prefix
//	"release notes"        a phrase
//	-draft  -"old plan"    must not match
//	assignee:me            assignee:<member ID or name>; me and names are resolved by the caller
//	status:done            a category (todo, in_progress, done), else a status name or ID;
//	status:"In progress"   quoted values may hold spaces
//	tag:backend,frontend   comma-separated values are alternatives
//	project:WEB            project key or ID
//	due:<2026-12-01        also >, <=, >= and due:2026-12-01 (that day)
//	kind:task              task, project or comment
//
// Unknown field names are plain text ("ratio:3" searches for ratio and 3).
// A filter may be negated (-tag:wontfix). Parse never panics; malformed
// input is either read leniently or answered with an error wrapping
// ErrBadQuery.
func Parse(text string) (Parsed, error) {
	var p Parsed
	if len(text) > MaxQueryBytes {
		return p, badQuery(fmt.Sprintf("the query is longer than %d bytes", MaxQueryBytes))
	}
	text = strings.ToValidUTF8(text, " ")
	s := scanner{src: text}
	values := 0
	lastWord := -1
	lastTokenIsWord := false
	for {
		s.skipSpace()
		if s.eof() {
			break
		}
		if len(p.Terms)+len(p.Filters) >= maxClauses {
			return Parsed{}, badQuery(fmt.Sprintf("at most %d words and filters", maxClauses))
		}
		neg := false
		if s.peek() == '-' && s.pos+1 < len(s.src) && !isSpace(s.at(s.pos+1)) {
			neg = true
			s.pos++
		}
		if s.peek() == '"' {
			s.pos++
			phrase := s.until('"')
			lastTokenIsWord = false
			if strings.TrimSpace(phrase) != "" {
				p.Terms = append(p.Terms, Term{Text: phrase, Phrase: true, Negated: neg})
			}
			continue
		}
		start := s.pos
		name := s.ident()
		if name != "" && s.peek() == ':' {
			if field, ok := filterFields[strings.ToLower(name)]; ok {
				s.pos++ // the colon
				f, err := s.filter(field, neg)
				if err != nil {
					return Parsed{}, err
				}
				lastTokenIsWord = false
				if f == nil {
					continue
				}
				values += len(f.Values)
				if values > maxValues {
					return Parsed{}, badQuery(fmt.Sprintf("at most %d filter values", maxValues))
				}
				p.Filters = append(p.Filters, *f)
				continue
			}
		}
		s.pos = start
		word := s.word()
		if word == "" {
			// A lone quote inside a word, or similar: skip one character.
			s.pos++
			continue
		}
		p.Terms = append(p.Terms, Term{Text: word, Negated: neg})
		lastTokenIsWord = !neg
		if !neg {
			lastWord = len(p.Terms) - 1
		}
	}
	// The word being typed (the last token, not followed by a space) is a
	// prefix.
	if lastTokenIsWord && lastWord == len(p.Terms)-1 && lastWord >= 0 && !endsWithSpace(text) {
		p.Terms[lastWord].Prefix = true
	}
	return p, nil
}

func endsWithSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isSpace(r)
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

type scanner struct {
	src string
	pos int
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

func (s *scanner) at(i int) rune {
	r, _ := utf8.DecodeRuneInString(s.src[i:])
	return r
}

func (s *scanner) peek() rune {
	if s.eof() {
		return 0
	}
	return s.at(s.pos)
}

func (s *scanner) skipSpace() {
	for !s.eof() {
		r, n := utf8.DecodeRuneInString(s.src[s.pos:])
		if !isSpace(r) {
			return
		}
		s.pos += n
	}
}

// ident reads ASCII letters (a field name candidate).
func (s *scanner) ident() string {
	start := s.pos
	for !s.eof() {
		c := s.src[s.pos]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' {
			s.pos++
			continue
		}
		break
	}
	return s.src[start:s.pos]
}

// word reads up to the next space.
func (s *scanner) word() string {
	start := s.pos
	for !s.eof() {
		r, n := utf8.DecodeRuneInString(s.src[s.pos:])
		if isSpace(r) {
			break
		}
		s.pos += n
	}
	return s.src[start:s.pos]
}

// until reads up to the closing quote (consumed) or the end of the text.
func (s *scanner) until(q byte) string {
	i := strings.IndexByte(s.src[s.pos:], q)
	if i < 0 {
		out := s.src[s.pos:]
		s.pos = len(s.src)
		return out
	}
	out := s.src[s.pos : s.pos+i]
	s.pos += i + 1
	return out
}

// filter reads the value of field after the colon. A filter with no value
// (someone still typing "tag:") is dropped: nil, nil.
func (s *scanner) filter(field string, neg bool) (*Filter, error) {
	f := &Filter{Field: field, Negated: neg}
	if field == FieldDue {
		for _, op := range []string{"<=", ">=", "<", ">", "="} {
			if strings.HasPrefix(s.src[s.pos:], op) {
				f.Op = op
				s.pos += len(op)
				break
			}
		}
		if f.Op == "" {
			f.Op = "="
		}
	}
	var raw []string
	if s.peek() == '"' {
		s.pos++
		if v := strings.TrimSpace(s.until('"')); v != "" {
			raw = []string{v}
		}
	} else {
		for _, v := range strings.Split(s.word(), ",") {
			if v = strings.TrimSpace(v); v != "" {
				raw = append(raw, v)
			}
		}
	}
	if len(raw) == 0 {
		return nil, nil
	}
	switch field {
	case FieldDue:
		if len(raw) != 1 {
			return nil, badQuery("due: takes one date")
		}
		if dueKey(raw[0]) == "" {
			return nil, badQuery(fmt.Sprintf("due: %q is not a date (YYYY-MM-DD) or an RFC 3339 date-time", raw[0]))
		}
	case FieldKind:
		for i, v := range raw {
			k, ok := kindNames[strings.ToLower(v)]
			if !ok {
				return nil, badQuery(fmt.Sprintf("kind: %q is not task, project or comment", v))
			}
			raw[i] = k
		}
	}
	f.Values = raw
	return f, nil
}
