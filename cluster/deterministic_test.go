package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/cluster/transport"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// TestDeterministicCluster is RELIABILITY R4: TeamFlow's own Ready handling
// (Node.handle: persist, send, apply, snapshot, compact), raft log store,
// snapshot files and state store, driven step by step on raft.RawNode
// instead of the goroutine-driven raft.Node. There is no transport and no
// clock: messages wait in one in-memory network until a seeded schedule
// delivers, reorders or drops them; time is a tick handed to one node;
// each node's files live on a crashable in-memory filesystem, and a crash
// keeps only what a power cut could keep (pebble's CrashClone: the synced
// bytes plus a random share of the unsynced ones), after which the node
// restarts from that disk the way New does. Some crashes cut the power in
// the middle of a Ready, as its first message leaves.
//
// A schedule mixes proposals on any node, deliveries, drops, ticks,
// elections, crashes and restarts, leadership transfers and one
// membership run per seed (a learner added, promoted, a voter removed, its
// ID then started again on an empty disk), then heals everything and lets
// the cluster converge. Checked over every seed:
//
//   - election_safety_violations: two leaders seen for one term;
//   - log_matching_violations: two raft logs holding an entry of the same
//     index and term whose entries up to there differ;
//   - state_machine_divergence: two nodes applying different entries at
//     one index, or ending with different state at the same applied index;
//   - acked_lost_after_crash: a proposal acknowledged (its waiter answered
//     without error, as Propose would have) missing anywhere at the end;
//   - node_id_reuse_accepted: a removed node's ID back in a membership;
//   - not_converged, start_failures: the healed cluster did not catch up,
//     or a node could not start on what its disk kept.
//
// R4_SEEDS sets the number of seeds (CI: 1,000; -short: 100); SEED the
// first one, and a failure names the seed that replays it alone. A replay
// follows the same schedule; it gives the same outcome for certain only
// with R4_SYNCED_ONLY=1 (see sim.syncedOnly).
func TestDeterministicCluster(t *testing.T) {
	seeds := 1000
	if testing.Short() {
		seeds = 100
	}
	if v := os.Getenv("R4_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("R4_SEEDS=%q: want a positive number", v)
		}
		seeds = n
	}
	base := figures.Seed(t)
	var tot simTotals
	for k := range int64(seeds) {
		seed := base + k
		s := newSim(t, seed)
		s.run(600)
		s.settle()
		s.check()
		s.close()
		tot.add(&s.tot)
		if t.Failed() {
			t.Logf("first failing seed: %d (replay it alone with SEED=%d R4_SEEDS=1; add R4_SYNCED_ONLY=1 for an exact replay of its schedule if crashes that keep unsynced bytes are not needed to fail)", seed, seed)
			break
		}
	}
	figures.Report(t, "R4", base, []figures.Figure{
		figures.Eq("election_safety_violations", float64(tot.electionSafety), 0),
		figures.Eq("log_matching_violations", float64(tot.logMatching), 0),
		figures.Eq("state_machine_divergence", float64(tot.divergence), 0),
		figures.Eq("acked_lost_after_crash", float64(tot.ackedLost), 0),
		figures.Eq("node_id_reuse_accepted", float64(tot.reuseAccepted), 0),
		figures.Eq("not_converged", float64(tot.notConverged), 0),
		figures.Eq("start_failures", float64(tot.startFailures), 0),
		figures.Guard("seeds", float64(tot.seeds), float64(seeds)),
		figures.Guard("acked", float64(tot.acked), float64(10*seeds)),
		figures.Guard("crashes_after_acks", float64(tot.crashesAfterAcks), float64(seeds)),
		figures.Guard("crashes", float64(tot.crashes), float64(seeds)),
		figures.Guard("crashes_mid_ready", float64(tot.cutMidReady), float64(seeds/2)),
		figures.Guard("leaders_elected", float64(tot.leaders), float64(seeds)),
		figures.Guard("snapshots_installed", float64(tot.snapshots), float64(seeds/10)),
		figures.Guard("members_removed", float64(tot.removed), float64(seeds)),
		figures.Guard("id_reuse_attempts", float64(tot.reuseAttempts), float64(seeds)),
	})
}

