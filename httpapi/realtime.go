package httpapi

import (
	"container/list"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/teamflow/teamflow/engine"
)

// Live updates (docs/REALTIME.md). Every node applies every committed
// command, and cmd wires the store's observer to Publish, so each node's hub
// sees every workspace's events in log order and pushes them to its own
// websocket and server-sent-event clients. The hub is one goroutine: Publish
// only enqueues (never blocking the store's observer), and the hub fans each
// event out to the connections of its workspace through bounded per-connection
// queues (a connection whose queue is full is dropped, never waited for).
// Each workspace keeps its recent events in a bounded ring, so a client that
// reconnects resumes from its last sequence number, or is told to resync when
// that point has left the ring: never a silent gap.

// RealtimeConfig tunes live updates. Zero values take the defaults.
type RealtimeConfig struct {
	// PublicBaseURL is an Origin allowed besides the request's own host (the
	// server's public URL behind a proxy), e.g. https://teamflow.example.com.
	PublicBaseURL string
	// Reauth is how often each connection re-checks its session (default
	// 15 s); a revocation applied on this node closes its sockets at once.
	Reauth time.Duration
	// Ping is the websocket ping and SSE heartbeat interval (default 20 s);
	// a websocket that answers nothing for PongWait (default 2×Ping+5 s)
	// is closed.
	Ping     time.Duration
	PongWait time.Duration
	// WriteTimeout bounds one write to a client (default 10 s).
	WriteTimeout time.Duration
	// BufferPerWorkspace is how many recent events each workspace keeps for
	// resuming clients (default 10,000); BufferTotal bounds all workspaces
	// together (default 1,000,000; the least recently active workspace's
	// oldest events go first).
	BufferPerWorkspace int
	BufferTotal        int
	// SendQueue is each connection's queue (default 1,024 items): a client
	// that falls that far behind is dropped and resumes on reconnect.
	SendQueue int
	// HubQueue is the queue between Publish and the hub (default 65,536).
	HubQueue int
	// TicketTTL is how long a websocket ticket stays valid (default 60 s).
	TicketTTL time.Duration
	// MaxTopics bounds one connection's topics (default 100);
	// MaxConnsPerUser one account's connections to this node (default 32).
	MaxTopics       int
	MaxConnsPerUser int
}

