//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/teamflow/teamflow/httpapi"
	"github.com/teamflow/teamflow/internal/figures"
)

// A cluster of real `teamflow serve` processes on loopback, with mutual
// TLS from `teamflow cluster certs`, for the fault tests (RELIABILITY R1,
// R6, A9) and the operator commands.

type cnode struct {
	id       uint64
	dir      string
	raftAddr string
	netns    string   // network namespace the process runs in (R2); "" for the root one
	env      []string // added to the process's environment at its next launch

	mu  sync.Mutex
	srv *server // nil while down
	url string
}

// URL is the node's current HTTP address ("" while it is down).
func (n *cnode) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.url
}

type tcluster struct {
	t      *testing.T
	certs  string
	peers  string
	extra  []string
	nodes  []*cnode
	opTok  string
	client *http.Client
}

// freePort returns a loopback address for a node's raft listener, which
// must stay the node's across restarts. It is taken below Linux's ephemeral
// range (32768 and up): a port from that range, free while its node is
// down, can become the local end of any outgoing connection (a client's,
// a peer's dial) and make the restarted node's bind fail.
func freePort(t *testing.T) string {
	t.Helper()
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// newCluster starts size nodes (IDs 1..size) and waits until every one is
// ready and the operator token has been written by one of them.
func newCluster(t *testing.T, size int, extra ...string) *tcluster {
	t.Helper()
	root := t.TempDir()
	c := &tcluster{t: t, certs: filepath.Join(root, "certs"), extra: extra, client: &http.Client{Timeout: 20 * time.Second}}
	names := []string{}
	for i := 1; i <= size+1; i++ { // one spare certificate for a member added later
		names = append(names, fmt.Sprintf("node%d", i))
	}
	if out, err := exec.Command(binary, append([]string{"cluster", "certs", "--dir", c.certs}, names...)...).CombinedOutput(); err != nil {
		t.Fatalf("cluster certs: %v\n%s", err, out)
	}
	var peers []string
	for i := 1; i <= size; i++ {
		n := &cnode{id: uint64(i), dir: filepath.Join(root, fmt.Sprintf("n%d", i)), raftAddr: freePort(t)}
		c.nodes = append(c.nodes, n)
		peers = append(peers, fmt.Sprintf("%d=%s", i, n.raftAddr))
	}
	c.peers = strings.Join(peers, ",")
	for _, n := range c.nodes {
		if err := c.launch(n, "--peers", c.peers); err != nil {
			t.Fatal(err)
		}
	}
	c.awaitStarted(t)
	return c
}

// awaitStarted waits for every node to be ready and reads the operator
// token the bootstrapping node wrote.
func (c *tcluster) awaitStarted(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		c.waitReady(n, 60*time.Second)
	}
	eventually(t, 30*time.Second, func() bool {
		for _, n := range c.nodes {
			if b, err := os.ReadFile(filepath.Join(n.dir, operatorTokenFile)); err == nil {
				c.opTok = strings.TrimSpace(string(b))
				return true
			}
		}
		return false
	}, "operator token written by one node")
}

// launch starts node n's process (restarts reuse its data directory and
// raft address) without waiting for it to be ready.
func (c *tcluster) launch(n *cnode, args ...string) error {
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", n.dir, "--log-level", "warn", "--mode", "cloud", "--rate-limits", "off",
		"--node-id", strconv.FormatUint(n.id, 10), "--raft-addr", n.raftAddr, "--cluster-cert-dir", c.certs}, c.extra...)
	all = append(all, args...)
	s := &server{t: c.t, Data: n.dir, exited: make(chan error, 1)}
	s.cmd = exec.Command(binary, all...)
	if n.netns != "" { // `ip netns exec` execs the binary: the PID is the node's
		s.cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, binary}, all...)...)
	}
	if len(n.env) > 0 {
		s.cmd.Env = append(os.Environ(), n.env...)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, "stderr.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cmd.Stderr = logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stdout.WriteString(line + "\n")
			s.mu.Unlock()
			if m := baseURLRE.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
	}()
	go func() { s.exited <- s.cmd.Wait(); logf.Close() }()
	select {
	case u := <-urlc:
		s.URL = u
	case err := <-s.exited:
		s.exited <- err
		return fmt.Errorf("node %d exited before serving: %v\n%s", n.id, err, tail(filepath.Join(n.dir, "stderr.log")))
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("node %d did not serve within 60s", n.id)
	}
	c.t.Cleanup(func() { s.Stop() })
	n.mu.Lock()
	n.srv, n.url = s, s.URL
	n.mu.Unlock()
	return nil
}

