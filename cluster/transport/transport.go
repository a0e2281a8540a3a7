// Package transport carries raft messages between TeamFlow nodes: HTTP/2
// over TLS with mutual authentication, one listener per node.
//
// Messages are batched per peer: each peer has a bounded queue and one
// sender goroutine that posts whatever has queued up as one request, so a
// busy leader sends few large requests rather than many small ones. Send
// never blocks: when a peer's queue is full, or a post fails, the messages
// are dropped and reported through Handler.Unreachable, and raft retries
// (it treats the network as lossy). A slow or dead peer therefore costs the
// Ready loop nothing.
//
// Snapshots travel on their own request: the MsgSnap message in a header,
// the state stream as the body, at most one in flight per peer and group.
//
// Several raft groups share one transport (the shared store's group and one
// per dedicated store, all on the same nodes): each registers a Handler
// under its group ID (AddGroup) and sends through its *Group. A post
// carries one group's messages and names the group in a header; a post
// without it is for GroupShared, so the shared group's traffic is the same
// on the wire as before groups existed. A post for a group the receiver
// does not run is refused (404) and, like any failed post, reported
// unreachable: raft retries until the group exists there.
//
// Endpoints (POST, mutual TLS, HTTP/2 only):
//
//	/raft/v1/msgs      header Teamflow-Raft-Group (optional); body: repeated (uvarint length, raftpb.Message)
//	/raft/v1/snapshot  header Teamflow-Raft-Group (optional), Teamflow-Raft-Message: base64 raftpb.Message;
//	                   body: the snapshot stream
package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Paths of the raft endpoints.
const (
	PathMessages = "/raft/v1/msgs"
	PathSnapshot = "/raft/v1/snapshot"
	PathGossip   = "/raft/v1/gossip"

	// MaxGossipBytes caps one gossip body: it carries a node's in-memory
	// state (presence, rate-limit counts), not data.
	MaxGossipBytes = 4 << 20

	headerMessage = "Teamflow-Raft-Message"
	headerFrom    = "Teamflow-Raft-From"
	headerAddr    = "Teamflow-Raft-Addr"
	headerGroup   = "Teamflow-Raft-Group"
)

// GroupShared is the shared store's raft group, whose Handler is
// Config.Handler. Its posts carry no group header.
const GroupShared uint64 = 0

// Handler is the local raft node, as the transport sees it.
type Handler interface {
	// Step delivers a message from a peer.
	Step(ctx context.Context, m *pb.Message) error
	// ReceiveSnapshot consumes a MsgSnap and the state stream that follows
	// it. An error refuses the snapshot; the sender reports a failure to
	// its raft node.
	ReceiveSnapshot(ctx context.Context, m *pb.Message, r io.Reader) error
	// Unreachable reports messages to peer that were dropped: queue full,
	// peer unknown, or the post failed. It is called on the goroutine that
	// noticed, which may be the caller of Send; it must not block.
	Unreachable(peer uint64, dropped []*pb.Message)
}

// Config configures a Transport. Zero values take the documented defaults.
type Config struct {
	// ID is the local node's ID; messages addressed elsewhere are refused.
	ID uint64
	// Listener is where the endpoints are served; the transport closes it.
	Listener net.Listener
	// TLS is used to serve and to dial: Certificates (this node),
	// RootCAs and ClientCAs (the cluster CA). Client certificates are
	// required and verified.
	TLS *tls.Config
	// Handler receives the messages of the shared group (GroupShared);
	// other groups register with AddGroup.
	Handler Handler
	// Refuse, when set, names peers whose traffic is refused (removed
	// members).
	Refuse func(from uint64) bool
	// QueueSize is how many messages may wait for one peer (default 4096).
	QueueSize int
	// MaxBatchBytes caps one post's body (default 4 MiB, or one message).
	MaxBatchBytes int
	// DialTimeout bounds connecting (default 2 s).
	DialTimeout time.Duration
	// RequestTimeout bounds one post of messages (default 5 s).
	RequestTimeout time.Duration
	// SnapshotTimeout bounds one snapshot transfer (default 1 h).
	SnapshotTimeout time.Duration
	// MaxMessageBytes refuses larger incoming messages (default 64 MiB).
	MaxMessageBytes int
	// Logger receives warnings (default: discarded).
	Logger *slog.Logger
	// Gossip, when set, receives what a peer sent with Transport.Gossip:
	// state that lives in memory on each node and is never written to the
	// log (who is viewing what). It must not block for long.
	Gossip func(from uint64, body []byte)
	// AdvertiseAddr is the address peers reach this node at, sent with
	// every post. A node that gets a message from a peer it has no address
	// for (a new member whose --peers named only some of the members)
	// learns it from there, so it can answer before the replicated
	// membership reaches it.
	AdvertiseAddr string
}

