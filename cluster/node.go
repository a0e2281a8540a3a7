package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/cluster/transport"
	"github.com/teamflow/teamflow/internal/failpoint"
	"github.com/teamflow/teamflow/storage"
)

// Node is one member of a raft group. It implements the engine's Log:
// Propose returns a command's Result once the command is committed by a
// quorum and applied to this node's store.
//
// New starts the shared group, which owns the node's transport;
// StartGroup starts another group (a dedicated store's) on the same
// transport, as a Node of its own.
type Node struct {
	cfg   Config
	id    uint64
	group uint64 // transport.GroupShared for the node New returns
	store *storage.Store
	logs  *logStore
	snaps snapDir
	rn    raft.Node
	tr    *transport.Transport // shared by every group of this node
	out   sender               // this group's side of tr
	log   *slog.Logger

	// host is the shared group's Node for another group (nil on the host
	// itself); tg is such a group's registration with the transport.
	host *Node
	tg   *transport.Group
	// The other groups this host runs, closed before the transport.
	groupsMu sync.Mutex
	groups   map[uint64]*Node
	closing  bool

	// Owned by the Ready goroutine.
	confState   *pb.ConfState
	members     *membership
	snapIndex   uint64 // index of the latest raft snapshot (log compaction point source)
	appliedTerm uint64 // term of the entry at the store's applied index
	lastLogged  uint64 // last index persisted in the raft log

	// Published by the Ready goroutine.
	advanced    atomic.Uint64 // applied index raft has been told about (Advance)
	lead        atomic.Uint64
	term        atomic.Uint64
	raftState   atomic.Uint64
	commit      atomic.Uint64
	view        atomic.Pointer[membership] // applied membership
	pendingConf atomic.Uint64              // index of the last conf change entry in the log

	leaderMu sync.Mutex
	leaderCh chan struct{} // closed and replaced on every leader change

	waiters    *waitRegistry
	readc      chan *readReq
	readStates chan raft.ReadState
	readSeq    atomic.Uint64
	confMu     sync.Mutex // one membership change at a time from this node
	confSeq    atomic.Uint64

	stop      chan struct{}
	done      chan struct{} // Ready loop exited
	readDone  chan struct{}
	closeOnce sync.Once
	failed    atomic.Pointer[error]
	removed   atomic.Bool
	// warnedForeign: foreignHeartbeat has logged.
	warnedForeign atomic.Bool

	st counters
}

// sender is how a group's messages leave: the transport itself for the
// shared group, a *transport.Group for the others.
type sender interface {
	Send(msgs []*pb.Message)
	SendSnapshot(m *pb.Message, body io.WriterTo, done func(error))
}

type counters struct {
	proposals, dropped, applied, reads, snapSent, snapReceived, snapRefused, snapInstalled, compactions, leaderChanges atomic.Uint64
}

// New opens the raft log in cfg.Dir, recovers from a crash between
// receiving and installing a snapshot if needed, starts serving the raft
// endpoint and starts the node: a static bootstrap on the first start
// (unless cfg.Join), a restart from the stored log otherwise.
func New(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n, rc, fresh, err := open(cfg, transport.GroupShared)
	if err != nil {
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			n.logs.close()
			return nil, fmt.Errorf("cluster: listen: %w", err)
		}
	}
	// raft first: the transport hands it messages as soon as it serves.
	// Nothing reads its Ready channel before run starts.
	n.startRaft(rc, fresh)
	advertise := cfg.Peers[cfg.NodeID]
	if advertise == "" {
		advertise = cfg.ListenAddr
	}
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	n.tr, err = transport.New(transport.Config{
		ID:            n.id,
		AdvertiseAddr: advertise,
		Listener:      ln,
		TLS:           cfg.TLS,
		Handler:       handler{n},
		Refuse:        n.refused,
		Gossip:        cfg.Gossip,
		QueueSize:     cfg.PeerQueue,
		DialTimeout:   cfg.DialTimeout,
		// A post that takes longer than an election timeout is of no use.
		RequestTimeout: max(time.Duration(cfg.ElectionTicks)*cfg.TickInterval, time.Second),
		Logger:         n.log,
	})
	if err != nil {
		n.rn.Stop()
		ln.Close()
		n.logs.close()
		return nil, err
	}
	n.out = n.tr
	n.groups = map[uint64]*Node{}
	n.tr.SetPeers(n.addressBook())
	go n.run()
	go n.readLoop()
	return n, nil
}

