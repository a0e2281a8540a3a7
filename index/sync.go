package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/teamflow/teamflow/storage"
)

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Rebuild builds the tenant's index again from the store, in a new
// generation beside the current one, and swaps it in once complete. Until
// then searches are answered by the current generation if there is one,
// and with ErrRebuilding if not. Rebuild waits for the result or ctx; the
// rebuild carries on in the background when ctx ends first.
func (ix *Index) Rebuild(ctx context.Context, tenant string) error {
	if tenant == "" {
		return fmt.Errorf("index: rebuild: empty tenant")
	}
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return ErrClosed
	}
	t := ix.tenantLocked(tenant)
	t.flags |= flagRebuild
	if t.rebuildCh == nil {
		t.rebuildCh = make(chan struct{})
	}
	ch := t.rebuildCh
	ix.kickLocked(t)
	ix.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return t.lastErr
}

// SnapshotInstalled tells the index that the store was replaced by a
// snapshot (a raft snapshot or a restore): the commands it skipped were
// never observed. Every tenant is checked again against the store (open
// ones now, closed ones when they open) and reconciled or rebuilt where
// they differ.
func (ix *Index) SnapshotInstalled() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, t := range ix.tenants {
		t.firstSeq = 0
		t.projects = nil
		t.projGen++
		if t.h != nil {
			t.flags |= flagCheck
			ix.kickLocked(t)
		}
	}
}

// rebuild writes a new generation from the store and puts it in service.
// It returns the new handle with a reference held.
func (ix *Index) rebuild(t *tenant) (h *handle, err error) {
	start := time.Now()
	// Rebuild callers from now on wait for the next rebuild; those before
	// wait for this one.
	ix.mu.Lock()
	waiters := t.rebuildCh
	t.rebuildCh = nil
	ix.mu.Unlock()
	defer func() {
		ix.mu.Lock()
		t.lastErr = err
		if waiters != nil {
			close(waiters)
		}
		ix.notifyLocked()
		ix.mu.Unlock()
	}()
	select {
	case ix.rebuildSem <- struct{}{}:
	case <-ix.stop:
		return nil, ErrClosed
	}
	defer func() { <-ix.rebuildSem }()
	if err := os.MkdirAll(t.dir, 0o750); err != nil {
		return nil, err
	}
	cur, _ := readCurrent(t.dir)
	next := cur + 1
	for _, g := range generations(t.dir) {
		if g >= next {
			next = g + 1
		}
		ix.mu.Lock()
		inUse := t.h != nil && t.h.gen == g
		ix.mu.Unlock()
		if g != cur && !inUse {
			// Left by a rebuild that did not finish.
			os.RemoveAll(genDir(t.dir, g))
		}
	}
	if err := ix.reserve(context.Background()); err != nil {
		return nil, err
	}
	dir := genDir(t.dir, next)
	m, err := newMapping()
	if err != nil {
		ix.unreserve()
		return nil, err
	}
	bi, err := bleve.NewUsing(dir, m, scorch.Name, scorch.Name, scorchConfig())
	if err != nil {
		ix.unreserve()
		return nil, fmt.Errorf("index: create %s: %w", dir, err)
	}
	h = &handle{bi: bi, gen: next, dir: dir, refs: 1, projects: newProjectSet()}
	wm, err := ix.syncFromStore(t, h, nil, watermark{})
	if err == nil {
		err = writeCurrent(t.dir, next)
	}
	if err != nil {
		bi.Close()
		os.RemoveAll(dir)
		ix.unreserve()
		return nil, err
	}
	ix.mu.Lock()
	h.wm = wm
	prev := t.h
	closePrev := false
	if prev != nil {
		prev.retired, prev.drop = true, true
		closePrev = prev.refs == 0
		ix.lru.Remove(t.elem)
	}
	t.h = h
	t.elem = ix.lru.PushFront(t)
	t.lastUsed = time.Now()
	t.unusable = false
	t.projects = nil
	t.projGen++
	ix.mu.Unlock()
	if closePrev {
		ix.closeHandle(prev)
	}
	ix.rebuilds.Add(1)
	ix.opts.Logger.Info("index: rebuilt", "tenant", t.id, "index", wm.Index, "took", time.Since(start))
	return h, nil
}

// reconcile brings an index that may have missed commands back to the
// store: documents whose version differs are written again, missing ones
// added, extra ones removed. The index keeps answering meanwhile.
func (ix *Index) reconcile(t *tenant, h *handle) error {
	start := time.Now()
	select {
	case ix.rebuildSem <- struct{}{}:
	case <-ix.stop:
		return ErrClosed
	}
	defer func() { <-ix.rebuildSem }()
	actual, err := readVersions(h)
	if err != nil {
		return err
	}
	ix.mu.Lock()
	base := h.wm
	ix.mu.Unlock()
	wm, err := ix.syncFromStore(t, h, actual, base)
	if err != nil {
		return err
	}
	ix.mu.Lock()
	h.wm, h.wmDirty = wm, false
	t.projects = nil
	t.projGen++
	ix.mu.Unlock()
	ix.reconciles.Add(1)
	ix.opts.Logger.Info("index: reconciled", "tenant", t.id, "index", wm.Index, "took", time.Since(start))
	return nil
}

