package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// seedTenant writes a project and n tasks titled "<word> task <i>".
func seedTenant(f *fixture, tenant, word string, n int) *engProject {
	p := &engProject{ID: f.id("p"), Key: "KEY", Name: word + " project", Statuses: defaultStatuses(), UpdatedAt: 1}
	f.putProject(tenant, p)
	for i := range n {
		f.putTask(tenant, &engTask{ID: f.id("t"), ProjectID: p.ID, Title: fmt.Sprintf("%s task %d", word, i), StatusID: "todo", UpdatedAt: int64(10 + i)})
	}
	return p
}

func mustEqual(t *testing.T, f *fixture, tenant string) Report {
	t.Helper()
	rep, err := f.ix.Verify(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() {
		t.Fatalf("tenant %s: index differs from the store: %v", tenant, rep)
	}
	return rep
}

// TestLazyOpenUnderCap: 200 workspaces, at most 20 indexes open at any
// time; every workspace finds its own records and only those.
func TestLazyOpenUnderCap(t *testing.T) {
	f := newFixture(t, Options{MaxOpen: 20})
	if st := f.ix.Stats(); st.Open != 0 {
		t.Fatalf("Open opened %d indexes", st.Open)
	}
	projects := map[string]*engProject{}
	for i := range 200 {
		tn := fmt.Sprintf("ws%03d", i)
		projects[tn] = seedTenant(f, tn, fmt.Sprintf("word%03d", i), 2)
	}
	f.settle()
	for i := range 200 {
		tn := fmt.Sprintf("ws%03d", i)
		res := f.search(tn, Query{Text: "task", Allowed: []string{projects[tn].ID}})
		if len(res.Hits) != 2 {
			t.Fatalf("%s: %d hits", tn, len(res.Hits))
		}
		other := f.search(tn, Query{Text: fmt.Sprintf("word%03d", (i+1)%200), Allowed: []string{projects[tn].ID, projects[fmt.Sprintf("ws%03d", (i+1)%200)].ID}})
		if len(other.Hits) != 0 {
			t.Fatalf("%s found another workspace's records: %v", tn, hitIDs(other))
		}
	}
	st := f.ix.Stats()
	t.Logf("stats: %+v", st)
	if st.MaxOpen > 20 || st.Open > 20 {
		t.Fatalf("open indexes went over the cap: %+v", st)
	}
	if st.Evictions < 180 {
		t.Fatalf("expected indexes to be closed to make room: %+v", st)
	}

	// A cold start opens nothing: 200 tenant directories, no index opened
	// until a tenant is used.
	f.log.Close()
	f.ix.Close()
	start := time.Now()
	f.openIndex()
	took := time.Since(start)
	if st := f.ix.Stats(); st.Open != 0 {
		t.Fatalf("start opened %d indexes", st.Open)
	}
	t.Logf("index start with 200 workspaces on disk: %v", took)
	res, err := f.ix.Search(context.Background(), "ws007", Query{Text: "word007", Allowed: []string{projects["ws007"].ID}})
	if err != nil || len(res.Hits) != 3 {
		t.Fatalf("after restart: %v %v", hitIDs(res), err)
	}
	if st := f.ix.Stats(); st.Rebuilds != 0 || st.Reconciles != 0 {
		t.Fatalf("a clean restart rebuilt or reconciled: %+v", st)
	}
}

// TestIdleClose: an index unused for IdleTimeout is closed, and reopens
// on the next search.
func TestIdleClose(t *testing.T) {
	f := newFixture(t, Options{IdleTimeout: 50 * time.Millisecond})
	p := seedTenant(f, "acme", "idle", 3)
	f.settle()
	f.search("acme", Query{Text: "idle", Allowed: []string{p.ID}})
	deadline := time.Now().Add(10 * time.Second)
	for f.ix.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle index never closed: %+v", f.ix.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res := f.search("acme", Query{Text: "idle", Allowed: []string{p.ID}}); len(res.Hits) != 4 {
		t.Fatalf("after reopening: %v", hitIDs(res))
	}
}

