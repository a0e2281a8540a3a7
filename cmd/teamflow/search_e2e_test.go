//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSearchIndexLifecycle drives search through the real binary: the
// index is fed from applied commands, `teamflow index rebuild` rebuilds it
// while the API serves, a node whose index was deleted rebuilds it from the
// store at start (serving meanwhile), and one killed with -9 catches up.
func TestSearchIndexLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	c := signup(t, s, "acme")
	pid := want(t, c.do("POST", "/api/v1/projects", map[string]any{"name": "Web", "key": "WEB"}), 201, "project")["id"].(string)
	var tasks []string
	for i := range 12 {
		tk := want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("Pelican migration step %d", i)}), 201, "task")
		tasks = append(tasks, tk["id"].(string))
	}
	slices.Sort(tasks)
	hits := func() []string {
		r := c.do("GET", "/api/v1/search?q=pelican&limit=100", nil)
		if r.Status != 200 {
			if r.Status != 503 || r.Header.Get("Retry-After") == "" {
				t.Fatalf("search: %d %s", r.Status, r.Body)
			}
			return nil // being rebuilt: the API answers, search asks to retry
		}
		var out []string
		for _, it := range r.m(t)["items"].([]any) {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		slices.Sort(out)
		return out
	}
	all := func() bool { return slices.Equal(hits(), tasks) }
	eventually(t, 10*time.Second, all, "search finds every task")

	out, err := exec.Command(binary, "index", "rebuild", "--workspace", "acme", "--server", s.URL, "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "workspace acme: rebuilt") {
		t.Fatalf("index rebuild: %v\n%s", err, out)
	}
	if !all() {
		t.Fatalf("after rebuild: %v", hits())
	}
	out, err = exec.Command(binary, "index", "rebuild", "--server", s.URL, "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "workspace acme: rebuilt") {
		t.Fatalf("index rebuild (all): %v\n%s", err, out)
	}

	// Index deleted while stopped: rebuilt from the store at start.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir, "--mode", "cloud")
	c.base = s.URL
	eventually(t, 30*time.Second, all, "search after the index was deleted")

	// Writes, then kill -9: the restarted node's index catches up.
	for i := range 5 {
		tk := want(t, c.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprintf("Pelican rollout %d", i)}), 201, "task")
		tasks = append(tasks, tk["id"].(string))
	}
	slices.Sort(tasks)
	s.Kill()
	s = start(t, dir, "--mode", "cloud")
	c.base = s.URL
	eventually(t, 30*time.Second, all, "search after kill -9")
}

// TestSearchOnEveryClusterNode: every member indexes the commands it
// applies, so a task written through one node is found on each of them,
// and `teamflow index rebuild` rebuilds every node's index.
func TestSearchOnEveryClusterNode(t *testing.T) {
	c := newCluster(t, 3)
	hc := &http.Client{Timeout: 20 * time.Second}
	ctx := context.Background()
	n1, n2 := c.nodes[0], c.nodes[1]
	status, _, b, _, err := call(ctx, hc, "POST", n1.URL()+"/api/v1/signup", "", map[string]any{
		"workspace_name": "Ops", "workspace_slug": "ops", "name": "Olga", "email": "olga@ops.test", "password": "password-ops"})
	if err != nil || status != 201 {
		t.Fatalf("signup: %d %v %s", status, err, b)
	}
	var su struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(b, &su)
	tok := su.AccessToken
	var pid, tid string
	eventually(t, 20*time.Second, func() bool {
		status, _, b, _, _ := call(ctx, hc, "POST", n2.URL()+"/api/v1/projects", tok, map[string]any{"name": "Ops"})
		var p struct{ ID string }
		json.Unmarshal(b, &p)
		pid = p.ID
		return status == 201
	}, "project written through node 2")
	status, _, b, _, _ = call(ctx, hc, "POST", n2.URL()+"/api/v1/projects/"+pid+"/tasks", tok, map[string]any{"title": "Albatross failover drill"})
	if status != 201 {
		t.Fatalf("task: %d %s", status, b)
	}
	var tk struct{ ID string }
	json.Unmarshal(b, &tk)
	tid = tk.ID
	found := func(n *cnode) bool {
		status, _, b, _, _ := call(ctx, hc, "GET", n.URL()+"/api/v1/search?q=albatross", tok, nil)
		return status == 200 && strings.Contains(string(b), tid)
	}
	for _, n := range c.nodes {
		eventually(t, 20*time.Second, func() bool { return found(n) }, fmt.Sprintf("search on node %d", n.id))
	}
	var servers []string
	for _, n := range c.nodes {
		servers = append(servers, n.URL())
	}
	out, err := exec.Command(binary, "index", "rebuild", "--server", strings.Join(servers, ","), "--token", c.opTok).CombinedOutput()
	if err != nil || strings.Count(string(out), "workspace ops: rebuilt") != 3 {
		t.Fatalf("index rebuild on every node: %v\n%s", err, out)
	}
	for _, n := range c.nodes {
		if !found(n) {
			t.Errorf("node %d: not found after rebuild", n.id)
		}
	}
}