// restart starts node n again (it is down) and waits until it is ready
// and has applied the leader's commit index as of then.
func (c *tcluster) restart(n *cnode) {
	c.t.Helper()
	if err := c.launch(n, "--peers", c.peers); err != nil {
		c.t.Fatal(err)
	}
	c.waitReady(n, 90*time.Second)
	_, lst := c.leader(60 * time.Second)
	eventually(c.t, 90*time.Second, func() bool {
		st, err := c.status(n)
		return err == nil && st.Applied >= lst.Commit
	}, fmt.Sprintf("node %d caught up", n.id))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill is kill -9 of node n.
func (c *tcluster) kill(n *cnode) {
	n.mu.Lock()
	s := n.srv
	n.srv, n.url = nil, ""
	n.mu.Unlock()
	if s != nil {
		s.Kill()
	}
}

func (c *tcluster) waitReady(n *cnode, d time.Duration) {
	c.t.Helper()
	eventually(c.t, d, func() bool {
		u := n.URL()
		if u == "" {
			return false
		}
		resp, err := c.client.Get(u + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, fmt.Sprintf("node %d ready", n.id))
}

type nodeStatus struct {
	Mode       string            `json:"mode"`
	NodeID     uint64            `json:"node_id"`
	State      string            `json:"state"`
	Leader     uint64            `json:"leader"`
	Term       uint64            `json:"term"`
	Commit     uint64            `json:"commit"`
	Applied    uint64            `json:"applied"`
	FirstIndex uint64            `json:"first_index"`
	LastIndex  uint64            `json:"last_index"`
	Ready      bool              `json:"ready"`
	Stats      map[string]uint64 `json:"stats"`
	Members    []struct {
		ID      uint64 `json:"id"`
		Learner bool   `json:"learner"`
	} `json:"members"`
	Removed []uint64 `json:"removed"`
	Groups  []struct {
		ID      uint64 `json:"id"`
		Members []struct {
			ID      uint64 `json:"id"`
			Learner bool   `json:"learner"`
		} `json:"members"`
		Removed []uint64 `json:"removed"`
	} `json:"groups"`
}

// workspaceHash reads a workspace's replica hash (keyspace and audit
// head, at the node's applied index) from node n.
func (c *tcluster) workspaceHash(n *cnode, ws string) (httpapi.WorkspaceHash, error) {
	var h httpapi.WorkspaceHash
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.op(ctx, n, http.MethodGet, "/api/v1/platform/workspaces/"+ws+"/hash", &h)
	return h, err
}

// op is one operator call; it returns the status and the body.
func (c *tcluster) op(ctx context.Context, n *cnode, method, path string, out any) (int, error) {
	u := n.URL()
	if u == "" {
		return 0, errors.New("node down")
	}
	req, err := http.NewRequestWithContext(ctx, method, u+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.opTok)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func (c *tcluster) status(n *cnode) (*nodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st nodeStatus
	if _, err := c.op(ctx, n, http.MethodGet, "/api/v1/platform/cluster", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// leader polls the live nodes until one of them leads (and reports it).
func (c *tcluster) leader(d time.Duration) (*cnode, *nodeStatus) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if st, err := c.status(n); err == nil && st.State == "leader" {
				return n, st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", d)
	return nil, nil
}

// converge is convergeState with the workspace hashes alone.
func (c *tcluster) converge(workspaces []string, d time.Duration) (map[string]map[uint64]string, error) {
	states, err := c.convergeState(workspaces, d)
	if err != nil {
		return nil, err
	}
	out := map[string]map[uint64]string{}
	for ws, byNode := range states {
		out[ws] = map[uint64]string{}
		for id, h := range byNode {
			out[ws][id] = h.Hash
		}
	}
	return out, nil
}

// call is one API request of a test client: status, headers and body, or
// sent=false when the connection could not be made (the request certainly
// did not reach a server).
func call(ctx context.Context, hc *http.Client, method, u, token string, body any, headers ...string) (status int, h http.Header, b []byte, sent bool, err error) {
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return 0, nil, nil, false, err
		}
		return 0, nil, nil, true, err
	}
	defer resp.Body.Close()
	b, err = io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, true, err
}

func etagVersion(h http.Header) uint64 {
	v, _ := strconv.ParseUint(strings.Trim(h.Get("ETag"), `"`), 10, 64)
	return v
}

func problemCode(b []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Code
}

// TestClusterOperations covers the operator's side on a live 3-node
// cluster: a token issued on one node works on the others (A9, the
// replicated signing key), `teamflow cluster status|join|leave`, an
// online `teamflow backup` and `teamflow restore` into a new single node
// and into the first node of a new cluster, with the same workspace hash.
func TestClusterOperations(t *testing.T) {
	c := newCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	// A9: sign up on node 1; its access token works on 2 and 3 (at the
	// signup's index, via TeamFlow-Min-Index).
	hc := &http.Client{Timeout: 20 * time.Second}
	ctx := context.Background()
	status, h, b, _, err := call(ctx, hc, "POST", n1.URL()+"/api/v1/signup", "", map[string]any{
		"workspace_name": "Ops", "workspace_slug": "ops", "name": "Olga", "email": "olga@ops.test", "password": "password-ops"})
	if err != nil || status != 201 {
		t.Fatalf("signup: %d %v %s", status, err, b)
	}
	var su struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(b, &su)
	idx := h.Get("TeamFlow-Applied-Index")
	rejected := 0
	for _, n := range []*cnode{n2, n3} {
		status, _, b, _, _ := call(ctx, hc, "GET", n.URL()+"/api/v1/me", su.AccessToken, nil, "TeamFlow-Min-Index", idx)
		if status != 200 {
			rejected++
			t.Errorf("node %d refused node 1's token: %d %s", n.id, status, b)
		}
	}
	status, _, b, _, _ = call(ctx, hc, "POST", n2.URL()+"/api/v1/projects", su.AccessToken, map[string]any{"name": "Written on node 2"})
	if status != 201 {
		t.Fatalf("write on a follower: %d %s", status, b)
	}
	var proj struct {
		ID string `json:"id"`
	}
	json.Unmarshal(b, &proj)
	// A linearizable read on node 3 sees the write made on node 2.
	status, _, b, _, _ = call(ctx, hc, "GET", n3.URL()+"/api/v1/projects/"+proj.ID, su.AccessToken, nil, "TeamFlow-Consistency", "linearizable")
	if status != 200 {
		rejected++
		t.Errorf("linearizable read on node 3 of a write on node 2: %d %s", status, b)
	}

	// teamflow cluster status / join / leave, through the CLI.
	servers := c.servers()
	cli := c.cli
	out, err := cli("cluster", "status", "--server", servers)
	if err != nil || strings.Count(out, "voter") != 3 || !strings.Contains(out, "leader") {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}
	n4 := &cnode{id: 4, dir: filepath.Join(filepath.Dir(n1.dir), "n4"), raftAddr: freePort(t)}
	c.nodes = append(c.nodes, n4)
	// The new node names only node 1 as a peer; it learns the others.
	if err := c.launch(n4, "--join", "--peers", "1="+n1.raftAddr); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("cluster", "join", "4", n4.raftAddr, "--server", servers, "--timeout", "2m"); err != nil || !strings.Contains(out, "is a voter") {
		t.Fatalf("cluster join: %v\n%s", err, out)
	}
	c.waitReady(n4, 60*time.Second)
	status, _, b, _, _ = call(ctx, hc, "GET", n4.URL()+"/api/v1/projects/"+proj.ID, su.AccessToken, nil, "TeamFlow-Consistency", "linearizable")
	if status != 200 {
		t.Fatalf("read on the joined node: %d %s", status, b)
	}
	if out, err := cli("cluster", "leave", "4", "--server", servers); err != nil {
		t.Fatalf("cluster leave: %v\n%s", err, out)
	}
	reused := 0
	if out, err := cli("cluster", "join", "4", n4.raftAddr, "--server", servers, "--timeout", "20s"); err == nil || !strings.Contains(out, "node_id_removed") {
		reused++
		t.Errorf("a removed ID was accepted again: %v\n%s", err, out)
	}
	c.kill(n4)
	c.nodes = c.nodes[:3]

	// Backup from a follower, under no load, and restore twice.
	_, lst := c.leader(30 * time.Second)
	var follower *cnode
	for _, n := range c.nodes {
		if n.id != lst.NodeID {
			follower = n
		}
	}
	file := filepath.Join(t.TempDir(), "ops.tfbackup")
	if out, err := cli("backup", "--out", file, "--server", follower.URL()); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	hashes, err := c.converge([]string{"ops"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	source := hashes["ops"][1]
	mismatch := 0
	for _, mode := range []string{"single", "cluster"} {
		dir := filepath.Join(t.TempDir(), mode)
		args := []string{"restore", "--from", file, "--data", dir}
		raftAddr := freePort(t)
		if mode == "cluster" {
			args = append(args, "--node-id", "1", "--raft-addr", raftAddr)
		}
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
			t.Fatalf("restore (%s): %v\n%s", mode, err, out)
		}
		var s *server
		if mode == "single" {
			s = start(t, dir, "--mode", "cloud")
		} else {
			s = start(t, dir, "--mode", "cloud", "--node-id", "1", "--peers", "1="+raftAddr, "--cluster-cert-dir", c.certs)
		}
		tok, _ := os.ReadFile(filepath.Join(dir, operatorTokenFile))
		status, _, b, _, _ := call(ctx, hc, "GET", s.URL+"/api/v1/platform/workspaces/ops/hash", strings.TrimSpace(string(tok)), nil)
		var hh struct {
			Hash string `json:"hash"`
		}
		json.Unmarshal(b, &hh)
		if status != 200 || hh.Hash != source {
			mismatch++
			t.Errorf("restored %s node: hash %q (%d), source %q", mode, hh.Hash, status, source)
		}
		// The restored data serves: sign in, read the project, write.
		cl := newClient(t, s.URL)
		m := want(t, cl.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "ops", "email": "olga@ops.test", "password": "password-ops"}), 200, "login on restored "+mode)
		cl.token = m["access_token"].(string)
		want(t, cl.do("GET", "/api/v1/projects/"+proj.ID, nil), 200, "restored project")
		want(t, cl.do("POST", "/api/v1/projects/"+proj.ID+"/tasks", map[string]any{"title": "after restore"}), 201, "write after restore")
	}
	figures.Report(t, "A9", 0, []figures.Figure{
		figures.Eq("foreign_node_token_rejected", float64(rejected), 0),
		figures.Eq("node_id_reuse_accepted", float64(reused), 0),
		figures.Eq("restored_hash_mismatch", float64(mismatch), 0),
	})
}

// cli runs an operator command of the teamflow binary with the operator's
// token and answers its combined output.
func (c *tcluster) cli(args ...string) (string, error) {
	out, err := exec.Command(binary, append(args, "--token", c.opTok)...).CombinedOutput()
	return string(out), err
}

// servers lists the live nodes' URLs for an operator command's --server.
func (c *tcluster) servers() string {
	var us []string
	for _, n := range c.nodes {
		if u := n.URL(); u != "" {
			us = append(us, u)
		}
	}
	return strings.Join(us, ",")
}

// pauseResume stops a node with SIGSTOP (the leader, or a follower) and,
// once the others have shown they go on without it (more writes
// acknowledged and, for the leader, a new leader among the others),
// resumes it with SIGCONT and waits until it has caught up. It answers 1
// for stalled when the cluster made no progress during the pause, and 1
// for stale when a resumed leader did not learn the newer term (a minority
// that went on believing it leads could acknowledge what is then lost).
func (c *tcluster) pauseResume(rng *rand.Rand, leader bool, acked func() int64) (stalled, stale int) {
	t := c.t
	t.Helper()
	ld, lst := c.leader(60 * time.Second)
	victim, which := ld, "leader"
	if !leader {
		victim, which = c.randomFollower(rng, lst.NodeID), "follower"
	}
	victim.mu.Lock()
	s := victim.srv
	victim.mu.Unlock()
	t.Logf("SIGSTOP %s node %d (term %d)", which, victim.id, lst.Term)
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP node %d: %v", victim.id, err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	base := acked()
	progressed := func() bool {
		if acked() < base+10 {
			return false
		}
		if !leader {
			return true
		}
		for _, n := range c.nodes {
			if n == victim {
				continue
			}
			if st, err := c.status(n); err == nil && st.State == "leader" && st.Term > lst.Term {
				return true
			}
		}
		return false
	}
	if !poll(30*time.Second, progressed) {
		stalled = 1
		t.Errorf("no progress within 30s while %s node %d was stopped", which, victim.id)
	}
	resume()
	if leader && !poll(30*time.Second, func() bool {
		st, err := c.status(victim)
		return err == nil && st.Term > lst.Term
	}) {
		stale = 1
		t.Errorf("node %d, resumed after leading term %d, did not learn a newer term within 30s", victim.id, lst.Term)
	}
	_, lst = c.leader(60 * time.Second)
	eventually(t, 90*time.Second, func() bool {
		st, err := c.status(victim)
		return err == nil && st.Applied >= lst.Commit
	}, fmt.Sprintf("node %d caught up after the pause", victim.id))
	return stalled, stale
}

// joinAndLeave adds node id to the running cluster with `teamflow cluster
// join` (a learner, promoted once caught up) and removes it again with
// `cluster leave`; it answers how many of the two changes succeeded.
func (c *tcluster) joinAndLeave(id uint64) int {
	t := c.t
	t.Helper()
	ld, _ := c.leader(60 * time.Second)
	n := &cnode{id: id, dir: filepath.Join(filepath.Dir(c.nodes[0].dir), fmt.Sprintf("n%d", id)), raftAddr: freePort(t)}
	if err := c.launch(n, "--join", "--peers", fmt.Sprintf("%d=%s", ld.id, ld.raftAddr)); err != nil {
		t.Fatal(err)
	}
	defer c.kill(n)
	sid := strconv.FormatUint(id, 10)
	t.Logf("cluster join %s under load", sid)
	if out, err := c.cli("cluster", "join", sid, n.raftAddr, "--server", c.servers(), "--timeout", "2m"); err != nil || !strings.Contains(out, "is a voter") {
		t.Errorf("cluster join under load: %v\n%s", err, out)
		return 0
	}
	c.waitReady(n, 60*time.Second)
	if out, err := c.cli("cluster", "leave", sid, "--server", c.servers()); err != nil {
		t.Errorf("cluster leave under load: %v\n%s", err, out)
		return 1
	}
	return 2
}

// randomFollower picks a live node that is not the leader.
func (c *tcluster) randomFollower(rng *rand.Rand, leader uint64) *cnode {
	var fs []*cnode
	for _, n := range c.nodes {
		if n.id != leader && n.URL() != "" {
			fs = append(fs, n)
		}
	}
	return fs[rng.IntN(len(fs))]
}