// TestRestartResumes: commands applied while the index was down (a crash,
// or a node started without it) are found missing at open and reconciled;
// a clean restart neither rebuilds nor reconciles.
func TestRestartResumes(t *testing.T) {
	f := newFixture(t, Options{})
	p := seedTenant(f, "acme", "first", 5)
	f.login("acme")
	f.settle()
	mustEqual(t, f, "acme")

	// Down: the index is closed and nobody observes.
	f.ix.Close()
	f.ix = nil
	for i := range 5 {
		f.putTask("acme", &engTask{ID: f.id("t"), ProjectID: p.ID, Title: fmt.Sprintf("second task %d", i), StatusID: "done", UpdatedAt: 100})
	}
	f.purge("acme", storage.K("task", fmt.Sprintf("t%08d-0000-7000-8000-000000000000", 2)))
	f.openIndex()
	// The first search opens the index, sees the gap and owes a
	// reconcile; the worker does it.
	f.search("acme", Query{Text: "task", Allowed: []string{p.ID}})
	f.settle()
	rep := mustEqual(t, f, "acme")
	// At most one reconcile and never a rebuild; the writes below must be
	// there either way. (On a loaded machine the gap is sometimes closed
	// by ingestion before the first search asks for a reconcile.)
	if st := f.ix.Stats(); st.Reconciles > 1 || st.Rebuilds != 0 {
		t.Fatalf("want at most one reconcile and no rebuild: %+v", st)
	}
	if res := f.search("acme", Query{Text: "second", Allowed: []string{p.ID}}); len(res.Hits) != 5 {
		t.Fatalf("missed writes not indexed: %v", hitIDs(res))
	}
	t.Logf("after reconcile: %v", rep)

	// Clean restart with writes that touch nothing indexed in between:
	// nothing to do.
	f.ix.Close()
	f.openIndex()
	f.login("acme")
	f.settle()
	f.search("acme", Query{Text: "task", Allowed: []string{p.ID}})
	f.settle()
	if st := f.ix.Stats(); st.Reconciles != 0 || st.Rebuilds != 0 {
		t.Fatalf("clean restart: %+v", st)
	}
	mustEqual(t, f, "acme")
}

// TestClosedTenantAdvance: commands that touch nothing indexed keep a
// closed index closed, and are remembered (advances.json) so the next
// start does not mistake them for missed commands.
func TestClosedTenantAdvance(t *testing.T) {
	f := newFixture(t, Options{MaxOpen: 1})
	pa := seedTenant(f, "a", "alpha", 2)
	pb := seedTenant(f, "b", "bravo", 2)
	f.settle()
	// b's index is open (the last used); a's was closed to make room.
	for range 5 {
		f.login("a")
	}
	f.settle()
	if st := f.ix.Stats(); st.Open != 1 {
		t.Fatalf("%+v", st)
	}
	f.ix.Close()
	if _, err := os.Stat(filepath.Join(f.idxDir, advancesFile)); err != nil {
		t.Fatal(err)
	}
	f.openIndex()
	f.search("a", Query{Text: "alpha", Allowed: []string{pa.ID}})
	f.search("b", Query{Text: "bravo", Allowed: []string{pb.ID}})
	f.settle()
	if st := f.ix.Stats(); st.Reconciles != 0 || st.Rebuilds != 0 {
		t.Fatalf("advances were not kept: %+v", st)
	}
}