// Stats are the transport's counters.
type Stats struct {
	MessagesSent     uint64 // delivered to a peer (the post succeeded)
	MessagesDropped  uint64 // queue full, unknown peer, or failed post
	Batches          uint64 // successful posts
	MessagesReceived uint64
	SnapshotsSent    uint64
	SnapshotsFailed  uint64
	Refused          uint64 // incoming requests refused
	GossipSent       uint64 // gossip posts a peer accepted
	GossipFailed     uint64
	GossipReceived   uint64
}

// Transport sends and receives raft messages.
type Transport struct {
	cfg    Config
	srv    *http.Server
	client *http.Client // messages
	bulk   *http.Client // snapshots, on connections of their own so a big
	// transfer never queues heartbeats behind it
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // senders, snapshot transfers, the server

	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool

	// The raft groups served, by ID; shared is GroupShared's.
	gmu    sync.RWMutex
	groups map[uint64]*Group
	shared *Group

	// handlers in progress, so Close can wait for them
	hmu     sync.Mutex
	hclosed bool
	hwg     sync.WaitGroup

	sent, dropped, batches, received, snapsSent, snapsFailed, refused atomic.Uint64
	gossipSent, gossipFailed, gossipReceived                          atomic.Uint64
}

type peer struct {
	id    uint64
	addr  string
	q     chan queued
	stop  chan struct{}
	snapo map[uint64]bool // groups with a snapshot in flight to this peer (under Transport.mu)
	gosso atomic.Bool     // a gossip post is in flight
}

type queued struct {
	g    *Group
	m    *pb.Message
	data []byte
}

// Group is one raft group's use of the transport: the handler its
// messages go to, and Send and SendSnapshot for its outgoing ones.
type Group struct {
	t  *Transport
	id uint64
	h  Handler
	// ctx ends when the group is removed or the transport closes: it
	// bounds the group's snapshot transfers.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the group's handlers and snapshot transfers in progress,
	// so Remove returns only once none will touch the handler again.
	wg      sync.WaitGroup
	removed bool // under Transport.gmu
}

// New starts serving on cfg.Listener.
func New(cfg Config) (*Transport, error) {
	if cfg.ID == 0 || cfg.Listener == nil || cfg.TLS == nil || cfg.Handler == nil {
		return nil, errors.New("transport: ID, Listener, TLS and Handler are required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.SnapshotTimeout <= 0 {
		cfg.SnapshotTimeout = time.Hour
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	serverTLS := cfg.TLS.Clone()
	serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
	if serverTLS.MinVersion < tls.VersionTLS13 {
		serverTLS.MinVersion = tls.VersionTLS13
	}
	clientTLS := cfg.TLS.Clone()
	if clientTLS.MinVersion < tls.VersionTLS13 {
		clientTLS.MinVersion = tls.VersionTLS13
	}
	var h2 http.Protocols
	h2.SetHTTP2(true)

	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{cfg: cfg, ctx: ctx, cancel: cancel, peers: map[uint64]*peer{}, groups: map[uint64]*Group{}}
	t.shared = t.newGroup(GroupShared, cfg.Handler)
	t.groups[GroupShared] = t.shared
	mux := http.NewServeMux()
	mux.HandleFunc(PathMessages, t.endpoint(t.handleMessages))
	mux.HandleFunc(PathSnapshot, t.endpoint(t.handleSnapshot))
	mux.HandleFunc(PathGossip, t.endpoint(t.handleGossip))
	t.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         serverTLS,
		Protocols:         &h2,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	newClient := func() *http.Client {
		dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 15 * time.Second}
		return &http.Client{Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     clientTLS,
			TLSHandshakeTimeout: cfg.DialTimeout,
			Protocols:           &h2,
			ForceAttemptHTTP2:   true,
			IdleConnTimeout:     time.Minute,
			HTTP2: &http.HTTP2Config{
				// Find a dead connection (a peer that vanished without a
				// reset) rather than queueing requests on it forever.
				SendPingTimeout: 2 * time.Second,
				PingTimeout:     2 * time.Second,
			},
		}}
	}
	t.client, t.bulk = newClient(), newClient()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := t.srv.ServeTLS(cfg.Listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("raft transport stopped serving", "err", err)
		}
	}()
	return t, nil
}

