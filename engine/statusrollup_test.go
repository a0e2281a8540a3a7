package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// rollupWorld is a workspace with two projects (one with a custom workflow
// that has a "Blocked" status) and four people, driven by random changes.
type rollupWorld struct {
	*world
	rng      *rand.Rand
	people   []engine.Principal
	projects []*engine.Project
	live     map[string][]string // project → live task IDs
	trashed  map[string][]string // project → deleted task IDs (top-level)
	start    time.Time
}

func newRollupWorld(t *testing.T, seed uint64) *rollupWorld {
	t.Helper()
	w := &rollupWorld{world: newWorld(t), rng: rand.New(rand.NewPCG(seed, 7)), live: map[string][]string{}, trashed: map[string][]string{}}
	if _, err := w.svc.SetPlan(ctx, engine.Principal{Operator: true}, "acme", "professional"); err != nil {
		t.Fatal(err)
	}
	w.people = []engine.Principal{w.owner, w.join(t, "Ann", engine.RoleMember), w.join(t, "Bob", engine.RoleMember), w.join(t, "Cat", engine.RoleMember)}
	custom, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Custom", Key: "CUS", Statuses: []engine.Status{
		{ID: "todo", Name: "To do", Category: engine.CategoryTodo},
		{ID: "doing", Name: "Doing", Category: engine.CategoryInProgress},
		{ID: "blocked", Name: "Blocked", Category: engine.CategoryInProgress},
		{ID: "review", Name: "Review", Category: engine.CategoryInProgress},
		{ID: "done", Name: "Done", Category: engine.CategoryDone},
		{ID: "dropped", Name: "Dropped", Category: engine.CategoryDone},
	}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := w.svc.CreateProject(ctx, w.owner, engine.CreateProjectInput{Name: "Plain", Key: "PLN"})
	if err != nil {
		t.Fatal(err)
	}
	w.projects = []*engine.Project{custom, plain}
	w.start = w.env.Clock.Now()
	return w
}

func (w *rollupWorld) pick(list []string) string { return list[w.rng.IntN(len(list))] }

func (w *rollupWorld) someone() engine.Principal { return w.people[w.rng.IntN(len(w.people))] }

func (w *rollupWorld) statuses(pr *engine.Project) []string {
	p, err := w.svc.GetProject(ctx, w.owner, pr.ID)
	if err != nil {
		panic(err)
	}
	var out []string
	for _, st := range p.Statuses {
		out = append(out, st.ID)
	}
	return out
}

func (w *rollupWorld) assignees() []string {
	var out []string
	for _, p := range w.people {
		if w.rng.IntN(3) == 0 {
			out = append(out, p.UserID)
		}
	}
	return out
}

// due is no date, a date or a date-time in some zone, around now.
func (w *rollupWorld) due() string {
	at := w.env.Clock.Now().Add(time.Duration(w.rng.IntN(20*24)-10*24) * time.Hour)
	switch w.rng.IntN(4) {
	case 0:
		return ""
	case 1:
		return at.Format(time.DateOnly)
	default:
		zones := []string{"Asia/Tokyo", "America/New_York", "Asia/Kolkata", "UTC"}
		loc, err := time.LoadLocation(zones[w.rng.IntN(len(zones))])
		if err != nil {
			panic(err)
		}
		return at.In(loc).Format(time.RFC3339)
	}
}

func (w *rollupWorld) tags() []string {
	if w.rng.IntN(4) == 0 {
		return []string{"blocked"}
	}
	return nil
}

var commentTexts = []string{"Looks good.", "We decided to ship it on Friday.", "Any news?", "We agreed to drop IE11.", "Needs another pass."}