func (c *RealtimeConfig) defaults() {
	if c.Reauth <= 0 {
		c.Reauth = 15 * time.Second
	}
	if c.Ping <= 0 {
		c.Ping = 20 * time.Second
	}
	if c.PongWait <= 0 {
		c.PongWait = 2*c.Ping + 5*time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.BufferPerWorkspace <= 0 {
		c.BufferPerWorkspace = 10_000
	}
	if c.BufferTotal <= 0 {
		c.BufferTotal = 1_000_000
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 1024
	}
	if c.HubQueue <= 0 {
		c.HubQueue = 65_536
	}
	if c.TicketTTL <= 0 {
		c.TicketTTL = 60 * time.Second
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = 100
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = 32
	}
}

// Publish hands one applied event to the realtime hub. It never blocks: when
// the hub's queue is full the event is dropped and its workspace is marked
// as having lost events, so that its clients get an explicit resync instead
// of a gap. Call it in log order (the store's observer does).
func (s *Server) Publish(ev engine.Event) {
	if ev.Tenant == "" || ev.Seq == 0 {
		return
	}
	s.rt.publish(hubItem{tenant: ev.Tenant, seq: ev.Seq, ev: &ev})
}

// Advance tells the hub that a command advanced a workspace's sequence to
// seq without an event (a sign-in, a refresh): the hub then knows the
// sequence has no hole there. Like Publish it never blocks.
func (s *Server) Advance(tenant string, seq uint64) {
	if tenant == "" || seq == 0 {
		return
	}
	s.rt.publish(hubItem{tenant: tenant, seq: seq})
}

// CloseRealtime stops the hub and closes every live-update connection
// (websockets with 1001 "going away", event streams end); clients reconnect
// and resume. Call it when the server shuts down.
func (s *Server) CloseRealtime() { s.rt.close() }

// RealtimeStats are the hub's counters.
type RealtimeStats struct {
	Connections int64 // open now
	Published   int64 // events and advances taken by Publish/Advance
	Overflowed  int64 // dropped by Publish because the hub's queue was full
	SlowDropped int64 // connections dropped because their queue was full
	Resyncs     int64 // resync messages sent (resume point too old, or a hole)
	Revalidated int64 // periodic or triggered re-authentications
	AuthClosed  int64 // connections closed because their credential ended
	Tickets     int64 // websocket tickets issued
}

// RealtimeStats reports the hub's counters (for tests and metrics).
func (s *Server) RealtimeStats() RealtimeStats {
	st := &s.rt.stats
	return RealtimeStats{
		Connections: st.conns.Load(), Published: st.published.Load(), Overflowed: st.overflowed.Load(),
		SlowDropped: st.slow.Load(), Resyncs: st.resyncs.Load(), Revalidated: st.reauths.Load(),
		AuthClosed: st.authClosed.Load(), Tickets: st.tickets.Load(),
	}
}

type hubStats struct {
	conns, published, overflowed, slow, resyncs, reauths, authClosed, tickets atomic.Int64
}

// hubItem is what Publish and Advance enqueue: an event, or (ev nil) only
// the news that the workspace's sequence reached seq.
type hubItem struct {
	tenant string
	seq    uint64
	ev     *engine.Event
}

// hubEvent is an event as the hub keeps and shares it; its wire form (every
// change, no inbox items) is encoded once, by the first connection that
// needs it.
type hubEvent struct {
	ev   engine.Event
	once sync.Once
	full []byte
}

func (e *hubEvent) message() []byte {
	e.once.Do(func() {
		e.full = encodeEvent(&e.ev, e.ev.Changes, nil, nil)
	})
	return e.full
}

// eventMsg is an event on the wire.
type eventMsg struct {
	Type          string                `json:"type"`
	Seq           uint64                `json:"seq"`
	Kind          string                `json:"kind"`
	Actor         string                `json:"actor"`
	At            time.Time             `json:"at"`
	Changes       []engine.EventChange  `json:"changes,omitempty"`
	Notifications []engine.Notification `json:"notifications,omitempty"`
	Unread        *int64                `json:"unread,omitempty"`
}

func encodeEvent(ev *engine.Event, changes []engine.EventChange, notes []engine.Notification, unread *int64) []byte {
	b, _ := json.Marshal(eventMsg{Type: "event", Seq: ev.Seq, Kind: ev.Kind, Actor: ev.Actor, At: ev.At,
		Changes: changes, Notifications: notes, Unread: unread})
	return b
}

// ring holds a workspace's recent events in sequence order; it grows up to
// its bound, then drops the oldest.
type ring struct {
	buf      []*hubEvent
	start, n int
}

func (r *ring) at(i int) *hubEvent { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) push(e *hubEvent, limit int) (evicted *hubEvent) {
	if r.n == len(r.buf) {
		if len(r.buf) < limit {
			grown := make([]*hubEvent, min(limit, max(16, 2*len(r.buf))))
			for i := range r.n {
				grown[i] = r.at(i)
			}
			r.buf, r.start = grown, 0
		} else {
			evicted = r.popFront()
		}
	}
	r.buf[(r.start+r.n)%len(r.buf)] = e
	r.n++
	return evicted
}

func (r *ring) popFront() *hubEvent {
	if r.n == 0 {
		return nil
	}
	e := r.buf[r.start]
	r.buf[r.start] = nil
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	return e
}

func (r *ring) clear() { r.buf, r.start, r.n = nil, 0, 0 }

// after copies the events with a sequence above seq.
func (r *ring) after(seq uint64) []*hubEvent {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).ev.Seq > seq })
	out := make([]*hubEvent, 0, r.n-i)
	for ; i < r.n; i++ {
		out = append(out, r.at(i))
	}
	return out
}

// space is one workspace's state on the hub. The hub holds every event of
// the workspace with a sequence in (base, head]; known is false until the
// hub has learnt where the workspace's sequence stands.
type space struct {
	tenant     string
	known      bool
	base, head uint64
	ring       ring
	lru        *list.Element
	conns      map[*rtConn]struct{}
	users      map[string]int
	// presence: topic → viewing connection → its user.
	presence map[string]map[*rtConn]string
}