// Addr is the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.cfg.Listener.Addr() }

// SetPeers replaces the address book. Peers no longer listed stop; new
// ones start; a changed address restarts that peer's sender.
func (t *Transport) SetPeers(addrs map[uint64]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for id, p := range t.peers {
		if addr, ok := addrs[id]; !ok || addr != p.addr {
			close(p.stop)
			delete(t.peers, id)
		}
	}
	for id, addr := range addrs {
		if id == t.cfg.ID || addr == "" {
			continue
		}
		if _, ok := t.peers[id]; ok {
			continue
		}
		t.startPeer(id, addr)
	}
}

// startPeer starts the sender of a peer. Under t.mu.
func (t *Transport) startPeer(id uint64, addr string) {
	p := &peer{id: id, addr: addr, q: make(chan queued, t.cfg.QueueSize), stop: make(chan struct{}), snapo: map[uint64]bool{}}
	t.peers[id] = p
	t.wg.Add(1)
	go t.runPeer(p)
}

// learn adds a peer the address book lacks, from the address it
// advertised (its certificate was verified against the cluster CA). A
// known peer keeps the address SetPeers gave it; the next SetPeers drops a
// learned one that the membership does not name.
func (t *Transport) learn(id uint64, addr string) {
	if id == 0 || id == t.cfg.ID {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.peers[id] != nil {
		return
	}
	t.startPeer(id, addr)
	t.cfg.Logger.Info("learned a peer's address from its messages", "peer", id, "addr", addr)
}

// AddGroup registers the handler of raft group id, which then receives the
// group's messages from peers; send the group's own through the returned
// Group. One handler per ID.
func (t *Transport) AddGroup(id uint64, h Handler) (*Group, error) {
	if h == nil {
		return nil, errors.New("transport: a group needs a handler")
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("transport: add raft group %d: transport closed", id)
	}
	t.gmu.Lock()
	defer t.gmu.Unlock()
	if t.groups[id] != nil {
		return nil, fmt.Errorf("transport: raft group %d is already registered", id)
	}
	g := t.newGroup(id, h)
	t.groups[id] = g
	return g, nil
}

func (t *Transport) newGroup(id uint64, h Handler) *Group {
	ctx, cancel := context.WithCancel(t.ctx)
	return &Group{t: t, id: id, h: h, ctx: ctx, cancel: cancel}
}

// Remove unregisters the group: peers' posts for it are refused from now
// on, its snapshot transfers are cancelled, and Remove returns once none
// of its handler calls or transfers is still running. Messages it queued
// and not yet posted may still be reported to its handler as unreachable.
// The shared group lives as long as the transport.
func (g *Group) Remove() {
	t := g.t
	t.gmu.Lock()
	if g.removed || g == t.shared {
		t.gmu.Unlock()
		return
	}
	g.removed = true
	delete(t.groups, g.id)
	t.gmu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// enterGroup finds the group a post is for and counts the handler in
// progress; false (and the request refused) when the header is bad or the
// group is not served here.
func (t *Transport) enterGroup(w http.ResponseWriter, r *http.Request) (*Group, bool) {
	id := GroupShared
	if h := r.Header.Get(headerGroup); h != "" {
		var err error
		if id, err = strconv.ParseUint(h, 10, 64); err != nil {
			t.refuse(w, http.StatusBadRequest, "bad raft group")
			return nil, false
		}
	}
	t.gmu.RLock()
	defer t.gmu.RUnlock()
	g := t.groups[id]
	if g == nil {
		t.refuse(w, http.StatusNotFound, fmt.Sprintf("raft group %d is not served here", id))
		return nil, false
	}
	g.wg.Add(1)
	return g, true
}

// Send queues messages of the shared group for their peers (see
// Group.Send).
func (t *Transport) Send(msgs []*pb.Message) { t.shared.Send(msgs) }

// Send queues messages of the group for their peers. It never blocks: what
// cannot be queued is dropped and reported to the group's handler.
// Messages are encoded here, on the caller's goroutine, as raft asks (its
// entries must not be read while it appends).
func (g *Group) Send(msgs []*pb.Message) {
	t := g.t
	var drops map[uint64][]*pb.Message
	drop := func(to uint64, m *pb.Message) {
		if drops == nil {
			drops = map[uint64][]*pb.Message{}
		}
		drops[to] = append(drops[to], m)
	}
	t.mu.Lock()
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil || t.closed {
			drop(m.GetTo(), m)
			continue
		}
		data, err := proto.Marshal(m)
		if err != nil {
			drop(m.GetTo(), m)
			continue
		}
		select {
		case p.q <- queued{g: g, m: m, data: data}:
		default:
			drop(m.GetTo(), m)
		}
	}
	t.mu.Unlock()
	for to, ms := range drops {
		t.dropped.Add(uint64(len(ms)))
		g.h.Unreachable(to, ms)
	}
}

func (t *Transport) runPeer(p *peer) {
	defer t.wg.Done()
	var batch []queued
	for {
		batch = batch[:0]
		select {
		case q := <-p.q:
			batch = append(batch, q)
		case <-p.stop:
			return
		case <-t.ctx.Done():
			return
		}
		size := len(batch[0].data)
	fill:
		for size < t.cfg.MaxBatchBytes {
			select {
			case q := <-p.q:
				batch = append(batch, q)
				size += len(q.data)
			default:
				break fill
			}
		}
		for _, part := range byGroup(batch) {
			t.postBatch(p, part)
		}
	}
}

// byGroup splits a batch into one run per group, each in queue order (raft
// needs order only within a group). The usual batch is one group's.
func byGroup(batch []queued) [][]queued {
	single := true
	for _, q := range batch[1:] {
		if q.g != batch[0].g {
			single = false
			break
		}
	}
	if single {
		return [][]queued{batch}
	}
	var parts [][]queued
	at := map[*Group]int{}
	for _, q := range batch {
		i, ok := at[q.g]
		if !ok {
			i = len(parts)
			at[q.g] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], q)
	}
	return parts
}

