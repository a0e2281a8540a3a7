//go:build e2e

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/internal/figures"
	"github.com/teamflow/teamflow/storage"
)

// TestR7DedicatedMove is R7: a workspace moves into a dedicated store (its
// own raft group on the same three nodes) while clients write to it and to
// a shared workspace on every node. Writes refused during the move (503
// workspace_moving) are retried by the clients. Then: no acknowledged
// write is lost in either workspace and each is readable on every node;
// the workspace's keys are gone from a node's shared store (checked on
// disk after a kill -9); search finds a task created after the move; the
// killed node reopens the group on restart and every node converges
// (per-store hashes at equal indexes).
func TestR7DedicatedMove(t *testing.T) {
	seed := figures.Seed(t)
	c := newCluster(t, 3, "--min-index-wait", "10s")
	hc := &http.Client{Timeout: 15 * time.Second}
	bg := context.Background()

	type space struct {
		slug, token, project string
		mu                   sync.Mutex
		acked                map[string]string // task ID -> title
	}
	spaces := []*space{{slug: "r7ded"}, {slug: "r7shared"}}
	for _, sp := range spaces {
		sp.acked = map[string]string{}
		cl := newClient(t, c.nodes[0].URL())
		m := want(t, cl.do("POST", "/api/v1/signup", map[string]any{"workspace_name": strings.ToUpper(sp.slug), "workspace_slug": sp.slug,
			"name": "Owner", "email": "owner@" + sp.slug + ".test", "password": "password-" + sp.slug}), 201, "signup")
		cl.token = m["access_token"].(string)
		sp.token = cl.token
		sp.project = want(t, cl.do("POST", "/api/v1/projects", map[string]any{"name": "R7"}), 201, "project")["id"].(string)
	}
	ded := spaces[0]
	opCall := func(n *cnode, method, path string, body any) (int, []byte) {
		status, _, b, _, err := call(bg, &http.Client{Timeout: 3 * time.Minute}, method, n.URL()+path, c.opTok, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return status, b
	}

	// Not on the free plan.
	if status, b := opCall(c.nodes[1], "POST", "/api/v1/platform/workspaces/r7ded/dedicate", map[string]any{}); status != http.StatusForbidden || problemCode(b) != "plan_feature_unavailable" {
		t.Fatalf("dedicate on the free plan: %d %s", status, b)
	}
	if status, b := opCall(c.nodes[0], "PUT", "/api/v1/platform/workspaces/r7ded/plan", map[string]any{"plan": "enterprise"}); status != 200 {
		t.Fatalf("set plan: %d %s", status, b)
	}

	// Clients: two per workspace, each going round the nodes.
	var refused503, unknown, writes atomic.Int64
	ctx, stop := context.WithCancel(bg)
	var wg sync.WaitGroup
	for ci := range 4 {
		sp := spaces[ci%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				title := fmt.Sprintf("%s-c%d-t%d", sp.slug, ci, i)
				n := c.nodes[(ci+i)%len(c.nodes)]
				for ctx.Err() == nil {
					status, h, b, _, err := call(bg, hc, "POST", n.URL()+"/api/v1/projects/"+sp.project+"/tasks", sp.token, map[string]any{"title": title})
					if err == nil && status == 201 {
						var task struct {
							ID string `json:"id"`
						}
						json.Unmarshal(b, &task)
						sp.mu.Lock()
						sp.acked[task.ID] = title
						sp.mu.Unlock()
						writes.Add(1)
						break
					}
					if err == nil && status == 503 && problemCode(b) == "workspace_moving" {
						if h.Get("Retry-After") == "" {
							t.Errorf("workspace_moving without Retry-After")
						}
						refused503.Add(1)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					// Anything else: the outcome is unknown; not counted as
					// acknowledged, and a new title is used.
					unknown.Add(1)
					t.Logf("client %d: %d %v %s", ci, status, err, b)
					time.Sleep(100 * time.Millisecond)
					break
				}
			}
		}()
	}

	// Traffic before the move: until the clients have 40 acknowledged
	// writes between them.
	eventually(t, 30*time.Second, func() bool { return writes.Load() >= 40 }, "40 acknowledged writes before the move")
	before := writes.Load()
	moveStart := time.Now()
	out, err := c.cli("workspace", "dedicate", "r7ded", "--server", c.nodes[1].URL())
	moveMs := time.Since(moveStart).Milliseconds()
	if err != nil {
		stop()
		wg.Wait()
		t.Fatalf("teamflow workspace dedicate: %v\n%s", err, out)
	}
	t.Logf("moved after %d writes in %d ms: %s", before, moveMs, strings.TrimSpace(out))
	var st httpapi.DedicateStatus
	if status, b := opCall(c.nodes[2], "POST", "/api/v1/platform/workspaces/r7ded/dedicate", map[string]any{}); status != 200 || json.Unmarshal(b, &st) != nil || st.State != "dedicated" {
		t.Fatalf("dedicate again (resume finds it done): %d %s", status, b)
	}
	tenant, group := st.Workspace, st.Group
	if status, b := opCall(c.nodes[0], "POST", "/api/v1/platform/workspaces/r7ded/dedicate", map[string]any{"abort": true}); status != http.StatusConflict || problemCode(b) != "move_flipped" {
		t.Errorf("abort after the flip: %d %s", status, b)
	}
	// And after it: 40 more, some of them to the dedicated workspace's group.
	moved := writes.Load()
	eventually(t, 30*time.Second, func() bool { return writes.Load() >= moved+40 }, "40 acknowledged writes after the move")
	stop()
	wg.Wait()
	afterMove := writes.Load() - before

	// The move is in the workspace's audit trail: the request (copied
	// into the group) and the outcome (written in it).
	phases := map[string]int{}
	status, b := opCall(c.nodes[1], "GET", "/api/v1/platform/workspaces/r7ded/audit", nil)
	var trail struct {
		Entries []struct {
			Payload []byte `json:"payload"`
		} `json:"entries"`
	}
	if status != 200 || json.Unmarshal(b, &trail) != nil {
		t.Fatalf("audit trail: %d %.300s", status, b)
	}
	for _, e := range trail.Entries {
		var entry struct {
			Action string `json:"action"`
			Detail struct {
				Phase string `json:"phase"`
			} `json:"detail"`
		}
		if json.Unmarshal(e.Payload, &entry) == nil && entry.Action == "platform.workspace_dedicate" {
			phases[entry.Detail.Phase]++
		}
	}
	// Two calls: the move, and the one that found it done.
	if phases["requested"] != 2 || phases["done"] != 2 {
		t.Errorf("the move in the audit trail: %v", phases)
	}

	// Membership changes go through, and the group follows them on every
	// node: a learner (never started) is added and removed again.
	r7GroupFollows(t, c, group, opCall)
	backupOK := r7Backup(t, c, opCall, ded.slug, spaces[1].slug)

	// Every acknowledged write, on every node (read-your-writes through
	// a linearizable read).
	lost := 0
	readAll := func(what string) {
		for _, sp := range spaces {
			for id, title := range sp.acked {
				for _, n := range c.nodes {
					status, _, b, _, err := call(bg, hc, "GET", n.URL()+"/api/v1/tasks/"+id, sp.token, nil, "TeamFlow-Consistency", "linearizable")
					var task struct {
						Title string `json:"title"`
					}
					if err != nil || status != 200 || json.Unmarshal(b, &task) != nil || task.Title != title {
						lost++
						t.Errorf("%s: task %s (%s) of %s on node %d: %d %v %s", what, id, title, sp.slug, n.id, status, err, b)
					}
				}
			}
		}
	}
	readAll("after the move")

	// Search finds a task created after the move, on every node.
	cl := newClient(t, c.nodes[0].URL())
	cl.token = ded.token
	afterID := want(t, cl.do("POST", "/api/v1/projects/"+ded.project+"/tasks", map[string]any{"title": "zebracorn after the move"}), 201, "task after the move")["id"].(string)
	ded.acked[afterID] = "zebracorn after the move"
	searchFound := 0
	for _, n := range c.nodes {
		ok := poll(30*time.Second, func() bool {
			status, _, b, _, err := call(bg, hc, "GET", n.URL()+"/api/v1/search?q=zebracorn", ded.token, nil)
			return err == nil && status == 200 && strings.Contains(string(b), afterID)
		})
		if ok {
			searchFound++
		} else {
			t.Errorf("node %d: search did not find the task created after the move", n.id)
		}
	}

	// kill -9 a node; its shared store no longer holds the workspace, its
	// group's store does.
	victim := c.nodes[2]
	c.kill(victim)
	keysLeft := countTenantKeys(t, filepath.Join(victim.dir, stateDir), tenant)
	groupKeys := countTenantKeys(t, filepath.Join(victim.dir, groupsDir, strconv.FormatUint(group, 10), stateDir), tenant)
	if keysLeft != 0 || groupKeys == 0 {
		t.Errorf("node %d on disk: %d keys of the workspace left in the shared store, %d in group %d's", victim.id, keysLeft, groupKeys, group)
	}
	// A write while it is down, then restart: it reopens the group.
	extraID := want(t, cl.do("POST", "/api/v1/projects/"+ded.project+"/tasks", map[string]any{"title": "written while node 3 was down"}), 201, "task while down")["id"].(string)
	ded.acked[extraID] = "written while node 3 was down"
	if err := c.launch(victim, "--peers", c.peers); err != nil {
		t.Fatal(err)
	}
	c.waitReady(victim, 60*time.Second)
	converged := r7Converge(t, c, []string{"r7ded", "r7shared"}, 60*time.Second)
	readAll("after the restart")

	t.Logf("writes=%d (after the move %d) refused_503=%d unknown=%d move_ms=%d group=%d keys in group store=%d",
		writes.Load(), afterMove, refused503.Load(), unknown.Load(), moveMs, group, groupKeys)
	figures.Report(t, "R7", seed, []figures.Figure{
		figures.Eq("acked_lost", float64(lost), 0),
		figures.Eq("shared_store_keys_left", float64(keysLeft), 0),
		figures.Eq("nodes_converged", float64(converged), 3),
		figures.Eq("search_found_nodes", float64(searchFound), 3),
		figures.Le("move_ms", float64(moveMs), 30000),
		figures.Guard("acked_writes", float64(writes.Load()), 20),
		figures.Guard("acked_after_move", float64(afterMove), 4),
		figures.Guard("refused_503", float64(refused503.Load()), 0),
		figures.Eq("backup_restored_ok", float64(backupOK), 1),
	})
}

// r7Backup takes a whole backup from node 1 through the platform API and
// restores it into a store in this process: the stream verifies, and each
// workspace of slugs (the dedicated one read from its group) hashes there
// as node 1 reports it. A background write between the backup and the
// hash would differ: the backup is taken again until the deadline.
// Answers 1 when they matched.
func r7Backup(t *testing.T, c *tcluster, opCall func(*cnode, string, string, any) (int, []byte), slugs ...string) int {
	t.Helper()
	n := c.nodes[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := opCall(n, "GET", "/api/v1/platform/backup", nil)
		if status != http.StatusOK {
			t.Errorf("backup with a dedicated group: %d %.300s", status, body)
			return 0
		}
		idx, err := storage.VerifySnapshot(bytes.NewReader(body))
		if err != nil {
			t.Errorf("the backup stream does not verify: %v", err)
			return 0
		}
		st, err := storage.Open(t.TempDir(), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = st.InstallSnapshot(bytes.NewReader(body), idx)
		var diffs []string
		for _, slug := range slugs {
			if err != nil {
				break
			}
			var h httpapi.WorkspaceHash
			if h, err = c.workspaceHash(n, slug); err != nil {
				break
			}
			got, herr := st.TenantHash(h.Workspace)
			if err = herr; err == nil && httpapi.HexHash(got) != h.Hash {
				diffs = append(diffs, fmt.Sprintf("%s: restored %x, node %d %s", slug, got, n.id, h.Hash))
			}
		}
		st.Close()
		switch {
		case err != nil:
			t.Errorf("restore the backup in process: %v", err)
			return 0
		case len(diffs) == 0:
			return 1
		case time.Now().After(deadline):
			t.Errorf("the restored backup differs: %v", diffs)
			return 0
		}
	}
}

// r7GroupFollows adds node 4 (never started) to the shared group as a
// learner and removes it again, and waits until group on every node has
// had it as a learner and then removed it (an ID enters a group's removed
// list only if the group had it), with the three voters left.
func r7GroupFollows(t *testing.T, c *tcluster, group uint64, opCall func(n *cnode, method, path string, body any) (int, []byte)) {
	t.Helper()
	groupOn := func(n *cnode) (voters, learners, removed []uint64, ok bool) {
		st, err := c.status(n)
		if err != nil {
			return nil, nil, nil, false
		}
		for _, g := range st.Groups {
			if g.ID != group {
				continue
			}
			for _, m := range g.Members {
				if m.Learner {
					learners = append(learners, m.ID)
				} else {
					voters = append(voters, m.ID)
				}
			}
			slices.Sort(voters)
			return voters, learners, g.Removed, true
		}
		return nil, nil, nil, false
	}
	everywhere := func(what string, cond func(voters, learners, removed []uint64) bool) {
		t.Helper()
		eventually(t, 10*time.Second, func() bool {
			for _, n := range c.nodes {
				v, l, r, ok := groupOn(n)
				if !ok || !cond(v, l, r) {
					return false
				}
			}
			return true
		}, what)
	}
	start := time.Now()
	ld, _ := c.leader(10 * time.Second)
	if status, b := opCall(ld, "POST", "/api/v1/platform/cluster/members", map[string]any{"id": 4, "raft_addr": "127.0.0.1:1"}); status != http.StatusCreated {
		t.Fatalf("add learner 4 with a dedicated group: %d %s", status, b)
	}
	everywhere("group follows the join: learner 4", func(_, l, _ []uint64) bool { return slices.Equal(l, []uint64{4}) })
	ld, _ = c.leader(10 * time.Second)
	if status, b := opCall(ld, "DELETE", "/api/v1/platform/cluster/members/4", nil); status != http.StatusOK {
		t.Fatalf("remove learner 4 with a dedicated group: %d %s", status, b)
	}
	everywhere("group follows the removal: voters 1,2,3, 4 removed", func(v, l, r []uint64) bool {
		return slices.Equal(v, []uint64{1, 2, 3}) && len(l) == 0 && slices.Equal(r, []uint64{4})
	})
	t.Logf("group %d followed a join and a removal in %s", group, time.Since(start).Round(time.Millisecond))
}

// countTenantKeys opens a store of a stopped node and counts the tenant's
// records.
func countTenantKeys(t *testing.T, dir, tenant string) int {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("%s: %v", dir, err)
		return -1
	}
	st, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer st.Close()
	n := 0
	if err := st.Tenant(tenant).Scan(nil, storage.ScanOptions{}, func(storage.Key, storage.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// r7Converge waits until, for each workspace, every node reports its hash
// at one applied index (the shared group's, or the dedicated group's), and
// answers how many nodes agree with node 1 on every workspace.
func r7Converge(t *testing.T, c *tcluster, slugs []string, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		agree := map[uint64]int{}
		settled := true
		for _, ws := range slugs {
			byNode := map[uint64]httpapi.WorkspaceHash{}
			for _, n := range c.nodes {
				h, err := c.workspaceHash(n, ws)
				if err != nil {
					settled = false
					break
				}
				byNode[n.id] = h
			}
			if !settled {
				break
			}
			ref := byNode[1]
			for id, h := range byNode {
				if h.Applied != ref.Applied {
					settled = false
				}
				if h.Hash == ref.Hash && h.AuditHeadHash == ref.AuditHeadHash {
					agree[id]++
				}
			}
		}
		if settled {
			n := 0
			for _, k := range agree {
				if k == len(slugs) {
					n++
				}
			}
			if n != len(c.nodes) {
				t.Errorf("hashes differ at equal indexes: %v", agree)
			}
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the nodes did not converge within %s", d)
	return 0
}
