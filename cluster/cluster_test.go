package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/clustertest"
	"github.com/teamflow/teamflow/storage"
)

const tenant = "acme"

// The engine's Log, restated: cluster does not import engine.
type engineLog interface {
	Propose(ctx context.Context, cmd *storage.Command) (storage.Result, error)
}

var _ engineLog = (*cluster.Node)(nil)

// long is the deadline of anything that should take well under a second:
// generous, so a loaded machine does not fail the test, and still bounded.
const long = 30 * time.Second

var seq struct {
	sync.Mutex
	n int
}

// writeCmd is a command as engine makes them: a record, a counter
// allocated in the log, and a unique RequestID.
func writeCmd(tag string) *storage.Command {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	id := fmt.Sprintf("%s-%06d", tag, n)
	return &storage.Command{
		RequestID: "req-" + id,
		Tenant:    tenant,
		Kind:      "task.create",
		Actor:     "tester",
		At:        int64(n),
		Ops: []storage.Op{
			{Type: storage.OpAdd, Space: storage.SpaceTenant, Key: storage.K("cnt", "tasks"), Delta: 1},
			{Type: storage.OpPut, Space: storage.SpaceTenant, Key: storage.K("task", id), Value: []byte("value of " + id), Version: 1, StampRef: 1},
		},
	}
}

// recorder is an observer of one member's applied commands.
type recorder struct {
	mu  sync.Mutex
	ids []string
	idx []uint64
}

func (r *recorder) observe(batch []storage.Applied) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range batch {
		if a.Command.Kind == cluster.MembershipKind {
			continue
		}
		r.ids = append(r.ids, a.Command.RequestID)
		r.idx = append(r.idx, a.Index)
	}
}

func (r *recorder) snapshot() ([]string, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...), append([]uint64(nil), r.idx...)
}

func hashes(t *testing.T, c *clustertest.Cluster) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	for _, m := range c.Running() {
		h, err := m.Store.TenantHash(tenant)
		if err != nil {
			t.Fatalf("hash on %d: %v", m.ID, err)
		}
		out[m.ID] = h
	}
	return out
}

// waitSameHash waits until every running member has applied the same index
// and holds byte-identical tenant data.
func waitSameHash(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	c.WaitConverged(long)
	clustertest.Poll(t, long, "identical tenant hashes", func() (bool, string) {
		hs := hashes(t, c)
		var first []byte
		for id, h := range hs {
			if first == nil {
				first = h
				continue
			}
			if !bytes.Equal(first, h) {
				return false, fmt.Sprintf("member %d differs", id)
			}
		}
		return true, ""
	})
}

func readValue(m *clustertest.Member, id string) (string, error) {
	rec, err := m.Store.Tenant(tenant).Get(storage.K("task", id))
	if err != nil {
		return "", err
	}
	return string(rec.Value), nil
}