// step makes one random change, as one of the people, and moves the clock
// on by anything from nothing (same millisecond) to most of a day.
func (w *rollupWorld) step(t *testing.T) {
	t.Helper()
	pr := w.projects[w.rng.IntN(len(w.projects))]
	who := w.someone()
	live := w.live[pr.ID]
	var err error
	switch op := w.rng.IntN(20); {
	case op < 5 || len(live) == 0:
		in := engine.CreateTaskInput{Title: fmt.Sprintf("Task %d", w.rng.IntN(1000)), Status: w.pick(w.statuses(pr)), Assignees: w.assignees(), Due: w.due(), Tags: w.tags()}
		if len(live) > 0 && w.rng.IntN(4) == 0 {
			in.ParentID = w.pick(live)
		}
		var task *engine.Task
		if task, err = w.svc.CreateTask(ctx, who, pr.ID, in); err == nil {
			w.live[pr.ID] = append(w.live[pr.ID], task.ID)
		}
	case op < 10:
		_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{Status: ptr(w.pick(w.statuses(pr)))})
	case op < 11:
		_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{Assignees: ptr(w.assignees())})
	case op < 12:
		if d := w.due(); d == "" {
			_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{ClearDue: true})
		} else {
			_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{Due: &d})
		}
	case op < 13:
		_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{Tags: ptr(w.tags()), Title: ptr(fmt.Sprintf("Renamed %d", w.rng.IntN(1000)))})
	case op < 16:
		_, err = w.svc.CreateComment(ctx, who, w.pick(live), commentTexts[w.rng.IntN(len(commentTexts))], "")
	case op < 17:
		id := w.pick(live)
		if err = w.svc.DeleteTask(ctx, w.owner, id, 0); err == nil {
			w.trashed[pr.ID] = append(w.trashed[pr.ID], id)
			w.refresh(t, pr)
		}
	case op < 18 && len(w.trashed[pr.ID]) > 0:
		id := w.pick(w.trashed[pr.ID])
		if _, err = w.svc.RestoreTask(ctx, w.owner, id); err == nil || strings.Contains(err.Error(), "parent") {
			err = nil
			w.refresh(t, pr)
		}
	case op < 19 && pr.Key == "CUS":
		// Rename and recategorise statuses under their tasks: the facts
		// judge tasks by the project's statuses as they are now.
		names := [][2]string{{"Review", engine.CategoryInProgress}, {"Blocked by legal", engine.CategoryInProgress}, {"Review", engine.CategoryTodo}}
		n := names[w.rng.IntN(len(names))]
		_, err = w.svc.UpdateProject(ctx, w.owner, pr.ID, engine.ProjectPatch{Statuses: []engine.Status{
			{ID: "todo", Name: "To do", Category: engine.CategoryTodo},
			{ID: "doing", Name: "Doing", Category: engine.CategoryInProgress},
			{ID: "blocked", Name: "Blocked", Category: engine.CategoryInProgress},
			{ID: "review", Name: n[0], Category: n[1]},
			{ID: "done", Name: "Done", Category: engine.CategoryDone},
			{ID: "dropped", Name: "Dropped", Category: engine.CategoryDone},
		}})
	default:
		_, err = w.svc.UpdateTask(ctx, who, w.pick(live), engine.TaskPatch{Description: ptr("more detail")})
	}
	if err != nil {
		t.Fatal(err)
	}
	switch w.rng.IntN(4) {
	case 0: // same millisecond
	case 1:
		w.env.Clock.Advance(time.Duration(w.rng.IntN(60)) * time.Second)
	default:
		w.env.Clock.Advance(time.Duration(w.rng.IntN(5*60)) * time.Minute)
	}
}

