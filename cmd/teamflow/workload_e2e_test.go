//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/internal/figures"
)

// r1Workload is RELIABILITY R1's traffic and its safety checks, shared by
// the fault tests (R1, R5): workspaces seeded with tasks, sequential
// clients that create tasks, compare-and-set them (PATCH with If-Match),
// read them linearizably and check read-your-writes on another node, the
// history they observed (for porcupine), and the facts the final checks
// compare the cluster's contents with.
type r1Workload struct {
	t      *testing.T
	c      *tcluster
	hc     *http.Client
	seed   int64
	start  time.Time
	spaces []*r1Space

	hmu     sync.Mutex
	history []porcupine.Operation

	mu           sync.Mutex
	attempted    map[string]bool   // creation tags tried
	ackedCreates map[string]string // tag -> workspace slug / task ID
	ackedVersion map[string]uint64 // task -> highest version acknowledged to any client

	ackedOps, unknownOps, rywViolations, rywChecks atomic.Int64
	clients                                        sync.WaitGroup
}

// r1Space is one workspace of the workload: a project and its tasks.
type r1Space struct {
	slug, project, email, password string
	mu                             sync.Mutex
	keys                           []string
}

// newR1Workload signs up each workspace on the cluster's first node and
// creates a project with ten tasks in it.
func newR1Workload(t *testing.T, c *tcluster, seed int64, slugs ...string) *r1Workload {
	t.Helper()
	w := &r1Workload{t: t, c: c, hc: &http.Client{Timeout: 15 * time.Second}, seed: seed, start: time.Now(),
		attempted: map[string]bool{}, ackedCreates: map[string]string{}, ackedVersion: map[string]uint64{}}
	for _, slug := range slugs {
		sp := &r1Space{slug: slug, email: "owner@" + slug + ".test", password: "password-" + slug}
		cl := newClient(t, c.nodes[0].URL())
		m := want(t, cl.do("POST", "/api/v1/signup", map[string]any{"workspace_name": strings.ToUpper(slug), "workspace_slug": slug,
			"name": "Owner", "email": sp.email, "password": sp.password}), 201, "signup")
		cl.token = m["access_token"].(string)
		sp.project = want(t, cl.do("POST", "/api/v1/projects", map[string]any{"name": "R1"}), 201, "project")["id"].(string)
		for i := range 10 {
			title := fmt.Sprintf("seed-%s-%d", slug, i)
			tag := "s-" + slug + "-" + strconv.Itoa(i)
			call := w.now()
			r := cl.do("POST", "/api/v1/projects/"+sp.project+"/tasks", map[string]any{"title": title, "tags": []string{tag}})
			id := want(t, r, 201, "seed task")["id"].(string)
			w.record(-1, r1Input{Kind: r1Create, Key: id, Title: title}, r1Output{Version: 1}, call, w.now())
			sp.keys = append(sp.keys, id)
			w.attempted[tag] = true
			w.ackedVersion[id] = 1
		}
		w.spaces = append(w.spaces, sp)
	}
	return w
}

func (w *r1Workload) now() int64 { return int64(time.Since(w.start)) }

func (w *r1Workload) record(client int, in r1Input, out r1Output, call, ret int64) {
	w.hmu.Lock()
	w.history = append(w.history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	w.hmu.Unlock()
}

// firstWriteAfter is, for each instant (in now's units), how long after it
// the first write sent at or after it was acknowledged: a create, or a
// compare-and-set that applied. An instant no such write followed counts
// as the rest of the run.
func (w *r1Workload) firstWriteAfter(instants []int64) []time.Duration {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	out := make([]time.Duration, len(instants))
	for i, at := range instants {
		first := w.now()
		for _, op := range w.history {
			in, res := op.Input.(r1Input), op.Output.(r1Output)
			if op.Call < at || res.Unknown || in.Kind == r1Read || (in.Kind == r1CAS && !res.OK) {
				continue
			}
			first = min(first, op.Return)
		}
		out[i] = time.Duration(first - at)
	}
	return out
}

// acked copies the highest version acknowledged of every task.
func (w *r1Workload) acked() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]uint64, len(w.ackedVersion))
	for k, v := range w.ackedVersion {
		out[k] = v
	}
	return out
}

