package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/index"
	"github.com/teamflow/teamflow/index/searchadapter"
	"github.com/teamflow/teamflow/storage"
)

// Dedicated stores (cluster/DESIGN-dedicated-groups.md, stage 3). A
// workspace whose plan has the dedicated-store entitlement can be moved by
// the operator into its own raft group G, run by every member next to the
// shared group, with its own raft log and store under <data>/groups/G.
// The shared store's record sys/route/<tenant> says where the workspace
// lives; the router reads it on every call, so a route never disagrees
// with the store it was read from.

// groupsDir holds one directory per dedicated group: state (its store),
// cluster/{raft,snap} (its raft log and received snapshots), index.
const groupsDir = "groups"

// Route states.
const (
	routeFenced    = "fenced"    // writes refused; the keyspace is frozen in the shared store
	routeSeeding   = "seeding"   // hash recorded; members seed G from their shared store
	routeDedicated = "dedicated" // G serves the workspace; the shared store no longer holds it
)

// routeRecord is sys/route/<tenant>.
type routeRecord struct {
	Group     uint64            `json:"group"`
	State     string            `json:"state"`
	Hash      string            `json:"hash,omitempty"`       // TenantHash at the fence (hex), from seeding on
	Peers     map[uint64]string `json:"peers"`                // the voters of G: the shared voters at the fence
	PingIndex uint64            `json:"ping_index,omitempty"` // G's index every member must reach before serving (dedicated)
	FencedAt  int64             `json:"fenced_at"`            // unix ms
}

func routeKey(tenant string) storage.Key { return storage.K("route", tenant) }

// routeSeqKey is the last group ID handed out (never reused, even after an
// aborted move).
var routeSeqKey = storage.K("route-seq")

// abortedKey marks group id as given up (an aborted move): every member
// closes it and deletes its directory. Only such a mark deletes a group's
// directory: a group no record names yet may belong to a record this
// node's shared store has not replayed yet (it is opened then), and its
// raft log must survive.
func abortedKey(id uint64) storage.Key { return storage.K("route-aborted", strconv.FormatUint(id, 10)) }

// routingKeys are the prefixes of every platform record about dedicated
// groups (route records, the group sequence, abort marks). A backup leaves
// them out: it restores every workspace into the shared store, and a
// restored installation starts without groups.
var routingKeys = []storage.Key{storage.K("route"), routeSeqKey, storage.K("route-aborted")}

// scanRoutes calls fn with every route record v holds.
func scanRoutes(v storage.View, fn func(tenant string, rec *routeRecord) error) error {
	return v.Scan(storage.K("route"), storage.ScanOptions{}, func(k storage.Key, r storage.Record) error {
		tenant, err := k.Last()
		if err != nil {
			return err
		}
		rec := &routeRecord{}
		if err := json.Unmarshal(r.Value, rec); err != nil {
			return fmt.Errorf("route of %s: %w", tenant, err)
		}
		return fn(tenant, rec)
	})
}

// readRoute reads tenant's route record; nil when the workspace is shared.
func readRoute(v storage.View, tenant string) (*routeRecord, uint64, error) {
	rec, err := v.Get(routeKey(tenant))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	out := &routeRecord{}
	if err := json.Unmarshal(rec.Value, out); err != nil {
		return nil, 0, fmt.Errorf("route of %s: %w", tenant, err)
	}
	return out, rec.Version, nil
}

// groupWait is how long a request waits for a dedicated workspace's group
// to open here and apply its ping_index before it is refused, and how long
// after its flip such a group may still be closed or behind without the
// node reporting itself not ready (ready).
const groupWait = 2 * time.Second

func workspaceMoving() error {
	return &engine.Error{Code: "workspace_moving", Message: "this workspace is moving to its dedicated store; retry shortly",
		Details: map[string]any{"retry_after": 2}, Err: engine.ErrUnavailable}
}

// --- the router ---