// TestDamagedIndexRebuilds: a damaged index is rebuilt in the background;
// meanwhile the tenant's searches answer ErrRebuilding (a 503), other
// tenants are not affected.
func TestDamagedIndexRebuilds(t *testing.T) {
	f := newFixture(t, Options{RebuildWait: -1})
	pa := seedTenant(f, "a", "alpha", 50)
	pb := seedTenant(f, "b", "bravo", 3)
	f.settle()
	f.ix.Close()
	// Damage every file of a's index.
	dir := filepath.Join(f.idxDir, tenantDirName("a"))
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != "CURRENT" {
			os.WriteFile(path, bytes.Repeat([]byte{0xee}, 64), 0o644)
		}
		return nil
	})
	f.openIndex()
	_, err := f.ix.Search(context.Background(), "a", Query{Text: "alpha", Allowed: []string{pa.ID}})
	var ie *Error
	if !errors.Is(err, ErrRebuilding) || !errors.As(err, &ie) || !ie.Unavailable() || ie.Code() != "index_rebuilding" {
		t.Fatalf("damaged index: %v", err)
	}
	if res := f.search("b", Query{Text: "bravo", Allowed: []string{pb.ID}}); len(res.Hits) != 4 {
		t.Fatalf("other tenant: %v", hitIDs(res))
	}
	f.settle()
	if res := f.search("a", Query{Text: "alpha", Allowed: []string{pa.ID}}); len(res.Hits) != 51 && res.Total != 51 {
		t.Fatalf("after rebuild: %d %v", res.Total, hitIDs(res))
	}
	mustEqual(t, f, "a")
	if st := f.ix.Stats(); st.Rebuilds != 1 {
		t.Fatalf("%+v", st)
	}
}

// TestRebuildWhileWriting: Rebuild under a stream of writes ends equal to
// the store (commands applied during the scan are replayed).
func TestRebuildWhileWriting(t *testing.T) {
	f := newFixture(t, Options{})
	p := seedTenant(f, "a", "alpha", 300)
	f.settle()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			f.putTask("a", &engTask{ID: f.id("t"), ProjectID: p.ID, Title: fmt.Sprintf("during %d", i), StatusID: "todo", UpdatedAt: 5})
		}
	}()
	if err := f.ix.Rebuild(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	<-done
	f.settle()
	mustEqual(t, f, "a")
	if res := f.search("a", Query{Text: "during", Allowed: []string{p.ID}, Limit: 100}); res.Total != 200 {
		t.Fatalf("writes during the rebuild: %d", res.Total)
	}
}

// TestDeletesLeaveTheIndex: deleted and purged tasks, comments and
// projects leave the index; a task's comments are hidden while the task
// is in the trash and come back with it.
func TestDeletesLeaveTheIndex(t *testing.T) {
	f := newFixture(t, Options{})
	p := &engProject{ID: f.id("p"), Key: "WEB", Name: "web", Statuses: defaultStatuses()}
	f.putProject("a", p)
	task := &engTask{ID: f.id("t"), ProjectID: p.ID, Title: "kiwi task", StatusID: "todo"}
	f.putTask("a", task)
	c1 := &engComment{ID: f.id("c"), TaskID: task.ID, ProjectID: p.ID, Body: "kiwi comment one"}
	c2 := &engComment{ID: f.id("c"), TaskID: task.ID, ProjectID: p.ID, Body: "kiwi comment two"}
	f.putComment("a", c1)
	f.putComment("a", c2)
	count := func() int {
		f.settle()
		mustEqual(t, f, "a")
		return int(f.search("a", Query{Text: "kiwi", Allowed: []string{p.ID}}).Total)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d", n)
	}
	c2.DeletedAt = 1
	f.putComment("a", c2)
	if n := count(); n != 2 {
		t.Fatalf("deleted comment: %d", n)
	}
	task.DeletedAt = 1
	f.putTask("a", task)
	if n := count(); n != 0 {
		t.Fatalf("trashed task and its comment: %d", n)
	}
	// A comment written while its task is in the trash stays hidden.
	f.putComment("a", &engComment{ID: f.id("c"), TaskID: task.ID, ProjectID: p.ID, Body: "kiwi late"})
	if n := count(); n != 0 {
		t.Fatalf("comment on a trashed task: %d", n)
	}
	task.DeletedAt = 0
	f.putTask("a", task)
	if n := count(); n != 3 {
		t.Fatalf("restored task with its live comments: %d", n)
	}
	f.purge("a", storage.K("cmt", c1.ID))
	if n := count(); n != 2 {
		t.Fatalf("purged comment: %d", n)
	}
	f.purge("a", storage.K("task", task.ID))
	if n := count(); n != 0 {
		t.Fatalf("purged task (its comments go with it): %d", n)
	}
	p.DeletedAt = 1
	f.putProject("a", p)
	f.settle()
	if res := f.search("a", Query{Text: "web", Allowed: []string{p.ID}}); len(res.Hits) != 0 {
		t.Fatalf("deleted project: %v", hitIDs(res))
	}
	// A range delete of records is followed by a reconcile.
	t2 := &engTask{ID: f.id("t"), ProjectID: p.ID, Title: "kiwi again", StatusID: "todo"}
	f.putTask("a", t2)
	f.putComment("a", &engComment{ID: f.id("c"), TaskID: t2.ID, ProjectID: p.ID, Body: "kiwi on again"})
	if n := count(); n != 2 {
		t.Fatalf("%d", n)
	}
	f.propose("a", "wipe", storage.Op{Type: storage.OpDeleteRange, Key: storage.K("cmt")})
	if n := count(); n != 1 {
		t.Fatalf("after range delete: %d", n)
	}
}

