package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/cluster/transport"
)

const long = 30 * time.Second

// handler records what a transport delivers.
type handler struct {
	mu          sync.Mutex
	got         []*pb.Message
	unreachable map[uint64][]*pb.Message
	snaps       [][]byte
	snapErr     error
	block       chan struct{} // when set, Step waits on it
	gossip      map[uint64][]string
}

func (h *handler) receiveGossip(from uint64, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gossip == nil {
		h.gossip = map[uint64][]string{}
	}
	h.gossip[from] = append(h.gossip[from], string(body))
}

func (h *handler) gossipFrom(id uint64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.gossip[id])
}

func (h *handler) Step(ctx context.Context, m *pb.Message) error {
	if h.block != nil {
		select {
		case <-h.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.mu.Lock()
	h.got = append(h.got, m)
	h.mu.Unlock()
	return nil
}

func (h *handler) ReceiveSnapshot(ctx context.Context, m *pb.Message, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.snapErr != nil {
		return h.snapErr
	}
	h.snaps = append(h.snaps, data)
	return nil
}

func (h *handler) Unreachable(peer uint64, dropped []*pb.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unreachable == nil {
		h.unreachable = map[uint64][]*pb.Message{}
	}
	h.unreachable[peer] = append(h.unreachable[peer], dropped...)
}

func (h *handler) counts() (got int, dropped map[uint64]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped = map[uint64]int{}
	for id, ms := range h.unreachable {
		dropped[id] = len(ms)
	}
	return len(h.got), dropped
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(long)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(wait)
	}
}

type pair struct {
	a, b   *transport.Transport
	ha, hb *handler
}

func tlsFor(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	cert, key := cluster.CertFiles(dir, name)
	conf, err := cluster.LoadTLS(filepath.Join(dir, cluster.CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func newPair(t *testing.T, queue int, hb *handler) *pair {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.GenerateCerts(dir, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	p := &pair{ha: &handler{}, hb: hb}
	start := func(id uint64, name string, h *handler) *transport.Transport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transport.New(transport.Config{ID: id, Listener: ln, TLS: tlsFor(t, dir, name), Handler: h, QueueSize: queue, Gossip: h.receiveGossip})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	p.a = start(1, "a", p.ha)
	p.b = start(2, "b", p.hb)
	p.a.SetPeers(map[uint64]string{2: p.b.Addr().String()})
	p.b.SetPeers(map[uint64]string{1: p.a.Addr().String()})
	return p
}

func msg(to, index uint64) *pb.Message {
	return &pb.Message{Type: pb.MsgApp.Enum(), To: proto.Uint64(to), From: proto.Uint64(1), Index: proto.Uint64(index),
		Entries: []*pb.Entry{{Index: proto.Uint64(index + 1), Term: proto.Uint64(1), Data: bytes.Repeat([]byte{'x'}, 100)}}}
}

// Messages reach their peer in order, batched; messages to unknown peers
// are reported dropped at once.
func TestSendDeliversInOrderBatched(t *testing.T) {
	p := newPair(t, 0, &handler{})
	const n = 2000
	for i := uint64(0); i < n; i += 10 {
		var ms []*pb.Message
		for j := i; j < i+10; j++ {
			ms = append(ms, msg(2, j))
		}
		p.a.Send(ms)
	}
	p.a.Send([]*pb.Message{msg(9, 0)})
	poll(t, "every message delivered", func() bool { got, _ := p.hb.counts(); return got == n })
	p.hb.mu.Lock()
	for i, m := range p.hb.got {
		if m.GetIndex() != uint64(i) {
			p.hb.mu.Unlock()
			t.Fatalf("message %d has index %d: out of order", i, m.GetIndex())
		}
	}
	p.hb.mu.Unlock()
	st := p.a.Stats()
	if st.Batches >= n/2 {
		t.Fatalf("%d posts for %d messages: not batched", st.Batches, n)
	}
	if _, dropped := p.ha.counts(); dropped[9] != 1 {
		t.Fatalf("message to unknown peer: dropped %v", dropped)
	}
	t.Logf("%d messages in %d posts", st.MessagesSent, st.Batches)
}

// A peer that does not drain its queue never blocks Send: the overflow is
// dropped and reported as unreachable.
func TestSlowPeerNeverBlocksSend(t *testing.T) {
	block := make(chan struct{})
	p := newPair(t, 8, &handler{block: block})
	defer close(block)
	done := make(chan struct{})
	go func() {
		for i := uint64(0); i < 500; i++ {
			p.a.Send([]*pb.Message{msg(2, i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(long):
		t.Fatal("Send blocked on a slow peer")
	}
	_, dropped := p.ha.counts()
	if dropped[2] == 0 {
		t.Fatal("nothing reported dropped")
	}
}

// A dead peer: posts fail, the messages are reported unreachable.
func TestDeadPeerReportedUnreachable(t *testing.T) {
	p := newPair(t, 0, &handler{})
	p.b.Close()
	p.a.Send([]*pb.Message{msg(2, 1), msg(2, 2)})
	poll(t, "drop reported", func() bool { _, d := p.ha.counts(); return d[2] == 2 })
}

type bytesWriterTo []byte

func (b bytesWriterTo) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// Snapshots stream to the peer; a refusal comes back to the sender.
func TestSendSnapshot(t *testing.T) {
	hb := &handler{}
	p := newPair(t, 0, hb)
	body := bytes.Repeat([]byte("snapshot"), 1<<17) // 1 MiB
	m := &pb.Message{Type: pb.MsgSnap.Enum(), To: proto.Uint64(2), From: proto.Uint64(1),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(10), Term: proto.Uint64(1)}}}
	errc := make(chan error, 1)
	p.a.SendSnapshot(m, bytesWriterTo(body), func(err error) { errc <- err })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	hb.mu.Lock()
	if len(hb.snaps) != 1 || !bytes.Equal(hb.snaps[0], body) {
		hb.mu.Unlock()
		t.Fatal("snapshot body differs")
	}
	hb.snapErr = errors.New("checksum mismatch")
	hb.mu.Unlock()
	p.a.SendSnapshot(m, bytesWriterTo(body), func(err error) { errc <- err })
	if err := <-errc; err == nil {
		t.Fatal("a refused snapshot was reported as sent")
	}
	if st := p.a.Stats(); st.SnapshotsSent != 1 || st.SnapshotsFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A message for another node is refused by the receiver.
	wrong := msg(3, 1)
	p.a.SetPeers(map[uint64]string{2: p.b.Addr().String(), 3: p.b.Addr().String()})
	p.a.Send([]*pb.Message{wrong})
	poll(t, "misdirected message reported", func() bool { _, d := p.ha.counts(); return d[3] == 1 })
	if got := fmt.Sprint(p.b.Stats().Refused); got == "0" {
		t.Fatal("receiver did not refuse a misdirected message")
	}
}

// Gossip reaches every peer, over the same mutual TLS, as whole bodies;
// an oversized body is refused and counted, never delivered.
func TestGossip(t *testing.T) {
	p := newPair(t, 16, &handler{})
	p.a.Gossip([]byte(`{"presence":1}`))
	poll(t, "b received a's gossip", func() bool { return len(p.hb.gossipFrom(1)) == 1 })
	if got := p.hb.gossipFrom(1)[0]; got != `{"presence":1}` {
		t.Fatalf("b got %q", got)
	}
	p.b.Gossip([]byte("x"))
	poll(t, "a received b's gossip", func() bool { return len(p.ha.gossipFrom(2)) == 1 })
	poll(t, "a counted its gossip sent", func() bool { return p.a.Stats().GossipSent == 1 })

	p.a.Gossip(bytes.Repeat([]byte{'x'}, 4<<20+1))
	poll(t, "the oversized gossip counted as failed", func() bool { return p.a.Stats().GossipFailed == 1 })
	if n := len(p.hb.gossipFrom(1)); n != 1 {
		t.Fatalf("b received %d gossip bodies, want the first only", n)
	}
}