type hub struct {
	cfg   RealtimeConfig
	eng   *engine.Service
	log   *slog.Logger
	stats hubStats

	mu       sync.Mutex        // Publish side: the queue and its overflow record
	in       chan hubItem      // Publish → hub
	overflow map[string]uint64 // tenant → highest sequence dropped since the queue filled
	wake     chan struct{}     // an overflow waits to be applied
	ctl      chan func()       // requests from connections, run on the hub goroutine
	done     chan struct{}
	stopped  chan struct{}
	closing  sync.Once

	// Hub goroutine only.
	spaces map[string]*space
	lru    *list.List // spaces with buffered events, most recently active first
	total  int        // buffered events over all spaces
	drops  []*rtConn  // connections to drop once the current fan-out is done

	tickets  tickets
	upgrader websocket.Upgrader

	// remote is the presence other nodes of the cluster report (hub
	// goroutine only); presenceChanged tells cmd that this node's changed.
	remote          map[uint64]PresenceTable
	presenceChanged chan struct{}
}

func newHub(cfg RealtimeConfig, eng *engine.Service, log *slog.Logger) *hub {
	cfg.defaults()
	h := &hub{
		cfg: cfg, eng: eng, log: log,
		in:      make(chan hubItem, cfg.HubQueue),
		wake:    make(chan struct{}, 1),
		ctl:     make(chan func()),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		spaces:  map[string]*space{},
		lru:     list.New(),
		tickets: tickets{m: map[string]ticket{}},
		remote:  map[uint64]PresenceTable{},

		presenceChanged: make(chan struct{}, 1),
	}
	go h.run()
	return h
}

