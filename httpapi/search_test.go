package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi/apitest"
)

type searchItem struct {
	ID         string              `json:"id"`
	Kind       string              `json:"kind"`
	ProjectID  string              `json:"project_id"`
	TaskID     string              `json:"task_id"`
	Key        string              `json:"key"`
	Title      string              `json:"title"`
	Highlights map[string][]string `json:"highlights"`
}

type searchPage struct {
	Items      []searchItem `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

func search(t *testing.T, env *apitest.Env, token, query string) searchPage {
	t.Helper()
	r := env.Do("GET", "/api/v1/search?"+query, token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("search %s: %d %s", query, r.Status, r.Body)
	}
	var p searchPage
	r.JSON(t, &p)
	return p
}

func ids(p searchPage) []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.ID)
	}
	slices.Sort(out)
	return out
}

func newTask(t *testing.T, env *apitest.Env, token, project string, body map[string]any) string {
	t.Helper()
	return env.Create("/api/v1/projects/"+project+"/tasks", token, body)
}

// TestSearchPermissions: hits are confined to the caller's projects and
// workspace (a Guest never sees a project they are not in), filters and
// the query syntax work through the API, pages follow cursors.
func TestSearchPermissions(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("acme", "Acme", "owner@acme.test")
	guestID, guest := env.Join(a, "Gus Guest", "guest@acme.test", "guest")
	_, member := env.Join(a, "Mia Member", "member@acme.test", "member")
	open := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Open zebra project", "key": "OPEN"})
	other := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Other", "key": "OTH"})
	secret := env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Secret", "key": "SEC", "visibility": "private"})
	env.Do("PUT", "/api/v1/projects/"+open+"/members/"+guestID, a.Token, map[string]any{"role": "contributor"})

	tOpen := newTask(t, env, a.Token, open, map[string]any{"title": "Zebra crossing design", "assignees": []string{guestID}, "tags": []string{"ux"}, "due": "2026-12-01"})
	tOther := newTask(t, env, a.Token, other, map[string]any{"title": "Zebra stripes audit", "status": "Done", "tags": []string{"ux"}})
	tSecret := newTask(t, env, a.Token, secret, map[string]any{"title": "Zebra acquisition", "description": "the zebra deal"})
	cOpen := env.Create("/api/v1/tasks/"+tOpen+"/comments", a.Token, map[string]any{"body": "a striped zebra review"})
	cOther := env.Create("/api/v1/tasks/"+tOther+"/comments", a.Token, map[string]any{"body": "zebra notes"})

	b := env.Signup("globex", "Globex", "owner@globex.test")
	bp := env.Create("/api/v1/projects", b.Token, map[string]any{"name": "Globex zebra"})
	tB := newTask(t, env, b.Token, bp, map[string]any{"title": "Zebra from another workspace"})
	env.WaitIndexed()

	sorted := func(s ...string) []string { slices.Sort(s); return s }
	check := func(who, token, q string, want []string) searchPage {
		t.Helper()
		p := search(t, env, token, q)
		if got := ids(p); !slices.Equal(got, want) {
			t.Errorf("%s %q: got %v, want %v (%+v)", who, q, got, want, p.Items)
		}
		return p
	}
	all := sorted(open, tOpen, tOther, tSecret, cOpen, cOther)
	check("owner", a.Token, "q=zebra", all)
	check("guest", guest, "q=zebra", sorted(open, tOpen, cOpen))
	check("member", member, "q=zebra", sorted(open, tOpen, tOther, cOpen, cOther))
	check("globex", b.Token, "q=zebra", sorted(bp, tB))
	// Naming a project the caller may not see narrows to nothing.
	check("guest", guest, "q=zebra&project="+other, []string{})
	check("guest", guest, "q="+url.QueryEscape("zebra project:OTH"), []string{})
	check("owner of another workspace", b.Token, "q=zebra&project="+open, []string{})
	check("owner", a.Token, "q=zebra&project=OPEN,OTH&kind=task", sorted(tOpen, tOther))

	// Query syntax and URL filters.
	check("guest", guest, "q="+url.QueryEscape("assignee:me"), []string{tOpen})
	check("owner", a.Token, "q="+url.QueryEscape("zebra status:done"), []string{tOther})
	check("owner", a.Token, "status=done&kind=task", []string{tOther})
	check("owner", a.Token, "q="+url.QueryEscape("tag:ux -tag:nothing"), sorted(tOpen, tOther))
	check("owner", a.Token, "q="+url.QueryEscape("due:<2026-12-02"), []string{tOpen})
	check("owner", a.Token, "due_after=2026-12-02", []string{})
	check("owner", a.Token, "assignee=guest@acme.test", []string{tOpen})
	check("guest", guest, "assignee=me&status=&kind=", []string{tOpen})
	check("owner", a.Token, "q="+url.QueryEscape(`"zebra deal"`), []string{tSecret})
	check("owner", a.Token, "q=zeb&kind=task", sorted(tOpen, tOther, tSecret)) // the word being typed is a prefix
	p := check("owner", a.Token, "q=crossing", []string{tOpen})
	if it := p.Items[0]; it.Kind != "task" || it.Title != "Zebra crossing design" || !strings.HasPrefix(it.Key, "OPEN-") ||
		len(it.Highlights["title"]) == 0 || !strings.Contains(it.Highlights["title"][0], "<mark>crossing</mark>") {
		t.Errorf("hit %+v", it)
	}
	p = check("guest", guest, "q=striped", []string{cOpen})
	if it := p.Items[0]; it.Kind != "comment" || it.TaskID != tOpen || it.ProjectID != open {
		t.Errorf("comment hit %+v", it)
	}

	// A trashed task leaves the results at once (the store has the last
	// word) and the index soon after.
	if r := env.Do("DELETE", "/api/v1/tasks/"+tSecret, a.Token, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	check("owner", a.Token, "q=acquisition", []string{})

	// Pagination: 25 matches in pages of 10, none repeated or skipped.
	want := []string{}
	for i := range 25 {
		want = append(want, newTask(t, env, a.Token, other, map[string]any{"title": fmt.Sprintf("Quokka %d", i)}))
	}
	slices.Sort(want)
	env.WaitIndexed()
	for _, q := range []string{"q=quokka", "q=quokka&kind=task", "project=OTH&kind=task&q=" + url.QueryEscape("-zebra")} {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			p := search(t, env, a.Token, q+"&limit=10&cursor="+url.QueryEscape(cursor))
			if len(p.Items) > 10 || pages > 5 {
				t.Fatalf("%s: page of %d", q, len(p.Items))
			}
			for _, it := range p.Items {
				got = append(got, it.ID)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: paged %d hits, want %d", q, len(got), len(want))
		}
	}

	// A rebuild from the store answers exactly as the live index.
	queries := []string{"q=zebra", "q=quokka&limit=100", "q=" + url.QueryEscape("tag:ux"), "status=done", "q=striped"}
	before := map[string][]string{}
	for _, q := range queries {
		before[q] = ids(search(t, env, a.Token, q))
	}
	if err := env.Index.Rebuild(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		if got := ids(search(t, env, a.Token, q)); !slices.Equal(got, before[q]) {
			t.Errorf("after rebuild %s: %v, live index %v", q, got, before[q])
		}
	}
}

// TestSearchErrors: bad queries are 400 problems with a stable code; a
// closed index is 503 with Retry-After.
func TestSearchErrors(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("acme", "Acme", "owner@acme.test")
	env.Create("/api/v1/projects", a.Token, map[string]any{"name": "Web"})
	env.WaitIndexed()
	for q, code := range map[string]string{
		"q=" + url.QueryEscape("due:<tomorrow"):          "invalid_query",
		"kind=widget":                                    "invalid_query",
		"due_before=yesterday":                           "invalid_query",
		"q=" + strings.Repeat("a", 1001):                 "invalid_query",
		"q=" + url.QueryEscape(strings.Repeat("a ", 40)): "invalid_query",
		"q=web&cursor=not-a-cursor":                      "invalid_cursor",
	} {
		r := env.Do("GET", "/api/v1/search?"+q, a.Token, nil)
		m := r.Map(t)
		if r.Status != http.StatusBadRequest || m["code"] != code || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%.60s: %d %s", q, r.Status, r.Body)
		}
	}
	// A cursor of another query is refused too.
	for i := range 3 {
		env.Create("/api/v1/projects", a.Token, map[string]any{"name": fmt.Sprintf("Web %d", i)})
	}
	env.WaitIndexed()
	p := search(t, env, a.Token, "q=web&limit=1")
	if p.NextCursor == "" {
		t.Fatal("no next cursor")
	}
	if r := env.Do("GET", "/api/v1/search?q=other&limit=1&cursor="+url.QueryEscape(p.NextCursor), a.Token, nil); r.Status != http.StatusBadRequest || r.Map(t)["code"] != "invalid_cursor" {
		t.Errorf("foreign cursor: %d %s", r.Status, r.Body)
	}
	if r := env.Do("GET", "/api/v1/search?q=web", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("anonymous search: %d", r.Status)
	}
	env.Index.Close()
	r := env.Do("GET", "/api/v1/search?q=web", a.Token, nil)
	if r.Status != http.StatusServiceUnavailable || r.Map(t)["code"] != "index_closed" || r.Header.Get("Retry-After") == "" {
		t.Errorf("closed index: %d %v %s", r.Status, r.Header, r.Body)
	}
}

// TestSavedFilters: private filters are their creator's, shared ones the
// workspace's; only the creator or an Admin deletes a shared one.
func TestSavedFilters(t *testing.T) {
	env := apitest.New(t, engine.ModeCloud)
	a := env.Signup("acme", "Acme", "owner@acme.test")
	_, member := env.Join(a, "Mia Member", "member@acme.test", "member")
	_, member2 := env.Join(a, "Max Member", "max@acme.test", "member")
	_, guest := env.Join(a, "Gus Guest", "guest@acme.test", "guest")

	private := env.Create("/api/v1/filters", member, map[string]any{"name": "My open work", "query": "assignee:me status:todo"})
	shared := env.Create("/api/v1/filters", member, map[string]any{"name": "Due soon", "query": "due:<2026-12-01", "shared": true})
	list := func(token string) []string {
		var p struct{ Items []struct{ ID string } }
		r := env.Do("GET", "/api/v1/filters", token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &p)
		out := []string{}
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		return out
	}
	if got := list(member); len(got) != 2 {
		t.Errorf("creator sees %v", got)
	}
	if got := list(member2); !slices.Equal(got, []string{shared}) {
		t.Errorf("another member sees %v", got)
	}
	if r := env.Do("GET", "/api/v1/filters/"+private, member2, nil); r.Status != http.StatusNotFound {
		t.Errorf("another's private filter: %d", r.Status)
	}
	if r := env.Do("GET", "/api/v1/filters/"+shared, guest, nil); r.Status != http.StatusOK || r.Map(t)["query"] != "due:<2026-12-01" {
		t.Errorf("shared filter as guest: %d %s", r.Status, r.Body)
	}
	if r := env.Do("POST", "/api/v1/filters", guest, map[string]any{"name": "g", "query": "x", "shared": true}); r.Status != http.StatusForbidden {
		t.Errorf("guest shares: %d %s", r.Status, r.Body)
	}
	if r := env.Do("POST", "/api/v1/filters", guest, map[string]any{"name": "g", "query": "x"}); r.Status != http.StatusCreated {
		t.Errorf("guest saves a private filter: %d %s", r.Status, r.Body)
	}
	if r := env.Do("POST", "/api/v1/filters", member, map[string]any{"name": "bad", "query": "due:<soon"}); r.Status != http.StatusUnprocessableEntity || r.Map(t)["code"] != "invalid_query" {
		t.Errorf("bad query saved: %d %s", r.Status, r.Body)
	}
	if r := env.Do("DELETE", "/api/v1/filters/"+shared, member2, nil); r.Status != http.StatusForbidden {
		t.Errorf("another member deletes a shared filter: %d %s", r.Status, r.Body)
	}
	if r := env.Do("DELETE", "/api/v1/filters/"+private, member2, nil); r.Status != http.StatusNotFound {
		t.Errorf("another member deletes a private filter: %d %s", r.Status, r.Body)
	}
	if r := env.Do("DELETE", "/api/v1/filters/"+shared, a.Token, nil); r.Status != http.StatusNoContent {
		t.Errorf("owner deletes a shared filter: %d %s", r.Status, r.Body)
	}
	if r := env.Do("DELETE", "/api/v1/filters/"+private, member, nil); r.Status != http.StatusNoContent {
		t.Errorf("creator deletes: %d %s", r.Status, r.Body)
	}
	if got := list(member); len(got) != 0 {
		t.Errorf("left %v", got)
	}
	// Another workspace's filter IDs are not found.
	b := env.Signup("globex", "Globex", "owner@globex.test")
	bf := env.Create("/api/v1/filters", b.Token, map[string]any{"name": "theirs", "query": "x", "shared": true})
	for _, m := range []string{"GET", "DELETE"} {
		if r := env.Do(m, "/api/v1/filters/"+bf, a.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s another workspace's filter: %d", m, r.Status)
		}
	}
}
