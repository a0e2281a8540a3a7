package transport_test

import (
	"bytes"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Two raft groups share one transport: each group's messages and
// snapshots reach that group's handler only, in order; a group the peer
// does not serve is refused there and reported unreachable to the sender's
// group; a removed group receives nothing more.
func TestGroupsMultiplexed(t *testing.T) {
	p := newPair(t, 0, &handler{})
	ga, gb := &handler{}, &handler{}
	a7, err := p.a.AddGroup(7, ga)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.AddGroup(7, ga); err == nil {
		t.Fatal("a second handler for group 7 was accepted")
	}
	b7, err := p.b.AddGroup(7, gb)
	if err != nil {
		t.Fatal(err)
	}

	const n = 500
	for i := uint64(0); i < n; i++ {
		p.a.Send([]*pb.Message{msg(2, i)})
		a7.Send([]*pb.Message{msg(2, 1000+i)})
	}
	poll(t, "both groups delivered", func() bool {
		shared, _ := p.hb.counts()
		g7, _ := gb.counts()
		return shared == n && g7 == n
	})
	for name, h := range map[string]*handler{"shared": p.hb, "group 7": gb} {
		h.mu.Lock()
		base := h.got[0].GetIndex()
		for i, m := range h.got {
			if m.GetIndex() != base+uint64(i) || (base != 0 && base != 1000) {
				h.mu.Unlock()
				t.Fatalf("%s: message %d has index %d: misrouted or out of order", name, i, m.GetIndex())
			}
		}
		h.mu.Unlock()
	}

	// A snapshot in flight for one group does not hold up another's.
	snap := &pb.Message{Type: pb.MsgSnap.Enum(), To: proto.Uint64(2), From: proto.Uint64(1),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(10), Term: proto.Uint64(1)}}}
	errc := make(chan error, 2)
	p.a.SendSnapshot(snap, bytesWriterTo("shared state"), func(err error) { errc <- err })
	a7.SendSnapshot(snap, bytesWriterTo("group 7 state"), func(err error) { errc <- err })
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	p.hb.mu.Lock()
	gb.mu.Lock()
	if len(p.hb.snaps) != 1 || !bytes.Equal(p.hb.snaps[0], []byte("shared state")) ||
		len(gb.snaps) != 1 || !bytes.Equal(gb.snaps[0], []byte("group 7 state")) {
		t.Errorf("snapshots misrouted: shared %q, group 7 %q", p.hb.snaps, gb.snaps)
	}
	gb.mu.Unlock()
	p.hb.mu.Unlock()

	// Group 9 is not served by b: its posts are refused and reported.
	g9 := &handler{}
	a9, err := p.a.AddGroup(9, g9)
	if err != nil {
		t.Fatal(err)
	}
	a9.Send([]*pb.Message{msg(2, 1), msg(2, 2)})
	poll(t, "group 9's messages reported unreachable", func() bool { _, d := g9.counts(); return d[2] == 2 })
	if _, d := ga.counts(); d[2] != 0 {
		t.Fatalf("group 7 got group 9's drops: %v", d)
	}

	// Once b removes group 7, a's messages for it are refused too.
	b7.Remove()
	a7.Send([]*pb.Message{msg(2, 5000)})
	poll(t, "messages for a removed group reported unreachable", func() bool { _, d := ga.counts(); return d[2] == 1 })
	if got, _ := gb.counts(); got != n {
		t.Fatalf("a removed group received %d messages, want %d", got, n)
	}
	if _, err := p.b.AddGroup(7, gb); err != nil {
		t.Fatalf("group 7 could not be registered again after its removal: %v", err)
	}
}