// groupRouter is the engine's Router on a cluster member.
type groupRouter struct {
	d      *dedicated
	shared engine.Route
}

func (r groupRouter) Platform() engine.Route { return r.shared }

func (r groupRouter) Workspace(tenant string) engine.Route {
	rec, _, err := readRoute(r.d.shared.Sys(), tenant)
	switch {
	case err != nil:
		return engine.Route{Log: failLog{err}, Store: r.d.shared}
	case rec == nil:
		return engine.Route{Log: sharedLog{inner: r.shared.Log, tenant: tenant}, Store: r.d.shared}
	case rec.State != routeDedicated:
		// Fenced or seeding: the shared store is complete and frozen.
		return engine.Route{Log: failLog{workspaceMoving()}, Store: r.d.shared}
	}
	g := r.d.waitGroup(rec.Group, rec.PingIndex, groupWait)
	if g == nil {
		// G is not open here yet (or behind its ping): nothing to read
		// from, writes refused as during the move.
		return engine.Route{Log: failLog{workspaceMoving()}, Store: groupReader{tenants: r.d.shared, sys: r.d.shared}}
	}
	return engine.Route{Log: retryLog{g.raft}, Store: groupReader{tenants: g.store, sys: r.d.shared}}
}

// groupReader reads a workspace from its group's store and the platform
// from the shared one.
type groupReader struct{ tenants, sys *storage.Store }

func (g groupReader) Tenant(id string) storage.View { return g.tenants.Tenant(id) }
func (g groupReader) Sys() storage.View             { return g.sys.Sys() }

// sharedLog is a shared workspace's Log: every command carries the
// precondition that the workspace has no route record, so a command
// proposed before a move's fence and applied after it fails instead of
// writing the frozen keyspace; it is answered as the move's refusal.
type sharedLog struct {
	inner  engine.Log
	tenant string
}

func (l sharedLog) Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error) {
	c := *cmd
	key := routeKey(l.tenant)
	c.Preconditions = append(slices.Clip(cmd.Preconditions), storage.Precondition{Space: storage.SpaceSys, Key: key})
	res, err := l.inner.Propose(ctx, &c)
	var ce *storage.ConflictError
	if err == nil && errors.As(res.Err, &ce) && ce.Key == key.String() && ce.Expected == 0 {
		return res, workspaceMoving()
	}
	return res, err
}

// failLog refuses every command with err.
type failLog struct{ err error }

func (l failLog) Propose(context.Context, *storage.Command) (storage.Result, error) {
	return storage.Result{}, l.err
}

// routedSearcher answers a dedicated workspace's searches from its group's
// index, every other from the shared one.
type routedSearcher struct {
	d      *dedicated
	shared engine.Searcher
}

func (s routedSearcher) pick(tenant string) engine.Searcher {
	if rec, _, err := readRoute(s.d.shared.Sys(), tenant); err == nil && rec != nil && rec.State == routeDedicated {
		if g := s.d.get(rec.Group); g != nil && g.ix != nil {
			return searchadapter.New(g.ix)
		}
	}
	return s.shared
}

func (s routedSearcher) Search(ctx context.Context, tenant string, q engine.SearchQuery) (engine.SearchResult, error) {
	return s.pick(tenant).Search(ctx, tenant, q)
}
func (s routedSearcher) Check(text string) error { return s.shared.Check(text) }
func (s routedSearcher) Rebuild(ctx context.Context, tenant string) error {
	return s.pick(tenant).Rebuild(ctx, tenant)
}

// --- the groups running on this node ---

// dedicated runs this node's dedicated groups and moves workspaces into
// new ones.
type dedicated struct {
	cfg    Config
	log    *slog.Logger
	host   *cluster.Node
	shared *storage.Store
	search bool

	mu        sync.Mutex
	running   map[uint64]*groupRun
	observers []storage.Observer   // also registered on every group store (live updates)
	changed   chan struct{}        // closed and replaced when a group opens or closes
	seen      map[string]time.Time // when ready first found each workspace dedicated; zero: before this start

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	// stopAfter, in tests, ends Dedicate after the step of that name, as a
	// mover that died there would ("" in the product).
	stopAfter string
}