// open opens the raft log of one group in cfg.Dir and reconciles it with
// the state store (recover); raft is not started yet.
func open(cfg Config, group uint64) (*Node, *raft.Config, bool, error) {
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	snapPath := filepath.Join(cfg.Dir, "snap")
	if err := storage.MkdirAllSynced(fs, snapPath, 0o755); err != nil {
		return nil, nil, false, fmt.Errorf("cluster: %w", err)
	}
	lg := cfg.Logger.With("node", cfg.NodeID)
	if group != transport.GroupShared {
		lg = lg.With("group", group)
	}
	logs, err := openLogStore(filepath.Join(cfg.Dir, "raft"), fs, cfg.NodeID, lg)
	if err != nil {
		return nil, nil, false, err
	}
	n := &Node{
		cfg:        cfg,
		id:         cfg.NodeID,
		group:      group,
		store:      cfg.Store,
		logs:       logs,
		snaps:      snapDir{fs: fs, dir: snapPath},
		log:        lg,
		leaderCh:   make(chan struct{}),
		waiters:    newWaitRegistry(),
		readc:      make(chan *readReq, 1024),
		readStates: make(chan raft.ReadState, 256),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		readDone:   make(chan struct{}),
	}
	var seed [8]byte
	rand.Read(seed[:])
	n.confSeq.Store(binary.BigEndian.Uint64(seed[:]) >> 1)
	rc, fresh, err := n.recover()
	if err != nil {
		logs.close()
		return nil, nil, false, err
	}
	return n, rc, fresh, nil
}

// startRaft starts the raft node: a static bootstrap from cfg.Peers on a
// first start (unless Join), a restart from the stored log otherwise.
func (n *Node) startRaft(rc *raft.Config, fresh bool) {
	if peers := n.bootstrapPeers(fresh); peers != nil {
		n.rn = raft.StartNode(rc, peers)
		return
	}
	n.rn = raft.RestartNode(rc)
}

// bootstrapPeers is the static membership a first start bootstraps from,
// nil when the node restarts from its log or joins a running cluster.
func (n *Node) bootstrapPeers(fresh bool) []raft.Peer {
	if !fresh || n.cfg.Join {
		return nil
	}
	ids := make([]uint64, 0, len(n.cfg.Peers))
	for id := range n.cfg.Peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	peers := make([]raft.Peer, len(ids))
	for i, id := range ids {
		peers[i] = raft.Peer{ID: id, Context: []byte(n.cfg.Peers[id])}
	}
	return peers
}

// GroupConfig configures another raft group on a running node: a
// dedicated store's group, on the same members and transport as the
// shared one. Timing and sizes are the shared group's (Config).
type GroupConfig struct {
	// ID names the group on every member; it must not be
	// transport.GroupShared (0), the node's own group.
	ID uint64
	// Peers is the group's static bootstrap membership, as Config.Peers:
	// identical on every member, this node included (unless Join). The
	// addresses are recorded in the group's membership; messages go to
	// the addresses the shared group knows, since the transport is one.
	Peers map[uint64]string
	// Join starts the group empty, waiting for its leader to send the log
	// or a snapshot (a member that was not there when the group began).
	Join bool
	// Dir holds the group's raft log and received snapshots, as
	// Config.Dir; Store is its state store, as Config.Store. Neither may
	// be another group's.
	Dir   string
	Store *storage.Store
	// OnSnapshotInstalled, as Config.OnSnapshotInstalled, for this group.
	OnSnapshotInstalled func(index uint64)
}

