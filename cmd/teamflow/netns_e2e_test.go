//go:build e2e

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster"
)

// A network lab for RELIABILITY R2: one network namespace per node, each
// joined by a veth pair to a bridge in the root namespace that holds a
// private /24 (the bridge is .1, node i is .i+1). The test process, in the
// root namespace, reaches every node's API through the bridge. A partition
// is blackhole routes inside the namespaces towards the other side's
// addresses: only traffic between nodes is cut, the test's clients still
// reach every node.
//
// Names carry the test process's PID and a counter, so a leftover of a run
// that could not clean up (killed by a test timeout) never clashes with a
// later run, which also removes such leftovers once their process is gone.

type netLab struct {
	t      *testing.T
	bridge string
	prefix string   // "10.249.X.": the lab's /24
	spaces []string // network namespace of node i+1
	holes  [][2]int // blackhole routes in place: (in node, towards node)
}

var netLabRuns atomic.Int64

// netLabNameRE matches the lab's namespace and bridge names; group 1 is
// the PID of the test process that made them.
var netLabNameRE = regexp.MustCompile(`^(?:r2b|tfr2n-)(\d+)-`)

// newNetLab makes the bridge and a namespace per node, or skips the test
// where network namespaces cannot be made (not root, no `ip`).
func newNetLab(t *testing.T, nodes int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("R2 needs root to make network namespaces (ip netns); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("R2 needs the ip command (iproute2) to make network namespaces; skipped")
	}
	sweepNetLabs(t)
	run := fmt.Sprintf("%d-%d", os.Getpid(), netLabRuns.Add(1))
	l := &netLab{t: t, bridge: "r2b" + run} // interface names have at most 15 bytes
	for i := 1; i <= nodes; i++ {
		l.spaces = append(l.spaces, fmt.Sprintf("tfr2n-%s-%d", run, i))
	}
	if out, err := exec.Command("ip", "netns", "add", l.spaces[0]).CombinedOutput(); err != nil {
		t.Skipf("R2 cannot make a network namespace here (%v: %s); skipped", err, strings.TrimSpace(string(out)))
	}
	// Registered before the nodes start, so it runs after they have
	// stopped (cleanups run last-in first-out), and also after a failure.
	t.Cleanup(l.remove)
	l.prefix = freeSubnet(t)
	l.ip("link", "add", l.bridge, "type", "bridge")
	l.ip("addr", "add", l.prefix+"1/24", "dev", l.bridge)
	l.ip("link", "set", l.bridge, "up")
	for i, ns := range l.spaces {
		if i > 0 {
			l.ip("netns", "add", ns)
		}
		veth := fmt.Sprintf("r2v%s-%d", run, i+1) // the host's end; the node's is its eth0
		l.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("link", "set", veth, "master", l.bridge, "up")
		l.ip("-n", ns, "addr", "add", l.addr(i+1)+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// addr is node id's IP address.
func (l *netLab) addr(id int) string { return l.prefix + strconv.Itoa(id+1) }

// ip runs the ip command and fails the test if it fails.
func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the namespaces (which takes their veth pairs with them)
// and the bridge.
func (l *netLab) remove() {
	for _, ns := range l.spaces {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
		}
	}
	if l.prefix != "" {
		if out, err := exec.Command("ip", "link", "del", l.bridge).CombinedOutput(); err != nil {
			l.t.Logf("cleanup: ip link del %s: %v: %s", l.bridge, err, out)
		}
	}
}

// sweepNetLabs removes the namespaces and bridges of labs whose test
// process is gone.
func sweepNetLabs(t *testing.T) {
	gone := func(name string) bool {
		m := netLabNameRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		return pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	spaces, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(spaces), "\n") {
		if f := strings.Fields(line); len(f) > 0 && gone(f[0]) {
			t.Logf("removing the leftover namespace %s", f[0])
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	bridges, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(bridges), "\n") {
		if f := strings.Fields(line); len(f) > 1 && gone(strings.TrimSuffix(f[1], ":")) {
			name := strings.TrimSuffix(f[1], ":")
			t.Logf("removing the leftover bridge %s", name)
			_ = exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// freeSubnet picks a 10.249.X.0/24 that no address or route of this
// machine uses.
func freeSubnet(t *testing.T) string {
	t.Helper()
	addrs, _ := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	routes, _ := exec.Command("ip", "-4", "route", "show").Output()
	used := string(addrs) + string(routes)
	for i := range 256 {
		p := fmt.Sprintf("10.249.%d.", (os.Getpid()+i)%256)
		if !strings.Contains(used, p) {
			return p
		}
	}
	t.Fatal("no free 10.249.X.0/24 for the R2 bridge")
	return ""
}

// cut blackholes the traffic between every node of a and every node of b
// (node IDs), both ways.
func (l *netLab) cut(a, b []int) {
	l.t.Helper()
	for _, x := range a {
		for _, y := range b {
			for _, h := range [][2]int{{x, y}, {y, x}} {
				l.ip("-n", l.spaces[h[0]-1], "route", "add", "blackhole", l.addr(h[1])+"/32")
				l.holes = append(l.holes, h)
			}
		}
	}
}

// cutBridge is Jepsen's bridge partition, made of the same blackhole routes
// as cut: the nodes of a and the nodes of b cannot reach each other, while
// node via is left alone and still reaches everyone. With five nodes and
// two on each side, {a, via} and {via, b} are two majorities that overlap
// in via only.
func (l *netLab) cutBridge(a []int, via int, b []int) {
	l.t.Helper()
	if slices.Contains(a, via) || slices.Contains(b, via) {
		l.t.Fatalf("cutBridge: node %d is on a side (%v | %v)", via, a, b)
	}
	l.cut(a, b)
}

// heal removes every blackhole route.
func (l *netLab) heal() {
	l.t.Helper()
	for _, h := range l.holes {
		l.ip("-n", l.spaces[h[0]-1], "route", "del", "blackhole", l.addr(h[1])+"/32")
	}
	l.holes = nil
}

// newNetnsCluster starts a cluster like newCluster, one node per namespace
// of lab, each with its HTTP and raft addresses on its namespace's IP, and
// mutual TLS from node certificates issued for those IPs (`teamflow cluster
// certs <ip>...`, as an operator would).
func newNetnsCluster(t *testing.T, lab *netLab, extra ...string) *tcluster {
	t.Helper()
	root := t.TempDir()
	c := &tcluster{t: t, certs: filepath.Join(root, "certs"), extra: extra, client: &http.Client{Timeout: 20 * time.Second}}
	var ips, peers []string
	for i := range lab.spaces {
		ips = append(ips, lab.addr(i+1))
		peers = append(peers, fmt.Sprintf("%d=%s:7001", i+1, ips[i]))
	}
	if out, err := exec.Command(binary, append([]string{"cluster", "certs", "--dir", c.certs}, ips...)...).CombinedOutput(); err != nil {
		t.Fatalf("cluster certs: %v\n%s", err, out)
	}
	c.peers = strings.Join(peers, ",")
	for i, ns := range lab.spaces {
		n := &cnode{id: uint64(i + 1), dir: filepath.Join(root, fmt.Sprintf("n%d", i+1)), raftAddr: ips[i] + ":7001", netns: ns}
		c.nodes = append(c.nodes, n)
		cert, key := cluster.CertFiles(c.certs, ips[i])
		if err := c.launch(n, "--peers", c.peers, "--addr", ips[i]+":0",
			"--cluster-ca", filepath.Join(c.certs, cluster.CAFile), "--cluster-cert", cert, "--cluster-key", key); err != nil {
			t.Fatal(err)
		}
	}
	c.awaitStarted(t)
	return c
}
