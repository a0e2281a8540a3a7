package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// Status-fact roll-ups. The writes that change what the facts say keep
// these records up to date in their own command, so in the same Pebble
// batch, and gathering a period's facts reads a few counters per day and
// the first entries of short lists instead of every task and activity
// entry of the project. Under t/<tenant>/sf/<project>/:
//
//	g                               counter bumped by every write the roll-ups follow
//	v                               marker: the roll-ups are complete, at rollupVersion
//	r/n/<status>                    counter: live tasks in the status
//	r/nb/<status>                   counter: … of them tagged "blocked"
//	r/na/<status>/<user>            counter: … of them assigned to the user
//	r/bt/<status>/<task>            index: live tasks tagged "blocked"
//	r/due/<status>/<due key>/<task> index: live tasks with a due date
//	r/upd/<status>/<updated>/<task> index: live tasks by their last change
//	r/d/<UTC day>/<kind>/<actor>    counter: fact entries of live tasks that day
//	r/h/<UTC hour>/<kind>/<actor>   counter: … that hour (for the ends of a period)
//	r/e/<kind>/<at>/<entry>         list: fact entries of live tasks, by time
//	r/k/<task>/<at>/<entry>         the task's fact entries, kept while it is
//	                                in the trash so that a restore brings them back
//
// Counters are OpAdd, evaluated inside Apply: they commute, so no two writes
// ever conflict over them. Everything else is a put or delete of a key that
// one task or one entry owns. Nothing here reads a clock or iterates a map
// into the log: days come from the command's time, and deltas are written in
// key order. Task state is kept by status ID, not category: a project's
// statuses can be renamed or recategorised without touching its tasks, so
// the reader interprets them with the project's current statuses.
//
// A project whose marker is missing (data written before the roll-ups
// existed, or an older rollupVersion) is rebuilt from its tasks and activity
// the first time its facts are read (ensureFactRollups).

// rollupVersion names the layout and meaning of the roll-ups; a project
// marked with another version is rebuilt before its facts are read.
const rollupVersion = 1

type rollupMarker struct {
	Version int `json:"version"`
}

// The kinds of fact entries. factDecision is a list only: a comment that
// records a decision is listed twice, as a comment and as a decision.
const (
	factCreated   = "created"
	factCompleted = "completed"
	factStarted   = "started"
	factMoved     = "moved"
	factComment   = "comment"
	factDecision  = "decision"
)

func kFacts(p string) storage.Key       { return storage.K("sf", p) }
func kFactsGen(p string) storage.Key    { return kFacts(p).Add("g") }
func kFactsMarker(p string) storage.Key { return kFacts(p).Add("v") }
func kFactsData(p string) storage.Key   { return kFacts(p).Add("r") }

func kFactsInStatus(p, st string) storage.Key { return kFactsData(p).Add("n", st) }
func kFactsTagged(p, st string) storage.Key   { return kFactsData(p).Add("nb", st) }
func kFactsAssigned(p string) storage.Key     { return kFactsData(p).Add("na") }
func kFactsBlockedTag(p, st string) storage.Key {
	return kFactsData(p).Add("bt", st)
}
func kFactsDue(p, st string) storage.Key     { return kFactsData(p).Add("due", st) }
func kFactsUpdated(p, st string) storage.Key { return kFactsData(p).Add("upd", st) }
func kFactsDays(p string) storage.Key        { return kFactsData(p).Add("d") }
func kFactsHours(p string) storage.Key       { return kFactsData(p).Add("h") }
func kFactsList(p, kind string) storage.Key  { return kFactsData(p).Add("e", kind) }
func kFactsTask(p, task string) storage.Key  { return kFactsData(p).Add("k", task) }

// factDay and factHour are the UTC day and hour of a time in
// milliseconds, as key components that sort in time order.
func factDay(at int64) string  { return time.UnixMilli(at).UTC().Format("20060102") }
func factHour(at int64) string { return time.UnixMilli(at).UTC().Format("2006010215") }

// factEntry is what the facts keep of one activity entry.
type factEntry struct {
	ID     string
	At     int64
	Kind   string
	TaskID string
	Actor  string
	Text   string // a comment's excerpt; "Before → After" for a move
}