// groupRun is one dedicated group open on this node.
type groupRun struct {
	id     uint64
	tenant string
	raft   *cluster.Node
	store  *storage.Store
	ix     *index.Index
}

func newDedicated(cfg Config, logger *slog.Logger, host *cluster.Node, shared *storage.Store, search bool) *dedicated {
	d := &dedicated{
		cfg: cfg, log: logger.With("component", "dedicated"), host: host, shared: shared, search: search,
		running: map[uint64]*groupRun{}, changed: make(chan struct{}), seen: map[string]time.Time{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	// Route records change by these commands only, and the groups'
	// membership follows the shared one's (followMembership); a snapshot
	// install (snapshotInstalled) kicks too.
	shared.Observe(func(batch []storage.Applied) {
		for _, a := range batch {
			if a.Command != nil && (strings.HasPrefix(a.Command.Kind, "workspace.dedicate.") || a.Command.Kind == cluster.MembershipKind) {
				d.poke()
				return
			}
		}
	})
	return d
}

func (d *dedicated) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// start opens every group the route records name (before the API serves),
// then keeps following the records.
func (d *dedicated) start() {
	if err := d.markStarted(); err != nil {
		d.log.Error("dedicated groups at start", "err", err)
	}
	if err := d.reconcile(); err != nil {
		d.log.Error("open dedicated groups", "err", err)
	}
	go d.run()
}

// run reconciles on every kick and every 2 s: the tick resumes what a
// kick cannot announce (a group's new leader finishing a membership step,
// a group that failed to open).
func (d *dedicated) run() {
	defer close(d.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-d.stop
		cancel() // a membership step in flight (Promote waits for a learner)
	}()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
		case <-t.C:
		}
		if err := d.reconcile(); err != nil {
			d.log.Error("dedicated groups", "err", err)
		}
		d.followMembership(ctx)
	}
}

// Close stops following the records and closes every group (before the
// host node closes).
func (d *dedicated) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
		<-d.done
	}
	d.closeAll()
}

// closeAll closes every group open here.
func (d *dedicated) closeAll() {
	d.mu.Lock()
	gs := d.running
	d.running = map[uint64]*groupRun{}
	if len(gs) > 0 {
		d.signalLocked()
	}
	d.mu.Unlock()
	for _, g := range gs {
		d.closeGroup(g)
	}
}

// observe registers o on the stores of every group, now and later.
func (d *dedicated) observe(o storage.Observer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observers = append(d.observers, o)
	for _, g := range d.running {
		g.store.Observe(o)
	}
}

func (d *dedicated) get(id uint64) *groupRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running[id]
}

func (d *dedicated) list() []*groupRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*groupRun, 0, len(d.running))
	for _, g := range d.running {
		out = append(out, g)
	}
	return out
}

// waitGroup returns group id once it is open here and its store has
// applied index, waiting up to wait; nil otherwise.
func (d *dedicated) waitGroup(id, index uint64, wait time.Duration) *groupRun {
	deadline := time.Now().Add(wait)
	for {
		d.mu.Lock()
		g, ch := d.running[id], d.changed
		d.mu.Unlock()
		left := time.Until(deadline)
		if g != nil {
			if g.store.AppliedIndex() >= index {
				return g
			}
			if left <= 0 {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), left)
			err := g.store.WaitApplied(ctx, index)
			cancel()
			if err == nil {
				return g
			}
			return nil
		}
		if left <= 0 {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(left):
		}
	}
}