// StartGroup starts raft group gc.ID on this node, on the shared group's
// transport, and returns it as a Node with the same method set (Propose,
// ReadBarrier, Status, ...). Each group elects its own leader and keeps
// its own log, snapshots and store. Closing this Node closes its groups
// first; a group may also be closed alone. The caller closes the group's
// Store after the group.
func (n *Node) StartGroup(gc GroupConfig) (*Node, error) {
	if n.host != nil {
		return nil, errors.New("cluster: start a group on the node's shared group")
	}
	if gc.ID == transport.GroupShared {
		return nil, fmt.Errorf("cluster: group ID %d is the shared group's", gc.ID)
	}
	if gc.Store == nil || gc.Dir == "" {
		return nil, fmt.Errorf("cluster: group %d: Dir and Store are required", gc.ID)
	}
	if !gc.Join {
		if _, ok := gc.Peers[n.id]; !ok {
			return nil, fmt.Errorf("cluster: group %d: Peers must include this node (%d)", gc.ID, n.id)
		}
	}
	for id, addr := range gc.Peers {
		if _, _, err := net.SplitHostPort(addr); err != nil || id == 0 {
			return nil, fmt.Errorf("cluster: group %d: peer %d address %q: want a non-zero ID and host:port", gc.ID, id, addr)
		}
	}
	if err := n.usable(); err != nil {
		return nil, err
	}
	n.groupsMu.Lock()
	defer n.groupsMu.Unlock()
	if n.closing {
		return nil, ErrClosed
	}
	if n.groups[gc.ID] != nil {
		return nil, fmt.Errorf("cluster: group %d is already running", gc.ID)
	}
	cfg := n.cfg
	cfg.Peers, cfg.Join, cfg.Dir, cfg.Store = gc.Peers, gc.Join, gc.Dir, gc.Store
	cfg.OnSnapshotInstalled = gc.OnSnapshotInstalled
	cfg.Listener, cfg.Gossip = nil, nil
	g, rc, fresh, err := open(cfg, gc.ID)
	if err != nil {
		return nil, fmt.Errorf("cluster: group %d: %w", gc.ID, err)
	}
	g.host, g.tr = n, n.tr
	g.startRaft(rc, fresh)
	if g.tg, err = n.tr.AddGroup(gc.ID, handler{g}); err != nil {
		g.rn.Stop()
		g.logs.close()
		return nil, fmt.Errorf("cluster: group %d: %w", gc.ID, err)
	}
	g.out = g.tg
	n.groups[gc.ID] = g
	go g.run()
	go g.readLoop()
	return g, nil
}

// Group is the ID of this node's raft group (transport.GroupShared for
// the node New returned).
func (n *Node) Group() uint64 { return n.group }

// setPeers hands the transport the address book. Only the shared group
// does: its membership is the node's, and every group runs on its members.
func (n *Node) setPeers() {
	// (No transport at all in the deterministic cluster test.)
	if n.host == nil && n.tr != nil {
		n.tr.SetPeers(n.addressBook())
	}
}

// recover reconciles the raft log and the state store before raft starts,
// and returns raft's configuration.
func (n *Node) recover() (*raft.Config, bool, error) {
	members, err := readMembership(n.store)
	if err != nil {
		return nil, false, err
	}
	if members.isRemoved(n.id) {
		return nil, false, fmt.Errorf("cluster: node %d: %w", n.id, ErrIDRemoved)
	}
	compact, last, snapMeta, hs := n.logs.state()
	applied := n.store.AppliedIndex()
	if applied < compact {
		// The raft log recorded a snapshot from the leader, and the node
		// stopped before the state store installed it: install it now from
		// the file kept for that purpose.
		f, err := n.snaps.open(compact)
		if err != nil {
			return nil, false, fmt.Errorf("cluster: state store at index %d is behind the raft log's snapshot at %d, and the snapshot file is missing: %w", applied, compact, err)
		}
		err = n.store.InstallSnapshot(f, compact)
		f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("cluster: install snapshot %d: %w", compact, err)
		}
		applied = compact
		if members, err = readMembership(n.store); err != nil {
			return nil, false, err
		}
	}
	if applied > last {
		return nil, false, fmt.Errorf("cluster: state store applied index %d is past the raft log's last index %d: the raft log in %s is missing or older than the state", applied, last, n.cfg.Dir)
	}
	if hs.GetCommit() < applied {
		// Only committed entries are applied, so this is a commit index
		// that the unsynced HardState lost in a power failure.
		if err := n.logs.forceCommit(applied); err != nil {
			return nil, false, err
		}
	}
	if err := n.snaps.prune(applied, true); err != nil {
		n.log.Warn("pruning snapshot files", "err", err)
	}
	n.members = members
	n.view.Store(members.clone())
	n.confState = members.confState()
	n.logs.setConfState(n.confState)
	n.snapIndex = snapMeta.GetIndex()
	if n.appliedTerm, err = n.logs.Term(applied); err != nil {
		return nil, false, fmt.Errorf("cluster: term of applied index %d: %w", applied, err)
	}
	n.lastLogged = last
	n.advanced.Store(applied)
	n.term.Store(hs.GetTerm())
	n.commit.Store(max(hs.GetCommit(), applied))
	fresh := last == 0 && raft.IsEmptyHardState(hs) && applied == 0
	return &raft.Config{
		ID:                        n.id,
		ElectionTick:              n.cfg.ElectionTicks,
		HeartbeatTick:             n.cfg.HeartbeatTicks,
		Storage:                   n.logs,
		Applied:                   applied,
		MaxSizePerMsg:             n.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  4 * n.cfg.MaxSizePerMsg,
		MaxUncommittedEntriesSize: n.cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           n.cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{n.log},
	}, fresh, nil
}