// postBatch posts one group's messages to p; a failure reports them
// unreachable to the group.
func (t *Transport) postBatch(p *peer, batch []queued) {
	g := batch[0].g
	size := 0
	for _, q := range batch {
		size += len(q.data)
	}
	// A fresh body each time: the HTTP client may still hold the last
	// one when a request ends early.
	body := make([]byte, 0, size+binary.MaxVarintLen32*len(batch))
	for _, q := range batch {
		body = binary.AppendUvarint(body, uint64(len(q.data)))
		body = append(body, q.data...)
	}
	if err := t.postTo(p, PathMessages, g.id, body); err != nil {
		ms := make([]*pb.Message, len(batch))
		for i, q := range batch {
			ms[i] = q.m
		}
		t.dropped.Add(uint64(len(ms)))
		g.h.Unreachable(p.id, ms)
		return
	}
	t.batches.Add(1)
	t.sent.Add(uint64(len(batch)))
}

// Gossip sends body to every peer, best effort and without blocking: a
// peer whose previous gossip is still in flight is skipped (the next
// gossip carries newer state anyway), and failures are only counted.
func (t *Transport) Gossip(body []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for _, p := range t.peers {
		if !p.gosso.CompareAndSwap(false, true) {
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer p.gosso.Store(false)
			if err := t.postTo(p, PathGossip, GroupShared, body); err != nil {
				t.gossipFailed.Add(1)
				return
			}
			t.gossipSent.Add(1)
		}()
	}
}

// setGroup names the group of a post; the shared group's posts carry no
// header, as before groups existed.
func setGroup(h http.Header, group uint64) {
	if group != GroupShared {
		h.Set(headerGroup, strconv.FormatUint(group, 10))
	}
}

