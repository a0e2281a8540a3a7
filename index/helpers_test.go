package index

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// The records as the engine writes them (engine/tasks.go, projects.go,
// comments.go): same JSON, same keys, same versions and stamps.

type engStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
}

type engProject struct {
	ID          string      `json:"id"`
	Key         string      `json:"key"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Visibility  string      `json:"visibility"`
	Statuses    []engStatus `json:"statuses"`
	CreatedBy   string      `json:"created_by"`
	CreatedAt   int64       `json:"created_at"`
	UpdatedBy   string      `json:"updated_by"`
	UpdatedAt   int64       `json:"updated_at"`
	DeletedAt   int64       `json:"deleted_at,omitempty"`
	DeletedBy   string      `json:"deleted_by,omitempty"`
}

type engTask struct {
	ID          string   `json:"id"`
	ProjectID   string   `json:"project_id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	StatusID    string   `json:"status_id"`
	Assignees   []string `json:"assignees"`
	Due         string   `json:"due,omitempty"`
	Priority    string   `json:"priority"`
	Tags        []string `json:"tags"`
	ParentID    string   `json:"parent_id,omitempty"`
	Position    string   `json:"position"`
	CreatedBy   string   `json:"created_by"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedBy   string   `json:"updated_by"`
	UpdatedAt   int64    `json:"updated_at"`
	DeletedAt   int64    `json:"deleted_at,omitempty"`
	DeletedBy   string   `json:"deleted_by,omitempty"`
}

type engComment struct {
	ID        string `json:"id"`
	TaskID    string `json:"task_id"`
	ProjectID string `json:"project_id"`
	AuthorID  string `json:"author_id"`
	Body      string `json:"body"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
	DeletedAt int64  `json:"deleted_at,omitempty"`
}