// addressBook merges the replicated addresses with the configured ones.
func (n *Node) addressBook() map[uint64]string {
	book := map[uint64]string{}
	for id, addr := range n.cfg.Peers {
		book[id] = addr
	}
	m := n.view.Load()
	for _, a := range m.Addrs {
		book[a.ID] = a.Addr
	}
	for _, id := range m.Removed {
		delete(book, id)
	}
	delete(book, n.id)
	return book
}

func (n *Node) refused(from uint64) bool { return n.view.Load().isRemoved(from) }

// --- the Ready loop ---

func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			n.rn.Tick()
		case rd := <-n.rn.Ready():
			if err := n.handle(rd); err != nil {
				n.fail(err)
				return
			}
		case <-n.stop:
			return
		}
	}
}

// handle takes one Ready through ready and tells raft it is done. run
// calls it for every Ready; the deterministic cluster test calls it for
// the Readies of the raft.RawNode it steps by hand.
func (n *Node) handle(rd raft.Ready) error {
	if err := n.ready(rd); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RaftBeforeAdvance)
	n.rn.Advance()
	// Advance returns once raft has taken it: a proposal made after this
	// sees raft's applied index at least this far.
	n.advanced.Store(n.store.AppliedIndex())
	return nil
}

// ready handles one Ready in the library's order: persist, send, apply.
// Advance follows in handle.
func (n *Node) ready(rd raft.Ready) error {
	if rd.SoftState != nil {
		if rd.SoftState.RaftState == raft.StateLeader && rd.SoftState.Lead == n.id {
			// raft refuses membership changes until a new leader has
			// applied its whole log as of the election; mirror that (see
			// confChange) before anyone can see this node lead.
			last := n.lastLogged
			if len(rd.Entries) > 0 {
				last = max(last, rd.Entries[len(rd.Entries)-1].GetIndex())
			}
			if last > n.pendingConf.Load() {
				n.pendingConf.Store(last)
			}
		}
		n.setSoftState(rd.SoftState)
	}
	hasSnap := !raft.IsEmptySnap(rd.Snapshot)

	// A leader sends before it persists, so its fsync and the followers'
	// overlap instead of adding up (raft thesis §10.2.1; etcd's server does
	// the same). Safe because raft counts the leader's own copy of an entry
	// towards the commit quorum only after Advance, that is after the save
	// below; and a leader's Ready carries no vote: one that steps down in it
	// reports the new state here and takes the ordinary path.
	leading := raft.StateType(n.raftState.Load()) == raft.StateLeader
	if leading {
		n.send(rd.Messages)
	}

	// 1. Persist entries, HardState and snapshot metadata, synced, before
	// any message of a follower or candidate that depends on them leaves.
	failpoint.Hit(failpoint.RaftBeforeSave)
	if err := n.logs.save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RaftAfterSave)
	if rd.HardState != nil {
		n.term.Store(rd.HardState.GetTerm())
		n.commit.Store(rd.HardState.GetCommit())
	}
	if len(rd.Entries) > 0 {
		n.waiters.logged(rd.Entries, n.lastLogged)
		for _, e := range rd.Entries {
			if e.GetType() != pb.EntryNormal && e.GetIndex() > n.pendingConf.Load() {
				n.pendingConf.Store(e.GetIndex())
			}
		}
		n.lastLogged = rd.Entries[len(rd.Entries)-1].GetIndex()
	} else if hasSnap {
		n.lastLogged = rd.Snapshot.GetMetadata().GetIndex()
	}

	// 2. Send (a leader has already).
	if !leading {
		n.send(rd.Messages)
	}

	// 3. Apply: the snapshot first, then the committed entries.
	if hasSnap {
		failpoint.Hit(failpoint.RaftBeforeInstall)
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if len(rd.CommittedEntries) > 0 {
		if err := n.apply(rd.CommittedEntries); err != nil {
			return err
		}
	}
	for _, rs := range rd.ReadStates {
		select {
		case n.readStates <- rs:
		default: // the read loop retries
		}
	}
	return n.maybeSnapshot()
}

