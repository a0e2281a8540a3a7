//go:build e2e

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/failpoint"
	"github.com/teamflow/teamflow/internal/figures"
)

// TestR3CrashPoints is RELIABILITY R3: a node exits at one step of its
// raft Ready loop (internal/failpoint: before or after it persists a
// Ready, before it applies committed entries to the store or after, before
// Advance, around a log compaction, or, as a lagging follower, once a
// leader's snapshot is stored or accepted but not yet installed), under the
// R1 traffic, and is restarted. The R1 safety figures must hold for each:
// no acknowledged write lost, no phantom or duplicate, a linearizable
// history, identical replicas.
//
// Every point runs in a 3-node cluster, the victim the leader half the
// time (a follower for the snapshot points, which only a follower
// reaches: killed, then restarted armed once the leader compacted its log
// past it), and every point a single node reaches in a 1-node cluster:
// about 3 s each, so CI runs them all rather than RELIABILITY's two at
// random. R3_POINTS=a,b runs the points named.
func TestR3CrashPoints(t *testing.T) {
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	points := failpoint.Points
	if v := os.Getenv("R3_POINTS"); v != "" {
		points = strings.Split(v, ",")
	}
	for _, size := range []int{3, 1} {
		for _, p := range points {
			if size == 1 && (p == failpoint.SnapshotReceived || p == failpoint.RaftBeforeInstall) {
				continue
			}
			t.Run(fmt.Sprintf("%d-node/%s", size, p), func(t *testing.T) { r3Run(t, p, size, rng, seed) })
		}
	}
}

func r3Run(t *testing.T, point string, size int, rng *rand.Rand, seed int64) {
	c := newCluster(t, size, "--raft-snapshot-entries", "100", "--raft-catchup-entries", "20", "--min-index-wait", "10s")
	w := newR1Workload(t, c, seed, "r3a", "r3b")
	ctx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	w.run(ctx, 6, func() []*cnode { return c.nodes })
	waitAcked := func(n int64, what string) {
		t.Helper()
		eventually(t, 90*time.Second, func() bool { return w.ackedOps.Load() >= n }, what)
	}
	waitAcked(30, "the first acknowledged writes")

	leader, lst := c.leader(60 * time.Second)
	victim, role, skip := leader, "leader", 0
	lagging := point == failpoint.SnapshotReceived || point == failpoint.RaftBeforeInstall
	if size > 1 && (lagging || rng.IntN(2) == 0) {
		victim, role = c.randomFollower(rng, lst.NodeID), "follower"
	}
	if !lagging && point != failpoint.RaftBeforeCompact && point != failpoint.RaftAfterCompact {
		skip = 5 + rng.IntN(50) // points passed several times a second: crash at a random one
	}
	t.Logf("arming %s on node %d (%s), after %d passes", point, victim.id, role, skip)
	logFile := filepath.Join(victim.dir, "stderr.log")
	crashedThere := func() bool { return strings.Contains(tail(logFile), "failpoint "+point+": exiting") }
	crashed := 0
	if lagging {
		// Killed, and restarted armed once the leader has compacted its log
		// past it: only a snapshot catches it up. The leader's last index
		// once the follower is down bounds what the follower holds.
		c.kill(victim)
		_, lst := c.leader(30 * time.Second)
		eventually(t, 90*time.Second, func() bool {
			_, st := c.leader(30 * time.Second)
			return st != nil && st.FirstIndex > lst.LastIndex+1
		}, "the leader compacted its log past the stopped follower")
		victim.env = []string{"TEAMFLOW_FAILPOINT=" + point}
		err := c.launch(victim, "--peers", c.peers)
		victim.env = nil
		if err != nil && crashedThere() {
			crashed = 1 // it died at the point before it served
		} else if err != nil {
			t.Fatal(err)
		}
	} else if status, _, b, _, err := call(ctx, c.client, "POST", victim.URL()+"/_test/failpoint", "", map[string]any{"name": point, "skip": skip}); err != nil || status != 204 {
		t.Fatalf("arm %s on node %d: %d %s %v", point, victim.id, status, b, err)
	}
	victim.mu.Lock()
	srv := victim.srv
	victim.mu.Unlock()
	if crashed == 0 {
		select {
		case err := <-srv.exited:
			srv.exited <- err
			if crashedThere() {
				crashed = 1
			} else {
				t.Errorf("node %d exited, not at %s: %v\n%s", victim.id, point, err, tail(logFile))
			}
		case <-time.After(90 * time.Second):
			vs, _ := c.status(victim)
			_, ls := c.leader(10 * time.Second)
			t.Errorf("node %d never reached %s; it reports %+v; the leader %+v\n%s", victim.id, point, vs, ls, tail(logFile))
		}
	}
	c.kill(victim)
	c.restart(victim)
	waitAcked(w.ackedOps.Load()+50, "acknowledged writes after the restart")
	stopTraffic()
	w.wait()
	for _, n := range c.nodes {
		c.waitReady(n, 90*time.Second)
	}
	safety, _ := w.safetyFigures(c.nodes[0], c.nodes[len(c.nodes)-1])
	id := fmt.Sprintf("R3.%dn.%s", size, point)
	figures.ReportFile(t, id+".json", id, seed, append(safety,
		figures.Guard("crashed_at_point", float64(crashed), 1),
		figures.Guard("acked_ops", float64(w.ackedOps.Load()), 80), // the two waits above
	))
}