type simTotals struct {
	seeds, electionSafety, logMatching, divergence, ackedLost, reuseAccepted, notConverged, startFailures int
	acked, crashesAfterAcks, crashes, cutMidReady, leaders, snapshots, removed, reuseAttempts             int
}

func (a *simTotals) add(b *simTotals) {
	a.seeds++
	a.electionSafety += b.electionSafety
	a.logMatching += b.logMatching
	a.divergence += b.divergence
	a.ackedLost += b.ackedLost
	a.reuseAccepted += b.reuseAccepted
	a.notConverged += b.notConverged
	a.startFailures += b.startFailures
	a.acked += b.acked
	a.crashesAfterAcks += b.crashesAfterAcks
	a.crashes += b.crashes
	a.cutMidReady += b.cutMidReady
	a.leaders += b.leaders
	a.snapshots += b.snapshots
	a.removed += b.removed
	a.reuseAttempts += b.reuseAttempts
}

const simTenant = "r4"

// stepper is the raft.Node the harness gives a Node: calls go straight to
// the RawNode the schedule steps. Ready is never read (the harness takes
// Readies from the RawNode itself), and Advance needs no Ready: RawNode's
// ignores its argument.
type stepper struct{ raw *raft.RawNode }

var _ raft.Node = stepper{}

func (s stepper) Tick()                                     { s.raw.Tick() }
func (s stepper) Campaign(context.Context) error            { return s.raw.Campaign() }
func (s stepper) Propose(_ context.Context, d []byte) error { return s.raw.Propose(d) }
func (s stepper) ProposeConfChange(_ context.Context, cc pb.ConfChangeI) error {
	return s.raw.ProposeConfChange(cc)
}
func (s stepper) Step(_ context.Context, m *pb.Message) error { return s.raw.Step(m) }
func (s stepper) Ready() <-chan raft.Ready                    { return nil }
func (s stepper) Advance()                                    { s.raw.Advance(raft.Ready{}) }
func (s stepper) ApplyConfChange(cc pb.ConfChangeI) *pb.ConfState {
	return s.raw.ApplyConfChange(cc)
}
func (s stepper) TransferLeadership(_ context.Context, _, to uint64) { s.raw.TransferLeader(to) }
func (s stepper) ForgetLeader(context.Context) error                 { return s.raw.ForgetLeader() }
func (s stepper) ReadIndex(_ context.Context, rctx []byte) error {
	s.raw.ReadIndex(rctx)
	return nil
}
func (s stepper) Status() raft.Status                              { return s.raw.Status() }
func (s stepper) ReportUnreachable(id uint64)                      { s.raw.ReportUnreachable(id) }
func (s stepper) ReportSnapshot(id uint64, st raft.SnapshotStatus) { s.raw.ReportSnapshot(id, st) }
func (s stepper) Stop()                                            {}

// simNode is one node of the simulated cluster; it keeps its filesystem
// across crashes.
type simNode struct {
	id      uint64
	dir     string // real directory: received snapshot files
	fs      *vfs.MemFS
	join    bool
	node    *Node // nil while down
	raw     *raft.RawNode
	removed bool // removed from the cluster: never restarted
	pending []simProposal
}

type simProposal struct {
	key string
	w   *waiter
}

type simMsg struct {
	m    *pb.Message
	snap []byte      // a snapshot's stream, for MsgSnap
	done func(error) // the sender's completion callback, for MsgSnap
}

// simSender is how one node's messages enter the network.
type simSender struct {
	s    *sim
	from uint64
}

func (o simSender) Send(msgs []*pb.Message) {
	o.s.cutPoint(o.from)
	for _, m := range msgs {
		o.s.net = append(o.s.net, simMsg{m: proto.Clone(m).(*pb.Message)})
	}
}

func (o simSender) SendSnapshot(m *pb.Message, body io.WriterTo, done func(error)) {
	o.s.cutPoint(o.from)
	var buf bytes.Buffer
	if _, err := body.WriteTo(&buf); err != nil {
		done(err)
		return
	}
	o.s.net = append(o.s.net, simMsg{m: m, snap: buf.Bytes(), done: done})
}