// reconcile opens the group of every route record in seeding or dedicated
// state that is not running here, and closes (and deletes) the groups no
// record names any more (an aborted move).
func (d *dedicated) reconcile() error {
	if d.host.Status().State == "removed" {
		// Removed from the cluster: the groups' members refuse this
		// node's traffic too, and each group's leader removes it
		// (followMembership). Nothing here serves any more.
		d.closeAll()
		return nil
	}
	want := map[uint64]string{}
	recs := map[uint64]*routeRecord{}
	err := scanRoutes(d.shared.Sys(), func(tenant string, rec *routeRecord) error {
		if rec.State == routeSeeding || rec.State == routeDedicated {
			want[rec.Group] = tenant
			recs[rec.Group] = rec
		}
		return nil
	})
	if err != nil {
		return err
	}
	aborted := map[uint64]bool{}
	err = d.shared.Sys().Scan(storage.K("route-aborted"), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		last, err := k.Last()
		if err != nil {
			return err
		}
		if id, err := strconv.ParseUint(last, 10, 64); err == nil {
			aborted[id] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, g := range d.list() {
		if aborted[g.id] {
			d.log.Info("closing the group of an aborted move", "group", g.id, "workspace", g.tenant)
			d.mu.Lock()
			delete(d.running, g.id)
			d.signalLocked()
			d.mu.Unlock()
			d.closeGroup(g)
		}
	}
	for id := range aborted {
		dir := d.groupDir(id)
		if _, err := os.Stat(dir); err == nil && d.get(id) == nil {
			d.log.Info("removing the directory of an aborted move's group", "group", id)
			if err := os.RemoveAll(dir); err != nil {
				d.log.Error("remove group directory", "group", id, "err", err)
			}
		}
	}
	var errs []error
	for id, tenant := range want {
		if d.get(id) != nil {
			continue
		}
		if err := d.open(tenant, recs[id]); err != nil {
			errs = append(errs, fmt.Errorf("group %d (workspace %s): %w", id, tenant, err))
		}
	}
	return errors.Join(errs...)
}

func (d *dedicated) signalLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *dedicated) groupDir(id uint64) string {
	return filepath.Join(d.cfg.Data, groupsDir, strconv.FormatUint(id, 10))
}

// errSourceGone: the shared store no longer holds the workspace as it was
// at the fence (the flip applied here already); the group is joined empty
// and its leader sends a snapshot.
var errSourceGone = errors.New("the shared store no longer holds the workspace as fenced")

// open starts group rec.Group on this node: a restart when its raft log
// exists; else seeded from this node's shared store while the record is
// seeding and this node was a voter at the fence; else joined empty (a
// member added since, or the flip applied here already), and the group's
// leader adds it (followMembership) and sends a snapshot.
func (d *dedicated) open(tenant string, rec *routeRecord) error {
	_, fenceMember := rec.Peers[d.cfg.Cluster.NodeID]
	dir := d.groupDir(rec.Group)
	raftDir := filepath.Join(dir, clusterDir)
	_, statErr := os.Stat(filepath.Join(raftDir, "raft"))
	hasLog := statErr == nil
	if !hasLog {
		// Without its raft log (written last, synced) a group directory is
		// a seed that did not finish: start over.
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	st, err := openStore(dir, storage.Options{Logger: d.log, NoSync: true})
	if err != nil {
		return err
	}
	g := &groupRun{id: rec.Group, tenant: tenant, store: st}
	fail := func(err error) error {
		if g.ix != nil {
			g.ix.Close()
		}
		st.Close()
		return err
	}
	if d.search {
		if g.ix, err = index.Open(filepath.Join(dir, indexDir), st, index.Options{Logger: d.log.With("group", rec.Group)}); err != nil {
			return fail(err)
		}
		st.Observe(g.ix.Observe)
	}
	d.mu.Lock()
	for _, o := range d.observers {
		st.Observe(o)
	}
	observed := len(d.observers)
	d.mu.Unlock()
	seeded := false
	if !hasLog && fenceMember {
		switch err := d.seed(tenant, rec, st, raftDir); {
		case err == nil:
			seeded = true
		case !errors.Is(err, errSourceGone):
			return fail(err)
		}
	}
	// Only a seeded group bootstraps (its first raft log names the voters
	// at the fence). Any other starts as a joiner: on a restart raft
	// recovers from the log on disk, and a log still empty (a joiner that
	// stopped before its snapshot came) must not bootstrap a membership of
	// its own. A joiner's peers are the shared group's current members: the
	// voters at the fence may have left since, and a member added later is
	// not among them (the addresses are a record only; messages go to the
	// addresses the shared group knows).
	join, peers := !seeded, rec.Peers
	if join {
		peers = d.sharedPeers()
	}
	var onSnap func(uint64)
	if g.ix != nil {
		ix := g.ix
		onSnap = func(uint64) { ix.SnapshotInstalled() }
	}
	g.raft, err = d.host.StartGroup(cluster.GroupConfig{ID: rec.Group, Peers: peers, Join: join, Dir: raftDir, Store: st, OnSnapshotInstalled: onSnap})
	if err != nil {
		return fail(err)
	}
	if seeded && g.ix != nil {
		// The seed wrote the store directly, unobserved: index it whole.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := g.ix.Rebuild(ctx, tenant); err != nil {
				d.log.Warn("index the seeded workspace", "group", rec.Group, "err", err)
			}
		}()
	}
	d.mu.Lock()
	for _, o := range d.observers[observed:] { // registered meanwhile
		st.Observe(o)
	}
	d.running[rec.Group] = g
	d.signalLocked()
	d.mu.Unlock()
	d.log.Info("dedicated group open", "group", rec.Group, "workspace", tenant, "seeded", seeded, "restarted", hasLog)
	return nil
}

