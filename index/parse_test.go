package index

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	w := func(s string) Term { return Term{Text: s} }
	cases := []struct {
		in   string
		want Parsed
	}{
		{"", Parsed{}},
		{"design", Parsed{Terms: []Term{{Text: "design", Prefix: true}}}},
		{"design ", Parsed{Terms: []Term{w("design")}}},
		{"design review", Parsed{Terms: []Term{w("design"), {Text: "review", Prefix: true}}}},
		{`"release notes" draft`, Parsed{Terms: []Term{{Text: "release notes", Phrase: true}, {Text: "draft", Prefix: true}}}},
		{`-draft -"old plan" keep`, Parsed{Terms: []Term{{Text: "draft", Negated: true}, {Text: "old plan", Phrase: true, Negated: true}, {Text: "keep", Prefix: true}}}},
		{"x -", Parsed{Terms: []Term{w("x"), {Text: "-", Prefix: true}}}},
		{"assignee:me status:done", Parsed{Filters: []Filter{{Field: FieldAssignee, Values: []string{"me"}}, {Field: FieldStatus, Values: []string{"done"}}}}},
		{`status:"In progress" bug`, Parsed{Terms: []Term{{Text: "bug", Prefix: true}}, Filters: []Filter{{Field: FieldStatus, Values: []string{"In progress"}}}}},
		{"TAG:backend,frontend -tag:wontfix", Parsed{Filters: []Filter{{Field: FieldTag, Values: []string{"backend", "frontend"}}, {Field: FieldTag, Values: []string{"wontfix"}, Negated: true}}}},
		{"project:WEB kind:tasks,comment", Parsed{Filters: []Filter{{Field: FieldProject, Values: []string{"WEB"}}, {Field: FieldKind, Values: []string{KindTask, KindComment}}}}},
		{"due:<2026-12-01 due:>=2026-11-01 due:2026-11-15 due:>2026-11-02T10:00:00+02:00", Parsed{Filters: []Filter{
			{Field: FieldDue, Op: "<", Values: []string{"2026-12-01"}}, {Field: FieldDue, Op: ">=", Values: []string{"2026-11-01"}},
			{Field: FieldDue, Op: "=", Values: []string{"2026-11-15"}}, {Field: FieldDue, Op: ">", Values: []string{"2026-11-02T10:00:00+02:00"}}}}},
		// Unknown fields are text; an empty filter is someone still typing.
		{"ratio:3 tag:", Parsed{Terms: []Term{w("ratio:3")}}},
		{`status:"unterminated`, Parsed{Filters: []Filter{{Field: FieldStatus, Values: []string{"unterminated"}}}}},
		{`"open phrase`, Parsed{Terms: []Term{{Text: "open phrase", Phrase: true}}}},
		{"WEB-12", Parsed{Terms: []Term{{Text: "WEB-12", Prefix: true}}}},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"due:<tomorrow", "due:2026-02-30", "kind:user", "due:2026-01-01,2026-01-02",
		strings.Repeat("a ", 40), strings.Repeat("x", MaxQueryBytes+1), "tag:" + strings.Repeat("a,", 101)} {
		_, err := Parse(bad)
		var ie *Error
		if !errors.Is(err, ErrBadQuery) || !errors.As(err, &ie) || ie.Code() != "invalid_query" || ie.Unavailable() {
			t.Errorf("Parse(%.40q): want an invalid_query error, got %v", bad, err)
		}
	}
}

func TestStatusTerms(t *testing.T) {
	tbl := &projectTable{byID: map[string]*projRec{
		"a": {ID: "a", Statuses: []statusInfo{{"todo", "To do", "todo"}, {"done", "Done", "done"}}},
		"b": {ID: "b", Statuses: []statusInfo{{"todo", "To do", "todo"}, {"done", "Done", "done"}}},
		"c": {ID: "c", Statuses: []statusInfo{{"new", "New", "todo"}, {"done", "Almost", "in_progress"}, {"shipped", "Shipped", "done"}}},
	}}
	field, terms := statusTerms(tbl, []string{"a", "b"}, []string{"done"})
	if field != "status" || !reflect.DeepEqual(terms, []string{"done"}) {
		t.Fatalf("shared workflow: %s %v", field, terms)
	}
	// In c, "done" is an in-progress status: pairs are needed.
	field, terms = statusTerms(tbl, []string{"a", "c"}, []string{"done"})
	if field != "pstatus" || !reflect.DeepEqual(terms, []string{"a/done", "c/shipped"}) {
		t.Fatalf("mixed workflows: %s %v", field, terms)
	}
	// Only c has an in-progress status, and its ID means done in a.
	field, terms = statusTerms(tbl, []string{"a", "c"}, []string{"In-Progress"})
	if field != "pstatus" || !reflect.DeepEqual(terms, []string{"c/done"}) {
		t.Fatalf("category across workflows: %s %v", field, terms)
	}
	// A value that is not a category names a status by name or ID.
	field, terms = statusTerms(tbl, []string{"a", "c"}, []string{"almost", "shipped"})
	if field != "pstatus" || !reflect.DeepEqual(terms, []string{"c/done", "c/shipped"}) {
		t.Fatalf("names and IDs: %s %v", field, terms)
	}
}

func TestTenantDirName(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"acme", "ACME", "a/b", "..", "", "01a21475-7bc4-78ab-8ff9-154ff3d8c329", strings.Repeat("x", 300), "t-acme", "h-61636d65"} {
		d := tenantDirName(id)
		if strings.ContainsAny(d, "/\\") || d == "." || d == ".." || len(d) > 200 {
			t.Errorf("%q → unsafe %q", id, d)
		}
		if prev, ok := seen[d]; ok {
			t.Errorf("%q and %q share %q", prev, id, d)
		}
		seen[d] = id
	}
}
