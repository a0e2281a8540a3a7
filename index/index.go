package index

import (
	"container/list"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/teamflow/teamflow/storage"
)

// Source is what the index reads from the store: tenant records (for
// rebuilds, reconciles and the project table of queries) and the applied
// index. *storage.Store implements it.
type Source interface {
	Tenant(id string) storage.View
	AppliedIndex() uint64
}

var _ Source = (*storage.Store)(nil)

// Options configure an Index. Zero values take the defaults.
type Options struct {
	// MaxOpen caps the Bleve indexes open at once (default 64). The least
	// recently used idle one is closed to make room; a running rebuild
	// holds one slot more.
	MaxOpen int
	// IdleTimeout closes an index nobody used for that long (default 5
	// minutes; negative: never).
	IdleTimeout time.Duration
	// Workers bounds the tenants indexed at the same time (default
	// GOMAXPROCS).
	Workers int
	// Rebuilds bounds the rebuilds and reconciles running at the same time
	// (default 1), so a node that lost its indexes keeps indexing new
	// writes while it rebuilds.
	Rebuilds int
	// MaxQueue is how many applied commands may wait for one tenant; past
	// it the queue is dropped and the tenant reconciled from the store
	// (default 100,000).
	MaxQueue int
	// RebuildWait is how long a search waits for a small rebuild to finish
	// before answering ErrRebuilding (default 250 ms).
	RebuildWait time.Duration
	// FlushInterval is how often watermarks of idle tenants are persisted
	// (default 10 s).
	FlushInterval time.Duration
	// Logger receives rebuilds, reconciles and errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the recency boost (default time.Now).
	Now func() time.Time
}

// Stats are counters for metrics.
type Stats struct {
	Tenants    int    // tenants known since start
	Open       int    // Bleve indexes open now
	MaxOpen    int    // the most open at once
	Queued     int    // applied commands waiting to be indexed
	Ingested   uint64 // applied commands indexed
	Rebuilds   uint64 // full rebuilds completed
	Reconciles uint64 // reconciles (store diff) completed
	Evictions  uint64 // indexes closed to make room or when idle
	Errors     uint64 // failed batches, rebuilds or reconciles
}

// Index is the search index of every workspace of a node: one Bleve index
// per tenant in a directory of its own under the root, opened on first use,
// closed when idle or to make room, fed by Observe from applied commands.
type Index struct {
	root string
	src  Source
	opts Options

	mu        sync.Mutex
	tenants   map[string]*tenant
	lru       list.List // *tenant with an open handle; front = most recently used
	open      int       // handles open or being opened (reserved)
	changed   chan struct{}
	hurry     chan struct{} // closed to cut the workers' lingering short
	idleWait  int           // WaitIdle callers: while any, workers do not linger
	closed    bool
	delivered uint64 // highest log index Observe has seen
	advDirty  bool

	workSem    chan struct{}
	rebuildSem chan struct{}
	stop       chan struct{} // closed when Close begins
	quit       chan struct{} // closed when the workers are done
	workers    sync.WaitGroup
	janitor    chan struct{}

	stopping   atomic.Bool // Close has begun: rebuilds give up
	maxOpen    atomic.Int64
	ingested   atomic.Uint64
	rebuilds   atomic.Uint64
	reconciles atomic.Uint64
	evictions  atomic.Uint64
	errors     atomic.Uint64
}

// Work a tenant's worker owes besides its queue.
const (
	flagRebuild   uint8 = 1 << iota // build a new index from the store and swap it in
	flagReconcile                   // diff the index against the store and fix it
	flagCheck                       // compare the watermark with the store
)

type tenant struct {
	id  string
	dir string

	// Everything below is guarded by Index.mu.
	h         *handle       // the serving index, nil when closed
	elem      *list.Element // in Index.lru while h != nil
	opening   chan struct{} // closed when an open or close in progress ends
	queue     []entry
	flags     uint8
	working   bool
	inflight  bool // the worker holds entries taken from the queue
	unusable  bool // no usable index on disk: searches answer ErrRebuilding
	firstSeq  uint64
	adv       *advance
	lastUsed  time.Time
	projects  *projectTable
	projGen   uint64
	rebuildCh chan struct{} // closed when the pending rebuild ends
	lastErr   error
}