// seed fills st with the workspace's keyspace from a pinned snapshot of
// the shared store in which the record is still seeding (so the keyspace
// is the fenced one), checked against the recorded hash, and writes G's
// first raft log.
func (d *dedicated) seed(tenant string, rec *routeRecord, st *storage.Store, raftDir string) error {
	sn, err := d.shared.OpenSnapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	cur, _, err := readRoute(sn.Sys(), tenant)
	if err != nil {
		return err
	}
	if cur == nil || cur.State != routeSeeding || cur.Group != rec.Group {
		return errSourceGone
	}
	want, err := hex.DecodeString(cur.Hash)
	if err != nil {
		return fmt.Errorf("route hash: %w", err)
	}
	if err := st.SeedTenant(sn, tenant, 1, want); err != nil {
		return err
	}
	if _, err := cluster.SeedGroup(raftDir, d.cfg.Cluster.NodeID, st, cur.Peers); err != nil {
		return err
	}
	return nil
}

func (d *dedicated) closeGroup(g *groupRun) {
	if g.raft != nil {
		if err := g.raft.Close(); err != nil {
			d.log.Warn("close group", "group", g.id, "err", err)
		}
	}
	if g.ix != nil {
		g.ix.Close()
	}
	if err := g.store.Close(); err != nil {
		d.log.Warn("close group store", "group", g.id, "err", err)
	}
}

// barrier waits until every group open here has applied what its leader
// had committed (ReadIndex): TeamFlow-Min-Index and linearizable reads
// then see a dedicated workspace's acknowledged writes too.
func (d *dedicated) barrier(ctx context.Context) error {
	for _, g := range d.list() {
		if err := g.raft.ReadBarrier(ctx); err != nil {
			return fmt.Errorf("group %d: %w", g.id, err)
		}
	}
	return nil
}