// Proposals on the leader and on followers all apply on every node, in the
// same order; an observer on each node sees every write made on any node,
// in log order; the replicas end byte-identical.
func TestReplicationOrderAndObservers(t *testing.T) {
	recs := map[uint64]*recorder{}
	var mu sync.Mutex
	c := clustertest.New(t, clustertest.Options{Nodes: 3, OnOpen: func(m *clustertest.Member) {
		r := &recorder{}
		mu.Lock()
		recs[m.ID] = r
		mu.Unlock()
		m.Store.Observe(r.observe)
	}})
	leader := c.Leader(long)

	// 4 writers per member, concurrently: leader and followers alike.
	const perWriter = 15
	type acked struct {
		node uint64
		res  storage.Result
		id   string
	}
	var wg sync.WaitGroup
	ackCh := make(chan acked, 3*4*perWriter)
	for _, m := range c.Running() {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					cmd := writeCmd(fmt.Sprintf("n%d", m.ID))
					res := clustertest.Propose(t, m, cmd, long)
					if res.Err != nil {
						t.Errorf("apply %s: %v", cmd.RequestID, res.Err)
					}
					ackCh <- acked{node: m.ID, res: res, id: cmd.RequestID}
				}
			}()
		}
	}
	wg.Wait()
	close(ackCh)
	var acks []acked
	for a := range ackCh {
		acks = append(acks, a)
	}
	if len(acks) != 3*4*perWriter {
		t.Fatalf("%d acknowledged writes, want %d", len(acks), 3*4*perWriter)
	}

	// Results: each counter value was allocated once, in log order.
	byCounter := map[int64]string{}
	for _, a := range acks {
		v := a.res.Values[0]
		if prev, dup := byCounter[v]; dup {
			t.Fatalf("counter value %d given to %s and %s", v, prev, a.id)
		}
		byCounter[v] = a.id
	}

	waitSameHash(t, c)

	// Every observer saw every acknowledged write, in the same order, at
	// the same indexes.
	clustertest.Poll(t, long, "observers caught up", func() (bool, string) {
		for id, r := range recs {
			ids, _ := r.snapshot()
			if len(ids) < len(acks) {
				return false, fmt.Sprintf("observer on %d saw %d of %d", id, len(ids), len(acks))
			}
		}
		return true, ""
	})
	refIDs, refIdx := recs[leader.ID].snapshot()
	for id, r := range recs {
		ids, idx := r.snapshot()
		if fmt.Sprint(ids) != fmt.Sprint(refIDs) || fmt.Sprint(idx) != fmt.Sprint(refIdx) {
			t.Fatalf("observer on %d saw a different sequence than the leader's", id)
		}
	}
	pos := map[string]int{}
	for i, id := range refIDs {
		if _, dup := pos[id]; dup {
			t.Fatalf("%s applied twice", id)
		}
		pos[id] = i
	}
	for _, a := range acks {
		i, ok := pos[a.id]
		if !ok {
			t.Fatalf("acknowledged %s (via %d) never observed", a.id, a.node)
		}
		if refIdx[i] != a.res.Index {
			t.Fatalf("%s acknowledged at index %d, observed at %d", a.id, a.res.Index, refIdx[i])
		}
	}
	// Counter values increase with the log index on every node.
	for i := 1; i < len(refIDs); i++ {
		if refIdx[i] <= refIdx[i-1] {
			t.Fatalf("observer indexes not increasing at %d", i)
		}
	}
	// A write from one node is readable on all of them.
	for _, m := range c.Running() {
		for _, a := range acks[:5] {
			id := a.id[len("req-"):]
			if v, err := readValue(m, id); err != nil || v != "value of "+id {
				t.Fatalf("member %d reads %s: %q, %v", m.ID, id, v, err)
			}
		}
	}
}

// Retrying a command with the same RequestID applies it once and returns
// the first result.
func TestProposeRetryIsIdempotent(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	leader := c.Leader(long)
	f := c.Followers(leader)[0]
	cmd := writeCmd("dup")
	first := clustertest.Propose(t, f, cmd, long)
	again := clustertest.Propose(t, leader, cmd, long)
	if !again.Duplicate || again.Values[0] != first.Values[0] || again.Index != first.Index {
		t.Fatalf("retry: got %+v after %+v; want the first result, marked duplicate", again, first)
	}
	if n, err := counterValue(leader); err != nil || n != 1 {
		t.Fatalf("counter %d (%v): the command applied more than once", n, err)
	}
	waitSameHash(t, c)
}

// Closing the leader: a new one is elected and serves writes from every
// remaining node; the old leader restarts, replays its log past the
// store's applied index, catches up and converges.
func TestLeaderFailoverAndRestart(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	old := c.Leader(long)
	var before []string
	for i := 0; i < 20; i++ {
		cmd := writeCmd("before")
		clustertest.Propose(t, c.Running()[i%3], cmd, long)
		before = append(before, cmd.RequestID[len("req-"):])
	}
	oldTerm := old.Node.Status().Term
	old.Stop()

	leader := c.Leader(long)
	if leader.ID == old.ID {
		t.Fatal("closed node still leads")
	}
	if st := leader.Node.Status(); st.Term <= oldTerm {
		t.Fatalf("new leader's term %d not above %d", st.Term, oldTerm)
	}
	// Reads right after the failover see every write acknowledged before
	// it (RELIABILITY R6), through ReadBarrier on each remaining node.
	for _, m := range c.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), long)
		if err := m.Node.ReadBarrier(ctx); err != nil {
			t.Fatalf("read barrier on %d: %v", m.ID, err)
		}
		cancel()
		for _, id := range before {
			if _, err := readValue(m, id); err != nil {
				t.Fatalf("after failover, member %d misses %s: %v", m.ID, id, err)
			}
		}
	}
	var after []string
	for i, m := range append(c.Running(), c.Running()...) {
		cmd := writeCmd(fmt.Sprintf("after%d", i))
		if res := clustertest.Propose(t, m, cmd, long); res.Err != nil {
			t.Fatalf("write after failover: %v", res.Err)
		}
		after = append(after, cmd.RequestID[len("req-"):])
	}

	old.Start()
	waitSameHash(t, c)
	for _, id := range append(before, after...) {
		if _, err := readValue(old, id); err != nil {
			t.Fatalf("restarted member misses %s: %v", id, err)
		}
	}
	// It serves writes again too.
	clustertest.Propose(t, old, writeCmd("old"), long)
	waitSameHash(t, c)
}

