//go:build e2e

package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestR5Membership is RELIABILITY R5: membership changes of a live cluster
// under R1's traffic (eight clients on two workspaces), all through the
// operator's commands. On three `teamflow serve` processes:
//
//  1. `cluster transfer-leader` hands the leadership to a follower;
//  2. `cluster join 4` adds node 4 as a learner; while it is still joining
//     (its process not started yet), a concurrent `cluster join 5` and a
//     `cluster leave` of another member must be refused with
//     membership_change_pending; node 4 then starts, catches up and is
//     promoted to voter;
//  3. the leadership goes back to node 1, which is then removed with
//     `cluster leave 1` while it leads;
//  4. a dead member is replaced (etcd's MemberReplace): a follower is
//     killed for good, removed with `cluster leave`, and a fresh node 5
//     with an empty data directory joins and catches up by snapshot;
//  5. the removed IDs are offered again with `cluster join` and must be
//     refused with node_id_removed;
//  6. two joins are sent at the same moment: one must be refused with
//     membership_change_pending; the other's learner is then removed while
//     its `cluster join` waits for it, which must then fail.
//
// Then the traffic must still make progress, every member must record the
// same membership, and R1's safety figures (and AU6's audit heads) must
// hold over the whole run.
func TestR5Membership(t *testing.T) {
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 5))
	c := newCluster(t, 3, "--raft-snapshot-entries", "200", "--raft-catchup-entries", "50", "--min-index-wait", "10s")
	// newCluster made certificates for nodes 1-4; node 5 is the replacement.
	if out, err := exec.Command(binary, "cluster", "certs", "--dir", c.certs, "node5").CombinedOutput(); err != nil {
		t.Fatalf("cluster certs node5: %v\n%s", err, out)
	}
	root := filepath.Dir(c.nodes[0].dir)
	w := newR1Workload(t, c, seed, "r5a", "r5b")

	// The clients use the members that serve; a member leaves this list
	// before it is removed or killed. c.nodes is the test's own list of
	// members (for status, converge and --server).
	var smu sync.Mutex
	serving := slices.Clone(c.nodes)
	setServing := func() {
		smu.Lock()
		serving = slices.Clone(c.nodes)
		smu.Unlock()
	}
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	w.run(trafficCtx, 8, func() []*cnode {
		smu.Lock()
		defer smu.Unlock()
		return serving
	})
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("R5 at %s: %s", time.Since(start).Round(time.Millisecond), fmt.Sprintf(format, args...))
	}
	progress := func(what string, n int64) {
		base := w.ackedOps.Load()
		eventually(t, 60*time.Second, func() bool { return w.ackedOps.Load() >= base+n }, what)
	}
	progress("traffic before the first change", 200)

	var transfers, added, removed, leaderRemoved, concurrent, concurrentRejected, reuse, reuseRejected int
	var replacementSnapshots uint64
	transfer := func(to *cnode) {
		if _, st := c.leader(30 * time.Second); st.NodeID == to.id {
			t.Fatalf("node %d leads already: no transfer to test", to.id)
		}
		step("cluster transfer-leader --to %d", to.id)
		out, err := c.cli("cluster", "transfer-leader", "--to", strconv.FormatUint(to.id, 10), "--server", c.servers())
		if err != nil || !strings.Contains(out, fmt.Sprintf("Node %d is the leader", to.id)) {
			t.Fatalf("transfer the leadership to node %d: %v\n%s", to.id, err, out)
		}
		if !poll(20*time.Second, func() bool {
			st, err := c.status(to)
			return err == nil && st.State == "leader"
		}) {
			t.Fatalf("node %d does not report that it leads after the transfer", to.id)
		}
		transfers++
	}
	leaderPeer := func() string {
		ld, _ := c.leader(30 * time.Second)
		return fmt.Sprintf("%d=%s", ld.id, ld.raftAddr)
	}

	// 1. Leadership to a follower other than node 1 (step 3 hands it to
	// node 1).
	_, lst := c.leader(30 * time.Second)
	var to []*cnode
	for _, n := range c.nodes[1:] {
		if n.id != lst.NodeID {
			to = append(to, n)
		}
	}
	transfer(to[rng.IntN(len(to))])
	progress("traffic after the transfer", 200)

	// 2. Node 4 joins; a concurrent join is refused meanwhile.
	n4 := &cnode{id: 4, dir: filepath.Join(root, "n4"), raftAddr: freePort(t)}
	joined := make(chan string, 1)
	servers := c.servers()
	step("cluster join 4 (its process not started yet)")
	go func() {
		out, err := c.cli("cluster", "join", "4", n4.raftAddr, "--server", servers, "--timeout", "2m")
		joined <- fmt.Sprintf("%s\n(exit: %v)", out, err)
	}()
	eventually(t, 30*time.Second, func() bool {
		_, st := c.leader(30 * time.Second)
		return member(st, 4, true)
	}, "node 4 a learner")
	for _, change := range [][]string{{"join", "5", freePort(t), "--timeout", "20s"}, {"leave", strconv.FormatUint(c.nodes[1].id, 10)}} {
		step("cluster %s while node 4 is still joining", strings.Join(change[:2], " "))
		concurrent++
		if out, err := c.cli(append([]string{"cluster"}, append(change, "--server", c.servers())...)...); err != nil &&
			strings.Contains(out, "membership_change_pending") && strings.Contains(out, "node 4 is still joining") {
			concurrentRejected++
		} else {
			t.Errorf("cluster %s during a join was not refused: %v\n%s", change[0], err, out)
		}
	}
	if err := c.launch(n4, "--join", "--peers", leaderPeer()); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-joined:
		if !strings.Contains(out, "Node 4 is a voter") {
			t.Fatalf("cluster join 4:\n%s", out)
		}
	case <-time.After(150 * time.Second):
		t.Fatal("cluster join 4 did not finish within 150s")
	}
	c.waitReady(n4, 60*time.Second)
	c.nodes = append(c.nodes, n4)
	setServing()
	added++
	progress("traffic after node 4 joined", 200)

	// 3. Node 1 is removed while it leads.
	n1 := c.nodes[0]
	transfer(n1)
	c.nodes = slices.DeleteFunc(slices.Clone(c.nodes), func(n *cnode) bool { return n == n1 })
	setServing()
	step("cluster leave 1 (the leader)")
	if out, err := c.cli("cluster", "leave", "1", "--server", n1.URL()); err != nil {
		t.Fatalf("cluster leave 1: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, func() bool {
		for _, n := range c.nodes {
			if st, err := c.status(n); err == nil && st.State == "leader" && !member(st, 1, false) && slices.Contains(st.Removed, 1) {
				return true
			}
		}
		return false
	}, "a new leader without node 1")
	c.kill(n1)
	removed++
	leaderRemoved++
	progress("traffic after node 1 left", 200)

	// 4. A dead member replaced: killed for good, removed, and a fresh
	// node with a new ID and an empty data directory added.
	_, lst = c.leader(30 * time.Second)
	dead := c.randomFollower(rng, lst.NodeID)
	c.nodes = slices.DeleteFunc(slices.Clone(c.nodes), func(n *cnode) bool { return n == dead })
	setServing()
	step("kill -9 node %d for good, then cluster leave %d", dead.id, dead.id)
	c.kill(dead)
	if out, err := c.cli("cluster", "leave", strconv.FormatUint(dead.id, 10), "--server", c.servers()); err != nil {
		t.Fatalf("cluster leave %d (dead): %v\n%s", dead.id, err, out)
	}
	removed++
	n5 := &cnode{id: 5, dir: filepath.Join(root, "n5"), raftAddr: freePort(t)}
	if err := c.launch(n5, "--join", "--peers", leaderPeer()); err != nil {
		t.Fatal(err)
	}
	step("cluster join 5 (the replacement, empty data directory)")
	if out, err := c.cli("cluster", "join", "5", n5.raftAddr, "--server", c.servers(), "--timeout", "2m"); err != nil || !strings.Contains(out, "Node 5 is a voter") {
		t.Fatalf("cluster join 5: %v\n%s", err, out)
	}
	c.waitReady(n5, 60*time.Second)
	if st, err := c.status(n5); err == nil {
		replacementSnapshots = st.Stats["snapshots_installed"]
	}
	c.nodes = append(c.nodes, n5)
	setServing()
	added++
	progress("traffic after node 5 joined", 200)

	// 5. The removed IDs may never come back.
	for _, id := range []uint64{1, dead.id} {
		reuse++
		sid := strconv.FormatUint(id, 10)
		step("cluster join %s (a removed ID)", sid)
		if out, err := c.cli("cluster", "join", sid, freePort(t), "--server", c.servers(), "--timeout", "20s"); err != nil && strings.Contains(out, "node_id_removed") {
			reuseRejected++
		} else {
			t.Errorf("removed ID %d accepted again: %v\n%s", id, err, out)
		}
	}
	// 6. Two joins sent at the same moment: one is refused. The other's
	// node never starts; removing its learner abandons the join.
	ld, _ := c.leader(30 * time.Second)
	addrs := []string{freePort(t), freePort(t)}
	type outcome struct {
		status int
		code   string
		err    error
	}
	res := make([]outcome, 2)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			status, _, b, _, err := call(context.Background(), w.hc, "POST", ld.URL()+"/api/v1/platform/cluster/members", c.opTok,
				map[string]any{"id": 6 + i, "raft_addr": addrs[i]})
			res[i] = outcome{status, problemCode(b), err}
		}()
	}
	step("two joins (nodes 6 and 7) at once")
	close(gate)
	wg.Wait()
	concurrent++
	accepted := slices.IndexFunc(res, func(o outcome) bool { return o.err == nil && o.status == 201 })
	if accepted >= 0 && res[1-accepted].status == 409 && res[1-accepted].code == "membership_change_pending" {
		concurrentRejected++
	} else {
		t.Errorf("two joins at once: %+v; want one 201 and one 409 membership_change_pending", res)
	}
	abandoned := uint64(0)
	if accepted >= 0 {
		// The learner's `cluster join`, waiting for it to catch up, must
		// fail once the learner is removed, not report a voter.
		abandoned = uint64(6 + accepted)
		sid := strconv.FormatUint(abandoned, 10)
		out := &watchedOutput{want: "promoting it", seen: make(chan struct{})}
		join := exec.Command(binary, "cluster", "join", sid, addrs[accepted], "--server", c.servers(), "--timeout", "60s", "--token", c.opTok)
		join.Stdout, join.Stderr = out, out
		if err := join.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-out.seen:
		case <-time.After(30 * time.Second):
			join.Process.Kill()
			t.Fatalf("cluster join %s did not start promoting within 30s:\n%s", sid, out)
		}
		step("cluster leave %s (a learner whose join waits)", sid)
		if o, err := c.cli("cluster", "leave", sid, "--server", c.servers()); err != nil {
			t.Fatalf("cluster leave %s (a learner): %v\n%s", sid, err, o)
		}
		if err := join.Wait(); err == nil || !strings.Contains(out.String(), "no longer a learner") || strings.Contains(out.String(), "is a voter") {
			t.Errorf("cluster join %s after its learner was removed: %v\n%s", sid, err, out)
		}
	}
	progress("traffic after the last change", 300)
	stopTraffic()
	w.wait()
	step("traffic stopped after %d acknowledged operations", w.ackedOps.Load())

	// Every member records the same membership: the voters the test kept,
	// no learner, and the three removed IDs.
	mismatch := 0
	var want []uint64
	for _, n := range c.nodes {
		want = append(want, n.id)
	}
	slices.Sort(want)
	for _, n := range c.nodes {
		st, err := c.status(n)
		var voters []uint64
		learners := 0
		if err == nil {
			for _, m := range st.Members {
				if m.Learner {
					learners++
				} else {
					voters = append(voters, m.ID)
				}
			}
		}
		slices.Sort(voters)
		if err != nil || !slices.Equal(voters, want) || learners > 0 || !slices.Contains(st.Removed, 1) || !slices.Contains(st.Removed, dead.id) || !slices.Contains(st.Removed, abandoned) {
			mismatch++
			t.Errorf("node %d's membership: voters %v, %d learners, status %+v (%v); want voters %v, removed 1, %d and %d", n.id, voters, learners, st, err, want, dead.id, abandoned)
		}
	}

	safety, au6 := w.safetyFigures(c.nodes[0], c.nodes[1])
	pct := func(n, of int) float64 {
		if of == 0 {
			return 0
		}
		return float64(100 * n / of)
	}
	figures.Report(t, "R5", seed, append(append(safety, au6...), []figures.Figure{
		figures.Eq("node_id_reuse_rejected", pct(reuseRejected, reuse), 100),
		figures.Eq("concurrent_conf_change_rejected", pct(concurrentRejected, concurrent), 100),
		figures.Eq("membership_mismatch", float64(mismatch), 0),
		figures.Guard("members_added", float64(added), 2),
		figures.Guard("members_removed", float64(removed), 2),
		figures.Guard("leader_removed", float64(leaderRemoved), 1),
		figures.Guard("leadership_transfers", float64(transfers), 2),
		figures.Guard("replacement_snapshots_installed", float64(replacementSnapshots), 1),
		figures.Guard("acked_ops", float64(w.ackedOps.Load()), 1000),
	}...))
}

// member answers whether node id is in st's membership (as a learner, when
// learner is set).
func member(st *nodeStatus, id uint64, learner bool) bool {
	for _, m := range st.Members {
		if m.ID == id && (m.Learner || !learner) {
			return true
		}
	}
	return false
}

// watchedOutput collects a command's output and closes seen once it
// contains want.
type watchedOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if strings.Contains(o.buf.String(), o.want) {
		o.once.Do(func() { close(o.seen) })
	}
	return len(p), nil
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