type sim struct {
	t     *testing.T
	seed  int64
	rng   *rand.Rand
	dir   string
	nodes []*simNode // by ID order; IDs are positions + 1
	peers map[uint64]string
	net   []simMsg

	leaders map[uint64]uint64   // term → the leader seen in it
	applied map[uint64][32]byte // index → the entry applied there
	acked   []string            // request IDs acknowledged
	seq     int
	// membership run: 0 nothing yet, 1 node 4 started, 4 a removed
	// voter's ID tried again; removedID is the voter chosen for removal
	phase     int
	removedID uint64
	// A node whose power is cut as its Ready's messages leave: its disk
	// is taken at the first message it sends (cut) and it dies once the
	// Ready is through, so what its messages promised must be on that
	// disk.
	cutting *simNode
	cut     *vfs.MemFS
	chaos   bool // crashes may happen (not while settling)
	// Crashes keep only synced bytes (R4_SYNCED_ONLY): which unsynced
	// bytes reached the file depends on pebble's background WAL writer,
	// so only then does a seed replay exactly.
	syncedOnly bool
	tot        simTotals
}

func newSim(t *testing.T, seed int64) *sim {
	s := &sim{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), 0x5244)),
		dir: t.TempDir(), peers: map[uint64]string{},
		leaders: map[uint64]uint64{}, applied: map[uint64][32]byte{},
		syncedOnly: os.Getenv("R4_SYNCED_ONLY") != "",
	}
	for id := uint64(1); id <= 3; id++ {
		s.peers[id] = fmt.Sprintf("127.0.0.1:%d", 20000+id)
	}
	for id := uint64(1); id <= 3; id++ {
		s.addNode(id, false)
	}
	return s
}

func (s *sim) addNode(id uint64, join bool) *simNode {
	dir := "/node" // on the node's own filesystem
	sn := &simNode{id: id, dir: dir, fs: vfs.NewCrashableMem(), join: join}
	s.nodes = append(s.nodes, sn)
	s.start(sn)
	return sn
}

// start opens sn's stores from its filesystem and starts raft on them as
// New would (open, recover, bootstrap on a first start).
func (s *sim) start(sn *simNode) {
	st, err := storage.Open("/state", storage.Options{FS: sn.fs, NoSync: true})
	if err != nil {
		s.startFailed(sn, err)
		return
	}
	peers := maps(s.peers)
	if sn.join {
		peers[sn.id] = fmt.Sprintf("127.0.0.1:%d", 20000+sn.id)
	}
	cfg := Config{
		NodeID: sn.id, Peers: peers, Join: sn.join, Dir: sn.dir, FS: sn.fs, Store: st,
		TLS: &tls.Config{}, ElectionTicks: 1 << 30, HeartbeatTicks: 1,
		SnapshotEntries: 10, CatchUpEntries: 3,
	}
	if err := cfg.setDefaults(); err != nil {
		s.t.Fatal(err)
	}
	n, rc, fresh, err := open(cfg, transport.GroupShared)
	if errors.Is(err, ErrIDRemoved) {
		st.Close()
		return // a removed node refuses to start: the ID stays retired
	}
	if err != nil {
		st.Close()
		s.startFailed(sn, err)
		return
	}
	raw, err := raft.NewRawNode(rc)
	if err != nil {
		s.t.Fatalf("seed %d: raw node %d: %v", s.seed, sn.id, err)
	}
	if peers := n.bootstrapPeers(fresh); peers != nil {
		if err := raw.Bootstrap(peers); err != nil {
			s.t.Fatalf("seed %d: bootstrap %d: %v", s.seed, sn.id, err)
		}
	}
	n.rn = stepper{raw}
	n.out = simSender{s, sn.id}
	sn.node, sn.raw = n, raw
}

// startFailed records a node that cannot start again on what its disk
// kept: a synced write was lost. It stays down.
func (s *sim) startFailed(sn *simNode, err error) {
	s.tot.startFailures++
	s.t.Errorf("seed %d: node %d cannot start: %v", s.seed, sn.id, err)
	sn.removed = true
}

