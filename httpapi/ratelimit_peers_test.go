package httpapi

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// limitCluster is n limiters that gossip through a queue the test drains
// when it chooses, with one wall clock for liveness.
type limitCluster struct {
	t     *testing.T
	nodes []*limiter
	wall  time.Time
	queue []gossiped
}

type gossiped struct {
	from, to int
	body     []byte
}

// newLimitCluster starts n limiters that have exchanged full reports once.
func newLimitCluster(t *testing.T, n int) (*limitCluster, time.Time) {
	c := &limitCluster{t: t, wall: time.Unix(1_800_000_000, 0)}
	for range n {
		c.nodes = append(c.nodes, c.newNode())
	}
	now := c.wall
	for i := range n {
		c.send(i, now, true)
	}
	c.deliver(now)
	return c, now
}

func (c *limitCluster) newNode() *limiter {
	l := newLimiter()
	l.peers.wall = func() time.Time { return c.wall }
	return l
}

// send queues node i's report to every other node, through JSON as on the
// wire.
func (c *limitCluster) send(i int, now time.Time, full bool) {
	rep, ok := c.nodes[i].report(now, full)
	if !ok {
		return
	}
	b, err := json.Marshal(rep)
	if err != nil {
		c.t.Fatal(err)
	}
	for j := range c.nodes {
		if j != i && c.nodes[j] != nil {
			c.queue = append(c.queue, gossiped{from: i, to: j, body: b})
		}
	}
}

// deliver hands over every queued report; a receiver that meets a new
// process answers with a full report, as the gossip relay does.
func (c *limitCluster) deliver(now time.Time) {
	for len(c.queue) > 0 {
		g := c.queue[0]
		c.queue = c.queue[1:]
		if c.nodes[g.to] == nil {
			continue
		}
		var rep LimitReport
		if err := json.Unmarshal(g.body, &rep); err != nil {
			c.t.Fatal(err)
		}
		if c.nodes[g.to].merge(uint64(g.from+1), rep, now) {
			c.send(g.to, now, true)
		}
	}
}

func userQuota() quota { return quota{key: "u:acme:ada", limit: 1000, window: time.Hour} }

// request is one request to node n at now whose report reaches the others
// at once; it reports whether it was admitted.
func (c *limitCluster) request(n int, now time.Time) bool {
	ok := c.nodes[n].allow(now, userQuota()).allowed
	c.send(n, now, false)
	c.deliver(now)
	return ok
}

// Requests round-robin over three nodes, reports delivered after every
// request: the cluster admits exactly the limit.
func TestClusterLimitCurrentReportsAdmitExactly(t *testing.T) {
	c, now := newLimitCluster(t, 3)
	accepted := 0
	for i := range 1500 {
		now = now.Add(time.Second)
		if c.request(i%3, now) {
			accepted++
		}
	}
	if accepted != 1000 {
		t.Fatalf("accepted %d of 1,500 over three nodes, want exactly 1,000", accepted)
	}
}

// Reports arrive late and in bursts (each node reports every few requests,
// delivery at random moments): the share rule keeps the cluster within the
// documented allowance, and it still reaches the limit.
func TestClusterLimitLateReportsStayUnderTheLimit(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		c, now := newLimitCluster(t, 3)
		accepted := 0
		for range 3000 {
			now = now.Add(100 * time.Millisecond)
			n := rng.IntN(3)
			if c.nodes[n].allow(now, userQuota()).allowed {
				accepted++
			}
			if rng.IntN(5) == 0 {
				c.send(rng.IntN(3), now, false)
			}
			if rng.IntN(7) == 0 {
				c.deliver(now)
			}
		}
		// A report in flight lets the others decide on an older view: the
		// documented allowance is 5% over (this schedule, far more delayed
		// than gossip every 100 ms, gives up to 1.7%).
		if accepted > 1050 || accepted < 990 {
			t.Fatalf("seed %d: accepted %d, want 990..1,050", seed, accepted)
		}
	}
}

// A member that restarts has lost its own log; the others' echo gives it
// its previous life's counts back, so the restart resets nothing. A member
// that is gone keeps counting until its requests leave the window.
func TestClusterLimitSurvivesRestartAndExpires(t *testing.T) {
	c, now := newLimitCluster(t, 3)
	accepted := 0
	for range 600 {
		now = now.Add(time.Second)
		if c.request(1, now) {
			accepted++
		}
	}
	// Node 1 restarts: a new process with an empty log. It reports (empty);
	// the others meet a new process and answer with everything they know.
	c.nodes[1] = c.newNode()
	c.send(1, now, true)
	c.deliver(now)
	for range 600 {
		now = now.Add(time.Second)
		if c.request(1, now) {
			accepted++
		}
	}
	if accepted != 1000 {
		t.Fatalf("accepted %d across a restart, want 1,000", accepted)
	}

	// Node 1 is gone for good: ten minutes later it no longer counts as a
	// member, but its requests still count on node 0 until they are an hour
	// old.
	c.nodes[1] = nil
	c.wall = c.wall.Add(10 * time.Minute)
	now = now.Add(10 * time.Minute)
	c.send(2, now, true)
	c.deliver(now)
	if d := c.nodes[0].allow(now, userQuota()); d.allowed || d.share {
		t.Fatalf("node 0 admitted (or refused for its share) with the allowance spent on node 1: %+v", d)
	}
	if got := c.nodes[0].peers.members(); got != 2 {
		t.Fatalf("members after node 1 went silent: %d, want 2 (itself and node 2)", got)
	}
	now = now.Add(time.Hour)
	if d := c.nodes[0].allow(now, userQuota()); !d.allowed || d.remaining != 999 {
		t.Fatalf("an hour later the allowance is back: %+v", d)
	}
}

// Alone, a node decides as before: no share rule, exact counts.
func TestLimitAloneIgnoresPeers(t *testing.T) {
	l := newLimiter()
	now := time.Unix(1_800_000_000, 0)
	accepted := 0
	for range 1200 {
		now = now.Add(time.Second)
		if l.allow(now, userQuota()).allowed {
			accepted++
		}
	}
	if accepted != 1000 {
		t.Fatalf("accepted %d, want 1,000", accepted)
	}
	if rep, ok := l.report(now, false); !ok || len(rep.Tables[0].Keys["u:acme:ada"]) == 0 {
		t.Fatalf("the report carries the accepted requests: %+v", rep)
	}
	if _, ok := l.report(now, false); ok {
		t.Fatal("a second delta report with nothing new was made")
	}
}