// send hands a Ready's messages to the transport. Snapshots are taken from
// the state store now and streamed on their own goroutine.
func (n *Node) send(all []*pb.Message) {
	if len(all) == 0 {
		return
	}
	msgs := all[:0:0]
	for _, m := range all {
		if m.GetType() == pb.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		msgs = append(msgs, m)
	}
	n.out.Send(msgs)
}

func (n *Node) setSoftState(ss *raft.SoftState) {
	n.raftState.Store(uint64(ss.RaftState))
	if old := n.lead.Swap(ss.Lead); old != ss.Lead {
		n.st.leaderChanges.Add(1)
		n.leaderMu.Lock()
		close(n.leaderCh)
		n.leaderCh = make(chan struct{})
		n.leaderMu.Unlock()
		n.log.Info("leader changed", "leader", ss.Lead, "state", ss.RaftState.String())
	}
}

// apply applies committed entries to the state store in ONE Apply call
// (one Pebble batch), then answers the waiters.
func (n *Node) apply(ents []*pb.Entry) error {
	batch := make([]storage.Entry, len(ents))
	type confDone struct {
		key string
		err error
	}
	var confs []confDone
	membersChanged := false
	for i, e := range ents {
		batch[i] = storage.Entry{Index: e.GetIndex(), Data: e.GetData()}
		if e.GetType() == pb.EntryNormal {
			continue
		}
		cc, key, err := decodeConfChange(e)
		if err != nil {
			return fmt.Errorf("cluster: conf change at %d: %w", e.GetIndex(), err)
		}
		verr := n.members.vet(cc)
		if verr == nil {
			cs := n.rn.ApplyConfChange(cc)
			n.confState = cs
			n.members.applied(cc, cs)
			membersChanged = true
			if n.members.isRemoved(n.id) {
				n.removed.Store(true)
			}
		} else {
			n.log.Warn("membership change refused", "index", e.GetIndex(), "err", verr)
		}
		// The record is rewritten even for a refused change, so every
		// entry of the log leaves the same bytes on every node.
		batch[i].Data = n.members.command(e.GetIndex())
		confs = append(confs, confDone{key: key, err: verr})
	}
	failpoint.Hit(failpoint.ApplyBeforeCommit)
	results, err := n.store.Apply(batch)
	if err != nil {
		return fmt.Errorf("cluster: apply: %w", err)
	}
	failpoint.Hit(failpoint.ApplyAfterCommit)
	last := ents[len(ents)-1]
	n.appliedTerm = last.GetTerm()
	n.st.applied.Add(uint64(len(ents)))
	// Publish the membership before answering anyone, so a caller that
	// returns from a change sees it.
	if membersChanged {
		n.view.Store(n.members.clone())
		n.setPeers()
	}
	if !n.waiters.empty() {
		for i, e := range ents {
			if e.GetType() != pb.EntryNormal || len(e.GetData()) == 0 {
				continue
			}
			if key, err := storage.PeekRequestID(e.GetData()); err == nil {
				n.waiters.fire(key, outcome{res: results[i]})
			}
		}
		for _, c := range confs {
			n.waiters.fire(c.key, outcome{err: c.err})
		}
		n.waiters.applied(last.GetIndex(), last.GetTerm())
	}
	if membersChanged && n.removed.Load() {
		n.log.Warn("this node was removed from the cluster")
		n.waiters.failAll(ErrRemoved)
	}
	return nil
}

// maybeSnapshot compacts the raft log every SnapshotEntries applied
// entries. The state store is the snapshot; it is synced first, since the
// entries being discarded are what made its unsynced batches durable.
func (n *Node) maybeSnapshot() error {
	applied := n.store.AppliedIndex()
	if applied-n.snapIndex < n.cfg.SnapshotEntries {
		return nil
	}
	if err := n.store.Sync(); err != nil {
		return err
	}
	var compactTo uint64
	if applied > n.cfg.CatchUpEntries {
		compactTo = applied - n.cfg.CatchUpEntries
	}
	failpoint.Hit(failpoint.RaftBeforeCompact)
	if err := n.logs.snapshotAndCompact(applied, n.appliedTerm, n.confState, compactTo); err != nil {
		return err
	}
	failpoint.Hit(failpoint.RaftAfterCompact)
	n.snapIndex = applied
	n.st.compactions.Add(1)
	return nil
}

