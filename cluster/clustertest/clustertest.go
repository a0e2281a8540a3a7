// Package clustertest runs raft clusters of real TeamFlow nodes inside one
// test process: each member has its own Pebble state store and raft log in
// the test's temporary directory, and its own raft endpoint on a loopback
// port, spoken to over HTTP/2 with mutual TLS, as in production. Helpers
// poll with deadlines instead of sleeping.
package clustertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/storage"
)

// Options shape a test cluster. Zero values take the defaults noted.
type Options struct {
	// Nodes is the number of members bootstrapped (default 3).
	Nodes int
	// Tick is the raft tick (default 50 ms; the election timeout is 10
	// ticks). Short enough for quick failovers, long enough not to flap on
	// a loaded machine.
	Tick time.Duration
	// Configure adjusts each node's configuration before it starts.
	Configure func(*cluster.Config)
	// OnOpen is called with each member's store after it is opened and
	// before its node starts (also on restarts), so observers see every
	// entry.
	OnOpen func(m *Member)
	// Logger receives the nodes' logs (default: discarded; set
	// CLUSTERTEST_LOG=1 to print them).
	Logger *slog.Logger
}

// Cluster is a set of in-process members.
type Cluster struct {
	T       testing.TB
	opts    Options
	dir     string
	certDir string

	mu      sync.Mutex
	members map[uint64]*Member
	peers   map[uint64]string
}

// Member is one node: its store, its raft node, its directories and address.
type Member struct {
	ID    uint64
	Addr  string
	Dir   string
	Store *storage.Store
	Node  *cluster.Node

	c      *Cluster
	join   bool
	tls    *tls.Config
	ln     net.Listener
	gate   *gate
	closed bool
}

// New bootstraps a cluster of opts.Nodes members and waits until it has a
// leader. Everything is closed when the test ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Tick <= 0 {
		opts.Tick = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		if os.Getenv("CLUSTERTEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		} else {
			opts.Logger = slog.New(slog.DiscardHandler)
		}
	}
	c := &Cluster{T: t, opts: opts, dir: t.TempDir(), members: map[uint64]*Member{}, peers: map[uint64]string{}}
	c.certDir = filepath.Join(c.dir, "certs")
	var names []string
	for i := 1; i <= opts.Nodes+4; i++ { // a few spare certificates for members added later
		names = append(names, nodeName(uint64(i)))
	}
	if err := cluster.GenerateCerts(c.certDir, names); err != nil {
		t.Fatalf("clustertest: certs: %v", err)
	}
	for i := 1; i <= opts.Nodes; i++ {
		m := c.newMember(uint64(i), false)
		c.peers[m.ID] = m.Addr
	}
	for _, m := range c.Members() {
		m.Start()
	}
	t.Cleanup(c.Close)
	c.Leader(30 * time.Second)
	return c
}

func nodeName(id uint64) string { return "node" + strconv.FormatUint(id, 10) }

func (c *Cluster) newMember(id uint64, join bool) *Member {
	c.T.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.T.Fatalf("clustertest: listen: %v", err)
	}
	cert, key := cluster.CertFiles(c.certDir, nodeName(id))
	tlsConf, err := cluster.LoadTLS(filepath.Join(c.certDir, cluster.CAFile), cert, key)
	if err != nil {
		c.T.Fatalf("clustertest: tls: %v", err)
	}
	m := &Member{ID: id, Addr: ln.Addr().String(), Dir: filepath.Join(c.dir, nodeName(id)), c: c, join: join, tls: tlsConf, ln: ln, gate: &gate{}, closed: true}
	c.mu.Lock()
	c.members[id] = m
	c.mu.Unlock()
	return m
}

// AddMember creates member id on a new port and starts it in join mode; it
// is not part of the cluster until a member's AddLearner adds it.
func (c *Cluster) AddMember(id uint64) *Member {
	c.T.Helper()
	m := c.newMember(id, true)
	m.Start()
	return m
}

