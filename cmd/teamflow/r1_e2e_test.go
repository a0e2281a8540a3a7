//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestR1KillLeader is RELIABILITY R1 (with R6 and AU6 inside it) at the CI size:
// three `teamflow serve` processes on loopback with mutual TLS; eight
// sequential clients (six pinned two to a node, two going round the
// nodes) create tasks and compare-and-set them (PATCH with If-Match) and
// read them linearizably (TeamFlow-Consistency: linearizable) through the
// real API, for 60 s, while the leader is killed with SIGKILL three times
// and a follower twice, each restarted after about 2 s; one follower stays
// down until the leader has compacted its raft log past it, so it must
// catch up by snapshot. Right after each leader kill, reads of the keys
// written just before it must not be stale (R6). Once the nodes have
// converged at one applied index, each workspace's audit chain head must be
// the same on every node (AU6, its own figure).
//
// R1_DURATION=20m (make soak) runs the same fault pattern every minute.
// R1_SOAK=1 (make soak) takes RELIABILITY's soak pattern instead: every
// minute five leader kills, three follower kills (one caught up by
// snapshot), a SIGSTOP of a follower and of the leader, each resumed; and
// once in the run a fourth node joins (learner, then voter) and leaves
// under load. Faults then follow each other as fast as the cluster
// recovers, and the traffic runs until the last one is over.
func TestR1KillLeader(t *testing.T) {
	soak := os.Getenv("R1_SOAK") != ""
	duration := envDuration(t, "R1_DURATION", 60*time.Second)
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	c := newCluster(t, 3, "--raft-snapshot-entries", "200", "--raft-catchup-entries", "50", "--min-index-wait", "10s")
	hc := &http.Client{Timeout: 15 * time.Second}
	bg := context.Background()
	w := newR1Workload(t, c, seed, "r1a", "r1b")
	spaces := w.spaces

	// Leader watch: every change of (term, leader) any node reports.
	var leaderChanges atomic.Int64
	watchCtx, stopWatch := context.WithCancel(bg)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		var term, lead uint64
		for watchCtx.Err() == nil {
			for _, n := range c.nodes {
				st, err := c.status(n)
				if err != nil || st.State != "leader" || st.Term <= term {
					continue
				}
				if lead != 0 {
					leaderChanges.Add(1) // a new term with a leader
				}
				term, lead = st.Term, st.NodeID
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// The clients.
	trafficCtx, stopTraffic := context.WithTimeout(bg, duration)
	if soak {
		trafficCtx, stopTraffic = context.WithCancel(bg)
	}
	defer stopTraffic()
	w.run(trafficCtx, 8, func() []*cnode { return c.nodes })

	// The faults: per minute, leader kills at ~4 s, ~28 s and ~50 s, a
	// follower down until it needs a snapshot at ~14 s, a short follower
	// kill at ~40 s; each victim restarted after ~2 s, and waited for
	// before the next fault.
	type fault struct {
		at   time.Duration
		kind string
	}
	var plan []fault
	soakMinute := []string{"leader", "follower-snapshot", "leader", "pause-follower", "leader", "follower", "leader", "pause-leader", "leader", "follower"}
	for m := time.Duration(0); m+time.Minute <= duration; m += time.Minute {
		j := func() time.Duration { return time.Duration(rng.IntN(2000)) * time.Millisecond }
		if !soak {
			plan = append(plan, fault{m + 4*time.Second + j(), "leader"}, fault{m + 14*time.Second + j(), "follower-snapshot"},
				fault{m + 28*time.Second + j(), "leader"}, fault{m + 40*time.Second + j(), "follower"}, fault{m + 50*time.Second + j(), "leader"})
			continue
		}
		if m == duration/time.Minute/2*time.Minute {
			plan = append(plan, fault{m, "membership"})
		}
		for i, kind := range soakMinute {
			plan = append(plan, fault{m + time.Duration(i)*6*time.Second, kind})
		}
	}
	var (
		faults, staleAfterFailover, r6Reads, failovers int
		snapshotsSent, snapshotsInstalled              uint64
		failoverGaps                                   []time.Duration
		leaderKilledAt                                 []int64 // w.now() of each leader kill
		kills                                          = map[string]int{}
		pauses, stalledPauses, staleResumedLeaders     int
		membershipChanges                              int
	)
	trafficStart := time.Now()
	for _, f := range plan {
		if wait := time.Until(trafficStart.Add(f.at)); wait > 0 {
			time.Sleep(wait)
		}
		switch f.kind {
		case "pause-follower", "pause-leader":
			stalled, stale := c.pauseResume(rng, f.kind == "pause-leader", w.ackedOps.Load)
			pauses++
			stalledPauses += stalled
			staleResumedLeaders += stale
			faults++
			continue
		case "membership":
			membershipChanges += c.joinAndLeave(4)
			faults++
			continue
		}
		leader, lst := c.leader(60 * time.Second)
		victim := leader
		if f.kind != "leader" {
			victim = c.randomFollower(rng, lst.NodeID)
		}
		vst, _ := c.status(victim)
		before := w.acked()
		t.Logf("fault %d at %s: kill -9 %s node %d (term %d)", faults+1, time.Since(trafficStart).Round(time.Millisecond), f.kind, victim.id, lst.Term)
		killedAt := time.Now()
		if f.kind == "leader" {
			leaderKilledAt = append(leaderKilledAt, w.now())
		}
		c.kill(victim)
		faults++
		kills[strings.TrimSuffix(f.kind, "-snapshot")]++
		if f.kind == "leader" {
			// R6: as soon as a new leader is elected, read the keys written
			// just before the kill, on both live nodes.
			newLeader, _ := c.leader(60 * time.Second)
			failoverGaps = append(failoverGaps, time.Since(killedAt))
			if newLeader.id != victim.id {
				failovers++ // the watch below may miss a term between two polls; this cannot
			}
			keys := make([]string, 0, len(before))
			for k := range before {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			tok := r6Token(t, c, hc, newLeader, spaces[0].slug, spaces[0].email, spaces[0].password)
			tok2 := r6Token(t, c, hc, newLeader, spaces[1].slug, spaces[1].email, spaces[1].password)
			for i, k := range keys[:min(len(keys), 40)] {
				n := c.randomFollower(rng, victim.id)
				if i%2 == 0 {
					n = newLeader
				}
				for _, tk := range []string{tok, tok2} {
					deadline := time.Now().Add(20 * time.Second)
					for time.Now().Before(deadline) {
						cl := w.now()
						status, h, b, _, err := call(bg, hc, "GET", n.URL()+"/api/v1/tasks/"+k, tk, nil, "TeamFlow-Consistency", "linearizable")
						if err == nil && status == 200 {
							var body struct {
								Title string `json:"title"`
							}
							json.Unmarshal(b, &body)
							w.record(-2, r1Input{Kind: r1Read, Key: k}, r1Output{Version: etagVersion(h), Title: body.Title}, cl, w.now())
							r6Reads++
							if etagVersion(h) < before[k] {
								staleAfterFailover++
								t.Errorf("R6: after the leader kill node %d answered version %d of %s; version %d was acknowledged before", n.id, etagVersion(h), k, before[k])
							}
							break
						}
						if status == 404 {
							break // the other workspace's task
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
			}
		}
		time.Sleep(2 * time.Second)
		if f.kind == "follower-snapshot" {
			// Stay down until the leader has compacted its log past what
			// the victim holds: then only a snapshot can catch it up.
			deadline := time.Now().Add(45 * time.Second)
			for time.Now().Before(deadline) {
				if _, st := c.leader(30 * time.Second); vst != nil && st.FirstIndex > vst.LastIndex+1 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		c.restart(victim)
		if f.kind == "follower-snapshot" {
			if st, err := c.status(victim); err == nil {
				snapshotsInstalled += st.Stats["snapshots_installed"]
			}
			if _, st := c.leader(30 * time.Second); st != nil {
				snapshotsSent = max(snapshotsSent, st.Stats["snapshots_sent"])
			}
		}
	}
	if soak {
		stopTraffic()
	}
	<-trafficCtx.Done()
	w.wait()
	stopWatch()
	<-watchDone

	// Quiesce: every node up and caught up; then the final reads.
	for _, n := range c.nodes {
		c.waitReady(n, 90*time.Second)
	}
	// The final checks, with AU6: at one applied index every replica has
	// the same audit chain head in each workspace.
	safety, au6 := w.safetyFigures(c.nodes[0], c.nodes[1])
	for _, n := range c.nodes {
		if st, err := c.status(n); err == nil {
			snapshotsSent = max(snapshotsSent, st.Stats["snapshots_sent"])
		}
	}

	var maxGap time.Duration
	for _, g := range failoverGaps {
		maxGap = max(maxGap, g)
	}
	t.Logf("failover (kill to a new leader seen): max %s over %d leader kills; %d read-your-writes checks", maxGap.Round(time.Millisecond), len(failoverGaps), w.rywChecks.Load())
	// Issue 3's target: from the leader's death to the first successful
	// write (a write sent after the kill and acknowledged) ≤ 3 s.
	var toWrite time.Duration
	for _, d := range w.firstWriteAfter(leaderKilledAt) {
		toWrite = max(toWrite, d)
	}
	t.Logf("failover (kill to the first write sent after it and acknowledged): max %s", toWrite.Round(time.Millisecond))
	minutes := max(1, int(duration/time.Minute))
	t.Logf("traffic ran %s", time.Since(trafficStart).Round(time.Second))
	var soakFigures []figures.Figure
	if soak {
		soakFigures = []figures.Figure{
			figures.Eq("paused_without_progress", float64(stalledPauses), 0),
			figures.Eq("resumed_leader_stale_term", float64(staleResumedLeaders), 0),
			figures.Guard("leader_kills", float64(kills["leader"]), float64(5*minutes)),
			figures.Guard("follower_kills", float64(kills["follower"]), float64(3*minutes)),
			figures.Guard("pauses", float64(pauses), float64(2*minutes)),
			figures.Guard("membership_changes", float64(membershipChanges), 2),
		}
	}
	figures.Report(t, "R1", seed, append(append(soakFigures, safety...), []figures.Figure{
		figures.Eq("stale_after_failover", float64(staleAfterFailover), 0),
		figures.Le("failover_to_write_max_s", toWrite.Seconds(), 3),
		figures.Guard("acked_ops", float64(w.ackedOps.Load()), float64(300*minutes)),
		figures.Guard("faults_injected", float64(faults), float64(5*minutes)),
		figures.Guard("leader_changes_observed", float64(max(leaderChanges.Load(), int64(failovers))), float64(3*minutes)),
		figures.Guard("snapshots_sent", float64(snapshotsSent), 1),
		figures.Guard("snapshots_installed", float64(snapshotsInstalled), 1),
		figures.Guard("r6_reads", float64(r6Reads), float64(20*minutes)),
	}...))
	figures.Report(t, "AU6", seed, au6)
}

// envDuration is the duration the environment variable name gives (a run's
// length set by hand), or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// r6Token signs in on node n (a write there, so the session is on every
// node by the time a read uses it linearizably).
func r6Token(t *testing.T, c *tcluster, hc *http.Client, n *cnode, slug, email, password string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		status, _, b, _, err := call(context.Background(), hc, "POST", n.URL()+"/api/v1/auth/login", "", map[string]any{"workspace": slug, "email": email, "password": password})
		if err == nil && status == 200 {
			var tk struct {
				AccessToken string `json:"access_token"`
			}
			json.Unmarshal(b, &tk)
			return tk.AccessToken
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sign in on node %d: no success within 60s", n.id)
	return ""
}
