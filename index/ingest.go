package index

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	index "github.com/blevesearch/bleve_index_api"

	"github.com/teamflow/teamflow/storage"
)

// Observe is the storage.Observer that feeds the index: register it with
// the store before the log applies anything (cmd: store.Observe(ix.Observe)).
// It only sorts the applied commands into per-tenant queues and returns;
// each tenant's worker indexes its queue in the background, in log order,
// so Apply is never slowed by Bleve.
func (ix *Index) Observe(batch []storage.Applied) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		// Not indexed: the watermark stays behind the store, and the next
		// start reconciles the tenants concerned.
		return
	}
	for i := range batch {
		a := &batch[i]
		if a.Index > ix.delivered {
			ix.delivered = a.Index
		}
		c := a.Command
		if c == nil || c.Tenant == "" || a.Result.Err != nil || a.Result.Duplicate {
			continue
		}
		t := ix.tenantLocked(c.Tenant)
		if t.firstSeq == 0 {
			t.firstSeq = a.Result.Seq
		}
		rel := false
		for _, op := range c.Ops {
			if touches(op) {
				rel = true
				break
			}
		}
		if !rel && t.h == nil && !t.working && len(t.queue) == 0 && t.opening == nil && !t.unusable {
			// A closed index that this command does not change stays
			// closed; remember that it is still up to date.
			ix.advanceLocked(t, a.Index, a.Result.Seq)
			continue
		}
		if len(t.queue) >= ix.opts.MaxQueue {
			// The worker is far behind: drop the queue and reconcile from
			// the store, which holds everything the queue would have said.
			ix.opts.Logger.Warn("index: queue overflow, reconciling", "tenant", t.id, "queued", len(t.queue))
			t.queue = nil
			t.flags |= flagReconcile
		}
		e := entry{index: a.Index, seq: a.Result.Seq, rel: rel}
		if rel {
			// Only a command the index reads is kept: the others only move
			// the watermark, and may be large (attachment chunks), held
			// here for as long as the worker lingers.
			e.cmd, e.values = c, a.Result.Values
		}
		t.queue = append(t.queue, e)
		ix.kickLocked(t)
	}
	ix.notifyLocked()
}

// advanceLocked extends a closed tenant's advance by one command.
func (ix *Index) advanceLocked(t *tenant, idx, seq uint64) {
	a := t.adv
	switch {
	case a != nil && seq == a.Seq+1:
		a.Seq, a.Index = seq, idx
	case a != nil && seq <= a.Seq:
		return
	default:
		t.adv = &advance{Base: seq - 1, Seq: seq, Index: idx}
	}
	ix.advDirty = true
}

// kickLocked starts the tenant's worker if it has work and none is running.
// Owed work (a rebuild a search is waiting for) cuts a running worker's
// linger short.
func (ix *Index) kickLocked(t *tenant) {
	if t.working && t.flags != 0 {
		ix.hurryLocked()
	}
	if t.working || ix.closed || (len(t.queue) == 0 && t.flags == 0) {
		return
	}
	t.working = true
	ix.workers.Add(1)
	go ix.work(t)
}

// hurryLocked wakes every lingering worker.
func (ix *Index) hurryLocked() {
	close(ix.hurry)
	ix.hurry = make(chan struct{})
}

// A worker with fewer than lingerBatch commands queued waits lingerFor for
// more before indexing them, so that a batch makes one larger segment. The
// cost of Bleve's segment merging grows with the number of segments: at 300
// task creates a second, a 100 ms wait (segments of ~30 tasks) had the
// merger take four fifths of the index's CPU and a quarter of the node's;
// a second (segments of ~300) cut the node's CPU by a third. A second is
// also Elasticsearch's default refresh interval: how long after a write
// search may not show it yet. WaitIdle cuts the wait short.
const (
	lingerBatch = 2048
	lingerFor   = time.Second
)