// A follower kept down while the leader compacts its log past the
// follower's position catches up by snapshot, and converges.
func TestCatchUpBySnapshot(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3, Configure: func(cfg *cluster.Config) {
		cfg.SnapshotEntries = 40
		cfg.CatchUpEntries = 10
	}})
	leader := c.Leader(long)
	lagger := c.Followers(leader)[0]
	for i := 0; i < 10; i++ {
		clustertest.Propose(t, leader, writeCmd("early"), long)
	}
	c.WaitConverged(long)
	lagged := lagger.Store.AppliedIndex()
	lagger.Stop()

	var ids []string
	for i := 0; i < 150; i++ {
		cmd := writeCmd("late")
		clustertest.Propose(t, c.Running()[i%2], cmd, long)
		ids = append(ids, cmd.RequestID[len("req-"):])
	}
	leader = c.Leader(long)
	clustertest.Poll(t, long, "leader compacted past the lagging follower", func() (bool, string) {
		st := leader.Node.Status()
		return st.FirstIndex > lagged+1, fmt.Sprintf("leader log starts at %d, follower applied %d", st.FirstIndex, lagged)
	})

	lagger.Start()
	waitSameHash(t, c)
	if got := lagger.Node.Stats().SnapshotsInstalled; got == 0 {
		t.Fatalf("follower caught up without installing a snapshot")
	}
	var sent uint64
	for _, m := range c.Running() {
		if m != lagger {
			sent += m.Node.Stats().SnapshotsSent
		}
	}
	if sent == 0 {
		t.Fatal("no member reports a snapshot sent")
	}
	for _, id := range ids {
		if _, err := readValue(lagger, id); err != nil {
			t.Fatalf("after snapshot, follower misses %s: %v", id, err)
		}
	}
	// The snapshot carried the membership record too: the follower's view
	// matches.
	if got, want := fmt.Sprint(lagger.Node.Status().Members), fmt.Sprint(leader.Node.Status().Members); len(lagger.Node.Status().Members) != 3 {
		t.Fatalf("members after snapshot: %s, leader has %s", got, want)
	}
	// And it keeps applying from the log afterwards, and restarts cleanly
	// from the installed state.
	clustertest.Propose(t, lagger, writeCmd("post"), long)
	lagger.Stop()
	lagger.Start()
	waitSameHash(t, c)
}

// ReadBarrier on a follower, right after a write acknowledged by another
// node, sees that write.
func TestReadBarrierSeesWritesFromOtherNodes(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	leader := c.Leader(long)
	followers := c.Followers(leader)
	behind := 0
	for i := 0; i < 40; i++ {
		writer, reader := followers[i%2], followers[(i+1)%2]
		if i%3 == 0 {
			writer = leader
		}
		cmd := writeCmd("rb")
		res := clustertest.Propose(t, writer, cmd, long)
		if reader.Store.AppliedIndex() < res.Index {
			behind++ // the barrier has work to do
		}
		ctx, cancel := context.WithTimeout(context.Background(), long)
		err := reader.Node.ReadBarrier(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read barrier: %v", err)
		}
		if a := reader.Store.AppliedIndex(); a < res.Index {
			t.Fatalf("after the barrier member %d applied %d < %d", reader.ID, a, res.Index)
		}
		id := cmd.RequestID[len("req-"):]
		if _, err := readValue(reader, id); err != nil {
			t.Fatalf("after the barrier member %d misses %s: %v", reader.ID, id, err)
		}
	}
	t.Logf("reader was behind the acknowledged write before the barrier in %d of 40 rounds", behind)
}

// A proposal that cannot commit (no quorum) ends with an error when its
// context does, instead of hanging; once the quorum is back, a retry with
// the same RequestID applies it exactly once.
func TestProposeWithoutQuorumTimesOut(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	leader := c.Leader(long)
	for _, f := range c.Followers(leader) {
		f.Stop()
	}
	cmd := writeCmd("noquorum")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	start := time.Now()
	_, err := leader.Node.Propose(ctx, cmd)
	cancel()
	if err == nil {
		t.Fatal("a proposal committed without a quorum")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, cluster.ErrProposalDropped) && !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("unexpected error: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the proposal took %v to fail", d)
	}
	// A linearizable read cannot be served either.
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	if err := leader.Node.ReadBarrier(ctx); err == nil {
		t.Fatal("a read barrier passed without a quorum")
	}
	cancel()

	for _, m := range c.Members() {
		if !m.Running() {
			m.Start()
		}
	}
	c.Leader(long)
	res := clustertest.Propose(t, c.Running()[0], cmd, long)
	if res.Err != nil {
		t.Fatalf("retry: %v", res.Err)
	}
	waitSameHash(t, c)
	id := cmd.RequestID[len("req-"):]
	for _, m := range c.Running() {
		if v, err := readValue(m, id); err != nil || v != "value of "+id {
			t.Fatalf("member %d: %q %v", m.ID, v, err)
		}
		if n, err := counterValue(m); err != nil || n != 1 {
			t.Fatalf("member %d: counter %d, %v: the retried command applied %d times", m.ID, n, err, n)
		}
	}
}