// handle is one open Bleve index (one generation of a tenant's index).
type handle struct {
	bi      bleve.Index
	gen     int
	dir     string
	refs    int
	retired bool // out of service: close when unused
	drop    bool // replaced by a newer generation: remove its directory once closed
	wm      watermark
	wmDirty bool // wm advanced past what the index holds on disk
	// projects holds every project written into this index (scopedQuery).
	projects *projectSet
}

// entry is one applied command of a tenant, waiting to be indexed.
type entry struct {
	index  uint64
	seq    uint64
	cmd    *storage.Command
	values []int64
	rel    bool // touches an indexed record
}

// watermark is how far a tenant's index has ingested the log: the last log
// index and the tenant's event sequence (storage.Result.Seq) it reflects.
// It is stored inside the Bleve index, in the batch that brings the
// documents to that point.
type watermark struct {
	Format int    `json:"f"`
	Index  uint64 `json:"i"`
	Seq    uint64 `json:"s"`
}

var wmKey = []byte("tf.wm")

// advance records commands of a closed tenant that touched nothing indexed:
// the index at Base is also up to date at Seq and Index.
type advance struct {
	Base  uint64 `json:"base"`
	Seq   uint64 `json:"seq"`
	Index uint64 `json:"index"`
}

const advancesFile = "advances.json"