// fail stops the node for good after an error it cannot recover from (a
// failed write): acknowledging anything after it could lose data.
func (n *Node) fail(err error) {
	// Every such error is the disk's (the raft log's, the state store's or
	// a snapshot file's): clients get the store's storage_failed answer.
	if !errors.Is(err, storage.ErrFailed) {
		err = fmt.Errorf("%w: %w", storage.ErrFailed, err)
	}
	n.failed.CompareAndSwap(nil, &err)
	n.log.Error("raft node failed; it no longer serves", "err", err)
	n.waiters.failAll(err)
}

func (n *Node) usable() error {
	if e := n.failed.Load(); e != nil {
		return *e
	}
	select {
	case <-n.stop:
		return ErrClosed
	default:
	}
	if n.removed.Load() {
		return ErrRemoved
	}
	return nil
}

// bound gives ctx the default deadline if it has none.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ProposeTimeout)
}

// --- proposing ---

// Propose replicates cmd and returns its Result once it has applied on
// this node. A follower's proposal is forwarded to the leader by raft. If no
// leader is known, Propose waits for one (within ctx). An error means the
// command may or may not apply: a retry with the same RequestID is safe,
// since Apply skips a RequestID it has applied and returns the first
// Result. A command without a RequestID gets a random one.
func (n *Node) Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error) {
	if cmd == nil {
		return storage.Result{}, errors.New("cluster: nil command")
	}
	if err := n.usable(); err != nil {
		return storage.Result{}, err
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if cmd.RequestID == "" {
		c := *cmd
		c.RequestID = randomID()
		cmd = &c
	}
	data := storage.EncodeCommand(cmd)
	if len(data) > n.cfg.MaxEntryBytes {
		return storage.Result{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), n.cfg.MaxEntryBytes)
	}
	w, err := n.propose(ctx, cmd.RequestID, func(ctx context.Context) error { return n.rn.Propose(ctx, data) })
	if err != nil {
		return storage.Result{}, err
	}
	n.st.proposals.Add(1)
	select {
	case o := <-w.ch:
		if o.err != nil {
			if errors.Is(o.err, ErrProposalDropped) {
				n.st.dropped.Add(1)
			}
			return storage.Result{}, fmt.Errorf("cluster: propose %s: %w", cmd.RequestID, o.err)
		}
		return o.res, nil
	case <-ctx.Done():
		n.waiters.remove(w)
		return storage.Result{}, fmt.Errorf("cluster: propose %s: %w", cmd.RequestID, ctx.Err())
	}
}

// propose registers a waiter for key and hands the proposal to raft,
// waiting for a leader first and trying again while raft drops it
// synchronously (then it is certainly not in any log).
func (n *Node) propose(ctx context.Context, key string, do func(context.Context) error) (*waiter, error) {
	for {
		if err := n.waitLeader(ctx); err != nil {
			return nil, err
		}
		lc := n.leaderChanged()
		// The term raft is in now, not the last one the Ready loop saw: a
		// waiter must not be failed by the first entry of the term its
		// proposal is appended in (see waitRegistry).
		w := n.waiters.add(key, max(n.term.Load(), n.rn.Status().GetTerm()))
		err := do(ctx)
		if err == nil {
			return w, nil
		}
		n.waiters.remove(w)
		switch {
		case errors.Is(err, raft.ErrProposalDropped):
			select {
			case <-lc:
			case <-time.After(n.cfg.TickInterval):
			case <-ctx.Done():
				return nil, fmt.Errorf("cluster: propose %s: %w: %w", key, ErrProposalDropped, ctx.Err())
			case <-n.stop:
				return nil, ErrClosed
			}
		case errors.Is(err, raft.ErrStopped):
			return nil, ErrClosed
		default:
			return nil, fmt.Errorf("cluster: propose %s: %w", key, err)
		}
	}
}

func (n *Node) leaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderCh
}

// LeaderChanged returns a channel that is closed at the next leader change
// (including "no leader"). Take a new one after each change.
func (n *Node) LeaderChanged() <-chan struct{} { return n.leaderChanged() }

// Leader is the current leader's ID, 0 if none is known.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// IsLeader reports whether this node is the leader (leader-only jobs such
// as cron gate on it).
func (n *Node) IsLeader() bool { return n.lead.Load() == n.id }