// Member returns member id.
func (c *Cluster) Member(id uint64) *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[id]
	if m == nil {
		c.T.Fatalf("clustertest: no member %d", id)
	}
	return m
}

// Members returns every member, running or not, in ID order.
func (c *Cluster) Members() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Member, 0, len(c.members))
	for id := uint64(1); len(out) < len(c.members); id++ {
		if m, ok := c.members[id]; ok {
			out = append(out, m)
		}
	}
	return out
}

// Running returns the members whose node is running.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members() {
		if !m.closed {
			out = append(out, m)
		}
	}
	return out
}

// Peers returns the bootstrap peer list.
func (c *Cluster) Peers() map[uint64]string {
	out := map[uint64]string{}
	for id, a := range c.peers {
		out[id] = a
	}
	return out
}

// Start opens the member's store and starts its node (again, after Stop),
// on the same directories and address.
func (m *Member) Start() {
	t := m.c.T
	t.Helper()
	if !m.closed {
		t.Fatalf("clustertest: member %d already running", m.ID)
	}
	st, err := storage.Open(filepath.Join(m.Dir, "state"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatalf("clustertest: open store %d: %v", m.ID, err)
	}
	m.Store = st
	if m.c.opts.OnOpen != nil {
		m.c.opts.OnOpen(m)
	}
	if m.ln == nil {
		// The port was released by Stop; take it again (another process
		// may hold it for a moment).
		Poll(t, 10*time.Second, fmt.Sprintf("re-listen on %s", m.Addr), func() (bool, string) {
			ln, err := net.Listen("tcp", m.Addr)
			if err != nil {
				return false, err.Error()
			}
			m.ln = ln
			return true, ""
		})
	}
	peers := m.c.Peers()
	if m.join {
		peers[m.ID] = m.Addr
	}
	cfg := cluster.Config{
		NodeID:       m.ID,
		Peers:        peers,
		Join:         m.join,
		Dir:          filepath.Join(m.Dir, "raft"),
		Store:        st,
		Listener:     &gatedListener{Listener: m.ln, g: m.gate},
		TLS:          m.tls,
		TickInterval: m.c.opts.Tick,
		Logger:       m.c.opts.Logger.With("member", m.ID),
	}
	if m.c.opts.Configure != nil {
		m.c.opts.Configure(&cfg)
	}
	n, err := cluster.New(cfg)
	if err != nil {
		st.Close()
		m.ln.Close()
		m.ln = nil
		t.Fatalf("clustertest: start node %d: %v", m.ID, err)
	}
	m.ln = nil // the node owns it now
	m.Node = n
	m.closed = false
}

// Stop closes the member's node and store, as a clean shutdown would.
func (m *Member) Stop() {
	m.c.T.Helper()
	if m.closed {
		return
	}
	m.closed = true
	if err := m.Node.Close(); err != nil {
		m.c.T.Errorf("clustertest: close node %d: %v", m.ID, err)
	}
	if err := m.Store.Close(); err != nil {
		m.c.T.Errorf("clustertest: close store %d: %v", m.ID, err)
	}
}

// Running reports whether the member's node is running.
func (m *Member) Running() bool { return !m.closed }

// Close stops every member. A node that failed (stopped serving after an
// error it cannot recover from) fails the test.
func (c *Cluster) Close() {
	for _, m := range c.Members() {
		if m.Running() {
			if err := m.Node.Status().Err; err != "" {
				c.T.Errorf("clustertest: member %d failed: %s", m.ID, err)
			}
		}
		m.Stop()
		if m.ln != nil {
			m.ln.Close()
			m.ln = nil
		}
	}
}

// Leader waits until every running voter agrees on one leader that is
// running, and returns it.
func (c *Cluster) Leader(timeout time.Duration) *Member {
	c.T.Helper()
	var leader *Member
	Poll(c.T, timeout, "a leader all running members agree on", func() (bool, string) {
		leader = nil
		var lead uint64
		for _, m := range c.Running() {
			st := m.Node.Status()
			if st.State == "removed" {
				continue
			}
			if st.Leader == 0 {
				return false, fmt.Sprintf("member %d knows no leader", m.ID)
			}
			if lead != 0 && st.Leader != lead {
				return false, fmt.Sprintf("members disagree: %d and %d", lead, st.Leader)
			}
			lead = st.Leader
		}
		for _, m := range c.Running() {
			if m.ID == lead && m.Node.IsLeader() {
				leader = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("leader %d is not running or not leading", lead)
	})
	return leader
}

// Followers returns the running members other than the leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Running() {
		if m != leader {
			out = append(out, m)
		}
	}
	return out
}

// Propose proposes cmd on m, retrying with the same RequestID on errors
// that a leader change or a lost message explain, until timeout.
func Propose(t testing.TB, m *Member, cmd *storage.Command, timeout time.Duration) storage.Result {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, time.Until(deadline)))
		res, err := m.Node.Propose(ctx, cmd)
		cancel()
		if err == nil {
			return res
		}
		if time.Now().After(deadline) || errors.Is(err, cluster.ErrClosed) || errors.Is(err, cluster.ErrRemoved) {
			t.Fatalf("clustertest: propose %s on %d: %v", cmd.RequestID, m.ID, err)
		}
	}
}