func maps(m map[uint64]string) map[uint64]string {
	out := make(map[uint64]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// crash cuts sn's power: its disk keeps the synced bytes and, with the
// given chance each, unsynced ones; its waiters and outgoing snapshot
// streams die with it.
func (s *sim) crash(sn *simNode) {
	for _, p := range sn.pending {
		if o, ok := p.outcome(); ok && o.err == nil {
			s.ack(p.key)
		}
	}
	s.crashTo(sn, s.powerCut(sn))
}

// powerCut is what sn's disk keeps if its power goes now.
func (s *sim) powerCut(sn *simNode) *vfs.MemFS {
	pct := []int{0, 0, 50, 100}[s.rng.IntN(4)]
	if s.syncedOnly {
		pct = 0
	}
	return sn.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(s.rng.Uint64(), 1))})
}

func (s *sim) cutPoint(from uint64) {
	if s.cutting != nil && s.cutting.id == from && s.cut == nil {
		s.cut = s.powerCut(s.cutting)
	}
}

// crashTo stops sn, leaving clone as its disk; the waiters it had not
// answered die with it.
func (s *sim) crashTo(sn *simNode, clone *vfs.MemFS) {
	for i := range s.net {
		if s.net[i].m.GetFrom() == sn.id && s.net[i].done != nil {
			s.net[i].done(errors.New("sender crashed"))
			s.net[i].done = nil
		}
	}
	if len(s.acked) > 0 {
		s.tot.crashesAfterAcks++
	}
	sn.pending = nil
	sn.node.logs.close()
	sn.node.store.Close()
	sn.node, sn.raw, sn.fs = nil, nil, clone
	s.tot.crashes++
}

func (p simProposal) outcome() (outcome, bool) {
	select {
	case o := <-p.w.ch:
		return o, true
	default:
		return outcome{}, false
	}
}

func (s *sim) ack(key string) { s.acked = append(s.acked, key) }

// up are the running nodes, in ID order.
func (s *sim) up() []*simNode {
	var out []*simNode
	for _, sn := range s.nodes {
		if sn.node != nil {
			out = append(out, sn)
		}
	}
	return out
}

func (s *sim) pick(list []*simNode) *simNode {
	if len(list) == 0 {
		return nil
	}
	return list[s.rng.IntN(len(list))]
}

// leader is the running leader of the highest term (a deposed one may not
// know it yet).
func (s *sim) leader() *simNode {
	var l *simNode
	var term uint64
	for _, sn := range s.up() {
		if st := sn.raw.BasicStatus(); st.RaftState == raft.StateLeader && st.GetTerm() > term {
			l, term = sn, st.GetTerm()
		}
	}
	return l
}

// observe records who leads which term: at most one node may, ever.
func (s *sim) observe(sn *simNode) {
	st := sn.raw.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return
	}
	prev, ok := s.leaders[st.GetTerm()]
	switch {
	case !ok:
		s.leaders[st.GetTerm()] = sn.id
		s.tot.leaders++
	case prev != sn.id:
		s.tot.electionSafety++
		s.t.Errorf("seed %d: term %d has two leaders, %d and %d", s.seed, st.GetTerm(), prev, sn.id)
	}
}

// run plays steps random actions.
func (s *sim) run(steps int) {
	s.chaos = true
	defer func() { s.chaos = false }()
	for range steps {
		switch r := s.rng.IntN(100); {
		case r < 20:
			s.propose(s.pick(s.up()))
		case r < 50:
			s.deliver(1 + s.rng.IntN(4))
		case r < 52:
			s.drop()
		case r < 66:
			if sn := s.pick(s.up()); sn != nil {
				sn.raw.Tick()
			}
		case r < 93:
			s.ready(s.pick(s.up()))
		case r < 94:
			if sn := s.pick(s.up()); sn != nil && len(s.up()) > 1 {
				s.crash(sn)
			}
		case r < 96:
			s.restart()
		case r < 98:
			s.campaign(s.pick(s.up()))
		case r < 99:
			if l := s.leader(); l != nil {
				l.raw.TransferLeader(s.pick(s.up()).id)
			}
		default:
			s.membership()
		}
		s.collect()
	}
}