// pin pins, for a backup of the shared snapshot sn, the store of every
// group sn routes a workspace to (state dedicated), each after a read
// barrier on that group: the snapshot then holds every write the group
// acknowledged before the call. Workspaces still fenced or seeding in sn
// are read from sn (frozen, complete). The caller closes the snapshots.
func (d *dedicated) pin(ctx context.Context, sn *storage.Snapshot) (map[string]*storage.Snapshot, error) {
	out := map[string]*storage.Snapshot{}
	err := scanRoutes(sn.Sys(), func(tenant string, rec *routeRecord) error {
		if rec.State != routeDedicated {
			return nil
		}
		gsn, err := d.pinGroup(ctx, rec)
		if err != nil {
			return fmt.Errorf("workspace %s: %w", tenant, err)
		}
		out[tenant] = gsn
		return nil
	})
	if err != nil {
		for _, gsn := range out {
			gsn.Close()
		}
		return nil, err
	}
	return out, nil
}

func (d *dedicated) pinGroup(ctx context.Context, rec *routeRecord) (*storage.Snapshot, error) {
	g := d.waitGroup(rec.Group, rec.PingIndex, groupWait)
	if g == nil {
		return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "group_not_open",
			Detail: fmt.Sprintf("group %d is not open on this node yet: retry, or take the backup from another node", rec.Group)}
	}
	if err := g.raft.ReadBarrier(ctx); err != nil {
		return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "read_barrier_failed",
			Detail: fmt.Sprintf("this node could not confirm group %d is up to date: %v", rec.Group, err)}
	}
	return g.store.OpenSnapshot()
}