func (t *Transport) postTo(p *peer, path string, group uint64, body []byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerFrom, strconv.FormatUint(t.cfg.ID, 10))
	setGroup(req.Header, group)
	if t.cfg.AdvertiseAddr != "" {
		req.Header.Set(headerAddr, t.cfg.AdvertiseAddr)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("transport: peer %d answered %s", p.id, resp.Status)
	}
	return nil
}

// SendSnapshot sends a snapshot of the shared group (see
// Group.SendSnapshot).
func (t *Transport) SendSnapshot(m *pb.Message, body io.WriterTo, done func(error)) {
	t.shared.SendSnapshot(m, body, done)
}

// SendSnapshot streams body (the state at m's snapshot index) with the
// group's MsgSnap m to its peer, on a goroutine of its own, and calls done
// with the outcome once the peer has stored and checked it or the transfer
// failed. done is always called, after body is no longer read.
func (g *Group) SendSnapshot(m *pb.Message, body io.WriterTo, done func(error)) {
	t := g.t
	t.gmu.RLock()
	removed := g.removed
	if !removed {
		g.wg.Add(1)
	}
	t.gmu.RUnlock()
	if removed {
		t.snapsFailed.Add(1)
		done(fmt.Errorf("transport: raft group %d removed", g.id))
		return
	}
	t.mu.Lock()
	p := t.peers[m.GetTo()]
	closed := t.closed
	if p != nil && !closed && p.snapo[g.id] {
		t.mu.Unlock()
		g.wg.Done()
		t.snapsFailed.Add(1)
		done(fmt.Errorf("transport: a snapshot to %d is already in flight", m.GetTo()))
		return
	}
	if p == nil || closed {
		t.mu.Unlock()
		g.wg.Done()
		t.snapsFailed.Add(1)
		done(fmt.Errorf("transport: no address for peer %d", m.GetTo()))
		return
	}
	p.snapo[g.id] = true
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer g.wg.Done()
		defer func() {
			t.mu.Lock()
			delete(p.snapo, g.id)
			t.mu.Unlock()
		}()
		err := t.sendSnapshot(g, p, m, body)
		if err != nil {
			t.snapsFailed.Add(1)
			t.cfg.Logger.Warn("snapshot transfer failed", "peer", p.id, "err", err)
		} else {
			t.snapsSent.Add(1)
		}
		done(err)
	}()
}

func (t *Transport) sendSnapshot(g *Group, p *peer, m *pb.Message, body io.WriterTo) error {
	hdr, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(g.ctx, t.cfg.SnapshotTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		_, err := body.WriteTo(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		wrote <- err
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.addr+PathSnapshot, pr)
	if err != nil {
		pr.CloseWithError(err)
		<-wrote
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerFrom, strconv.FormatUint(t.cfg.ID, 10))
	setGroup(req.Header, g.id)
	req.Header.Set(headerMessage, base64.StdEncoding.EncodeToString(hdr))
	resp, err := t.bulk.Do(req)
	if err == nil {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			err = fmt.Errorf("transport: peer %d refused the snapshot: %s: %s", p.id, resp.Status, msg)
		}
	}
	// Unblock the writer if the request ended early, and wait for it: the
	// caller releases what body reads from once done is called.
	pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
	if werr := <-wrote; err == nil && werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		err = werr
	}
	return err
}

func (t *Transport) refuse(w http.ResponseWriter, code int, msg string) {
	t.refused.Add(1)
	http.Error(w, msg, code)
}

func (t *Transport) enter() bool {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	if t.hclosed {
		return false
	}
	t.hwg.Add(1)
	return true
}

// endpoint wraps a handler: POST only, and counted so Close waits for it
// (refused once the transport is closing).
func (t *Transport) endpoint(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !t.enter() {
			t.refuse(w, http.StatusServiceUnavailable, "closing")
			return
		}
		defer t.hwg.Done()
		if r.Method != http.MethodPost {
			t.refuse(w, http.StatusMethodNotAllowed, "POST only")
			return
		}
		h(w, r)
	}
}

// sender reads the sending node's ID from a post; false (and the request
// refused) when it is missing or a refused member's.
func (t *Transport) sender(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	from, err := strconv.ParseUint(r.Header.Get(headerFrom), 10, 64)
	if err != nil || from == 0 || (t.cfg.Refuse != nil && t.cfg.Refuse(from)) {
		t.refuse(w, http.StatusForbidden, "sender refused")
		return 0, false
	}
	return from, true
}