// syncFromStore writes into h every document the store's records call for
// whose version differs from actual (nil: an empty index), deletes the
// documents of actual the store no longer has, and stores the watermark.
//
// The store is read while the log goes on applying: the applied index W is
// read first, so everything up to W is in what the scans see, and the
// commands after W (which the scans may partly see) are replayed by the
// worker from its queue; replaying a command over a state that already
// holds it changes nothing.
func (ix *Index) syncFromStore(t *tenant, h *handle, actual map[string]string, base watermark) (watermark, error) {
	w := ix.src.AppliedIndex()
	v := ix.src.Tenant(t.id)
	seq, err := readSeq(v)
	if err != nil {
		return watermark{}, err
	}
	wm := watermark{Index: max(w, base.Index), Seq: max(seq, base.Seq)}
	b := h.bi.NewBatch()
	flush := func(final bool) error {
		if ix.stopping.Load() {
			return ErrClosed
		}
		var err error
		switch {
		case final:
			// Durable before the generation is put in service.
			b.SetInternal(wmKey, wm.encode())
			err = persist(h.bi, b)
		case b.Size() < 1000:
			return nil
		default:
			err = h.bi.Batch(b)
		}
		// A fresh batch, never Reset: scorch may still be reading the
		// last one's map when Batch returns.
		b = h.bi.NewBatch()
		return err
	}
	add := func(d doc, version uint64) error {
		ver := fmt.Sprint(version)
		if actual != nil {
			if av, ok := actual[d.id]; ok {
				delete(actual, d.id)
				if av == ver {
					return nil
				}
			}
		}
		if pid, _ := d.fields["project_id"].(string); pid != "" {
			h.projects.add(pid) // before the batch is committed
		}
		if err := b.Index(d.id, d.fields); err != nil {
			return err
		}
		return flush(false)
	}
	live := map[string]bool{}
	err = v.Scan(prefixTask, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		kind, id, ok := classify(k)
		if !ok || kind != KindTask {
			return nil
		}
		rec, err := decode[taskRec](r.Value)
		if err != nil || rec.DeletedAt != 0 {
			return nil
		}
		rec.ID = id
		live[id] = true
		return add(taskDoc(rec, r.Stamp, r.Version), r.Version)
	})
	if err != nil {
		return watermark{}, err
	}
	err = v.Scan(prefixComment, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		kind, id, ok := classify(k)
		if !ok || kind != KindComment {
			return nil
		}
		rec, err := decode[cmtRec](r.Value)
		if err != nil || rec.DeletedAt != 0 || !live[rec.TaskID] {
			return nil
		}
		rec.ID = id
		return add(commentDoc(rec, r.Version), r.Version)
	})
	if err != nil {
		return watermark{}, err
	}
	err = v.Scan(prefixProject, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		kind, id, ok := classify(k)
		if !ok || kind != KindProject {
			return nil
		}
		rec, err := decode[projRec](r.Value)
		if err != nil || rec.DeletedAt != 0 {
			return nil
		}
		rec.ID = id
		return add(projectDoc(rec, r.Version), r.Version)
	})
	if err != nil {
		return watermark{}, err
	}
	for id := range actual {
		b.Delete(id)
		if err := flush(false); err != nil {
			return watermark{}, err
		}
	}
	if err := flush(true); err != nil {
		return watermark{}, err
	}
	return wm, nil
}

// readVersions lists the documents of an index with their record versions.
func readVersions(h *handle) (map[string]string, error) {
	adv, err := h.bi.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dr, err := r.DocIDReaderAll()
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	dvr, err := r.DocValueReader([]string{"ver"})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for {
		iid, err := dr.Next()
		if err != nil {
			return nil, err
		}
		if iid == nil {
			return out, nil
		}
		ext, err := r.ExternalID(iid)
		if err != nil {
			return nil, err
		}
		var ver string
		if err := dvr.VisitDocValues(iid, func(field string, term []byte) { ver = string(term) }); err != nil {
			return nil, err
		}
		out[ext] = ver
	}
}