func (e factEntry) value() []byte { return storage.K(e.Kind, e.TaskID, e.Actor, e.Text) }

// decodeFactEntry reads an entry stored under <prefix>/<at>/<entry>.
func decodeFactEntry(k storage.Key, r storage.Record) (factEntry, error) {
	kp, err := k.Parts()
	if err != nil || len(kp) < 2 || len(kp[len(kp)-2]) != 8 {
		return factEntry{}, fmt.Errorf("engine: fact entry key %s: malformed", k)
	}
	vp, err := storage.Key(r.Value).Parts()
	if err != nil || len(vp) != 4 {
		return factEntry{}, fmt.Errorf("engine: fact entry %s: malformed value", k)
	}
	return factEntry{
		ID: string(kp[len(kp)-1]), At: int64(binary.BigEndian.Uint64(kp[len(kp)-2])),
		Kind: string(vp[0]), TaskID: string(vp[1]), Actor: string(vp[2]), Text: string(vp[3]),
	}, nil
}

// factEntryOf says what an activity entry means to the facts, if anything:
// a task created, a status change (completed, started or another move), a
// comment.
func factEntryOf(a *activityRecord) (factEntry, bool) {
	if a.ProjectID == "" || a.TaskID == "" {
		return factEntry{}, false
	}
	e := factEntry{ID: a.ID, At: a.At, TaskID: a.TaskID, Actor: a.Actor}
	switch {
	case a.Kind == "task.created":
		e.Kind = factCreated
	case a.Kind == "task.updated" && a.Field == "status":
		var before, after struct{ Category, Name string }
		_ = jsonDecode(a.Before, &before)
		_ = jsonDecode(a.After, &after)
		switch {
		case after.Category == CategoryDone && before.Category != CategoryDone:
			e.Kind = factCompleted
		case before.Category == CategoryTodo && after.Category == CategoryInProgress:
			e.Kind = factStarted
		default:
			e.Kind, e.Text = factMoved, before.Name+" → "+after.Name
		}
	case a.Kind == "comment.created":
		e.Kind = factComment
		_ = jsonDecode(a.After, &e.Text)
	default:
		return factEntry{}, false
	}
	return e, true
}

func isDecision(text string) bool {
	lower := strings.ToLower(text)
	return slices.ContainsFunc(decisionWords, func(w string) bool { return strings.Contains(lower, w) })
}

// listKeys are the list entries of a fact entry of a live task.
func (e factEntry) listKeys(p string) []storage.Key {
	keys := []storage.Key{kFactsList(p, e.Kind).AddUint(uint64(e.At)).Add(e.ID)}
	if e.Kind == factComment && isDecision(e.Text) {
		keys = append(keys, kFactsList(p, factDecision).AddUint(uint64(e.At)).Add(e.ID))
	}
	return keys
}

// counterKeys are the day and hour counters a fact entry counts in; moves
// are listed, not counted.
func (e factEntry) counterKeys(p string) []storage.Key {
	if e.Kind == factMoved {
		return nil
	}
	return []storage.Key{kFactsDays(p).Add(factDay(e.At), e.Kind, e.Actor), kFactsHours(p).Add(factHour(e.At), e.Kind, e.Actor)}
}

// counterDeltas sums counter changes so that a command carries one OpAdd
// per counter, in key order.
type counterDeltas map[string]int64

func (d counterDeltas) add(k storage.Key, n int64) { d[string(k)] += n }

func (d counterDeltas) emit(ch *change) {
	keys := make([]string, 0, len(d))
	for k, n := range d {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		ch.add(storage.Key(k), d[k])
	}
}

// addFactEntry records a new fact entry of a live task (from activity).
func addFactEntry(ch *change, p string, e factEntry) {
	for _, k := range e.listKeys(p) {
		ch.op(storage.Op{Type: storage.OpPut, Key: k, Value: e.value(), Version: 1})
	}
	ch.op(storage.Op{Type: storage.OpPut, Key: kFactsTask(p, e.TaskID).AddUint(uint64(e.At)).Add(e.ID), Value: e.value(), Version: 1})
	for _, k := range e.counterKeys(p) {
		ch.add(k, 1)
	}
	ch.add(kFactsGen(p), 1)
}