func (t *Transport) handleMessages(w http.ResponseWriter, r *http.Request) {
	from, ok := t.sender(w, r)
	if !ok {
		return
	}
	if addr := r.Header.Get(headerAddr); addr != "" {
		t.learn(from, addr)
	}
	g, ok := t.enterGroup(w, r)
	if !ok {
		return
	}
	defer g.wg.Done()
	br := bufio.NewReaderSize(r.Body, 64<<10)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil || n > uint64(t.cfg.MaxMessageBytes) {
			t.refuse(w, http.StatusBadRequest, "bad message framing")
			return
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			t.refuse(w, http.StatusBadRequest, "truncated message")
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(buf, m); err != nil {
			t.refuse(w, http.StatusBadRequest, "bad message")
			return
		}
		if m.GetTo() != t.cfg.ID {
			t.refuse(w, http.StatusMisdirectedRequest, "message for another node")
			return
		}
		if m.GetType() == pb.MsgSnap {
			t.refuse(w, http.StatusBadRequest, "snapshots go to "+PathSnapshot)
			return
		}
		if t.cfg.Refuse != nil && t.cfg.Refuse(m.GetFrom()) {
			t.refuse(w, http.StatusForbidden, "sender refused")
			return
		}
		t.received.Add(1)
		if err := g.h.Step(r.Context(), m); err != nil {
			t.refuse(w, http.StatusServiceUnavailable, "node stopped")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (t *Transport) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	hdr, err := base64.StdEncoding.DecodeString(r.Header.Get(headerMessage))
	m := &pb.Message{}
	if err != nil || proto.Unmarshal(hdr, m) != nil || m.GetType() != pb.MsgSnap || m.GetSnapshot().GetMetadata().GetIndex() == 0 {
		t.refuse(w, http.StatusBadRequest, "bad snapshot message")
		return
	}
	if m.GetTo() != t.cfg.ID {
		t.refuse(w, http.StatusMisdirectedRequest, "snapshot for another node")
		return
	}
	if t.cfg.Refuse != nil && t.cfg.Refuse(m.GetFrom()) {
		t.refuse(w, http.StatusForbidden, "sender refused")
		return
	}
	g, ok := t.enterGroup(w, r)
	if !ok {
		return
	}
	defer g.wg.Done()
	if err := g.h.ReceiveSnapshot(r.Context(), m, r.Body); err != nil {
		t.refuse(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (t *Transport) handleGossip(w http.ResponseWriter, r *http.Request) {
	if t.cfg.Gossip == nil {
		t.refuse(w, http.StatusNotFound, "no gossip here")
		return
	}
	from, ok := t.sender(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxGossipBytes+1))
	if err != nil || len(body) > MaxGossipBytes {
		t.refuse(w, http.StatusRequestEntityTooLarge, "gossip too large or cut short")
		return
	}
	t.gossipReceived.Add(1)
	t.cfg.Gossip(from, body)
	w.WriteHeader(http.StatusNoContent)
}

// Stats reports the counters.
func (t *Transport) Stats() Stats {
	return Stats{
		MessagesSent:     t.sent.Load(),
		MessagesDropped:  t.dropped.Load(),
		Batches:          t.batches.Load(),
		MessagesReceived: t.received.Load(),
		SnapshotsSent:    t.snapsSent.Load(),
		SnapshotsFailed:  t.snapsFailed.Load(),
		Refused:          t.refused.Load(),
		GossipSent:       t.gossipSent.Load(),
		GossipFailed:     t.gossipFailed.Load(),
		GossipReceived:   t.gossipReceived.Load(),
	}
}

// Close stops serving and sending, and waits for every goroutine of the
// transport, snapshot transfers included.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for id, p := range t.peers {
		close(p.stop)
		delete(t.peers, id)
	}
	t.mu.Unlock()
	t.hmu.Lock()
	t.hclosed = true
	t.hmu.Unlock()
	t.cancel()
	err := t.srv.Close()
	t.hwg.Wait()
	t.wg.Wait()
	t.client.CloseIdleConnections()
	t.bulk.CloseIdleConnections()
	return err
}