func (h *hub) registerMetrics(reg *prometheus.Registry) {
	st := &h.stats
	gauge := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	for _, c := range []prometheus.Collector{
		gauge("teamflow_realtime_connections", "Open live-update connections (websocket and event stream) on this node.", &st.conns),
		counter("teamflow_realtime_published_total", "Applied commands handed to the realtime hub.", &st.published),
		counter("teamflow_realtime_overflow_total", "Events dropped because the hub's queue was full (their workspaces' clients were told to resync).", &st.overflowed),
		counter("teamflow_realtime_slow_dropped_total", "Live-update connections dropped because they fell too far behind.", &st.slow),
		counter("teamflow_realtime_resyncs_total", "Resync messages sent to live-update clients.", &st.resyncs),
		counter("teamflow_realtime_auth_closed_total", "Live-update connections closed because their session ended.", &st.authClosed),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

func (h *hub) publish(it hubItem) {
	h.stats.published.Add(1)
	h.mu.Lock()
	if h.overflow == nil {
		select {
		case h.in <- it:
			h.mu.Unlock()
			return
		default:
		}
		// The queue is full. From now until the hub has drained it, events
		// are not queued (a later event must not overtake a dropped one):
		// their workspaces are remembered and get a resync instead.
		h.overflow = map[string]uint64{}
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	if it.seq > h.overflow[it.tenant] {
		h.overflow[it.tenant] = it.seq
	}
	h.mu.Unlock()
	h.stats.overflowed.Add(1)
}

func (h *hub) close() {
	h.closing.Do(func() { close(h.done) })
	<-h.stopped
}

// do runs f on the hub goroutine and waits for it; false when the hub has
// stopped.
func (h *hub) do(f func()) bool {
	ran := make(chan struct{})
	select {
	case h.ctl <- func() { f(); close(ran) }:
	case <-h.stopped:
		return false
	}
	select {
	case <-ran:
		return true
	case <-h.stopped:
		return false
	}
}

func (h *hub) run() {
	defer close(h.stopped)
	for {
		select {
		case it := <-h.in:
			h.apply(it)
		case f := <-h.ctl:
			f()
		case <-h.wake:
			h.drainOverflow()
		case <-h.done:
			for _, sp := range h.spaces {
				for c := range sp.conns {
					c.stop(closeGoingAway, "server shutting down; reconnect and resume")
				}
			}
			h.stats.conns.Store(0)
			return
		}
		h.flushDrops()
	}
}

// drainOverflow applies what was queued before the queue filled, then the
// record of what was dropped since: a hole in each workspace concerned.
func (h *hub) drainOverflow() {
	for {
		select {
		case it := <-h.in:
			h.apply(it)
			continue
		default:
		}
		h.mu.Lock()
		if len(h.in) > 0 {
			h.mu.Unlock()
			continue
		}
		lost := h.overflow
		h.overflow = nil
		h.mu.Unlock()
		for tenant, seq := range lost {
			sp := h.space(tenant)
			if !sp.known {
				sp.known, sp.base, sp.head = true, seq, seq
				continue
			}
			if seq > sp.head {
				h.hole(sp, seq)
				sp.head = seq
			}
		}
		return
	}
}

func (h *hub) space(tenant string) *space {
	sp := h.spaces[tenant]
	if sp == nil {
		sp = &space{tenant: tenant, conns: map[*rtConn]struct{}{}, users: map[string]int{}, presence: map[string]map[*rtConn]string{}}
		h.spaces[tenant] = sp
	}
	return sp
}

// apply takes one item in log order.
func (h *hub) apply(it hubItem) {
	sp := h.space(it.tenant)
	if !sp.known {
		sp.known, sp.base, sp.head = true, it.seq-1, it.seq-1
	}
	if it.seq <= sp.head {
		return // already accounted for (the hub learnt the position from the store after it)
	}
	if it.seq > sp.head+1 {
		// The hub missed commands (a snapshot installed, or dropped on
		// overflow): what happened in between is unknown.
		h.hole(sp, it.seq-1)
	}
	sp.head = it.seq
	if it.ev == nil {
		return
	}
	he := &hubEvent{ev: *it.ev}
	if he.ev.Deliverable() {
		h.remember(sp, he)
	}
	for c := range sp.conns {
		h.deliver(c, outItem{ev: he})
	}
}

// hole records that the events up to seq are unknown: resuming before seq
// needs a resync, and every connection of the workspace gets one now.
func (h *hub) hole(sp *space, seq uint64) {
	if seq > sp.base {
		sp.base = seq
	}
	h.total -= sp.ring.n
	sp.ring.clear()
	if sp.lru != nil {
		h.lru.Remove(sp.lru)
		sp.lru = nil
	}
	it := outItem{ctl: &ctlItem{resync: seq, isResync: true}}
	for c := range sp.conns {
		h.deliver(c, it)
	}
}

func (h *hub) remember(sp *space, he *hubEvent) {
	if ev := sp.ring.push(he, h.cfg.BufferPerWorkspace); ev != nil {
		sp.base = ev.ev.Seq
	} else {
		h.total++
	}
	if sp.lru == nil {
		sp.lru = h.lru.PushFront(sp)
	} else {
		h.lru.MoveToFront(sp.lru)
	}
	for h.total > h.cfg.BufferTotal {
		back := h.lru.Back()
		if back == nil {
			break
		}
		victim := back.Value.(*space)
		if e := victim.ring.popFront(); e != nil {
			victim.base = e.ev.Seq
			h.total--
		}
		if victim.ring.n == 0 {
			h.lru.Remove(back)
			victim.lru = nil
		}
	}
}

// deliver queues an item for a connection without waiting; a connection
// whose queue is full is dropped.
func (h *hub) deliver(c *rtConn, it outItem) {
	select {
	case c.out <- it:
	default:
		h.drops = append(h.drops, c)
	}
}

func (h *hub) flushDrops() {
	for len(h.drops) > 0 {
		c := h.drops[0]
		h.drops = h.drops[1:]
		if h.remove(c) {
			h.stats.slow.Add(1)
			c.stop(closeTryAgain, "too far behind: reconnect and resume from your last seq")
		}
	}
	h.drops = nil
}

var (
	errHubClosed   = errors.New("realtime: shutting down")
	errTooManyConn = errors.New("realtime: too many connections")
)

// register adds a connection to its workspace.
func (h *hub) register(c *rtConn) error {
	var err error
	if !h.do(func() {
		sp := h.space(c.tenant)
		if sp.users[c.userID] >= h.cfg.MaxConnsPerUser {
			err = errTooManyConn
			return
		}
		sp.conns[c] = struct{}{}
		sp.users[c.userID]++
		h.stats.conns.Add(1)
	}) {
		return errHubClosed
	}
	return err
}

func (h *hub) unregister(c *rtConn) {
	h.do(func() { h.remove(c) })
}

// remove takes a connection out of its workspace and its presence.
func (h *hub) remove(c *rtConn) bool {
	sp := h.spaces[c.tenant]
	if sp == nil {
		return false
	}
	if _, ok := sp.conns[c]; !ok {
		return false
	}
	delete(sp.conns, c)
	if sp.users[c.userID]--; sp.users[c.userID] <= 0 {
		delete(sp.users, c.userID)
	}
	h.stats.conns.Add(-1)
	for topic, viewers := range sp.presence {
		if _, ok := viewers[c]; ok {
			delete(viewers, c)
			h.broadcastPresence(sp, topic)
			h.localPresenceChanged()
		}
	}
	return true
}

// subRequest is a (re)subscription, authorized by the connection.
type subRequest struct {
	topics   []engine.Topic
	since    uint64
	resume   bool   // since was given
	storeSeq uint64 // the workspace's sequence in the store, read before the request
	gen      uint64 // the principal generation the topics were authorized under
}

// subscribe answers a subscription in stream order: the events the client
// missed since its resume point, or a resync when that point is older than
// the hub's memory.
func (h *hub) subscribe(c *rtConn, req subRequest) bool {
	return h.do(func() {
		sp := h.space(c.tenant)
		if _, ok := sp.conns[c]; !ok {
			return
		}
		if !sp.known {
			// Nothing of this workspace since the hub started: everything
			// after the store's current position will pass through here.
			sp.known, sp.base, sp.head = true, req.storeSeq, req.storeSeq
		}
		res := &subResult{req: req, head: sp.head}
		if req.resume {
			switch {
			case req.since < sp.base:
				res.resync = true
				h.stats.resyncs.Add(1)
			case req.since < sp.head:
				res.backlog = sp.ring.after(req.since)
			}
		}
		for _, t := range req.topics {
			if viewers := h.viewers(sp, t.String()); len(viewers) > 0 {
				res.presence = append(res.presence, presenceMsg{Type: "presence", Topic: t.String(), Viewers: viewers})
			}
		}
		h.deliver(c, outItem{ctl: &ctlItem{sub: res}})
	})
}

// setPresence marks a connection as viewing a topic, or not, and tells the
// workspace's connections following it.
func (h *hub) setPresence(c *rtConn, topic string, viewing bool) {
	h.do(func() {
		sp := h.spaces[c.tenant]
		if sp == nil {
			return
		}
		if _, ok := sp.conns[c]; !ok {
			return
		}
		viewers := sp.presence[topic]
		_, was := viewers[c]
		switch {
		case viewing && !was:
			if viewers == nil {
				viewers = map[*rtConn]string{}
				sp.presence[topic] = viewers
			}
			viewers[c] = c.userID
		case !viewing && was:
			delete(viewers, c)
		default:
			return
		}
		h.broadcastPresence(sp, topic)
		h.localPresenceChanged()
	})
}

func (h *hub) broadcastPresence(sp *space, topic string) {
	if len(sp.presence[topic]) == 0 {
		delete(sp.presence, topic)
	}
	it := outItem{ctl: &ctlItem{presence: &presenceMsg{Type: "presence", Topic: topic, Viewers: h.viewers(sp, topic)}}}
	for c := range sp.conns {
		h.deliver(c, it)
	}
}

// viewerList is the distinct users viewing (local connections and other
// nodes' reports), sorted.
func viewerList(viewers map[*rtConn]string, remote []string) []string {
	out := []string{}
	for _, u := range viewers {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for _, u := range remote {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

type presenceMsg struct {
	Type    string   `json:"type"`
	Topic   string   `json:"topic"`
	Viewers []string `json:"viewers"`
}

// viewing lists the topics a connection is present on.
func (h *hub) viewing(c *rtConn) []string {
	var out []string
	h.do(func() {
		if sp := h.spaces[c.tenant]; sp != nil {
			for topic, v := range sp.presence {
				if _, ok := v[c]; ok {
					out = append(out, topic)
				}
			}
		}
	})
	return out
}