func (s *sim) propose(sn *simNode) {
	if sn == nil {
		return
	}
	s.seq++
	key := fmt.Sprintf("req-%d-%d", s.seed, s.seq)
	cmd := &storage.Command{
		RequestID: key, Tenant: simTenant, Kind: "r4.write", Actor: "r4", At: int64(s.seq),
		Ops: []storage.Op{
			{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt", "writes"), Delta: 1},
			{Type: storage.OpPut, Space: storage.SpaceTenant, Key: storage.K("w", key), Value: []byte(key), Version: 1, StampRef: 1},
		},
	}
	// As Node.propose does, minus its waiting for a leader: a proposal
	// raft drops at once is simply not made.
	n := sn.node
	w := n.waiters.add(key, max(n.term.Load(), sn.raw.BasicStatus().GetTerm()))
	if err := sn.raw.Propose(storage.EncodeCommand(cmd)); err != nil {
		n.waiters.remove(w)
		return
	}
	sn.pending = append(sn.pending, simProposal{key: key, w: w})
}

// collect takes the answers waiters got.
func (s *sim) collect() {
	for _, sn := range s.nodes {
		kept := sn.pending[:0]
		for _, p := range sn.pending {
			o, ok := p.outcome()
			switch {
			case !ok:
				kept = append(kept, p)
			case o.err == nil && o.res.Err == nil:
				s.ack(p.key)
			}
		}
		sn.pending = kept
	}
}

// deliver hands k messages, picked at random (so reordered), to their
// recipients; a message to a node that is down is lost.
func (s *sim) deliver(k int) {
	for ; k > 0 && len(s.net) > 0; k-- {
		i := s.rng.IntN(len(s.net))
		msg := s.net[i]
		s.net = slices.Delete(s.net, i, i+1)
		s.send(msg)
	}
}

func (s *sim) send(msg simMsg) {
	to := s.byID(msg.m.GetTo())
	var err error
	switch {
	case to == nil || to.node == nil:
		err = errors.New("recipient down")
	case to.node.refused(msg.m.GetFrom()):
		// The transport's Refuse hook: a removed member's traffic.
		err = errors.New("refused")
	case msg.m.GetType() == pb.MsgSnap:
		err = to.node.receiveSnapshot(context.Background(), msg.m, bytes.NewReader(msg.snap))
	default:
		_ = handler{to.node}.Step(context.Background(), msg.m)
		s.observe(to)
	}
	if msg.done != nil {
		msg.done(err)
	}
}

func (s *sim) drop() {
	if len(s.net) == 0 {
		return
	}
	i := s.rng.IntN(len(s.net))
	if d := s.net[i].done; d != nil {
		d(errors.New("dropped"))
	}
	s.net = slices.Delete(s.net, i, i+1)
}

// byID is the running incarnation for id: the newest node with that ID.
func (s *sim) byID(id uint64) *simNode {
	for i := len(s.nodes) - 1; i >= 0; i-- {
		if s.nodes[i].id == id {
			return s.nodes[i]
		}
	}
	return nil
}

// ready handles sn's Ready, if it has one, through Node.handle, and
// records what the checks need.
func (s *sim) ready(sn *simNode) {
	if sn == nil || !sn.raw.HasReady() {
		return
	}
	rd := sn.raw.Ready()
	for _, e := range rd.CommittedEntries {
		h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%x", e.GetTerm(), e.GetType(), e.GetData()))
		if prev, ok := s.applied[e.GetIndex()]; ok && prev != h {
			s.tot.divergence++
			s.t.Errorf("seed %d: node %d applies a different entry at index %d", s.seed, sn.id, e.GetIndex())
		}
		s.applied[e.GetIndex()] = h
	}
	if s.chaos && s.rng.IntN(100) < 3 && len(s.up()) > 1 {
		// Answers the node gives after its power is cut are never seen.
		s.collect()
		s.cutting = sn
	}
	installed := sn.node.st.snapInstalled.Load()
	if err := sn.node.handle(rd); err != nil {
		s.t.Fatalf("seed %d: node %d: %v", s.seed, sn.id, err)
	}
	s.tot.snapshots += int(sn.node.st.snapInstalled.Load() - installed)
	if s.cutting != nil {
		cut := s.cut
		s.cutting, s.cut = nil, nil
		if cut != nil {
			s.tot.cutMidReady++
			sn.pending = nil
			s.crashTo(sn, cut)
			return
		}
	}
	s.observe(sn)
}

// campaign starts an election at sn. Elections happen only here and by
// leadership transfer: raft draws its randomized election timeout from
// crypto/rand, so nodes never tick that far (ElectionTicks is huge) and a
// seed replays the same schedule. The other nodes first forget their
// leader, as after an election timeout, or PreVote with CheckQuorum would
// refuse the election while the leader's lease lasts.
func (s *sim) campaign(sn *simNode) {
	if sn == nil {
		return
	}
	for _, o := range s.up() {
		if o != sn {
			_ = o.raw.ForgetLeader()
		}
	}
	_ = sn.raw.Campaign()
}

// restart brings a crashed node back on what its disk kept.
func (s *sim) restart() {
	var down []*simNode
	for _, sn := range s.nodes {
		if sn.node == nil && !sn.removed && s.byID(sn.id) == sn {
			down = append(down, sn)
		}
	}
	if sn := s.pick(down); sn != nil {
		s.start(sn)
	}
}

// membership advances the seed's membership run by one change, proposed
// on the leader as Node.confChange does. A change raft dropped (an earlier
// one not yet applied) is simply proposed again later; Node's vetting
// refuses one that applies twice.
func (s *sim) membership() {
	l := s.leader()
	if l == nil || s.phase == 4 {
		return
	}
	view := l.node.view.Load()
	var cc *pb.ConfChange
	switch {
	case s.removedID == 0 && !view.isMember(4):
		if s.phase == 0 {
			s.addNode(4, true)
			s.phase = 1
		}
		cc = &pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(4), Context: []byte("127.0.0.1:20004")}
	case view.isLearner(4):
		cc = &pb.ConfChange{Type: pb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(4)}
	case s.removedID == 0:
		s.removedID = view.Voters[s.rng.IntN(len(view.Voters))]
		fallthrough
	case view.isMember(s.removedID):
		cc = &pb.ConfChange{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(s.removedID)}
	default:
		// The removal applied on the leader. The removed node is gone for
		// good; a new one with its ID and an empty disk asks to join.
		old := s.byID(s.removedID)
		if old.node != nil {
			s.crash(old)
		}
		old.removed = true
		s.tot.removed++
		s.addNode(s.removedID, true)
		s.tot.reuseAttempts++
		s.phase = 4
		return
	}
	cc.Id = proto.Uint64(l.node.confSeq.Add(1))
	_ = l.raw.ProposeConfChange(cc)
}

