package index

import (
	"html"
	"strings"
	"unicode/utf8"
)

// bodyFragment is the length of a body highlight, in bytes of text.
const bodyFragment = 240

// highlighter marks the positive words of a query in stored text, with the
// same analyzer that indexed it, so a mark is exactly a token that matched.
type highlighter struct {
	exact    map[string]bool
	prefixes []string
	terms    [][]string // per positive query term, its tokens (title share)
	prefixOf []bool     // per term: its last token is a prefix
}

func (hl *highlighter) add(tm Term) {
	toks := analyze(tm.Text)
	if len(toks) == 0 {
		return
	}
	prefix := tm.Prefix && !tm.Phrase && utf8.RuneCountInString(toks[len(toks)-1]) >= 2
	for i, t := range toks {
		if prefix && i == len(toks)-1 {
			hl.prefixes = append(hl.prefixes, t)
		} else {
			hl.exact[t] = true
		}
	}
	hl.terms = append(hl.terms, toks)
	hl.prefixOf = append(hl.prefixOf, prefix)
}

func (hl *highlighter) matches(tok string) bool {
	if hl.exact[tok] {
		return true
	}
	for _, p := range hl.prefixes {
		if strings.HasPrefix(tok, p) {
			return true
		}
	}
	return false
}

// titleShare is the share of the query's terms found whole in title.
func (hl *highlighter) titleShare(title string) float64 {
	if len(hl.terms) == 0 || title == "" {
		return 0
	}
	toks := analyze(title)
	found := 0
	for i, want := range hl.terms {
		all := true
		for j, w := range want {
			prefix := hl.prefixOf[i] && j == len(want)-1
			ok := false
			for _, t := range toks {
				if t == w || (prefix && strings.HasPrefix(t, w)) {
					ok = true
					break
				}
			}
			if !ok {
				all = false
				break
			}
		}
		if all {
			found++
		}
	}
	return float64(found) / float64(len(hl.terms))
}

// mark returns text with the matching tokens in <mark> and everything else
// HTML-escaped: the whole text when max is 0, otherwise a fragment of about
// max bytes around the first match, with … where it was cut. ok is false
// when nothing matches.
func (hl *highlighter) mark(text string, max int) (string, bool) {
	if text == "" {
		return "", false
	}
	toks := textAnalyzerInstance().Analyze([]byte(text))
	first := -1
	for i, t := range toks {
		if hl.matches(string(t.Term)) {
			first = i
			break
		}
	}
	if first < 0 {
		return "", false
	}
	start, end := 0, len(text)
	if max > 0 && len(text) > max {
		start = toks[first].Start - max/4
		if start < 0 {
			start = 0
		}
		// Start at a token boundary when there is one close by.
		for _, t := range toks {
			if t.Start >= start {
				if t.Start <= toks[first].Start {
					start = t.Start
				}
				break
			}
		}
		end = min(len(text), start+max)
		for end < len(text) && !utf8.RuneStart(text[end]) {
			end--
		}
	}
	var sb strings.Builder
	if start > 0 {
		sb.WriteString("…")
	}
	cur := start
	for _, t := range toks {
		if t.Start < cur || t.End > end {
			if t.Start >= end {
				break
			}
			continue
		}
		if !hl.matches(string(t.Term)) {
			continue
		}
		sb.WriteString(html.EscapeString(text[cur:t.Start]))
		sb.WriteString("<mark>")
		sb.WriteString(html.EscapeString(text[t.Start:t.End]))
		sb.WriteString("</mark>")
		cur = t.End
	}
	sb.WriteString(html.EscapeString(text[cur:end]))
	if end < len(text) {
		sb.WriteString("…")
	}
	return sb.String(), true
}
