//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/teamflow/teamflow/internal/figures"
)

// TestR1KillLeader is RELIABILITY R1 (with R6 inside it) at the CI size:
// three `teamflow serve` processes on loopback with mutual TLS; eight
// sequential clients (six pinned two to a node, two going round the
// nodes) create tasks and compare-and-set them (PATCH with If-Match) and
// read them linearizably (TeamFlow-Consistency: linearizable) through the
// real API, for 60 s, while the leader is killed with SIGKILL three times
// and a follower twice, each restarted after about 2 s; one follower stays
// down until the leader has compacted its raft log past it, so it must
// catch up by snapshot. Right after each leader kill, reads of the keys
// written just before it must not be stale (R6).
//
// R1_DURATION=20m (make soak) runs the same fault pattern every minute.
// R1_SOAK=1 (make soak) takes RELIABILITY's soak pattern instead: every
// minute five leader kills, three follower kills (one caught up by
// snapshot), a SIGSTOP of a follower and of the leader, each resumed; and
// once in the run a fourth node joins (learner, then voter) and leaves
// under load. Faults then follow each other as fast as the cluster
// recovers, and the traffic runs until the last one is over.
func TestR1KillLeader(t *testing.T) {
	duration := 60 * time.Second
	soak := os.Getenv("R1_SOAK") != ""
	if d := os.Getenv("R1_DURATION"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("R1_DURATION: %v", err)
		}
	}
	seed := figures.Seed(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	c := newCluster(t, 3, "--raft-snapshot-entries", "200", "--raft-catchup-entries", "50", "--min-index-wait", "10s")
	hc := &http.Client{Timeout: 15 * time.Second}

	// Two workspaces, each a project with ten tasks to start from.
	type wspace struct {
		slug, project, email, password string
		mu                             sync.Mutex
		keys                           []string
	}
	var spaces []*wspace
	bg := context.Background()
	start := time.Now()
	var hmu sync.Mutex
	var history []porcupine.Operation
	record := func(client int, in r1Input, out r1Output, call, ret int64) {
		hmu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
		hmu.Unlock()
	}
	now := func() int64 { return int64(time.Since(start)) }
	for _, slug := range []string{"r1a", "r1b"} {
		w := &wspace{slug: slug, email: "owner@" + slug + ".test", password: "password-" + slug}
		cl := newClient(t, c.nodes[0].URL())
		m := want(t, cl.do("POST", "/api/v1/signup", map[string]any{"workspace_name": strings.ToUpper(slug), "workspace_slug": slug,
			"name": "Owner", "email": w.email, "password": w.password}), 201, "signup")
		cl.token = m["access_token"].(string)
		w.project = want(t, cl.do("POST", "/api/v1/projects", map[string]any{"name": "R1"}), 201, "project")["id"].(string)
		for i := range 10 {
			title := fmt.Sprintf("seed-%s-%d", slug, i)
			call := now()
			r := cl.do("POST", "/api/v1/projects/"+w.project+"/tasks", map[string]any{"title": title, "tags": []string{"s-" + slug + "-" + strconv.Itoa(i)}})
			id := want(t, r, 201, "seed task")["id"].(string)
			record(-1, r1Input{Kind: r1Create, Key: id, Title: title}, r1Output{Version: 1}, call, now())
			w.keys = append(w.keys, id)
		}
		spaces = append(spaces, w)
	}

	// Observed facts, shared by the clients, the fault injector and the checks.
	var (
		mu            sync.Mutex
		attempted     = map[string]bool{}   // creation tags tried
		ackedCreates  = map[string]string{} // tag -> workspace slug / task ID
		ackedVersion  = map[string]uint64{} // task -> highest version acknowledged to any client
		ackedOps      atomic.Int64
		unknownOps    atomic.Int64
		rywViolations atomic.Int64
		rywChecks     atomic.Int64
	)
	for _, w := range spaces {
		for i := range 10 {
			attempted["s-"+w.slug+"-"+strconv.Itoa(i)] = true
		}
		for _, k := range w.keys {
			ackedVersion[k] = 1
		}
	}

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
	var wg sync.WaitGroup
	for ci := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crng := rand.New(rand.NewPCG(uint64(seed), uint64(100+ci)))
			w := spaces[ci%2]
			pinned := c.nodes[(ci/2)%3]
			roundRobin := ci >= 6
			token := ""
			known := map[string]uint64{}
			var lastKey string
			var lastVer, lastIdx uint64
			login := func(u string) bool {
				status, _, b, _, _ := call(trafficCtx, hc, "POST", u+"/api/v1/auth/login", "", map[string]any{"workspace": w.slug, "email": w.email, "password": w.password})
				if status != 200 {
					return false
				}
				var tk struct {
					AccessToken string `json:"access_token"`
				}
				json.Unmarshal(b, &tk)
				token = tk.AccessToken
				return true
			}
			lin := []string{"TeamFlow-Consistency", "linearizable"}
			for n := 0; trafficCtx.Err() == nil; n++ {
				node := pinned
				if roundRobin {
					node = c.nodes[n%3]
				}
				u := node.URL()
				if u == "" {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if token == "" && !login(u) {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				w.mu.Lock()
				pool := w.keys[max(0, len(w.keys)-20):]
				key := pool[crng.IntN(len(pool))]
				w.mu.Unlock()
				p := crng.Float64()
				switch {
				case p < 0.15: // create a task: a new key
					tag := fmt.Sprintf("k%d-%d", ci, n)
					title := "t-" + tag
					mu.Lock()
					attempted[tag] = true
					mu.Unlock()
					cl := now()
					status, h, b, sent, err := call(trafficCtx, hc, "POST", u+"/api/v1/projects/"+w.project+"/tasks", token,
						map[string]any{"title": title, "tags": []string{tag}}, lin...)
					switch {
					case err == nil && status == 201:
						var tk struct {
							ID string `json:"id"`
						}
						json.Unmarshal(b, &tk)
						record(ci, r1Input{Kind: r1Create, Key: tk.ID, Title: title}, r1Output{Version: etagVersion(h)}, cl, now())
						mu.Lock()
						ackedCreates[tag] = w.slug + "/" + tk.ID
						ackedVersion[tk.ID] = 1
						mu.Unlock()
						w.mu.Lock()
						w.keys = append(w.keys, tk.ID)
						w.mu.Unlock()
						known[tk.ID] = 1
						ackedOps.Add(1)
					case status == 401:
						token = ""
					case !sent || status == 503 && problemCode(b) == "read_barrier_failed" || status == 429:
						// Never reached the handler: no effect.
						if status == 429 {
							time.Sleep(100 * time.Millisecond)
						}
					default:
						unknownOps.Add(1) // its ID is unknown: only the set check sees it
					}
				case p < 0.55: // compare-and-set the title
					expect := known[key]
					if expect == 0 {
						expect = 1
					}
					title := fmt.Sprintf("u-%d-%d", ci, n)
					cl := now()
					status, h, b, sent, err := call(trafficCtx, hc, "PATCH", u+"/api/v1/tasks/"+key, token,
						map[string]any{"title": title}, append([]string{"If-Match", strconv.Quote(strconv.FormatUint(expect, 10))}, lin...)...)
					in := r1Input{Kind: r1CAS, Key: key, Expect: expect, Title: title}
					switch {
					case err == nil && status == 200:
						v := etagVersion(h)
						record(ci, in, r1Output{OK: true, Version: v}, cl, now())
						known[key] = v
						idx, _ := strconv.ParseUint(h.Get("TeamFlow-Applied-Index"), 10, 64)
						lastKey, lastVer, lastIdx = key, v, idx
						mu.Lock()
						ackedVersion[key] = max(ackedVersion[key], v)
						mu.Unlock()
						ackedOps.Add(1)
					case err == nil && status == 412:
						record(ci, in, r1Output{OK: false}, cl, now())
						delete(known, key)
						ackedOps.Add(1)
					case status == 401:
						token = ""
					case !sent || status == 503 && problemCode(b) == "read_barrier_failed" || status == 429:
						// Never reached the handler: no effect.
					default:
						record(ci, in, r1Output{Unknown: true}, cl, r1Forever)
						unknownOps.Add(1)
					}
				case p < 0.9 || lastKey == "": // linearizable read
					cl := now()
					status, h, b, _, err := call(trafficCtx, hc, "GET", u+"/api/v1/tasks/"+key, token, nil, lin...)
					if err == nil && status == 200 {
						var tk struct {
							Title string `json:"title"`
						}
						json.Unmarshal(b, &tk)
						v := etagVersion(h)
						record(ci, r1Input{Kind: r1Read, Key: key}, r1Output{Version: v, Title: tk.Title}, cl, now())
						known[key] = v
						ackedOps.Add(1)
					} else if status == 401 {
						token = ""
					}
				default: // read-your-writes on another node, at the write's index
					other := c.nodes[crng.IntN(3)]
					ou := other.URL()
					if ou == "" {
						continue
					}
					status, h, _, _, err := call(trafficCtx, hc, "GET", ou+"/api/v1/tasks/"+lastKey, token, nil, "TeamFlow-Min-Index", strconv.FormatUint(lastIdx, 10))
					if err == nil && status == 200 {
						rywChecks.Add(1)
						if etagVersion(h) < lastVer {
							rywViolations.Add(1)
							t.Errorf("read-your-writes: node %d answered version %d of %s at index %d, the client wrote %d", other.id, etagVersion(h), lastKey, lastIdx, lastVer)
						}
					}
				}
			}
		}()
	}

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
			stalled, stale := c.pauseResume(rng, f.kind == "pause-leader", ackedOps.Load)
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
		mu.Lock()
		before := map[string]uint64{}
		for k, v := range ackedVersion {
			before[k] = v
		}
		mu.Unlock()
		t.Logf("fault %d at %s: kill -9 %s node %d (term %d)", faults+1, time.Since(trafficStart).Round(time.Millisecond), f.kind, victim.id, lst.Term)
		killedAt := time.Now()
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
						cl := now()
						status, h, b, _, err := call(bg, hc, "GET", n.URL()+"/api/v1/tasks/"+k, tk, nil, "TeamFlow-Consistency", "linearizable")
						if err == nil && status == 200 {
							var body struct {
								Title string `json:"title"`
							}
							json.Unmarshal(b, &body)
							record(-2, r1Input{Kind: r1Read, Key: k}, r1Output{Version: etagVersion(h), Title: body.Title}, cl, now())
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
		if err := c.launch(victim, "--peers", c.peers); err != nil {
			t.Fatal(err)
		}
		c.waitReady(victim, 90*time.Second)
		// Caught up: applied the leader's commit index as of now.
		_, lst = c.leader(60 * time.Second)
		eventually(t, 90*time.Second, func() bool {
			st, err := c.status(victim)
			return err == nil && st.Applied >= lst.Commit
		}, fmt.Sprintf("node %d caught up", victim.id))
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
	wg.Wait()
	stopWatch()
	<-watchDone

	// Quiesce: every node up and caught up; then the final reads.
	for _, n := range c.nodes {
		c.waitReady(n, 90*time.Second)
	}
	lost, phantom, duplicates := 0, 0, 0
	for _, w := range spaces {
		tok := r6Token(t, c, hc, c.nodes[0], w.slug, w.email, w.password)
		seen := map[string]int{}
		ids := map[string]string{}
		cursor := ""
		for {
			status, _, b, _, err := call(bg, hc, "GET", c.nodes[0].URL()+"/api/v1/projects/"+w.project+"/tasks?limit=200&cursor="+url.QueryEscape(cursor), tok, nil, "TeamFlow-Consistency", "linearizable")
			if err != nil || status != 200 {
				t.Fatalf("final list: %d %v %s", status, err, b)
			}
			var page struct {
				Items []struct {
					ID   string   `json:"id"`
					Tags []string `json:"tags"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			json.Unmarshal(b, &page)
			for _, it := range page.Items {
				for _, tag := range it.Tags {
					seen[tag]++
					ids[tag] = it.ID
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		mu.Lock()
		for tag, n := range seen {
			if !attempted[tag] {
				phantom++
				t.Errorf("task %s (%s) was never attempted", ids[tag], tag)
			}
			if n > 1 {
				duplicates += n - 1
				t.Errorf("creation %s applied %d times", tag, n)
			}
		}
		for tag, at := range ackedCreates {
			if slug, id, _ := strings.Cut(at, "/"); slug == w.slug && seen[tag] == 0 {
				lost++
				t.Errorf("acknowledged task %s (%s) lost", id, tag)
			}
		}
		mu.Unlock()
		// The final linearizable read of every key enters the history.
		w.mu.Lock()
		keys := slices.Clone(w.keys)
		w.mu.Unlock()
		for _, k := range keys {
			cl := now()
			status, h, b, _, err := call(bg, hc, "GET", c.nodes[1].URL()+"/api/v1/tasks/"+k, tok, nil, "TeamFlow-Consistency", "linearizable")
			if err != nil || status != 200 {
				lost++
				t.Errorf("final read of %s: %d %v %s", k, status, err, b)
				continue
			}
			var body struct {
				Title string `json:"title"`
			}
			json.Unmarshal(b, &body)
			record(-3, r1Input{Kind: r1Read, Key: k}, r1Output{Version: etagVersion(h), Title: body.Title}, cl, now())
		}
	}

	hashes, err := c.converge([]string{"r1a", "r1b"}, 90*time.Second)
	divergence := 0
	if err != nil {
		t.Error(err)
		divergence = -1
	} else {
		_, lst := c.leader(30 * time.Second)
		for ws, byNode := range hashes {
			for id, h := range byNode {
				if h != byNode[lst.NodeID] {
					divergence++
					t.Errorf("workspace %s: node %d's hash differs from the leader's", ws, id)
				}
			}
		}
	}
	for _, n := range c.nodes {
		if st, err := c.status(n); err == nil {
			snapshotsSent = max(snapshotsSent, st.Stats["snapshots_sent"])
		}
	}

	checkStart := time.Now()
	res := porcupine.CheckOperationsTimeout(r1Model, history, 120*time.Second)
	t.Logf("porcupine: %s over %d operations (%d with unknown outcome) in %s", res, len(history), unknownOps.Load(), time.Since(checkStart).Round(time.Millisecond))
	lin := figures.Eq("linearizable", 0, 1)
	switch res {
	case porcupine.Ok:
		lin.Value = 1
	case porcupine.Unknown:
		lin = figures.Guard("linearizable", 0, 1) // checker gave up: INCONCLUSIVE
	}
	var maxGap time.Duration
	for _, g := range failoverGaps {
		maxGap = max(maxGap, g)
	}
	t.Logf("failover (kill to a new leader seen): max %s over %d leader kills; %d read-your-writes checks", maxGap.Round(time.Millisecond), len(failoverGaps), rywChecks.Load())
	if divergence < 0 {
		divergence = 1
	}
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
	figures.Report(t, "R1", seed, append(soakFigures, []figures.Figure{
		figures.Eq("lost_acked", float64(lost), 0),
		figures.Eq("phantom", float64(phantom), 0),
		figures.Eq("duplicates", float64(duplicates), 0),
		lin,
		figures.Eq("replica_divergence", float64(divergence), 0),
		figures.Eq("stale_after_failover", float64(staleAfterFailover), 0),
		figures.Eq("read_your_writes_violations", float64(rywViolations.Load()), 0),
		figures.Guard("acked_ops", float64(ackedOps.Load()), float64(300*minutes)),
		figures.Guard("faults_injected", float64(faults), float64(5*minutes)),
		figures.Guard("leader_changes_observed", float64(max(leaderChanges.Load(), int64(failovers))), float64(3*minutes)),
		figures.Guard("snapshots_sent", float64(snapshotsSent), 1),
		figures.Guard("snapshots_installed", float64(snapshotsInstalled), 1),
		figures.Guard("r6_reads", float64(r6Reads), float64(20*minutes)),
	}...))
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