// factStateKeys are the counters a live task counts in and the index
// entries it has.
func factStateKeys(t *taskRecord) (counters, index []storage.Key) {
	p, st := t.ProjectID, t.StatusID
	counters = append(counters, kFactsInStatus(p, st))
	if slices.Contains(t.Tags, "blocked") {
		counters = append(counters, kFactsTagged(p, st))
		index = append(index, kFactsBlockedTag(p, st).Add(t.ID))
	}
	for _, a := range t.Assignees {
		counters = append(counters, kFactsAssigned(p).Add(st, a))
	}
	if due := mustDueKey(t.Due); due != "" {
		index = append(index, kFactsDue(p, st).Add(due, t.ID))
	}
	index = append(index, kFactsUpdated(p, st).AddUint(uint64(t.UpdatedAt)).Add(t.ID))
	return counters, index
}

// writeTaskFacts brings a task's state roll-ups from before to after
// (either may be nil), like writeTask does for its indexes.
func writeTaskFacts(ch *change, before, after *taskRecord) {
	d := counterDeltas{}
	var old, cur []storage.Key
	p := ""
	if before != nil {
		counters, index := factStateKeys(before)
		for _, k := range counters {
			d.add(k, -1)
		}
		old, p = index, before.ProjectID
	}
	if after != nil {
		counters, index := factStateKeys(after)
		for _, k := range counters {
			d.add(k, 1)
		}
		cur, p = index, after.ProjectID
	}
	if p == "" {
		return
	}
	d.emit(ch)
	ch.delGone(old, cur)
	for _, k := range cur {
		if !containsKey(old, k) {
			ch.index(k)
		}
	}
	ch.add(kFactsGen(p), 1)
}