// Open opens the index rooted at dir (created if needed). It reads no
// tenant index: those open on first use, so start-up costs the same with
// ten workspaces or ten thousand. Register Observe with the store before
// the log applies anything.
func Open(dir string, src Source, opts Options) (*Index, error) {
	if src == nil {
		return nil, errors.New("index: nil source")
	}
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 64
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Rebuilds <= 0 {
		opts.Rebuilds = 1
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 100_000
	}
	if opts.RebuildWait == 0 {
		opts.RebuildWait = 250 * time.Millisecond
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	ix := &Index{
		root:       dir,
		src:        src,
		opts:       opts,
		tenants:    map[string]*tenant{},
		changed:    make(chan struct{}),
		hurry:      make(chan struct{}),
		workSem:    make(chan struct{}, opts.Workers),
		rebuildSem: make(chan struct{}, opts.Rebuilds),
		stop:       make(chan struct{}),
		quit:       make(chan struct{}),
		janitor:    make(chan struct{}),
	}
	if err := ix.loadAdvances(); err != nil {
		opts.Logger.Warn("index: ignoring advances file", "err", err)
	}
	go ix.runJanitor()
	return ix, nil
}

// Close stops indexing: the queued commands are indexed first (a running
// rebuild or reconcile is abandoned and redone when the tenant is next
// opened), watermarks are persisted and every index is closed. Shut down
// in this order: the log (no more applies), the index, then the store: a
// rebuild may be scanning the store until Close returns. A batch the store
// hands over after Close is not indexed; the tenant is reconciled when its
// index next opens.
func (ix *Index) Close() error {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil
	}
	ix.closed = true
	ix.stopping.Store(true)
	close(ix.stop)
	ix.notifyLocked()
	ix.mu.Unlock()
	ix.workers.Wait()
	close(ix.quit)
	<-ix.janitor

	ix.mu.Lock()
	var hs []*handle
	for _, t := range ix.tenants {
		if t.rebuildCh != nil {
			t.lastErr = ErrClosed
			close(t.rebuildCh)
			t.rebuildCh = nil
		}
		if t.h == nil {
			continue
		}
		h := t.h
		t.h = nil
		ix.lru.Remove(t.elem)
		t.elem = nil
		h.retired = true // a search still holding it closes it on release
		if h.refs == 0 {
			hs = append(hs, h)
		}
	}
	ix.mu.Unlock()
	var firstErr error
	for _, h := range hs {
		if err := ix.closeHandle(h); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := ix.saveAdvances(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// Stats reports counters for metrics.
func (ix *Index) Stats() Stats {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	st := Stats{Tenants: len(ix.tenants), Open: ix.open, MaxOpen: int(ix.maxOpen.Load()),
		Ingested: ix.ingested.Load(), Rebuilds: ix.rebuilds.Load(), Reconciles: ix.reconciles.Load(),
		Evictions: ix.evictions.Load(), Errors: ix.errors.Load()}
	for _, t := range ix.tenants {
		st.Queued += len(t.queue)
	}
	return st
}

// notifyLocked wakes everyone waiting for a change of state.
func (ix *Index) notifyLocked() {
	close(ix.changed)
	ix.changed = make(chan struct{})
}

// tenantLocked returns the state of a tenant, creating it.
func (ix *Index) tenantLocked(id string) *tenant {
	t := ix.tenants[id]
	if t == nil {
		t = &tenant{id: id, dir: filepath.Join(ix.root, tenantDirName(id))}
		ix.tenants[id] = t
	}
	return t
}

// tenantDirName maps a tenant ID to a directory name that is safe on every
// file system and unique: t-<id> for IDs of [a-z0-9_-], otherwise h-<hex>
// (or s- and a hash when that would be too long).
func tenantDirName(id string) string {
	safe := len(id) > 0 && len(id) <= 100
	for i := 0; i < len(id) && safe; i++ {
		c := id[i]
		safe = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
	}
	if safe {
		return "t-" + id
	}
	h := hex.EncodeToString([]byte(id))
	if len(h) <= 200 {
		return "h-" + h
	}
	return "s-" + hashHex(id)
}

// --- handles: open, close, the LRU ---------------------------------------

// acquire returns the tenant's serving index with a reference held,
// opening it if needed. forWorker is the tenant's own worker: for it a
// missing index is errUnusable (it rebuilds); a search gets ErrRebuilding
// after waiting RebuildWait for a rebuild to finish.
func (ix *Index) acquire(ctx context.Context, id string, forWorker bool) (*tenant, *handle, error) {
	deadline := time.Now().Add(ix.opts.RebuildWait)
	for {
		ix.mu.Lock()
		if ix.closed && !forWorker {
			ix.mu.Unlock()
			return nil, nil, ErrClosed
		}
		t := ix.tenantLocked(id)
		if t.h != nil {
			t.h.refs++
			t.lastUsed = time.Now()
			ix.lru.MoveToFront(t.elem)
			h := t.h
			ix.mu.Unlock()
			return t, h, nil
		}
		if t.opening != nil {
			ch := t.opening
			ix.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		if t.unusable {
			if forWorker {
				ix.mu.Unlock()
				return t, nil, errUnusable
			}
			// A rebuild is owed or running: wait a little, small ones end
			// quickly.
			ix.kickLocked(t)
			ch := ix.changed
			ix.mu.Unlock()
			wait := time.Until(deadline)
			if wait <= 0 {
				return nil, nil, ErrRebuilding
			}
			tm := time.NewTimer(wait)
			select {
			case <-ch:
				tm.Stop()
				continue
			case <-tm.C:
				return nil, nil, ErrRebuilding
			case <-ctx.Done():
				tm.Stop()
				return nil, nil, ctx.Err()
			}
		}
		// Closed: open it. t.opening keeps others out meanwhile.
		t.opening = make(chan struct{})
		ix.mu.Unlock()
		h, err := ix.openTenant(ctx, t)
		ix.mu.Lock()
		close(t.opening)
		t.opening = nil
		switch {
		case err == nil:
			t.h = h
			t.elem = ix.lru.PushFront(t)
			t.unusable = false
			ix.foldAdvanceLocked(t, h)
			ix.mu.Unlock()
			// Decide, from what Observe saw and the store, whether the
			// index missed commands while it was closed.
			ix.check(t, h)
			ix.mu.Lock()
			ix.notifyLocked()
			ix.mu.Unlock()
			continue
		case errors.Is(err, errUnusable):
			ix.opts.Logger.Warn("index: tenant index unusable, rebuilding", "tenant", id, "err", err)
			t.unusable = true
			t.flags |= flagRebuild
			ix.notifyLocked()
			ix.mu.Unlock()
			continue
		default:
			ix.notifyLocked()
			ix.mu.Unlock()
			return nil, nil, err
		}
	}
}

// release drops a reference taken by acquire.
func (ix *Index) release(h *handle) {
	ix.mu.Lock()
	h.refs--
	closeNow := h.retired && h.refs == 0
	ix.notifyLocked()
	ix.mu.Unlock()
	if closeNow {
		ix.closeHandle(h)
	}
}

// openTenant opens the current generation of a tenant's index, after
// reserving a slot under MaxOpen.
func (ix *Index) openTenant(ctx context.Context, t *tenant) (*handle, error) {
	gen, err := readCurrent(t.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnusable, err)
	}
	if err := ix.reserve(ctx); err != nil {
		return nil, err
	}
	dir := genDir(t.dir, gen)
	bi, err := bleve.OpenUsing(dir, scorchConfig())
	if err != nil {
		ix.unreserve()
		return nil, fmt.Errorf("%w: open %s: %v", errUnusable, dir, err)
	}
	raw, err := bi.GetInternal(wmKey)
	var wm watermark
	if err == nil {
		err = json.Unmarshal(raw, &wm)
	}
	if err != nil || wm.Format != formatVersion {
		bi.Close()
		ix.unreserve()
		return nil, fmt.Errorf("%w: watermark of %s: format %d, %v", errUnusable, dir, wm.Format, err)
	}
	projects, err := readProjectSet(bi)
	if err != nil {
		bi.Close()
		ix.unreserve()
		return nil, fmt.Errorf("%w: projects of %s: %v", errUnusable, dir, err)
	}
	// No reference yet: acquire takes one when it loops around.
	return &handle{bi: bi, gen: gen, dir: dir, wm: wm, projects: projects}, nil
}

// reserve takes one slot under MaxOpen, closing the least recently used
// idle index if there is none.
func (ix *Index) reserve(ctx context.Context) error {
	for {
		ix.mu.Lock()
		if ix.open < ix.opts.MaxOpen {
			ix.open++
			if n := int64(ix.open); n > ix.maxOpen.Load() {
				ix.maxOpen.Store(n)
			}
			ix.mu.Unlock()
			return nil
		}
		var victim *tenant
		for e := ix.lru.Back(); e != nil; e = e.Prev() {
			t := e.Value.(*tenant)
			if t.h.refs == 0 && t.opening == nil {
				victim = t
				break
			}
		}
		if victim != nil {
			h := ix.detachLocked(victim)
			ix.mu.Unlock()
			ix.evictions.Add(1)
			ix.closeTenantHandle(victim, h)
			continue
		}
		ch := ix.changed
		ix.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-ix.quit:
			return ErrClosed
		}
	}
}

func (ix *Index) unreserve() {
	ix.mu.Lock()
	ix.open--
	ix.notifyLocked()
	ix.mu.Unlock()
}

// detachLocked takes an idle tenant's handle out of service so it can be
// closed; t.opening keeps the tenant from being reopened meanwhile.
func (ix *Index) detachLocked(t *tenant) *handle {
	h := t.h
	t.h = nil
	ix.lru.Remove(t.elem)
	t.elem = nil
	t.opening = make(chan struct{})
	return h
}

// closeTenantHandle closes a detached handle and remembers its watermark as
// the start of the tenant's advance.
func (ix *Index) closeTenantHandle(t *tenant, h *handle) {
	ix.closeHandle(h)
	ix.mu.Lock()
	close(t.opening)
	t.opening = nil
	ix.notifyLocked()
	ix.mu.Unlock()
}

// closeHandle makes the index and its watermark durable, closes it and
// frees its slot; a generation replaced by a rebuild is removed from disk.
func (ix *Index) closeHandle(h *handle) error {
	var firstErr error
	ix.mu.Lock()
	wm, remove := h.wm, h.drop
	h.wmDirty = false
	ix.mu.Unlock()
	if !remove {
		b := h.bi.NewBatch()
		b.SetInternal(wmKey, wm.encode())
		firstErr = persist(h.bi, b)
	}
	if err := h.bi.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if remove {
		if err := os.RemoveAll(h.dir); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	ix.unreserve()
	if firstErr != nil {
		ix.errors.Add(1)
		ix.opts.Logger.Error("index: close", "dir", h.dir, "err", firstErr)
	}
	return firstErr
}

// scorchConfig: batches return once they are searchable, without waiting
// for their fsync (persisting them is the persister's business). The index
// is derived data: a crash may lose the last batches, and the watermark,
// stored in the same batches, goes back with them, so the check at open
// finds the gap and reconciles. Where durability matters (before CURRENT
// names a new generation, before an index is closed) persist waits for it.
func scorchConfig() map[string]any { return map[string]any{"unsafe_batch": true} }

// persist applies b and waits until it (and so every batch before it) is
// on disk.
func persist(bi bleve.Index, b *bleve.Batch) error {
	done := make(chan error, 1)
	b.SetPersistedCallback(func(err error) {
		select {
		case done <- err:
		default:
		}
	})
	if err := bi.Batch(b); err != nil {
		return err
	}
	tm := time.NewTimer(5 * time.Minute)
	defer tm.Stop()
	select {
	case err := <-done:
		return err
	case <-tm.C:
		return errors.New("index: timed out persisting a batch")
	}
}

func readProjectSet(bi bleve.Index) (*projectSet, error) {
	adv, err := bi.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return loadProjectSet(r)
}

func (w watermark) encode() []byte {
	w.Format = formatVersion
	b, _ := json.Marshal(w)
	return b
}

// runJanitor closes idle indexes and persists watermarks and advances.
func (ix *Index) runJanitor() {
	defer close(ix.janitor)
	every := ix.opts.FlushInterval
	if ix.opts.IdleTimeout > 0 && ix.opts.IdleTimeout/2 < every {
		every = ix.opts.IdleTimeout / 2
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ix.quit:
			return
		case <-tick.C:
		}
		ix.closeIdle(time.Now())
		ix.mu.Lock()
		dirty := ix.advDirty
		ix.mu.Unlock()
		if dirty {
			if err := ix.saveAdvances(); err != nil {
				ix.opts.Logger.Warn("index: save advances", "err", err)
			}
		}
	}
}

// closeIdle closes the indexes unused since IdleTimeout.
func (ix *Index) closeIdle(now time.Time) {
	if ix.opts.IdleTimeout < 0 {
		return
	}
	type victim struct {
		t *tenant
		h *handle
	}
	var vs []victim
	ix.mu.Lock()
	for e := ix.lru.Back(); e != nil; {
		t := e.Value.(*tenant)
		e = e.Prev()
		if now.Sub(t.lastUsed) < ix.opts.IdleTimeout {
			break
		}
		if t.h.refs == 0 && t.opening == nil {
			vs = append(vs, victim{t, ix.detachLocked(t)})
		}
	}
	ix.mu.Unlock()
	for _, v := range vs {
		ix.evictions.Add(1)
		ix.closeTenantHandle(v.t, v.h)
	}
}

// --- generations on disk ---------------------------------------------------

// A tenant directory holds generations g000001, g000002 ... and CURRENT,
// which names the one in service. A rebuild writes a new generation and
// switches CURRENT only once it is complete, so a crash mid-rebuild leaves
// the previous one in service.

func genDir(tdir string, gen int) string { return filepath.Join(tdir, fmt.Sprintf("g%06d", gen)) }

func readCurrent(tdir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(tdir, "CURRENT"))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "g") {
		return 0, fmt.Errorf("CURRENT: %q", s)
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("CURRENT: %q", s)
	}
	return n, nil
}