// settle heals the cluster: every crashed node comes back, nothing is
// dropped, every node ticks, the membership run completes, until all
// members have applied the same index with nothing left in flight.
func (s *sim) settle() {
	for _, sn := range s.nodes {
		if sn.node == nil && !sn.removed && s.byID(sn.id) == sn {
			s.start(sn)
		}
	}
	for round := 0; round < 3000; round++ {
		if round%5 == 0 {
			for _, sn := range s.up() {
				sn.raw.Tick()
			}
		}
		// An election when there is no leader, and now and then anyway:
		// a leader stays stuck in a transfer to a node that crashed, which
		// raft abandons only after an election timeout that never comes.
		if round%50 == 49 && (s.leader() == nil || round%250 == 249) {
			s.campaign(s.pick(s.up()))
		}
		for range 50 {
			for _, sn := range s.up() {
				s.ready(sn)
			}
			if len(s.net) == 0 {
				break
			}
			s.deliver(len(s.net))
		}
		s.collect()
		if s.phase != 4 {
			s.membership() // the membership run finishes in the healed cluster
			continue
		}
		if s.converged() {
			return
		}
	}
	s.tot.notConverged++
	s.t.Errorf("seed %d: the healed cluster did not converge:%s", s.seed, s.describe())
}

// describe says where every node stands, for a failure message.
func (s *sim) describe() string {
	var b bytes.Buffer
	for _, sn := range s.nodes {
		if sn.node == nil {
			fmt.Fprintf(&b, "\n  node %d: down (removed %v)", sn.id, sn.removed)
			continue
		}
		st := sn.raw.Status()
		first, _ := sn.node.logs.FirstIndex()
		last, _ := sn.node.logs.LastIndex()
		fmt.Fprintf(&b, "\n  node %d: %v term %d leader %d commit %d applied %d log [%d, %d] membership %+v",
			sn.id, st.RaftState, st.GetTerm(), st.Lead, st.GetCommit(), sn.node.store.AppliedIndex(), first, last, *sn.node.view.Load())
	}
	fmt.Fprintf(&b, "\n  in flight: %d messages; membership run phase %d, removing %d", len(s.net), s.phase, s.removedID)
	return b.String()
}