// expectedVersions lists the documents a tenant's records call for, with
// their versions: live tasks and projects, live comments of live tasks.
func expectedVersions(v storage.View) (map[string]string, error) {
	out := map[string]string{}
	live := map[string]bool{}
	comments := map[string]*cmtRec{}
	cver := map[string]uint64{}
	for _, p := range indexPrefixes {
		err := v.Scan(p, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
			kind, id, ok := classify(k)
			if !ok {
				return nil
			}
			switch kind {
			case KindTask:
				if rec, err := decode[taskRec](r.Value); err == nil && rec.DeletedAt == 0 {
					live[id] = true
					out[docID(kind, id)] = fmt.Sprint(r.Version)
				}
			case KindProject:
				if rec, err := decode[projRec](r.Value); err == nil && rec.DeletedAt == 0 {
					out[docID(kind, id)] = fmt.Sprint(r.Version)
				}
			case KindComment:
				if rec, err := decode[cmtRec](r.Value); err == nil && rec.DeletedAt == 0 {
					comments[id], cver[id] = rec, r.Version
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for id, c := range comments {
		if live[c.TaskID] {
			out[docID(KindComment, id)] = fmt.Sprint(cver[id])
		}
	}
	return out, nil
}

// Report compares a tenant's index with its store.
type Report struct {
	Store   int // documents the store's records call for
	Index   int // documents in the index
	Missing int // in the store, not in the index
	Extra   int // in the index, not in the store
	Stale   int // in both, at another version
	// Watermark is the last log index the index has ingested.
	Watermark uint64
}

// Equal reports an index that holds exactly what the store calls for.
func (r Report) Equal() bool { return r.Missing == 0 && r.Extra == 0 && r.Stale == 0 }

// Diff is the number of documents that differ (the D2 figure).
func (r Report) Diff() int { return r.Missing + r.Extra + r.Stale }

func (r Report) String() string {
	return fmt.Sprintf("store=%d index=%d missing=%d extra=%d stale=%d watermark=%d", r.Store, r.Index, r.Missing, r.Extra, r.Stale, r.Watermark)
}

// Verify compares a tenant's index with the store, document by document
// (ID and record version). An index that lags the log differs until it
// catches up. For `teamflow index verify` and the D2 figures.
func (ix *Index) Verify(ctx context.Context, tenant string) (Report, error) {
	_, h, err := ix.acquire(ctx, tenant, false)
	if err != nil {
		return Report{}, err
	}
	defer ix.release(h)
	actual, err := readVersions(h)
	if err != nil {
		return Report{}, err
	}
	want, err := expectedVersions(ix.src.Tenant(tenant))
	if err != nil {
		return Report{}, err
	}
	ix.mu.Lock()
	rep := Report{Store: len(want), Index: len(actual), Watermark: h.wm.Index}
	ix.mu.Unlock()
	for id, ver := range want {
		av, ok := actual[id]
		switch {
		case !ok:
			rep.Missing++
		case av != ver:
			rep.Stale++
		}
	}
	for id := range actual {
		if _, ok := want[id]; !ok {
			rep.Extra++
		}
	}
	return rep, nil
}

// WaitIdle returns once no tenant has queued commands or owed work, or
// when ctx ends. Commands the store has applied but not yet handed to
// Observe are not waited for. Workers do not linger while it waits.
func (ix *Index) WaitIdle(ctx context.Context) error {
	ix.mu.Lock()
	ix.idleWait++
	ix.hurryLocked()
	ix.mu.Unlock()
	defer func() {
		ix.mu.Lock()
		ix.idleWait--
		ix.mu.Unlock()
	}()
	for {
		ix.mu.Lock()
		busy := false
		for _, t := range ix.tenants {
			if t.working || len(t.queue) > 0 || t.flags != 0 {
				busy = true
				break
			}
		}
		ch := ix.changed
		ix.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// projectTable is what queries need to know of a tenant's projects: keys
// (project:WEB, WEB-12) and statuses (status:done). It is read from the
// store, not the index: status IDs are stable, so the newest names and
// categories are the right ones to resolve.
type projectTable struct {
	byID  map[string]*projRec
	byKey map[string]string // upper-case key → project ID
}

func (ix *Index) projectTable(t *tenant) (*projectTable, error) {
	ix.mu.Lock()
	if p := t.projects; p != nil {
		ix.mu.Unlock()
		return p, nil
	}
	gen := t.projGen
	ix.mu.Unlock()
	tbl := &projectTable{byID: map[string]*projRec{}, byKey: map[string]string{}}
	err := ix.src.Tenant(t.id).Scan(prefixProject, storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		_, id, ok := classify(k)
		if !ok {
			return nil
		}
		rec, err := decode[projRec](r.Value)
		if err != nil {
			return nil
		}
		rec.ID = id
		rec.Description = ""
		tbl.byID[id] = rec
		if rec.DeletedAt == 0 && rec.Key != "" {
			tbl.byKey[strings.ToUpper(rec.Key)] = id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	if t.projGen == gen {
		t.projects = tbl
	}
	ix.mu.Unlock()
	return tbl, nil
}