func writeCurrent(tdir string, gen int) error {
	tmp := filepath.Join(tdir, "CURRENT.tmp")
	if err := writeFileSync(tmp, fmt.Appendf(nil, "g%06d\n", gen)); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(tdir, "CURRENT")); err != nil {
		return err
	}
	return syncDir(tdir)
}

// generations lists the generation numbers present in a tenant directory.
func generations(tdir string) []int {
	ents, err := os.ReadDir(tdir)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || len(name) < 2 || name[0] != 'g' {
			continue
		}
		if n, err := strconv.Atoi(name[1:]); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}

// --- advances -----------------------------------------------------------------

func (ix *Index) loadAdvances() error {
	b, err := os.ReadFile(filepath.Join(ix.root, advancesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string]*advance
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for id, a := range m {
		if id == "" || a == nil {
			continue
		}
		ix.tenantLocked(id).adv = a
	}
	return nil
}

func (ix *Index) saveAdvances() error {
	ix.mu.Lock()
	m := map[string]*advance{}
	for id, t := range ix.tenants {
		if t.adv != nil {
			a := *t.adv
			m[id] = &a
		}
	}
	ix.advDirty = false
	ix.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(ix.root, advancesFile+".tmp")
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(ix.root, advancesFile)); err != nil {
		return err
	}
	return syncDir(ix.root)
}

// foldAdvanceLocked applies a closed tenant's advance to its freshly
// opened index, when the advance starts where the index is.
func (ix *Index) foldAdvanceLocked(t *tenant, h *handle) {
	a := t.adv
	if a == nil {
		return
	}
	t.adv = nil
	ix.advDirty = true
	if a.Base == h.wm.Seq && a.Seq > h.wm.Seq && a.Index > h.wm.Index {
		h.wm.Seq, h.wm.Index = a.Seq, a.Index
		h.wmDirty = true
	}
}

// Scorch is the only index type used; referenced so the import stays
// explicit about the on-disk format.
var _ = scorch.Name