// members are the running nodes in the leader's applied membership.
func (s *sim) members() []*simNode {
	l := s.leader()
	if l == nil {
		return nil
	}
	view := l.node.view.Load()
	var out []*simNode
	for _, sn := range s.up() {
		if view.isMember(sn.id) && s.byID(sn.id) == sn {
			out = append(out, sn)
		}
	}
	return out
}

func (s *sim) converged() bool {
	l := s.leader()
	if l == nil || len(s.net) > 0 {
		return false
	}
	commit := l.raw.BasicStatus().GetCommit()
	for _, sn := range s.members() {
		if sn.node.store.AppliedIndex() != commit || sn.raw.HasReady() {
			return false
		}
	}
	return true
}

// check compares the converged members' logs and states, and looks for
// every acknowledged write on each.
func (s *sim) check() {
	s.tot.acked = len(s.acked)
	members := s.members()
	for i, a := range members {
		for _, b := range members[i+1:] {
			if err := logsMatch(a.node.logs, b.node.logs); err != nil {
				s.tot.logMatching++
				s.t.Errorf("seed %d: raft logs of %d and %d: %v", s.seed, a.id, b.id, err)
			}
		}
	}
	var first []byte
	for _, sn := range members {
		h, err := sn.node.store.TenantHash(simTenant)
		if err != nil {
			s.t.Fatalf("seed %d: hash on %d: %v", s.seed, sn.id, err)
		}
		if first == nil {
			first = h
		} else if !bytes.Equal(first, h) {
			s.tot.divergence++
			s.t.Errorf("seed %d: node %d ends with different state", s.seed, sn.id)
		}
		v := sn.node.store.Tenant(simTenant)
		for _, key := range s.acked {
			if _, err := v.Get(storage.K("w", key)); err != nil {
				s.tot.ackedLost++
				s.t.Errorf("seed %d: acknowledged %s missing on node %d: %v", s.seed, key, sn.id, err)
			}
		}
	}
	if s.phase == 4 {
		// Every member has applied the removal (the new node with the old
		// ID may hold a partial log from a member that had not).
		for _, sn := range members {
			if sn.node.view.Load().isMember(s.removedID) {
				s.tot.reuseAccepted++
				s.t.Errorf("seed %d: node %d lists removed node %d as a member again", s.seed, sn.id, s.removedID)
			}
		}
	}
}

// logsMatch checks raft's Log Matching property on two logs: below the
// last index where both hold an entry of the same term, every entry both
// hold is identical.
func logsMatch(a, b *logStore) error {
	fa, _ := a.FirstIndex()
	fb, _ := b.FirstIndex()
	la, _ := a.LastIndex()
	lb, _ := b.LastIndex()
	lo, hi := max(fa, fb), min(la, lb)
	if lo > hi {
		return nil
	}
	ea, err := a.Entries(lo, hi+1, 1<<62)
	if err != nil {
		return err
	}
	eb, err := b.Entries(lo, hi+1, 1<<62)
	if err != nil {
		return err
	}
	top := -1
	for i := range ea {
		if ea[i].GetTerm() == eb[i].GetTerm() {
			top = i
		}
	}
	for i := 0; i <= top; i++ {
		if !proto.Equal(ea[i], eb[i]) {
			return fmt.Errorf("entry %d differs below matching entry %d", ea[i].GetIndex(), ea[top].GetIndex())
		}
	}
	return nil
}

func (s *sim) close() {
	for _, sn := range s.up() {
		sn.node.logs.close()
		sn.node.store.Close()
	}
}