// ID is this node's ID.
func (n *Node) ID() uint64 { return n.id }

// Gossip sends body to the other members, best effort (Config.Gossip
// receives it there): for state that every node keeps in memory.
func (n *Node) Gossip(body []byte) { n.tr.Gossip(body) }

// Addr is the address the raft endpoint listens on.
func (n *Node) Addr() net.Addr { return n.tr.Addr() }

func (n *Node) waitLeader(ctx context.Context) error {
	for {
		if err := n.usable(); err != nil {
			return err
		}
		lc := n.leaderChanged()
		if n.lead.Load() != 0 {
			return nil
		}
		select {
		case <-lc:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-n.stop:
			return ErrClosed
		case <-n.done:
			return n.usable()
		}
	}
}

// Ready reports whether the node can serve writes: running, healthy, a
// member, and a leader known.
func (n *Node) Ready() error {
	if err := n.usable(); err != nil {
		return err
	}
	if err := n.store.Healthy(); err != nil {
		return err
	}
	if n.lead.Load() == 0 {
		return ErrNoLeader
	}
	return nil
}

// --- snapshots ---

// sendSnapshot answers raft's MsgSnap with the state store as of now: a
// consistent snapshot at the applied index (at least raft's snapshot index),
// with the term and membership of that index, as etcd does.
func (n *Node) sendSnapshot(m *pb.Message) {
	ss, err := n.store.OpenSnapshot()
	if err != nil {
		n.log.Error("open snapshot", "err", err)
		n.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	idx := ss.Index()
	m = proto.Clone(m).(*pb.Message)
	m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     proto.Uint64(idx),
		Term:      proto.Uint64(n.appliedTerm),
		ConfState: proto.Clone(n.confState).(*pb.ConfState),
	}}
	to := m.GetTo()
	n.log.Info("sending snapshot", "to", to, "index", idx)
	n.out.SendSnapshot(m, ss, func(err error) {
		ss.Close()
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
		} else {
			n.st.snapSent.Add(1)
		}
		n.rn.ReportSnapshot(to, status)
	})
}

// receiveSnapshot stores and checks a snapshot stream from the leader, then
// hands its MsgSnap to raft. The stream is kept in a file until the Ready
// loop has installed it (and after a crash, New installs it).
func (n *Node) receiveSnapshot(ctx context.Context, m *pb.Message, r io.Reader) error {
	if err := n.usable(); err != nil {
		return err
	}
	idx := m.GetSnapshot().GetMetadata().GetIndex()
	if err := n.snaps.receive(r, idx); err != nil {
		n.st.snapRefused.Add(1)
		n.log.Warn("snapshot refused", "from", m.GetFrom(), "index", idx, "err", err)
		return err
	}
	n.st.snapReceived.Add(1)
	failpoint.Hit(failpoint.SnapshotReceived)
	return n.rn.Step(ctx, m)
}

// installSnapshot replaces the state store with the snapshot raft
// accepted; its metadata is already in the raft log.
func (n *Node) installSnapshot(snap *pb.Snapshot) error {
	meta := snap.GetMetadata()
	idx := meta.GetIndex()
	f, err := n.snaps.open(idx)
	if err != nil {
		return fmt.Errorf("cluster: snapshot %d accepted by raft but not on disk: %w", idx, err)
	}
	err = n.store.InstallSnapshot(f, idx)
	f.Close()
	if err != nil {
		return fmt.Errorf("cluster: install snapshot %d: %w", idx, err)
	}
	members, err := readMembership(n.store)
	if err != nil {
		return err
	}
	n.members = members
	n.confState = proto.Clone(meta.GetConfState()).(*pb.ConfState)
	n.snapIndex = idx
	n.appliedTerm = meta.GetTerm()
	n.view.Store(members.clone())
	n.setPeers()
	if members.isRemoved(n.id) {
		n.removed.Store(true)
	}
	if err := n.snaps.prune(idx, false); err != nil {
		n.log.Warn("pruning snapshot files", "err", err)
	}
	n.waiters.snapshotted(idx, meta.GetTerm(), func(key string) (storage.Result, bool) {
		res, ok, err := n.store.RequestResult(key)
		return res, ok && err == nil
	})
	n.st.snapInstalled.Add(1)
	n.log.Info("installed snapshot", "index", idx, "term", meta.GetTerm())
	if n.cfg.OnSnapshotInstalled != nil {
		n.cfg.OnSnapshotInstalled(idx)
	}
	return nil
}