// markStarted records the workspaces already dedicated as this node
// starts: no move of theirs is in progress, so ready gives their groups no
// grace.
func (d *dedicated) markStarted() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := scanRoutes(d.shared.Sys(), func(tenant string, rec *routeRecord) error {
		if rec.State == routeDedicated {
			d.seen[tenant] = time.Time{}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read route records: %w", err)
	}
	return nil
}

// ready reports whether this node serves every dedicated workspace: the
// group of each route record in state dedicated is open here and has
// applied the record's ping_index, as the router needs.
//
// Within groupWait of ready first finding a record dedicated, i.e. just
// after its flip applied here, the group may still be opening or catching
// up (a member outside the ping's quorum; the router waits as long): a
// normal move, not a failure, so the node does not flap. Records already
// dedicated when the node started (markStarted) get no such grace: the
// node has not been ready yet, and is not until its groups serve. Records
// still fenced or seeding are not checked: every node serves such a
// workspace alike (reads from the shared store, writes refused with a
// retryable 503), so taking a node out for it would take them all out.
func (d *dedicated) ready() error {
	var problems []string
	err := scanRoutes(d.shared.Sys(), func(tenant string, rec *routeRecord) error {
		if rec.State != routeDedicated {
			return nil
		}
		d.mu.Lock()
		g := d.running[rec.Group]
		seen, ok := d.seen[tenant]
		if !ok {
			seen = time.Now()
			d.seen[tenant] = seen
		}
		d.mu.Unlock()
		var why string
		if g == nil {
			why = "is not open on this node"
		} else if applied := g.store.AppliedIndex(); applied < rec.PingIndex {
			why = fmt.Sprintf("has applied %d of the move's ping index %d", applied, rec.PingIndex)
		} else {
			return nil
		}
		if time.Since(seen) < groupWait {
			return nil
		}
		problems = append(problems, fmt.Sprintf("dedicated group %d %s", rec.Group, why))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read route records: %w", err)
	}
	if len(problems) > 0 {
		return &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "group_not_ready", Detail: strings.Join(problems, "; ")}
	}
	return nil
}

// --- the move ---

// Dedicate moves tenant to a dedicated group, resuming a move that
// stopped; with abort it undoes a move that has not flipped.
func (d *dedicated) Dedicate(ctx context.Context, tenant string, abort bool) (*httpapi.DedicateStatus, error) {
	start := time.Now()
	if err := d.host.ReadBarrier(ctx); err != nil {
		return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "read_barrier_failed", Detail: "this node could not confirm it is up to date: " + err.Error()}
	}
	log := retryLog{d.host}
	status := func(rec *routeRecord, steps []string) *httpapi.DedicateStatus {
		out := &httpapi.DedicateStatus{Workspace: tenant, State: "shared", Steps: steps, MoveMillis: time.Since(start).Milliseconds()}
		if rec != nil {
			out.State, out.Group, out.PingIndex = rec.State, rec.Group, rec.PingIndex
		}
		return out
	}
	propose := func(kind, t string, pre []storage.Precondition, ops []storage.Op) (storage.Result, error) {
		res, err := log.Propose(ctx, &storage.Command{RequestID: "dedicate-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + tenant,
			Tenant: t, Kind: kind, Actor: "operator", At: time.Now().UnixMilli(), Preconditions: pre, Ops: ops})
		if err == nil && res.Err != nil {
			if errors.Is(res.Err, storage.ErrConflict) {
				return res, &httpapi.OpError{Status: http.StatusConflict, Code: "move_contended", Detail: "the route changed meanwhile (another mover?): run the command again to resume"}
			}
			err = res.Err
		}
		return res, err
	}
	var steps []string
	for range 8 {
		rec, ver, err := readRoute(d.shared.Sys(), tenant)
		if err != nil {
			return nil, err
		}
		if d.stopAfter != "" && len(steps) > 0 && steps[len(steps)-1] == d.stopAfter {
			return status(rec, steps), nil
		}
		if abort {
			switch {
			case rec == nil:
				return status(nil, append(steps, "not moving")), nil
			case rec.State == routeDedicated:
				return nil, &httpapi.OpError{Status: http.StatusConflict, Code: "move_flipped",
					Detail: "the workspace already lives in its dedicated store (group " + strconv.FormatUint(rec.Group, 10) + "); a move back is not supported"}
			}
			if _, err := propose("workspace.dedicate.abort", "", []storage.Precondition{{Space: storage.SpaceSys, Key: routeKey(tenant), Version: ver}},
				[]storage.Op{
					{Type: storage.OpDelete, Space: storage.SpaceSys, Key: routeKey(tenant)},
					{Type: storage.OpPut, Space: storage.SpaceSys, Key: abortedKey(rec.Group), Value: []byte(tenant), Version: 1},
				}); err != nil {
				return nil, err
			}
			d.poke()
			return status(nil, append(steps, "aborted")), nil
		}
		switch {
		case rec == nil:
			// 1. Fence, allocating G.
			st := d.host.Status()
			peers := map[uint64]string{}
			for _, m := range st.Members {
				if m.Learner {
					return nil, &httpapi.OpError{Status: http.StatusConflict, Code: "membership_changing",
						Detail: fmt.Sprintf("node %d is a learner: finish or undo the membership change first", m.ID)}
				}
				peers[m.ID] = m.Addr
			}
			seqRec, err := d.shared.Sys().Get(routeSeqKey)
			var last, seqVer uint64
			switch {
			case err == nil:
				seqVer = seqRec.Version
				if last, err = strconv.ParseUint(string(seqRec.Value), 10, 64); err != nil {
					return nil, fmt.Errorf("route-seq: %w", err)
				}
			case !errors.Is(err, storage.ErrNotFound):
				return nil, err
			}
			rec = &routeRecord{Group: last + 1, State: routeFenced, Peers: peers, FencedAt: time.Now().UnixMilli()}
			b, _ := json.Marshal(rec)
			if _, err := propose("workspace.dedicate.fence", "",
				[]storage.Precondition{{Space: storage.SpaceSys, Key: routeKey(tenant)}, {Space: storage.SpaceSys, Key: routeSeqKey, Version: seqVer}},
				[]storage.Op{
					{Type: storage.OpPut, Space: storage.SpaceSys, Key: routeSeqKey, Value: []byte(strconv.FormatUint(rec.Group, 10)), Version: seqVer + 1},
					{Type: storage.OpPut, Space: storage.SpaceSys, Key: routeKey(tenant), Value: b, Version: 1},
				}); err != nil {
				return nil, err
			}
			steps = append(steps, "fenced")
		case rec.State == routeFenced:
			// 2. Hash the frozen keyspace (the fence is applied here).
			h, err := d.shared.TenantHash(tenant)
			if err != nil {
				return nil, err
			}
			rec.State, rec.Hash = routeSeeding, hex.EncodeToString(h)
			b, _ := json.Marshal(rec)
			if _, err := propose("workspace.dedicate.seed", "", []storage.Precondition{{Space: storage.SpaceSys, Key: routeKey(tenant), Version: ver}},
				[]storage.Op{{Type: storage.OpPut, Space: storage.SpaceSys, Key: routeKey(tenant), Value: b, Version: ver + 1}}); err != nil {
				return nil, err
			}
			steps = append(steps, "hashed")
		case rec.State == routeSeeding:
			// 3. Every member seeds (observer); wait for the group here.
			d.poke()
			var g *groupRun
			for g == nil {
				if g = d.waitGroup(rec.Group, 0, time.Second); g == nil {
					if ctx.Err() != nil {
						return nil, &httpapi.OpError{Status: http.StatusServiceUnavailable, Code: "group_not_open",
							Detail: fmt.Sprintf("group %d did not open on this node: run the command again to resume, or --abort", rec.Group)}
					}
					d.poke()
				}
			}
			// 4. Ping: a no-op through G commits only with a quorum of
			// members that hold the seeded state.
			res, err := retryLog{g.raft}.Propose(ctx, &storage.Command{RequestID: "dedicate-ping-" + strconv.FormatInt(time.Now().UnixNano(), 36),
				Kind: "workspace.dedicate.ping", Actor: "operator", At: time.Now().UnixMilli()})
			if err != nil {
				return nil, fmt.Errorf("ping group %d: %w", rec.Group, err)
			}
			if res.Err != nil {
				return nil, fmt.Errorf("ping group %d: %w", rec.Group, res.Err)
			}
			h, err := g.store.TenantHash(tenant)
			if err != nil {
				return nil, err
			}
			if hex.EncodeToString(h) != rec.Hash {
				return nil, &httpapi.OpError{Status: http.StatusInternalServerError, Code: "seed_mismatch",
					Detail: fmt.Sprintf("group %d holds the workspace with hash %x, the fence recorded %s: not flipping (run --abort)", rec.Group, h, rec.Hash)}
			}
			steps = append(steps, "seeded", "pinged")
			// 5. Flip: the route and the removal of the keyspace from the
			// shared store in one batch.
			rec.State, rec.PingIndex = routeDedicated, res.Index
			b, _ := json.Marshal(rec)
			if _, err := propose("workspace.dedicate.flip", tenant, []storage.Precondition{{Space: storage.SpaceSys, Key: routeKey(tenant), Version: ver}},
				[]storage.Op{
					{Type: storage.OpPut, Space: storage.SpaceSys, Key: routeKey(tenant), Value: b, Version: ver + 1},
					{Type: storage.OpDeleteRange, Space: storage.SpaceTenant},
				}); err != nil {
				return nil, err
			}
			steps = append(steps, "flipped")
		case rec.State == routeDedicated:
			return status(rec, append(steps, "dedicated")), nil
		default:
			return nil, fmt.Errorf("route of %s: unknown state %q", tenant, rec.State)
		}
	}
	return nil, errors.New("dedicate: the move did not settle")
}

// skipFlips hides a move's flip from an observer of the shared store: it
// removes the workspace's keyspace there, which is no event of the
// workspace (its records live on in the group).
func skipFlips(o storage.Observer) storage.Observer {
	return func(batch []storage.Applied) {
		if !slices.ContainsFunc(batch, isFlip) {
			o(batch)
			return
		}
		o(slices.DeleteFunc(slices.Clone(batch), isFlip))
	}
}

func isFlip(a storage.Applied) bool {
	return a.Command != nil && a.Command.Kind == "workspace.dedicate.flip"
}
