package index

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/teamflow/teamflow/storage"
)

// FuzzSearchQuery (RELIABILITY F2): whatever the text, Parse never panics,
// the compiled query is always confined to the tenant's allowed projects,
// and running it returns no hit outside them.
func FuzzSearchQuery(f *testing.F) {
	for _, s := range []string{
		"", "design", "design review", `"release notes"`, "-draft keep", "assignee:me status:done", `status:"In progress"`,
		"tag:backend,frontend -tag:wontfix", "project:WEB kind:task", "project:SECRET", "-project:WEB", "due:<2026-12-01",
		"due:>=2026-11-01T10:00:00+02:00", "due:2026-11-15", "WEB-12", "SECRET-1", "kind:comment,project", `"`, "-", "--", `-"`,
		"tag:", `status:"`, "due:<", "due:<<2026-12-01", "status:done,", ":::", "a:b:c", "project:" + fuzzAllowed[0],
		"café naïve", "日本語 検索", "\x00\xff", "*", "?", "title:x", "_id:t:1", "+required", "field:\"quoted value\" rest",
		"assignee:me,u2 -assignee:u3", "status:todo status:done", "kind:task kind:project",
	} {
		f.Add(s)
	}
	fx := fuzzFixture(f)
	tbl, err := fx.ix.projectTable(fx.ix.tenantLocked("fz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("Parse(%q): untyped error %v", text, err)
			}
			return
		}
		q := Query{Text: text, Allowed: fuzzAllowed, Me: "u1"}
		pl, err := compile(p, &q, tbl)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("compile(%q): %v", text, err)
			}
			return
		}
		if !pl.none {
			sq := pl.scoped()
			if len(sq.allowed) == 0 {
				t.Fatalf("%q: a query with no project scope", text)
			}
			for _, id := range sq.allowed {
				if !slices.Contains(fuzzAllowed, id) {
					t.Fatalf("%q: scope names %s, not an allowed project", text, id)
				}
			}
		}
		res, err := fx.ix.Search(context.Background(), "fz", q)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("Search(%q): %v", text, err)
			}
			return
		}
		for _, h := range res.Hits {
			if !slices.Contains(fuzzAllowed, h.ProjectID) {
				t.Fatalf("Search(%q) returned %s %s of project %s", text, h.Kind, h.ID, h.ProjectID)
			}
		}
	})
}

var (
	fuzzAllowed = []string{"p-open"}
	fuzzOnce    sync.Once
	fuzzFix     *fixture
)

// fuzzFixture is one tenant with an allowed and a secret project, built
// once per process (fuzz workers reuse it); TestMain removes it.
func fuzzFixture(tb testing.TB) *fixture {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "index-fuzz-")
		if err != nil {
			tb.Fatal(err)
		}
		benchDirs = append(benchDirs, dir)
		st, err := storage.Open(filepath.Join(dir, "store"), storage.Options{NoSync: true})
		if err != nil {
			tb.Fatal(err)
		}
		f := &fixture{t: tb, st: st, idxDir: filepath.Join(dir, "index"), vers: map[string]uint64{}, stamps: map[string]uint64{}}
		f.openIndex()
		f.log = storage.NewLocalLog(st, storage.LocalLogOptions{})
		open := &engProject{ID: "p-open", Key: "WEB", Name: "design web", Statuses: defaultStatuses()}
		secret := &engProject{ID: "p-secret", Key: "SECRET", Name: "design secret", Statuses: defaultStatuses()}
		f.putProject("fz", open)
		f.putProject("fz", secret)
		for i, p := range []*engProject{open, secret, open, secret} {
			task := &engTask{ID: f.id("t"), ProjectID: p.ID, Title: "design review release notes café 日本語", Description: "draft keep old plan",
				StatusID: []string{"todo", "done"}[i%2], Assignees: []string{"u1"}, Tags: []string{"backend"}, Due: "2026-11-15"}
			f.putTask("fz", task)
			f.putComment("fz", &engComment{ID: f.id("c"), TaskID: task.ID, ProjectID: p.ID, Body: "design comment"})
		}
		f.settle()
		fuzzFix = f
	})
	return fuzzFix
}