// refresh re-reads which tasks of a project are live and which are in the
// trash (a delete takes subtasks along, a restore brings them back).
func (w *rollupWorld) refresh(t *testing.T, pr *engine.Project) {
	t.Helper()
	w.live[pr.ID] = nil
	for cursor := ""; ; {
		page, err := w.svc.ListTasks(ctx, w.owner, pr.ID, engine.TaskFilter{}, engine.PageRequest{Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page.Items {
			w.live[pr.ID] = append(w.live[pr.ID], task.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	w.trashed[pr.ID] = nil
	for cursor := ""; ; {
		trash, err := w.svc.ListTrash(ctx, w.owner, engine.PageRequest{Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range trash.Items {
			if it.Kind == "task" && it.ProjectID == pr.ID {
				w.trashed[pr.ID] = append(w.trashed[pr.ID], it.ID)
			}
		}
		if cursor = trash.NextCursor; cursor == "" {
			break
		}
	}
}

// periods are the windows compared: the last day and week, the whole
// history, a random window, and windows from local midnights in zones on
// both sides of UTC (and a half-hour one).
func (w *rollupWorld) periods() [][2]time.Time {
	now := w.env.Clock.Now()
	out := [][2]time.Time{
		{now.Add(-24 * time.Hour), now},
		{now.Add(-7 * 24 * time.Hour), now},
		{w.start.Add(-time.Hour), now.Add(time.Hour)},
	}
	span := now.Sub(w.start)
	a := w.start.Add(time.Duration(w.rng.Int64N(int64(span) + 1)))
	b := a.Add(time.Duration(w.rng.Int64N(int64(span) + 1)))
	out = append(out, [2]time.Time{a, b})
	for _, zone := range []string{"Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			panic(err)
		}
		local := now.In(loc)
		midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
		out = append(out, [2]time.Time{midnight.AddDate(0, 0, -1-w.rng.IntN(6)), midnight})
	}
	return out
}

// compare checks that the roll-ups give exactly the facts the scan gives.
func (w *rollupWorld) compare(t *testing.T, when string) {
	t.Helper()
	ids := []string{w.projects[0].ID, w.projects[1].ID}
	sets := [][]string{ids[:1], ids[1:], ids}
	for _, period := range w.periods() {
		for _, set := range sets {
			rollup, scan, err := w.svc.FactsBothWays(w.owner, set, period[0], period[1])
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(rollup, "", " ")
			want, _ := json.MarshalIndent(scan, "", " ")
			if string(got) != string(want) {
				t.Fatalf("%s, period %s – %s, %d projects: roll-ups differ from the scan:\n%s", when, period[0].UTC(), period[1].UTC(), len(set), lineDiff(string(want), string(got)))
			}
		}
	}
}

func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			lo := max(0, i-6)
			return fmt.Sprintf("line %d\nscan:\n%s\nroll-ups:\n%s", i, strings.Join(wl[lo:min(len(wl), i+4)], "\n"), strings.Join(gl[lo:min(len(gl), i+4)], "\n"))
		}
	}
	return "(equal)"
}

// rollupKeys reads a project's roll-up records, leaving out counters that
// came back to zero (a rebuild does not write those).
func (w *rollupWorld) rollupKeys(t *testing.T, projectID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := w.env.Store.Tenant(w.ws.ID).Scan(storage.K("sf", projectID, "r"), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		if string(r.Value) != "\x00\x00\x00\x00\x00\x00\x00\x00" {
			out[k.String()] = string(r.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *rollupWorld) dropRollups(t *testing.T, projectID string) {
	t.Helper()
	res, err := w.env.Log.Propose(ctx, &storage.Command{RequestID: uuid.NewString(), Tenant: w.ws.ID, Kind: "test.drop_rollups", Actor: "system",
		At: w.env.Clock.Now().UnixMilli(), Ops: []storage.Op{{Type: storage.OpDeleteRange, Key: storage.K("sf", projectID)}}})
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
}

// TestStatusFactsRollupsMatchTheScan runs random histories (creations,
// status moves in custom workflows, reassignments, due dates in several
// zones, tags, comments and decisions, deletes with subtasks, restores,
// statuses renamed and recategorised, many changes in one millisecond) and
// checks, along the way and at the end, that the facts gathered from the
// roll-ups are exactly those the full scan gives, over periods that start
// and end mid-day, at local midnights, or span the whole history; then that
// a rebuild from scratch (data from before the roll-ups) gives the same
// records as the ones kept by the writes; then the same after the purge.
func TestStatusFactsRollupsMatchTheScan(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newRollupWorld(t, seed)
			for i := range 400 {
				w.step(t)
				if i%80 == 79 {
					w.compare(t, fmt.Sprintf("after %d changes", i+1))
				}
			}
			w.compare(t, "at the end")

			for _, pr := range w.projects {
				kept := w.rollupKeys(t, pr.ID)
				w.dropRollups(t, pr.ID)
				if n := len(w.rollupKeys(t, pr.ID)); n != 0 {
					t.Fatalf("%d roll-up records left after dropping them", n)
				}
				w.compare(t, "after a rebuild")
				rebuilt := w.rollupKeys(t, pr.ID)
				if len(rebuilt) != len(kept) {
					t.Errorf("%s: rebuilt %d roll-up records, the writes kept %d", pr.Key, len(rebuilt), len(kept))
				}
				for k, v := range kept {
					if rebuilt[k] != v {
						t.Errorf("%s: %s rebuilt as %q, kept as %q", pr.Key, k, rebuilt[k], v)
					}
				}
			}

			// Past the trash's lifetime the deleted tasks are purged for
			// good, their roll-ups with them.
			w.env.Clock.Advance(31 * 24 * time.Hour)
			if _, err := w.svc.PurgeExpired(ctx); err != nil {
				t.Fatal(err)
			}
			w.start = w.start.Add(-time.Hour)
			w.compare(t, "after the purge")
			for _, pr := range w.projects {
				kept := w.rollupKeys(t, pr.ID)
				w.dropRollups(t, pr.ID)
				w.compare(t, "after a rebuild past the purge")
				if rebuilt := w.rollupKeys(t, pr.ID); fmt.Sprint(rebuilt) != fmt.Sprint(kept) {
					t.Errorf("%s: after the purge, rebuilt %d roll-up records, the writes kept %d", pr.Key, len(rebuilt), len(kept))
				}
			}
		})
	}
}