// taskFactHistory takes a task's fact entries out of the lists and
// counters (sign -1: the task went to the trash) or puts them back (+1: it
// was restored): the facts speak only of live tasks.
func taskFactHistory(ch *change, v storage.View, p, task string, sign int64) error {
	d := counterDeltas{}
	err := v.Scan(kFactsTask(p, task), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		e, err := decodeFactEntry(k, r)
		if err != nil {
			return err
		}
		for _, lk := range e.listKeys(p) {
			if sign > 0 {
				ch.op(storage.Op{Type: storage.OpPut, Key: lk, Value: e.value(), Version: 1})
			} else {
				ch.del(lk)
			}
		}
		for _, ck := range e.counterKeys(p) {
			d.add(ck, sign)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: fact history of task %s: %w", task, err)
	}
	d.emit(ch)
	ch.add(kFactsGen(p), 1)
	return nil
}

// rollupChunkOps bounds the ops of one rebuild command, well under the
// cluster's entry size limit.
const rollupChunkOps = 4000

// ensureFactRollups makes sure a project's roll-ups are complete, rebuilding
// them from its tasks and activity when they are not (data from before they
// existed). Projects created since carry the marker from their first write.
func (s *Service) ensureFactRollups(ctx context.Context, tenant string, pr *projectRecord) error {
	_, v := s.tenant(tenant)
	if ok, err := rollupsReady(v, pr.ID); err != nil || ok {
		return err
	}
	// One rebuild at a time per process: two would only do the same work.
	s.rollupMu.Lock()
	defer s.rollupMu.Unlock()
	for range maxAttempts {
		if ok, err := rollupsReady(v, pr.ID); err != nil || ok {
			return err
		}
		done, err := s.rebuildFactRollups(ctx, tenant, pr)
		if err != nil {
			return fmt.Errorf("engine: rebuild status facts of project %s: %w", pr.ID, err)
		}
		if done {
			return nil
		}
	}
	return conflict("facts_busy", "the project is changing too fast to prepare its status facts; try again")
}

func rollupsReady(v storage.View, p string) (bool, error) {
	m, _, err := getRecord[rollupMarker](v, kFactsMarker(p))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Version == rollupVersion, nil
}

func versionOf(v storage.View, k storage.Key) (uint64, error) {
	rec, err := v.Get(k)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	return rec.Version, err
}

// rebuildFactRollups computes a project's roll-ups from its live tasks and
// its activity, and writes them in commands that each expect the project's
// write counter unchanged since the read: a write in between (which keeps
// the roll-ups by deltas) refuses the rebuild, and it starts over. The first
// command clears what was there and holds every counter, so a second
// rebuilder elsewhere can only write the same keys again; the last one sets
// the marker. It reports false when it has to start over.
func (s *Service) rebuildFactRollups(ctx context.Context, tenant string, pr *projectRecord) (bool, error) {
	log, v := s.tenant(tenant)
	p := pr.ID
	gen, err := versionOf(v, kFactsGen(p))
	if err != nil {
		return false, err
	}
	counters := counterDeltas{}
	index := &change{}
	live := map[string]bool{}
	err = v.Scan(kIxProjectTasks(p), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		t, _, err := s.mirroredTask(tenant, lastPart(k), r)
		if err != nil {
			return err
		}
		live[t.ID] = true
		cs, ix := factStateKeys(t)
		for _, c := range cs {
			counters.add(c, 1)
		}
		for _, k := range ix {
			index.index(k)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	// Entries of tasks in the trash keep their history (a restore brings it
	// back); entries of tasks purged for good are left out.
	trashed := map[string]bool{}
	inTrash := func(task string) (bool, error) {
		if in, ok := trashed[task]; ok {
			return in, nil
		}
		t, _, err := getRecord[taskRecord](v, kTask(task))
		if errors.Is(err, storage.ErrNotFound) {
			trashed[task] = false
			return false, nil
		}
		if err != nil {
			return false, err
		}
		trashed[task] = t.DeletedAt != 0 && t.ProjectID == p
		return trashed[task], nil
	}
	err = v.Scan(kProjActivity(p), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		var a activityRecord
		if err := jsonDecode(r.Value, &a); err != nil {
			return fmt.Errorf("engine: activity %s: %w", lastPart(k), err)
		}
		e, ok := factEntryOf(&a)
		if !ok {
			return nil
		}
		if !live[e.TaskID] {
			if in, err := inTrash(e.TaskID); err != nil || !in {
				return err
			}
		} else {
			for _, lk := range e.listKeys(p) {
				index.op(storage.Op{Type: storage.OpPut, Key: lk, Value: e.value(), Version: 1})
			}
			for _, ck := range e.counterKeys(p) {
				counters.add(ck, 1)
			}
		}
		index.op(storage.Op{Type: storage.OpPut, Key: kFactsTask(p, e.TaskID).AddUint(uint64(e.At)).Add(e.ID), Value: e.value(), Version: 1})
		return nil
	})
	if err != nil {
		return false, err
	}
	if again, err := versionOf(v, kFactsGen(p)); err != nil || again != gen {
		return false, err
	}
	first := s.newChange(tenant, "status_facts.rebuild", "system")
	first.delRange(kFactsData(p))
	first.del(kFactsMarker(p))
	counters.emit(first)
	chunks := []*change{first}
	ops := index.cmd.Ops
	for len(ops) > 0 {
		n := min(len(ops), rollupChunkOps)
		ch := s.newChange(tenant, "status_facts.rebuild", "system")
		ch.cmd.Ops = append(ch.cmd.Ops, ops[:n]...)
		chunks = append(chunks, ch)
		ops = ops[n:]
	}
	chunks[len(chunks)-1].put(kFactsMarker(p), rollupMarker{Version: rollupVersion}, 1)
	for _, ch := range chunks {
		ch.expect(kFactsGen(p), gen)
		res, err := log.Propose(ctx, &ch.cmd)
		if err != nil {
			return false, fmt.Errorf("propose: %w", err)
		}
		if errors.Is(res.Err, storage.ErrConflict) {
			return false, nil
		}
		if res.Err != nil {
			return false, fmt.Errorf("apply: %w", res.Err)
		}
	}
	return true, nil
}

// markFactsReady marks a new project's (empty) roll-ups complete.
func markFactsReady(ch *change, p string) {
	ch.put(kFactsMarker(p), rollupMarker{Version: rollupVersion}, 1)
}

// counterOf decodes a counter record written by OpAdd.
func counterOf(k storage.Key, r storage.Record) (int64, error) {
	if len(r.Value) != 8 {
		return 0, fmt.Errorf("engine: counter %s: malformed", k)
	}
	return int64(binary.BigEndian.Uint64(r.Value)), nil
}
