//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestR2Partitions is RELIABILITY R2 at the CI size: three `teamflow serve`
// processes, each in its own network namespace on a bridge
// (netns_e2e_test.go), under R1's traffic from the root namespace (six
// clients pinned two to a node, r1Workload) for 60 s, while the network
// between the nodes is cut four times for 7.5 s, one cut every 15 s: three
// random halves (with three nodes, one node against two) and once the
// leader against both followers. During each cut a prober sends
// linearizable reads (TeamFlow-Consistency: linearizable, a ReadIndex
// barrier) to the nodes cut off: they may fail or time out, never answer a
// version older than one already acknowledged. After each heal a write on
// each of those nodes must succeed within 30 s. Every node's (term, leader)
// is polled throughout: at most one leader per term. Then R1's safety
// figures: no acknowledged write lost, the history linearizable
// (porcupine), the replicas identical.
//
// R2_NODES=5 runs five nodes instead (figures under R2-5n, ten clients: six
// pinned two to each of nodes 1-3, four going round all five). Random
// halves are then two nodes against three, and one of the four cuts is
// Jepsen's bridge instead of a random halves: the leader and one follower
// cannot reach two other followers, the fifth node (a follower, the
// bridge) reaches everyone, so {leader side, bridge} and {bridge, far
// side} are two majorities overlapping in the bridge. There is no minority
// side: the prober reads from the two far-side nodes (cut off from the
// leader; with CheckQuorum and PreVote they cannot win the bridge's vote
// while it hears the leader) and from the leader, and the write after the
// heal goes to each far-side node.
//
// R2_SOAK=1 (R2_DURATION, default 30m) runs RELIABILITY's soak pattern
// instead, one nemesis every 30 s (on for 10 s) in turn: random halves,
// the leader isolated, (with five nodes) the bridge, a follower cut off
// until it needs a snapshot, and a SIGSTOP of the leader. (RELIABILITY's
// netem delay and loss are not there: the CI machine's kernel has no netem
// qdisc.) The test skips where network namespaces cannot be made (not
// root, no ip command).
func TestR2Partitions(t *testing.T) {
	nodes := 3
	if s := os.Getenv("R2_NODES"); s != "" {
		var err error
		if nodes, err = strconv.Atoi(s); err != nil || (nodes != 3 && nodes != 5) {
			t.Fatalf("R2_NODES=%q: 3 or 5", s)
		}
	}
	id := "R2"
	if nodes != 3 {
		id = fmt.Sprintf("R2-%dn", nodes)
	}
	lab := newNetLab(t, nodes)
	soak := os.Getenv("R2_SOAK") != ""
	duration := 60 * time.Second
	if soak {
		duration = 30 * time.Minute
	}
	duration = envDuration(t, "R2_DURATION", duration)
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	// Linearizable reads give up after 3 s (a 503) rather than 10 s, so a
	// node cut off answers several of them during a cut.
	c := newNetnsCluster(t, lab, "--raft-snapshot-entries", "200", "--raft-catchup-entries", "50", "--min-index-wait", "3s")
	w := newR1Workload(t, c, seed, "r2a", "r2b")
	p := &r2Prober{w: w}
	p.signIn()

	// Leader watch: the terms each node reported leading.
	leaders := map[uint64]map[uint64]bool{} // term -> node IDs
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for watchCtx.Err() == nil {
			for _, n := range c.nodes {
				if st, err := c.status(n); err == nil && st.State == "leader" {
					if leaders[st.Term] == nil {
						leaders[st.Term] = map[uint64]bool{}
					}
					leaders[st.Term][st.NodeID] = true
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	w.run(trafficCtx, 2*nodes, func() []*cnode { return c.nodes })

	// The nemeses: one per period, in its middle, on for half of it (at
	// most 10 s).
	period := duration / 4
	plan := []string{"halves", "halves", "halves"}
	rotation := []string{"halves", "leader", "snapshot", "pause"}
	if nodes == 5 {
		plan = []string{"halves", "bridge", "halves"}
		rotation = []string{"halves", "leader", "bridge", "snapshot", "pause"}
	}
	if soak {
		period = 30 * time.Second
		plan = nil
		for i := range int(duration / period) {
			plan = append(plan, rotation[i%len(rotation)])
		}
	} else {
		plan = slices.Insert(plan, rng.IntN(len(plan)+1), "leader")
	}
	on := min(10*time.Second, period/2)
	var (
		cuts, plannedCuts, bridges, pauses int
		ackedInCuts                        int64
		healGaps                           []time.Duration
		snapshotsSent                      uint64
		snapshotsInstalled                 uint64 // by the followers cut off until they needed one
	)
	for _, kind := range plan {
		if kind != "pause" {
			plannedCuts++
		}
	}
	ids := func(ns []*cnode) (out []int) {
		for _, n := range ns {
			out = append(out, int(n.id))
		}
		return out
	}
	trafficStart := time.Now()
	for i, kind := range plan {
		if wait := time.Until(trafficStart.Add(time.Duration(i)*period + (period-on)/2)); wait > 0 {
			time.Sleep(wait)
		}
		ld, lst := c.leader(60 * time.Second)
		at := time.Since(trafficStart).Round(time.Millisecond)
		if kind == "pause" {
			c.pauseResume(rng, true, w.ackedOps.Load)
			pauses++
			continue
		}
		// cutOff are the nodes that lose the leader (or, for halves, the
		// smaller side): the prober reads from them during the cut (in a
		// bridge from the leader too) and writes on them after the heal.
		var cutOff, rest, probed []*cnode
		var via *cnode // the bridge node
		switch kind {
		case "halves":
			// The smaller half, drawn one node at a time (with three
			// nodes one draw: a seed picks the node it always did).
			for len(cutOff) < nodes/2 {
				var others []*cnode
				for _, n := range c.nodes {
					if !slices.Contains(cutOff, n) {
						others = append(others, n)
					}
				}
				cutOff = append(cutOff, others[rng.IntN(len(others))])
			}
		case "leader":
			cutOff = []*cnode{ld}
		case "snapshot":
			cutOff = []*cnode{c.randomFollower(rng, lst.NodeID)}
		case "bridge":
			// The leader and one follower on one side, the bridge a
			// follower: with the leader as the bridge every node would
			// still reach it.
			var fs []*cnode
			for _, n := range c.nodes {
				if n != ld {
					fs = append(fs, n)
				}
			}
			rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
			via, rest, cutOff = fs[0], []*cnode{ld, fs[1]}, fs[2:]
		}
		if kind != "bridge" {
			for _, n := range c.nodes {
				if !slices.Contains(cutOff, n) {
					rest = append(rest, n)
				}
			}
		}
		probed = cutOff
		var vst *nodeStatus // the snapshot victim's status before the cut
		if kind == "snapshot" {
			vst, _ = c.status(cutOff[0])
		}
		base := w.ackedOps.Load()
		if kind == "bridge" {
			t.Logf("nemesis %d at %s: bridge: nodes %v cut off from %v, node %d reaches both (leader %d, term %d)",
				i+1, at, ids(cutOff), ids(rest), via.id, lst.NodeID, lst.Term)
			lab.cutBridge(ids(rest), int(via.id), ids(cutOff))
			probed = append(slices.Clone(cutOff), ld)
			bridges++
		} else {
			t.Logf("nemesis %d at %s: %s: nodes %v cut off from %v (leader %d, term %d)", i+1, at, kind, ids(cutOff), ids(rest), lst.NodeID, lst.Term)
			lab.cut(ids(cutOff), ids(rest))
		}
		probeCtx, stopProbe := context.WithCancel(context.Background())
		var probes sync.WaitGroup
		for _, n := range probed {
			probes.Add(1)
			go func() {
				defer probes.Done()
				p.probe(probeCtx, n, slices.Contains(cutOff, n))
			}()
		}
		time.Sleep(on)
		if kind == "snapshot" && !poll(3*period, func() bool {
			// Stay cut off until the leader has compacted its log past
			// what the victim holds: then only a snapshot catches it up.
			_, st := c.leader(30 * time.Second)
			return vst != nil && st.FirstIndex > vst.LastIndex+1
		}) {
			t.Errorf("the leader's log was not compacted past node %d's within %s", cutOff[0].id, 3*period)
		}
		if kind == "bridge" {
			// What the overlapping majorities made of it, for the log.
			var states []string
			for _, n := range c.nodes {
				if st, err := c.status(n); err == nil {
					states = append(states, fmt.Sprintf("%d:%s/t%d", n.id, st.State, st.Term))
				}
			}
			t.Logf("bridge: at the heal %v (leader %d in term %d at the cut)", states, lst.NodeID, lst.Term)
		}
		lab.heal()
		healed := time.Now()
		stopProbe()
		probes.Wait()
		ackedInCuts += w.ackedOps.Load() - base
		cuts++
		for _, n := range cutOff {
			healGaps = append(healGaps, p.writeAfterHeal(n, healed))
		}
		if kind == "snapshot" {
			victim := cutOff[0]
			_, lst := c.leader(60 * time.Second)
			eventually(t, 90*time.Second, func() bool {
				st, err := c.status(victim)
				return err == nil && st.Applied >= lst.Commit
			}, fmt.Sprintf("node %d caught up after the cut", victim.id))
			_, st := c.leader(30 * time.Second)
			snapshotsSent = max(snapshotsSent, st.Stats["snapshots_sent"])
			if st, err := c.status(victim); err == nil && vst != nil {
				snapshotsInstalled += st.Stats["snapshots_installed"] - vst.Stats["snapshots_installed"]
			}
		}
	}
	if wait := time.Until(trafficStart.Add(duration)); wait > 0 {
		time.Sleep(wait)
	}
	stopTraffic()
	w.wait()
	stopWatch()
	<-watchDone
	t.Logf("traffic ran %s", time.Since(trafficStart).Round(time.Second))

	safety, _ := w.safetyFigures(c.nodes[0], c.nodes[1])
	leadersPerTerm := 0
	for term, ids := range leaders {
		leadersPerTerm = max(leadersPerTerm, len(ids))
		if len(ids) > 1 {
			t.Errorf("term %d had %d leaders: %v", term, len(ids), ids)
		}
	}
	var maxGap time.Duration
	for _, g := range healGaps {
		maxGap = max(maxGap, g)
	}
	t.Logf("%d reads sent to a node cut off, %d answered; from a heal to a write on a node cut off: max %s over %d heals",
		p.reads.Load(), p.answered.Load(), maxGap.Round(time.Millisecond), len(healGaps))
	if bridges > 0 {
		t.Logf("%d reads sent to the leader during %d bridges, %d answered", p.otherReads.Load(), bridges, p.otherAnswered.Load())
	}
	figs := append(safety,
		figures.Eq("stale_reads_minority", float64(p.stale.Load()), 0),
		figures.Le("leaders_per_term", float64(leadersPerTerm), 1),
		figures.Le("heal_to_write_max_s", maxGap.Seconds(), 30),
		figures.Guard("partitions", float64(cuts), float64(plannedCuts)),
		figures.Guard("minority_reads", float64(p.reads.Load()), float64(cuts)),
		figures.Guard("acked_during_partitions", float64(ackedInCuts), float64(10*cuts)),
		figures.Guard("leader_terms_observed", float64(len(leaders)), 2),
		figures.Guard("acked_ops", float64(w.ackedOps.Load()), float64(300*max(1, int(duration/time.Minute)))),
	)
	if soak {
		figs = append(figs,
			figures.Guard("leader_pauses", float64(pauses), 1),
			figures.Guard("snapshots_sent", float64(snapshotsSent), 1),
			figures.Guard("snapshots_installed_after_cut", float64(snapshotsInstalled), 1))
	}
	if slices.Contains(plan, "bridge") {
		figs = append(figs, figures.Guard("bridges", float64(bridges), 1))
	}
	figures.Report(t, id, seed, figs)
}

// r2Prober is R2's own traffic beside the workload's clients: linearizable
// reads sent to a node while it is cut off (and, in a bridge, to the
// leader), and a write after each heal. Several probes run at once, one
// per probed node.
type r2Prober struct {
	w                         *r1Workload
	mu                        sync.Mutex
	token                     string // the first workspace owner's; valid on every node
	ids                       atomic.Int64
	reads, answered           atomic.Int64 // to nodes cut off
	otherReads, otherAnswered atomic.Int64 // to other probed nodes (the leader in a bridge)
	stale                     atomic.Int64 // to any of them
}

// signIn takes a new token (the probes outlast one in the soak).
func (p *r2Prober) signIn() {
	sp := p.w.spaces[0]
	tok := r6Token(p.w.t, p.w.c, p.w.hc, p.w.c.nodes[0], sp.slug, sp.email, sp.password)
	p.mu.Lock()
	p.token = tok
	p.mu.Unlock()
}

func (p *r2Prober) tok() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.token
}

// probe reads tasks of the first workspace linearizably on node n until
// ctx ends, 50 ms apart; the reads enter the workload's history. An answer
// older than the version acknowledged before the read was sent is stale.
// cutOff says whether n is cut off from the leader (which counter counts).
func (p *r2Prober) probe(ctx context.Context, n *cnode, cutOff bool) {
	reads, answered := &p.reads, &p.answered
	if !cutOff {
		reads, answered = &p.otherReads, &p.otherAnswered
	}
	w := p.w
	sp := w.spaces[0]
	rng := rand.New(rand.NewPCG(uint64(w.seed), uint64(p.ids.Add(1))))
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// A node that can still reach the leader (the leader itself
			// in a bridge) answers at once: do not spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		sp.mu.Lock()
		pool := sp.keys[max(0, len(sp.keys)-20):]
		key := pool[rng.IntN(len(pool))]
		sp.mu.Unlock()
		w.mu.Lock()
		before := w.ackedVersion[key]
		w.mu.Unlock()
		reads.Add(1)
		cl := w.now()
		status, h, b, _, err := call(ctx, w.hc, "GET", n.URL()+"/api/v1/tasks/"+key, p.tok(), nil, "TeamFlow-Consistency", "linearizable")
		if err != nil || status != http.StatusOK {
			// Refused or timed out: what a node cut off should do.
			if status == http.StatusUnauthorized {
				p.signIn()
			}
			continue
		}
		var tk struct {
			Title string `json:"title"`
		}
		json.Unmarshal(b, &tk)
		v := etagVersion(h)
		w.record(-10-int(p.ids.Add(1)), r1Input{Kind: r1Read, Key: key}, r1Output{Version: v, Title: tk.Title}, cl, w.now())
		answered.Add(1)
		if v < before {
			p.stale.Add(1)
			w.t.Errorf("stale read: node %d, during a cut, answered version %d of %s; version %d was acknowledged before the read", n.id, v, key, before)
		}
	}
}

// writeAfterHeal creates a task on node n until one is acknowledged and
// answers how long that took from the heal (liveness; the test fails past
// 30 s). The creations are the workload's: the final checks look for them.
func (p *r2Prober) writeAfterHeal(n *cnode, healed time.Time) time.Duration {
	w := p.w
	sp := w.spaces[0]
	id := p.ids.Add(1)
	for i := 0; time.Since(healed) < 30*time.Second; i++ {
		tag := fmt.Sprintf("h%d-%d", id, i)
		w.mu.Lock()
		w.attempted[tag] = true
		w.mu.Unlock()
		status, _, b, _, err := call(context.Background(), w.hc, "POST", n.URL()+"/api/v1/projects/"+sp.project+"/tasks", p.tok(),
			map[string]any{"title": "t-" + tag, "tags": []string{tag}})
		if status == http.StatusUnauthorized {
			p.signIn()
		}
		if err == nil && status == http.StatusCreated {
			var tk struct {
				ID string `json:"id"`
			}
			json.Unmarshal(b, &tk)
			w.mu.Lock()
			w.ackedCreates[tag] = sp.slug + "/" + tk.ID
			w.mu.Unlock()
			return time.Since(healed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Errorf("no write succeeded on node %d within 30s of the heal", n.id)
	return time.Since(healed)
}