// run starts n sequential clients until ctx ends (wait returns once they
// have). Client ci writes to workspace ci%len(spaces); the first six are
// pinned two to a node, the others go round the nodes. nodes answers the
// nodes the clients use (it may change as members come and go).
func (w *r1Workload) run(ctx context.Context, n int, nodes func() []*cnode) {
	for ci := range n {
		w.clients.Add(1)
		go func() {
			defer w.clients.Done()
			w.client(ctx, ci, nodes)
		}()
	}
}

func (w *r1Workload) wait() { w.clients.Wait() }

func (w *r1Workload) client(ctx context.Context, ci int, nodes func() []*cnode) {
	crng := rand.New(rand.NewPCG(uint64(w.seed), uint64(100+ci)))
	sp := w.spaces[ci%len(w.spaces)]
	roundRobin := ci >= 6
	token := ""
	known := map[string]uint64{}
	var lastKey string
	var lastVer, lastIdx uint64
	login := func(u string) bool {
		status, _, b, _, _ := call(ctx, w.hc, "POST", u+"/api/v1/auth/login", "", map[string]any{"workspace": sp.slug, "email": sp.email, "password": sp.password})
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
	for n := 0; ctx.Err() == nil; n++ {
		ns := nodes()
		node := ns[(ci/2)%len(ns)]
		if roundRobin {
			node = ns[n%len(ns)]
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
		sp.mu.Lock()
		pool := sp.keys[max(0, len(sp.keys)-20):]
		key := pool[crng.IntN(len(pool))]
		sp.mu.Unlock()
		p := crng.Float64()
		switch {
		case p < 0.15: // create a task: a new key
			tag := fmt.Sprintf("k%d-%d", ci, n)
			title := "t-" + tag
			w.mu.Lock()
			w.attempted[tag] = true
			w.mu.Unlock()
			cl := w.now()
			status, h, b, sent, err := call(ctx, w.hc, "POST", u+"/api/v1/projects/"+sp.project+"/tasks", token,
				map[string]any{"title": title, "tags": []string{tag}}, lin...)
			switch {
			case err == nil && status == 201:
				var tk struct {
					ID string `json:"id"`
				}
				json.Unmarshal(b, &tk)
				w.record(ci, r1Input{Kind: r1Create, Key: tk.ID, Title: title}, r1Output{Version: etagVersion(h)}, cl, w.now())
				w.mu.Lock()
				w.ackedCreates[tag] = sp.slug + "/" + tk.ID
				w.ackedVersion[tk.ID] = 1
				w.mu.Unlock()
				sp.mu.Lock()
				sp.keys = append(sp.keys, tk.ID)
				sp.mu.Unlock()
				known[tk.ID] = 1
				w.ackedOps.Add(1)
			case status == 401:
				token = ""
			case !sent || status == 503 && problemCode(b) == "read_barrier_failed" || status == 429:
				// Never reached the handler: no effect.
				if status == 429 {
					time.Sleep(100 * time.Millisecond)
				}
			default:
				w.unknownOps.Add(1) // its ID is unknown: only the set check sees it
			}
		case p < 0.55: // compare-and-set the title
			expect := known[key]
			if expect == 0 {
				expect = 1
			}
			title := fmt.Sprintf("u-%d-%d", ci, n)
			cl := w.now()
			status, h, b, sent, err := call(ctx, w.hc, "PATCH", u+"/api/v1/tasks/"+key, token,
				map[string]any{"title": title}, append([]string{"If-Match", strconv.Quote(strconv.FormatUint(expect, 10))}, lin...)...)
			in := r1Input{Kind: r1CAS, Key: key, Expect: expect, Title: title}
			switch {
			case err == nil && status == 200:
				v := etagVersion(h)
				w.record(ci, in, r1Output{OK: true, Version: v}, cl, w.now())
				known[key] = v
				idx, _ := strconv.ParseUint(h.Get("TeamFlow-Applied-Index"), 10, 64)
				lastKey, lastVer, lastIdx = key, v, idx
				w.mu.Lock()
				w.ackedVersion[key] = max(w.ackedVersion[key], v)
				w.mu.Unlock()
				w.ackedOps.Add(1)
			case err == nil && status == 412:
				w.record(ci, in, r1Output{OK: false}, cl, w.now())
				delete(known, key)
				w.ackedOps.Add(1)
			case status == 401:
				token = ""
			case !sent || status == 503 && problemCode(b) == "read_barrier_failed" || status == 429:
				// Never reached the handler: no effect.
			default:
				w.record(ci, in, r1Output{Unknown: true}, cl, r1Forever)
				w.unknownOps.Add(1)
			}
		case p < 0.9 || lastKey == "": // linearizable read
			cl := w.now()
			status, h, b, _, err := call(ctx, w.hc, "GET", u+"/api/v1/tasks/"+key, token, nil, lin...)
			if err == nil && status == 200 {
				var tk struct {
					Title string `json:"title"`
				}
				json.Unmarshal(b, &tk)
				v := etagVersion(h)
				w.record(ci, r1Input{Kind: r1Read, Key: key}, r1Output{Version: v, Title: tk.Title}, cl, w.now())
				known[key] = v
				w.ackedOps.Add(1)
			} else if status == 401 {
				token = ""
			}
		default: // read-your-writes on another node, at the write's index
			other := ns[crng.IntN(len(ns))]
			ou := other.URL()
			if ou == "" {
				continue
			}
			status, h, _, _, err := call(ctx, w.hc, "GET", ou+"/api/v1/tasks/"+lastKey, token, nil, "TeamFlow-Min-Index", strconv.FormatUint(lastIdx, 10))
			if err == nil && status == 200 {
				w.rywChecks.Add(1)
				if etagVersion(h) < lastVer {
					w.rywViolations.Add(1)
					w.t.Errorf("read-your-writes: node %d answered version %d of %s at index %d, the client wrote %d", other.id, etagVersion(h), lastKey, lastIdx, lastVer)
				}
			}
		}
	}
}

// check is the end of a run, once the clients have stopped and the nodes
// are up: every task listed on lister (linearizably) must have been
// attempted once and every acknowledged creation must be there; then a
// final linearizable read of every key on reader enters the history.
func (w *r1Workload) check(lister, reader *cnode) (lost, phantom, duplicates int) {
	t := w.t
	t.Helper()
	bg := context.Background()
	for _, sp := range w.spaces {
		tok := r6Token(t, w.c, w.hc, lister, sp.slug, sp.email, sp.password)
		seen := map[string]int{}
		ids := map[string]string{}
		cursor := ""
		for {
			status, _, b, _, err := call(bg, w.hc, "GET", lister.URL()+"/api/v1/projects/"+sp.project+"/tasks?limit=200&cursor="+url.QueryEscape(cursor), tok, nil, "TeamFlow-Consistency", "linearizable")
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
		w.mu.Lock()
		for tag, n := range seen {
			if !w.attempted[tag] {
				phantom++
				t.Errorf("task %s (%s) was never attempted", ids[tag], tag)
			}
			if n > 1 {
				duplicates += n - 1
				t.Errorf("creation %s applied %d times", tag, n)
			}
		}
		for tag, at := range w.ackedCreates {
			if slug, id, _ := strings.Cut(at, "/"); slug == sp.slug && seen[tag] == 0 {
				lost++
				t.Errorf("acknowledged task %s (%s) lost", id, tag)
			}
		}
		w.mu.Unlock()
		sp.mu.Lock()
		keys := slices.Clone(sp.keys)
		sp.mu.Unlock()
		for _, k := range keys {
			cl := w.now()
			status, h, b, _, err := call(bg, w.hc, "GET", reader.URL()+"/api/v1/tasks/"+k, tok, nil, "TeamFlow-Consistency", "linearizable")
			if err != nil || status != 200 {
				lost++
				t.Errorf("final read of %s: %d %v %s", k, status, err, b)
				continue
			}
			var body struct {
				Title string `json:"title"`
			}
			json.Unmarshal(b, &body)
			w.record(-3, r1Input{Kind: r1Read, Key: k}, r1Output{Version: etagVersion(h), Title: body.Title}, cl, w.now())
		}
	}
	return lost, phantom, duplicates
}

// linearizable checks the history with porcupine (120 s budget; a checker
// that gives up makes the figure INCONCLUSIVE).
func (w *r1Workload) linearizable() figures.Figure {
	w.hmu.Lock()
	history := slices.Clone(w.history)
	w.hmu.Unlock()
	checkStart := time.Now()
	res := porcupine.CheckOperationsTimeout(r1Model, history, 120*time.Second)
	w.t.Logf("porcupine: %s over %d operations (%d with unknown outcome) in %s", res, len(history), w.unknownOps.Load(), time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
		return figures.Eq("linearizable", 1, 1)
	case porcupine.Unknown:
		return figures.Guard("linearizable", 0, 1) // checker gave up: INCONCLUSIVE
	}
	return figures.Eq("linearizable", 0, 1)
}

// replicas waits until every node has applied the same index and compares
// each workspace's hash and audit chain head (AU6) on every node with the
// leader's. It answers the number of differing hashes and heads, and how
// many audit heads were compared (a vacuity guard: a workspace without
// audit entries has no head to compare).
func (w *r1Workload) replicas() (divergence, auditDivergence, auditHeads int) {
	t := w.t
	t.Helper()
	var slugs []string
	for _, sp := range w.spaces {
		slugs = append(slugs, sp.slug)
	}
	states, err := w.c.convergeState(slugs, 90*time.Second)
	if err != nil {
		t.Error(err)
		return 1, 1, 0
	}
	_, lst := w.c.leader(30 * time.Second)
	for ws, byNode := range states {
		ref := byNode[lst.NodeID]
		for id, h := range byNode {
			if h.Hash != ref.Hash {
				divergence++
				t.Errorf("workspace %s: node %d's hash differs from the leader's", ws, id)
			}
			if h.AuditHeadSeq != ref.AuditHeadSeq || h.AuditHeadHash != ref.AuditHeadHash {
				auditDivergence++
				t.Errorf("workspace %s: node %d's audit head is %d/%s, the leader's %d/%s at the same index %d",
					ws, id, h.AuditHeadSeq, h.AuditHeadHash, ref.AuditHeadSeq, ref.AuditHeadHash, h.Applied)
			}
			if h.AuditHeadSeq > 0 {
				auditHeads++
			}
		}
	}
	return divergence, auditDivergence, auditHeads
}

// safetyFigures are R1's safety figures of a run whose clients have
// stopped, with the nodes lister and reader for the final reads, and
// AU6's: the audit chain heads of the replicas at one applied index.
func (w *r1Workload) safetyFigures(lister, reader *cnode) (safety, au6 []figures.Figure) {
	lost, phantom, duplicates := w.check(lister, reader)
	divergence, auditDivergence, auditHeads := w.replicas()
	safety = []figures.Figure{
		figures.Eq("lost_acked", float64(lost), 0),
		figures.Eq("phantom", float64(phantom), 0),
		figures.Eq("duplicates", float64(duplicates), 0),
		w.linearizable(),
		figures.Eq("replica_divergence", float64(divergence), 0),
		figures.Eq("read_your_writes_violations", float64(w.rywViolations.Load()), 0),
	}
	au6 = []figures.Figure{
		figures.Eq("audit_head_divergence", float64(auditDivergence), 0),
		figures.Guard("audit_heads_compared", float64(auditHeads), float64(len(w.spaces)*len(w.c.nodes))),
	}
	return safety, au6
}

// convergeState waits until every node has applied the leader's commit
// index and returns each node's hash and audit head of each workspace,
// all taken at one applied index.
func (c *tcluster) convergeState(workspaces []string, d time.Duration) (map[string]map[uint64]httpapi.WorkspaceHash, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_, lst := c.leader(d)
		ok := true
		for _, n := range c.nodes {
			st, err := c.status(n)
			if err != nil || st.Applied != lst.Commit || st.Applied != st.Commit {
				ok = false
			}
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		out := map[string]map[uint64]httpapi.WorkspaceHash{}
		applied := map[uint64]bool{}
		for _, ws := range workspaces {
			out[ws] = map[uint64]httpapi.WorkspaceHash{}
			for _, n := range c.nodes {
				h, err := c.workspaceHash(n, ws)
				if err != nil {
					ok = false
					break
				}
				out[ws][n.id] = h
				applied[h.Applied] = true
			}
		}
		if ok && len(applied) == 1 {
			return out, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("the nodes did not converge on one applied index within %s", d)
}