// work is a tenant's worker: it runs while the tenant has queued commands
// or owed work, then exits.
func (ix *Index) work(t *tenant) {
	defer ix.workers.Done()
	backoff := 100 * time.Millisecond
	lingered := false
	for {
		ix.mu.Lock()
		if (len(t.queue) == 0 && t.flags == 0) || (ix.stopping.Load() && len(t.queue) == 0) {
			t.working = false
			ix.notifyLocked()
			ix.mu.Unlock()
			return
		}
		if len(t.queue) < lingerBatch && t.flags == 0 && ix.idleWait == 0 && !ix.stopping.Load() && !lingered {
			// A few commands: let more arrive first (see lingerFor).
			lingered = true
			hurry := ix.hurry
			ix.mu.Unlock()
			tm := time.NewTimer(lingerFor)
			select {
			case <-tm.C:
			case <-hurry:
			case <-ix.stop:
			}
			tm.Stop()
			continue
		}
		lingered = false
		entries, flags := t.queue, t.flags
		t.queue, t.flags = nil, 0
		t.inflight = true
		ix.mu.Unlock()

		err := ix.process(t, entries, flags)

		ix.mu.Lock()
		t.inflight = false
		if err == nil {
			backoff = 100 * time.Millisecond
			ix.notifyLocked()
			ix.mu.Unlock()
			continue
		}
		ix.errors.Add(1)
		ix.opts.Logger.Error("index: indexing failed; reconciling from the store", "tenant", t.id, "err", err)
		// The entries are lost to the index, never to the store: the
		// watermark did not move past them, and a reconcile (or the
		// rebuild that was under way) brings the index back.
		if flags&flagRebuild != 0 || t.unusable {
			t.flags |= flagRebuild
		} else {
			t.flags |= flagReconcile
		}
		if ix.stopping.Load() {
			t.working = false
			ix.notifyLocked()
			ix.mu.Unlock()
			return
		}
		ix.notifyLocked()
		ix.mu.Unlock()
		tm := time.NewTimer(backoff)
		select {
		case <-tm.C:
		case <-ix.stop:
			tm.Stop()
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// process indexes one round of a tenant's work: owed rebuild, check or
// reconcile first, then the queued commands.
func (ix *Index) process(t *tenant, entries []entry, flags uint8) error {
	ctx := context.Background()
	_, h, err := ix.acquire(ctx, t.id, true)
	switch {
	case errors.Is(err, errUnusable):
		flags |= flagRebuild
		h = nil
	case err != nil:
		return err
	}
	defer func() {
		if h != nil {
			ix.release(h)
		}
	}()
	// Opening may have found work (a missed range of commands).
	ix.mu.Lock()
	flags |= t.flags
	t.flags = 0
	ix.mu.Unlock()

	if flags&flagCheck != 0 && flags&flagRebuild == 0 {
		flags |= ix.checkFlags(t, h)
	}
	switch {
	case flags&flagRebuild != 0:
		// Hold nothing while rebuilding: the old index may be closed to
		// make room, and searches reopen it meanwhile.
		if h != nil {
			ix.release(h)
			h = nil
		}
		nh, err := ix.rebuild(t)
		if err != nil {
			return err
		}
		h = nh
	case flags&flagReconcile != 0:
		if err := ix.reconcile(t, h); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		return nil
	}
	ix.workSem <- struct{}{}
	defer func() { <-ix.workSem }()
	return ix.apply(t, h, entries)
}

// check decides whether a freshly opened index missed commands while it
// was closed or the process was down, and owes the tenant a reconcile or a
// rebuild if so.
func (ix *Index) check(t *tenant, h *handle) {
	if f := ix.checkFlags(t, h); f != 0 {
		ix.mu.Lock()
		t.flags |= f
		ix.kickLocked(t)
		ix.mu.Unlock()
	}
}

// checkFlags compares what the index holds with what Observe delivered and
// what the store holds:
//
//   - the store's applied index is below the watermark: the store went back
//     (a restore): rebuild;
//   - Observe has delivered commands of the tenant since start (or since a
//     snapshot install): every command from the first of them on reaches
//     the index, so there is a gap only if the first one is more than one
//     past the watermark;
//   - nothing delivered yet: the tenant's event sequence in the store must
//     equal the watermark's.
func (ix *Index) checkFlags(t *tenant, h *handle) uint8 {
	ix.mu.Lock()
	wm := h.wm
	first := t.firstSeq
	ix.mu.Unlock()
	if ix.src.AppliedIndex() < wm.Index {
		return flagRebuild
	}
	if first != 0 {
		if first > wm.Seq+1 {
			return flagReconcile
		}
		return 0
	}
	seq, err := readSeq(ix.src.Tenant(t.id))
	switch {
	case err != nil:
		ix.opts.Logger.Warn("index: read event sequence", "tenant", t.id, "err", err)
		return flagReconcile
	case seq < wm.Seq:
		return flagRebuild
	case seq > wm.Seq:
		return flagReconcile
	}
	return 0
}

// readSeq reads a tenant's event sequence (advanced by every command).
func readSeq(v storage.View) (uint64, error) {
	rec, err := v.Get(storage.TenantSeqKey())
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(rec.Value) != 8 {
		return 0, storage.ErrCorrupt
	}
	return binary.BigEndian.Uint64(rec.Value), nil
}

// apply indexes queued commands in one Bleve batch, which also carries the
// new watermark.
func (ix *Index) apply(t *tenant, h *handle, entries []entry) error {
	ix.mu.Lock()
	wm := h.wm
	ix.mu.Unlock()
	a := &applier{ix: ix, t: t, h: h, pending: map[string]*pend{}, live: map[string]bool{}}
	defer a.close()
	gap := false
	n := 0
	for _, e := range entries {
		if e.index <= wm.Index {
			continue // already in the index (a replay after a rebuild)
		}
		if e.seq > wm.Seq+1 {
			gap = true
		}
		if e.rel {
			for i := range e.cmd.Ops {
				a.op(e, i)
				if a.err != nil {
					return a.err
				}
			}
		}
		wm.Index = e.index
		if e.seq > wm.Seq {
			wm.Seq = e.seq
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if len(a.pending) == 0 {
		// Nothing indexed changed: the watermark moves in memory and is
		// persisted with the next batch, when idle, or at close.
		ix.mu.Lock()
		h.wm, h.wmDirty = wm, true
		ix.mu.Unlock()
	} else {
		b := h.bi.NewBatch()
		for id, p := range a.pending {
			if p.del {
				b.Delete(id)
				continue
			}
			if pid, _ := p.fields["project_id"].(string); pid != "" {
				h.projects.add(pid) // before the batch is committed
			}
			if err := b.Index(id, p.fields); err != nil {
				return err
			}
		}
		b.SetInternal(wmKey, wm.encode())
		if err := h.bi.Batch(b); err != nil {
			return err
		}
		ix.mu.Lock()
		h.wm, h.wmDirty = wm, false
		ix.mu.Unlock()
	}
	ix.ingested.Add(uint64(n))
	ix.mu.Lock()
	switch {
	case a.wipe:
		t.flags |= flagRebuild
	case gap || a.reconcile:
		t.flags |= flagReconcile
	}
	if a.projects {
		t.projects = nil
		t.projGen++
	}
	ix.mu.Unlock()
	return nil
}

type pend struct {
	del    bool
	fields map[string]any
	task   string // a comment's task
}

// applier turns the ops of applied commands into pending document writes.
type applier struct {
	ix        *Index
	t         *tenant
	h         *handle
	pending   map[string]*pend
	live      map[string]bool // tasks whose liveness this batch decided
	reader    index.IndexReader
	err       error
	reconcile bool // an op the applier cannot follow (a range delete of records)
	wipe      bool // the tenant's whole keyspace was deleted
	projects  bool // a project changed: the query-time project table is stale
}

func (a *applier) close() {
	if a.reader != nil {
		a.reader.Close()
	}
}

func (a *applier) indexReader() index.IndexReader {
	if a.reader == nil && a.err == nil {
		adv, err := a.h.bi.Advanced()
		if err != nil {
			a.err = err
			return nil
		}
		a.reader, a.err = adv.Reader()
	}
	return a.reader
}

func (a *applier) put(d doc)     { a.pending[d.id] = &pend{fields: d.fields, task: d.task} }
func (a *applier) del(id string) { a.pending[id] = &pend{del: true} }

// taskLive says whether a task has a document after the ops so far.
func (a *applier) taskLive(id string) bool {
	if v, ok := a.live[id]; ok {
		return v
	}
	r := a.indexReader()
	if r == nil {
		return false
	}
	iid, err := r.InternalID(docID(KindTask, id))
	if err != nil {
		a.err = err
		return false
	}
	return iid != nil
}

func (a *applier) op(e entry, i int) {
	op := e.cmd.Ops[i]
	if op.Space != storage.SpaceTenant {
		return
	}
	if op.Type == storage.OpDeleteRange {
		switch {
		case len(op.Key) == 0:
			// The whole tenant is gone (workspace deletion): a new, empty
			// generation replaces the index and the old one's files are
			// removed, deleted documents' bytes with them.
			a.wipe = true
		case rangeTouches(op):
			a.reconcile = true
		}
		return
	}
	if op.Type != storage.OpPut && op.Type != storage.OpDelete {
		return
	}
	kind, id, ok := classify(op.Key)
	if !ok {
		return
	}
	put := op.Type == storage.OpPut
	switch kind {
	case KindTask:
		var rec *taskRec
		if put {
			rec, _ = decode[taskRec](op.Value)
		}
		if rec == nil || rec.DeletedAt != 0 {
			a.del(docID(KindTask, id))
			a.live[id] = false
			a.dropComments(id)
			return
		}
		stamp := op.Stamp
		if op.StampRef > 0 && int(op.StampRef) <= len(e.values) {
			stamp = uint64(e.values[op.StampRef-1])
		}
		rec.ID = id
		// A task coming back from the trash brings its comments back. A
		// new task (version 1) has none, and skips the index lookup.
		restore := op.Version > 1 && !a.taskLive(id)
		a.put(taskDoc(rec, stamp, op.Version))
		a.live[id] = true
		if restore {
			a.restoreComments(id)
		}
	case KindComment:
		var rec *cmtRec
		if put {
			rec, _ = decode[cmtRec](op.Value)
		}
		if rec == nil || rec.DeletedAt != 0 || !a.taskLive(rec.TaskID) {
			a.del(docID(KindComment, id))
			return
		}
		rec.ID = id
		a.put(commentDoc(rec, op.Version))
	case KindProject:
		a.projects = true
		var rec *projRec
		if put {
			rec, _ = decode[projRec](op.Value)
		}
		if rec == nil || rec.DeletedAt != 0 {
			a.del(docID(KindProject, id))
			return
		}
		rec.ID = id
		a.put(projectDoc(rec, op.Version))
	}
}

// dropComments removes the documents of a task's comments: a comment is
// searchable only while its task is live.
func (a *applier) dropComments(task string) {
	for id, p := range a.pending {
		if !p.del && p.task == task {
			a.pending[id] = &pend{del: true}
		}
	}
	r := a.indexReader()
	if r == nil {
		return
	}
	tfr, err := r.TermFieldReader(context.Background(), []byte(task), "task_id", false, false, false)
	if err != nil {
		a.err = err
		return
	}
	defer tfr.Close()
	var tfd *index.TermFieldDoc
	for {
		tfd, err = tfr.Next(tfd)
		if err != nil {
			a.err = err
			return
		}
		if tfd == nil {
			return
		}
		ext, err := r.ExternalID(tfd.ID)
		if err != nil {
			a.err = err
			return
		}
		if kind, _, ok := splitDocID(ext); ok && kind == KindComment {
			if _, seen := a.pending[ext]; !seen {
				a.del(ext)
			}
		}
	}
}

// restoreComments indexes the live comments of a task that became live
// again, as the store holds them now (a later command that changes one of
// them re-indexes it anyway). It finds them through the engine's
// task-comments index, ix/tcm/<task>/<comment>.
func (a *applier) restoreComments(task string) {
	v := a.ix.src.Tenant(a.t.id)
	var ids []string
	err := v.Scan(storage.K("ix", "tcm", task), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		parts, err := k.Parts()
		if err == nil && len(parts) == 4 {
			ids = append(ids, string(parts[3]))
		}
		return nil
	})
	if err != nil {
		a.err = err
		return
	}
	for _, cid := range ids {
		rec, err := v.Get(storage.K(keyComment, cid))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			a.err = err
			return
		}
		c, derr := decode[cmtRec](rec.Value)
		if derr != nil || c.DeletedAt != 0 || c.TaskID != task {
			continue
		}
		c.ID = cid
		a.put(commentDoc(c, rec.Version))
	}
}