// TestSnapshotInstalled: after the store is replaced by a snapshot (whose
// commands were never observed), SnapshotInstalled brings the index to the
// new state.
func TestSnapshotInstalled(t *testing.T) {
	src := newFixture(t, Options{})
	src.seq.Store(1_000_000) // IDs of another history never collide
	p := seedTenant(src, "a", "fresh", 20)
	src.settle()
	var snap bytes.Buffer
	idx, err := src.st.WriteSnapshot(&snap)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, Options{})
	old := seedTenant(f, "a", "stale", 5)
	f.settle()
	if err := f.st.InstallSnapshot(bytes.NewReader(snap.Bytes()), idx); err != nil {
		t.Fatal(err)
	}
	f.openedAt = idx
	f.ix.SnapshotInstalled()
	f.settle()
	mustEqual(t, f, "a")
	if res := f.search("a", Query{Text: "fresh", Allowed: []string{p.ID, old.ID}}); res.Total != 21 {
		t.Fatalf("fresh: %v", res.Total)
	}
	if res := f.search("a", Query{Text: "stale", Allowed: []string{p.ID, old.ID}}); res.Total != 0 {
		t.Fatalf("stale: %v", res.Total)
	}
}

// TestPagination: cursors walk every hit once, for a text query and a
// filter-only one; a cursor is refused for another query.
func TestPagination(t *testing.T) {
	f := newFixture(t, Options{})
	p := seedTenant(f, "a", "page", 250)
	newest := f.id("t") // not written; tells the last ID used
	f.settle()
	for _, text := range []string{"page", "status:todo", "pag"} {
		q := Query{Text: text, Allowed: []string{p.ID}, Limit: 33}
		seen := map[string]bool{}
		for n := 0; ; n++ {
			res := f.search("a", q)
			for _, h := range res.Hits {
				if seen[h.ID] {
					t.Fatalf("%q: %s twice", text, h.ID)
				}
				seen[h.ID] = true
			}
			if res.NextCursor == "" {
				break
			}
			q.Cursor = res.NextCursor
		}
		want := 250
		if text != "status:todo" {
			want = 251 // the project's name matches too
		}
		if len(seen) != want {
			t.Fatalf("%q: walked %d hits, want %d", text, len(seen), want)
		}
	}
	first := f.search("a", Query{Text: "page", Allowed: []string{p.ID}, Limit: 10})
	_, err := f.ix.Search(context.Background(), "a", Query{Text: "other", Allowed: []string{p.ID}, Cursor: first.NextCursor})
	if !errors.Is(err, ErrBadCursor) {
		t.Fatalf("cursor of another query: %v", err)
	}
	_, err = f.ix.Search(context.Background(), "b", Query{Text: "page", Allowed: []string{p.ID}, Cursor: first.NextCursor})
	if !errors.Is(err, ErrBadCursor) {
		t.Fatalf("cursor of another tenant: %v", err)
	}
	for _, bad := range []string{"x", "!!!", strings.Repeat("A", 600)} {
		if _, err := f.ix.Search(context.Background(), "a", Query{Text: "page", Allowed: []string{p.ID}, Cursor: bad}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}
	// Recency order of a filter-only listing.
	res := f.search("a", Query{Text: "status:todo", Allowed: []string{p.ID}, Limit: 5})
	if len(res.Hits) != 5 || res.Hits[0].ID >= newest || res.Hits[0].ID < res.Hits[1].ID || res.Hits[1].ID < res.Hits[4].ID {
		t.Fatalf("newest first: %v", hitIDs(res))
	}
}

// TestHighlightsEscaped: highlights mark the matches and escape the rest.
func TestHighlightsEscaped(t *testing.T) {
	f := newFixture(t, Options{})
	p := &engProject{ID: f.id("p"), Key: "WEB", Name: "web", Statuses: defaultStatuses()}
	f.putProject("a", p)
	body := strings.Repeat("filler words here ", 40) + `<script>alert("x")</script> the Café matters & more ` + strings.Repeat("tail words ", 40)
	f.putTask("a", &engTask{ID: f.id("t"), ProjectID: p.ID, Title: `<img src=x onerror=1> Cafe plan`, Description: body, StatusID: "todo"})
	f.settle()
	res := f.search("a", Query{Text: "cafe", Allowed: []string{p.ID}})
	if len(res.Hits) != 1 {
		t.Fatalf("%v", hitIDs(res))
	}
	hl := res.Hits[0].Highlights
	if got := hl["title"]; len(got) != 1 || got[0] != "&lt;img src=x onerror=1&gt; <mark>Cafe</mark> plan" {
		t.Fatalf("title: %q", got)
	}
	b := hl["body"]
	if len(b) != 1 || !strings.Contains(b[0], "<mark>Café</mark>") || !strings.Contains(b[0], "&lt;script&gt;") || !strings.HasPrefix(b[0], "…") || !strings.HasSuffix(b[0], "…") {
		t.Fatalf("body: %q", b)
	}
	stripped := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(b[0] + hl["title"][0])
	if strings.ContainsAny(stripped, "<>") {
		t.Fatalf("unescaped markup: %q", stripped)
	}
}

// TestTenantWipe: deleting a workspace's whole keyspace replaces its index
// by an empty generation and removes the old generation's files, so no
// byte of its text stays in the index directory (RELIABILITY T6).
func TestTenantWipe(t *testing.T) {
	f := newFixture(t, Options{})
	p := seedTenant(f, "gone", "zanzibarcanary", 20)
	keep := seedTenant(f, "kept", "other", 3)
	f.settle()
	f.propose("gone", "tenant.delete", storage.Op{Type: storage.OpDeleteRange})
	f.settle()
	mustEqual(t, f, "gone")
	if res := f.search("gone", Query{Text: "zanzibarcanary", Allowed: []string{p.ID}}); res.Total != 0 {
		t.Fatalf("wiped tenant still answers: %v", hitIDs(res))
	}
	found := 0
	filepath.Walk(filepath.Join(f.idxDir, tenantDirName("gone")), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("zanzibarcanary")) {
				found++
			}
		}
		return nil
	})
	if found != 0 {
		t.Fatalf("%d files still hold the wiped tenant's text", found)
	}
	if res := f.search("kept", Query{Text: "other", Allowed: []string{keep.ID}}); res.Total != 4 {
		t.Fatalf("other tenant: %d", res.Total)
	}
}