// --- closing ---

// Close stops the node: its other groups first, then the Ready loop,
// raft, the transport (waiting for snapshot transfers) and the raft log.
// Pending proposals fail with ErrClosed. It does not close the Store. On a
// group StartGroup returned, it stops that group alone and unregisters it
// from the transport.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		if n.host == nil {
			n.groupsMu.Lock()
			n.closing = true
			groups := make([]*Node, 0, len(n.groups))
			for _, g := range n.groups {
				groups = append(groups, g)
			}
			n.groupsMu.Unlock()
			for _, g := range groups {
				if gerr := g.Close(); gerr != nil {
					err = errors.Join(err, fmt.Errorf("cluster: close group %d: %w", g.group, gerr))
				}
			}
		}
		close(n.stop)
		<-n.done
		n.rn.Stop()
		if n.host == nil {
			err = errors.Join(err, n.tr.Close())
		} else {
			n.tg.Remove()
			n.host.groupsMu.Lock()
			delete(n.host.groups, n.group)
			n.host.groupsMu.Unlock()
		}
		<-n.readDone
		n.waiters.failAll(ErrClosed)
		if cerr := n.logs.close(); err == nil {
			err = cerr
		}
	})
	return err
}

// handler is the transport's view of the node.
type handler struct{ n *Node }

func (h handler) Step(ctx context.Context, m *pb.Message) error {
	if h.n.foreignHeartbeat(m) {
		return nil
	}
	return h.n.rn.Step(ctx, m)
}

// foreignHeartbeat reports a heartbeat that commits past this node's
// persisted log. A leader commits on a follower only what that follower
// acknowledged having persisted, so such a heartbeat was meant for another
// life of this node ID: a removed member's ID started again on an empty
// disk (a member that has not yet applied the removal still heartbeats
// it), or a member whose data directory was lost. raft would panic on it
// ("tocommit out of range"); the node drops it instead and says why, once.
func (n *Node) foreignHeartbeat(m *pb.Message) bool {
	if m.GetType() != pb.MsgHeartbeat {
		return false
	}
	last, _ := n.logs.LastIndex()
	if m.GetCommit() <= last {
		return false
	}
	if n.warnedForeign.CompareAndSwap(false, true) {
		n.log.Error("a member says this node holds raft entries it does not: the node ID belonged to a removed member, or its data directory was lost; such heartbeats are dropped, replace the node with a new ID",
			"from", m.GetFrom(), "commit", m.GetCommit(), "last_index", last)
	}
	return true
}

func (h handler) ReceiveSnapshot(ctx context.Context, m *pb.Message, r io.Reader) error {
	return h.n.receiveSnapshot(ctx, m, r)
}

func (h handler) Unreachable(peer uint64, dropped []*pb.Message) {
	n := h.n
	n.rn.ReportUnreachable(peer)
	var keys []string
	for _, m := range dropped {
		if m.GetType() != pb.MsgProp {
			continue
		}
		for _, e := range m.GetEntries() {
			if key := waiterKey(e); key != "" {
				keys = append(keys, key)
			}
		}
	}
	if len(keys) > 0 {
		n.waiters.failUnlogged(keys, ErrProposalDropped)
	}
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// raftLogger sends raft's log to slog: its chatter at debug level, its
// warnings and errors as such.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) debug(msg func() string) {
	if r.l.Enabled(context.Background(), slog.LevelDebug) {
		r.l.Debug(msg())
	}
}

func (r raftLogger) Debug(v ...any) { r.debug(func() string { return fmt.Sprint(v...) }) }
func (r raftLogger) Debugf(format string, v ...any) {
	r.debug(func() string { return fmt.Sprintf(format, v...) })
}
func (r raftLogger) Info(v ...any) { r.debug(func() string { return fmt.Sprint(v...) }) }
func (r raftLogger) Infof(format string, v ...any) {
	r.debug(func() string { return fmt.Sprintf(format, v...) })
}
func (r raftLogger) Warning(v ...any)                 { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) { r.l.Warn(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                   { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any)   { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                   { r.Panic(v...) }
func (r raftLogger) Fatalf(format string, v ...any)   { r.Panicf(format, v...) }
func (r raftLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	r.l.Error(msg)
	panic(msg)
}
func (r raftLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	r.l.Error(msg)
	panic(msg)
}