func counterValue(m *clustertest.Member) (int64, error) {
	rec, err := m.Store.Tenant(tenant).Get(storage.K("cnt", "tasks"))
	if err != nil {
		return 0, err
	}
	if len(rec.Value) != 8 {
		return 0, fmt.Errorf("counter of %d bytes", len(rec.Value))
	}
	var v int64
	for _, b := range rec.Value {
		v = v<<8 | int64(b)
	}
	return v, nil
}

// A follower's proposal that only the old leader got (the follower heard
// nothing back) is failed with ErrProposalDropped promptly once a new
// leader commits, long before the caller's deadline; a retry with the same
// RequestID then applies it exactly once.
func TestLeaderChangeFailsLostProposalPromptly(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{Nodes: 3})
	leader := c.Leader(long)
	fs := c.Followers(leader)
	a, b := fs[0], fs[1]
	clustertest.Propose(t, a, writeCmd("warm"), long)
	c.WaitConverged(long)
	b.Stop()
	a.BlockInbound()

	cmd := writeCmd("lost")
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := a.Node.Propose(ctx, cmd)
		errc <- err
	}()
	clustertest.Poll(t, long, "the old leader appended the forwarded proposal", func() (bool, string) {
		st := leader.Node.Status()
		return st.LastIndex > st.Commit, fmt.Sprintf("last %d, commit %d", st.LastIndex, st.Commit)
	})
	leader.Stop()
	a.UnblockInbound()
	b.Start()
	select {
	case err := <-errc:
		if !errors.Is(err, cluster.ErrProposalDropped) {
			t.Fatalf("lost proposal ended with %v, want ErrProposalDropped", err)
		}
	case <-time.After(long):
		t.Fatal("the lost proposal was still pending after the new leader took over")
	}
	if res := clustertest.Propose(t, a, cmd, long); res.Err != nil || res.Duplicate {
		t.Fatalf("retry: %+v", res)
	}
	leader.Start() // its uncommitted entry is overwritten
	waitSameHash(t, c)
	for _, m := range c.Running() {
		if n, err := counterValue(m); err != nil || n != 2 {
			t.Fatalf("member %d: counter %d (%v), want 2", m.ID, n, err)
		}
	}
}

// A restarted node whose state store is behind its raft log (the store
// is not synced per batch in a cluster) replays the entries after the
// store's applied index, and its observers see them.
func TestRestartReplaysPastAppliedIndex(t *testing.T) {
	var mu sync.Mutex
	observed := map[uint64][]uint64{}
	c := clustertest.New(t, clustertest.Options{Nodes: 3, OnOpen: func(m *clustertest.Member) {
		m.Store.Observe(func(batch []storage.Applied) {
			mu.Lock()
			defer mu.Unlock()
			for _, a := range batch {
				observed[m.ID] = append(observed[m.ID], a.Index)
			}
		})
	}})
	leader := c.Leader(long)
	m := c.Followers(leader)[0]
	for i := 0; i < 10; i++ {
		clustertest.Propose(t, leader, writeCmd("a"), long)
	}
	c.WaitConverged(long)
	m.Stop()
	state := filepath.Join(m.Dir, "state")
	backup := filepath.Join(t.TempDir(), "state")
	copyDir(t, state, backup)

	m.Start()
	for i := 0; i < 30; i++ {
		clustertest.Propose(t, c.Running()[i%3], writeCmd("b"), long)
	}
	waitSameHash(t, c)
	m.Stop()
	// Put the old state back: as if the last batches never reached disk.
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, state)
	mu.Lock()
	observed[m.ID] = nil
	mu.Unlock()

	old, err := storage.Open(state, storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	from := old.AppliedIndex()
	old.Close()
	m.Start()
	waitSameHash(t, c)
	to := m.Store.AppliedIndex()
	if to < from+30 {
		t.Fatalf("restarted at %d, now at %d: expected to replay at least 30 entries", from, to)
	}
	mu.Lock()
	defer mu.Unlock()
	obs := observed[m.ID]
	if len(obs) < 30 || obs[0] <= from {
		t.Fatalf("after restart the observer saw %d commands starting at %v; the store restarted at %d", len(obs), obs[:min(1, len(obs))], from)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
