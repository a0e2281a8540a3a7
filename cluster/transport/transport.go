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
// the state stream as the body, at most one in flight per peer.
//
// Endpoints (POST, mutual TLS, HTTP/2 only):
//
//	/raft/v1/msgs      body: repeated (uvarint length, raftpb.Message)
//	/raft/v1/snapshot  header Teamflow-Raft-Message: base64 raftpb.Message; body: the snapshot stream
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

	// maxGossipBytes caps one gossip body: it carries a node's in-memory
	// state (presence), not data.
	maxGossipBytes = 4 << 20

	headerMessage = "Teamflow-Raft-Message"
	headerFrom    = "Teamflow-Raft-From"
	headerAddr    = "Teamflow-Raft-Addr"
)

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
	// Handler receives messages.
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
	snapo atomic.Bool // a snapshot is in flight
	gosso atomic.Bool // a gossip post is in flight
}

type queued struct {
	m    *pb.Message
	data []byte
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
	t := &Transport{cfg: cfg, ctx: ctx, cancel: cancel, peers: map[uint64]*peer{}}
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
		p := &peer{id: id, addr: addr, q: make(chan queued, t.cfg.QueueSize), stop: make(chan struct{})}
		t.peers[id] = p
		t.wg.Add(1)
		go t.runPeer(p)
	}
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
	p := &peer{id: id, addr: addr, q: make(chan queued, t.cfg.QueueSize), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.runPeer(p)
	t.cfg.Logger.Info("learned a peer's address from its messages", "peer", id, "addr", addr)
}

// Send queues messages for their peers. It never blocks: what cannot be
// queued is dropped and reported. Messages are encoded here, on the
// caller's goroutine, as raft asks (its entries must not be read while it
// appends).
func (t *Transport) Send(msgs []*pb.Message) {
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
		case p.q <- queued{m: m, data: data}:
		default:
			drop(m.GetTo(), m)
		}
	}
	t.mu.Unlock()
	for to, ms := range drops {
		t.dropped.Add(uint64(len(ms)))
		t.cfg.Handler.Unreachable(to, ms)
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
		// A fresh body each time: the HTTP client may still hold the last
		// one when a request ends early.
		body := make([]byte, 0, size+binary.MaxVarintLen32*len(batch))
		for _, q := range batch {
			body = binary.AppendUvarint(body, uint64(len(q.data)))
			body = append(body, q.data...)
		}
		if err := t.post(p, body); err != nil {
			ms := make([]*pb.Message, len(batch))
			for i, q := range batch {
				ms[i] = q.m
			}
			t.dropped.Add(uint64(len(ms)))
			t.cfg.Handler.Unreachable(p.id, ms)
			continue
		}
		t.batches.Add(1)
		t.sent.Add(uint64(len(batch)))
	}
}

func (t *Transport) post(p *peer, body []byte) error {
	return t.postTo(p, PathMessages, body)
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
			if err := t.postTo(p, PathGossip, body); err != nil {
				t.gossipFailed.Add(1)
				return
			}
			t.gossipSent.Add(1)
		}()
	}
}

func (t *Transport) postTo(p *peer, path string, body []byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerFrom, strconv.FormatUint(t.cfg.ID, 10))
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

// SendSnapshot streams body (the state at m's snapshot index) with the
// MsgSnap m to its peer, on a goroutine of its own, and calls done with the
// outcome once the peer has stored and checked it or the transfer failed.
// done is always called, after body is no longer read.
func (t *Transport) SendSnapshot(m *pb.Message, body io.WriterTo, done func(error)) {
	t.mu.Lock()
	p := t.peers[m.GetTo()]
	closed := t.closed
	if p != nil && !closed && !p.snapo.CompareAndSwap(false, true) {
		t.mu.Unlock()
		t.snapsFailed.Add(1)
		done(fmt.Errorf("transport: a snapshot to %d is already in flight", m.GetTo()))
		return
	}
	if p == nil || closed {
		t.mu.Unlock()
		t.snapsFailed.Add(1)
		done(fmt.Errorf("transport: no address for peer %d", m.GetTo()))
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer p.snapo.Store(false)
		err := t.sendSnapshot(p, m, body)
		if err != nil {
			t.snapsFailed.Add(1)
			t.cfg.Logger.Warn("snapshot transfer failed", "peer", p.id, "err", err)
		} else {
			t.snapsSent.Add(1)
		}
		done(err)
	}()
}

func (t *Transport) sendSnapshot(p *peer, m *pb.Message, body io.WriterTo) error {
	hdr, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.SnapshotTimeout)
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
		if err := t.cfg.Handler.Step(r.Context(), m); err != nil {
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
	if err := t.cfg.Handler.ReceiveSnapshot(r.Context(), m, r.Body); err != nil {
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
	body, err := io.ReadAll(io.LimitReader(r.Body, maxGossipBytes+1))
	if err != nil || len(body) > maxGossipBytes {
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