// WaitConverged waits until every running member has applied the
// leader's commit index and all agree on it, and returns that index.
func (c *Cluster) WaitConverged(timeout time.Duration) uint64 {
	c.T.Helper()
	var idx uint64
	Poll(c.T, timeout, "all running members applied the same index", func() (bool, string) {
		leader := c.Leader(timeout)
		commit := leader.Node.Status().Commit
		for _, m := range c.Running() {
			st := m.Node.Status()
			if st.Err != "" {
				c.T.Fatalf("clustertest: member %d failed: %s", m.ID, st.Err)
			}
			if st.State == "removed" {
				continue
			}
			if a := m.Store.AppliedIndex(); a < commit {
				return false, fmt.Sprintf("member %d applied %d < commit %d", m.ID, a, commit)
			}
		}
		idx = commit
		return true, ""
	})
	return idx
}

// Poll calls cond until it reports true or timeout passes, then fails the
// test with what cond last said. It backs off from 5 ms to 100 ms between
// calls.
func Poll(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: timed out after %v waiting for %s: %s", timeout, what, last)
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// TLS returns the mutual-TLS configuration of member id's certificate
// (tests use it to speak to a node's raft endpoint directly).
func (c *Cluster) TLS(id uint64) *tls.Config {
	c.T.Helper()
	cert, key := cluster.CertFiles(c.certDir, nodeName(id))
	conf, err := cluster.LoadTLS(filepath.Join(c.certDir, cluster.CAFile), cert, key)
	if err != nil {
		c.T.Fatalf("clustertest: tls: %v", err)
	}
	return conf
}

// BlockInbound cuts every connection to the member's raft endpoint and
// refuses new ones until UnblockInbound: the member still sends, but hears
// nothing (one side of a partition).
func (m *Member) BlockInbound() { m.gate.set(true) }

// UnblockInbound lets connections in again.
func (m *Member) UnblockInbound() { m.gate.set(false) }

type gate struct {
	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
}

func (g *gate) set(blocked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked = blocked
	if blocked {
		for c := range g.conns {
			c.Close()
		}
		g.conns = nil
	}
}

// admit registers c, or closes it while blocked.
func (g *gate) admit(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked {
		c.Close()
		return false
	}
	if g.conns == nil {
		g.conns = map[net.Conn]struct{}{}
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *gate) forget(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.g.admit(c) {
			return &gatedConn{Conn: c, g: l.g}, nil
		}
	}
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c *gatedConn) Close() error {
	c.g.forget(c.Conn)
	return c.Conn.Close()
}