func defaultStatuses() []engStatus {
	return []engStatus{{"todo", "To do", "todo"}, {"in_progress", "In progress", "in_progress"}, {"done", "Done", "done"}}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fixture is a real store and LocalLog with an Index observing it.
type fixture struct {
	t      testing.TB
	st     *storage.Store
	log    *storage.LocalLog
	ix     *Index
	idxDir string
	opts   Options
	// openedAt is the store's applied index when the index was opened (or
	// a snapshot installed): entries up to it are never delivered to it.
	openedAt uint64
	seq      atomic.Uint64
	vers     map[string]uint64 // record key → version
	stamps   map[string]uint64
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	st, err := storage.Open(t.TempDir(), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, idxDir: t.TempDir(), opts: opts, vers: map[string]uint64{}, stamps: map[string]uint64{}}
	f.openIndex()
	f.log = storage.NewLocalLog(st, storage.LocalLogOptions{})
	t.Cleanup(func() {
		// The order cmd uses: the log, the index (it may be scanning the
		// store for a rebuild), the store.
		f.log.Close()
		if f.ix != nil {
			f.ix.Close()
		}
		st.Close()
	})
	return f
}

func (f *fixture) openIndex() {
	f.t.Helper()
	ix, err := Open(f.idxDir, f.st, f.opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ix = ix
	f.openedAt = f.st.AppliedIndex()
	// A closed index ignores what it is handed, as in cmd.
	f.st.Observe(ix.Observe)
}

func (f *fixture) id(prefix string) string {
	return fmt.Sprintf("%s%08d-0000-7000-8000-000000000000", prefix, f.seq.Add(1))
}

func (f *fixture) propose(tenant, kind string, ops ...storage.Op) storage.Result {
	f.t.Helper()
	res, err := f.log.Propose(context.Background(), &storage.Command{RequestID: f.id("r"), Tenant: tenant, Kind: kind, Actor: "u", At: 1, Ops: ops})
	if err != nil || res.Err != nil {
		f.t.Fatalf("propose %s: %v %v", kind, err, res.Err)
	}
	return res
}

// activity is the typed entry every engine command carries; the index
// must ignore it.
func activity(f *fixture) storage.Op {
	return storage.Op{Type: storage.OpPut, Key: storage.K("act", f.id("a")), Value: []byte(`{"kind":"x"}`), Version: 1}
}

func (f *fixture) putProject(tenant string, p *engProject) {
	k := storage.K("proj", p.ID)
	v := f.vers[tenant+string(k)] + 1
	f.vers[tenant+string(k)] = v
	ops := []storage.Op{{Type: storage.OpPut, Key: k, Value: mustJSON(p), Version: v}}
	if v == 1 {
		ops = append(ops, storage.Op{Type: storage.OpPut, Key: storage.K("ix", "projkey", p.Key), Value: mustJSON(map[string]string{"id": p.ID}), Version: 1})
	}
	f.propose(tenant, "project.put", append(ops, activity(f))...)
}

// putTask creates (number from the project's counter, as the engine does)
// or rewrites a task.
func (f *fixture) putTask(tenant string, t *engTask) {
	f.putTasks(tenant, []*engTask{t})
}

// putTasks writes several tasks in one command (as a cascading delete
// does).
func (f *fixture) putTasks(tenant string, ts []*engTask) {
	var ops []storage.Op
	for _, t := range ts {
		k := storage.K("task", t.ID)
		v := f.vers[tenant+string(k)] + 1
		f.vers[tenant+string(k)] = v
		if v == 1 {
			ops = append(ops, storage.Op{Type: storage.OpAdd, Key: storage.K("cnt", "tasknum", t.ProjectID), Delta: 1})
			ops = append(ops, storage.Op{Type: storage.OpPut, Key: k, Value: mustJSON(t), Version: 1, StampRef: uint16(len(ops))})
			ops = append(ops, storage.Op{Type: storage.OpPut, Key: storage.K("ix", "pt", t.ProjectID).Add(t.ID), Value: mustJSON(t), Version: 1, StampRef: uint16(len(ops) - 1)})
		} else {
			ops = append(ops, storage.Op{Type: storage.OpPut, Key: k, Value: mustJSON(t), Version: v, Stamp: f.stamps[tenant+string(k)]})
		}
	}
	res := f.propose(tenant, "task.put", append(ops, activity(f))...)
	for i, op := range ops {
		if op.Type == storage.OpAdd {
			f.stamps[tenant+string(ops[i+1].Key)] = uint64(res.Values[i])
		}
	}
}

func (f *fixture) putComment(tenant string, c *engComment) {
	k := storage.K("cmt", c.ID)
	v := f.vers[tenant+string(k)] + 1
	f.vers[tenant+string(k)] = v
	ops := []storage.Op{{Type: storage.OpPut, Key: k, Value: mustJSON(c), Version: v}}
	if v == 1 {
		ops = append(ops, storage.Op{Type: storage.OpPut, Key: storage.K("ix", "tcm", c.TaskID).Add(c.ID), Version: 1})
	}
	f.propose(tenant, "comment.put", append(ops, activity(f))...)
}

// purge removes records for good, as the purge job does.
func (f *fixture) purge(tenant string, keys ...storage.Key) {
	var ops []storage.Op
	for _, k := range keys {
		ops = append(ops, storage.Op{Type: storage.OpDelete, Key: k})
		delete(f.vers, tenant+string(k))
	}
	f.propose(tenant, "purge", ops...)
}

// login is a command that touches nothing indexed.
func (f *fixture) login(tenant string) {
	f.propose(tenant, "session.create", storage.Op{Type: storage.OpPut, Key: storage.K("sess", f.id("s")), Value: []byte(`{}`), Version: 1})
}

// settle waits until the index has taken in everything applied.
func (f *fixture) settle() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The store hands batches to observers after their sync: wait for the
	// last applied index to be delivered, then for the workers.
	for {
		if err := f.ix.WaitIdle(ctx); err != nil {
			f.t.Fatalf("index not idle: %v", err)
		}
		f.ix.mu.Lock()
		delivered := f.ix.delivered
		f.ix.mu.Unlock()
		if applied := f.st.AppliedIndex(); delivered >= applied || applied <= f.openedAt {
			if err := f.ix.WaitIdle(ctx); err != nil {
				f.t.Fatal(err)
			}
			return
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("observer never delivered index %d", f.st.AppliedIndex())
		case <-time.After(time.Millisecond):
		}
	}
}

func (f *fixture) search(tenant string, q Query) Result {
	f.t.Helper()
	res, err := f.ix.Search(context.Background(), tenant, q)
	if err != nil {
		f.t.Fatalf("search %q: %v", q.Text, err)
	}
	return res
}

func hitIDs(r Result) []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.Kind + ":" + h.ID
	}
	return out
}
